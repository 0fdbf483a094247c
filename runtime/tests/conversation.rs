//! Conversations: streaming, stop strings, cancellation, rollback, prefix reuse, sliding
//! window, saved state, chat templates. Each property is checked against a fresh session
//! given the same tokens.

mod common;

use std::sync::Arc;

use rill::{
    ChatMessage, ContextPolicy, GenerationConfig, Model, RillError, Session, SessionOptions,
    StopReason,
};

fn greedy(max_new: usize) -> GenerationConfig {
    GenerationConfig {
        max_new_tokens: Some(max_new),
        do_sample: Some(false),
        eos_token_id: Some(rill::config::OneOrMany::Many(vec![])),
        ..Default::default()
    }
}

fn session(model: &Arc<Model>, config: GenerationConfig) -> Session {
    let mut s = Session::new(model.clone(), SessionOptions::default()).unwrap();
    s.set_generation_config(config).unwrap();
    s
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Logits of the last of `tokens` from a fresh session.
fn fresh_logits(model: &Arc<Model>, tokens: &[u32]) -> Vec<f32> {
    let mut s = Session::new(model.clone(), SessionOptions::default()).unwrap();
    s.forward(tokens).unwrap().to_vec()
}

#[test]
fn streamed_pieces_are_whole_characters_and_add_up_to_the_detokenized_text() {
    let model = common::default_model();
    // Sampling hot from an untrained-for-it prompt produces byte tokens that split
    // multi-byte characters; the prompt itself forces emoji and CJK bytes into the context.
    for (seed, prompt) in [
        (1, "Emoji 😀🎉 and 中文字符"),
        (2, "naïve café — ☃"),
        (3, "𝄞𝄢 ünïcödé"),
    ] {
        let mut s = session(
            &model,
            GenerationConfig {
                do_sample: Some(true),
                temperature: Some(4.0),
                top_k: Some(0),
                seed: Some(seed),
                ..greedy(200)
            },
        );
        let mut pieces = Vec::new();
        let g = s
            .generate(prompt, |p| {
                pieces.push(p.to_string());
                true
            })
            .unwrap();
        let joined: String = pieces.concat();
        assert_eq!(joined, g.text);
        assert_eq!(joined, model.detokenize(&g.tokens).unwrap());
        assert!(pieces.iter().all(|p| !p.is_empty()));
    }
    // Each character of a multilingual text, split into byte-level tokens, is released
    // only once complete.
    let text = "😀 中文 é";
    let ids = model.encode(text, false).unwrap();
    assert!(ids.len() > text.chars().count(), "characters span tokens");
    let mut stream = rill::stream::TextStream::new(model.tokenizer());
    let mut out = String::new();
    for id in ids {
        if let Some(p) = stream.push(id) {
            assert!(!p.contains('\u{FFFD}'), "{p:?}");
            out.push_str(&p);
        }
    }
    out.push_str(&stream.finish().unwrap_or_default());
    assert_eq!(out, text);
}

/// The last `n` characters of `s`.
fn last_chars(s: &str, n: usize) -> String {
    let from = s.char_indices().rev().nth(n - 1).map_or(0, |(i, _)| i);
    s[from..].to_string()
}

/// The first `n` characters of `s`.
fn first_chars(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

#[test]
fn stop_strings_spanning_tokens_end_generation_without_being_emitted() {
    let model = common::default_model();
    let prompt = common::PROMPTS[0];
    let full = session(&model, greedy(40))
        .generate(prompt, |_| true)
        .unwrap();
    // A stop string made of the end of one token's text and the start of the next.
    let pieces: Vec<String> = full
        .tokens
        .iter()
        .map(|&t| model.detokenize(&[t]).unwrap())
        .collect();
    let k = (5..pieces.len() - 1)
        .find(|&k| pieces[k].chars().count() >= 2 && pieces[k + 1].chars().count() >= 2)
        .expect("two adjacent multi-character tokens");
    let stop = format!(
        "{}{}",
        last_chars(&pieces[k], 2),
        first_chars(&pieces[k + 1], 2)
    );
    let at = full.text.find(&stop).unwrap();

    let mut s = session(
        &model,
        GenerationConfig {
            stop_strings: Some(rill::config::OneOrMany::Many(vec![
                "never appears ~~".into(),
                stop.clone(),
            ])),
            ..greedy(40)
        },
    );
    let mut streamed = String::new();
    let g = s
        .generate(prompt, |p| {
            streamed.push_str(p);
            true
        })
        .unwrap();
    assert_eq!(g.stop, StopReason::StopString);
    assert_eq!(g.text, full.text[..at]);
    assert_eq!(streamed, g.text);
    assert!(g.tokens.len() < full.tokens.len());
    // The session is usable afterwards, and its history is prompt + generated tokens.
    let history = s.history();
    assert!(history.ends_with(&g.tokens));
}

#[test]
fn a_stop_string_may_begin_in_the_prompt_as_in_transformers() {
    let model = common::default_model();
    let prompt = common::PROMPTS[0];
    let full = session(&model, greedy(8))
        .generate(prompt, |_| true)
        .unwrap();
    // The prompt's last two characters and the first two generated ones.
    let tail = last_chars(prompt, 2);
    let stop = format!("{tail}{}", first_chars(&full.text, 2));
    let mut s = session(
        &model,
        GenerationConfig {
            stop_strings: Some(rill::config::OneOrMany::One(stop.clone())),
            ..greedy(8)
        },
    );
    let g = s.generate(prompt, |_| true).unwrap();
    assert_eq!(g.stop, StopReason::StopString, "{stop:?}: {g:?}");
    assert_eq!(g.text, "");
    // The prompt alone holding a stop string stops nothing.
    let mut s = session(
        &model,
        GenerationConfig {
            stop_strings: Some(rill::config::OneOrMany::One(tail)),
            ..greedy(8)
        },
    );
    let g = s.generate(prompt, |_| true).unwrap();
    assert_eq!(g.text, full.text);
}

#[test]
fn cancel_from_another_thread_stops_generation_and_the_session_stays_usable() {
    let model = common::default_model();
    let mut s = session(&model, greedy(900));
    let token = s.cancel_token();
    let (tx, rx) = std::sync::mpsc::channel();
    let canceller = std::thread::spawn(move || {
        rx.recv().unwrap();
        token.cancel();
    });
    let mut sent = false;
    let g = s
        .generate(common::PROMPTS[1], |_| {
            if !sent {
                tx.send(()).unwrap();
                sent = true;
            }
            true
        })
        .unwrap();
    canceller.join().unwrap();
    assert_eq!(g.stop, StopReason::Cancelled);
    assert!(g.tokens.len() < 900, "{} tokens", g.tokens.len());
    // A new generation is not cancelled by the old request, and matches a fresh session.
    let again = s.generate(common::PROMPTS[2], |_| true);
    let again = again.unwrap();
    s.set_generation_config(greedy(12)).unwrap();
    let short = s.generate(common::PROMPTS[2], |_| true).unwrap();
    assert_eq!(again.stop, StopReason::MaxTokens);
    let fresh = session(&model, greedy(12))
        .generate(common::PROMPTS[2], |_| true)
        .unwrap();
    assert_eq!(short.tokens, fresh.tokens);
}

#[test]
fn rollback_then_regenerate_equals_a_fresh_session_on_the_truncated_tokens() {
    let model = common::default_model();
    for beams in [1, 3] {
        let mut s = session(
            &model,
            GenerationConfig {
                num_beams: Some(beams),
                ..greedy(20)
            },
        );
        let g = s.generate(common::PROMPTS[0], |_| true).unwrap();
        let history = s.history();
        assert_eq!(&history[history.len() - g.tokens.len()..], &g.tokens[..]);
        let cut = g.prompt_tokens + 7;
        s.truncate(cut).unwrap();
        assert_eq!(s.history(), history[..cut]);
        assert!(s.truncate(cut + 1).is_err(), "cannot grow by truncating");
        // The logits of the next token equal a fresh session's over the same tokens.
        s.set_generation_config(greedy(1)).unwrap();
        s.generate_ids(&history[..cut + 1], |_| true).unwrap();
        let after = s.forward_cached().to_vec();
        let fresh = fresh_logits(&model, &history[..cut + 1]);
        assert!(
            max_diff(&after, &fresh) < 1e-5,
            "beams {beams}: {}",
            max_diff(&after, &fresh)
        );
        // Greedy regeneration from the rollback point equals a fresh session's.
        s.truncate(cut).unwrap();
        s.set_generation_config(greedy(10)).unwrap();
        let regen = s.generate_ids(&history[..cut], |_| true).unwrap();
        assert_eq!(regen.reused_tokens, cut - 1);
        let fresh = session(&model, greedy(10))
            .generate_ids(&history[..cut], |_| true)
            .unwrap();
        assert_eq!(regen.tokens, fresh.tokens, "beams {beams}");
    }
}

#[test]
fn a_new_turn_evaluates_only_its_new_tokens() {
    let model = common::default_model();
    let mut s = session(&model, greedy(8));
    let first = s.generate(common::PROMPTS[0], |_| true).unwrap();
    assert_eq!(first.reused_tokens, 0);
    assert_eq!(first.evaluated_tokens, first.prompt_tokens);
    let cached = s.tokens().len();
    let turn = model.encode(" and the earth", false).unwrap();
    s.set_generation_config(greedy(1)).unwrap();
    let second = s.append_ids(&turn, |_| true).unwrap();
    assert_eq!(second.reused_tokens, cached);
    // The pending last reply token and the new turn: exactly the new suffix.
    assert_eq!(second.evaluated_tokens, 1 + turn.len());
    let mut whole = model.tokenize(common::PROMPTS[0]).unwrap();
    whole.extend_from_slice(&first.tokens);
    whole.extend_from_slice(&turn);
    let reused = s.forward_cached().to_vec();
    let fresh = fresh_logits(&model, &whole);
    assert!(
        max_diff(&reused, &fresh) < 1e-4,
        "{}",
        max_diff(&reused, &fresh)
    );
    // Sending the whole history again finds the common prefix.
    let mut edited = whole.clone();
    let n = edited.len();
    edited.truncate(n - 2);
    edited.extend(model.encode(" sea", false).unwrap());
    let third = s.generate_ids(&edited, |_| true).unwrap();
    assert_eq!(third.reused_tokens, n - 2);
    assert_eq!(third.evaluated_tokens, edited.len() - (n - 2));
    assert!(max_diff(s.forward_cached(), &fresh_logits(&model, &edited)) < 1e-4);
}

#[test]
fn a_sliding_window_keeps_the_pinned_prefix_and_matches_a_fresh_session() {
    let model = common::default_model();
    let system = model
        .tokenize("System: answer in the manner of the King James Bible.\n")
        .unwrap();
    let pinned = system.len();
    let options = SessionOptions {
        context_len: 64,
        context_policy: ContextPolicy::SlidingWindow { pinned },
        ..Default::default()
    };
    let mut s = Session::new(model.clone(), options.clone()).unwrap();
    s.set_generation_config(greedy(150)).unwrap();
    let mut prompt = system.clone();
    prompt.extend(model.encode("And it came to pass", false).unwrap());
    let g = s.generate_ids(&prompt, |_| true).unwrap();
    assert_eq!(g.stop, StopReason::MaxTokens);
    assert_eq!(g.tokens.len(), 150);
    let kept = s.tokens().to_vec();
    assert!(kept.len() <= 64);
    assert_eq!(kept[..pinned], system[..]);
    let fresh = fresh_logits(&model, &kept);
    assert!(max_diff(s.forward_cached(), &fresh) < 1e-4);
    // Default policy: the context fills and generation says so.
    let mut strict = Session::new(
        model.clone(),
        SessionOptions {
            context_len: 64,
            ..Default::default()
        },
    )
    .unwrap();
    strict.set_generation_config(greedy(150)).unwrap();
    assert_eq!(
        strict.generate_ids(&prompt, |_| true).unwrap().stop,
        StopReason::ContextFull
    );
    let long: Vec<u32> = (0..80).map(|i| 3 + i).collect();
    assert!(matches!(
        strict.generate_ids(&long, |_| true),
        Err(RillError::PromptTooLong { .. })
    ));
    // A prompt longer than the window is windowed under the sliding policy.
    let mut long_prompt = system.clone();
    long_prompt.extend((0..80).map(|i| 3 + i as u32));
    let g = s.generate_ids(&long_prompt, |_| true).unwrap();
    assert!(g.prompt_tokens < long_prompt.len());
    // A window with no room is refused up front.
    let bad = SessionOptions {
        context_len: 16,
        context_policy: ContextPolicy::SlidingWindow { pinned: 15 },
        ..Default::default()
    };
    assert!(Session::new(model.clone(), bad).is_err());
}

#[test]
fn saved_state_continues_exactly_and_bad_blobs_are_refused() {
    let model = common::default_model();
    let prompt = common::PROMPTS[2];
    let whole = session(&model, greedy(24))
        .generate(prompt, |_| true)
        .unwrap();

    let mut first = session(&model, greedy(10));
    let a = first.generate(prompt, |_| true).unwrap();
    let blob = first.save_state().unwrap();
    drop(first);

    // A new model object, a new session: load and continue.
    let model2 = Arc::new(Model::open(common::default_model_dir(), &Default::default()).unwrap());
    let mut second = Session::new(model2.clone(), SessionOptions::default()).unwrap();
    second.load_state(&blob).unwrap();
    assert_eq!(second.generation_config().max_new_tokens, Some(10));
    second.set_generation_config(greedy(14)).unwrap();
    let history = second.history();
    let b = second.generate_ids(&history, |_| true).unwrap();
    assert_eq!(b.evaluated_tokens, 1, "only the pending token is evaluated");
    let mut joined = a.tokens.clone();
    joined.extend_from_slice(&b.tokens);
    assert_eq!(joined, whole.tokens);

    // Corrupt blobs: truncated, bit-flipped, foreign; the session is unchanged.
    let before = second.history();
    let expect_state_err = |s: &mut Session, blob: &[u8], needle: &str| {
        let e = s.load_state(blob).unwrap_err();
        assert!(matches!(e, RillError::State(_)), "{e}");
        assert!(e.to_string().contains(needle), "{e}");
    };
    expect_state_err(&mut second, &blob[..blob.len() / 2], "checksum");
    expect_state_err(&mut second, &blob[..5], "magic");
    let mut flipped = blob.clone();
    flipped[blob.len() / 3] ^= 0x10;
    expect_state_err(&mut second, &flipped, "checksum");
    expect_state_err(&mut second, b"definitely not a state blob at all", "magic");
    assert_eq!(second.history(), before);

    let (_tmp, other_dir) = common::copy_default_model();
    let config = other_dir.join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("\"initializer_range\": 0.02", "\"initializer_range\": 0.03"),
    )
    .unwrap();
    let other = Arc::new(Model::open(&other_dir, &Default::default()).unwrap());
    let mut foreign = Session::new(other, SessionOptions::default()).unwrap();
    expect_state_err(&mut foreign, &blob, "another model");
    // A state that does not fit a smaller context.
    let mut small = Session::new(
        model2,
        SessionOptions {
            context_len: 8,
            ..Default::default()
        },
    )
    .unwrap();
    expect_state_err(&mut small, &blob, "context");
}

#[test]
fn chat_renders_the_folder_template_and_reuses_earlier_turns() {
    let model = common::default_model();
    assert!(model.has_chat_template());
    let mut messages = vec![
        ChatMessage::new("system", "You speak as the Bible does."),
        ChatMessage::new("user", "Who made the heaven?"),
    ];
    let rendered = model.apply_chat_template(&messages, true).unwrap();
    assert!(rendered.starts_with("<s>system: You speak"), "{rendered}");
    assert!(rendered.ends_with("assistant:"), "{rendered}");
    let mut s = session(
        &model,
        GenerationConfig {
            stop_strings: Some(rill::config::OneOrMany::One("\n".into())),
            ..greedy(24)
        },
    );
    let first = s.chat(&messages, |_| true).unwrap();
    assert_eq!(first.reused_tokens, 0);
    assert!(!first.text.contains('\n'));
    messages.push(ChatMessage::new("assistant", &first.text));
    messages.push(ChatMessage::new("user", "And the earth?"));
    let second = s.chat(&messages, |_| true).unwrap();
    assert!(
        second.reused_tokens >= first.prompt_tokens,
        "{} < {}",
        second.reused_tokens,
        first.prompt_tokens
    );
    // Equal to a fresh session given the whole conversation.
    let mut fresh = session(
        &model,
        GenerationConfig {
            stop_strings: Some(rill::config::OneOrMany::One("\n".into())),
            ..greedy(24)
        },
    );
    assert_eq!(
        fresh.chat(&messages, |_| true).unwrap().tokens,
        second.tokens
    );
}
