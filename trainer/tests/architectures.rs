//! Which Hugging Face architectures `rill-train` reads: Llama, Mistral without a window
//! shorter than its context, Qwen2 without its sliding window; anything else is refused by
//! name instead of being read as a Llama.

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
        (r#", "model_type": "gemma""#, "model_type `gemma`"),
    ] {
        let e = config(bad).validate().unwrap_err();
        assert!(e.contains(needle), "{bad}: {e}");
    }
    assert!(config(r#", "model_type": "qwen2""#).has_bias("self_attn.k_proj"));
    assert!(!config(r#", "model_type": "qwen2""#).has_bias("self_attn.o_proj"));
    assert!(!config("").has_bias("self_attn.q_proj"));
}
