//! Text generation with the candle model (no cache: recomputes the prefix each step).
//! Used for the samples shown after training and as the reference decoder in tests; the
//! runtime, not this, is what applications use.

use candle_core::{Device, Tensor, D};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::Result;
use crate::model::Llama;

/// Continues `prompt` ids by `max_new` tokens; greedy when `temperature` is 0, else
/// sampling from the top `top_k` tokens. Stops early at any of `eos`.
pub fn generate(
    model: &Llama,
    prompt: &[u32],
    max_new: usize,
    temperature: f64,
    top_k: usize,
    eos: &[u32],
    seed: u64,
) -> Result<Vec<u32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut ids = prompt.to_vec();
    let max_len = model.config().max_position_embeddings;
    for _ in 0..max_new {
        if ids.len() >= max_len {
            break;
        }
        let input = Tensor::new(ids.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
        let logits = model.forward(&input)?.squeeze(0)?;
        let last = logits.get(ids.len() - 1)?;
        let next = if temperature <= 0.0 {
            last.argmax(D::Minus1)?.to_scalar::<u32>()?
        } else {
            pick_top_k(&last.to_vec1::<f32>()?, temperature, top_k, &mut rng)
        };
        ids.push(next);
        if eos.contains(&next) {
            break;
        }
    }
    Ok(ids[prompt.len()..].to_vec())
}

fn pick_top_k(logits: &[f32], temperature: f64, top_k: usize, rng: &mut StdRng) -> u32 {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    order.truncate(top_k.max(1));
    let max = logits[order[0]] as f64;
    let weights: Vec<f64> = order
        .iter()
        .map(|&i| ((logits[i] as f64 - max) / temperature).exp())
        .collect();
    let mut draw = rng.random::<f64>() * weights.iter().sum::<f64>();
    for (i, w) in order.iter().zip(&weights) {
        draw -= w;
        if draw <= 0.0 {
            return *i as u32;
        }
    }
    order[0] as u32
}
