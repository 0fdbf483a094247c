//! Which Hugging Face architectures `rill-train` reads: Llama, Mistral (with its sliding
//! window), Qwen2 and Qwen3 without their sliding windows, Gemma 2, Gemma 3 text,
//! SmolLM3, Phi-3; anything else is refused by name instead of being read as a Llama.

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
        r#", "model_type": "mistral", "sliding_window": 4096"#,
        r#", "model_type": "qwen2", "use_sliding_window": false, "sliding_window": 4096"#,
        r#", "model_type": "qwen3", "use_sliding_window": false, "sliding_window": null, "layer_types": ["full_attention"]"#,
    ] {
        assert_eq!(config(ok).validate(), Ok(()), "{ok}");
    }
    for (bad, needle) in [
        (
            r#", "model_type": "mistral", "sliding_window": 0"#,
            "sliding_window must be positive",
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

#[test]
fn gemma3_configs_are_read_with_their_sliding_layers_and_defaults() {
    let gemma = |extra: &str| {
        config(&format!(
            r#", "model_type": "gemma3_text", "hidden_activation": "gelu_pytorch_tanh", "sliding_window": 512{extra}"#
        ))
    };
    let cfg = gemma(r#", "query_pre_attn_scalar": 16"#);
    assert_eq!(cfg.validate(), Ok(()));
    assert!(cfg.has_qk_norm() && cfg.norm_adds_one());
    assert_eq!(cfg.attention_scale(), 0.25);
    assert_eq!(cfg.embed_scale(), Some(8.0));
    // Without layer_types: every sixth layer is full (transformers' sliding_window_pattern).
    let mut seven = gemma(r#", "sliding_window_pattern": 3"#);
    seven.num_hidden_layers = 7;
    let sliding: Vec<bool> = (0..7).map(|i| seven.layer_is_sliding(i)).collect();
    assert_eq!(sliding, [true, true, false, true, true, false, true]);
    assert_eq!(seven.window_of_layer(0), Some(512));
    assert_eq!(seven.window_of_layer(2), None);
    let explicit = gemma(r#", "layer_types": ["full_attention"]"#);
    assert!(!explicit.layer_is_sliding(0));
    for (bad, needle) in [
        (
            r#", "final_logit_softcapping": 0"#,
            "final_logit_softcapping (0) must be a positive number",
        ),
        (
            r#", "hidden_activation": "gelu""#,
            "hidden_activation `gelu`",
        ),
        (
            r#", "layer_types": ["full_attention", "full_attention"]"#,
            "2 entries for 1 layers",
        ),
        (
            r#", "layer_types": ["chunked_attention"]"#,
            "chunked_attention",
        ),
        (r#", "query_pre_attn_scalar": 0"#, "query_pre_attn_scalar"),
    ] {
        let text = format!(
            r#"{{"vocab_size": 300, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2, "model_type": "gemma3_text", "sliding_window": 512{bad}}}"#
        );
        let cfg: LlamaConfig = serde_json::from_str(&text).unwrap();
        let e = cfg.validate().unwrap_err();
        assert!(e.contains(needle), "{bad}: {e}");
    }
    let no_window = config(r#", "model_type": "gemma3_text""#);
    assert!(no_window.validate().unwrap_err().contains("sliding_window"));
    let qwen = config(r#", "model_type": "qwen3", "layer_types": ["sliding_attention"]"#);
    assert!(qwen.validate().unwrap_err().contains("gemma3_text"));
}

#[test]
fn gemma2_layers_alternate_and_soft_cap() {
    let gemma2 = |extra: &str| {
        let text = format!(
            r#"{{"vocab_size": 300, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4,
            "num_attention_heads": 2, "head_dim": 32, "model_type": "gemma2", "sliding_window": 16,
            "query_pre_attn_scalar": 16{extra}}}"#
        );
        serde_json::from_str::<LlamaConfig>(&text).unwrap()
    };
    let cfg = gemma2(r#", "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0"#);
    assert_eq!(cfg.validate(), Ok(()));
    // Without layer_types, as transformers derives them: every other layer slides, from
    // the first, with the model's one rotary base.
    let sliding: Vec<bool> = (0..4).map(|i| cfg.layer_is_sliding(i)).collect();
    assert_eq!(sliding, [true, false, true, false]);
    assert!(!cfg.has_qk_norm() && cfg.norm_adds_one() && cfg.embed_scale() == Some(8.0));
    assert_eq!(
        (cfg.attention_softcap(), cfg.final_softcap()),
        (Some(50.0), Some(30.0))
    );
    assert_eq!(cfg.attention_scale(), 0.25);
    let local = rill_trainer::model::Rope::of_layers(&cfg, true);
    assert_eq!(local, rill_trainer::model::Rope::of_layers(&cfg, false));
    for bad in [
        r#", "attn_logit_softcapping": 0.0"#,
        r#", "final_logit_softcapping": -30.0"#,
    ] {
        let e = gemma2(bad).validate().unwrap_err();
        assert!(e.contains("must be a positive number"), "{bad}: {e}");
    }
}

#[test]
fn a_gemma3_config_without_tie_word_embeddings_ties_its_head() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let text = |extra: &str| {
        format!(
            r#"{{"vocab_size": 300, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
            "num_attention_heads": 2, "sliding_window": 512{extra}}}"#
        )
    };
    for gemma in ["gemma3_text", "gemma2"] {
        std::fs::write(&path, text(&format!(r#", "model_type": "{gemma}""#))).unwrap();
        assert!(
            LlamaConfig::load(&path).unwrap().tie_word_embeddings,
            "{gemma}"
        );
    }
    std::fs::write(
        &path,
        text(r#", "model_type": "gemma3_text", "tie_word_embeddings": false"#),
    )
    .unwrap();
    assert!(!LlamaConfig::load(&path).unwrap().tie_word_embeddings);
    std::fs::write(&path, text(r#", "model_type": "llama""#)).unwrap();
    assert!(!LlamaConfig::load(&path).unwrap().tie_word_embeddings);
}

#[test]
fn smollm3_layers_without_rotary_positions() {
    let by_interval = config(r#", "model_type": "smollm3""#);
    assert_eq!(by_interval.validate(), Ok(()));
    let mut eight = by_interval.clone();
    eight.num_hidden_layers = 8;
    let rope: Vec<bool> = (0..8).map(|i| eight.layer_uses_rope(i)).collect();
    assert_eq!(rope, [true, true, true, false, true, true, true, false]);
    let listed = config(r#", "model_type": "smollm3", "no_rope_layers": [0]"#);
    assert!(!listed.layer_uses_rope(0));
    assert!(config("").layer_uses_rope(3), "Llama layers all rotate");
    for (bad, needle) in [
        (r#", "no_rope_layers": [1, 0]"#, "2 entries for 1 layers"),
        (r#", "no_rope_layer_interval": 0"#, "no_rope_layer_interval"),
    ] {
        let e = config(&format!(r#", "model_type": "smollm3"{bad}"#))
            .validate()
            .unwrap_err();
        assert!(e.contains(needle), "{bad}: {e}");
    }
}

#[test]
fn phi3_stores_fused_projections_and_rotates_part_of_a_head() {
    let phi =
        config(r#", "model_type": "phi3", "partial_rotary_factor": 1.0, "sliding_window": 2047"#);
    assert_eq!(phi.validate(), Ok(()));
    assert!(phi.fuses_projections() && phi.layer_is_sliding(0));
    let names: Vec<String> = rill_trainer::model::weight_shapes(&phi)
        .into_iter()
        .filter(|(n, _)| n.starts_with("model.layers.0."))
        .map(|(n, s)| format!("{n} {s:?}"))
        .collect();
    for expected in [
        "model.layers.0.self_attn.qkv_proj.weight [192, 64]",
        "model.layers.0.mlp.gate_up_proj.weight [256, 64]",
        "model.layers.0.mlp.down_proj.weight [64, 128]",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected}: {names:?}");
    }
    assert!(!names.iter().any(|n| n.contains("q_proj.")), "{names:?}");
    // Phi-4-mini rotates part of each head (here 24 of 32 dimensions).
    let partial = config(r#", "model_type": "phi3", "partial_rotary_factor": 0.75"#);
    assert_eq!(partial.validate(), Ok(()));
    assert_eq!((partial.head_dim(), partial.rotary_dim()), (32, 24));
}

#[test]
fn a_multimodal_gemma3_config_is_read_as_its_language_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    // As Google publishes Gemma 3 4B: the text config holds what differs from
    // Gemma3TextConfig's defaults; the token ids are outside it.
    std::fs::write(
        &path,
        r#"{"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
        "eos_token_id": [1, 106], "text_config": {"hidden_size": 2560, "intermediate_size": 10240,
        "model_type": "gemma3_text", "num_hidden_layers": 34, "sliding_window": 1024,
        "rope_scaling": {"factor": 8.0, "rope_type": "linear"}}, "vision_config": {"hidden_size": 1152}}"#,
    )
    .unwrap();
    let cfg = LlamaConfig::load(&path).unwrap();
    assert!(cfg.nested_language_model && cfg.is_gemma3() && cfg.tie_word_embeddings);
    assert_eq!(
        (
            cfg.vocab_size,
            cfg.hidden_size,
            cfg.num_attention_heads,
            cfg.kv_heads()
        ),
        (262_208, 2560, 8, 4)
    );
    assert_eq!(
        (cfg.head_dim(), cfg.rope_theta, cfg.local_rope_theta()),
        (256, 1e6, 1e4)
    );
    assert_eq!(cfg.eos_token_id.as_ref().unwrap().to_vec(), [1, 106]);
    assert!(cfg.layer_is_sliding(0) && !cfg.layer_is_sliding(5));
    for (stored, text) in [
        (
            "language_model.model.layers.3.mlp.up_proj.weight",
            Some("model.layers.3.mlp.up_proj.weight"),
        ),
        (
            "model.language_model.norm.weight",
            Some("model.norm.weight"),
        ),
        ("language_model.lm_head.weight", Some("lm_head.weight")),
        ("vision_tower.vision_model.post_layernorm.weight", None),
        ("multi_modal_projector.mm_input_projection_weight", None),
    ] {
        assert_eq!(
            rill_trainer::config::language_model_tensor(stored).as_deref(),
            text,
            "{stored}"
        );
    }
    std::fs::write(&path, r#"{"model_type": "gemma3", "vision_config": {}}"#).unwrap();
    let e = LlamaConfig::load(&path).unwrap_err().to_string();
    assert!(e.contains("text_config"), "{e}");
}

#[test]
fn granite_scales_embeddings_residuals_scores_and_logits() {
    let granite = config(
        r#", "model_type": "granite", "embedding_multiplier": 12.0, "residual_multiplier": 0.22,
        "attention_multiplier": 0.015625, "logits_scaling": 8.0"#,
    );
    assert_eq!(granite.validate(), Ok(()));
    assert_eq!(granite.embed_scale(), Some(12.0));
    assert_eq!(granite.residual_scale(), Some(0.22));
    assert_eq!(granite.attention_scale(), 0.015625);
    assert!(granite.scales_attention());
    assert_eq!(granite.logits_divisor(), Some(8.0));
    // Multipliers of 1 change nothing; a Llama config's are not read.
    let plain = config(r#", "model_type": "granite", "logits_scaling": 1.0"#);
    assert_eq!(
        (plain.logits_divisor(), plain.scales_attention()),
        (None, false)
    );
    let llama = config(r#", "embedding_multiplier": 12.0"#);
    assert_eq!(llama.embed_scale(), None);
    let bad = config(r#", "model_type": "granite", "logits_scaling": 0"#);
    assert!(bad.validate().unwrap_err().contains("logits_scaling (0)"));
}

#[test]
fn olmo2_layers_normalise_outputs_and_whole_projections() {
    let olmo = config(r#", "model_type": "olmo2", "num_key_value_heads": 1"#);
    assert_eq!(olmo.validate(), Ok(()));
    assert!(!olmo.has_input_norm() && olmo.norms_sublayer_outputs());
    assert!(olmo.has_full_qk_norm() && !olmo.has_qk_norm());
    let names: Vec<String> = rill_trainer::model::weight_shapes(&olmo)
        .into_iter()
        .filter(|(n, _)| n.contains("norm"))
        .map(|(n, s)| format!("{n} {s:?}"))
        .collect();
    assert_eq!(
        names,
        [
            "model.layers.0.self_attn.q_norm.weight [64]",
            "model.layers.0.self_attn.k_norm.weight [32]",
            "model.layers.0.post_attention_layernorm.weight [64]",
            "model.layers.0.post_feedforward_layernorm.weight [64]",
            "model.norm.weight [64]",
        ]
    );
}
