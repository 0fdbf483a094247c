//! transformers' generation settings beyond the sampler chain's warpers (min_new_tokens,
//! suppress_tokens, begin_suppress_tokens, max_length, epsilon_cutoff) through sessions,
//! beam search among them. Each generation is checked against the model's own logits
//! from a fresh session (the processors themselves are checked against transformers' in
//! plugins/samplers/tests/hf_parity.rs and runtime/tests/beam.rs).

mod common;

use std::sync::Arc;

use rill::config::OneOrMany;
use rill::{ContextPolicy, GenerationConfig, Model, Session, SessionOptions, StopReason};

const PROMPT: &str = common::PROMPTS[0];

fn greedy(max_new: usize) -> GenerationConfig {
    GenerationConfig {
        max_new_tokens: Some(max_new),
        do_sample: Some(false),
        repetition_penalty: Some(1.0),
        eos_token_id: Some(OneOrMany::Many(vec![])),
        ..Default::default()
    }
}

fn generate(model: &Arc<Model>, config: GenerationConfig) -> rill::Generation {
    let mut s = Session::new(model.clone(), SessionOptions::default()).unwrap();
    s.set_generation_config(config).unwrap();
    s.generate(PROMPT, |_| true).unwrap()
}

/// The prompt's next-token logits from a fresh session.
fn prompt_logits(model: &Arc<Model>) -> Vec<f32> {
    let ids = model.tokenize(PROMPT).unwrap();
    let mut s = Session::new(model.clone(), SessionOptions::default()).unwrap();
    s.forward(&ids).unwrap().to_vec()
}

/// The most likely id not in `excluded`.
fn best_except(logits: &[f32], excluded: &[u32]) -> u32 {
    (0..logits.len() as u32)
        .filter(|t| !excluded.contains(t))
        .max_by(|&a, &b| logits[a as usize].total_cmp(&logits[b as usize]))
        .unwrap()
}

#[test]
fn min_new_tokens_holds_back_the_end_of_sequence() {
    let model = common::default_model();
    let first = generate(&model, greedy(1)).tokens[0];
    // With the first greedy token as end-of-sequence, generation ends at once ...
    let eos = GenerationConfig {
        eos_token_id: Some(OneOrMany::One(first)),
        ..greedy(8)
    };
    let plain = generate(&model, eos.clone());
    assert_eq!((plain.tokens.len(), plain.stop), (0, StopReason::Eos));
    // ... and with min_new_tokens it goes on, its first token the best but that one.
    let held = generate(
        &model,
        GenerationConfig {
            min_new_tokens: Some(3),
            ..eos
        },
    );
    assert!(held.tokens.len() >= 3, "{:?}", held.tokens);
    assert!(!held.tokens[..3].contains(&first));
    assert_eq!(
        held.tokens[0],
        best_except(&prompt_logits(&model), &[first])
    );
}

#[test]
fn suppressed_tokens_never_appear_and_begin_suppression_only_moves_the_first() {
    let model = common::default_model();
    let reference = generate(&model, greedy(12)).tokens;
    let logits = prompt_logits(&model);
    let never = generate(
        &model,
        GenerationConfig {
            suppress_tokens: Some(vec![reference[0]]),
            ..greedy(12)
        },
    );
    assert!(!never.tokens.contains(&reference[0]), "{:?}", never.tokens);
    assert_eq!(never.tokens[0], best_except(&logits, &[reference[0]]));
    let begin = generate(
        &model,
        GenerationConfig {
            begin_suppress_tokens: Some(vec![reference[0]]),
            ..greedy(12)
        },
    );
    assert_eq!(begin.tokens[0], never.tokens[0]);
    // After the first position the token is allowed again: a session continuing from the
    // same first token generates what begin-suppression generated.
    let mut s = Session::new(model.clone(), SessionOptions::default()).unwrap();
    s.set_generation_config(greedy(11)).unwrap();
    let mut ids = model.tokenize(PROMPT).unwrap();
    ids.push(begin.tokens[0]);
    let rest = s.generate_ids(&ids, |_| true).unwrap();
    assert_eq!(rest.tokens, begin.tokens[1..]);
}

