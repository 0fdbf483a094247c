//! `Session`: one sequence over a shared [`Model`]: its tokens, its KV cache and its
//! decoding. Used from one thread at a time (`Send`, not `Sync`).
//!
//! A forward pass binds, through one `OrtIoBinding`, the inputs (`input_ids`,
//! `attention_mask`, `position_ids` from small reused buffers), the cache's live side as
//! `past_key_values.*`, the cache's other side as `present.*` and rill's logits buffer as
//! `logits`, so ONNX Runtime reads and writes rill's memory directly. The one copy of the
//! cache per step is the graph's own `Concat(past, new)` (see [`crate::kv_cache`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::GenerationConfig;
use crate::error::{Result, RillError};
use crate::kv_cache::{CacheShape, Kind, KvCache};
use crate::model::Model;
use crate::ort_value::{cstring, element_type, Binding, RawValue};
use crate::stream::TextStream;

/// Options for [`Session::new`].
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Context length in tokens (prompt + generated); 0 means the model's
    /// `max_position_embeddings`.
    pub context_len: usize,
    /// Prompt tokens per forward pass during prefill.
    pub prefill_chunk: usize,
    /// Rows evaluated together (beam hypotheses); 1 for a plain conversation.
    pub batch: usize,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            context_len: 0,
            prefill_chunk: 128,
            batch: 1,
        }
    }
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// An end-of-sequence token was produced (it is not part of the output).
    Eos,
    /// `max_new_tokens` were generated.
    MaxTokens,
    /// The context is full.
    ContextFull,
    /// The callback asked to stop.
    Callback,
}

/// Time spent, for `--stats` and benchmarks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// Prompt evaluation.
    pub prefill: Duration,
    /// Generation after the prompt.
    pub decode: Duration,
    /// Inside ONNX Runtime's Run, prefill and decode together.
    pub ort_run: Duration,
    /// Forward passes during decode.
    pub decode_steps: usize,
}

/// The result of [`Session::generate`].
#[derive(Debug, Clone)]
pub struct Generation {
    /// New token ids (no EOS).
    pub tokens: Vec<u32>,
    /// Their text.
    pub text: String,
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
    /// Why it stopped.
    pub stop: StopReason,
    /// Where the time went.
    pub timings: Timings,
}

struct Names {
    past: Vec<[std::ffi::CString; 2]>,
    present: Vec<[std::ffi::CString; 2]>,
    input_ids: std::ffi::CString,
    attention_mask: std::ffi::CString,
    position_ids: std::ffi::CString,
    logits: std::ffi::CString,
}

/// One conversation with its own KV cache.
pub struct Session {
    // Drop order: the binding refers to the model's ONNX Runtime session, so `model` is
    // the last field.
    cache: KvCache,
    binding: Binding,
    names: Names,
    tokens: Vec<u32>,
    options: SessionOptions,
    generation: GenerationConfig,
    ids: Vec<i64>,
    mask: Vec<i64>,
    positions: Vec<i64>,
    logits: Vec<u32>, // f32 or f16 bits, chunk * vocab elements (u32 storage for alignment)
    last: Vec<f32>,
    ort_time: Duration,
    beams: Vec<crate::beam::Hypothesis>,
    beam_prompt_len: usize,
    model: Arc<Model>,
}

