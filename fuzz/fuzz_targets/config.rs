//! `config.json` and `generation_config.json` parsing: any text is a config or an error,
//! and the sizes derived from an accepted config never overflow or panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 8] = [
    "model.embed_tokens.weight",
    "lm_head.weight",
    "model.norm.weight",
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.0.self_attn.k_proj.qweight",
    "model.layers.1.self_attn.o_proj.scales",
    "model.layers.0.mlp.down_proj.qzeros",
    "model.layers.0.input_layernorm.weight",
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = rill::ModelConfig::parse(text, std::path::Path::new("config.json")) {
        let _ = (cfg.kv_heads(), cfg.head_dim());
        for name in NAMES {
            let _ = rill::weights::llama_shape(&cfg, name);
        }
    }
    if let Ok(g) = rill::GenerationConfig::from_json(text) {
        let merged = rill::GenerationConfig::default().merged(&g);
        let _ = serde_json::to_string(&merged);
    }
});
