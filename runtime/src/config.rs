//! The model folder's `config.json` (Hugging Face keys) as the runtime needs it, and the
//! generation settings (`generation_config.json` keys, with their transformers meaning).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{io_err, Result, RillError};

/// The parts of `config.json` the runtime uses. Any `model_type` is accepted: the graph
/// is checked against these numbers, which is what matters.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelConfig {
    /// `model_type`: which tensor names the weights file must hold (Phi-3 fuses its
    /// projections); otherwise informational.
    #[serde(default)]
    pub model_type: String,
    /// Vocabulary size (last dimension of the logits).
    pub vocab_size: usize,
    /// Residual width.
    pub hidden_size: usize,
    /// Decoder layers (pairs of cache tensors in the graph).
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads; equal to the query heads when absent.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Head width; `hidden_size / num_attention_heads` when absent.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// Longest context the model supports.
    #[serde(default)]
    pub max_position_embeddings: Option<usize>,
    /// Whether the LM head is the embedding.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Beginning-of-sequence id.
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// End-of-sequence id or ids.
    #[serde(default)]
    pub eos_token_id: Option<OneOrMany>,
    /// Padding id.
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    /// How the weights are quantized, when they are (`rill-train quantize`).
    #[serde(default)]
    pub quantization_config: Option<Quantization>,
}

/// The largest size a `config.json` may give (vocabulary, widths, layers, heads): 2^24,
/// so that products of two sizes cannot overflow.
pub const MAX_DIMENSION: usize = 1 << 24;

/// `quant_method` of the block-wise quantized folders `rill-train quantize` writes.
pub const MATMUL_NBITS: &str = "matmul_nbits";

/// `quantization_config` of `config.json`. For `quant_method` `matmul_nbits`, each
/// quantized matrix `X.weight` `[N, K]` is stored as `X.qweight` (u8
/// `[N, blocks, group_size · bits / 8]`), `X.scales` (`[N, blocks]`, the model's float
/// dtype) and, unless `sym`, `X.qzeros` (u8 `[N, ceil(blocks · bits / 8)]`), with
/// `blocks = ceil(K / group_size)`: the layout of ONNX Runtime's `MatMulNBits`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Quantization {
    /// The method; rill checks the tensors of `matmul_nbits` folders.
    #[serde(default)]
    pub quant_method: String,
    /// Bits per weight.
    #[serde(default)]
    pub bits: usize,
    /// Weights per scale.
    #[serde(default)]
    pub group_size: usize,
    /// No zero points stored.
    #[serde(default)]
    pub sym: bool,
    /// Whether the embedding and LM head are quantized too.
    #[serde(default)]
    pub quantize_embeddings: bool,
    /// `MatMulNBits` accuracy level.
    #[serde(default)]
    pub accuracy_level: i64,
}

impl Quantization {
    /// Whether these are `matmul_nbits` blocks (the layout rill checks).
    pub fn is_matmul_nbits(&self) -> bool {
        self.quant_method == MATMUL_NBITS
    }

    /// Stored shapes of the matrix `[rows, cols]`: packed values, scales, zero points.
    pub fn stored_shapes(&self, rows: usize, cols: usize) -> [Vec<usize>; 3] {
        let blocks = cols.div_ceil(self.group_size.max(1));
        [
            vec![rows, blocks, self.group_size * self.bits / 8],
            vec![rows, blocks],
            vec![rows, (blocks * self.bits).div_ceil(8)],
        ]
    }

    /// A short description, e.g. `4-bit, block 32, asymmetric (matmul_nbits)`.
    pub fn describe(&self) -> String {
        format!(
            "{}-bit, block {}, {}{} ({})",
            self.bits,
            self.group_size,
            if self.sym { "symmetric" } else { "asymmetric" },
            if self.quantize_embeddings {
                ", embeddings quantized"
            } else {
                ""
            },
            self.quant_method
        )
    }
}

