//! Rotary scaling (`rope_scaling`: `linear`, Llama 3.1's `llama3`, `yarn`, Phi-3's
//! `longrope`) gives the inverse frequencies (YaRN's and LongRoPE's attention factor,
//! LongRoPE's long frequencies) transformers computes (tests/reference/fixtures/rope_scaling.json, written
//! by tests/reference/make_rope_fixtures.py with transformers itself).

use rill_trainer::config::LlamaConfig;
use rill_trainer::model::{inv_freq, Rope};

#[test]
fn inverse_frequencies_match_transformers() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/reference/fixtures/rope_scaling.json"
    );
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 8);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let cfg: LlamaConfig = serde_json::from_value(case["config"].clone()).unwrap();
        cfg.validate().unwrap();
        let factor = cfg.rotary_scaling().unwrap().attention_factor();
        let want_factor = case["attention_factor"].as_f64().unwrap();
        assert!(
            (factor - want_factor).abs() < 1e-12,
            "{name}: attention factor {factor} vs {want_factor}"
        );
        assert_close(name, &inv_freq(&cfg), &case["inv_freq"]);
        let rope = Rope::of_layers(&cfg, false);
        match (&rope.long, case.get("long_inv_freq")) {
            (None, None) => {}
            (Some((long, original)), Some(want)) => {
                assert_close(name, long, want);
                assert_eq!(
                    Some(*original as u64),
                    case["original_max_position_embeddings"].as_u64(),
                    "{name}"
                );
                assert_eq!(rope.inv_freq_at(*original), rope.inv_freq.as_slice());
                assert_eq!(rope.inv_freq_at(original + 1), long.as_slice());
            }
            (got, want) => panic!("{name}: long frequencies {got:?} vs transformers {want:?}"),
        }
    }
}

fn assert_close(name: &str, got: &[f32], want: &serde_json::Value) {
    let want: Vec<f64> = want
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(got.len(), want.len(), "{name}");
    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
        let rel = (g as f64 - w).abs() / w.abs();
        assert!(rel < 2e-6, "{name}: inv_freq[{i}] {g} vs transformers {w}");
    }
}

#[test]
fn unsupported_rope_scaling_is_a_clear_error() {
    let base = r#"{"vocab_size": 300, "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 128"#;
    for (scaling, needle) in [
        (
            r#"{"rope_type": "longrope", "factor": 4.0}"#,
            "needs `short_factor`, a list of 16 positive numbers",
        ),
        (
            r#"{"rope_type": "longrope", "short_factor": [1.0], "long_factor": [1.0]}"#,
            "needs `short_factor`, a list of 16 positive numbers",
        ),
        (
            r#"{"type": "mrope", "mrope_section": [16, 24, 24]}"#,
            "`mrope` is not supported",
        ),
        (r#"{"type": "dynamic"}"#, "needs a positive number `factor`"),
        (
            r#"{"rope_type": "linear"}"#,
            "needs a positive number `factor`",
        ),
        (
            r#"{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 1.0, "original_max_position_embeddings": 64}"#,
            "must exceed",
        ),
    ] {
        let text = format!(r#"{base}, "rope_scaling": {scaling}}}"#);
        let cfg: LlamaConfig = serde_json::from_str(&text).unwrap();
        let e = cfg.validate().unwrap_err();
        assert!(e.contains(needle), "{scaling}: {e}");
    }
}

#[test]
fn partial_rotary_positions_are_refused_where_transformers_has_none() {
    let base = r#"{"vocab_size": 300, "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 128"#;
    for (model_type, factor, needle) in [
        ("llama", 0.5, "supported for phi3 models only"),
        ("phi3", 0.01, "even, positive number of rotated dimensions"),
        ("phi3", 1.5, "must be in (0, 1]"),
    ] {
        let text =
            format!(r#"{base}, "model_type": "{model_type}", "partial_rotary_factor": {factor}}}"#);
        let cfg: LlamaConfig = serde_json::from_str(&text).unwrap();
        let e = cfg.validate().unwrap_err();
        assert!(e.contains(needle), "{model_type} {factor}: {e}");
    }
    let text = format!(r#"{base}, "model_type": "phi3", "partial_rotary_factor": 0.75}}"#);
    let cfg: LlamaConfig = serde_json::from_str(&text).unwrap();
    cfg.validate().unwrap();
    assert_eq!(cfg.rotary_dim(), 24);
}
