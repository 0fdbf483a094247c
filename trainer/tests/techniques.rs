//! Each training technique, checked at known points or against its formula.

use candle_core::{Device, Tensor, Var};
use rill_trainer::config::{LlamaConfig, Preset};
use rill_trainer::corpus::WindowSampler;
use rill_trainer::loss::cross_entropy;
use rill_trainer::model::{init_vars, Llama};
use rill_trainer::optim::{accumulate, clip_grad_norm, global_norm};
use rill_trainer::schedule::{LengthCurriculum, LrSchedule, SamplingDecay, ScheduledSampling};
use rill_trainer::train::{mix_predictions, train, TrainOptions, TrainOutputs, Trainee};
use rill_trainer::Result;

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn learning_rate_warms_up_linearly_then_follows_the_cosine() {
    let s = LrSchedule {
        peak: 1e-3,
        min: 1e-5,
        warmup: 10,
        total: 110,
    };
    assert!(close(s.at(0), 1e-4, 1e-12));
    assert!(close(s.at(4), 5e-4, 1e-12));
    assert!(
        close(s.at(9), 1e-3, 1e-12),
        "end of warmup reaches the peak"
    );
    assert!(close(s.at(10), 1e-3, 1e-12), "cosine starts at the peak");
    assert!(
        close(s.at(60), (1e-3 + 1e-5) / 2.0, 1e-12),
        "half way is the mean"
    );
    assert!(
        close(s.at(110), 1e-5, 1e-12),
        "end of the cosine is the minimum"
    );
    assert!(
        close(s.at(500), 1e-5, 1e-12),
        "stays at the minimum after the end"
    );
    assert!((10..110).all(|i| s.at(i + 1) <= s.at(i)), "monotone decay");
}

#[test]
fn scheduled_sampling_schedules_at_known_steps() {
    let lin = ScheduledSampling {
        decay: SamplingDecay::Linear,
        steps: 100,
        floor: 0.2,
    };
    assert!(close(lin.teacher_forcing_prob(0), 1.0, 1e-12));
    assert!(close(lin.teacher_forcing_prob(50), 0.5, 1e-12));
    assert!(
        close(lin.teacher_forcing_prob(90), 0.2, 1e-12),
        "clamped at the floor"
    );

    let exp = ScheduledSampling {
        decay: SamplingDecay::Exponential,
        steps: 100,
        floor: 0.25,
    };
    assert!(close(exp.teacher_forcing_prob(0), 1.0, 1e-12));
    assert!(
        close(exp.teacher_forcing_prob(50), 0.5, 1e-9),
        "k^50 = sqrt(0.25)"
    );
    assert!(close(exp.teacher_forcing_prob(100), 0.25, 1e-9));

    let sig = ScheduledSampling {
        decay: SamplingDecay::InverseSigmoid,
        steps: 100,
        floor: 0.0,
    };
    let k: f64 = 10.0;
    assert!(close(sig.teacher_forcing_prob(0), k / (k + 1.0), 1e-12));
    assert!(close(
        sig.teacher_forcing_prob(30),
        k / (k + 3f64.exp()),
        1e-12
    ));
    assert!((0..100).all(|i| sig.teacher_forcing_prob(i + 1) < sig.teacher_forcing_prob(i)));
}

#[test]
fn curriculum_grows_length_in_multiples_of_eight() {
    let c = LengthCurriculum {
        start: 32,
        full: 256,
        steps: 100,
    };
    assert_eq!(c.length_at(0), 32);
    assert_eq!(c.length_at(50), 144);
    assert_eq!(c.length_at(51), 144, "rounded down to a multiple of 8");
    assert_eq!(c.length_at(99), 248);
    assert_eq!(c.length_at(100), 256);
    assert_eq!(c.length_at(10_000), 256);
}

#[test]
fn label_smoothed_loss_equals_its_formula() -> Result<()> {
    let logits = [[2.0f32, -1.0, 0.5, 0.0], [0.1, 0.2, 3.0, -2.0]];
    let targets = [0u32, 3];
    let eps = 0.1;
    let (mut expected, mut expected_plain) = (0.0, 0.0);
    for (row, &t) in logits.iter().zip(&targets) {
        let lse = row.iter().map(|&x| (x as f64).exp()).sum::<f64>().ln();
        let logp: Vec<f64> = row.iter().map(|&x| x as f64 - lse).collect();
        let uniform = -logp.iter().sum::<f64>() / row.len() as f64;
        expected += ((1.0 - eps) * -logp[t as usize] + eps * uniform) / 2.0;
        expected_plain += -logp[t as usize] / 2.0;
    }
    let l = Tensor::new(&logits, &Device::Cpu)?;
    let t = Tensor::new(&targets, &Device::Cpu)?;
    let got = cross_entropy(&l, &t, eps)?.to_scalar::<f32>()? as f64;
    assert!(close(got, expected, 1e-6), "{got} vs {expected}");
    let plain = cross_entropy(&l, &t, 0.0)?.to_scalar::<f32>()? as f64;
    assert!(
        close(plain, expected_plain, 1e-6),
        "{plain} vs {expected_plain}"
    );
    assert!(!close(plain, got, 1e-3), "smoothing changes the loss");
    Ok(())
}

