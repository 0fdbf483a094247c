//! The model's hyper-parameters, read and written as a Hugging Face Llama `config.json`.
//!
//! Key names and meanings follow `transformers.LlamaConfig`, so transformers, optimum and
//! llama.cpp's converter read our folders unchanged.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{io_err, Result, TrainerError};

/// One or several end-of-sequence ids (`eos_token_id` may be either in HF configs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    /// A single id.
    One(u32),
    /// Several ids, any of which ends generation.
    Many(Vec<u32>),
}

impl TokenIds {
    /// All ids as a list.
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            TokenIds::One(id) => vec![*id],
            TokenIds::Many(ids) => ids.clone(),
        }
    }
}

fn default_rope_theta() -> f64 {
    10_000.0
}
fn default_eps() -> f64 {
    1e-6
}
fn default_max_pos() -> usize {
    2048
}

/// A Hugging Face `LlamaConfig`, the subset that defines the computation plus the ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// Always `llama` for our exports; other Llama-family names are accepted on import.
    #[serde(default = "llama")]
    pub model_type: String,
    /// `["LlamaForCausalLM"]` for our exports.
    #[serde(default)]
    pub architectures: Vec<String>,
    /// Number of tokens in the vocabulary (rows of the embedding).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the SwiGLU MLP.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Number of query heads.
    pub num_attention_heads: usize,
    /// Number of key/value heads (grouped-query attention when fewer than query heads).
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Width of one head; `hidden_size / num_attention_heads` when absent.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// Longest sequence the model was built for.
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    /// Epsilon of RMSNorm.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// Base of the rotary position frequencies.
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    /// Whether the LM head shares the embedding matrix.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Beginning-of-sequence id.
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// End-of-sequence id(s).
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    /// Padding id.
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    /// Activation of the MLP; only `silu` is supported.
    #[serde(default = "silu")]
    pub hidden_act: String,
    /// Biases on the attention projections q, k, v and o (Llama's `attention_bias`).
    #[serde(default)]
    pub attention_bias: bool,
    /// Biases on the MLP projections.
    #[serde(default)]
    pub mlp_bias: bool,
    /// Qwen2's sliding-window attention (unsupported when true).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub use_sliding_window: bool,
    /// Mistral's attention window (unsupported when shorter than the context).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sliding_window: Option<u64>,
    /// Rotary scaling (unsupported when set).
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    /// Gemma 3's name for the MLP activation (`gelu_pytorch_tanh`); the Llama family uses
    /// `hidden_act`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_activation: Option<String>,
    /// Gemma 3: attention scores scaled by `query_pre_attn_scalar^-0.5` instead of
    /// `head_dim^-0.5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_pre_attn_scalar: Option<f64>,
    /// Each layer's attention: `full_attention`, or (Gemma 3) `sliding_attention`, which
    /// sees the last `sliding_window` positions only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_types: Option<Vec<String>>,
    /// Gemma 3's older form of `layer_types`: every `sliding_window_pattern`-th layer is a
    /// full one, the others slide (6 when neither is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sliding_window_pattern: Option<usize>,
    /// Gemma 3: the rotary base of the sliding layers (unscaled); full layers use
    /// `rope_theta` and `rope_scaling`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_local_base_freq: Option<f64>,
    /// SmolLM3: per layer, 1 where the layer applies rotary positions and 0 where it
    /// does not (NoPE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_rope_layers: Option<Vec<u8>>,
    /// SmolLM3's older form of `no_rope_layers`: every `no_rope_layer_interval`-th layer
    /// has no rotary positions (4 when neither is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_rope_layer_interval: Option<usize>,
    /// Phi-3 (Phi-4-mini): the share of each head that rotates, its first
    /// `rotary_dim()` dimensions; the rest pass through unrotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_rotary_factor: Option<f64>,
    /// Phi-3's pretraining context, outside `rope_scaling`: with `longrope` scaling, the
    /// long factors apply once a sequence is longer than this (4,096 when a Phi-3
    /// config leaves it out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_max_position_embeddings: Option<usize>,
    /// Gemma's soft-capping of the final logits: `cap * tanh(logits / cap)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_logit_softcapping: Option<f64>,
    /// Gemma's soft-capping of attention scores: `cap * tanh(scores / cap)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attn_logit_softcapping: Option<f64>,
    /// Granite: what embedding rows are multiplied by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_multiplier: Option<f64>,
    /// Granite: what each layer's attention and MLP outputs are multiplied by before they
    /// join the residual stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residual_multiplier: Option<f64>,
    /// Granite: the attention scores' scale (instead of `head_dim^-0.5`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_multiplier: Option<f64>,
    /// Granite: what the final logits are divided by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logits_scaling: Option<f64>,
    /// Weight dtype as HF records it (`float32` or `float16`).
    #[serde(default)]
    pub torch_dtype: Option<String>,
    /// Standard deviation of the initial weights.
    #[serde(default = "init_range")]
    pub initializer_range: f64,
    /// How the weights are quantized (`rill-train quantize`); absent for float weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization_config: Option<crate::quantize::QuantizationConfig>,
    /// Read from a multimodal Gemma 3 folder (`model_type` `gemma3`): this is its
    /// language model, whose weights are stored under `language_model.` names beside a
    /// vision tower (see [`language_model_tensor`]). Never written to config.json.
    #[serde(skip)]
    pub nested_language_model: bool,
}

