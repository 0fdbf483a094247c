//! Saved session state: a session's tokens, KV cache and generation settings as bytes,
//! and back, so a conversation survives an application restart.
//!
//! Format (little-endian), version 1:
//!
//! | bytes | what |
//! | --- | --- |
//! | 8 | magic `RILLSTAT` |
//! | 4 | format version |
//! | 4 | model fingerprint (CRC-32 of `config.json`, the weights file's size and its first and last 64 KiB) |
//! | 4 × 4, 1 | layers, kv heads, head width, vocabulary size; cache dtype (0 f32, 1 f16) |
//! | 8, 4 × n | cached tokens |
//! | 8, 4 × m | tokens of the history not evaluated yet (the last generated token, a beam search's hypothesis) |
//! | 8, n | the session's generation settings as JSON |
//! | per layer: key, value | the live cache, `[kv_heads, n, head_dim]` elements each |
//! | 4 | CRC-32 of everything before it |
//!
//! Loading checks the checksum first, then the version, the model and the shapes, and
//! changes nothing in the session unless everything is valid.

use std::io::{Read, Seek, SeekFrom};

use crate::config::GenerationConfig;
use crate::error::{Result, RillError};
use crate::kv_cache::{CacheDtype, Kind};
use crate::model::Model;
use crate::session::Session;

const MAGIC: &[u8; 8] = b"RILLSTAT";
const VERSION: u32 = 1;
const SAMPLE: u64 = 64 * 1024;

fn bad(message: impl Into<String>) -> RillError {
    RillError::State(message.into())
}

/// A fingerprint of the model folder a state belongs to.
fn fingerprint(model: &Model) -> Result<u32> {
    let dir = model.dir();
    let mut h = crc32fast::Hasher::new();
    let config = dir.join("config.json");
    h.update(&std::fs::read(&config).map_err(crate::error::io_err(&config))?);
    let weights = [dir.join("model.safetensors"), dir.join("model.onnx")]
        .into_iter()
        .find(|p| p.exists())
        .ok_or_else(|| RillError::MissingFile(dir.join("model.safetensors")))?;
    let mut f = std::fs::File::open(&weights).map_err(crate::error::io_err(&weights))?;
    let size = f.metadata().map_err(crate::error::io_err(&weights))?.len();
    h.update(&size.to_le_bytes());
    let mut buf = Vec::new();
    for start in [0, size.saturating_sub(SAMPLE)] {
        buf.clear();
        f.seek(SeekFrom::Start(start))
            .and_then(|_| (&mut f).take(SAMPLE).read_to_end(&mut buf))
            .map_err(crate::error::io_err(&weights))?;
        h.update(&buf);
    }
    Ok(h.finalize())
}

/// Reads fields off a blob, with errors that say what was cut short.
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| bad(format!("truncated: {what} is cut off")))?;
        let s = &self.data[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().unwrap()))
    }
    fn ids(&mut self, n: usize, what: &str) -> Result<Vec<u32>> {
        let bytes = n
            .checked_mul(4)
            .ok_or_else(|| bad(format!("{what}: count too large")))?;
        Ok(self
            .take(bytes, what)?
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect())
    }
    fn len(&mut self, what: &str) -> Result<usize> {
        usize::try_from(self.u64(what)?).map_err(|_| bad(format!("{what} is too large")))
    }
}