impl Session {
    /// A session over `model` with a cache for `options.context_len` tokens.
    pub fn new(model: Arc<Model>, options: SessionOptions) -> Result<Session> {
        let max = model.max_context();
        let context = if options.context_len == 0 {
            max
        } else {
            options.context_len
        };
        if context > max {
            return Err(RillError::InvalidArgument(format!(
                "context_len {context} exceeds the model's max_position_embeddings {max}"
            )));
        }
        if options.prefill_chunk == 0 || options.batch == 0 {
            return Err(RillError::InvalidArgument(
                "prefill_chunk and batch must be at least 1".into(),
            ));
        }
        let batch = options.batch;
        let g = *model.graph();
        let shape = CacheShape {
            layers: g.layers,
            batch,
            kv_heads: g.kv_heads,
            head_dim: g.head_dim,
            capacity: context,
        };
        let cache = KvCache::new(shape, g.cache_dtype);
        let binding = Binding::new(model.ort_session())?;
        let names = Names {
            past: (0..g.layers)
                .map(|i| {
                    [
                        cstring(&format!("past_key_values.{i}.key")),
                        cstring(&format!("past_key_values.{i}.value")),
                    ]
                })
                .collect(),
            present: (0..g.layers)
                .map(|i| {
                    [
                        cstring(&format!("present.{i}.key")),
                        cstring(&format!("present.{i}.value")),
                    ]
                })
                .collect(),
            input_ids: cstring("input_ids"),
            attention_mask: cstring("attention_mask"),
            position_ids: cstring("position_ids"),
            logits: cstring("logits"),
        };
        let chunk = options.prefill_chunk.min(context);
        Ok(Session {
            cache,
            binding,
            names,
            tokens: Vec::new(),
            generation: GenerationConfig::default(),
            ids: Vec::with_capacity(batch * chunk),
            mask: vec![1; batch * context],
            positions: Vec::with_capacity(batch * chunk),
            logits: vec![0; batch * chunk * g.vocab],
            last: vec![0.0; batch * g.vocab],
            options: SessionOptions {
                context_len: context,
                prefill_chunk: chunk,
                batch,
            },
            ort_time: Duration::ZERO,
            beams: Vec::new(),
            beam_prompt_len: 0,
            model,
        })
    }

    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Tokens whose keys and values are in the cache.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// The context length.
    pub fn context_len(&self) -> usize {
        self.options.context_len
    }

    /// Bytes held by the KV cache.
    pub fn cache_bytes(&self) -> usize {
        self.cache.allocated_bytes()
    }

    /// Sets generation settings (Hugging Face keys) over the folder's defaults; invalid
    /// values (e.g. `temperature` 0) are refused and the previous settings stay.
    pub fn set_generation_config(&mut self, config: GenerationConfig) -> Result<()> {
        let merged = self.model.generation_defaults().merged(&config);
        crate::sampling::SamplerChain::new(&merged)?;
        crate::beam::BeamConfig::from_generation(&merged, Vec::new())?;
        self.generation = config;
        Ok(())
    }

    /// Appends a custom sampler to the chain (checked now; unchanged on error).
    pub fn add_sampler(&mut self, spec: crate::config::SamplerSpec) -> Result<()> {
        let mut config = self.generation.clone();
        let mut list = self.generation_config().samplers.unwrap_or_default();
        list.push(spec);
        config.samplers = Some(list);
        self.set_generation_config(config)
    }

    /// The effective generation settings.
    pub fn generation_config(&self) -> GenerationConfig {
        self.model.generation_defaults().merged(&self.generation)
    }

    /// Forgets every token.
    pub fn reset(&mut self) {
        self.cache.clear();
        self.tokens.clear();
    }

    /// Rolls back to the first `len` tokens.
    pub fn truncate(&mut self, len: usize) {
        self.cache.truncate(len);
        self.tokens.truncate(len);
    }

    /// Evaluates `new` tokens after those in the cache (in prefill chunks) and returns the
    /// logits of the last position. For a session of batch 1.
    pub fn forward(&mut self, new: &[u32]) -> Result<&[f32]> {
        if self.options.batch != 1 {
            return Err(RillError::InvalidArgument(format!(
                "forward is for batch 1; this session has {} rows (use forward_rows)",
                self.options.batch
            )));
        }
        self.forward_rows(&[new])
    }

