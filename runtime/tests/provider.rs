//! Execution providers (issue 11): the CPU by default; CUDA asked for where it cannot be
//! used is a clear error naming what is missing; "CUDA, else the CPU" falls back and says
//! why. Where CUDA can be used (a GPU, the `cuda` feature and the onnxruntime-gpu
//! library), its greedy tokens and logits must match the CPU's; elsewhere that check is
//! skipped, saying so. So is the check that the KV cache stays on the GPU through beam
//! search, rollback and saved state.

mod common;

use std::sync::Arc;

use rill::{GenerationConfig, Model, ModelOptions, Provider, RillError, Session, SessionOptions};

fn open(provider: Provider) -> rill::Result<Arc<Model>> {
    let options = ModelOptions {
        provider,
        ..Default::default()
    };
    Model::open(common::default_model_dir(), &options).map(Arc::new)
}

fn greedy(model: &Arc<Model>) -> (Vec<u32>, Vec<f32>) {
    let mut s = Session::new(model.clone(), SessionOptions::default()).unwrap();
    let logits = s
        .forward(&model.tokenize(common::PROMPTS[0]).unwrap())
        .unwrap()
        .to_vec();
    s.reset();
    s.set_generation_config(GenerationConfig {
        do_sample: Some(false),
        max_new_tokens: Some(32),
        ..Default::default()
    })
    .unwrap();
    (
        s.generate(common::PROMPTS[0], |_| true).unwrap().tokens,
        logits,
    )
}

/// The largest absolute difference between two logit vectors.
fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

#[test]
fn the_cpu_is_the_default() {
    let model = open(Provider::default()).unwrap();
    assert_eq!(model.provider(), Provider::Cpu);
    assert!(model.provider_note().is_none());
}

/// The reason CUDA cannot be used here, or None where it can.
fn cuda_unusable() -> Option<String> {
    match open(Provider::Cuda { device: 0 }) {
        Ok(_) => None,
        Err(RillError::Provider { provider, message }) => {
            assert_eq!(provider, "cuda:0");
            Some(message)
        }
        Err(other) => panic!("asking for CUDA failed with a non-provider error: {other}"),
    }
}

#[test]
fn cuda_where_it_cannot_be_used_is_an_error_naming_what_is_missing() {
    let Some(message) = cuda_unusable() else {
        eprintln!("CUDA is usable here: the error path is not exercised");
        return;
    };
    if !rill::provider::CUDA_BUILD {
        assert!(message.contains("--features cuda"), "{message}");
    } else {
        // A CPU build of ONNX Runtime (CI), or no usable GPU.
        assert!(
            message.contains("no CUDA execution provider") || message.contains("GPU"),
            "{message}"
        );
        assert!(message.contains("make cuda-env"), "{message}");
    }
    let e = RillError::Provider {
        provider: "cuda:0".into(),
        message,
    };
    assert!(e.to_string().starts_with("execution provider cuda:0: "));
}

#[test]
fn cuda_else_cpu_falls_back_and_says_why() {
    if cuda_unusable().is_none() {
        eprintln!("CUDA is usable here: no fallback to check");
        return;
    }
    let model = open(Provider::CudaOrCpu { device: 0 }).unwrap();
    assert_eq!(model.provider(), Provider::Cpu);
    let note = model.provider_note().expect("the fallback is explained");
    assert!(
        note.starts_with("CUDA not used, running on the CPU: "),
        "{note}"
    );
    let cpu = open(Provider::Cpu).unwrap();
    assert_eq!(greedy(&model).0, greedy(&cpu).0);
}

#[test]
fn cuda_gives_the_cpus_greedy_tokens_and_logits() {
    if let Some(reason) = cuda_unusable() {
        eprintln!("SKIPPED (no usable CUDA here): {reason}");
        return;
    }
    let (gpu_tokens, gpu_logits) = greedy(&open(Provider::Cuda { device: 0 }).unwrap());
    let (cpu_tokens, cpu_logits) = greedy(&open(Provider::Cpu).unwrap());
    assert_eq!(gpu_tokens, cpu_tokens);
    let worst = max_difference(&gpu_logits, &cpu_logits);
    assert!(worst < 1e-3, "logits differ by {worst}");
}

/// What a session does to its cache besides decoding, run on `model`: a 4-beam search,
/// a rollback then greedy continuation, and the saved state of a session.
fn cache_workout(model: &Arc<Model>) -> (Vec<Vec<u32>>, Vec<u32>, Vec<u8>) {
    let prompt = model.tokenize(common::PROMPTS[0]).unwrap();
    let cfg = rill::beam::BeamConfig {
        num_beams: 4,
        length_penalty: 1.0,
        early_stopping: rill::beam::EarlyStopping::False,
        num_return_sequences: 4,
        max_new_tokens: 16,
        eos: vec![1],
        repetition_penalty: 1.0,
        no_repeat_ngram_size: 0,
        groups: None,
        processors: Default::default(),
        sampling: None,
        stop_strings: Vec::new(),
    };
    let beams = rill::beam::search(model, &prompt, &cfg)
        .unwrap()
        .into_iter()
        .map(|h| h.tokens)
        .collect();
    let mut s = Session::new(model.clone(), SessionOptions::default()).unwrap();
    s.set_generation_config(GenerationConfig {
        do_sample: Some(false),
        max_new_tokens: Some(12),
        ..Default::default()
    })
    .unwrap();
    s.generate(common::PROMPTS[0], |_| true).unwrap();
    s.truncate(prompt.len() + 3).unwrap();
    let continued = s.generate_ids(&s.history(), |_| true).unwrap().tokens;
    (beams, continued, s.save_state().unwrap())
}

#[test]
fn the_cache_stays_on_the_gpu_and_beam_rollback_and_state_match_the_cpu() {
    if let Some(reason) = cuda_unusable() {
        eprintln!("SKIPPED (no usable CUDA here): {reason}");
        return;
    }
    let gpu = open(Provider::Cuda { device: 0 }).unwrap();
    assert!(
        gpu.cache_on_device(),
        "KV cache not on the GPU: {:?}",
        gpu.provider_note()
    );
    let cpu = open(Provider::Cpu).unwrap();
    assert!(!cpu.cache_on_device());
    let (gpu_beams, gpu_continued, gpu_state) = cache_workout(&gpu);
    let (cpu_beams, cpu_continued, _) = cache_workout(&cpu);
    assert_eq!(gpu_beams, cpu_beams);
    assert_eq!(gpu_continued, cpu_continued);
    // A state saved from the GPU's cache restores on the CPU and continues alike.
    let next_logits = |model: &Arc<Model>| {
        let mut s = Session::new(model.clone(), SessionOptions::default()).unwrap();
        s.load_state(&gpu_state).unwrap();
        s.forward(&[262, 1780]).unwrap().to_vec()
    };
    let (on_cpu, on_gpu) = (next_logits(&cpu), next_logits(&gpu));
    let worst = max_difference(&on_cpu, &on_gpu);
    assert!(worst < 1e-3, "logits after restoring differ by {worst}");
}
