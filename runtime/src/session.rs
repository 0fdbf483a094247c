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
use crate::ort_value::{cstring, element_type, Binding, Direction, Tensor};
use crate::stop::{CancelToken, Matched, StopStrings};
use crate::stream::TextStream;

/// What a session does when a conversation outgrows its context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContextPolicy {
    /// A prompt that does not fit is [`RillError::PromptTooLong`]; generation that fills
    /// the context stops with [`StopReason::ContextFull`]. The default.
    #[default]
    Error,
    /// Keep the first `pinned` tokens (e.g. the system prompt) and drop the oldest tokens
    /// after them: a quarter of the unpinned window at a time (at least what is needed),
    /// then re-evaluate the survivors so their positions are encoded afresh. The result is
    /// exactly that of a new session given the surviving tokens.
    SlidingWindow {
        /// Tokens at the start that are never dropped.
        pinned: usize,
    },
}

/// Options for [`Session::new`].
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Context length in tokens (prompt + generated); 0 means the model's
    /// `max_position_embeddings`.
    pub context_len: usize,
    /// Prompt tokens per forward pass during prefill. A graph that takes
    /// `logits_to_keep` (rill's exports) computes a chunk's last position's logits only,
    /// into the session's own `batch × vocab`; other graphs return every position's, and
    /// while such a chunk runs (or when every position is needed: prompt lookup,
    /// scoring) a session borrows a buffer of `batch × prefill_chunk × vocab` logits from
    /// its model (the model keeps one such buffer, the largest, between prompts).
    pub prefill_chunk: usize,
    /// Rows evaluated together (beam hypotheses); 1 for a plain conversation.
    pub batch: usize,
    /// What happens when the context fills.
    pub context_policy: ContextPolicy,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            context_len: 0,
            prefill_chunk: 128,
            batch: 1,
            context_policy: ContextPolicy::Error,
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
    /// A stop string appeared (it is not part of the text).
    StopString,
    /// [`CancelToken::cancel`] was called.
    Cancelled,
}

impl StopReason {
    /// A short lowercase name (`eos`, `max_tokens`, `context_full`, `callback`,
    /// `stop_string`, `cancelled`).
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Eos => "eos",
            StopReason::MaxTokens => "max_tokens",
            StopReason::ContextFull => "context_full",
            StopReason::Callback => "callback",
            StopReason::StopString => "stop_string",
            StopReason::Cancelled => "cancelled",
        }
    }
}

/// Time spent, for `--stats` and benchmarks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// Prompt evaluation.
    pub prefill: Duration,
    /// Generation after the prompt.
    pub decode: Duration,
    /// Inside ONNX Runtime's Run, prefill and decode together (this model's passes).
    pub ort_run: Duration,
    /// Inside ONNX Runtime's Run for the assistant model's passes (assisted generation).
    pub assistant_ort_run: Duration,
    /// In the sampler chain (choosing each token), prefill and decode together.
    pub sampling: Duration,
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
    /// Prompt tokens whose keys and values were already in the cache (prefix reuse).
    pub reused_tokens: usize,
    /// Prompt tokens run through the model (`prompt_tokens - reused_tokens`, unless a
    /// sliding window dropped some).
    pub evaluated_tokens: usize,
    /// Why it stopped.
    pub stop: StopReason,
    /// Where the time went.
    pub timings: Timings,
    /// With `output_logprobs`: each token's natural-log probability under the model
    /// (the softmax of its raw logits, before any processor), one per `tokens`; else
    /// empty (and after beam search, whose hypotheses carry scores).
    pub logprobs: Vec<f32>,
}

struct Names {
    past: Vec<[std::ffi::CString; 2]>,
    present: Vec<[std::ffi::CString; 2]>,
    input_ids: std::ffi::CString,
    attention_mask: std::ffi::CString,
    position_ids: std::ffi::CString,
    logits: std::ffi::CString,
    logits_to_keep: std::ffi::CString,
}

/// Which positions of a forward pass need logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Logits {
    /// The last of each row (a prompt chunk, a decode step).
    Last,
    /// Every position (prompt lookup's check, scoring).
    Every,
}

/// One conversation with its own KV cache.
pub struct Session {
    // Drop order: the binding refers to the model's ONNX Runtime session, so `model` is
    // the last field.
    pub(crate) cache: KvCache,
    binding: Binding,
    names: Names,
    pub(crate) tokens: Vec<u32>,
    pub(crate) options: SessionOptions,
    pub(crate) generation: GenerationConfig,
    ids: Vec<i64>,
    mask: Vec<i64>,
    positions: Vec<i64>,
    /// The graph's `logits_to_keep` (one value), where it has the input.
    keep: Vec<i64>,
    /// The logits of a decode step: `batch * vocab` f32 or f16 values in u32 words (u32
    /// storage keeps either aligned).
    logits: Vec<u32>,
    /// Borrowed from the model's pool while a chunk of more positions than `logits`
    /// holds is evaluated and read.
    chunk_logits: Option<Vec<u32>>,
    last: Vec<f32>,
    ort_time: Duration,
    beams: Vec<crate::beam::Hypothesis>,
    beam_prompt_len: usize,
    /// The stop strings the last beam search ran with, and the prompt's text they may
    /// begin in.
    beam_stops: (String, Vec<String>),
    /// Tokens of the history after the cached ones, not evaluated yet: the last generated
    /// token, or a beam search's chosen hypothesis (evaluated when the conversation goes on).
    pub(crate) pending: Vec<u32>,
    cancel: CancelToken,
    /// Assisted generation's proposing model, with its own session.
    assistant: Option<Box<crate::assistant::Assistant>>,
    pub(crate) model: Arc<Model>,
}

/// Tokens a session's KV cache has room for when it is made (at most its context); it
/// doubles when a step needs more.
const INITIAL_CACHE_TOKENS: usize = 512;