    /// Evaluates one equally long slice of new tokens per row (the session's batch) and
    /// returns the last position's logits of every row, `[batch * vocab]`.
    pub fn forward_rows(&mut self, rows: &[&[u32]]) -> Result<&[f32]> {
        let vocab = self.model.graph().vocab;
        let batch = self.options.batch;
        if rows.len() != batch || rows.iter().any(|r| r.len() != rows[0].len()) {
            return Err(RillError::InvalidArgument(format!(
                "forward_rows needs {batch} rows of equal length"
            )));
        }
        let len = rows[0].len();
        if len == 0 {
            return Err(RillError::EmptyPrompt);
        }
        if let Some(&id) = rows
            .iter()
            .flat_map(|r| r.iter())
            .find(|&&id| id as usize >= vocab)
        {
            return Err(RillError::TokenOutOfRange { id, vocab });
        }
        if self.cache.len() + len > self.options.context_len {
            return Err(RillError::PromptTooLong {
                tokens: self.cache.len() + len,
                context: self.options.context_len,
            });
        }
        let chunk = self.options.prefill_chunk;
        let mut n = 0;
        for start in (0..len).step_by(chunk) {
            let end = (start + chunk).min(len);
            let parts: Vec<&[u32]> = rows.iter().map(|r| &r[start..end]).collect();
            self.step(&parts)?;
            n = end - start;
        }
        let g = self.model.graph();
        for b in 0..batch {
            let row = (b * n + n - 1) * vocab;
            let dst = &mut self.last[b * vocab..(b + 1) * vocab];
            if g.logits_f16 {
                // SAFETY: the buffer holds batch * chunk * vocab u16 values in its bytes.
                let halves = unsafe {
                    std::slice::from_raw_parts(
                        self.logits.as_ptr() as *const u16,
                        self.logits.len() * 2,
                    )
                };
                for (d, bits) in dst.iter_mut().zip(&halves[row..row + vocab]) {
                    *d = half::f16::from_bits(*bits).to_f32();
                }
            } else {
                for (d, bits) in dst.iter_mut().zip(&self.logits[row..row + vocab]) {
                    *d = f32::from_bits(*bits);
                }
            }
        }
        Ok(&self.last)
    }

    /// The logits returned by the last `forward_rows`, `[batch * vocab]`.
    pub fn forward_cached(&self) -> &[f32] {
        &self.last
    }

    /// Replaces cache row `i` by row `parents[i]` (beam search).
    pub fn reorder_rows(&mut self, parents: &[usize]) -> Result<()> {
        self.cache
            .reorder(parents)
            .map_err(RillError::InvalidArgument)
    }

