//! The plugin-params path: any parameters JSON for any standard sampler or strategy is
//! accepted or refused with an error, and an accepted sampler's output passes the host's
//! checks (or is reported as a plugin error), never a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rill::plugin::{Candidates, PluginSampler, PluginStrategy};

const SAMPLERS: [&str; 12] = [
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "typical_p",
    "repetition_penalty",
    "no_repeat_ngram",
    "sequence_bias",
    "bad_words",
    "penalties",
    "greedy",
    "dist",
];

fuzz_target!(|data: &[u8]| {
    let mut b = rill_fuzz::Bytes(data);
    let which = b.byte() as usize;
    let logits: Vec<f32> = b
        .slice()
        .iter()
        .map(|&x| match x {
            255 => f32::NEG_INFINITY,
            254 => f32::NAN,
            _ => (x as f32 - 128.0) / 16.0,
        })
        .collect();
    let tokens: Vec<u32> = b.slice().iter().map(|&x| x as u32 % 40).collect();
    let Ok(params) = std::str::from_utf8(b.0) else {
        return;
    };
    if which % 13 == 12 {
        let _ = PluginStrategy::create("beam", params);
        return;
    }
    let Ok(mut sampler) = PluginSampler::create(SAMPLERS[which % 12], params) else {
        return;
    };
    if logits.is_empty() {
        return;
    }
    let vocab = logits.len();
    let mut c = Candidates::full(&logits);
    let mut draws = 0u32;
    let mut random = || {
        draws += 1;
        (draws as f64 * 0.618).fract()
    };
    let tokens: Vec<u32> = tokens.into_iter().map(|t| t % vocab as u32).collect();
    if sampler
        .apply(&mut c, &tokens, tokens.len() / 2, vocab, &mut random)
        .is_ok()
    {
        assert!(c.ids.iter().all(|&id| (id as usize) < vocab));
        if let Some(&id) = c.ids.first() {
            sampler.accept(id);
        }
    }
});
