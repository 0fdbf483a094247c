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
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            context_len: 0,
            prefill_chunk: 128,
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
        if options.prefill_chunk == 0 {
            return Err(RillError::InvalidArgument(
                "prefill_chunk must be at least 1".into(),
            ));
        }
        let g = model.graph().clone();
        let shape = CacheShape {
            layers: g.layers,
            batch: 1,
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
            ids: Vec::with_capacity(chunk),
            mask: vec![1; context],
            positions: Vec::with_capacity(chunk),
            logits: vec![0; chunk * g.vocab],
            last: vec![0.0; g.vocab],
            options: SessionOptions {
                context_len: context,
                prefill_chunk: chunk,
            },
            ort_time: Duration::ZERO,
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
        crate::sampling::SamplerChain::new(&self.model.generation_defaults().merged(&config))?;
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
    /// logits of the last position.
    pub fn forward(&mut self, new: &[u32]) -> Result<&[f32]> {
        let vocab = self.model.graph().vocab;
        if new.is_empty() {
            return Err(RillError::EmptyPrompt);
        }
        if let Some(&id) = new.iter().find(|&&id| id as usize >= vocab) {
            return Err(RillError::TokenOutOfRange { id, vocab });
        }
        if self.tokens.len() + new.len() > self.options.context_len {
            return Err(RillError::PromptTooLong {
                tokens: self.tokens.len() + new.len(),
                context: self.options.context_len,
            });
        }
        let chunk = self.options.prefill_chunk;
        let mut n = 0;
        for part in new.chunks(chunk) {
            self.step(part)?;
            n = part.len();
        }
        let g = self.model.graph();
        let row = (n - 1) * vocab;
        if g.logits_f16 {
            // SAFETY: the buffer holds chunk * vocab u16 values in its first half bytes.
            let halves = unsafe {
                std::slice::from_raw_parts(
                    self.logits.as_ptr() as *const u16,
                    self.logits.len() * 2,
                )
            };
            for (dst, bits) in self.last.iter_mut().zip(&halves[row..row + vocab]) {
                *dst = half::f16::from_bits(*bits).to_f32();
            }
        } else {
            for (dst, bits) in self.last.iter_mut().zip(&self.logits[row..row + vocab]) {
                *dst = f32::from_bits(*bits);
            }
        }
        Ok(&self.last)
    }

    /// One forward pass over at most `prefill_chunk` tokens.
    fn step(&mut self, part: &[u32]) -> Result<()> {
        let n = part.len();
        let past = self.cache.len();
        let g = self.model.graph().clone();
        self.ids.clear();
        self.ids.extend(part.iter().map(|&t| t as i64));
        self.positions.clear();
        self.positions.extend((past..past + n).map(|p| p as i64));
        let i64_type = ort::sys::ONNXTensorElementDataType::ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
        let cache_f16 = g.cache_dtype == crate::kv_cache::CacheDtype::F16;
        let mut values = Vec::with_capacity(4 * g.layers + 4);
        // SAFETY (all `RawValue::over` below): each value describes a live buffer owned by
        // this session, of exactly the given byte length, alive until after the run.
        unsafe {
            values.push(RawValue::over(
                self.ids.as_mut_ptr().cast(),
                n * 8,
                &[1, n],
                i64_type,
            )?);
            values.push(RawValue::over(
                self.mask.as_mut_ptr().cast(),
                (past + n) * 8,
                &[1, past + n],
                i64_type,
            )?);
            values.push(RawValue::over(
                self.positions.as_mut_ptr().cast(),
                n * 8,
                &[1, n],
                i64_type,
            )?);
            let logits_bytes = n * g.vocab * if g.logits_f16 { 2 } else { 4 };
            values.push(RawValue::over(
                self.logits.as_mut_ptr().cast(),
                logits_bytes,
                &[1, n, g.vocab],
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
        self.tokens.extend_from_slice(part);
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
        let mut chain = crate::sampling::SamplerChain::new(&settings)?;
        let max_new = settings.max_new_tokens.unwrap_or(256);
        let eos = self.model.eos_ids(&settings);
        self.reset();
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
