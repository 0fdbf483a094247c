//! Hot pieces around a decode step: KV-cache append, reorder (beam search) and truncate,
//! and UTF-8-safe streaming of generated text. `cargo bench -p rill --bench hot_paths`.

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

criterion_group!(benches, kv, streaming);
criterion_main!(benches);