#[test]
fn max_length_counts_the_prompt_when_max_new_tokens_is_absent() {
    // A folder whose generation_config.json gives max_length and no max_new_tokens (the
    // bundled one gives max_new_tokens, which takes precedence, as in transformers).
    let (_tmp, dir) = common::copy_default_model();
    let model = Arc::new(Model::open(&dir, &rill::ModelOptions::default()).unwrap());
    let prompt_len = model.tokenize(PROMPT).unwrap().len();
    let file = dir.join("generation_config.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("max_new_tokens");
    json["max_length"] = (prompt_len + 5).into();
    std::fs::write(&file, json.to_string()).unwrap();
    let model = Arc::new(Model::open(&dir, &rill::ModelOptions::default()).unwrap());
    let out = generate(
        &model,
        GenerationConfig {
            max_new_tokens: None,
            ..greedy(0)
        },
    );
    assert_eq!((out.tokens.len(), out.stop), (5, StopReason::MaxTokens));
    // max_new_tokens given with it wins.
    let out = generate(&model, greedy(3));
    assert_eq!(out.tokens.len(), 3);
}

#[test]
fn epsilon_cutoff_draws_only_tokens_above_epsilon() {
    let model = common::default_model();
    let logits = prompt_logits(&model);
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| ((l - max) as f64).exp()).sum();
    let prob = |t: u32| ((logits[t as usize] - max) as f64).exp() / sum;
    let epsilon = 0.05f32;
    let kept = (0..logits.len() as u32)
        .filter(|&t| prob(t) >= epsilon as f64)
        .count();
    assert!(
        kept >= 2,
        "the prompt needs two tokens above epsilon ({kept})"
    );
    let mut drawn = std::collections::BTreeSet::new();
    for seed in 0..40 {
        let out = generate(
            &model,
            GenerationConfig {
                do_sample: Some(true),
                temperature: Some(1.0),
                top_k: Some(0),
                top_p: Some(1.0),
                epsilon_cutoff: Some(epsilon),
                seed: Some(seed),
                ..greedy(1)
            },
        );
        assert!(
            prob(out.tokens[0]) >= epsilon as f64,
            "drew {}",
            out.tokens[0]
        );
        drawn.insert(out.tokens[0]);
    }
    assert!(
        drawn.len() >= 2,
        "sampling still draws among the kept tokens"
    );
}

#[test]
fn beam_search_applies_the_processors_and_refuses_the_sampling_penalties() {
    let model = common::default_model();
    let beams = |extra: GenerationConfig| {
        let mut s = Session::new(model.clone(), SessionOptions::default()).unwrap();
        s.set_generation_config(GenerationConfig {
            num_beams: Some(4),
            ..extra
        })?;
        s.generate(PROMPT, |_| true)
    };
    let plain = beams(greedy(8)).unwrap().tokens;
    let suppressed = beams(GenerationConfig {
        suppress_tokens: Some(vec![plain[0]]),
        ..greedy(8)
    })
    .unwrap()
    .tokens;
    assert!(
        !suppressed.contains(&plain[0]),
        "{plain:?} then {suppressed:?}"
    );
    let e = beams(GenerationConfig {
        presence_penalty: Some(0.5),
        frequency_penalty: Some(0.5),
        ..greedy(8)
    })
    .unwrap_err();
    let message = e.to_string();
    assert!(
        message.contains("presence_penalty, frequency_penalty"),
        "{message}"
    );
    // Stop strings apply to beam search (runtime/tests/beam.rs checks how).
    let stopped = beams(GenerationConfig {
        stop_strings: Some(OneOrMany::One("\n".into())),
        ..greedy(8)
    });
    assert!(stopped.is_ok(), "{stopped:?}");
    let mut s = Session::new(model.clone(), SessionOptions::default()).unwrap();
    let bad = GenerationConfig {
        epsilon_cutoff: Some(1.5),
        ..greedy(8)
    };
    assert!(s.set_generation_config(bad).is_err());
}

