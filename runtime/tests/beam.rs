//! Beam search against transformers 4.53's own beam search on the default model
//! (tests/reference/fixtures/beam.json): the same sequences token for token and scores
//! within 1e-4, for several settings of length_penalty, early_stopping and
//! num_return_sequences, for diverse (group) beam search, and with the logits processors
//! beam search applies (sequence_bias, bad_words_ids, min_length, min_new_tokens,
//! suppress_tokens, begin_suppress_tokens).

mod common;

use rill::beam::{search, BeamConfig, BeamProcessors, EarlyStopping, GroupConfig};
use serde_json::Value;

/// A list setting of the fixture (empty when absent).
fn list<T: serde::de::DeserializeOwned>(settings: &Value, key: &str) -> Vec<T> {
    settings
        .get(key)
        .map(|v| serde_json::from_value(v.clone()).unwrap())
        .unwrap_or_default()
}

#[test]
fn beam_search_matches_transformers() {
    let model = common::default_model();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/reference/fixtures/beam.json"
    );
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let gen: Value = serde_json::from_str(
        &std::fs::read_to_string(common::default_model_dir().join("generation_config.json"))
            .unwrap(),
    )
    .unwrap();
    let penalty = gen["repetition_penalty"].as_f64().unwrap_or(1.0) as f32;
    let mut checked = 0;
    for case in fixture["cases"].as_array().unwrap() {
        let s = &case["settings"];
        let prompt: Vec<u32> = case["prompt_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let early = match &s["early_stopping"] {
            Value::Bool(true) => EarlyStopping::True,
            Value::Bool(false) => EarlyStopping::False,
            _ => EarlyStopping::Never,
        };
        let cfg = BeamConfig {
            num_beams: s["num_beams"].as_u64().unwrap() as usize,
            length_penalty: s["length_penalty"].as_f64().unwrap() as f32,
            early_stopping: early,
            num_return_sequences: s["num_return_sequences"].as_u64().unwrap() as usize,
            max_new_tokens: case["max_new_tokens"].as_u64().unwrap() as usize,
            eos: s
                .get("eos_token_id")
                .map_or(vec![1], |_| list(s, "eos_token_id")),
            repetition_penalty: penalty,
            no_repeat_ngram_size: 0,
            groups: s.get("num_beam_groups").map(|groups| GroupConfig {
                num_beam_groups: groups.as_u64().unwrap() as usize,
                diversity_penalty: s["diversity_penalty"].as_f64().unwrap() as f32,
                pad: 2,
            }),
            processors: BeamProcessors {
                sequence_bias: list(s, "sequence_bias"),
                bad_words_ids: list(s, "bad_words_ids"),
                min_length: s["min_length"].as_u64().unwrap_or(0) as usize,
                min_new_tokens: s["min_new_tokens"].as_u64().unwrap_or(0) as usize,
                suppress_tokens: list(s, "suppress_tokens"),
                begin_suppress_tokens: list(s, "begin_suppress_tokens"),
            },
            sampling: None,
            stop_strings: list(s, "stop_strings"),
        };
        let got = search(&model, &prompt, &cfg).unwrap();
        let want_seqs = case["sequences"].as_array().unwrap();
        let want_scores = case["sequence_scores"].as_array().unwrap();
        assert_eq!(got.len(), want_seqs.len(), "{s}");
        for (i, (h, (w, ws))) in got
            .iter()
            .zip(want_seqs.iter().zip(want_scores))
            .enumerate()
        {
            let mut w: Vec<u32> = w
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            while w.len() > prompt.len() && *w.last().unwrap() == 2 {
                w.pop(); // transformers pads shorter hypotheses with pad_token_id 2
            }
            assert_eq!(h.tokens, w, "{s} hypothesis {i}");
            let ws = ws.as_f64().unwrap() as f32;
            assert!(
                (h.score - ws).abs() < 1e-4,
                "{s} hypothesis {i}: score {} vs {ws}",
                h.score
            );
        }
        checked += 1;
    }
    assert_eq!(
        checked, 28,
        "2 prompts x (3 beam + 2 diverse beam + 7 processor + 2 stop string settings)"
    );
}