/// The name a multimodal Gemma 3 checkpoint's tensor has in its language model alone
/// (`language_model.model.X` as published, `model.language_model.X` as transformers 4.52+
/// saves it, become `model.X`; `language_model.lm_head.X` becomes `lm_head.X`), or
/// `None` for the vision tower and projector.
pub fn language_model_tensor(name: &str) -> Option<String> {
    for (prefix, to) in [
        ("language_model.model.", "model."),
        ("model.language_model.", "model."),
        ("language_model.lm_head.", "lm_head."),
        ("lm_head.", "lm_head."),
    ] {
        if let Some(rest) = name.strip_prefix(prefix) {
            return Some(format!("{to}{rest}"));
        }
    }
    None
}

/// transformers' `Gemma3TextConfig` defaults, which a multimodal checkpoint's
/// `text_config` leaves out (transformers saves nested configs as their difference from
/// the defaults).
const GEMMA3_TEXT_DEFAULTS: &str = r#"{"vocab_size": 262208, "hidden_size": 2304,
    "intermediate_size": 9216, "num_hidden_layers": 26, "num_attention_heads": 8,
    "num_key_value_heads": 4, "head_dim": 256, "hidden_activation": "gelu_pytorch_tanh",
    "max_position_embeddings": 131072, "rms_norm_eps": 1e-06, "pad_token_id": 0,
    "eos_token_id": 1, "bos_token_id": 2, "tie_word_embeddings": true,
    "rope_theta": 1000000.0, "attention_bias": false, "query_pre_attn_scalar": 256,
    "sliding_window": 4096, "rope_local_base_freq": 10000.0}"#;

/// The language model's config of a multimodal Gemma 3 config (`model_type` `gemma3`):
/// its `text_config` over `Gemma3TextConfig`'s defaults, with the token ids of the outer
/// config where it has them. Other configs are returned as they are, with `false`.
fn language_model_config(
    raw: serde_json::Value,
) -> std::result::Result<(serde_json::Value, bool), String> {
    if raw.get("model_type").and_then(|t| t.as_str()) != Some("gemma3") {
        return Ok((raw, false));
    }
    let text = raw
        .get("text_config")
        .and_then(|t| t.as_object())
        .ok_or("a `gemma3` config needs a `text_config` object (its language model)")?;
    let mut merged: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(GEMMA3_TEXT_DEFAULTS).expect("the defaults are JSON");
    merged.extend(text.clone());
    for key in [
        "bos_token_id",
        "eos_token_id",
        "pad_token_id",
        "torch_dtype",
    ] {
        if let Some(v) = raw.get(key).filter(|v| !v.is_null()) {
            merged.insert(key.into(), v.clone());
        }
    }
    merged.insert("model_type".into(), "gemma3_text".into());
    merged.insert(
        "architectures".into(),
        serde_json::json!(["Gemma3ForCausalLM"]),
    );
    Ok((serde_json::Value::Object(merged), true))
}

fn llama() -> String {
    "llama".into()
}
fn silu() -> String {
    "silu".into()
}
fn init_range() -> f64 {
    0.02
}

/// Named sizes for `rill-train init` and `train --preset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// ~50k parameters: unit tests.
    Test,
    /// ~3.6M parameters with a 4096 vocabulary: the default model.
    Tiny,
    /// ~79M parameters with a 4096-token vocabulary (d 768, 12 layers): speed benchmarks
    /// with random weights.
    Bench100m,
}

