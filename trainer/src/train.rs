//! The training loop: batches from the corpus, the optional techniques (scheduled
//! sampling, label smoothing, length curriculum, clipping, accumulation), held-out
//! evaluation every K steps, the progress bar, the JSON-lines log and the loss curve.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor, Var, D};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;

use crate::config::LlamaConfig;
use crate::corpus::{coin_flips, WindowSampler};
use crate::error::{io_err, Result, TrainerError};
use crate::loss::cross_entropy;
use crate::model::Llama;
use crate::optim::{accumulate, clip_grad_norm, GroupedAdamW};
use crate::schedule::{LengthCurriculum, LrSchedule, ScheduledSampling};

/// Everything that shapes one training run.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Full sequence length.
    pub seq_len: usize,
    /// Tokens per micro-batch (the batch is `tokens / seq_len` rows).
    pub batch_tokens: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// Optimizer steps (the cosine ends here).
    pub steps: usize,
    /// Wall-clock budget; the schedule is stretched to end there if it comes first.
    pub time_limit: Option<Duration>,
    /// Learning rate schedule (its `total` is `steps`).
    pub lr: LrSchedule,
    /// AdamW weight decay on matrices.
    pub weight_decay: f64,
    /// Clip the global gradient norm to this value.
    pub clip_grad: Option<f64>,
    /// Label smoothing epsilon.
    pub label_smoothing: f64,
    /// Scheduled sampling (teacher forcing when `None`).
    pub scheduled_sampling: Option<ScheduledSampling>,
    /// Length curriculum (full length from the start when `None`).
    pub curriculum: Option<LengthCurriculum>,
    /// Evaluate on the held-out split every this many steps.
    pub eval_every: usize,
    /// Held-out windows per evaluation.
    pub eval_windows: usize,
    /// Random seed (initial weights, batches, coin flips).
    pub seed: u64,
    /// Show a progress bar.
    pub progress: bool,
}

/// One line of the JSON-lines log, written at every evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct EvalRecord {
    /// Optimizer step.
    pub step: usize,
    /// Training tokens seen.
    pub tokens: usize,
    /// Seconds since the start.
    pub elapsed_s: f64,
    /// Learning rate at this step.
    pub lr: f64,
    /// Mean training loss since the previous evaluation.
    pub train_loss: f64,
    /// Held-out cross-entropy (nats per token, no smoothing).
    pub held_out_loss: f64,
    /// `exp(held_out_loss)`.
    pub held_out_ppl: f64,
    /// Global gradient norm before clipping, at the last step.
    pub grad_norm: f64,
    /// Teacher-forcing probability at this step.
    pub teacher_forcing: f64,
    /// Sequence length at this step.
    pub seq_len: usize,
}

/// What a finished run reports.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    /// Optimizer steps taken.
    pub steps: usize,
    /// Training tokens consumed.
    pub tokens: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Final held-out loss.
    pub held_out_loss: f64,
    /// Final held-out perplexity.
    pub held_out_ppl: f64,
    /// Every evaluation, in order.
    pub evals: Vec<EvalRecord>,
}

/// Trainable state: the config and the named variables.
pub struct Trainee {
    /// Model hyper-parameters.
    pub cfg: LlamaConfig,
    /// Named weights.
    pub vars: Vec<(String, Var)>,
}

impl Trainee {
    /// The model over the current weights.
    pub fn model(&self) -> Result<Llama> {
        Llama::from_vars(&self.cfg, &self.vars)
    }

    /// The current weights as plain tensors.
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        self.vars
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .collect()
    }
}

/// Where the run writes its log and plot.
pub struct TrainOutputs {
    /// JSON-lines log of every evaluation.
    pub log: PathBuf,
    /// Loss curve PNG.
    pub plot: PathBuf,
}

/// Mean held-out loss over `windows` (each `len + 1` tokens), `rows` per forward pass.
pub fn evaluate(model: &Llama, windows: &[Vec<u32>], rows: usize) -> Result<f64> {
    let (mut total, mut count) = (0f64, 0usize);
    for chunk in windows.chunks(rows.max(1)) {
        let len = chunk[0].len() - 1;
        let flat: Vec<u32> = chunk.iter().flatten().copied().collect();
        let (inputs, targets) = split_windows(&flat, chunk.len(), len)?;
        let logits = model.forward(&inputs)?;
        let v = logits.dim(D::Minus1)?;
        let loss = cross_entropy(&logits.reshape(((), v))?, &targets.flatten_all()?, 0.0)?;
        total += loss.to_scalar::<f32>()? as f64 * chunk.len() as f64;
        count += chunk.len();
    }
    Ok(total / count.max(1) as f64)
}