#[test]
fn prompt_lookup_decoding_generates_what_greedy_does_in_fewer_passes() {
    let model = common::default_model();
    let repetitive = "And God said, Let there be light: and there was light. And God saw the light, that it was good: and God divided the light from the darkness. And God said,";
    let (mut plain_passes, mut lookup_passes) = (0, 0);
    let mut same_in = |prompt: &str, config: GenerationConfig, run: &Run| {
        let ids = model.tokenize(prompt).unwrap();
        let (plain, plain_history) = generate_ids(&model, &ids, config.clone(), run);
        let lookup = GenerationConfig {
            prompt_lookup_num_tokens: Some(6),
            ..config
        };
        let (fast, fast_history) = generate_ids(&model, &ids, lookup, run);
        assert_eq!(fast.tokens, plain.tokens, "{prompt}");
        assert_eq!(
            (&fast.text, fast.stop),
            (&plain.text, plain.stop),
            "{prompt}"
        );
        assert_eq!(
            fast_history.0, plain_history.0,
            "the session holds the same tokens"
        );
        let diff = (fast_history.1.iter().zip(&plain_history.1))
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-4, "forward_cached() differs by {diff}");
        plain_passes += plain.timings.decode_steps;
        lookup_passes += fast.timings.decode_steps;
        plain
    };
    let mut same =
        |prompt: &str, config: GenerationConfig| same_in(prompt, config, &Run::default());
    for prompt in common::PROMPTS {
        same(prompt, greedy(48));
    }
    // Every way of stopping, at every point of a text the drafts often get right, so that
    // some stop inside a checked draft whose tokens the cache already holds.
    let reference = same(repetitive, greedy(40));
    for max_new in 1..40 {
        same(repetitive, greedy(max_new));
    }
    let mut ends = reference.tokens.clone();
    ends.sort_unstable();
    ends.dedup();
    for eos in ends {
        let config = GenerationConfig {
            eos_token_id: Some(OneOrMany::One(eos)),
            ..greedy(40)
        };
        same(repetitive, config);
    }
    for word in reference.text.split_whitespace() {
        let config = GenerationConfig {
            stop_strings: Some(OneOrMany::One(word.into())),
            ..greedy(40)
        };
        same(repetitive, config);
    }
    // Sampling, with the folder's settings (temperature, top-k, top-p, repetition
    // penalty): the same draws give the same tokens.
    for seed in 0..6 {
        let config = GenerationConfig {
            do_sample: Some(true),
            seed: Some(seed),
            repetition_penalty: None,
            ..greedy(40)
        };
        same(repetitive, config);
    }
    // The callback ending the generation after each piece; a context that fills (an
    // error stop, and a sliding window).
    for pieces in 1..24 {
        let run = Run {
            pieces: Some(pieces),
            ..Run::default()
        };
        same_in(repetitive, greedy(40), &run);
    }
    let prompt_len = model.tokenize(repetitive).unwrap().len();
    for (room, policy) in [
        (17, ContextPolicy::Error),
        (23, ContextPolicy::SlidingWindow { pinned: 4 }),
    ] {
        let run = Run {
            options: SessionOptions {
                context_len: prompt_len + room,
                context_policy: policy,
                ..SessionOptions::default()
            },
            pieces: None,
        };
        let out = same_in(repetitive, greedy(60), &run);
        let full = matches!(policy, ContextPolicy::Error);
        assert_eq!(out.stop == StopReason::ContextFull, full, "{:?}", out.stop);
        assert_eq!(out.tokens.len() == 60, !full, "the window slid to go on");
    }
    assert!(
        lookup_passes * 10 < plain_passes * 8,
        "{lookup_passes} passes against {plain_passes}"
    );
}

/// How a test generation runs: the session's options, and after how many streamed
/// pieces the callback ends it (never when `None`).
#[derive(Default)]
struct Run {
    options: SessionOptions,
    pieces: Option<usize>,
}

/// A generation from `ids` in a new session; the tokens the session holds after it
/// followed by 8 more greedy tokens (which read the cache the generation left); and the
/// logits it left (`forward_cached`).
fn generate_ids(
    model: &Arc<Model>,
    ids: &[u32],
    config: GenerationConfig,
    run: &Run,
) -> (rill::Generation, (Vec<u32>, Vec<f32>)) {
    let mut s = Session::new(model.clone(), run.options.clone()).unwrap();
    s.set_generation_config(config).unwrap();
    let mut pieces = 0;
    let out = s
        .generate_ids(ids, |_| {
            pieces += 1;
            run.pieces.is_none_or(|n| pieces < n)
        })
        .unwrap();
    let mut history = s.history();
    let cached = s.forward_cached().to_vec();
    s.set_generation_config(greedy(8)).unwrap();
    let more = s.generate_ids(&history.clone(), |_| true);
    // (A full context under the error policy cannot continue; the history still counts.)
    history.extend(more.map(|g| g.tokens).unwrap_or_default());
    (out, (history, cached))
}

