//! Bad input: each a typed error with a message a user can act on, and the model still
//! usable afterwards.

mod common;

use std::path::Path;
use std::sync::Arc;

use rill::{GenerationConfig, Model, ModelOptions, RillError, Session, SessionOptions, StopReason};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

fn open(dir: &Path) -> Result<Model, RillError> {
    Model::open(dir, &ModelOptions::default())
}

/// Rewrites one tensor of the folder's safetensors with a new dtype and/or shape.
fn rewrite_tensor(dir: &Path, name: &str, dtype: Dtype, shape: Vec<usize>) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n.clone(), t.dtype(), t.shape().to_vec(), t.data().to_vec()))
        .collect();
    for t in owned.iter_mut().filter(|t| t.0 == name) {
        let elems: usize = shape.iter().product();
        t.3.truncate(elems * dtype.bitsize() / 8);
        (t.1, t.2) = (dtype, shape.clone());
    }
    let views: Vec<(String, TensorView)> = owned
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, &path).unwrap();
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, v.to_string()).unwrap();
}

/// The error of a failed open; checks that a good model still opens and generates after it.
fn message(r: Result<Model, RillError>) -> (RillError, String) {
    let e = r.err().expect("open must fail");
    let m = e.to_string();
    let mut s = Session::new(
        common::default_model(),
        SessionOptions {
            context_len: 32,
            prefill_chunk: 8,
            ..Default::default()
        },
    )
    .unwrap();
    s.set_generation_config(GenerationConfig {
        max_new_tokens: Some(2),
        ..Default::default()
    })
    .unwrap();
    assert!(
        !s.generate("The", |_| true).unwrap().tokens.is_empty(),
        "rill still works after: {m}"
    );
    (e, m)
}

#[test]
fn missing_folder() {
    let (e, m) = message(open(Path::new("/nonexistent/model")));
    assert!(matches!(e, RillError::MissingFile(_)), "{m}");
    assert!(m.contains("/nonexistent/model"), "{m}");
}

#[test]
fn missing_weights_file() {
    let (_t, dir) = common::copy_default_model();
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let (_, m) = message(open(&dir));
    assert!(m.contains("model.safetensors"), "{m}");
}

#[test]
fn truncated_weights_file() {
    let (_t, dir) = common::copy_default_model();
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 4096]).unwrap();
    let (e, m) = message(open(&dir));
    assert!(matches!(e, RillError::Weights { .. }), "{m}");
    assert!(m.contains("corrupt or truncated"), "{m}");
}

#[test]
fn tensor_with_wrong_dtype() {
    let (_t, dir) = common::copy_default_model();
    rewrite_tensor(&dir, "model.norm.weight", Dtype::I32, vec![256]);
    let (_, m) = message(open(&dir));
    assert!(m.contains("`model.norm.weight` is I32"), "{m}");
}

#[test]
fn tensor_with_wrong_shape() {
    let (_t, dir) = common::copy_default_model();
    rewrite_tensor(
        &dir,
        "model.layers.1.self_attn.k_proj.weight",
        Dtype::F32,
        vec![64, 256],
    );
    let (_, m) = message(open(&dir));
    assert!(
        m.contains("model.layers.1.self_attn.k_proj.weight")
            && m.contains("[128, 256]")
            && m.contains("[64, 256]"),
        "{m}"
    );
}

#[test]
fn config_layer_count_disagrees_with_graph() {
    let (_t, dir) = common::copy_default_model();
    edit_config(&dir, |v| v["num_hidden_layers"] = 3.into());
    let (e, m) = message(open(&dir));
    assert!(matches!(e, RillError::GraphMismatch { .. }), "{m}");
    assert!(m.contains("3 layers") && m.contains("4 layers"), "{m}");
}

#[test]
fn config_kv_heads_disagree_with_graph() {
    let (_t, dir) = common::copy_default_model();
    edit_config(&dir, |v| {
        v["num_key_value_heads"] = 4.into();
    });
    let (_, m) = message(open(&dir));
    assert!(
        m.contains("k_proj") || m.contains("past_key_values.0.key"),
        "{m}"
    );
}

#[test]
fn missing_tokenizer() {
    let (_t, dir) = common::copy_default_model();
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    let (e, m) = message(open(&dir));
    assert!(
        matches!(e, RillError::MissingFile(_)) && m.contains("tokenizer.json"),
        "{m}"
    );
}

#[test]
fn broken_tokenizer_is_reported_before_a_broken_graph() {
    // The tokenizer parses on its own thread while the session is built: whichever fails
    // last, a broken tokenizer.json is the error named, as when the two ran in turn.
    let (_t, dir) = common::copy_default_model();
    std::fs::write(dir.join("tokenizer.json"), "{\"model\": ").unwrap();
    for graph in [None, Some(&b"not a graph"[..])] {
        if let Some(bytes) = graph {
            std::fs::write(dir.join("model.onnx"), bytes).unwrap();
        }
        let (e, m) = message(open(&dir));
        assert!(
            matches!(e, RillError::Tokenizer(_)) && m.contains("tokenizer.json"),
            "{m}"
        );
    }
}

