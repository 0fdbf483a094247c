//! A model folder on disk (DESIGN.md, "The model folder"): creating one safely, writing
//! its files, and opening one as a candle model.

use std::path::Path;

use candle_core::Tensor;

use crate::config::LlamaConfig;
use crate::error::{io_err, Result, TrainerError};
use crate::model::Llama;
use crate::weights::{FolderWeights, WeightDtype};

/// Creates `dir`; refuses an existing one unless `force`.
pub fn create_dir(dir: &Path, force: bool) -> Result<()> {
    if dir.exists() {
        if !force {
            return Err(TrainerError::OutputExists(dir.to_path_buf()));
        }
    } else {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    Ok(())
}

/// Writes `config.json` and `model.safetensors` for `tensors` in `dtype`.
pub fn write_weights(
    dir: &Path,
    cfg: &LlamaConfig,
    tensors: &[(String, Tensor)],
    dtype: WeightDtype,
) -> Result<()> {
    let mut cfg = cfg.clone();
    cfg.torch_dtype = Some(dtype.torch_name().into());
    cfg.save(&dir.join("config.json"))?;
    crate::weights::save(tensors, dtype, &dir.join("model.safetensors"))
}

/// Writes `generation_config.json` with sampling defaults, unless one exists.
pub fn write_generation_config(dir: &Path, cfg: &LlamaConfig) -> Result<()> {
    let path = dir.join("generation_config.json");
    if path.exists() {
        return Ok(());
    }
    let value = serde_json::json!({
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.pad_token_id,
        "do_sample": true,
        "temperature": 0.8,
        "top_k": 40,
        "top_p": 0.95,
        "repetition_penalty": 1.1,
        "max_new_tokens": 64,
    });
    let text = serde_json::to_string_pretty(&value).expect("json");
    std::fs::write(&path, text + "\n").map_err(io_err(&path))
}

/// Opens a folder's config and weights as a candle model (weights converted to f32).
pub fn open_model(dir: &Path) -> Result<(LlamaConfig, FolderWeights, Llama)> {
    let cfg = LlamaConfig::load(&dir.join("config.json"))?;
    let weights = FolderWeights::open(dir, &cfg)?;
    let mut tensors = weights.load_f32()?;
    let model = Llama::new(&cfg, |name| {
        tensors
            .remove(name)
            .ok_or_else(|| candle_core::Error::Msg(format!("missing tensor {name}")).into())
    })?;
    Ok((cfg, weights, model))
}
