//! The standard sampler chain (repetition penalty 1.1, top-k 50, top-p 0.9, temperature
//! 0.8, seeded draw), a min-p chain (the same without top-k and top-p, min-p 0.05) and a
//! top-p chain (without top-k), through the plugin ABI, over a 32k and a 128k vocabulary.
//! `cargo bench -p rill --bench sampler_chain`; compare with one decode step of the
//! default model (`rill bench`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rill::sampling::SamplerChain;
use rill::GenerationConfig;

fn chain(c: &mut Criterion) {
    let standard = GenerationConfig {
        do_sample: Some(true),
        repetition_penalty: Some(1.1),
        top_k: Some(50),
        top_p: Some(0.9),
        temperature: Some(0.8),
        seed: Some(1),
        ..Default::default()
    };
    // llama.cpp users' favourite: no top-k, min-p over the whole vocabulary.
    let min_p = GenerationConfig {
        top_k: Some(0),
        top_p: None,
        min_p: Some(0.05),
        ..standard.clone()
    };
    // OpenAI-style: nucleus sampling alone.
    let top_p = GenerationConfig {
        top_k: Some(0),
        ..standard.clone()
    };
    for (name, cfg) in [
        ("standard_chain", standard),
        ("min_p_chain", min_p),
        ("top_p_chain", top_p.clone()),
    ] {
        let mut group = c.benchmark_group(name);
        for vocab in [32_000usize, 128_000] {
            let logits: Vec<f32> = (0..vocab)
                .map(|i| ((i as f32 * 0.618).sin() * 7.0) + (i % 97) as f32 * 0.01)
                .collect();
            bench_chain(&mut group, &cfg, &logits, &vocab.to_string());
        }
        group.finish();
    }
    // The rows above are nearly flat (top-p keeps most of the vocabulary); a language
    // model's are peaked: Zipf-like logits over a shuffled vocabulary.
    let mut group = c.benchmark_group("top_p_chain_zipf");
    for vocab in [32_000usize, 128_000] {
        let logits: Vec<f32> = (0..vocab)
            .map(|i| 12.0 - 2.0 * ((i * 7919 % vocab) as f32 + 1.0).ln())
            .collect();
        bench_chain(&mut group, &top_p, &logits, &vocab.to_string());
    }
    group.finish();
}

fn bench_chain(
    group: &mut criterion::BenchmarkGroup<criterion::measurement::WallTime>,
    cfg: &GenerationConfig,
    logits: &[f32],
    id: &str,
) {
    let vocab = logits.len();
    let context: Vec<u32> = (0..256).map(|i| (i * 7919 % vocab) as u32).collect();
    let mut sampler = SamplerChain::new(cfg).unwrap();
    group.bench_function(BenchmarkId::from_parameter(id), |b| {
        b.iter(|| sampler.pick(logits, &context, 16).unwrap())
    });
}

criterion_group!(benches, chain);
criterion_main!(benches);