#[test]
fn corrupt_config() {
    let (_t, dir) = common::copy_default_model();
    std::fs::write(dir.join("config.json"), "{\"vocab_size\": 4096, ").unwrap();
    let (e, m) = message(open(&dir));
    assert!(
        matches!(e, RillError::Config { .. }) && m.contains("config.json"),
        "{m}"
    );
}

#[test]
fn prompt_longer_than_context_fails_before_work_and_session_stays_usable() {
    let model = common::default_model();
    let mut s = Session::new(
        model.clone(),
        SessionOptions {
            context_len: 16,
            prefill_chunk: 8,
            ..Default::default()
        },
    )
    .unwrap();
    let long = "And the king said unto him, ".repeat(10);
    let err = s.generate(&long, |_| true).unwrap_err();
    assert!(
        matches!(err, RillError::PromptTooLong { context: 16, .. }),
        "{err}"
    );
    assert!(err
        .to_string()
        .contains("does not fit the context of 16 tokens"));
    s.set_generation_config(GenerationConfig {
        max_new_tokens: Some(4),
        ..Default::default()
    })
    .unwrap();
    let ok = s.generate("In the", |_| true).unwrap();
    assert!(!ok.tokens.is_empty());
}

#[test]
fn token_ids_outside_the_vocabulary_are_refused() {
    let model = common::default_model();
    let mut s = Session::new(model.clone(), SessionOptions::default()).unwrap();
    let err = s.forward(&[0, 5, 1_000_000]).unwrap_err();
    assert!(
        matches!(err, RillError::TokenOutOfRange { id: 1_000_000, .. }),
        "{err}"
    );
    assert!(s.tokens().is_empty(), "nothing was evaluated");
    assert!(model.detokenize(&[7, 99_999]).is_err());
}

#[test]
fn callback_can_stop_at_once() {
    let model = common::default_model();
    let mut s = Session::new(Arc::clone(&model), SessionOptions::default()).unwrap();
    let mut calls = 0;
    let out = s
        .generate("In the beginning", |_| {
            calls += 1;
            false
        })
        .unwrap();
    assert_eq!(out.stop, StopReason::Callback);
    assert_eq!(calls, 1);
    assert_eq!(out.tokens.len(), 1);
}

#[test]
fn context_larger_than_the_model_is_refused() {
    let model = common::default_model();
    let too_big = model.max_context() + 1;
    let err = Session::new(
        model,
        SessionOptions {
            context_len: too_big,
            prefill_chunk: 8,
            ..Default::default()
        },
    )
    .err()
    .unwrap();
    assert!(matches!(err, RillError::InvalidArgument(_)), "{err}");
}

#[test]
fn invalid_generation_settings_are_refused_and_the_old_ones_stay() {
    let model = common::default_model();
    let mut s = Session::new(model, SessionOptions::default()).unwrap();
    s.set_generation_config(GenerationConfig {
        max_new_tokens: Some(3),
        ..Default::default()
    })
    .unwrap();
    let err = s
        .set_generation_config(GenerationConfig {
            temperature: Some(0.0),
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        matches!(err, RillError::GenerationConfig(_)) && err.to_string().contains("temperature"),
        "{err}"
    );
    assert_eq!(s.generation_config().max_new_tokens, Some(3));
}

#[test]
fn the_same_seed_gives_the_same_sampled_text() {
    let model = common::default_model();
    let run = |seed| {
        let mut s = Session::new(model.clone(), SessionOptions::default()).unwrap();
        let cfg = GenerationConfig {
            max_new_tokens: Some(24),
            do_sample: Some(true),
            seed: Some(seed),
            ..Default::default()
        };
        s.set_generation_config(cfg).unwrap();
        s.generate("And the king said", |_| true).unwrap().text
    };
    assert_eq!(run(11), run(11));
    assert_ne!(
        run(11),
        run(12),
        "different seeds give different text (24 sampled tokens)"
    );
}

#[test]
fn bad_words_sequence_bias_and_penalties_steer_the_output() {
    let model = common::default_model();
    let greedy = |extra: GenerationConfig| {
        let mut s = Session::new(model.clone(), SessionOptions::default()).unwrap();
        let base = GenerationConfig {
            max_new_tokens: Some(12),
            do_sample: Some(false),
            repetition_penalty: Some(1.0),
            ..Default::default()
        };
        s.set_generation_config(base.merged(&extra)).unwrap();
        s.generate("In the beginning", |_| true).unwrap().tokens
    };
    let plain = greedy(GenerationConfig::default());
    let first = plain[0];
    let banned = greedy(GenerationConfig {
        bad_words_ids: Some(vec![vec![first]]),
        ..Default::default()
    });
    assert!(!banned.contains(&first), "{first} banned: {banned:?}");
    let forced = greedy(GenerationConfig {
        sequence_bias: Some(vec![(vec![777], 100.0)]),
        ..Default::default()
    });
    assert_eq!(forced[0], 777, "a large bias forces the token");
    let penalised = greedy(GenerationConfig {
        frequency_penalty: Some(5.0),
        presence_penalty: Some(5.0),
        ..Default::default()
    });
    let distinct: std::collections::BTreeSet<_> = penalised.iter().collect();
    assert_eq!(
        distinct.len(),
        penalised.len(),
        "strong penalties forbid repeats: {penalised:?}"
    );
}
