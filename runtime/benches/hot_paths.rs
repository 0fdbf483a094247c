//! Hot pieces around a decode step: KV-cache append, reorder (beam search) and truncate,
//! one step of the beam search strategy, greedy decoding's argmax, and UTF-8-safe streaming
//! of generated text.
//! `cargo bench -p rill --bench hot_paths`.

use criterion::{criterion_group, criterion_main, Criterion};
use rill::kv_cache::{CacheDtype, CacheShape, KvCache};

fn kv(c: &mut Criterion) {
    // The default model's cache: 4 layers, 2 KV heads of 64, f32; 4 beams, 512 tokens.
    let shape = CacheShape {
        layers: 4,
        batch: 4,
        kv_heads: 2,
        head_dim: 64,
        capacity: 1024,
    };
    let block = vec![0u8; 4 * 2 * 64 * 4];
    let data: Vec<[&[u8]; 2]> = (0..4)
        .map(|_| [block.as_slice(), block.as_slice()])
        .collect();
    let mut cache = KvCache::new(shape, CacheDtype::F32);
    for _ in 0..512 {
        cache.append(1, &data).unwrap();
    }
    c.bench_function("kv_reorder_4_beams_512_tokens", |b| {
        b.iter(|| cache.reorder(&[1, 0, 0, 2]).unwrap())
    });
    c.bench_function("kv_append_1_token_at_512", |b| {
        b.iter(|| {
            cache.append(1, &data).unwrap();
            cache.truncate(512).unwrap();
        })
    });
}

fn streaming(c: &mut Criterion) {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/rill-tiny/tokenizer.json"
    );
    let tokenizer = tokenizers::Tokenizer::from_file(dir).unwrap();
    let text =
        "In the beginning God created the heaven and the earth. naïve café 🦀 日本語 ".repeat(4);
    let ids = tokenizer
        .encode(text.as_str(), false)
        .unwrap()
        .get_ids()
        .to_vec();
    c.bench_function("utf8_stream_per_token", |b| {
        b.iter(|| {
            let mut stream = rill::stream::TextStream::new(&tokenizer);
            let mut out = String::new();
            for &id in &ids {
                if let Some(p) = stream.push(id) {
                    out.push_str(&p);
                }
            }
            out
        })
    });
}

