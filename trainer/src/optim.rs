//! Optimizer plumbing candle does not provide: AdamW with two parameter groups (no weight
//! decay on norms and embeddings), gradient accumulation and global-norm clipping.

use candle_core::backprop::GradStore;
use candle_core::Var;
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

use crate::error::Result;
use crate::model::is_norm;

/// AdamW over two groups: matrices with weight decay, norms and embeddings without.
pub struct GroupedAdamW {
    decayed: AdamW,
    plain: AdamW,
}

impl GroupedAdamW {
    /// Splits `vars` into the two groups.
    pub fn new(vars: &[(String, Var)], lr: f64, weight_decay: f64) -> Result<Self> {
        let params = |wd: f64| ParamsAdamW {
            lr,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: wd,
        };
        let no_decay = |n: &str| is_norm(n) || n.contains("embed_tokens") || n == "lm_head.weight";
        let pick = |decay: bool| -> Vec<Var> {
            vars.iter()
                .filter(|(n, _)| no_decay(n) != decay)
                .map(|(_, v)| v.clone())
                .collect()
        };
        Ok(GroupedAdamW {
            decayed: AdamW::new(pick(true), params(weight_decay))?,
            plain: AdamW::new(pick(false), params(0.0))?,
        })
    }

    /// Sets the learning rate of both groups.
    pub fn set_lr(&mut self, lr: f64) {
        self.decayed.set_learning_rate(lr);
        self.plain.set_learning_rate(lr);
    }

    /// Applies one update from `grads`.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.decayed.step(grads)?;
        self.plain.step(grads)?;
        Ok(())
    }
}

/// Adds the gradients of `more` into `total` for each of `vars`.
pub fn accumulate(
    total: &mut Option<GradStore>,
    more: GradStore,
    vars: &[(String, Var)],
) -> Result<()> {
    let Some(acc) = total else {
        *total = Some(more);
        return Ok(());
    };
    for (_, var) in vars {
        if let Some(g) = more.get(var.as_tensor()) {
            let sum = match acc.get(var.as_tensor()) {
                Some(prev) => (prev + g)?,
                None => g.clone(),
            };
            acc.insert(var.as_tensor(), sum);
        }
    }
    Ok(())
}

/// The global L2 norm of the gradients of `vars`.
pub fn global_norm(grads: &GradStore, vars: &[(String, Var)]) -> Result<f64> {
    let mut sum = 0f64;
    for (_, var) in vars {
        if let Some(g) = grads.get(var.as_tensor()) {
            sum += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
    }
    Ok(sum.sqrt())
}

/// Scales the gradients so that their global norm is at most `max_norm`; returns the norm
/// before clipping.
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[(String, Var)], max_norm: f64) -> Result<f64> {
    let norm = global_norm(grads, vars)?;
    if norm > max_norm && norm.is_finite() {
        let scale = max_norm / norm;
        for (_, var) in vars {
            if let Some(g) = grads.get(var.as_tensor()) {
                let scaled = (g * scale)?;
                grads.insert(var.as_tensor(), scaled);
            }
        }
    }
    Ok(norm)
}