    /// One forward pass over at most `prefill_chunk` tokens.
    fn step(&mut self, parts: &[&[u32]]) -> Result<()> {
        let n = parts[0].len();
        let bsz = parts.len();
        let past = self.cache.len();
        let g = *self.model.graph();
        self.ids.clear();
        self.ids
            .extend(parts.iter().flat_map(|p| p.iter()).map(|&t| t as i64));
        self.positions.clear();
        for _ in 0..bsz {
            self.positions.extend((past..past + n).map(|p| p as i64));
        }
        let i64_type = ort::sys::ONNXTensorElementDataType::ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
        let cache_f16 = g.cache_dtype == crate::kv_cache::CacheDtype::F16;
        let mut values = Vec::with_capacity(4 * g.layers + 4);
        // SAFETY (all `RawValue::over` below): each value describes a live buffer owned by
        // this session, of exactly the given byte length, alive until after the run.
        unsafe {
            values.push(RawValue::over(
                self.ids.as_mut_ptr().cast(),
                bsz * n * 8,
                &[bsz, n],
                i64_type,
            )?);
            values.push(RawValue::over(
                self.mask.as_mut_ptr().cast(),
                bsz * (past + n) * 8,
                &[bsz, past + n],
                i64_type,
            )?);
            values.push(RawValue::over(
                self.positions.as_mut_ptr().cast(),
                bsz * n * 8,
                &[bsz, n],
                i64_type,
            )?);
            let logits_bytes = bsz * n * g.vocab * if g.logits_f16 { 2 } else { 4 };
            values.push(RawValue::over(
                self.logits.as_mut_ptr().cast(),
                logits_bytes,
                &[bsz, n, g.vocab],
                element_type(g.logits_f16),
            )?);
            for layer in 0..g.layers {
                for kind in [Kind::Key, Kind::Value] {
                    let p = self.cache.past(layer, kind);
                    values.push(RawValue::over(
                        p.ptr.cast(),
                        p.bytes,
                        &p.shape,
                        element_type(cache_f16),
                    )?);
                    let q = self.cache.present(layer, kind, n);
                    values.push(RawValue::over(
                        q.ptr.cast(),
                        q.bytes,
                        &q.shape,
                        element_type(cache_f16),
                    )?);
                }
            }
        }
        let b = &mut self.binding;
        b.clear();
        b.input(&self.names.input_ids, &values[0])?;
        b.input(&self.names.attention_mask, &values[1])?;
        if g.has_position_ids {
            b.input(&self.names.position_ids, &values[2])?;
        }
        b.output(&self.names.logits, &values[3])?;
        for layer in 0..g.layers {
            for k in 0..2 {
                b.input(&self.names.past[layer][k], &values[4 + layer * 4 + k * 2])?;
                b.output(
                    &self.names.present[layer][k],
                    &values[5 + layer * 4 + k * 2],
                )?;
            }
        }
        let start = Instant::now();
        let run = b.run(self.model.ort_session());
        self.ort_time += start.elapsed();
        b.clear();
        drop(values);
        run?;
        self.cache.commit(n);
        self.tokens.extend_from_slice(parts[0]);
        Ok(())
    }

    /// Tokenizes `prompt` and generates from it as the generation config says, calling `on_piece` with each
    /// piece of text as it forms (always whole UTF-8 characters); `on_piece` returns
    /// `false` to stop. The session starts from an empty cache.
    pub fn generate(
        &mut self,
        prompt: &str,
        on_piece: impl FnMut(&str) -> bool,
    ) -> Result<Generation> {
        let ids = self.model.tokenize(prompt)?;
        self.generate_ids(&ids, on_piece)
    }

    /// As [`Session::generate`], from token ids.
    pub fn generate_ids(
        &mut self,
        prompt: &[u32],
        mut on_piece: impl FnMut(&str) -> bool,
    ) -> Result<Generation> {
        if prompt.is_empty() {
            return Err(RillError::EmptyPrompt);
        }
        let context = self.options.context_len;
        if prompt.len() + 1 > context {
            return Err(RillError::PromptTooLong {
                tokens: prompt.len(),
                context,
            });
        }
        let settings = self.generation_config();
        let eos = self.model.eos_ids(&settings);
        let mut settings = settings;
        settings.pad_token_id = settings.pad_token_id.or(self.model.config().pad_token_id);
        if let Some(spec) = settings.search_strategy.clone() {
            if let Some(path) = &spec.plugin {
                crate::plugin::load_once(std::path::Path::new(path))?;
            }
            let params = spec
                .params
                .clone()
                .unwrap_or_else(|| serde_json::json!({}))
                .to_string();
            let max_new = settings.max_new_tokens.unwrap_or(256);
            let run = |model: &Arc<Model>| {
                crate::beam::run_strategy(model, prompt, &spec.name, &params, max_new)
            };
            return self.finish_search(prompt, run, &eos, on_piece);
        }
        if let Some(beam) = crate::beam::BeamConfig::from_generation(&settings, eos.clone())? {
            return self.generate_beams(prompt, &beam, on_piece);
        }
        let mut chain = crate::sampling::SamplerChain::new(&settings)?;
        let max_new = settings.max_new_tokens.unwrap_or(256);
        let eos = self.model.eos_ids(&settings);
        self.reset();
        self.beams.clear();
        self.ort_time = Duration::ZERO;
        let model = Arc::clone(&self.model);
        let mut stream = TextStream::new(model.tokenizer());
        let mut timings = Timings::default();
        let started = Instant::now();
        self.forward(prompt)?;
        let mut next = chain.pick(&self.last, &self.tokens, prompt.len())?;
        timings.prefill = started.elapsed();
        let decode_start = Instant::now();
        let (mut out, mut text) = (Vec::new(), String::new());
        let stop = loop {
            if eos.contains(&next) {
                break StopReason::Eos;
            }
            out.push(next);
            if let Some(piece) = stream.push(next) {
                text.push_str(&piece);
                if !on_piece(&piece) {
                    break StopReason::Callback;
                }
            }
            if out.len() >= max_new {
                break StopReason::MaxTokens;
            }
            if self.tokens.len() + 1 > context {
                break StopReason::ContextFull;
            }
            self.forward(&[next])?;
            next = chain.pick(&self.last, &self.tokens, prompt.len())?;
            timings.decode_steps += 1;
        };
        if stop != StopReason::Callback {
            if let Some(rest) = stream.finish() {
                text.push_str(&rest);
                on_piece(&rest);
            }
        }
        timings.decode = decode_start.elapsed();
        timings.ort_run = self.ort_time;
        Ok(Generation {
            tokens: out,
            text,
            prompt_tokens: prompt.len(),
            stop,
            timings,
        })
    }