/// A JSON value that is one item or a list of them (ids by default).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum OneOrMany<T = u32> {
    /// One item.
    One(T),
    /// Several items.
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    /// The items as a list.
    pub fn to_vec(&self) -> Vec<T> {
        match self {
            OneOrMany::One(i) => vec![i.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

impl ModelConfig {
    /// Reads and checks `config.json`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(io_err(path))?;
        Self::parse(&text, path)
    }

    /// Parses and checks the text of a `config.json` (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let bad = |message: String| RillError::Config {
            path: path.to_path_buf(),
            message,
        };
        let cfg: ModelConfig = serde_json::from_str(text)
            .map_err(|e| bad(format!("not valid JSON for a decoder config: {e}")))?;
        for (name, v) in [
            ("vocab_size", cfg.vocab_size),
            ("hidden_size", cfg.hidden_size),
            ("num_hidden_layers", cfg.num_hidden_layers),
            ("num_attention_heads", cfg.num_attention_heads),
            ("num_key_value_heads", cfg.kv_heads()),
            ("head_dim", cfg.head_dim()),
        ] {
            if v == 0 {
                return Err(bad(format!("`{name}` must be positive")));
            }
            // Sizes past any real model would overflow the shapes computed from them.
            if v > MAX_DIMENSION {
                return Err(bad(format!(
                    "`{name}` is {v}, larger than any model rill can hold (at most {MAX_DIMENSION})"
                )));
            }
        }
        if !cfg.num_attention_heads.is_multiple_of(cfg.kv_heads()) {
            return Err(bad(format!(
                "num_attention_heads ({}) is not a multiple of num_key_value_heads ({})",
                cfg.num_attention_heads,
                cfg.kv_heads()
            )));
        }
        if let Some(n) = cfg.max_position_embeddings.filter(|&n| n > MAX_DIMENSION) {
            return Err(bad(format!(
                "`max_position_embeddings` is {n}, larger than any context rill can hold (at most {MAX_DIMENSION})"
            )));
        }
        if let Some(q) = cfg
            .quantization_config
            .as_ref()
            .filter(|q| q.is_matmul_nbits())
        {
            if ![4, 8].contains(&q.bits)
                || !(16..=256).contains(&q.group_size)
                || !q.group_size.is_power_of_two()
            {
                return Err(bad(format!(
                    "quantization_config: {}-bit blocks of {} are not a MatMulNBits layout (4 or 8 bits, blocks a power of two from 16 to 256)",
                    q.bits, q.group_size
                )));
            }
        }
        Ok(cfg)
    }

    /// Key/value heads.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Head width.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }
}

/// New tokens at most when neither `max_new_tokens` nor `max_length` is given.
pub(crate) const DEFAULT_MAX_NEW_TOKENS: usize = 256;