impl Session {
    /// The session's tokens, KV cache and generation settings as a versioned blob for
    /// [`Session::load_state`]. For sessions of batch 1. Custom samplers added from plugin
    /// files are saved by name and path: the loading process must be able to load them.
    pub fn save_state(&self) -> Result<Vec<u8>> {
        if self.options.batch != 1 {
            return Err(RillError::InvalidArgument(
                "only sessions of batch 1 can be saved".into(),
            ));
        }
        let g = *self.model.graph();
        let mut out = Vec::with_capacity(self.cache.len() * g.layers * 2 * 1024 + 1024);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&fingerprint(&self.model)?.to_le_bytes());
        for v in [g.layers, g.kv_heads, g.head_dim, g.vocab] {
            out.extend_from_slice(&(v as u32).to_le_bytes());
        }
        out.push(u8::from(self.cache.dtype() == CacheDtype::F16));
        out.extend_from_slice(&(self.tokens.len() as u64).to_le_bytes());
        for t in &self.tokens {
            out.extend_from_slice(&t.to_le_bytes());
        }
        out.extend_from_slice(&(self.pending.len() as u64).to_le_bytes());
        for t in &self.pending {
            out.extend_from_slice(&t.to_le_bytes());
        }
        let settings = serde_json::to_vec(&self.generation)
            .map_err(|e| bad(format!("cannot encode the generation settings: {e}")))?;
        out.extend_from_slice(&(settings.len() as u64).to_le_bytes());
        out.extend_from_slice(&settings);
        for layer in 0..g.layers {
            for kind in [Kind::Key, Kind::Value] {
                out.extend_from_slice(&self.cache.read(layer, kind)?);
            }
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    /// Restores a blob from [`Session::save_state`] into this session, replacing its
    /// tokens, cache and generation settings. A truncated, corrupt or foreign blob (other
    /// format version, other model, more tokens than this session's context) is
    /// [`RillError::State`] and leaves the session as it was.
    pub fn load_state(&mut self, blob: &[u8]) -> Result<()> {
        if blob.len() < MAGIC.len() + 8 || &blob[..MAGIC.len()] != MAGIC {
            return Err(bad("not a rill session state (bad magic bytes)"));
        }
        let (body, crc) = blob.split_at(blob.len() - 4);
        if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().unwrap()) {
            return Err(bad("checksum mismatch: the blob is truncated or corrupt"));
        }
        let mut r = Reader {
            data: body,
            at: MAGIC.len(),
        };
        let version = r.u32("the version")?;
        if version != VERSION {
            return Err(bad(format!(
                "format version {version}; this rill reads version {VERSION}"
            )));
        }
        if r.u32("the model fingerprint")? != fingerprint(&self.model)? {
            return Err(bad(format!(
                "it was saved with another model than {}",
                self.model.dir().display()
            )));
        }
        let g = *self.model.graph();
        for (what, want) in [
            ("layers", g.layers),
            ("kv heads", g.kv_heads),
            ("head width", g.head_dim),
            ("vocabulary size", g.vocab),
        ] {
            let got = r.u32(what)? as usize;
            if got != want {
                return Err(bad(format!("{what} {got}, the model has {want}")));
            }
        }
        let f16 = r.take(1, "the cache dtype")?[0] == 1;
        if f16 != (self.cache.dtype() == CacheDtype::F16) {
            return Err(bad("its cache dtype differs from this model's"));
        }
        if self.options.batch != 1 {
            return Err(RillError::InvalidArgument(
                "only sessions of batch 1 can load a state".into(),
            ));
        }
        let n = r.len("the token count")?;
        let tokens = r.ids(n, "the tokens")?;
        let m = r.len("the pending count")?;
        let pending = r.ids(m, "the pending tokens")?;
        if n > self.options.context_len {
            return Err(bad(format!(
                "it holds {n} evaluated tokens; this session's context is {}",
                self.options.context_len
            )));
        }
        if let Some(&id) = tokens
            .iter()
            .chain(&pending)
            .find(|&&t| t as usize >= g.vocab)
        {
            return Err(bad(format!("token {id} is outside the vocabulary")));
        }
        let len = r.len("the settings length")?;
        let settings: GenerationConfig = serde_json::from_slice(r.take(len, "the settings")?)
            .map_err(|e| bad(format!("its generation settings do not parse: {e}")))?;
        let bytes = g.kv_heads * n * g.head_dim * self.cache.dtype().size();
        let mut kv = Vec::with_capacity(g.layers);
        for _ in 0..g.layers {
            kv.push([
                r.take(bytes, "the KV cache")?,
                r.take(bytes, "the KV cache")?,
            ]);
        }
        if r.at != body.len() {
            return Err(bad("unexpected bytes after the KV cache"));
        }
        self.set_generation_config(settings)?;
        self.reset();
        self.cache.append(n, &kv)?;
        self.tokens = tokens;
        self.pending = pending;
        Ok(())
    }
}