fn tiny() -> (LlamaConfig, Vec<(String, Var)>) {
    let cfg = LlamaConfig::preset(Preset::Test, 64);
    let vars = init_vars(&cfg, 7, &Device::Cpu).unwrap();
    (cfg, vars)
}

fn batch_loss(model: &Llama, ids: &[u32], rows: usize) -> Result<Tensor> {
    let len = ids.len() / rows;
    let all = Tensor::from_slice(ids, (rows, len), &Device::Cpu)?;
    let inputs = all.narrow(1, 0, len - 1)?.contiguous()?;
    let targets = all.narrow(1, 1, len - 1)?.contiguous()?;
    let logits = model.forward(&inputs)?;
    cross_entropy(&logits.reshape(((), 64))?, &targets.flatten_all()?, 0.0)
}

#[test]
fn every_parameter_gets_a_nonzero_gradient() -> Result<()> {
    let (cfg, vars) = tiny();
    let model = Llama::from_vars(&cfg, &vars)?;
    let ids: Vec<u32> = (0..40).map(|i| (i * 7 % 64) as u32).collect();
    let grads = batch_loss(&model, &ids, 2)?.backward()?;
    for (name, var) in &vars {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name} has no gradient"));
        let norm = g.sqr()?.sum_all()?.to_scalar::<f32>()?;
        assert!(
            norm > 0.0 && norm.is_finite(),
            "{name}: gradient norm {norm}"
        );
    }
    Ok(())
}

#[test]
fn gradient_matches_finite_differences() -> Result<()> {
    let (cfg, vars) = tiny();
    let ids: Vec<u32> = (0..24).map(|i| (i * 5 % 64) as u32).collect();
    let model = Llama::from_vars(&cfg, &vars)?;
    let grads = batch_loss(&model, &ids, 2)?.backward()?;
    for name in [
        "model.layers.1.self_attn.k_proj.weight",
        "model.layers.0.input_layernorm.weight",
    ] {
        let var = &vars.iter().find(|(n, _)| n == name).unwrap().1;
        let analytic = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()?
            .to_vec1::<f32>()?;
        let base = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
        let shape = var.as_tensor().shape().clone();
        let idx = analytic
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .unwrap()
            .0;
        let h = 1e-2f32;
        let eval = |delta: f32| -> Result<f64> {
            let mut v = base.clone();
            v[idx] += delta;
            var.set(&Tensor::from_vec(v, shape.clone(), &Device::Cpu)?)?;
            Ok(batch_loss(&Llama::from_vars(&cfg, &vars)?, &ids, 2)?.to_scalar::<f32>()? as f64)
        };
        let numeric = (eval(h)? - eval(-h)?) / (2.0 * h as f64);
        var.set(&Tensor::from_vec(base, shape, &Device::Cpu)?)?;
        let rel = (numeric - analytic[idx] as f64).abs() / numeric.abs().max(1e-6);
        assert!(
            rel < 0.05,
            "{name}[{idx}]: numeric {numeric} vs analytic {}",
            analytic[idx]
        );
    }
    Ok(())
}

#[test]
fn clipping_leaves_the_global_norm_at_the_bound() -> Result<()> {
    let (cfg, vars) = tiny();
    let model = Llama::from_vars(&cfg, &vars)?;
    let ids: Vec<u32> = (0..40).map(|i| (i * 3 % 64) as u32).collect();
    let mut grads = batch_loss(&model, &ids, 2)?.backward()?;
    let before = global_norm(&grads, &vars)?;
    let bound = before / 4.0;
    let reported = clip_grad_norm(&mut grads, &vars, bound)?;
    assert!(close(reported, before, 1e-9));
    assert!(close(global_norm(&grads, &vars)?, bound, bound * 1e-5));
    // A bound above the norm changes nothing.
    let again = clip_grad_norm(&mut grads, &vars, bound * 10.0)?;
    assert!(close(again, bound, bound * 1e-5));
    assert!(close(global_norm(&grads, &vars)?, bound, bound * 1e-5));
    Ok(())
}

