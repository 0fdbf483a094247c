//! Which Hugging Face architectures `rill-train` reads: Llama, Mistral without a window
//! shorter than its context, Qwen2 without its sliding window, Qwen3 (per-head query/key
//! norms); anything else is refused by name instead of being read as a Llama.

use rill_trainer::config::LlamaConfig;

fn config(extra: &str) -> LlamaConfig {
    let text = format!(
        r#"{{"vocab_size": 300, "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 8192{extra}}}"#
    );
    serde_json::from_str(&text).unwrap()
}

#[test]
fn llama_family_configs_are_read_and_others_refused() {
    for ok in [
        "",
        r#", "model_type": "llama""#,
        r#", "model_type": "mistral", "sliding_window": null"#,
        r#", "model_type": "mistral", "sliding_window": 8192"#,
        r#", "model_type": "qwen2", "use_sliding_window": false, "sliding_window": 4096"#,
        r#", "model_type": "qwen3", "use_sliding_window": false, "sliding_window": null, "layer_types": ["full_attention"]"#,
    ] {
        assert_eq!(config(ok).validate(), Ok(()), "{ok}");
    }
    for (bad, needle) in [
        (
            r#", "model_type": "mistral", "sliding_window": 4096"#,
            "sliding_window 4096",
        ),
        (
            r#", "model_type": "qwen2", "use_sliding_window": true"#,
            "use_sliding_window",
        ),
        (
            r#", "model_type": "qwen3", "use_sliding_window": true"#,
            "use_sliding_window",
        ),
        (r#", "model_type": "gemma""#, "model_type `gemma`"),
    ] {
        let e = config(bad).validate().unwrap_err();
        assert!(e.contains(needle), "{bad}: {e}");
    }
    assert!(config(r#", "model_type": "qwen2""#).has_bias("self_attn.k_proj"));
    assert!(!config(r#", "model_type": "qwen2""#).has_bias("self_attn.o_proj"));
    assert!(!config("").has_bias("self_attn.q_proj"));
}

#[test]
fn qwen3_layers_have_query_and_key_norms_over_head_dim() {
    let qwen3 = config(r#", "model_type": "qwen3", "head_dim": 48, "attention_bias": false"#);
    assert!(qwen3.has_qk_norm() && !config(r#", "model_type": "qwen2""#).has_qk_norm());
    assert!(!qwen3.has_bias("self_attn.q_proj"));
    let shapes = rill_trainer::model::weight_shapes(&qwen3);
    for leaf in ["q_norm", "k_norm"] {
        let name = format!("model.layers.0.self_attn.{leaf}.weight");
        let shape = shapes.iter().find(|(n, _)| *n == name).map(|(_, s)| s);
        assert_eq!(shape, Some(&vec![48]), "{name}");
    }
    // Embedding 300 x 64; per layer q, k, v, o 4 x 96 x 64, MLP 3 x 64 x 128, two norms
    // of 64 and two of 48; the final norm 64; an untied head 300 x 64.
    assert_eq!(
        qwen3.parameter_count(),
        19_200 + (24_576 + 24_576 + 128 + 96) + 64 + 19_200
    );
}
