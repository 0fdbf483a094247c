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

/// The file name of the fused-attention graph that [`Graphs::Both`] writes beside
/// `model.onnx` (the runtime's `rill::graph::FUSED_GRAPH_FILE`).
pub const FUSED_GRAPH_FILE: &str = "model.gqa.onnx";

/// Which graphs an export writes into a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
#[value(rename_all = "lower")]
pub enum Graphs {
    /// `model.onnx` in the Hugging Face / optimum convention ([`Attention::Hf`]): runs on
    /// any ONNX runtime.
    #[default]
    Hf,
    /// `model.onnx` with ONNX Runtime's fused `GroupQueryAttention` and one shared
    /// past/present buffer ([`Attention::Gqa`]): faster decoding, ONNX Runtime only.
    Gqa,
    /// Both: the plain `model.onnx` for every runtime and the fused graph as
    /// `model.gqa.onnx`, which rill runs when present. The two graphs are small (the
    /// weights stay in `model.safetensors`, which both point into).
    Both,
}

impl Graphs {
    /// The attention variant of `model.onnx`.
    fn main(self) -> Attention {
        match self {
            Graphs::Hf | Graphs::Both => Attention::Hf,
            Graphs::Gqa => Attention::Gqa,
        }
    }

    /// Whether a fused graph is written (as `model.onnx` or beside it).
    fn fused(self) -> bool {
        self != Graphs::Hf
    }
}

/// Writes `model.onnx` (and `generation_config.json` if absent) into the model folder
/// `dir`, which holds `config.json` and `model.safetensors` (or shards with an index).
/// Returns the number of bytes of the graph file.
pub fn export_folder(dir: &Path) -> Result<usize> {
    export_folder_with(dir, Graphs::Hf)
}

/// As [`export_folder`], with the graphs chosen. With [`Graphs::Both`] the fused graph is
/// written as [`FUSED_GRAPH_FILE`]; otherwise a `model.gqa.onnx` left by an earlier export
/// is removed, since it may point at weights that are no longer there. Returns the bytes of
/// `model.onnx`.
pub fn export_folder_with(dir: &Path, graphs: Graphs) -> Result<usize> {
    let cfg = LlamaConfig::load(&dir.join("config.json"))?;
    if cfg.nested_language_model {
        return Err(crate::error::TrainerError::InvalidOption(format!(
            "`{}` is a multimodal Gemma 3 folder (`model_type` gemma3): export its language model into a new, text-only folder with `rill-train export --from {} --out DIR`",
            dir.display(),
            dir.display()
        )));
    }
    check_attention(&cfg, graphs)?;
    let weights = FolderWeights::open(dir, &cfg)?;
    if weights.is_bf16() {
        return Err(crate::error::TrainerError::InvalidOption(format!(
            "the weights in `{}` are bf16, which ONNX Runtime's CPU provider cannot multiply: convert them into a new folder with `rill-train export --from {} --out DIR --dtype f32` (exact; `--dtype f16` halves the size and rounds)",
            dir.display(),
            dir.display()
        )));
    }
    let write = |attention: Attention, name: &str| -> Result<usize> {
        let bytes = llama::build(&cfg, &weights, attention).encode_to_vec();
        let path = dir.join(name);
        std::fs::write(&path, &bytes).map_err(io_err(&path))?;
        Ok(bytes.len())
    };
    let bytes = write(graphs.main(), "model.onnx")?;
    let fused = dir.join(FUSED_GRAPH_FILE);
    if graphs == Graphs::Both {
        write(Attention::Gqa, FUSED_GRAPH_FILE)?;
    } else if fused.exists() {
        std::fs::remove_file(&fused).map_err(io_err(&fused))?;
    }
    crate::folder::write_generation_config(dir, &cfg)?;
    Ok(bytes)
}

/// Checks that `graphs` can be exported for `cfg` (before anything is written).
pub fn check_attention(cfg: &LlamaConfig, graphs: Graphs) -> Result<()> {
    if graphs.fused() && !cfg.head_dim().is_multiple_of(16) {
        return Err(crate::error::TrainerError::InvalidOption(format!(
            "a fused-attention graph (--attention gqa or both) needs a head_dim that is a multiple of 16 (ONNX Runtime's GroupQueryAttention kernel); this model's is {}: export with --attention hf",
            cfg.head_dim()
        )));
    }
    let rotary = cfg.rotary_dim();
    if graphs.fused() && rotary < cfg.head_dim() && !rotary.is_multiple_of(16) {
        return Err(crate::error::TrainerError::InvalidOption(format!(
            "a fused-attention graph (--attention gqa or both) rotates part of a head only in multiples of 16 dimensions (ONNX Runtime's GroupQueryAttention kernel); this model rotates {rotary} of {}: export with --attention hf",
            cfg.head_dim()
        )));
    }
    Ok(())
}
