//! Export to ONNX: the decoder graph ([`llama`]) written as `model.onnx` beside the
//! folder's safetensors weights, every initializer external data pointing into them.

mod builder;
pub mod llama;
pub mod proto;

use std::path::Path;

use prost::Message;

use crate::config::LlamaConfig;
use crate::error::{io_err, Result};
use crate::weights::FolderWeights;

pub use llama::Attention;

/// Writes `model.onnx` (and `generation_config.json` if absent) into the model folder
/// `dir`, which holds `config.json` and `model.safetensors` (or shards with an index).
/// Returns the number of bytes of the graph file.
pub fn export_folder(dir: &Path) -> Result<usize> {
    export_folder_with(dir, Attention::Hf)
}

/// As [`export_folder`], with the attention variant chosen.
pub fn export_folder_with(dir: &Path, attention: Attention) -> Result<usize> {
    let cfg = LlamaConfig::load(&dir.join("config.json"))?;
    if cfg.nested_language_model {
        return Err(crate::error::TrainerError::InvalidOption(format!(
            "`{}` is a multimodal Gemma 3 folder (`model_type` gemma3): export its language model into a new, text-only folder with `rill-train export --from {} --out DIR`",
            dir.display(),
            dir.display()
        )));
    }
    check_attention(&cfg, attention)?;
    let weights = FolderWeights::open(dir, &cfg)?;
    if weights.is_bf16() {
        return Err(crate::error::TrainerError::InvalidOption(format!(
            "the weights in `{}` are bf16, which ONNX Runtime's CPU provider cannot multiply: convert them into a new folder with `rill-train export --from {} --out DIR --dtype f32` (exact; `--dtype f16` halves the size and rounds)",
            dir.display(),
            dir.display()
        )));
    }
    let model = llama::build(&cfg, &weights, attention);
    let bytes = model.encode_to_vec();
    let path = dir.join("model.onnx");
    std::fs::write(&path, &bytes).map_err(io_err(&path))?;
    crate::folder::write_generation_config(dir, &cfg)?;
    Ok(bytes.len())
}

/// Checks that `attention` can be exported for `cfg` (before anything is written).
pub fn check_attention(cfg: &LlamaConfig, attention: Attention) -> Result<()> {
    if attention == Attention::Gqa && !cfg.head_dim().is_multiple_of(16) {
        return Err(crate::error::TrainerError::InvalidOption(format!(
            "--attention gqa needs a head_dim that is a multiple of 16 (ONNX Runtime's GroupQueryAttention kernel); this model's is {}: export with --attention hf",
            cfg.head_dim()
        )));
    }
    let rotary = cfg.rotary_dim();
    if attention == Attention::Gqa && rotary < cfg.head_dim() && !rotary.is_multiple_of(16) {
        return Err(crate::error::TrainerError::InvalidOption(format!(
            "--attention gqa rotates part of a head only in multiples of 16 dimensions (ONNX Runtime's GroupQueryAttention kernel); this model rotates {rotary} of {}: export with --attention hf",
            cfg.head_dim()
        )));
    }
    Ok(())
}