#[test]
fn output_logprobs_are_the_models_log_probabilities_of_the_emitted_tokens() {
    // Each logprob equals what scoring the same text gives at that position, whether
    // the token came from a decode step, prompt lookup's check or an assistant's.
    let model = common::default_model();
    let prompt = "And God said, Let there be light: and there was light. And God saw the light, that it was good: and God said,";
    let run = |extra: rill::GenerationConfig| {
        let mut s = rill::Session::new(model.clone(), rill::SessionOptions::default()).unwrap();
        let base = rill::GenerationConfig {
            max_new_tokens: Some(30),
            do_sample: Some(false),
            eos_token_id: Some(rill::config::OneOrMany::Many(vec![])),
            output_logprobs: Some(true),
            ..Default::default()
        };
        s.set_generation_config(base.merged(&extra)).unwrap();
        s.generate(prompt, |_| true).unwrap()
    };
    let plain = run(Default::default());
    assert_eq!(plain.logprobs.len(), plain.tokens.len());
    let ids = model.tokenize(prompt).unwrap();
    let all: Vec<u32> = ids.iter().chain(&plain.tokens).copied().collect();
    let mut scorer = rill::Session::new(model.clone(), rill::SessionOptions::default()).unwrap();
    let scored = scorer.token_logprobs(&all).unwrap();
    let expected = &scored[ids.len() - 1..];
    for (i, (&got, &want)) in plain.logprobs.iter().zip(expected).enumerate() {
        assert!((got - want).abs() < 1e-4, "token {i}: {got} vs {want}");
        assert!(got <= 0.0);
    }
    let looked_up = run(rill::GenerationConfig {
        prompt_lookup_num_tokens: Some(4),
        ..Default::default()
    });
    assert_eq!(looked_up.tokens, plain.tokens);
    for (a, b) in looked_up.logprobs.iter().zip(&plain.logprobs) {
        assert!((a - b).abs() < 1e-4, "prompt lookup: {a} vs {b}");
    }
    assert!(
        looked_up.timings.decode_steps < plain.timings.decode_steps,
        "some tokens came from checked drafts"
    );
    // With an assistant (the model itself: every proposal accepted).
    let mut s = rill::Session::new(model.clone(), rill::SessionOptions::default()).unwrap();
    s.set_assistant(Some(model.clone())).unwrap();
    s.set_generation_config(rill::GenerationConfig {
        max_new_tokens: Some(30),
        do_sample: Some(false),
        eos_token_id: Some(rill::config::OneOrMany::Many(vec![])),
        output_logprobs: Some(true),
        ..Default::default()
    })
    .unwrap();
    let assisted = s.generate(prompt, |_| true).unwrap();
    assert_eq!(assisted.tokens, plain.tokens);
    // The assistant's passes are timed apart from the model's (none without one).
    assert!(assisted.timings.assistant_ort_run > std::time::Duration::ZERO);
    assert_eq!(plain.timings.assistant_ort_run, std::time::Duration::ZERO);
    for (a, b) in assisted.logprobs.iter().zip(&plain.logprobs) {
        assert!((a - b).abs() < 1e-4, "assisted: {a} vs {b}");
    }
    // Not asked for: none.
    let quiet = run(rill::GenerationConfig {
        output_logprobs: Some(false),
        ..Default::default()
    });
    assert!(quiet.logprobs.is_empty());
}

#[test]
fn a_growing_heuristic_schedule_stays_within_one_check() {
    // The heuristic schedule adds two proposed tokens after each check accepted whole;
    // with prompt chunks of 8 a check holds at most 7, whatever the schedule says.
    let model = common::default_model();
    let options = rill::SessionOptions {
        prefill_chunk: 8,
        ..Default::default()
    };
    let greedy = rill::GenerationConfig {
        max_new_tokens: Some(60),
        do_sample: Some(false),
        eos_token_id: Some(rill::config::OneOrMany::Many(vec![])),
        num_assistant_tokens: Some(5),
        num_assistant_tokens_schedule: Some("heuristic".into()),
        assistant_confidence_threshold: Some(0.0),
        ..Default::default()
    };
    let run = |assist: bool| {
        let mut s = rill::Session::new(model.clone(), options.clone()).unwrap();
        if assist {
            s.set_assistant(Some(model.clone())).unwrap();
        }
        s.set_generation_config(greedy.clone()).unwrap();
        s.generate("In the beginning", |_| true).unwrap()
    };
    let (plain, assisted) = (run(false), run(true));
    assert_eq!(assisted.tokens, plain.tokens);
    // 59 tokens after the first, at most 8 a pass (7 proposed and the pick).
    assert_eq!(assisted.timings.decode_steps, 59usize.div_ceil(8));
}
