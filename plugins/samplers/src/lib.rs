//! rill's standard logits processors, each exactly as Hugging Face transformers defines
//! its `LogitsProcessor` / `LogitsWarper` (transformers 4.53, `generation/logits_process.py`),
//! checked against fixtures that transformers itself wrote.
//!
//! Every processor works in place on one row of logits over the whole vocabulary, in f32
//! as transformers computes them, and writes `f32::NEG_INFINITY` where transformers
//! writes its filter value. The plugin ABI (the sampler plugins issue) wraps these.

pub mod constraint;
pub mod json;
pub mod pattern;
pub mod plugin;
pub mod processors;
pub mod vocab_trie;

pub use processors::{
    bad_words, begin_suppress_tokens, epsilon_cutoff, eta_cutoff, min_length, min_p,
    no_repeat_ngram, presence_frequency, repetition_penalty, sequence_bias, suppress_tokens,
    temperature, top_k, top_p, typical_p,
};