#[test]
fn accumulated_gradients_equal_the_full_batch_gradient() -> Result<()> {
    let (cfg, vars) = tiny();
    let model = Llama::from_vars(&cfg, &vars)?;
    let ids: Vec<u32> = (0..48).map(|i| (i * 11 % 64) as u32).collect();
    let full = batch_loss(&model, &ids, 4)?.backward()?;
    let mut acc = None;
    for half in ids.chunks(24) {
        accumulate(
            &mut acc,
            (batch_loss(&model, half, 2)? / 2.0)?.backward()?,
            &vars,
        )?;
    }
    let acc = acc.unwrap();
    for (name, var) in &vars {
        let a = acc.get(var.as_tensor()).unwrap();
        let f = full.get(var.as_tensor()).unwrap();
        let diff = (a - f)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "{name}: {diff}");
    }
    Ok(())
}

#[test]
fn scheduled_sampling_feeds_predictions_with_the_schedule_probability() -> Result<()> {
    let (cfg, vars) = tiny();
    let model = Llama::from_vars(&cfg, &vars)?;
    let ids: Vec<u32> = (0..64).map(|i| (i * 13 % 64) as u32).collect();
    let inputs = Tensor::from_slice(&ids, (2, 32), &Device::Cpu)?;
    let preds = model
        .forward(&inputs)?
        .argmax(candle_core::D::Minus1)?
        .to_vec2::<u32>()?;
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1);
    let kept = mix_predictions(&model, &inputs, 1.0, &mut rng)?.to_vec2::<u32>()?;
    assert_eq!(
        kept,
        inputs.to_vec2::<u32>()?,
        "probability 1 is teacher forcing"
    );
    let own = mix_predictions(&model, &inputs, 0.0, &mut rng)?.to_vec2::<u32>()?;
    for (row, (o, p)) in own.iter().zip(&preds).enumerate() {
        assert_eq!(
            o[0],
            ids[row * 32],
            "the first position always keeps its token"
        );
        assert_eq!(&o[1..], &p[..31], "probability 0 feeds every prediction");
    }
    Ok(())
}

fn repeated_corpus() -> (WindowSampler, WindowSampler) {
    let pattern: Vec<u32> = (0..16).map(|i| (i * 3 % 60 + 3) as u32).collect();
    let stream: Vec<u32> = pattern.iter().copied().cycle().take(4000).collect();
    (
        WindowSampler::new(stream.clone(), 1),
        WindowSampler::new(stream[..600].to_vec(), 2),
    )
}

fn quick_options() -> TrainOptions {
    TrainOptions {
        seq_len: 32,
        batch_tokens: 256,
        grad_accum: 1,
        steps: 40,
        time_limit: None,
        lr: LrSchedule {
            peak: 1e-2,
            min: 1e-3,
            warmup: 5,
            total: 40,
        },
        weight_decay: 0.0,
        clip_grad: Some(1.0),
        label_smoothing: 0.0,
        scheduled_sampling: None,
        curriculum: None,
        eval_every: 20,
        eval_windows: 8,
        seed: 1,
        progress: false,
    }
}

fn run(opts: TrainOptions) -> Result<(f64, f64)> {
    let (cfg, vars) = tiny();
    let trainee = Trainee { cfg, vars };
    let dir = tempfile::tempdir().unwrap();
    let outputs = TrainOutputs {
        log: dir.path().join("log.jsonl"),
        plot: dir.path().join("loss.png"),
    };
    let (mut train_set, held) = repeated_corpus();
    let model = trainee.model()?;
    let before = rill_trainer::train::evaluate(&model, &held.sequential(32, 8), 8)?;
    let summary = train(&trainee, &mut train_set, &held, &opts, &outputs)?;
    let lines = std::fs::read_to_string(&outputs.log)
        .unwrap()
        .lines()
        .count();
    assert_eq!(lines, summary.evals.len(), "one log line per evaluation");
    assert!(
        std::fs::metadata(&outputs.plot).unwrap().len() > 1000,
        "loss curve drawn"
    );
    Ok((before, summary.held_out_loss))
}

#[test]
fn loss_falls_on_a_tiny_corpus_with_teacher_forcing() -> Result<()> {
    let (before, after) = run(quick_options())?;
    assert!(after < before * 0.5, "held-out loss {before} -> {after}");
    Ok(())
}

#[test]
fn loss_falls_with_every_technique_enabled() -> Result<()> {
    let opts = TrainOptions {
        grad_accum: 2,
        label_smoothing: 0.1,
        scheduled_sampling: Some(ScheduledSampling {
            decay: SamplingDecay::InverseSigmoid,
            steps: 40,
            floor: 0.5,
        }),
        curriculum: Some(LengthCurriculum {
            start: 8,
            full: 32,
            steps: 20,
        }),
        ..quick_options()
    };
    let (before, after) = run(opts)?;
    assert!(after < before * 0.6, "held-out loss {before} -> {after}");
    Ok(())
}