impl LlamaConfig {
    /// A config of the given preset size with our token ids (BOS 0, EOS 1, PAD 2).
    pub fn preset(preset: Preset, vocab_size: usize) -> Self {
        let (hidden, inter, layers, heads, kv) = match preset {
            Preset::Test => (32, 64, 2, 4, 2),
            Preset::Tiny => (256, 688, 4, 4, 2),
            Preset::Bench100m => (768, 2048, 12, 12, 4),
        };
        LlamaConfig {
            model_type: llama(),
            architectures: vec!["LlamaForCausalLM".into()],
            vocab_size,
            hidden_size: hidden,
            intermediate_size: inter,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            num_key_value_heads: Some(kv),
            head_dim: Some(hidden / heads),
            // The benchmark model measures long contexts (issue 6: a 1,500-token prompt).
            max_position_embeddings: if preset == Preset::Bench100m {
                2048
            } else {
                1024
            },
            rms_norm_eps: 1e-5,
            rope_theta: 10_000.0,
            tie_word_embeddings: true,
            bos_token_id: Some(crate::tokenizer::BOS_ID),
            eos_token_id: Some(TokenIds::One(crate::tokenizer::EOS_ID)),
            pad_token_id: Some(crate::tokenizer::PAD_ID),
            hidden_act: silu(),
            attention_bias: false,
            mlp_bias: false,
            use_sliding_window: false,
            sliding_window: None,
            rope_scaling: None,
            hidden_activation: None,
            query_pre_attn_scalar: None,
            layer_types: None,
            sliding_window_pattern: None,
            rope_local_base_freq: None,
            no_rope_layers: None,
            no_rope_layer_interval: None,
            partial_rotary_factor: None,
            original_max_position_embeddings: None,
            final_logit_softcapping: None,
            attn_logit_softcapping: None,
            embedding_multiplier: None,
            residual_multiplier: None,
            attention_multiplier: None,
            logits_scaling: None,
            torch_dtype: Some("float32".into()),
            initializer_range: 0.02,
            quantization_config: None,
            nested_language_model: false,
        }
    }