/// Generation settings. Keys and meanings are Hugging Face `generation_config.json`'s
/// (unknown keys are ignored, but see [`GenerationConfig::from_json`]); absent values take
/// transformers' defaults where used.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct GenerationConfig {
    /// Maximum number of new tokens (default 256).
    #[serde(default)]
    pub max_new_tokens: Option<usize>,
    /// End-of-sequence id(s); generation stops at any of them.
    #[serde(default)]
    pub eos_token_id: Option<OneOrMany>,
    /// Strings that end generation when the text produces them, even across token
    /// boundaries; the stop string itself is not part of the output.
    #[serde(default)]
    pub stop_strings: Option<OneOrMany<String>>,
    /// Draw tokens (true) or take the most likely (false, the default).
    #[serde(default)]
    pub do_sample: Option<bool>,
    /// Divides the logits before sampling (default 1.0).
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Keep the k most likely tokens when sampling (default 50; 0 disables).
    #[serde(default)]
    pub top_k: Option<usize>,
    /// Nucleus sampling mass (default 1.0, disabled).
    #[serde(default)]
    pub top_p: Option<f32>,
    /// Drop tokens below this fraction of the top probability.
    #[serde(default)]
    pub min_p: Option<f32>,
    /// Locally typical sampling mass (default 1.0, disabled).
    #[serde(default)]
    pub typical_p: Option<f32>,
    /// Penalty on tokens already present (default 1.0, none).
    #[serde(default)]
    pub repetition_penalty: Option<f32>,
    /// Ban repeating n-grams of this size (default 0, none).
    #[serde(default)]
    pub no_repeat_ngram_size: Option<usize>,
    /// Seed of the session's random generator (default: from the clock).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Beam search when above 1 (`num_beams`).
    #[serde(default)]
    pub num_beams: Option<usize>,
    /// Exponent of the length normalisation of beam scores (default 1.0).
    #[serde(default)]
    pub length_penalty: Option<f32>,
    /// Beam search stopping: `true`, `false` (default) or `"never"`.
    #[serde(default)]
    pub early_stopping: Option<serde_json::Value>,
    /// Diverse beam search: split the beams into this many groups (default 1).
    #[serde(default)]
    pub num_beam_groups: Option<usize>,
    /// Diverse beam search: penalty per earlier group that chose a token (default 0).
    #[serde(default)]
    pub diversity_penalty: Option<f32>,
    /// Padding id fed to the beams of a finished group (default: config.json's, else 0).
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    /// How many beam hypotheses to return (default 1).
    #[serde(default)]
    pub num_return_sequences: Option<usize>,
    /// Biases for token sequences: `[[[ids], bias], ...]` (transformers' list form).
    #[serde(default)]
    pub sequence_bias: Option<Vec<(Vec<u32>, f32)>>,
    /// Token sequences that must not be generated.
    #[serde(default)]
    pub bad_words_ids: Option<Vec<Vec<u32>>>,
    /// Most tokens in all (prompt and new) when `max_new_tokens` is not given: the
    /// generation stops there, as in transformers.
    #[serde(default)]
    pub max_length: Option<usize>,
    /// End-of-sequence cannot be generated before this many new tokens.
    #[serde(default)]
    pub min_new_tokens: Option<usize>,
    /// End-of-sequence cannot be generated before the prompt and the new tokens number
    /// this many.
    #[serde(default)]
    pub min_length: Option<usize>,
    /// Token ids never generated.
    #[serde(default)]
    pub suppress_tokens: Option<Vec<u32>>,
    /// Token ids not generated as the first new token.
    #[serde(default)]
    pub begin_suppress_tokens: Option<Vec<u32>>,
    /// Epsilon sampling (with `do_sample`): tokens less likely than this go; in (0, 1),
    /// 0 disables.
    #[serde(default)]
    pub epsilon_cutoff: Option<f32>,
    /// Eta sampling (with `do_sample`): tokens less likely than `min(eta, sqrt(eta) ·
    /// exp(-entropy))` go; in (0, 1), 0 disables.
    #[serde(default)]
    pub eta_cutoff: Option<f32>,
    /// Prompt lookup decoding: up to this many tokens guessed from the context and
    /// checked in one forward pass; the same output, greedy or sampled with the same
    /// seed (transformers' key; 0 or absent: off).
    #[serde(default)]
    pub prompt_lookup_num_tokens: Option<usize>,
    /// Prompt lookup decoding: the longest n-gram looked up (default 2).
    #[serde(default)]
    pub max_matching_ngram_size: Option<usize>,
    /// rill's extension: report each generated token's log-probability under the model
    /// (`Generation::logprobs`, `rill_session_last_logprobs`); greedy and sampled
    /// generation.
    #[serde(default)]
    pub output_logprobs: Option<bool>,
    /// Assisted generation (with an assistant model set on the session): tokens it
    /// proposes at most per check (default 20).
    #[serde(default)]
    pub num_assistant_tokens: Option<usize>,
    /// Assisted generation: `"constant"` (default) or `"heuristic"` (two more proposed
    /// tokens after a check that accepted all, one fewer after one that did not).
    #[serde(default)]
    pub num_assistant_tokens_schedule: Option<String>,
    /// Assisted generation: a proposal ends after a token the assistant gives less than
    /// this probability (default 0.4).
    #[serde(default)]
    pub assistant_confidence_threshold: Option<f32>,
    /// rill's extension (OpenAI's meaning): penalty on generated tokens already present.
    #[serde(default)]
    pub presence_penalty: Option<f32>,
    /// rill's extension (OpenAI's meaning): penalty per occurrence in generated tokens.
    #[serde(default)]
    pub frequency_penalty: Option<f32>,
    /// rill's extension: a search strategy plugin by name, with its params (and plugin
    /// path), used instead of greedy / sampling / beam search.
    #[serde(default)]
    pub search_strategy: Option<SamplerSpec>,
    /// rill's extension: custom samplers run after the standard ones, before the final
    /// pick, e.g. `[{"name": "ban_tokens", "params": {"tokens": [17]}, "plugin": "x.so"}]`.
    #[serde(default)]
    pub samplers: Option<Vec<SamplerSpec>>,
}

