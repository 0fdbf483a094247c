//! Token text for samplers and the `regex` sampler, against references independent of
//! rill (tests/reference/fixtures/constraints.json, written by
//! tests/reference/make_constraint_fixtures.py): each token's bytes from tokenizer.json
//! through GPT-2's byte alphabet, and which tokens keep a full match reachable by
//! Python's `regex` module (`fullmatch(..., partial=True)`).

mod common;

use std::collections::BTreeSet;

use rill::config::{OneOrMany, SamplerSpec};
use rill::plugin::{Candidates, PluginSampler, Vocabulary};
use rill::{GenerationConfig, Session, SessionOptions, StopReason};
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/reference/fixtures/constraints.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn token_bytes_match_the_byte_level_alphabet_of_tokenizer_json() {
    let model = common::default_model();
    let f = fixture();
    let want = f["token_bytes"].as_array().unwrap();
    let table = model.token_bytes();
    assert_eq!(table.len(), want.len());
    for (id, w) in want.iter().enumerate() {
        let got = table.get(id as u32).unwrap();
        assert_eq!(hex(got), w.as_str().unwrap(), "token {id}");
    }
    assert!(table.get(want.len() as u32).is_none());
}

#[test]
fn the_regex_sampler_keeps_exactly_the_tokens_pythons_regex_allows() {
    let model = common::default_model();
    let f = fixture();
    let judged: BTreeSet<u32> = f["judged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let eos = model.eos_ids(&GenerationConfig::default());
    assert!(!eos.is_empty());
    let vocabulary = Vocabulary {
        bytes: model.token_bytes().clone(),
        eos: eos.clone(),
    };
    let vocab = model.graph().vocab;
    let mut checked = 0;
    for case in f["cases"].as_array().unwrap() {
        let (pattern, prefix) = (
            case["pattern"].as_str().unwrap(),
            case["prefix"].as_str().unwrap(),
        );
        let generated = model.encode(prefix, false).unwrap();
        let text: Vec<u8> = generated
            .iter()
            .flat_map(|&t| model.token_bytes().get(t).unwrap().to_vec())
            .collect();
        assert_eq!(
            text,
            prefix.as_bytes(),
            "the prefix's tokens give its bytes back"
        );
        let prompt = [5u32, 6];
        let tokens: Vec<u32> = prompt.iter().copied().chain(generated).collect();
        let params = serde_json::json!({ "pattern": pattern }).to_string();
        let mut sampler = PluginSampler::create("regex", &params).unwrap();
        let mut c = Candidates::full(&vec![0.0; vocab]);
        let mut random = || 0.5;
        sampler
            .apply(
                &mut c,
                &tokens,
                prompt.len(),
                vocab,
                &mut random,
                Some(&vocabulary),
            )
            .unwrap();
        let kept: BTreeSet<u32> = (0..c.size)
            .filter(|&i| c.logits[i] != f32::NEG_INFINITY)
            .map(|i| c.ids[i])
            .collect();
        let want: BTreeSet<u32> = case["allowed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let got: BTreeSet<u32> = kept.intersection(&judged).copied().collect();
        assert_eq!(got, want, "{pattern:?} after {prefix:?}");
        let complete = case["complete"].as_bool().unwrap();
        assert_eq!(
            eos.iter().all(|e| kept.contains(e)),
            complete,
            "{pattern:?} after {prefix:?}: end of sequence"
        );
        checked += 1;
    }
    assert_eq!(checked, 15);
}

fn with_regex(pattern: &str, before_warpers: bool, extra: GenerationConfig) -> GenerationConfig {
    GenerationConfig {
        max_new_tokens: Some(24),
        samplers: Some(vec![SamplerSpec {
            name: "regex".into(),
            params: Some(serde_json::json!({ "pattern": pattern })),
            plugin: None,
            before_warpers,
        }]),
        ..extra
    }
}

#[test]
fn generation_under_a_pattern_gives_a_full_match_and_ends_there() {
    let model = common::default_model();
    let mut s = Session::new(model.clone(), SessionOptions::default()).unwrap();
    let greedy = GenerationConfig {
        do_sample: Some(false),
        ..Default::default()
    };
    s.set_generation_config(with_regex("(yes|no|maybe)", false, greedy.clone()))
        .unwrap();
    let g = s.generate("Is it so? Answer:", |_| true).unwrap();
    assert!(["yes", "no", "maybe"].contains(&g.text.as_str()), "{g:?}");
    assert_eq!(g.stop, StopReason::Eos);
    // A phone-number shape, sampled: every draw is a full match (checked by hand here).
    for seed in 0..4 {
        let sampled = GenerationConfig {
            do_sample: Some(true),
            seed: Some(seed),
            ..Default::default()
        };
        s.set_generation_config(with_regex("[0-9]{3}-[0-9]{4}", true, sampled))
            .unwrap();
        let g = s.generate("In the beginning", |_| true).unwrap();
        let b = g.text.as_bytes();
        assert!(
            b.len() == 8
                && b[3] == b'-'
                && b.iter()
                    .enumerate()
                    .all(|(i, c)| i == 3 || c.is_ascii_digit()),
            "seed {seed}: {:?}",
            g.text
        );
        assert_eq!(g.stop, StopReason::Eos);
    }
}

#[test]
fn a_constraint_after_the_warpers_sees_only_what_they_kept() {
    // top_k 1 keeps the model's favourite (a word, not a digit): after the warpers the
    // pattern has nothing left and says so; before them it constrains what top_k sees.
    let model = common::default_model();
    let mut s = Session::new(model.clone(), SessionOptions::default()).unwrap();
    let sampled = GenerationConfig {
        do_sample: Some(true),
        top_k: Some(1),
        seed: Some(1),
        eos_token_id: Some(OneOrMany::Many(model.eos_ids(&GenerationConfig::default()))),
        ..Default::default()
    };
    s.set_generation_config(with_regex("[0-9]+", false, sampled.clone()))
        .unwrap();
    let e = s
        .generate("In the beginning", |_| true)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("regex") && e.contains("no candidate continues"),
        "{e}"
    );
    s.set_generation_config(with_regex("[0-9]+", true, sampled))
        .unwrap();
    let g = s.generate("In the beginning", |_| true).unwrap();
    assert!(
        !g.text.is_empty() && g.text.bytes().all(|c| c.is_ascii_digit()),
        "{g:?}"
    );
}

#[test]
fn json_mode_output_parses_as_a_json_object_when_it_ends() {
    let model = common::default_model();
    let mut s = Session::new(model.clone(), SessionOptions::default()).unwrap();
    let json_mode = |extra: GenerationConfig| GenerationConfig {
        max_new_tokens: Some(200),
        samplers: Some(vec![SamplerSpec {
            name: "json".into(),
            params: Some(serde_json::json!({"top": "object", "max_string_bytes": 16})),
            plugin: None,
            before_warpers: true,
        }]),
        ..extra
    };
    let mut ended = 0;
    for seed in 0..6 {
        s.set_generation_config(json_mode(GenerationConfig {
            do_sample: Some(true),
            temperature: Some(0.8),
            seed: Some(seed),
            ..Default::default()
        }))
        .unwrap();
        let g = s.generate("The answer is", |_| true).unwrap();
        if g.stop == StopReason::Eos {
            let v: Value = serde_json::from_str(&g.text)
                .unwrap_or_else(|e| panic!("seed {seed}: {e}: {:?}", g.text));
            assert!(v.is_object(), "seed {seed}: {:?}", g.text);
            ended += 1;
        } else {
            assert_eq!(g.stop, StopReason::MaxTokens);
            assert!(g.text.trim_start().starts_with('{'), "{:?}", g.text);
        }
    }
    assert!(
        ended >= 3,
        "{ended} of 6 generations ended on a complete object"
    );
}
