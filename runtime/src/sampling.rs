//! Choosing the next token from logits, as a Hugging Face generation config asks, through
//! sampler plugins: the processors (`sequence_bias`, `repetition_penalty`,
//! `no_repeat_ngram_size`, `bad_words_ids`, then rill's `presence_penalty` /
//! `frequency_penalty`) always,
//! then, when `do_sample` is true, the warpers in transformers' order (temperature, top_k,
//! top_p, min_p, typical_p), then any custom samplers the config names (`samplers`), then
//! a draw from the session's seeded generator (`dist`), or the argmax (`greedy`).
//! Defaults are transformers' (`top_k` 50, `temperature` 1.0). The standard samplers come
//! from `rill-samplers`, registered statically through the same ABI as any plugin.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::GenerationConfig;
use crate::error::{Result, RillError};
use crate::plugin::{Candidates, PluginSampler};

/// The configured chain of one generation.
pub struct SamplerChain {
    samplers: Vec<PluginSampler>,
    candidates: Candidates,
    do_sample: bool,
    rng: StdRng,
    vocabulary: Option<crate::plugin::Vocabulary>,
}

fn invalid(msg: String) -> RillError {
    RillError::GenerationConfig(msg)
}

impl SamplerChain {
    /// Builds and checks the chain for `cfg` (loading any plugin a custom entry names).
    pub fn new(cfg: &GenerationConfig) -> Result<Self> {
        let t = cfg.temperature.unwrap_or(1.0);
        if !(t.is_finite() && t > 0.0) {
            return Err(invalid(format!(
                "temperature must be a positive number, got {t}"
            )));
        }
        let unit = |name: &str, v: Option<f32>| -> Result<()> {
            match v {
                Some(x) if !(x.is_finite() && x > 0.0 && x <= 1.0) => {
                    Err(invalid(format!("{name} must be in (0, 1], got {x}")))
                }
                _ => Ok(()),
            }
        };
        unit("top_p", cfg.top_p)?;
        unit("typical_p", cfg.typical_p)?;
        if let Some(m) = cfg.min_p {
            if !(m.is_finite() && (0.0..=1.0).contains(&m)) {
                return Err(invalid(format!("min_p must be in [0, 1], got {m}")));
            }
        }
        for (name, v) in [
            ("epsilon_cutoff", cfg.epsilon_cutoff),
            ("eta_cutoff", cfg.eta_cutoff),
        ] {
            if let Some(x) = v.filter(|x| !(x.is_finite() && (0.0..1.0).contains(x))) {
                return Err(invalid(format!("{name} must be in [0, 1), got {x}")));
            }
        }
        if cfg.max_new_tokens == Some(0) {
            return Err(invalid("max_new_tokens must be at least 1".into()));
        }
        if cfg.num_beams.unwrap_or(1) <= 1 && cfg.num_return_sequences.unwrap_or(1) > 1 {
            return Err(invalid(
                "num_return_sequences above 1 needs beam search (num_beams > 1); without beams a generation returns one sequence".into(),
            ));
        }
        if cfg.prompt_lookup_num_tokens.unwrap_or(0) > 0 {
            if cfg.samplers.as_ref().is_some_and(|s| !s.is_empty()) {
                return Err(invalid(
                    "prompt_lookup_num_tokens does not run with custom samplers (they may keep state across tokens)".into(),
                ));
            }
            if let Some(n) = cfg
                .max_matching_ngram_size
                .filter(|n| !(1..=64).contains(n))
            {
                return Err(invalid(format!(
                    "max_matching_ngram_size must be in 1..=64, got {n}"
                )));
            }
        }
        let penalty = cfg.repetition_penalty.unwrap_or(1.0);
        if !(penalty.is_finite() && penalty > 0.0) {
            return Err(invalid(format!(
                "repetition_penalty must be a positive number, got {penalty}"
            )));
        }
        let seed = seed_or_clock(cfg.seed);
        let do_sample = cfg.do_sample.unwrap_or(false);
        let mut specs: Vec<(String, String)> = Vec::new();
        let mut add = |name: &str, params: serde_json::Value| {
            specs.push((name.to_string(), params.to_string()))
        };
        use serde_json::json;
        if let Some(b) = cfg.sequence_bias.as_ref().filter(|b| !b.is_empty()) {
            add("sequence_bias", json!({ "sequence_bias": b }));
        }
        if penalty != 1.0 {
            add("repetition_penalty", json!({ "penalty": penalty }));
        }
        if let Some(n) = cfg.no_repeat_ngram_size.filter(|&n| n > 0) {
            add("no_repeat_ngram", json!({ "size": n }));
        }
        let eos = cfg
            .eos_token_id
            .as_ref()
            .map(|e| e.to_vec())
            .unwrap_or_default();
        if let Some(words) = cfg.bad_words_ids.as_ref().filter(|w| !w.is_empty()) {
            add(
                "bad_words",
                json!({ "bad_words_ids": words, "eos_token_id": eos }),
            );
        }
        if let Some(n) = cfg.min_length.filter(|&n| n > 0) {
            add(
                "min_length",
                json!({ "min_length": n, "eos_token_id": eos }),
            );
        }
        if let Some(n) = cfg.min_new_tokens.filter(|&n| n > 0) {
            add(
                "min_new_tokens",
                json!({ "min_new_tokens": n, "eos_token_id": eos }),
            );
        }
        if let Some(t) = cfg.suppress_tokens.as_ref().filter(|t| !t.is_empty()) {
            add("suppress_tokens", json!({ "tokens": t }));
        }
        if let Some(t) = cfg.begin_suppress_tokens.as_ref().filter(|t| !t.is_empty()) {
            add("begin_suppress_tokens", json!({ "tokens": t }));
        }
        let (presence, frequency) = (
            cfg.presence_penalty.unwrap_or(0.0),
            cfg.frequency_penalty.unwrap_or(0.0),
        );
        if presence != 0.0 || frequency != 0.0 {
            add(
                "penalties",
                json!({ "presence_penalty": presence, "frequency_penalty": frequency }),
            );
        }
        let customs = |early: bool| {
            cfg.samplers
                .iter()
                .flatten()
                .filter(move |c| c.before_warpers == early)
        };
        for custom in customs(true) {
            if let Some(path) = &custom.plugin {
                crate::plugin::load_once(std::path::Path::new(path))?;
            }
            add(
                &custom.name,
                custom.params.clone().unwrap_or_else(|| json!({})),
            );
        }
        if do_sample {
            if t != 1.0 {
                add("temperature", json!({ "temperature": t }));
            }
            if let Some(k) = Some(cfg.top_k.unwrap_or(50)).filter(|&k| k != 0) {
                add("top_k", json!({ "top_k": k }));
            }
            if let Some(p) = cfg.top_p.filter(|&p| p < 1.0) {
                add("top_p", json!({ "top_p": p }));
            }
            if let Some(m) = cfg.min_p {
                add("min_p", json!({ "min_p": m }));
            }
            if let Some(p) = cfg.typical_p.filter(|&p| p < 1.0) {
                add("typical_p", json!({ "typical_p": p }));
            }
            if let Some(e) = cfg.epsilon_cutoff.filter(|&e| e > 0.0) {
                add("epsilon_cutoff", json!({ "epsilon": e }));
            }
            if let Some(e) = cfg.eta_cutoff.filter(|&e| e > 0.0) {
                add("eta_cutoff", json!({ "epsilon": e }));
            }
        }
        for custom in customs(false) {
            if let Some(path) = &custom.plugin {
                crate::plugin::load_once(std::path::Path::new(path))?;
            }
            add(
                &custom.name,
                custom.params.clone().unwrap_or_else(|| json!({})),
            );
        }
        add(if do_sample { "dist" } else { "greedy" }, json!({}));
        let samplers = specs
            .iter()
            .map(|(n, p)| PluginSampler::create(n, p))
            .collect::<Result<Vec<_>>>()?;
        Ok(SamplerChain {
            samplers,
            candidates: Candidates::full(&[]),
            do_sample,
            rng: StdRng::seed_from_u64(seed),
            vocabulary: None,
        })
    }