impl Session {
    /// A session over `model` with a cache for `options.context_len` tokens (allocated
    /// as they come).
    pub fn new(model: Arc<Model>, options: SessionOptions) -> Result<Session> {
        let max = model.max_context();
        let context = if options.context_len == 0 {
            max
        } else {
            options.context_len
        };
        if context > max {
            return Err(RillError::InvalidArgument(format!(
                "context_len {context} exceeds the {max} positions the model runs ({})",
                match model.rotary_limit() {
                    Some(rows) => format!(
                        "the rotary tables of {}, exported for {rows}; export it again from a folder allowing more",
                        model.graph_file().display()
                    ),
                    _ => "config.json's max_position_embeddings".to_string(),
                }
            )));
        }
        if options.prefill_chunk == 0 || options.batch == 0 {
            return Err(RillError::InvalidArgument(
                "prefill_chunk and batch must be at least 1".into(),
            ));
        }
        if let ContextPolicy::SlidingWindow { pinned } = options.context_policy {
            if pinned + 2 > context {
                return Err(RillError::InvalidArgument(format!(
                    "a sliding window pinning {pinned} tokens needs a context of at least {}, not {context}",
                    pinned + 2
                )));
            }
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
        // Room for a first prompt; the cache grows as tokens come, up to the context.
        let cache = KvCache::growing(
            shape,
            INITIAL_CACHE_TOKENS,
            g.cache_dtype,
            g.cache_layout,
            model.cache_memory(),
        )?;
        let binding = Binding::new(
            model.ort_session(),
            model.provider() != crate::Provider::Cpu,
        )?;
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
            logits_to_keep: cstring("logits_to_keep"),
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
            keep: vec![0],
            logits: vec![0; (batch * g.vocab * logit_bytes(&g)).div_ceil(4)],
            chunk_logits: None,
            last: vec![0.0; batch * g.vocab],
            options: SessionOptions {
                context_len: context,
                prefill_chunk: chunk,
                batch,
                context_policy: options.context_policy,
            },
            ort_time: Duration::ZERO,
            beams: Vec::new(),
            beam_prompt_len: 0,
            beam_stops: Default::default(),
            pending: Vec::new(),
            cancel: CancelToken::default(),
            assistant: None,
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

    /// The conversation so far: the cached tokens, then those not evaluated yet (the last
    /// generated token: generation stops before running the model on it; after a beam
    /// search, the chosen hypothesis). End-of-sequence tokens are not kept.
    pub fn history(&self) -> Vec<u32> {
        [&self.tokens[..], &self.pending[..]].concat()
    }

    /// A token that cancels this session's generation in progress from any thread.
    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }

    /// The session's options (with the context length resolved).
    pub fn options(&self) -> &SessionOptions {
        &self.options
    }

    /// The context length.
    pub fn context_len(&self) -> usize {
        self.options.context_len
    }

    /// Bytes held by the KV cache (it grows with the tokens held, up to the context).
    pub fn cache_bytes(&self) -> usize {
        self.cache.allocated_bytes()
    }

    /// Sets generation settings (Hugging Face keys) over the folder's defaults; invalid
    /// values (e.g. `temperature` 0) are refused and the previous settings stay.
    pub fn set_generation_config(&mut self, config: GenerationConfig) -> Result<()> {
        let merged = self.model.generation_defaults().merged(&config);
        crate::sampling::SamplerChain::new(&merged)?;
        crate::beam::BeamConfig::from_generation(&merged, Vec::new())?;
        crate::assistant::Schedule::of(&merged)?;
        self.generation = config;
        Ok(())
    }

    /// Sets (or, with `None`, removes) the assistant of assisted generation (speculative
    /// decoding): a smaller model with the same tokenizer that proposes the next tokens
    /// greedily for this session's model to check in one pass each time. Greedy and
    /// sampled generation give the same output with it as without (sampled: with the
    /// same seed); beam search and prompt lookup decoding refuse it. An error, changing
    /// nothing, when `assistant` has another vocabulary or end tokens.
    pub fn set_assistant(&mut self, assistant: Option<Arc<Model>>) -> Result<()> {
        self.assistant = match assistant {
            Some(m) => Some(Box::new(crate::assistant::Assistant::new(m, &self.model)?)),
            None => None,
        };
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
        self.pending.clear();
    }

    /// Rolls back to the first `len` tokens of the [`history`](Self::history)
    /// (regenerate, edit the last turn). Works after beam search, whose best hypothesis
    /// the session holds. An error, changing nothing, when `len` exceeds the history.
    pub fn truncate(&mut self, len: usize) -> Result<()> {
        let history = self.tokens.len() + self.pending.len();
        if len > history {
            return Err(RillError::InvalidArgument(format!(
                "cannot truncate to {len} tokens: the session holds {history}"
            )));
        }
        if len <= self.tokens.len() {
            self.cache.truncate(len)?;
            self.pending.clear();
            self.tokens.truncate(len);
        } else {
            self.pending.truncate(len - self.tokens.len());
        }
        Ok(())
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
        let len = self.check_rows(rows)?;
        // Room for all of them at once, rather than doubling chunk after chunk.
        self.cache.reserve(self.cache.len() + len)?;
        self.pending.clear();
        let chunk = self.options.prefill_chunk;
        let mut n = 0;
        for start in (0..len).step_by(chunk) {
            let end = (start + chunk).min(len);
            let parts: Vec<&[u32]> = rows.iter().map(|r| &r[start..end]).collect();
            n = self.step(&parts, Logits::Last)?;
        }
        let mut last = std::mem::take(&mut self.last);
        for (b, dst) in last.chunks_exact_mut(vocab).enumerate() {
            self.logits_row(b * n + n - 1, dst);
        }
        self.last = last;
        self.release_chunk_logits();
        self.check_finite()?;
        Ok(&self.last)
    }

    /// Evaluates `tokens` after the cached ones in one pass (batch 1, at most one prompt
    /// chunk) and returns the logits after each of them, row after row.
    fn forward_each(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let vocab = self.model.graph().vocab;
        self.check_rows(&[tokens])?;
        self.pending.clear();
        self.step(&[tokens], Logits::Every)?;
        let mut rows = vec![0f32; tokens.len() * vocab];
        for (j, row) in rows.chunks_exact_mut(vocab).enumerate() {
            self.logits_row(j, row);
        }
        self.release_chunk_logits();
        if rows.iter().fold(false, |nan, v| nan | v.is_nan()) {
            return Err(self.nan_error());
        }
        Ok(rows)
    }

    /// Prompt lookup decoding's check: evaluates `next` and `draft` in one pass and
    /// returns how many drafted tokens the chain picks in turn, the token it picks after
    /// them, and the pass's logits (row after row). The cache then holds `next` and the
    /// confirmed tokens, and `last` the logits after them; on an error it holds `next`.
    fn check_draft(
        &mut self,
        chain: &mut crate::sampling::SamplerChain,
        next: u32,
        draft: &[u32],
        prompt_len: usize,
    ) -> Result<(usize, u32, Vec<f32>)> {
        let base = self.tokens.len();
        let seq: Vec<u32> = [next].into_iter().chain(draft.iter().copied()).collect();
        let checked = self.forward_each(&seq).and_then(|rows| {
            let vocab = rows.len() / seq.len();
            let mut accepted = 0;
            loop {
                let logits = &rows[accepted * vocab..(accepted + 1) * vocab];
                let context = &self.tokens[..base + accepted + 1];
                let pick = chain.pick(logits, context, prompt_len)?;
                if draft.get(accepted) != Some(&pick) {
                    return Ok((accepted, pick, rows));
                }
                accepted += 1;
            }
        });
        let keep = match &checked {
            Ok((accepted, _, _)) => base + 1 + accepted,
            Err(_) => base + 1,
        };
        if self.tokens.len() > keep {
            self.truncate(keep)?;
        }
        if let Ok((accepted, _, rows)) = &checked {
            let vocab = self.last.len();
            self.last
                .copy_from_slice(&rows[accepted * vocab..(accepted + 1) * vocab]);
        }
        checked
    }

    /// Evaluates `ids` after the cached tokens (batch 1) and returns, for every position
    /// but the last, the natural-log probability the model gives the token that follows
    /// it: `ids.len() - 1` values (perplexity, scoring). Afterwards the session holds
    /// `ids` as it would after [`Session::forward`].
    pub fn token_logprobs(&mut self, ids: &[u32]) -> Result<Vec<f32>> {
        if self.options.batch != 1 {
            return Err(RillError::InvalidArgument(format!(
                "token_logprobs is for batch 1; this session has {} rows",
                self.options.batch
            )));
        }
        let len = self.check_rows(&[ids])?;
        self.cache.reserve(self.cache.len() + len)?;
        self.pending.clear();
        let chunk = self.options.prefill_chunk;
        let mut out = Vec::with_capacity(len - 1);
        let mut last = std::mem::take(&mut self.last);
        for start in (0..len).step_by(chunk) {
            let end = (start + chunk).min(len);
            self.step(&[&ids[start..end]], Logits::Every)?;
            for j in 0..end - start {
                self.logits_row(j, &mut last);
                if let Some(&next) = ids.get(start + j + 1) {
                    out.push(log_softmax_at(&last, next as usize));
                }
            }
        }
        self.last = last;
        self.release_chunk_logits();
        self.check_finite()?;
        Ok(out)
    }

    /// Checks one slice of new tokens per row: the session's batch of equally long,
    /// non-empty rows of in-vocabulary ids that fit the context. Returns their length.
    fn check_rows(&self, rows: &[&[u32]]) -> Result<usize> {
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
        Ok(len)
    }

    /// Copies row `index` (`[batch * n]` positions of the last step) of the logits buffer
    /// into `dst` as f32.
    fn logits_row(&self, index: usize, dst: &mut [f32]) {
        let vocab = dst.len();
        let row = index * vocab;
        let logits = self.chunk_logits.as_deref().unwrap_or(&self.logits);
        if self.model.graph().logits_f16 {
            // SAFETY: the buffer's bytes hold twice as many u16 values as it has u32s.
            let halves = unsafe {
                std::slice::from_raw_parts(logits.as_ptr() as *const u16, logits.len() * 2)
            };
            for (d, bits) in dst.iter_mut().zip(&halves[row..row + vocab]) {
                *d = half::f16::from_bits(*bits).to_f32();
            }
        } else {
            for (d, bits) in dst.iter_mut().zip(&logits[row..row + vocab]) {
                *d = f32::from_bits(*bits);
            }
        }
    }

    /// A buffer of `len` u32 words for logits: the session's own when it is long enough
    /// (a decode step), else one borrowed from the model's pool (a prompt chunk).
    fn logits_buffer(&mut self, len: usize) -> *mut u32 {
        self.release_chunk_logits();
        if len <= self.logits.len() {
            self.logits.as_mut_ptr()
        } else {
            let borrowed = self.model.logits_pool().take(len);
            self.chunk_logits.insert(borrowed).as_mut_ptr()
        }
    }

    /// Gives a borrowed chunk buffer back to the model's pool.
    fn release_chunk_logits(&mut self) {
        if let Some(borrowed) = self.chunk_logits.take() {
            self.model.logits_pool().give(borrowed);
        }
    }

    /// NaN logits mean broken weights: an error naming them, not a token.
    fn check_finite(&self) -> Result<()> {
        if self.last.iter().fold(false, |nan, v| nan | v.is_nan()) {
            return Err(self.nan_error());
        }
        Ok(())
    }

    /// The error for NaN logits.
    fn nan_error(&self) -> RillError {
        RillError::Weights {
            path: self.model.dir().join("model.safetensors"),
            message: "the model produced NaN logits: its weights hold NaN or infinite values"
                .into(),
        }
    }

    /// Fills every row of this session with the state of `single`, a session of batch 1:
    /// its cache, tokens and last logits (a beam search evaluates its prompt once and
    /// starts all beams from it).
    pub(crate) fn broadcast_from(&mut self, single: &Session) -> Result<()> {
        let rows = self.options.batch;
        let g = *self.model.graph();
        if single.options.batch != 1 || single.cache.dtype() != self.cache.dtype() {
            return Err(RillError::InvalidArgument(
                "broadcast_from needs a batch-1 session of the same model".into(),
            ));
        }
        let repeated: Vec<[Vec<u8>; 2]> = (0..g.layers)
            .map(|l| -> Result<[Vec<u8>; 2]> {
                Ok([
                    single.cache.read(l, Kind::Key)?.repeat(rows),
                    single.cache.read(l, Kind::Value)?.repeat(rows),
                ])
            })
            .collect::<Result<_>>()?;
        let refs: Vec<[&[u8]; 2]> = repeated
            .iter()
            .map(|[k, v]| [k.as_slice(), v.as_slice()])
            .collect();
        self.reset();
        self.cache.append(single.cache.len(), &refs)?;
        self.tokens = single.tokens.clone();
        for row in self.last.chunks_exact_mut(g.vocab) {
            row.copy_from_slice(&single.last[..g.vocab]);
        }
        Ok(())
    }

    /// The logits returned by the last `forward_rows`, `[batch * vocab]`.
    pub fn forward_cached(&self) -> &[f32] {
        &self.last
    }

    /// Time spent inside ONNX Runtime's Run since this session was created or its last
    /// generation started.
    pub fn ort_time(&self) -> Duration {
        self.ort_time
    }

    /// Replaces cache row `i` by row `parents[i]` (beam search).
    pub fn reorder_rows(&mut self, parents: &[usize]) -> Result<()> {
        self.cache.reorder(parents)
    }

    /// As [`Session::reorder_rows`], copying row `parents[i]` into row `i` only from
    /// position `keep[i]` on, where the caller knows the two rows' caches already agree
    /// before it (the same tokens at the same positions of the same prompt).
    pub fn reorder_rows_keeping(&mut self, parents: &[usize], keep: &[usize]) -> Result<()> {
        self.cache.reorder_keeping(parents, keep)
    }

    /// One forward pass over at most `prefill_chunk` tokens. Returns how many positions
    /// of each row have logits in the buffer: the last one only when `logits` says so
    /// and the graph takes `logits_to_keep` (which then skips the LM head of the others).
    fn step(&mut self, parts: &[&[u32]], logits: Logits) -> Result<usize> {
        let n = parts[0].len();
        let bsz = parts.len();
        let past = self.cache.len();
        self.cache.reserve(past + n)?;
        let g = *self.model.graph();
        let kept = match logits {
            Logits::Last if g.logits_to_keep => 1,
            _ => n,
        };
        // 0 keeps every position.
        self.keep[0] = if kept < n { kept as i64 } else { 0 };
        self.ids.clear();
        self.ids
            .extend(parts.iter().flat_map(|p| p.iter()).map(|&t| t as i64));
        self.positions.clear();
        for _ in 0..bsz {
            self.positions.extend((past..past + n).map(|p| p as i64));
        }
        let i64_type = ort::sys::ONNXTensorElementDataType::ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
        let cache_type = element_type(g.cache_dtype == crate::kv_cache::CacheDtype::F16);
        let cache_info = self.cache.memory().memory_info();
        let logits_bytes = bsz * kept * g.vocab * logit_bytes(&g);
        let logits = self.logits_buffer(logits_bytes.div_ceil(4));
        let b = &mut self.binding;
        let names = &self.names;
        // SAFETY (every `bind` below): each slot describes a buffer owned by this session
        // (ids, mask, positions, logits, the cache), of exactly the given byte length, that
        // lives as long as the session and is only read or written by ONNX Runtime during
        // a run; a buffer that moves or changes shape is bound again before the next run.
        unsafe {
            use Direction::{Input, Output};
            let host = |data: *mut i64, shape: &[usize]| {
                let len = shape.iter().product::<usize>() * 8;
                Tensor::new(None, data.cast(), len, shape, i64_type)
            };
            let ids = host(self.ids.as_mut_ptr(), &[bsz, n]);
            b.bind(0, Input, &names.input_ids, ids)?;
            let mask = host(self.mask.as_mut_ptr(), &[bsz, past + n]);
            b.bind(1, Input, &names.attention_mask, mask)?;
            if g.has_position_ids {
                let positions = host(self.positions.as_mut_ptr(), &[bsz, n]);
                b.bind(2, Input, &names.position_ids, positions)?;
            }
            let logits_type = element_type(g.logits_f16);
            let logits = Tensor::new(
                None,
                logits.cast(),
                logits_bytes,
                &[bsz, kept, g.vocab],
                logits_type,
            );
            b.bind(3, Output, &names.logits, logits)?;
            if g.logits_to_keep {
                let keep = host(self.keep.as_mut_ptr(), &[]);
                b.bind(4 + 4 * g.layers, Input, &names.logits_to_keep, keep)?;
            }
            for layer in 0..g.layers {
                for kind in [Kind::Key, Kind::Value] {
                    let slot = 4 + layer * 4 + kind as usize * 2;
                    let cache = |v: crate::kv_cache::TensorView| {
                        Tensor::new(cache_info, v.ptr.cast(), v.bytes, &v.shape, cache_type)
                    };
                    let past_view = cache(self.cache.past(layer, kind));
                    b.bind(slot, Input, &names.past[layer][kind as usize], past_view)?;
                    let present_view = cache(self.cache.present(layer, kind, n));
                    b.bind(
                        slot + 1,
                        Output,
                        &names.present[layer][kind as usize],
                        present_view,
                    )?;
                }
            }
        }
        let start = Instant::now();
        let run = b.run(self.model.ort_session());
        if run.is_err() {
            // Kernels of a failed run may still be writing the cache on the device.
            if let crate::cache_memory::CacheMemory::Cuda(c) = self.cache.memory() {
                let _ = c.synchronize_device();
            }
            b.reset();
        }
        self.ort_time += start.elapsed();
        run?;
        self.cache.commit(n);
        self.tokens.extend_from_slice(parts[0]);
        Ok(kept)
    }

    /// Tokenizes `prompt` (adding the tokenizer's BOS) and generates from it as the
    /// generation config says, calling `on_piece` with each piece of text as it forms
    /// (always whole UTF-8 characters); `on_piece` returns `false` to stop. See
    /// [`Session::generate_ids`] for how the cache is reused.
    pub fn generate(
        &mut self,
        prompt: &str,
        on_piece: impl FnMut(&str) -> bool,
    ) -> Result<Generation> {
        let ids = self.model.tokenize(prompt)?;
        self.generate_ids(&ids, on_piece)
    }

    /// Adds `text` (no BOS: a new turn of the conversation) after the
    /// [`history`](Self::history) and generates from there, evaluating only the new tokens.
    pub fn append(&mut self, text: &str, on_piece: impl FnMut(&str) -> bool) -> Result<Generation> {
        let new = self.model.encode(text, false)?;
        self.append_ids(&new, on_piece)
    }

    /// As [`Session::append`], from token ids.
    pub fn append_ids(
        &mut self,
        new: &[u32],
        on_piece: impl FnMut(&str) -> bool,
    ) -> Result<Generation> {
        let mut all = self.history();
        all.extend_from_slice(new);
        self.generate_ids(&all, on_piece)
    }

    /// Renders `messages` with the model's chat template (ending with the assistant's
    /// turn) and generates the reply. Sending the whole conversation each turn costs only
    /// the new tokens: the cached prefix is reused.
    pub fn chat(
        &mut self,
        messages: &[crate::chat::ChatMessage],
        on_piece: impl FnMut(&str) -> bool,
    ) -> Result<Generation> {
        self.chat_request(&messages.into(), on_piece)
    }

    /// As [`Session::chat`], for a request with tools, documents or other template
    /// variables.
    pub fn chat_request(
        &mut self,
        request: &crate::chat::ChatRequest,
        on_piece: impl FnMut(&str) -> bool,
    ) -> Result<Generation> {
        let text = self
            .model
            .apply_chat_request(request, !request.continue_final_message)?;
        let ids = self.model.encode(&text, false)?;
        self.generate_ids(&ids, on_piece)
    }

    /// As [`Session::generate`], from token ids. `prompt` is the whole conversation: the
    /// longest prefix it shares with the cached tokens is reused and only the rest is
    /// evaluated (at least its last token, whose logits start the generation). Afterwards
    /// the session holds the prompt and the generated tokens (see
    /// [`history`](Self::history)), ready for the next turn, a rollback or a save.
    pub fn generate_ids(
        &mut self,
        prompt: &[u32],
        mut on_piece: impl FnMut(&str) -> bool,
    ) -> Result<Generation> {
        if prompt.is_empty() {
            return Err(RillError::EmptyPrompt);
        }
        let vocab = self.model.graph().vocab;
        if let Some(&id) = prompt.iter().find(|&&id| id as usize >= vocab) {
            return Err(RillError::TokenOutOfRange { id, vocab });
        }
        self.cancel.reset();
        let settings = self.generation_config();
        let eos = self.model.eos_ids(&settings);
        let mut settings = settings;
        settings.pad_token_id = settings.pad_token_id.or(self.model.config().pad_token_id);
        if settings.eos_token_id.is_none() && !eos.is_empty() {
            // config.json's end-of-sequence ids, for the samplers that need them
            // (min_new_tokens, bad_words_ids), as transformers fills them in.
            settings.eos_token_id = Some(crate::config::OneOrMany::Many(eos.clone()));
        }
        let lookup = settings.prompt_lookup_num_tokens.unwrap_or(0);
        let searching = settings.search_strategy.is_some() || settings.num_beams.unwrap_or(1) > 1;
        if self.assistant.is_some() && (searching || lookup > 0) {
            return Err(RillError::GenerationConfig(format!(
                "assisted generation (an assistant model is set) cannot be combined with {}; remove the assistant or that setting",
                if searching { "beam search or a search strategy" } else { "prompt_lookup_num_tokens" }
            )));
        }
        let mut schedule = crate::assistant::Schedule::of(&settings)?;
        // Custom samplers may read token text and the end ids (a constraint does).
        let vocabulary = settings
            .samplers
            .as_ref()
            .is_some_and(|s| !s.is_empty())
            .then(|| crate::plugin::Vocabulary {
                bytes: Arc::clone(self.model.token_bytes()),
                eos: eos.clone(),
            });
        let chain_of = |settings: &GenerationConfig| -> Result<crate::sampling::SamplerChain> {
            let mut chain = crate::sampling::SamplerChain::new(settings)?;
            if let Some(v) = &vocabulary {
                chain.set_vocabulary(v.clone());
            }
            Ok(chain)
        };
        // The assistant's picks: the session's processors, then the argmax.
        let mut proposer = match self.assistant {
            Some(_) => Some(chain_of(&GenerationConfig {
                do_sample: Some(false),
                ..settings.clone()
            })?),
            None => None,
        };
        if searching {
            self.fits(prompt.len() + 1)?;
            return self.run_search(prompt, &settings, &eos, on_piece);
        }
        let mut chain = chain_of(&settings)?;
        let stop_list = stop_strings_of(&settings);
        let context = crate::stop::prompt_context(&self.model, prompt, &stop_list)?;
        let mut stops = StopStrings::with_context(&stop_list, &context);
        let max_new = settings.max_new_tokens_after(prompt.len())?;
        let context = self.options.context_len;
        let (prompt, mut prompt_len) = self.fit_prompt(prompt)?;
        self.beams.clear();
        self.ort_time = Duration::ZERO;
        let model = Arc::clone(&self.model);
        let mut stream = TextStream::new(model.tokenizer());
        let mut timings = Timings::default();
        let assistant_ort_before = self.assistant.as_ref().map(|a| a.ort_time());
        let started = Instant::now();
        let reused = self.evaluate(&prompt)?;
        let pick_start = Instant::now();
        let mut next = chain.pick(&self.last, &self.tokens, prompt_len)?;
        // `output_logprobs`: each emitted token's log-probability under the model.
        let want_logprobs = settings.output_logprobs == Some(true);
        let logprob = |logits: &[f32], token: u32| match want_logprobs {
            true => log_softmax_at(logits, token as usize),
            false => 0.0,
        };
        let mut next_logprob = logprob(&self.last, next);
        let mut logprobs = Vec::new();
        timings.sampling += pick_start.elapsed();
        timings.prefill = started.elapsed();
        let decode_start = Instant::now();
        let (mut out, mut text) = (Vec::new(), String::new());
        // Prompt lookup decoding: tokens already checked by the model, each with whether
        // the cache holds it (all but the last of a checked draft do).
        // (Checked with the token before them, in one pass of at most a prompt chunk.)
        let lookup = lookup.min(self.options.prefill_chunk.saturating_sub(1));
        let most_proposed = self.options.prefill_chunk.saturating_sub(1);
        let max_ngram = settings.max_matching_ngram_size.unwrap_or(2);
        // (token, cached, log-probability)
        let mut ahead: std::collections::VecDeque<(u32, bool, f32)> = Default::default();
        let mut next_cached = false;
        // The logits of the last checked draft (the position of its first row, rows).
        let mut last_check: Option<(usize, Vec<f32>)> = None;
        let stop = loop {
            if self.cancel.is_cancelled() {
                break StopReason::Cancelled;
            }
            if eos.contains(&next) {
                break StopReason::Eos;
            }
            out.push(next);
            if want_logprobs {
                logprobs.push(next_logprob);
            }
            self.pending.clear();
            if !next_cached {
                self.pending.push(next);
            }
            if let Some(piece) = stream.push(next) {
                let (released, hit) = match stops.push(&piece) {
                    Matched::No(t) => (t, false),
                    Matched::Stop(t) => (t, true),
                };
                if !released.is_empty() {
                    text.push_str(&released);
                    if !on_piece(&released) {
                        break StopReason::Callback;
                    }
                }
                if hit {
                    break StopReason::StopString;
                }
            }
            if out.len() >= max_new {
                break StopReason::MaxTokens;
            }
            if let Some((token, cached, lp)) = ahead.pop_front() {
                (next, next_cached, next_logprob) = (token, cached, lp);
                continue;
            }
            let room = context.saturating_sub(self.tokens.len() + 1);
            let left = max_new - out.len();
            // Tokens to guess: the assistant's (its heuristic schedule may grow past what
            // one check holds) or prompt lookup's.
            let want = match self.assistant {
                Some(_) => schedule.tokens.min(most_proposed),
                None => lookup,
            }
            .min(room)
            .min(left);
            let draft = if want == 0 {
                Vec::new()
            } else {
                let context: Vec<u32> = self.tokens.iter().copied().chain([next]).collect();
                match (self.assistant.as_mut(), proposer.as_mut()) {
                    (Some(assistant), Some(greedy)) => {
                        assistant.propose(&context, want, (greedy, prompt_len), &schedule, vocab)?
                    }
                    _ => crate::prompt_lookup::draft(&context, max_ngram, want),
                }
            };
            if !draft.is_empty() {
                // (The chain's time here is not told apart from the pass's.)
                let (accepted, pick, rows) =
                    self.check_draft(&mut chain, next, &draft, prompt_len)?;
                schedule.update(accepted, draft.len());
                timings.decode_steps += 1;
                // Row j of the check holds the logits after its j-th token: draft[j]'s.
                let vocab = self.last.len();
                let row = |j: usize| &rows[j * vocab..(j + 1) * vocab];
                let checked = draft[..accepted].iter().enumerate();
                ahead.extend(checked.map(|(j, &t)| (t, true, logprob(row(j), t))));
                ahead.push_back((pick, false, logprob(row(accepted), pick)));
                last_check = Some((self.tokens.len() - 1 - accepted, rows));
                (next, next_cached, next_logprob) = ahead.pop_front().expect("the pick is queued");
                continue;
            }
            if self.tokens.len() + 1 > context {
                match self.options.context_policy {
                    ContextPolicy::Error => break StopReason::ContextFull,
                    ContextPolicy::SlidingWindow { pinned } => {
                        let (survivors, dropped) = window(&self.history(), pinned, context, 0);
                        prompt_len = shift(prompt_len, pinned, dropped);
                        self.reset();
                        self.forward(&survivors)?;
                    }
                }
            } else {
                self.forward(&[next])?;
            }
            let pick_start = Instant::now();
            next = chain.pick(&self.last, &self.tokens, prompt_len)?;
            next_logprob = logprob(&self.last, next);
            next_cached = false;
            timings.sampling += pick_start.elapsed();
            timings.decode_steps += 1;
        };
        // Leave the session as greedy decoding does: the checked tokens the cache holds
        // past the last one emitted go, and the last one emitted is pending (not yet
        // evaluated) when the generation ended after emitting it.
        let unemitted =
            usize::from(next_cached) + ahead.iter().filter(|(_, cached, _)| *cached).count();
        if unemitted > 0 {
            let len = self.tokens.len() - unemitted;
            self.truncate(len)?;
            if next_cached && !matches!(stop, StopReason::Cancelled | StopReason::Eos) {
                self.pending.push(next);
            }
            // `last` holds the logits after the last cached token.
            if let Some((first, rows)) = &last_check {
                let vocab = self.last.len();
                let row = len - 1 - first;
                self.last
                    .copy_from_slice(&rows[row * vocab..(row + 1) * vocab]);
            }
        }
        let mut stop = stop;
        if !matches!(stop, StopReason::Callback | StopReason::StopString) {
            let rest = stream.finish().unwrap_or_default();
            let tail = match stops.push(&rest) {
                Matched::No(t) => t + &stops.finish(),
                Matched::Stop(t) => {
                    stop = StopReason::StopString;
                    t
                }
            };
            if !tail.is_empty() {
                text.push_str(&tail);
                on_piece(&tail);
            }
        }
        timings.decode = decode_start.elapsed();
        timings.ort_run = self.ort_time;
        if let (Some(a), Some(before)) = (&self.assistant, assistant_ort_before) {
            timings.assistant_ort_run = a.ort_time().saturating_sub(before);
        }
        Ok(Generation {
            tokens: out,
            text,
            prompt_tokens: prompt.len(),
            reused_tokens: reused,
            evaluated_tokens: prompt.len() - reused,
            stop,
            timings,
            logprobs,
        })
    }

    /// An error unless `tokens` fit the context.
    fn fits(&self, tokens: usize) -> Result<()> {
        let context = self.options.context_len;
        if tokens > context {
            return Err(RillError::PromptTooLong {
                tokens: tokens - 1,
                context,
            });
        }
        Ok(())
    }

    /// The prompt as it will be evaluated: whole when it fits with one new token, else
    /// windowed under [`ContextPolicy::SlidingWindow`] (an error under the default
    /// policy); and where the generated part starts in it.
    fn fit_prompt(&self, prompt: &[u32]) -> Result<(Vec<u32>, usize)> {
        let context = self.options.context_len;
        match self.options.context_policy {
            ContextPolicy::SlidingWindow { pinned } if prompt.len() + 1 > context => {
                let (survivors, dropped) = window(prompt, pinned, context, 1);
                let len = survivors.len();
                debug_assert!(len < context, "{dropped}");
                Ok((survivors, len))
            }
            _ => {
                self.fits(prompt.len() + 1)?;
                Ok((prompt.to_vec(), prompt.len()))
            }
        }
    }

    /// How many leading tokens of `seq` the cache already holds.
    fn cached_prefix(&self, seq: &[u32]) -> usize {
        self.tokens
            .iter()
            .zip(seq)
            .take_while(|(a, b)| a == b)
            .count()
    }

    /// Makes the cache hold exactly `seq`, reusing the longest common prefix with what is
    /// cached and evaluating the rest (at least the last token, so the logits are those
    /// of `seq`). Returns how many tokens were reused.
    fn evaluate(&mut self, seq: &[u32]) -> Result<usize> {
        let reuse = self.cached_prefix(seq).min(seq.len() - 1);
        self.truncate(reuse)?;
        self.forward(&seq[reuse..])?;
        Ok(reuse)
    }

    /// Runs beam search or a search-strategy plugin, keeps its hypotheses, makes the
    /// session hold the best one and reports it.
    fn run_search(
        &mut self,
        prompt: &[u32],
        settings: &GenerationConfig,
        eos: &[u32],
        mut on_piece: impl FnMut(&str) -> bool,
    ) -> Result<Generation> {
        let model = Arc::clone(&self.model);
        let stop_strings = stop_strings_of(settings);
        let run = if let Some(spec) = &settings.search_strategy {
            if let Some(path) = &spec.plugin {
                crate::plugin::load_once(std::path::Path::new(path))?;
            }
            let params = spec
                .params
                .clone()
                .unwrap_or_else(|| serde_json::json!({}))
                .to_string();
            let max_new = settings.max_new_tokens_after(prompt.len())?;
            crate::beam::run_strategy_timed(
                &model,
                prompt,
                &spec.name,
                &params,
                max_new,
                &stop_strings,
            )?
        } else {
            let mut cfg = crate::beam::BeamConfig::from_generation(settings, eos.to_vec())?
                .ok_or_else(|| RillError::InvalidArgument("num_beams must exceed 1".into()))?;
            cfg.max_new_tokens = settings.max_new_tokens_after(prompt.len())?;
            crate::beam::run_strategy_timed(
                &model,
                prompt,
                "beam",
                &cfg.params(),
                cfg.max_new_tokens,
                &cfg.stop_strings,
            )?
        };
        let context = crate::stop::prompt_context(&self.model, prompt, &stop_strings)?;
        self.beams = run.hypotheses;
        self.beam_prompt_len = prompt.len();
        self.beam_stops = (context, stop_strings);
        let Some(best) = self.beams.first() else {
            return Err(RillError::Plugin(
                "the search strategy returned no hypothesis".into(),
            ));
        };
        let mut tokens = best.tokens.get(prompt.len()..).unwrap_or_default().to_vec();
        let mut stop = if tokens.last().is_some_and(|t| eos.contains(t)) {
            tokens.pop();
            StopReason::Eos
        } else {
            StopReason::MaxTokens
        };
        // The session holds the best hypothesis, evaluated only if the conversation goes
        // on (the cached prompt stays reusable).
        let common = self.cached_prefix(prompt);
        self.truncate(common)?;
        self.pending = [&prompt[common..], &tokens[..]].concat();
        let mut text = self.model.detokenize(&tokens)?;
        // As when decoding token by token: the stop string and what follows are not text.
        let (context, stops) = &self.beam_stops;
        if let Some(cut) = cut_at_stop(&text, context, stops) {
            text.truncate(cut);
            stop = StopReason::StopString;
        }
        if !text.is_empty() {
            on_piece(&text);
        }
        let timings = Timings {
            prefill: run.prefill,
            decode: run.decode,
            decode_steps: run.decode_steps,
            ort_run: run.ort_run,
            ..Default::default()
        };
        Ok(Generation {
            tokens,
            text,
            prompt_tokens: prompt.len(),
            reused_tokens: 0,
            evaluated_tokens: prompt.len(),
            stop,
            timings,
            logprobs: Vec::new(),
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
        let mut text = self.model.detokenize(tokens)?;
        let (context, stops) = &self.beam_stops;
        if let Some(cut) = cut_at_stop(&text, context, stops) {
            text.truncate(cut);
        }
        Ok((text, h.score))
    }
}

/// Where `text` (generated after `context`) ends before the first stop string that ends
/// in it, if one does.
fn cut_at_stop(text: &str, context: &str, stops: &[String]) -> Option<usize> {
    match StopStrings::with_context(stops, context).push(text) {
        Matched::Stop(before) => Some(before.len()),
        Matched::No(_) => None,
    }
}

/// The generation's stop strings (none when unset).
fn stop_strings_of(settings: &GenerationConfig) -> Vec<String> {
    let mut stops = settings
        .stop_strings
        .as_ref()
        .map(|v| v.to_vec())
        .unwrap_or_default();
    stops.retain(|s| !s.is_empty());
    stops
}

/// The tokens a sliding window keeps of `tokens` so that `room` more fit in `context`:
/// the first `pinned`, then all but the oldest of the rest, dropping at least a quarter
/// of the unpinned window at once. Returns the survivors and how many were dropped.
fn window(tokens: &[u32], pinned: usize, context: usize, room: usize) -> (Vec<u32>, usize) {
    let pinned = pinned.min(tokens.len());
    let needed = (tokens.len() + room + 1).saturating_sub(context);
    let dropped = needed
        .max((context - pinned) / 4)
        .min(tokens.len() - pinned);
    let mut kept = tokens[..pinned].to_vec();
    kept.extend_from_slice(&tokens[pinned + dropped..]);
    (kept, dropped)
}

/// Where index `at` of a sequence lands after a window dropped `dropped` tokens after the
/// first `pinned`.
fn shift(at: usize, pinned: usize, dropped: usize) -> usize {
    if at <= pinned {
        at
    } else if at >= pinned + dropped {
        at - dropped
    } else {
        pinned
    }
}

/// Bytes of one logit of the graph's output (f16 or f32).
fn logit_bytes(g: &crate::graph::GraphInfo) -> usize {
    if g.logits_f16 {
        2
    } else {
        4
    }
}

/// `log softmax(logits)[index]`, computed stably.
pub fn log_softmax_at(logits: &[f32], index: usize) -> f32 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let sum: f64 = logits.iter().map(|&v| ((v - max) as f64).exp()).sum();
    ((logits[index] - max) as f64 - sum.ln()) as f32
}

/// Index of the largest logit (the first of ties), as greedy decoding and
/// `torch.argmax` pick it.
pub fn argmax(logits: &[f32]) -> u32 {
    // Two passes the compiler vectorises (the maximum, then its first position) instead of
    // one with a dependent branch per logit: 128k logits in ~30 us rather than ~130.
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = logits.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane = lane.max(v);
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(&lanes)
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    logits.iter().position(|&v| v == max).unwrap_or(0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_model() -> Arc<Model> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/rill-tiny");
        Arc::new(Model::open(dir, &crate::ModelOptions::default()).expect("default model opens"))
    }

    fn session(model: &Arc<Model>, prefill_chunk: usize) -> Session {
        let options = SessionOptions {
            context_len: 64,
            prefill_chunk,
            ..Default::default()
        };
        Session::new(model.clone(), options).unwrap()
    }

    #[test]
    fn argmax_takes_the_first_of_ties() {
        let naive = |v: &[f32]| {
            let mut best = 0;
            for (i, &x) in v.iter().enumerate() {
                if x > v[best] {
                    best = i;
                }
            }
            best as u32
        };
        let mut x = 7u32;
        for len in [1usize, 2, 17, 4096, 100_003] {
            let row: Vec<f32> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    ((x >> 16) % 9) as f32 - 4.0
                })
                .collect();
            assert_eq!(argmax(&row), naive(&row), "len {len}");
        }
        assert_eq!(argmax(&[f32::NEG_INFINITY; 5]), 0);
        assert_eq!(argmax(&[-0.0, 0.0, -1.0]), 0);
        assert_eq!(argmax(&[1.0, f32::INFINITY, 3.0, f32::INFINITY]), 1);
    }