    /// Number of key/value heads.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// Reads and validates a `config.json`.
    pub fn load(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(TrainerError::MissingFile(path.to_path_buf()));
        }
        let text = std::fs::read_to_string(path).map_err(io_err(path))?;
        let raw: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| TrainerError::BadConfig {
                path: path.to_path_buf(),
                message: format!("not a valid Llama config.json: {e}"),
            })?;
        let (raw, nested) =
            language_model_config(raw).map_err(|message| TrainerError::BadConfig {
                path: path.to_path_buf(),
                message,
            })?;
        let mut cfg: LlamaConfig =
            serde_json::from_value(raw.clone()).map_err(|e| TrainerError::BadConfig {
                path: path.to_path_buf(),
                message: format!("not a valid Llama config.json: {e}"),
            })?;
        cfg.nested_language_model = nested;
        // transformers leaves out keys at their class's default: Gemma 3 and SmolLM3 tie
        // their head unless told otherwise (Llama, Qwen and Mistral do not).
        if raw.get("tie_word_embeddings").is_none() {
            cfg.tie_word_embeddings = matches!(
                cfg.model_type.as_str(),
                "gemma2" | "gemma3_text" | "smollm3"
            );
        }
        cfg.validate().map_err(|message| TrainerError::BadConfig {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(cfg)
    }

    /// Writes `config.json` with the HF keys.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut value = serde_json::to_value(self).expect("config serializes");
        let map = value.as_object_mut().expect("config is an object");
        map.insert("use_cache".into(), true.into());
        map.insert("attention_dropout".into(), 0.0.into());
        map.insert("pretraining_tp".into(), 1.into());
        let text = serde_json::to_string_pretty(&value).expect("config serializes");
        std::fs::write(path, text + "\n").map_err(io_err(path))
    }

    /// Checks that the sizes are consistent and the variant is one we compute.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.kv_heads()),
            ("head_dim", self.head_dim()),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("`{name}` must be positive"));
        }
        // Sizes past any real model would overflow the shapes computed from them.
        const MAX: usize = 1 << 24;
        if let Some((name, v)) = positive
            .iter()
            .chain([("max_position_embeddings", self.max_position_embeddings)].iter())
            .find(|(_, v)| *v > MAX)
        {
            return Err(format!(
                "`{name}` is {v}, larger than any model (at most {MAX})"
            ));
        }
        if !self.num_attention_heads.is_multiple_of(self.kv_heads()) {
            return Err(format!(
                "num_attention_heads ({}) must be a multiple of num_key_value_heads ({})",
                self.num_attention_heads,
                self.kv_heads()
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(format!(
                "head_dim ({}) must be even for rotary positions",
                self.head_dim()
            ));
        }
        if self.is_gemma() {
            self.validate_gemma()?;
        } else if self.hidden_act != "silu" {
            return Err(format!(
                "hidden_act `{}` is not supported (only silu)",
                self.hidden_act
            ));
        }
        if let Some(types) = &self.layer_types {
            if types.len() != self.num_hidden_layers {
                return Err(format!(
                    "layer_types has {} entries for {} layers",
                    types.len(),
                    self.num_hidden_layers
                ));
            }
            match types
                .iter()
                .find(|t| *t != "full_attention" && *t != "sliding_attention")
            {
                Some(other) => {
                    return Err(format!(
                        "layer type `{other}` is not supported (full_attention, sliding_attention)"
                    ))
                }
                None if !self.is_gemma() && types.iter().any(|t| t == "sliding_attention") => {
                    return Err(
                        "sliding_attention layers are supported in gemma2 and gemma3_text models only"
                            .into(),
                    )
                }
                None => {}
            }
        }
        if self.sliding_window == Some(0) {
            return Err("sliding_window must be positive".into());
        }
        match self.model_type.as_str() {
            "llama" | "mistral" | "qwen2" | "qwen3" | "gemma2" | "gemma3_text" | "olmo2" => {}
            "granite" => {
                if let Some((name, v)) = [
                    ("embedding_multiplier", self.embedding_multiplier),
                    ("residual_multiplier", self.residual_multiplier),
                    ("attention_multiplier", self.attention_multiplier),
                    ("logits_scaling", self.logits_scaling),
                ]
                .into_iter()
                .find_map(|(name, v)| v.filter(|v| !(v.is_finite() && *v > 0.0)).map(|v| (name, v)))
                {
                    return Err(format!("{name} ({v}) must be a positive number"));
                }
            }
            "phi3" => {}
            "smollm3" => {
                if self.no_rope_layer_interval == Some(0) {
                    return Err("no_rope_layer_interval must be positive".into());
                }
                if let Some(list) = &self.no_rope_layers {
                    if list.len() != self.num_hidden_layers {
                        return Err(format!(
                            "no_rope_layers has {} entries for {} layers",
                            list.len(),
                            self.num_hidden_layers
                        ));
                    }
                }
            }
            other => {
                return Err(format!(
                    "model_type `{other}` is not an architecture rill-train reads (llama, mistral, qwen2, qwen3, gemma2, gemma3_text, smollm3, phi3, granite, olmo2)"
                ))
            }
        }
        if let Some(f) = self.partial_rotary_factor.filter(|&f| f != 1.0) {
            if self.model_type != "phi3" {
                return Err(format!(
                    "partial_rotary_factor {f} (rotary positions on part of each head) is supported for phi3 models only"
                ));
            }
            let rotary = self.rotary_dim();
            if !(f > 0.0 && f <= 1.0) || rotary == 0 || !rotary.is_multiple_of(2) {
                return Err(format!(
                    "partial_rotary_factor {f} must be in (0, 1] and give an even, positive number of rotated dimensions (gives {rotary} of head_dim {})",
                    self.head_dim()
                ));
            }
        }
        if self.original_max_position_embeddings == Some(0) {
            return Err("original_max_position_embeddings must be positive".into());
        }
        if self.use_sliding_window {
            return Err("use_sliding_window (sliding-window attention) is not supported".into());
        }
        self.rotary_scaling()?;
        if let Some(q) = &self.quantization_config {
            q.validate()?;
        }
        Ok(())
    }

    /// The rotary scaling `rope_scaling` asks for: transformers' `linear`, `llama3` (Llama
    /// 3.1 and 3.2), `yarn`, `longrope` (Phi-3.5, Phi-4-mini) and `dynamic` (plain
    /// within the context) rope types; others (`mrope`, ...) are refused.
    pub fn rotary_scaling(&self) -> std::result::Result<RotaryScaling, String> {
        let Some(v) = self.rope_scaling.as_ref().filter(|v| !v.is_null()) else {
            return Ok(RotaryScaling::None);
        };
        let mut kind = v
            .get("rope_type")
            .or_else(|| v.get("type"))
            .and_then(|t| t.as_str())
            .unwrap_or_default();
        // Phi-3's configuration reads its older names `su` and `yarn` as `longrope`.
        if self.model_type == "phi3" && matches!(kind, "su" | "yarn") {
            kind = "longrope";
        }
        let number = |key: &str| -> std::result::Result<f64, String> {
            v.get(key)
                .and_then(serde_json::Value::as_f64)
                .filter(|x| x.is_finite() && *x > 0.0)
                .ok_or_else(|| {
                    format!("rope_scaling of type `{kind}` needs a positive number `{key}`")
                })
        };
        match kind {
            "default" => Ok(RotaryScaling::None),
            // Dynamic NTK changes the base only for sequences longer than
            // `max_position_embeddings` (transformers' `_compute_dynamic_ntk_parameters`),
            // which rill never runs: the context is at most that.
            "dynamic" => number("factor").map(|_| RotaryScaling::None),
            "linear" => Ok(RotaryScaling::Linear {
                factor: number("factor")?,
            }),
            "llama3" => {
                let (low, high) = (number("low_freq_factor")?, number("high_freq_factor")?);
                if high <= low {
                    return Err(format!("rope_scaling: high_freq_factor ({high}) must exceed low_freq_factor ({low})"));
                }
                Ok(RotaryScaling::Llama3 {
                    factor: number("factor")?,
                    low_freq_factor: low,
                    high_freq_factor: high,
                    original_max_position_embeddings: number("original_max_position_embeddings")?,
                })
            }
            "yarn" => {
                let optional = |key: &str| -> std::result::Result<Option<f64>, String> {
                    match v.get(key) {
                        None | Some(serde_json::Value::Null) => Ok(None),
                        Some(_) => number(key).map(Some),
                    }
                };
                // transformers: with `original_max_position_embeddings` given, the factor
                // is max_position_embeddings over it, whatever `factor` says.
                let (factor, original) = match optional("original_max_position_embeddings")? {
                    Some(original) => (self.max_position_embeddings as f64 / original, original),
                    None => (number("factor")?, self.max_position_embeddings as f64),
                };
                let mscale = |scale: f64, m: f64| {
                    if scale <= 1.0 {
                        1.0
                    } else {
                        0.1 * m * scale.ln() + 1.0
                    }
                };
                let attention_factor = match (
                    optional("attention_factor")?,
                    optional("mscale")?,
                    optional("mscale_all_dim")?,
                ) {
                    (Some(a), _, _) => a,
                    (None, Some(m), Some(all)) => mscale(factor, m) / mscale(factor, all),
                    _ => mscale(factor, 1.0),
                };
                Ok(RotaryScaling::Yarn {
                    factor,
                    original_max_position_embeddings: original,
                    attention_factor,
                    beta_fast: optional("beta_fast")?.unwrap_or(32.0),
                    beta_slow: optional("beta_slow")?.unwrap_or(1.0),
                })
            }
            "longrope" => self.longrope(v),
            other => Err(format!(
                "rope_scaling of type `{other}` is not supported (`linear`, `dynamic`, `llama3`, `yarn` and `longrope` are)"
            )),
        }
    }

    /// LongRoPE (transformers' `_compute_longrope_parameters`): per-dimension divisors of
    /// the frequencies, `short_factor` while a sequence fits the pretraining context and
    /// `long_factor` past it, cos and sin multiplied by an attention factor.
    fn longrope(&self, v: &serde_json::Value) -> std::result::Result<RotaryScaling, String> {
        let half = self.rotary_dim() / 2;
        let factors = |key: &str| -> std::result::Result<Vec<f64>, String> {
            let list: Option<Vec<f64>> = v.get(key).and_then(|l| l.as_array()).and_then(|l| {
                l.iter()
                    .map(|x| x.as_f64().filter(|x| x.is_finite() && *x > 0.0))
                    .collect()
            });
            match list {
                Some(list) if list.len() == half => Ok(list),
                _ => Err(format!(
                    "rope_scaling of type `longrope` needs `{key}`, a list of {half} positive numbers (one per rotated pair of dimensions)"
                )),
            }
        };
        // As transformers: a top-level `original_max_position_embeddings` (always there
        // for Phi-3, whose class defaults it to 4,096) sets the factor; else `factor`.
        let original = self
            .original_max_position_embeddings
            .or((self.model_type == "phi3").then_some(4096));
        let factor = match original {
            Some(original) => self.max_position_embeddings as f64 / original as f64,
            None => v.get("factor").and_then(|f| f.as_f64()).unwrap_or(1.0),
        };
        let original = original.unwrap_or(self.max_position_embeddings);
        let attention_factor = match v.get("attention_factor").and_then(|a| a.as_f64()) {
            Some(a) if a.is_finite() && a > 0.0 => a,
            Some(a) => {
                return Err(format!(
                    "rope_scaling: attention_factor {a} must be positive"
                ))
            }
            None if factor <= 1.0 => 1.0,
            None => (1.0 + factor.ln() / (original as f64).ln()).sqrt(),
        };
        Ok(RotaryScaling::LongRope {
            short_factor: factors("short_factor")?,
            long_factor: factors("long_factor")?,
            attention_factor,
            original_max_position_embeddings: original,
        })
    }

    /// How many of each head's dimensions rotate: `head_dim * partial_rotary_factor`,
    /// rounded down as transformers does (all of them without the factor).
    pub fn rotary_dim(&self) -> usize {
        match self.partial_rotary_factor {
            Some(f) if f != 1.0 => (self.head_dim() as f64 * f) as usize,
            _ => self.head_dim(),
        }
    }

    /// Whether the projection `leaf` of a layer (e.g. `self_attn.q_proj`) has a bias:
    /// Llama's `attention_bias` (q, k, v, o) and `mlp_bias`; Qwen2 (`model_type`
    /// `qwen2`, otherwise a Llama) always has biases on q, k and v.
    pub fn has_bias(&self, leaf: &str) -> bool {
        match leaf {
            "self_attn.q_proj" | "self_attn.k_proj" | "self_attn.v_proj" => {
                self.attention_bias || self.model_type == "qwen2"
            }
            "self_attn.o_proj" => self.attention_bias,
            "mlp.gate_proj" | "mlp.up_proj" | "mlp.down_proj" => self.mlp_bias,
            _ => false,
        }
    }

    /// Whether each layer normalises its queries and keys per head (an RMSNorm over
    /// `head_dim` with weights `self_attn.q_norm` / `self_attn.k_norm`, before the rotary
    /// positions), as Qwen3 (`model_type` `qwen3`) and Gemma 3 do.
    pub fn has_qk_norm(&self) -> bool {
        self.model_type == "qwen3" || self.is_gemma3()
    }

    /// Whether each layer normalises its queries and keys over the whole projection (an
    /// RMSNorm over `heads * head_dim` with weights `self_attn.q_norm` /
    /// `self_attn.k_norm`, before splitting heads), as OLMo 2 (`model_type` `olmo2`) does.
    pub fn has_full_qk_norm(&self) -> bool {
        self.model_type == "olmo2"
    }

    /// Whether queries and keys are normalised at all (per head or over the projection).
    pub fn normalizes_queries(&self) -> bool {
        self.has_qk_norm() || self.has_full_qk_norm()
    }

    /// Whether a layer normalises its input before attention (`input_layernorm`): all
    /// but OLMo 2, whose layers normalise only what their attention and MLP return.
    pub fn has_input_norm(&self) -> bool {
        self.model_type != "olmo2"
    }

    /// Whether the attention's and the MLP's outputs are normalised before they join the
    /// residual stream (`post_attention_layernorm` then names the first of those norms,
    /// `post_feedforward_layernorm` the second): Gemma and OLMo 2. Otherwise
    /// `post_attention_layernorm` is the norm before the MLP.
    pub fn norms_sublayer_outputs(&self) -> bool {
        self.is_gemma() || self.model_type == "olmo2"
    }

    /// Whether a layer's q, k and v weights are one matrix (`self_attn.qkv_proj`, rows q
    /// then k then v) and its gate and up weights another (`mlp.gate_up_proj`, gate
    /// first), as Phi-3 (`model_type` `phi3`) stores them.
    pub fn fuses_projections(&self) -> bool {
        self.model_type == "phi3"
    }

    /// Whether this is Gemma 3's text model (`model_type` `gemma3_text`): embeddings scaled
    /// by `sqrt(hidden_size)`, RMSNorm scales stored as offsets from one, norms after
    /// attention and around the MLP too, a tanh-approximated GELU MLP, query/key norms,
    /// `query_pre_attn_scalar`, and sliding-window layers with their own rotary base.
    pub fn is_gemma3(&self) -> bool {
        self.model_type == "gemma3_text"
    }

    /// Whether this is Gemma 2 (`model_type` `gemma2`) or Gemma 3's text model: what they
    /// share (everything [`LlamaConfig::is_gemma3`] lists but the query/key norms and the
    /// sliding layers' own rotary base; Gemma 2's layers alternate sliding and full, and
    /// it soft-caps attention scores and final logits).
    pub fn is_gemma(&self) -> bool {
        self.model_type == "gemma2" || self.is_gemma3()
    }

    /// Gemma's soft-capping of attention scores (`attn_logit_softcapping`): scores become
    /// `cap * tanh(scores / cap)` before the mask.
    pub fn attention_softcap(&self) -> Option<f64> {
        self.attn_logit_softcapping.filter(|_| self.is_gemma())
    }

    /// Gemma's soft-capping of the final logits (`final_logit_softcapping`).
    pub fn final_softcap(&self) -> Option<f64> {
        self.final_logit_softcapping.filter(|_| self.is_gemma())
    }

    fn validate_gemma(&self) -> std::result::Result<(), String> {
        let activation = self
            .hidden_activation
            .as_deref()
            .unwrap_or("gelu_pytorch_tanh");
        if activation != "gelu_pytorch_tanh" {
            return Err(format!(
                "hidden_activation `{activation}` is not supported (only gelu_pytorch_tanh)"
            ));
        }
        if let Some((name, cap)) = [
            ("final_logit_softcapping", self.final_logit_softcapping),
            ("attn_logit_softcapping", self.attn_logit_softcapping),
        ]
        .into_iter()
        .find_map(|(name, v)| {
            v.filter(|c| !(c.is_finite() && *c > 0.0))
                .map(|c| (name, c))
        }) {
            return Err(format!("{name} ({cap}) must be a positive number"));
        }
        if self
            .query_pre_attn_scalar
            .is_some_and(|s| s.is_nan() || s <= 0.0)
        {
            return Err("query_pre_attn_scalar must be positive".into());
        }
        if self.sliding_window_pattern == Some(0) {
            return Err("sliding_window_pattern must be positive".into());
        }
        let any_sliding = (0..self.num_hidden_layers).any(|i| self.layer_is_sliding(i));
        if any_sliding && self.sliding_window.is_none() {
            return Err("sliding_attention layers need a `sliding_window` size".into());
        }
        Ok(())
    }

    /// The kinds of layer the model has: whether any attends to the whole context, and
    /// the window of its sliding layers, if it has any.
    pub fn layer_kinds(&self) -> (bool, Option<usize>) {
        let layers = 0..self.num_hidden_layers;
        (
            layers.clone().any(|i| !self.layer_is_sliding(i)),
            layers.clone().find_map(|i| self.window_of_layer(i)),
        )
    }

    /// Whether layer `i` sees only the last `sliding_window` positions: every layer of a
    /// Mistral or Phi-3 with a `sliding_window`; Gemma's sliding layers (`layer_types`,
    /// else as transformers derives them: Gemma 2's every other layer from the first,
    /// Gemma 3's every layer but each `sliding_window_pattern`-th).
    pub fn layer_is_sliding(&self, i: usize) -> bool {
        if self.model_type == "mistral" || self.model_type == "phi3" {
            return self.sliding_window.is_some();
        }
        if !self.is_gemma() {
            return false;
        }
        let pattern = if self.is_gemma3() {
            self.sliding_window_pattern.unwrap_or(6)
        } else {
            2
        };
        match &self.layer_types {
            Some(types) => types.get(i).is_some_and(|t| t == "sliding_attention"),
            None => !(i + 1).is_multiple_of(pattern),
        }
    }

    /// Whether layer `i` applies rotary positions to its queries and keys: all layers but
    /// SmolLM3's NoPE layers (`no_rope_layers`, else every `no_rope_layer_interval`-th).
    pub fn layer_uses_rope(&self, i: usize) -> bool {
        if self.model_type != "smollm3" {
            return true;
        }
        match &self.no_rope_layers {
            Some(list) => list.get(i).is_none_or(|&r| r != 0),
            None => !(i + 1).is_multiple_of(self.no_rope_layer_interval.unwrap_or(4)),
        }
    }

    /// The window of a sliding layer `i`: it attends to the last `window` positions,
    /// its own included.
    pub fn window_of_layer(&self, i: usize) -> Option<usize> {
        self.layer_is_sliding(i)
            .then(|| self.sliding_window.unwrap_or(u64::MAX) as usize)
    }

    /// The factor attention scores are scaled by: `head_dim^-0.5`, Gemma's
    /// `query_pre_attn_scalar^-0.5`, Granite's `attention_multiplier`.
    pub fn attention_scale(&self) -> f64 {
        if let Some(m) = self.granite(self.attention_multiplier) {
            return m;
        }
        match self.query_pre_attn_scalar.filter(|_| self.is_gemma()) {
            Some(s) => s.powf(-0.5),
            None => (self.head_dim() as f64).powf(-0.5),
        }
    }

    /// Whether `attention_scale` differs from the default `head_dim^-0.5` a fused
    /// attention node assumes.
    pub fn scales_attention(&self) -> bool {
        self.is_gemma() || self.granite(self.attention_multiplier).is_some()
    }

    /// What embedding rows are multiplied by (Gemma: `sqrt(hidden_size)`, rounded to
    /// f32 as transformers computes it for f32 weights; Granite: `embedding_multiplier`).
    pub fn embed_scale(&self) -> Option<f32> {
        if let Some(m) = self.granite(self.embedding_multiplier) {
            return Some(m as f32);
        }
        self.is_gemma()
            .then(|| (self.hidden_size as f64).sqrt() as f32)
    }

    /// Granite's `residual_multiplier`.
    pub fn residual_scale(&self) -> Option<f64> {
        self.granite(self.residual_multiplier)
    }

    /// Granite's `logits_scaling`: the final logits are divided by it.
    pub fn logits_divisor(&self) -> Option<f64> {
        self.granite(self.logits_scaling)
    }

    /// A Granite multiplier, when this is a Granite model that sets it to other than 1.
    fn granite(&self, value: Option<f64>) -> Option<f64> {
        value.filter(|&v| self.model_type == "granite" && v != 1.0)
    }

    /// The rotary base of Gemma 3's sliding layers (10,000 when not given).
    pub fn local_rope_theta(&self) -> f64 {
        self.rope_local_base_freq.unwrap_or(10_000.0)
    }

    /// Whether RMSNorm multiplies by `1 + weight` (Gemma) instead of `weight`.
    pub fn norm_adds_one(&self) -> bool {
        self.is_gemma()
    }

    /// Number of parameters (the tied head counted once): the sizes of
    /// [`crate::model::weight_shapes`], biases and norms included.
    pub fn parameter_count(&self) -> usize {
        crate::model::weight_shapes(self)
            .iter()
            .map(|(_, shape)| shape.iter().product::<usize>())
            .sum()
    }
}

