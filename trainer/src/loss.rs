//! Cross-entropy with label smoothing, as `torch.nn.CrossEntropyLoss(label_smoothing=e)`
//! defines it: `(1 - e) * nll(target) + e * mean_j(-log p_j)`.

use candle_core::{Tensor, D};

use crate::error::Result;

/// Mean smoothed cross-entropy of `logits` `[n, vocab]` against `targets` `[n]` (u32).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor, smoothing: f64) -> Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let nll = logp.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?.neg()?;
    if smoothing == 0.0 {
        return Ok(nll.mean_all()?);
    }
    let uniform = logp.mean(D::Minus1)?.neg()?;
    Ok(((nll * (1.0 - smoothing))? + (uniform * smoothing)?)?.mean_all()?)
}