/// Splits `batch` flattened windows of `len + 1` tokens into inputs and targets `[batch, len]`.
fn split_windows(flat: &[u32], batch: usize, len: usize) -> Result<(Tensor, Tensor)> {
    let all = Tensor::from_slice(flat, (batch, len + 1), &Device::Cpu)?;
    Ok((
        all.narrow(1, 0, len)?.contiguous()?,
        all.narrow(1, 1, len)?.contiguous()?,
    ))
}

/// Replaces input tokens by the model's own predictions with probability `1 - tf_prob`
/// (scheduled sampling, two-pass form): a pass without gradients under teacher forcing
/// predicts every next token; position `t >= 1` then takes the prediction made at `t - 1`.
pub fn mix_predictions(
    model: &Llama,
    inputs: &Tensor,
    tf_prob: f64,
    rng: &mut StdRng,
) -> Result<Tensor> {
    let (b, len) = inputs.dims2()?;
    let preds = model
        .forward(inputs)?
        .detach()
        .argmax(D::Minus1)?
        .to_dtype(DType::U32)?;
    let preds = preds.to_vec2::<u32>()?;
    let mut rows = inputs.to_vec2::<u32>()?;
    for (row, pred) in rows.iter_mut().zip(&preds) {
        for (t, coin) in coin_flips(rng, len).into_iter().enumerate().skip(1) {
            if coin >= tf_prob {
                row[t] = pred[t - 1];
            }
        }
    }
    let flat: Vec<u32> = rows.into_iter().flatten().collect();
    Ok(Tensor::from_vec(flat, (b, len), &Device::Cpu)?)
}

