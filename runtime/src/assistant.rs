//! Assisted generation (speculative decoding; transformers' `assistant_model`): a smaller
//! model with the same tokenizer proposes the next tokens greedily (after the session's
//! logits processors, as transformers' assistant applies them), and the session's
//! model checks them all in one forward pass, keeping each while it is what the sampler
//! chain picks there (the check prompt lookup decoding uses). The output is unchanged,
//! greedy or sampled with the same seed; the speed-up depends on how often the assistant
//! guesses right and how much cheaper its steps are.
//!
//! The assistant keeps its own session: each proposal reuses the longest prefix of the
//! context its cache already holds, so a proposal costs the tokens accepted since the
//! last one plus one step per proposed token.

use std::sync::Arc;

use crate::error::{Result, RillError};
use crate::model::Model;
use crate::sampling::SamplerChain;
use crate::session::{Session, SessionOptions};

/// The assistant's settings (transformers' keys).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Schedule {
    /// Tokens proposed at most per check (`num_assistant_tokens`, default 20).
    pub tokens: usize,
    /// `num_assistant_tokens_schedule` `heuristic`: two more after a proposal the model
    /// accepted whole, one fewer (at least one) after any other.
    pub heuristic: bool,
    /// `assistant_confidence_threshold` (default 0.4): a proposal ends after a token the
    /// assistant gives less than this probability.
    pub confidence: f32,
}

impl Schedule {
    /// The schedule a generation config asks for.
    pub fn of(cfg: &crate::config::GenerationConfig) -> Result<Schedule> {
        let heuristic = match cfg.num_assistant_tokens_schedule.as_deref() {
            None | Some("constant") => false,
            Some("heuristic") => true,
            Some(other) => {
                return Err(RillError::GenerationConfig(format!(
                    "num_assistant_tokens_schedule must be \"constant\" or \"heuristic\", got {other:?}"
                )))
            }
        };
        let confidence = cfg.assistant_confidence_threshold.unwrap_or(0.4);
        if !(0.0..=1.0).contains(&confidence) {
            return Err(RillError::GenerationConfig(format!(
                "assistant_confidence_threshold must be in [0, 1], got {confidence}"
            )));
        }
        Ok(Schedule {
            tokens: cfg.num_assistant_tokens.unwrap_or(20),
            heuristic,
            confidence,
        })
    }

    /// After a check that accepted `accepted` of `proposed` tokens.
    pub fn update(&mut self, accepted: usize, proposed: usize) {
        if self.heuristic {
            self.tokens = if accepted == proposed {
                self.tokens + 2
            } else {
                self.tokens.saturating_sub(1).max(1)
            };
        }
    }
}

/// A model proposing tokens for another's session.
pub(crate) struct Assistant {
    session: Session,
    /// The logits of its last step (reused from token to token).
    logits: Vec<f32>,
}

impl Assistant {
    /// An assistant for sessions of `target`: `model` must share its tokenizer's
    /// vocabulary and special tokens.
    pub fn new(model: Arc<Model>, target: &Model) -> Result<Assistant> {
        let (a, t) = (model.tokenizer(), target.tokenizer());
        let (size_a, size_t) = (a.get_vocab_size(true), t.get_vocab_size(true));
        if size_a != size_t || model.config().eos_token_id != target.config().eos_token_id {
            return Err(RillError::InvalidArgument(format!(
                "the assistant {} does not share the model's tokenizer ({size_a} tokens and end ids {:?}, against {size_t} and {:?})",
                model.dir().display(),
                model.config().eos_token_id.as_ref().map(|e| e.to_vec()),
                target.config().eos_token_id.as_ref().map(|e| e.to_vec()),
            )));
        }
        Ok(Assistant {
            session: Session::new(model, SessionOptions::default())?,
            logits: Vec::new(),
        })
    }

    /// Time its session has spent inside ONNX Runtime's Run since it was made.
    pub fn ort_time(&self) -> std::time::Duration {
        self.session.ort_time()
    }

    /// Up to `count` tokens the assistant expects after `context`, each `greedy`'s pick
    /// (the session's processors, then the argmax; `prompt_len` tokens of the context
    /// are the prompt), fewer where its context would overflow or its confidence drops
    /// below the schedule's; only ids below `vocab` (the checking model's).
    pub fn propose(
        &mut self,
        context: &[u32],
        count: usize,
        (greedy, prompt_len): (&mut SamplerChain, usize),
        schedule: &Schedule,
        vocab: usize,
    ) -> Result<Vec<u32>> {
        let (s, logits) = (&mut self.session, &mut self.logits);
        let room = s.context_len().saturating_sub(context.len());
        let count = count.min(room);
        if count == 0 || context.is_empty() {
            return Ok(Vec::new());
        }
        // Keep what its cache shares with the context (at least the last token is run:
        // its logits start the proposal).
        let shared = s
            .tokens()
            .iter()
            .zip(context)
            .take_while(|(a, b)| a == b)
            .count()
            .min(context.len() - 1);
        s.truncate(shared)?;
        // (Copied out: picking reads the session's tokens too.)
        logits.clear();
        logits.extend_from_slice(s.forward(&context[shared..])?);
        let mut out = Vec::with_capacity(count);
        loop {
            let token = greedy.pick(logits, s.tokens(), prompt_len)?;
            if token as usize >= vocab {
                break;
            }
            out.push(token);
            if out.len() == count || probability(logits, token) < schedule.confidence {
                break;
            }
            logits.clear();
            logits.extend_from_slice(s.forward(&[token])?);
        }
        Ok(out)
    }
}

/// `softmax(logits)[token]`.
fn probability(logits: &[f32], token: u32) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|&x| (x - max).exp()).sum();
    (logits[token as usize] - max).exp() / sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heuristic_schedule_grows_after_full_acceptance_and_shrinks_otherwise() {
        let mut s = Schedule {
            tokens: 3,
            heuristic: true,
            confidence: 0.0,
        };
        s.update(3, 3);
        assert_eq!(s.tokens, 5);
        s.update(1, 5);
        assert_eq!(s.tokens, 4);
        for _ in 0..10 {
            s.update(0, 4);
        }
        assert_eq!(s.tokens, 1);
        let mut constant = Schedule {
            heuristic: false,
            ..s
        };
        constant.update(0, 1);
        assert_eq!(constant.tokens, 1);
        assert!((probability(&[0.0, 0.0], 1) - 0.5).abs() < 1e-6);
    }
}
