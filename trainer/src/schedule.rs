//! Schedules over training steps: learning rate, scheduled-sampling probability and
//! sequence length. Pure functions of the step, so each is tested at known points.

/// Linear warmup from 0 to `peak`, then cosine decay to `min` at `total` steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    /// Learning rate reached at the end of warmup.
    pub peak: f64,
    /// Learning rate at the end of the cosine (and after it).
    pub min: f64,
    /// Number of warmup steps.
    pub warmup: usize,
    /// Total number of steps (warmup included).
    pub total: usize,
}

impl LrSchedule {
    /// Learning rate for optimizer step `step` (0-based).
    pub fn at(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.peak * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1);
        let progress = ((step - self.warmup) as f64 / span as f64).min(1.0);
        self.min + 0.5 * (self.peak - self.min) * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

/// How the probability of feeding the ground-truth token decays (Bengio et al. 2015,
/// "Scheduled Sampling for Sequence Prediction with Recurrent Neural Networks", §2.4).
#[derive(Debug, Clone, Copy, PartialEq, clap::ValueEnum)]
pub enum SamplingDecay {
    /// `eps_i = max(floor, 1 - i / steps)`.
    Linear,
    /// `eps_i = k^i` with `k` chosen so that `eps` reaches `floor` at `steps`.
    Exponential,
    /// `eps_i = k / (k + exp(i / k))` with `k = steps / 10`.
    InverseSigmoid,
}

/// The teacher-forcing probability over training: the chance that an input position keeps
/// the ground-truth token rather than the model's own prediction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScheduledSampling {
    /// The decay curve.
    pub decay: SamplingDecay,
    /// Steps over which the probability decays.
    pub steps: usize,
    /// Lowest teacher-forcing probability.
    pub floor: f64,
}

impl ScheduledSampling {
    /// Teacher-forcing probability at step `i`.
    pub fn teacher_forcing_prob(&self, i: usize) -> f64 {
        let steps = self.steps.max(1) as f64;
        let i = i as f64;
        let eps = match self.decay {
            SamplingDecay::Linear => 1.0 - i / steps,
            SamplingDecay::Exponential => {
                let k = self.floor.max(1e-6).powf(1.0 / steps);
                k.powf(i)
            }
            SamplingDecay::InverseSigmoid => {
                let k = (steps / 10.0).max(1.0);
                k / (k + (i / k).exp())
            }
        };
        eps.clamp(self.floor, 1.0)
    }
}

/// Length curriculum: sequence length grows linearly from `start` to `full` over `steps`,
/// rounded down to a multiple of 8 (and never below `start`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LengthCurriculum {
    /// Length at step 0.
    pub start: usize,
    /// Length from `steps` on.
    pub full: usize,
    /// Steps over which the length grows.
    pub steps: usize,
}

impl LengthCurriculum {
    /// Sequence length at step `i`.
    pub fn length_at(&self, i: usize) -> usize {
        if self.steps == 0 || i >= self.steps {
            return self.full;
        }
        let grown = self.start + (self.full - self.start) * i / self.steps;
        (grown / 8 * 8).clamp(self.start, self.full)
    }
}