/// Trains `trainee` on `train` tokens, evaluating on `held_out`.
pub fn train(
    trainee: &Trainee,
    train: &mut WindowSampler,
    held_out: &WindowSampler,
    opts: &TrainOptions,
    outputs: &TrainOutputs,
) -> Result<TrainSummary> {
    if opts.seq_len < 2
        || opts.batch_tokens < opts.seq_len
        || opts.grad_accum == 0
        || opts.steps == 0
    {
        return Err(TrainerError::InvalidOption(
            "need seq_len >= 2, batch_tokens >= seq_len, grad_accum >= 1 and steps >= 1".into(),
        ));
    }
    if train.len() < 2 || held_out.len() < 2 {
        return Err(TrainerError::InvalidOption(
            "training and held-out splits need at least 2 tokens each".into(),
        ));
    }
    let model = trainee.model()?;
    let mut optim = GroupedAdamW::new(&trainee.vars, opts.lr.peak, opts.weight_decay)?;
    let mut rng = StdRng::seed_from_u64(opts.seed ^ 0x5eed);
    let eval_set = held_out.sequential(opts.seq_len, opts.eval_windows);
    let mut log = std::fs::File::create(&outputs.log).map_err(io_err(&outputs.log))?;
    let bar = progress_bar(opts);
    let start = Instant::now();
    let (mut tokens, mut step) = (0usize, 0usize);
    let (mut loss_sum, mut loss_n, mut grad_norm) = (0f64, 0usize, 0f64);
    let mut train_curve = Vec::new();
    let mut evals: Vec<EvalRecord> = Vec::new();
    let mut lr = opts.lr.at(0);
    loop {
        // Progress in schedule steps: the step count, or the share of the time budget.
        let by_time = opts.time_limit.map_or(0, |limit| {
            (start.elapsed().as_secs_f64() / limit.as_secs_f64() * opts.steps as f64) as usize
        });
        let progress = step.max(by_time);
        let done = progress >= opts.steps;
        if done || (step > 0 && step % opts.eval_every == 0) {
            let held = evaluate(&model, &eval_set, 8)?;
            let record = EvalRecord {
                step,
                tokens,
                elapsed_s: start.elapsed().as_secs_f64(),
                lr,
                train_loss: if loss_n > 0 {
                    loss_sum / loss_n as f64
                } else {
                    f64::NAN
                },
                held_out_loss: held,
                held_out_ppl: held.exp(),
                grad_norm,
                teacher_forcing: opts
                    .scheduled_sampling
                    .map_or(1.0, |s| s.teacher_forcing_prob(progress)),
                seq_len: opts
                    .curriculum
                    .map_or(opts.seq_len, |c| c.length_at(progress)),
            };
            writeln!(log, "{}", serde_json::to_string(&record).expect("json"))
                .map_err(io_err(&outputs.log))?;
            bar.println(format!(
                "step {:>6}  train {:.3}  held-out {:.3} (ppl {:.1})",
                record.step, record.train_loss, record.held_out_loss, record.held_out_ppl
            ));
            evals.push(record);
            let held_curve: Vec<(usize, f64)> =
                evals.iter().map(|e| (e.step, e.held_out_loss)).collect();
            crate::plot::loss_curve(&outputs.plot, &train_curve, &held_curve)?;
            (loss_sum, loss_n) = (0.0, 0);
        }
        if done {
            break;
        }
        lr = opts.lr.at(progress);
        optim.set_lr(lr);
        let len = opts
            .curriculum
            .map_or(opts.seq_len, |c| c.length_at(progress));
        let rows = (opts.batch_tokens / len).max(1);
        let tf_prob = opts
            .scheduled_sampling
            .map_or(1.0, |s| s.teacher_forcing_prob(progress));
        let mut grads = None;
        let mut step_loss = 0f64;
        for _ in 0..opts.grad_accum {
            let (flat, len) = train.sample(rows, len);
            let (mut inputs, targets) = split_windows(&flat, rows, len)?;
            if tf_prob < 1.0 {
                inputs = mix_predictions(&model, &inputs, tf_prob, &mut rng)?;
            }
            let logits = model.forward(&inputs)?;
            let v = logits.dim(D::Minus1)?;
            let loss = cross_entropy(
                &logits.reshape(((), v))?,
                &targets.flatten_all()?,
                opts.label_smoothing,
            )?;
            let value = loss.to_scalar::<f32>()?;
            if !value.is_finite() {
                return Err(TrainerError::Diverged { step, loss: value });
            }
            step_loss += value as f64 / opts.grad_accum as f64;
            accumulate(
                &mut grads,
                (loss / opts.grad_accum as f64)?.backward()?,
                &trainee.vars,
            )?;
            tokens += rows * len;
        }
        let mut grads = grads.expect("at least one micro-batch");
        grad_norm = match opts.clip_grad {
            Some(max) => clip_grad_norm(&mut grads, &trainee.vars, max)?,
            None => crate::optim::global_norm(&grads, &trainee.vars)?,
        };
        optim.step(&grads)?;
        step += 1;
        loss_sum += step_loss;
        loss_n += 1;
        train_curve.push((step, step_loss));
        let tps = tokens as f64 / start.elapsed().as_secs_f64();
        bar.set_position(progress.min(opts.steps) as u64);
        bar.set_message(format!("loss {step_loss:.3}  {tps:.0} tok/s  lr {lr:.2e}"));
    }
    bar.finish_and_clear();
    let last = evals.last().expect("evaluated at the end");
    Ok(TrainSummary {
        steps: step,
        tokens,
        seconds: start.elapsed().as_secs_f64(),
        held_out_loss: last.held_out_loss,
        held_out_ppl: last.held_out_ppl,
        evals: evals.clone(),
    })
}

fn progress_bar(opts: &TrainOptions) -> ProgressBar {
    if !opts.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(opts.steps as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] step {pos}/{len} {msg} ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

/// Writes a short human summary of a run.
pub fn describe(summary: &TrainSummary, params: usize, path: &Path) -> String {
    format!(
        "trained {params} parameters for {} steps ({} tokens) in {:.1} min ({:.0} tokens/s); held-out loss {:.3}, perplexity {:.2}; model in {}",
        summary.steps,
        summary.tokens,
        summary.seconds / 60.0,
        summary.tokens as f64 / summary.seconds.max(1e-9),
        summary.held_out_loss,
        summary.held_out_ppl,
        path.display()
    )
}