    /// Gives the samplers each token's bytes and the end-of-sequence ids
    /// (`rill_sampler_context.token_bytes`, `eos_ids`).
    pub fn set_vocabulary(&mut self, vocabulary: crate::plugin::Vocabulary) {
        self.vocabulary = Some(vocabulary);
    }

    /// Whether tokens are drawn (else the argmax is taken).
    pub fn samples(&self) -> bool {
        self.do_sample
    }

    /// The samplers, in order.
    pub fn names(&self) -> Vec<&str> {
        self.samplers.iter().map(PluginSampler::name).collect()
    }

    /// Runs the chain over `logits` (`context` is every token so far, `n_prompt` of them
    /// the prompt) and picks the next token; the first sampler that selects one ends it.
    pub fn pick(&mut self, logits: &[f32], context: &[u32], n_prompt: usize) -> Result<u32> {
        let c = &mut self.candidates;
        c.refill(logits);
        let vocab = logits.len();
        let rng = &mut self.rng;
        let mut random = || rng.random::<f64>();
        let vocabulary = self.vocabulary.as_ref();
        for s in &mut self.samplers {
            s.apply(c, context, n_prompt, vocab, &mut random, vocabulary)?;
            if c.selected >= 0 {
                break;
            }
            c.compact();
        }
        let token = if c.selected >= 0 {
            c.ids[c.selected as usize]
        } else {
            let live = &c.logits[..c.size];
            c.ids[crate::session::argmax(live) as usize]
        };
        for s in &mut self.samplers {
            s.accept(token);
        }
        Ok(token)
    }
}