    /// The hypotheses of the last beam search, best first (empty after a non-beam run).
    pub fn beam_results(&self) -> &[crate::beam::Hypothesis] {
        &self.beams
    }

    /// Text (generated part, final EOS dropped) and score of beam hypothesis `index`.
    pub fn beam_text(&self, index: usize) -> Result<(String, f32)> {
        let h = self.beams.get(index).ok_or_else(|| {
            RillError::InvalidArgument(format!(
                "beam index {index} out of range ({} hypotheses)",
                self.beams.len()
            ))
        })?;
        let eos = self.model.eos_ids(&self.generation_config());
        let mut tokens = &h.tokens[self.beam_prompt_len.min(h.tokens.len())..];
        if tokens.last().is_some_and(|t| eos.contains(t)) {
            tokens = &tokens[..tokens.len() - 1];
        }
        Ok((self.model.detokenize(tokens)?, h.score))
    }

    fn generate_beams(
        &mut self,
        prompt: &[u32],
        cfg: &crate::beam::BeamConfig,
        on_piece: impl FnMut(&str) -> bool,
    ) -> Result<Generation> {
        let run = |model: &Arc<Model>| crate::beam::search(model, prompt, cfg);
        self.finish_search(prompt, run, &cfg.eos, on_piece)
    }

    /// Runs a search strategy, keeps its hypotheses and reports the best one.
    fn finish_search(
        &mut self,
        prompt: &[u32],
        run: impl FnOnce(&Arc<Model>) -> Result<Vec<crate::beam::Hypothesis>>,
        eos: &[u32],
        mut on_piece: impl FnMut(&str) -> bool,
    ) -> Result<Generation> {
        let started = Instant::now();
        self.beams = run(&self.model)?;
        self.beam_prompt_len = prompt.len();
        let Some(best) = self.beams.first() else {
            return Err(RillError::Plugin(
                "the search strategy returned no hypothesis".into(),
            ));
        };
        let mut tokens = best.tokens.get(prompt.len()..).unwrap_or_default().to_vec();
        let stop = if tokens.last().is_some_and(|t| eos.contains(t)) {
            tokens.pop();
            StopReason::Eos
        } else {
            StopReason::MaxTokens
        };
        let text = self.model.detokenize(&tokens)?;
        if !text.is_empty() {
            on_piece(&text);
        }
        let timings = Timings {
            decode: started.elapsed(),
            ..Default::default()
        };
        Ok(Generation {
            tokens,
            text,
            prompt_tokens: prompt.len(),
            stop,
            timings,
        })
    }
}

/// Index of the largest logit (the first of ties), as greedy decoding and
/// `torch.argmax` pick it.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}