/// Rotary position scaling (transformers' `rope_scaling`), applied to the inverse
/// frequencies.
#[derive(Debug, Clone, PartialEq)]
pub enum RotaryScaling {
    /// Plain rotary positions.
    None,
    /// Positions divided by `factor` (every frequency divided by it).
    Linear {
        /// The divisor.
        factor: f64,
    },
    /// Llama 3.1's scaling: low frequencies divided by `factor`, high ones kept, a smooth
    /// blend between.
    Llama3 {
        /// Divisor of the low frequencies.
        factor: f64,
        /// Wavelengths above `original / low_freq_factor` are low frequencies.
        low_freq_factor: f64,
        /// Wavelengths below `original / high_freq_factor` are high frequencies.
        high_freq_factor: f64,
        /// The context the model was first trained for.
        original_max_position_embeddings: f64,
    },
    /// YaRN (Qwen's long-context scaling): interpolated low frequencies, extrapolated
    /// high ones, a linear ramp between, and cos/sin multiplied by `attention_factor`.
    Yarn {
        /// How much longer the context is than the original.
        factor: f64,
        /// The context the model was first trained for.
        original_max_position_embeddings: f64,
        /// What cos and sin are multiplied by.
        attention_factor: f64,
        /// Rotations that bound the ramp (32 and 1 by default).
        beta_fast: f64,
        /// See `beta_fast`.
        beta_slow: f64,
    },
    /// LongRoPE (Phi-3.5, Phi-4-mini): every frequency divided by its own factor, from
    /// `short_factor` while the sequence (the highest position plus one) is at most
    /// `original_max_position_embeddings`, from `long_factor` beyond; cos and sin
    /// multiplied by `attention_factor` either way.
    LongRope {
        /// Divisors of the frequencies for sequences within the pretraining context.
        short_factor: Vec<f64>,
        /// Divisors of the frequencies for longer sequences.
        long_factor: Vec<f64>,
        /// What cos and sin are multiplied by.
        attention_factor: f64,
        /// The pretraining context, where short gives way to long.
        original_max_position_embeddings: usize,
    },
}

impl RotaryScaling {
    /// What the rotary cos and sin tables are multiplied by (YaRN's attention factor; 1
    /// otherwise).
    pub fn attention_factor(&self) -> f64 {
        match self {
            RotaryScaling::Yarn {
                attention_factor, ..
            }
            | RotaryScaling::LongRope {
                attention_factor, ..
            } => *attention_factor,
            _ => 1.0,
        }
    }
}