#[test]
fn generate_with_num_beams_returns_the_beam_search_hypotheses() {
    let model = common::default_model();
    let mut s = rill::Session::new(model.clone(), rill::SessionOptions::default()).unwrap();
    let cfg = rill::GenerationConfig {
        max_new_tokens: Some(10),
        do_sample: Some(false),
        num_beams: Some(3),
        num_return_sequences: Some(2),
        early_stopping: Some(true.into()),
        ..Default::default()
    };
    s.set_generation_config(cfg.clone()).unwrap();
    let mut streamed = String::new();
    let out = s
        .generate("In the beginning", |p| {
            streamed.push_str(p);
            true
        })
        .unwrap();
    let prompt = model.tokenize("In the beginning").unwrap();
    let eos = model.eos_ids(&s.generation_config());
    let merged = s.generation_config();
    let beam = BeamConfig::from_generation(&merged, eos).unwrap().unwrap();
    let direct = rill::beam::search(&model, &prompt, &beam).unwrap();
    assert_eq!(s.beam_results(), direct.as_slice());
    assert_eq!(streamed, out.text);
    assert_eq!(s.beam_text(0).unwrap().0, out.text);
    assert!(s.beam_text(2).is_err());
}

/// 4-beam search returning every hypothesis, at most `max_new` tokens, no end token,
/// with `stops` as stop strings.
fn greedy_beams(max_new: usize, stops: Vec<String>) -> rill::GenerationConfig {
    rill::GenerationConfig {
        max_new_tokens: Some(max_new),
        do_sample: Some(false),
        num_beams: Some(4),
        num_return_sequences: Some(4),
        stop_strings: (!stops.is_empty()).then_some(rill::config::OneOrMany::Many(stops)),
        eos_token_id: Some(rill::config::OneOrMany::Many(vec![])),
        ..Default::default()
    }
}

#[test]
fn beam_search_through_a_session_stops_at_a_stop_string_and_never_emits_it() {
    let model = common::default_model();
    let cfg = |stops| greedy_beams(16, stops);
    let prompt = "In the beginning God created";
    let mut s = rill::Session::new(model.clone(), rill::SessionOptions::default()).unwrap();
    s.set_generation_config(cfg(Vec::new())).unwrap();
    let free = s.generate(prompt, |_| true).unwrap();
    assert_eq!(free.stop, rill::StopReason::MaxTokens);
    // Stop strings from along the best hypothesis's text: each search must end every
    // hypothesis that completes one there (and only those end early, there being no end
    // token), never emit one, and report a stop string when its best one ended so.
    let prompt_len = model.tokenize(prompt).unwrap().len();
    let chars: Vec<(usize, char)> = free.text.char_indices().collect();
    let (mut stopped_best, mut stopped_any) = (0, 0);
    let mut stop = String::new();
    for &(at, _) in chars.iter().step_by(4).skip(1) {
        stop = free.text[at..].chars().take(3).collect();
        s.set_generation_config(cfg(vec![stop.clone()])).unwrap();
        let mut streamed = String::new();
        let out = s
            .generate(prompt, |p| {
                streamed.push_str(p);
                true
            })
            .unwrap();
        assert_eq!(streamed, out.text);
        assert!(!out.text.contains(&stop), "{stop:?} in {:?}", out.text);
        let best = &s.beam_results()[0];
        let best_ended = best.tokens.len() < prompt_len + 16;
        let want = if best_ended {
            rill::StopReason::StopString
        } else {
            rill::StopReason::MaxTokens
        };
        assert_eq!(out.stop, want, "{stop:?}: {out:?}");
        stopped_best += usize::from(best_ended);
        for (i, h) in s.beam_results().iter().enumerate() {
            let full = model.detokenize(&h.tokens[prompt_len..]).unwrap();
            let (text, _) = s.beam_text(i).unwrap();
            assert!(!text.contains(&stop), "hypothesis {i}: {text:?}");
            if h.tokens.len() < prompt_len + 16 {
                assert!(full.contains(&stop), "hypothesis {i} ended early: {full:?}");
                stopped_any += 1;
            }
        }
    }
    assert!(
        stopped_best > 0 && stopped_any > stopped_best,
        "{stopped_best} {stopped_any}"
    );
    // Diverse beam search refuses stop strings, naming them.
    let diverse = rill::GenerationConfig {
        num_beam_groups: Some(2),
        diversity_penalty: Some(1.0),
        ..cfg(vec![stop])
    };
    let e = s
        .set_generation_config(diverse)
        .and_then(|_| s.generate(prompt, |_| true));
    assert!(e.unwrap_err().to_string().contains("stop_strings"));
}