/// One step of 4-beam search (transformers' defaults: length penalty 1, no processors)
/// over a 4,096 and a 32,000-token vocabulary, 16 steps into the search.
fn beam_step(c: &mut Criterion) {
    use rill_beam::search::{EarlyStopping, Params, Search, Step};
    let params = Params {
        num_beams: 4,
        num_beam_groups: 1,
        diversity_penalty: 0.0,
        length_penalty: 1.0,
        early_stopping: EarlyStopping::False,
        num_return_sequences: 1,
        repetition_penalty: 1.0,
        no_repeat_ngram_size: 0,
        processors: Default::default(),
        eos: vec![1],
        pad: 0,
        sampling: None,
    };
    let mut group = c.benchmark_group("beam_step_4_beams");
    for vocab in [4_096usize, 32_000] {
        let logits: Vec<Vec<f32>> = (0..17)
            .map(|s| {
                (0..4 * vocab)
                    .map(|i| ((i * 31 + s * 7) as f32 * 0.618).sin() * 6.0)
                    .collect()
            })
            .collect();
        let prompt: Vec<u32> = (2..34).collect();
        // A search 16 steps in, its rows extended by the tokens it chose.
        let mut search = Search::new(params.clone()).unwrap();
        let mut rows = vec![prompt.clone(); 4];
        for l in &logits[..16] {
            let step = Step {
                logits: l,
                vocab,
                rows: rows.iter().map(Vec::as_slice).collect(),
                prompt_len: prompt.len(),
                max_length: prompt.len() + 64,
                stops: None,
            };
            let choices = search.step(&step).unwrap().expect("still running");
            rows = choices
                .iter()
                .map(|&(parent, token)| {
                    let mut r = rows[parent as usize].clone();
                    r.push(token);
                    r
                })
                .collect();
        }
        group.bench_function(criterion::BenchmarkId::from_parameter(vocab), |b| {
            b.iter_batched(
                || search.clone(),
                |mut search| {
                    let step = Step {
                        logits: &logits[16],
                        vocab,
                        rows: rows.iter().map(Vec::as_slice).collect(),
                        prompt_len: prompt.len(),
                        max_length: prompt.len() + 64,
                        stops: None,
                    };
                    search.step(&step)
                },
                criterion::BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// Greedy decoding's pick over a 128k vocabulary.
fn greedy_pick(c: &mut Criterion) {
    let logits: Vec<f32> = (0..128_000)
        .map(|i| ((i * 31) as f32 * 0.618).sin() * 6.0)
        .collect();
    c.bench_function("argmax_128k", |b| b.iter(|| rill::session::argmax(&logits)));
}

/// The `regex` and `json` samplers' step over a whole vocabulary of word-like tokens
/// (32k and 128k): 40 bytes into a sentence pattern that most tokens continue, and
/// inside a JSON string, where every such token may come.
fn text_constraints(c: &mut Criterion) {
    use rill_samplers::json::Json;
    use rill_samplers::pattern::Pattern;
    let mut group = c.benchmark_group("text_constraints");
    for vocab in [32_000usize, 128_000] {
        // Distinct word-like tokens: an optional leading space, then 1 to 9 letters
        // drawn with English-like frequencies (seeded; 0.6 trie nodes per byte).
        let letters = b"eeeetttaaoinshrdlucmfwypvbgkjqxz";
        let mut seen = std::collections::HashSet::new();
        let mut bytes: Vec<Vec<u8>> = Vec::with_capacity(vocab);
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        while bytes.len() < vocab {
            let mut t = Vec::new();
            if next() % 2 == 0 {
                t.push(b' ');
            }
            for _ in 0..1 + next() % 9 {
                t.push(letters[next() % letters.len()]);
            }
            if seen.insert(t.clone()) {
                bytes.push(t);
            }
        }
        let bytes_of = |id: u32| bytes.get(id as usize).map(Vec::as_slice);
        // A context whose generated text is ten words of the pattern.
        let generated: Vec<u32> = (0..vocab as u32)
            .filter(|&i| bytes[i as usize].iter().all(|b| b.is_ascii_lowercase()))
            .take(1)
            .chain(
                (0..vocab as u32)
                    .filter(|&i| bytes[i as usize][0] == b' ')
                    .take(9),
            )
            .collect();
        let ids: Vec<u32> = (0..vocab as u32).collect();
        let mut pattern = Pattern::constraint(r"[a-z]+( [a-z]+)*(, [a-z]+)*\.").unwrap();
        let mut logits = vec![0.0f32; vocab];
        group.bench_function(criterion::BenchmarkId::new("regex", vocab), |b| {
            b.iter(|| {
                logits.fill(0.0);
                pattern
                    .restrict(&ids, &mut logits, &generated, &[0], bytes.len(), &bytes_of)
                    .unwrap()
            })
        });
        // `{"` as two extra tokens (the last ids), then the same words inside the string.
        let mut bytes = bytes.clone();
        bytes.extend([b"{".to_vec(), b"\"".to_vec()]);
        let bytes_of = |id: u32| bytes.get(id as usize).map(Vec::as_slice);
        let opening = [vocab as u32, vocab as u32 + 1];
        let in_string: Vec<u32> = opening.iter().chain(&generated).copied().collect();
        let mut json = Json::constraint(&serde_json::json!({})).unwrap();
        group.bench_function(criterion::BenchmarkId::new("json", vocab), |b| {
            b.iter(|| {
                logits.fill(0.0);
                json.restrict(&ids, &mut logits, &in_string, &[0], bytes.len(), &bytes_of)
                    .unwrap()
            })
        });
        // A state met for the first time: the vocabulary's trie walked (made beforehand,
        // as the first step of a generation makes it).
        let mut regex_cold = Pattern::constraint(r"[a-z]+( [a-z]+)*(, [a-z]+)*\.").unwrap();
        let mut warm = vec![0.0f32; vocab];
        regex_cold
            .restrict(&ids, &mut warm, &[], &[0], bytes.len(), &bytes_of)
            .unwrap();
        group.bench_function(criterion::BenchmarkId::new("regex_new_state", vocab), |b| {
            b.iter_batched(
                || regex_cold.fresh(),
                |mut c| {
                    let mut logits = vec![0.0f32; vocab];
                    c.restrict(&ids, &mut logits, &generated, &[0], bytes.len(), &bytes_of)
                        .unwrap()
                },
                criterion::BatchSize::SmallInput,
            )
        });
        regex_cold = regex_cold.fresh();
        let mut json_cold = Json::constraint(&serde_json::json!({})).unwrap();
        warm.fill(0.0);
        json_cold
            .restrict(&ids, &mut warm, &[], &[0], bytes.len(), &bytes_of)
            .unwrap();
        group.bench_function(criterion::BenchmarkId::new("json_new_state", vocab), |b| {
            b.iter_batched(
                || json_cold.fresh(),
                |mut c| {
                    let mut logits = vec![0.0f32; vocab];
                    c.restrict(&ids, &mut logits, &in_string, &[0], bytes.len(), &bytes_of)
                        .unwrap()
                },
                criterion::BatchSize::SmallInput,
            )
        });
        // After a key, where only `:` (and blanks) may come: most of the trie is pruned
        // at its first byte.
        let after_key: Vec<u32> = in_string
            .iter()
            .copied()
            .take(3)
            .chain([vocab as u32 + 1])
            .collect();
        group.bench_function(
            criterion::BenchmarkId::new("json_new_state_after_key", vocab),
            |b| {
                b.iter_batched(
                    || json_cold.fresh(),
                    |mut c| {
                        let mut logits = vec![0.0f32; vocab];
                        c.restrict(&ids, &mut logits, &after_key, &[0], bytes.len(), &bytes_of)
                            .unwrap_err()
                    },
                    criterion::BatchSize::SmallInput,
                )
            },
        );
        drop(regex_cold);
    }
    group.finish();
}

criterion_group!(
    benches,
    kv,
    beam_step,
    greedy_pick,
    streaming,
    text_constraints
);
criterion_main!(benches);
