//! A model folder on disk (DESIGN.md, "The model folder"): creating one safely, writing
//! its files, and opening one as a candle model.

use std::path::Path;

use candle_core::Tensor;

use crate::config::LlamaConfig;
use crate::error::{io_err, Result, TrainerError};
use crate::model::Llama;
use crate::quantize::{is_quantized_weight, stem, QuantizationConfig};
use crate::weights::{FolderWeights, RawTensor, WeightDtype};

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

/// Writes `model.safetensors` holding `weights` (another folder's) converted to `dtype`,
/// one tensor at a time, and `config.json`. Both are written beside their final names
/// and renamed into place once both are complete: on an error neither file of `dir` has
/// changed.
pub fn write_converted(
    dir: &Path,
    cfg: &LlamaConfig,
    weights: &FolderWeights,
    dtype: WeightDtype,
) -> Result<()> {
    let files = [
        (
            dir.join("model.safetensors.partial"),
            dir.join("model.safetensors"),
        ),
        (dir.join("config.json.partial"), dir.join("config.json")),
    ];
    let mut cfg = cfg.clone();
    cfg.torch_dtype = Some(dtype.torch_name().into());
    let written = crate::weights::save_converted(weights, dtype, &files[0].0)
        .and_then(|()| cfg.save(&files[1].0))
        .and_then(|()| {
            files.iter().try_for_each(|(partial, path)| {
                std::fs::rename(partial, path).map_err(io_err(path))
            })
        });
    if written.is_err() {
        for (partial, _) in &files {
            let _ = std::fs::remove_file(partial);
        }
    }
    written
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

/// Files copied unchanged from a source folder into a derived one.
pub const SIDE_FILES: [&str; 5] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "chat_template.json",
    "generation_config.json",
];

/// Copies the [`SIDE_FILES`] that `from` has into `to`.
pub fn copy_side_files(from: &Path, to: &Path) -> Result<()> {
    for f in SIDE_FILES {
        let (src, dst) = (from.join(f), to.join(f));
        if src.exists() {
            std::fs::copy(&src, &dst).map_err(io_err(&dst))?;
        }
    }
    Ok(())
}

/// Writes the folder `out` holding the float folder `from` quantized as `q` (see
/// [`crate::quantize`]): `model.safetensors` with the quantized matrices and the float
/// norms (and embedding, unless `q.quantize_embeddings`) in the source dtype,
/// `config.json` with `quantization_config`, the tokenizer and generation files. The
/// graph is written by the exporter afterwards. Returns the bytes of weights written.
/// `out` must not exist unless `force`.
pub fn write_quantized(
    from: &Path,
    out: &Path,
    q: &QuantizationConfig,
    force: bool,
) -> Result<usize> {
    q.validate().map_err(TrainerError::InvalidOption)?;
    let canonical = |p: &Path| std::fs::canonicalize(p).ok();
    if out.exists() && canonical(from) == canonical(out) {
        return Err(TrainerError::InvalidOption(
            "the quantized folder must be a new folder, not the source".into(),
        ));
    }
    let mut cfg = LlamaConfig::load(&from.join("config.json"))?;
    if let Some(existing) = &cfg.quantization_config {
        return Err(TrainerError::InvalidOption(format!(
            "`{}` is already quantized ({}); quantize the float folder it came from",
            from.display(),
            existing.describe()
        )));
    }
    let weights = FolderWeights::open(from, &cfg)?;
    let dtype = weights.dtype();
    let shapes = crate::model::weight_shapes(&cfg);
    let mut raw = Vec::with_capacity(shapes.len() * 3);
    let count = shapes
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    let progress = crate::weights::tensor_progress("quantizing", count);
    for (name, shape) in shapes {
        progress.inc(shape.iter().product::<usize>() as u64);
        let values = weights.tensor_f32(&name)?;
        if !is_quantized_weight(&name, &shape, q) {
            raw.push(RawTensor::float(&name, shape, &values, dtype));
            continue;
        }
        let m = crate::quantize::quantize(&values, shape[0], shape[1], q.scheme())
            .map_err(|e| TrainerError::InvalidOption(format!("tensor `{name}`: {e}")))?;
        let (stem, s) = (stem(&name), q.scheme());
        let blocks = s.blocks(m.cols);
        raw.push(RawTensor::bytes(
            &format!("{stem}.qweight"),
            vec![m.rows, blocks, s.block_bytes()],
            m.packed,
        ));
        raw.push(RawTensor::float(
            &format!("{stem}.scales"),
            vec![m.rows, blocks],
            &m.scales,
            dtype,
        ));
        if let Some(zp) = m.zero_points {
            raw.push(RawTensor::bytes(
                &format!("{stem}.qzeros"),
                vec![m.rows, s.zero_point_row_bytes(m.cols)],
                zp,
            ));
        }
    }
    progress.finish_and_clear();
    create_dir(out, force)?;
    let path = out.join("model.safetensors");
    crate::weights::save_raw(&raw, &path)?;
    cfg.quantization_config = Some(q.clone());
    cfg.save(&out.join("config.json"))?;
    copy_side_files(from, out)?;
    write_generation_config(out, &cfg)?;
    Ok(raw.iter().map(|t| t.data.len()).sum())
}