#[test]
fn a_stop_string_may_begin_in_the_prompt_with_beams_too() {
    let model = common::default_model();
    let prompt = "In the beginning God created";
    let cfg = |stops| greedy_beams(12, stops);
    let mut s = rill::Session::new(model.clone(), rill::SessionOptions::default()).unwrap();
    s.set_generation_config(cfg(Vec::new())).unwrap();
    let free = s.generate(prompt, |_| true).unwrap();
    // The prompt's last two characters and the best hypothesis's first two.
    let stop = format!("ed{}", free.text.chars().take(2).collect::<String>());
    s.set_generation_config(cfg(vec![stop.clone()])).unwrap();
    let out = s.generate(prompt, |_| true).unwrap();
    let prompt_len = model.tokenize(prompt).unwrap().len();
    let mut ended = 0;
    for (i, h) in s.beam_results().iter().enumerate() {
        let (text, _) = s.beam_text(i).unwrap();
        assert!(
            !format!("ed{text}").contains(&stop),
            "hypothesis {i}: {text:?}"
        );
        if h.tokens.len() < prompt_len + 12 {
            let full = model.detokenize(&h.tokens[prompt_len..]).unwrap();
            assert!(format!("ed{full}").contains(&stop), "ended early: {full:?}");
            ended += 1;
        }
    }
    assert!(ended > 0, "some hypothesis ended at the stop string");
    let best_ended = s.beam_results()[0].tokens.len() < prompt_len + 12;
    assert_eq!(
        out.stop == rill::StopReason::StopString,
        best_ended,
        "{out:?}"
    );
}

#[test]
fn a_search_strategy_can_be_chosen_by_name() {
    let model = common::default_model();
    let run = |cfg: rill::GenerationConfig| {
        let mut s = rill::Session::new(model.clone(), rill::SessionOptions::default()).unwrap();
        s.set_generation_config(cfg).unwrap();
        s.generate("And the king said", |_| true).unwrap();
        s.beam_results().to_vec()
    };
    let by_keys = run(rill::GenerationConfig {
        max_new_tokens: Some(8),
        do_sample: Some(false),
        num_beams: Some(3),
        num_return_sequences: Some(2),
        repetition_penalty: Some(1.0),
        ..Default::default()
    });
    let by_name = run(rill::GenerationConfig {
        max_new_tokens: Some(8),
        search_strategy: Some(rill::config::SamplerSpec {
            name: "beam".into(),
            params: Some(
                serde_json::json!({"num_beams": 3, "num_return_sequences": 2, "eos_token_id": [1]}),
            ),
            plugin: None,
            before_warpers: false,
        }),
        ..Default::default()
    });
    assert_eq!(by_keys.len(), 2);
    assert_eq!(by_keys, by_name);
}

#[test]
fn beam_sampling_draws_seeded_continuations_and_at_low_temperature_is_beam_search() {
    let model = common::default_model();
    let run = |extra: rill::GenerationConfig| {
        let mut s = rill::Session::new(model.clone(), rill::SessionOptions::default()).unwrap();
        let base = rill::GenerationConfig {
            max_new_tokens: Some(12),
            num_beams: Some(4),
            num_return_sequences: Some(4),
            ..Default::default()
        };
        s.set_generation_config(base.merged(&extra)).unwrap();
        s.generate("And the king said", |_| true).unwrap();
        s.beam_results()
            .iter()
            .map(|h| h.tokens.clone())
            .collect::<Vec<_>>()
    };
    // (top_p 1: the folder's 0.95 would keep two tokens a beam at a low temperature.)
    let sampled = |seed: u64, temperature: f32| {
        run(rill::GenerationConfig {
            do_sample: Some(true),
            seed: Some(seed),
            temperature: Some(temperature),
            top_p: Some(1.0),
            ..Default::default()
        })
    };
    // The same seed draws the same beams; other seeds others.
    let (a, b) = (sampled(7, 1.5), sampled(7, 1.5));
    assert_eq!(a, b);
    assert!(
        [8u64, 9, 10].iter().any(|&seed| sampled(seed, 1.5) != a),
        "three other seeds drew the same beams"
    );
    // At a temperature of 1e-4 the scores are 10^4 times further apart than the Gumbel
    // noise of the draw: the continuations drawn are the top ones, as beam search takes.
    let searched = run(rill::GenerationConfig {
        do_sample: Some(false),
        ..Default::default()
    });
    assert_eq!(sampled(7, 1e-4), searched);
    // transformers refuses sampling with diverse beam search.
    let mut s = rill::Session::new(model.clone(), rill::SessionOptions::default()).unwrap();
    let diverse = rill::GenerationConfig {
        num_beams: Some(4),
        num_beam_groups: Some(2),
        do_sample: Some(true),
        ..Default::default()
    };
    let e = match s.set_generation_config(diverse) {
        Err(e) => e,
        Ok(()) => s.generate("And", |_| true).unwrap_err(),
    };
    assert!(e.to_string().contains("cannot sample"), "{e}");
}