/// A custom sampler entry of a generation config.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct SamplerSpec {
    /// The sampler's registered name.
    pub name: String,
    /// Its parameters (a JSON object; `{}` when absent).
    #[serde(default)]
    pub params: Option<serde_json::Value>,
    /// A plugin library to load first (once per process), if not yet registered.
    #[serde(default)]
    pub plugin: Option<String>,
    /// Run it right after the standard logits processors, before the sampling warpers
    /// (temperature, top-k, top-p, ...), where transformers runs its constraint
    /// processors: for a sampler that constrains the text, so the warpers keep only
    /// tokens it allows. By default custom samplers run after the warpers.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub before_warpers: bool,
}

/// transformers' generation settings that change what is generated and that rill does not
/// implement, each with the value that leaves generation unchanged (besides `null` and
/// `false`). Settings given through the API that set one are refused by name rather than
/// ignored; a folder's `generation_config.json` may hold them (they are ignored there).
const NOT_IMPLEMENTED: [(&str, Option<f64>); 14] = [
    ("forced_bos_token_id", None),
    ("forced_eos_token_id", None),
    ("exponential_decay_length_penalty", None),
    ("renormalize_logits", None),
    ("guidance_scale", Some(1.0)),
    ("constraints", None),
    ("force_words_ids", None),
    ("encoder_repetition_penalty", Some(1.0)),
    ("encoder_no_repeat_ngram_size", Some(0.0)),
    ("penalty_alpha", Some(0.0)),
    ("dola_layers", None),
    ("token_healing", None),
    ("watermarking_config", None),
    ("max_time", None),
];

impl GenerationConfig {
    /// Parses a JSON object of generation settings given by a caller: a setting of
    /// transformers' that rill does not implement (`forced_eos_token_id`, `guidance_scale`,
    /// ...), set to anything but its neutral value, is an error naming it.
    pub fn from_json(text: &str) -> Result<Self> {
        let config = Self::parse(text)?;
        let value: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
        let set: Vec<&str> = NOT_IMPLEMENTED
            .iter()
            .filter(|(key, neutral)| match value.get(key) {
                None | Some(serde_json::Value::Null) | Some(serde_json::Value::Bool(false)) => {
                    false
                }
                Some(v) => v.as_f64().is_none() || v.as_f64() != *neutral,
            })
            .map(|(key, _)| *key)
            .collect();
        if !set.is_empty() {
            return Err(RillError::GenerationConfig(format!(
                "rill does not implement {} (transformers' generation setting{}); remove {}",
                set.join(", "),
                if set.len() > 1 { "s" } else { "" },
                if set.len() > 1 { "them" } else { "it" },
            )));
        }
        Ok(config)
    }