    #[test]
    fn sessions_hold_one_position_of_logits_and_borrow_chunks_only_to_score() {
        let model = default_model();
        let vocab = model.graph().vocab;
        let ids: Vec<u32> = (0..20).map(|i| 3 + i * 7).collect();
        // One token at a time: every step fits the session's own buffer.
        let mut one = session(&model, 1);
        let expected = one.forward(&ids).unwrap().to_vec();
        assert_eq!(
            model.logits_pool().free_buffers(),
            0,
            "no chunk was borrowed"
        );
        let expected_lp = session(&model, 1).token_logprobs(&ids).unwrap();

        let (mut a, mut b) = (session(&model, 8), session(&model, 8));
        for s in [&mut a, &mut b] {
            let got = s.forward(&ids).unwrap();
            let diff = got.iter().zip(&expected).map(|(x, y)| (x - y).abs());
            assert!(diff.fold(0.0, f32::max) < 1e-4, "chunked logits differ");
            assert_eq!(s.logits.len(), vocab, "the session keeps one position");
            assert!(s.chunk_logits.is_none(), "the chunk buffer went back");
        }
        // The default model's graph takes `logits_to_keep`: a prompt chunk computes the
        // logits of its last position only, which fit the session's own buffer.
        assert!(model.graph().logits_to_keep);
        assert_eq!(
            model.logits_pool().free_buffers(),
            0,
            "no chunk was borrowed"
        );
        // Scoring needs every position's logits: chunks are borrowed, and the second
        // session reuses the first one's.
        for _ in 0..2 {
            let lp = session(&model, 8).token_logprobs(&ids).unwrap();
            assert_eq!(lp.len(), expected_lp.len());
            for (x, y) in lp.iter().zip(&expected_lp) {
                assert!((x - y).abs() < 1e-4, "{x} vs {y}");
            }
        }
        assert_eq!(model.logits_pool().free_buffers(), 1, "a chunk was reused");
        // A decode step after the prompt uses the session's own buffer again.
        let next = a.forward(&[5]).unwrap().to_vec();
        let again = one.forward(&[5]).unwrap();
        assert!(next.iter().zip(again).all(|(x, y)| (x - y).abs() < 1e-4));
    }
}