/// The configured `seed`, else one from the clock (a different draw each run).
pub(crate) fn seed_or_clock(seed: Option<u64>) -> u64 {
    seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_follow_the_processed_distribution() {
        // Chi-square goodness of fit of 20,000 seeded draws against softmax(logits / T)
        // after top_k 4: 3 degrees of freedom, critical value 16.27 at p = 0.001.
        let logits = [2.0f32, 1.5, 1.0, 0.2, -1.0, -3.0];
        let cfg = GenerationConfig {
            do_sample: Some(true),
            temperature: Some(0.8),
            top_k: Some(4),
            seed: Some(7),
            ..Default::default()
        };
        let mut chain = SamplerChain::new(&cfg).unwrap();
        let n = 20_000;
        let mut counts = [0usize; 6];
        for _ in 0..n {
            counts[chain.pick(&logits, &[], 0).unwrap() as usize] += 1;
        }
        assert_eq!(
            counts[4] + counts[5],
            0,
            "top_k removed the two least likely"
        );
        let scaled: Vec<f64> = logits[..4]
            .iter()
            .map(|&l| (l as f64 / 0.8).exp())
            .collect();
        let z: f64 = scaled.iter().sum();
        let chi2: f64 = (0..4)
            .map(|i| {
                let e = n as f64 * scaled[i] / z;
                (counts[i] as f64 - e).powi(2) / e
            })
            .sum();
        assert!(chi2 < 16.27, "chi-square {chi2}, counts {counts:?}");
    }

    #[test]
    fn the_same_seed_gives_the_same_draws() {
        let cfg = GenerationConfig {
            do_sample: Some(true),
            seed: Some(42),
            ..Default::default()
        };
        let logits: Vec<f32> = (0..100).map(|i| (i as f32 * 0.37).sin()).collect();
        let run = || {
            let mut c = SamplerChain::new(&cfg).unwrap();
            (0..50)
                .map(|_| c.pick(&logits, &[], 0).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
        let mut other = SamplerChain::new(&GenerationConfig {
            seed: Some(43),
            ..cfg.clone()
        })
        .unwrap();
        assert_ne!(
            run(),
            (0..50)
                .map(|_| other.pick(&logits, &[], 0).unwrap())
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn greedy_applies_the_processors_then_argmax() {
        let cfg = GenerationConfig {
            do_sample: Some(false),
            repetition_penalty: Some(10.0),
            ..Default::default()
        };
        let mut chain = SamplerChain::new(&cfg).unwrap();
        assert_eq!(chain.pick(&[1.0, 3.0, 2.0], &[], 0).unwrap(), 1);
        assert_eq!(
            chain.pick(&[1.0, 3.0, 2.0], &[1], 1).unwrap(),
            2,
            "token 1 penalised to 0.3"
        );
    }

    #[test]
    fn bad_values_are_refused() {
        for cfg in [
            GenerationConfig {
                temperature: Some(0.0),
                ..Default::default()
            },
            GenerationConfig {
                top_p: Some(1.5),
                ..Default::default()
            },
            GenerationConfig {
                typical_p: Some(0.0),
                ..Default::default()
            },
            GenerationConfig {
                min_p: Some(-0.1),
                ..Default::default()
            },
            GenerationConfig {
                repetition_penalty: Some(f32::NAN),
                ..Default::default()
            },
        ] {
            assert!(SamplerChain::new(&cfg).is_err(), "{cfg:?}");
        }
    }
}