    /// Parses a JSON object of generation settings, ignoring keys rill does not know.
    fn parse(text: &str) -> Result<Self> {
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let at = e.path().to_string();
            let inner = e.into_inner();
            if at.is_empty() || at == "." {
                RillError::GenerationConfig(format!("not a valid generation config: {inner}"))
            } else {
                RillError::GenerationConfig(format!("`{at}`: {inner}"))
            }
        })
    }

    /// Reads `generation_config.json` if the folder has one.
    pub fn load_optional(path: &Path) -> Result<Option<Self>> {
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(path).map_err(io_err(path))?;
        Self::parse(&text)
            .map(Some)
            .map_err(|e| RillError::GenerationConfig(format!("{}: {e}", path.display())))
    }

    /// New tokens at most after a prompt of `prompt_len`: `max_new_tokens`, else what
    /// `max_length` leaves, else 256. A prompt that already reaches `max_length` is an
    /// error, as in transformers.
    pub fn max_new_tokens_after(&self, prompt_len: usize) -> Result<usize> {
        match (self.max_new_tokens, self.max_length) {
            (Some(n), _) => Ok(n),
            (None, Some(total)) if total > prompt_len => Ok(total - prompt_len),
            (None, Some(total)) => Err(RillError::GenerationConfig(format!(
                "the prompt ({prompt_len} tokens) already reaches max_length ({total}): raise max_length or set max_new_tokens"
            ))),
            (None, None) => Ok(DEFAULT_MAX_NEW_TOKENS),
        }
    }

    /// Settings of `other` override those of `self` where given.
    pub fn merged(&self, other: &GenerationConfig) -> GenerationConfig {
        GenerationConfig {
            max_new_tokens: other.max_new_tokens.or(self.max_new_tokens),
            eos_token_id: other
                .eos_token_id
                .clone()
                .or_else(|| self.eos_token_id.clone()),
            stop_strings: other
                .stop_strings
                .clone()
                .or_else(|| self.stop_strings.clone()),
            do_sample: other.do_sample.or(self.do_sample),
            temperature: other.temperature.or(self.temperature),
            top_k: other.top_k.or(self.top_k),
            top_p: other.top_p.or(self.top_p),
            min_p: other.min_p.or(self.min_p),
            typical_p: other.typical_p.or(self.typical_p),
            repetition_penalty: other.repetition_penalty.or(self.repetition_penalty),
            no_repeat_ngram_size: other.no_repeat_ngram_size.or(self.no_repeat_ngram_size),
            seed: other.seed.or(self.seed),
            samplers: other.samplers.clone().or_else(|| self.samplers.clone()),
            num_beams: other.num_beams.or(self.num_beams),
            length_penalty: other.length_penalty.or(self.length_penalty),
            early_stopping: other
                .early_stopping
                .clone()
                .or_else(|| self.early_stopping.clone()),
            num_return_sequences: other.num_return_sequences.or(self.num_return_sequences),
            num_beam_groups: other.num_beam_groups.or(self.num_beam_groups),
            diversity_penalty: other.diversity_penalty.or(self.diversity_penalty),
            pad_token_id: other.pad_token_id.or(self.pad_token_id),
            sequence_bias: other
                .sequence_bias
                .clone()
                .or_else(|| self.sequence_bias.clone()),
            bad_words_ids: other
                .bad_words_ids
                .clone()
                .or_else(|| self.bad_words_ids.clone()),
            max_length: other.max_length.or(self.max_length),
            min_new_tokens: other.min_new_tokens.or(self.min_new_tokens),
            min_length: other.min_length.or(self.min_length),
            suppress_tokens: other
                .suppress_tokens
                .clone()
                .or_else(|| self.suppress_tokens.clone()),
            begin_suppress_tokens: other
                .begin_suppress_tokens
                .clone()
                .or_else(|| self.begin_suppress_tokens.clone()),
            epsilon_cutoff: other.epsilon_cutoff.or(self.epsilon_cutoff),
            prompt_lookup_num_tokens: other
                .prompt_lookup_num_tokens
                .or(self.prompt_lookup_num_tokens),
            max_matching_ngram_size: other
                .max_matching_ngram_size
                .or(self.max_matching_ngram_size),
            output_logprobs: other.output_logprobs.or(self.output_logprobs),
            num_assistant_tokens: other.num_assistant_tokens.or(self.num_assistant_tokens),
            num_assistant_tokens_schedule: other
                .num_assistant_tokens_schedule
                .clone()
                .or_else(|| self.num_assistant_tokens_schedule.clone()),
            assistant_confidence_threshold: other
                .assistant_confidence_threshold
                .or(self.assistant_confidence_threshold),
            eta_cutoff: other.eta_cutoff.or(self.eta_cutoff),
            presence_penalty: other.presence_penalty.or(self.presence_penalty),
            frequency_penalty: other.frequency_penalty.or(self.frequency_penalty),
            search_strategy: other
                .search_strategy
                .clone()
                .or_else(|| self.search_strategy.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ModelConfig;

    fn with_heads(heads: u64) -> String {
        format!(
            r#"{{"vocab_size": 16, "hidden_size": 8, "num_hidden_layers": 1,
            "num_attention_heads": {heads}, "num_key_value_heads": 1, "head_dim": {heads}}}"#
        )
    }

    #[test]
    fn settings_rill_does_not_implement_are_refused_by_name_when_given() {
        use super::GenerationConfig;
        let e = GenerationConfig::from_json(r#"{"forced_eos_token_id": 2, "guidance_scale": 3}"#)
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("forced_eos_token_id, guidance_scale"),
            "{e}"
        );
        // Neutral values, and keys that change nothing, pass.
        let ok = r#"{"forced_eos_token_id": null, "renormalize_logits": false,
            "guidance_scale": 1.0, "transformers_version": "4.53.3", "max_length": 40}"#;
        assert_eq!(
            GenerationConfig::from_json(ok).unwrap().max_length,
            Some(40)
        );
        // A folder's file is read leniently.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("generation_config.json");
        std::fs::write(&path, r#"{"forced_eos_token_id": 2, "top_k": 5}"#).unwrap();
        let folder = GenerationConfig::load_optional(&path).unwrap().unwrap();
        assert_eq!(folder.top_k, Some(5));
    }

    #[test]
    fn max_length_bounds_new_tokens_when_max_new_tokens_is_absent() {
        use super::GenerationConfig;
        let by_length = GenerationConfig {
            max_length: Some(20),
            ..Default::default()
        };
        assert_eq!(by_length.max_new_tokens_after(15).unwrap(), 5);
        let e = by_length.max_new_tokens_after(20).unwrap_err();
        assert!(e.to_string().contains("max_length (20)"), "{e}");
        let both = GenerationConfig {
            max_new_tokens: Some(8),
            ..by_length
        };
        assert_eq!(both.max_new_tokens_after(25).unwrap(), 8);
        assert_eq!(
            GenerationConfig::default()
                .max_new_tokens_after(15)
                .unwrap(),
            256
        );
    }

    #[test]
    fn sizes_past_any_model_are_refused_before_shapes_overflow() {
        let path = std::path::Path::new("config.json");
        let e = ModelConfig::parse(&with_heads(1 << 40), path).unwrap_err();
        assert!(e.to_string().contains("larger than any model"), "{e}");
        assert!(ModelConfig::parse(&with_heads(2), path).is_ok());
        let long = r#"{"vocab_size": 16, "hidden_size": 8, "num_hidden_layers": 1,
            "num_attention_heads": 2, "max_position_embeddings": 99999999999}"#;
        let e = ModelConfig::parse(long, path).unwrap_err();
        assert!(e.to_string().contains("max_position_embeddings"), "{e}");
    }
}
