//! Choosing the next token from logits, as a Hugging Face generation config asks:
//! the processors (`repetition_penalty`, `no_repeat_ngram_size`) always, then, when
//! `do_sample` is true, the warpers in transformers' order (temperature, top_k, top_p,
//! min_p, typical_p) and a draw from the session's seeded generator; otherwise argmax.
//! Defaults are transformers' (`top_k` 50, `temperature` 1.0). The processors themselves
//! live in `rill-samplers`; the plugin ABI will wrap them next.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::GenerationConfig;
use crate::error::{Result, RillError};

/// The configured chain of one session.
#[derive(Debug, Clone)]
pub struct SamplerChain {
    do_sample: bool,
    temperature: f32,
    top_k: usize,
    top_p: f32,
    min_p: Option<f32>,
    typical_p: f32,
    repetition_penalty: f32,
    no_repeat_ngram: usize,
    rng: StdRng,
}

fn invalid(msg: String) -> RillError {
    RillError::GenerationConfig(msg)
}

impl SamplerChain {
    /// Builds and checks the chain for `cfg`.
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
        let penalty = cfg.repetition_penalty.unwrap_or(1.0);
        if !(penalty.is_finite() && penalty > 0.0) {
            return Err(invalid(format!(
                "repetition_penalty must be a positive number, got {penalty}"
            )));
        }
        let seed = cfg.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
        Ok(SamplerChain {
            do_sample: cfg.do_sample.unwrap_or(false),
            temperature: t,
            top_k: cfg.top_k.unwrap_or(50),
            top_p: cfg.top_p.unwrap_or(1.0),
            min_p: cfg.min_p,
            typical_p: cfg.typical_p.unwrap_or(1.0),
            repetition_penalty: penalty,
            no_repeat_ngram: cfg.no_repeat_ngram_size.unwrap_or(0),
            rng: StdRng::seed_from_u64(seed),
        })
    }

    /// Whether tokens are drawn (else the argmax is taken).
    pub fn samples(&self) -> bool {
        self.do_sample
    }

    /// Processes `logits` in place (`context` is every token so far, prompt included) and
    /// picks the next token.
    pub fn pick(&mut self, logits: &mut [f32], context: &[u32]) -> u32 {
        if self.repetition_penalty != 1.0 {
            rill_samplers::repetition_penalty(logits, context, self.repetition_penalty);
        }
        if self.no_repeat_ngram > 0 {
            rill_samplers::no_repeat_ngram(logits, context, self.no_repeat_ngram);
        }
        if !self.do_sample {
            return crate::session::argmax(logits);
        }
        if self.temperature != 1.0 {
            rill_samplers::temperature(logits, self.temperature);
        }
        if self.top_k != 0 {
            rill_samplers::top_k(logits, self.top_k, 1);
        }
        if self.top_p < 1.0 {
            rill_samplers::top_p(logits, self.top_p, 1);
        }
        if let Some(m) = self.min_p {
            rill_samplers::min_p(logits, m, 1);
        }
        if self.typical_p < 1.0 {
            rill_samplers::typical_p(logits, self.typical_p, 1);
        }
        draw(logits, self.rng.random::<f64>())
    }
}

/// The token at cumulative probability `u` in [0, 1) of softmax(`logits`).
pub fn draw(logits: &[f32], u: f64) -> u32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let weights: Vec<f64> = logits.iter().map(|&l| ((l - max) as f64).exp()).collect();
    let mut target = u * weights.iter().sum::<f64>();
    let mut last = 0;
    for (i, w) in weights.iter().enumerate() {
        if *w > 0.0 {
            last = i;
            if target < *w {
                return i as u32;
            }
            target -= w;
        }
    }
    last as u32
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
            counts[chain.pick(&mut logits.clone(), &[]) as usize] += 1;
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
                .map(|_| c.pick(&mut logits.clone(), &[]))
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
                .map(|_| other.pick(&mut logits.clone(), &[]))
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
        assert_eq!(chain.pick(&mut [1.0, 3.0, 2.0], &[]), 1);
        assert_eq!(
            chain.pick(&mut [1.0, 3.0, 2.0], &[1]),
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
