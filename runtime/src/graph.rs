//! What the decoder graph declares, checked against `config.json`: the Hugging Face /
//! optimum decoder-with-past inputs and outputs, layer count, KV heads, head width,
//! vocabulary and dtypes. A mismatch names the tensor and both shapes.

use std::path::Path;

use ort::value::{TensorElementType, ValueType};

use crate::config::ModelConfig;
use crate::error::{Result, RillError};
use crate::kv_cache::{CacheDtype, Layout};

/// The folder's Hugging Face / optimum graph, which every ONNX runtime reads.
pub const PLAIN_GRAPH_FILE: &str = "model.onnx";

/// The optional second graph of a folder: the same weights (its external data points into
/// the same `model.safetensors`) with ONNX Runtime's fused `GroupQueryAttention` and one
/// shared past/present buffer (`rill-train export --attention both`). rill runs it when
/// present unless told otherwise ([`crate::GraphChoice`]).
pub const FUSED_GRAPH_FILE: &str = "model.gqa.onnx";

/// Model metadata key (value `"true"`) of graphs whose past and present cache tensors are
/// one shared buffer of the context's length, written in place (`rill-train export
/// --attention gqa`; onnxruntime-genai's `past_present_share_buffer`).
pub const SHARED_KV_KEY: &str = "past_present_share_buffer";

/// Model metadata key (value `"true"`) of graphs with the optional int64 scalar input
/// `logits_to_keep` (`rill-train export`): when positive, only the last that many
/// positions of each row get logits; 0 (its default) keeps every position.
pub const LOGITS_TO_KEEP_KEY: &str = "rill_logits_to_keep";

/// Model metadata key of fused-attention graphs (`rill-train export`): the rows of their
/// rotary tables, the most positions they can run. A folder whose config.json was given
/// more positions afterwards keeps graphs exported for fewer.
pub const ROTARY_POSITIONS_KEY: &str = "rill_rotary_positions";

/// The graph's interface as the session drives it (small and `Copy`: read every step).
#[derive(Debug, Clone, Copy)]
pub struct GraphInfo {
    /// Decoder layers (cache tensor pairs).
    pub layers: usize,
    /// KV heads of the cache tensors.
    pub kv_heads: usize,
    /// Head width of the cache tensors.
    pub head_dim: usize,
    /// Element type of the cache.
    pub cache_dtype: CacheDtype,
    /// Whether the logits are f16 (else f32).
    pub logits_f16: bool,
    /// Whether the graph takes `position_ids`.
    pub has_position_ids: bool,
    /// Vocabulary size (last logits dimension).
    pub vocab: usize,
    /// How the graph reads and writes the cache.
    pub cache_layout: Layout,
    /// Whether the graph takes `logits_to_keep` ([`LOGITS_TO_KEEP_KEY`]).
    pub logits_to_keep: bool,
    /// The most positions the graph runs, when it says ([`ROTARY_POSITIONS_KEY`]).
    pub max_positions: Option<usize>,
}

/// A graph input or output as "name: dtype [dims]".
pub fn describe_outlet(o: &ort::value::Outlet) -> String {
    format!("{}: {}", o.name(), describe(o.dtype()))
}

fn describe(v: &ValueType) -> String {
    match v {
        ValueType::Tensor { ty, shape, .. } => {
            let dims: Vec<String> = shape
                .iter()
                .map(|d| if *d < 0 { "?".into() } else { d.to_string() })
                .collect();
            format!("{ty:?} [{}]", dims.join(", "))
        }
        other => format!("{other:?}"),
    }
}

fn tensor(v: &ValueType) -> Option<(TensorElementType, Vec<i64>)> {
    match v {
        ValueType::Tensor { ty, shape, .. } => Some((*ty, shape.to_vec())),
        _ => None,
    }
}

/// Checks the inputs and outputs of `session` against `cfg`.
pub fn inspect(
    session: &ort::session::Session,
    cfg: &ModelConfig,
    graph: &Path,
) -> Result<GraphInfo> {
    let mismatch = |tensor: &str, expected: String, found: String| RillError::GraphMismatch {
        graph: graph.to_path_buf(),
        tensor: tensor.to_string(),
        expected,
        found,
    };
    let find_in = |list: &[ort::value::Outlet], name: &str| {
        list.iter()
            .find(|o| o.name() == name)
            .map(|o| o.dtype().clone())
    };
    let input = |name: &str| find_in(session.inputs(), name);
    let output = |name: &str| find_in(session.outputs(), name);

    for name in ["input_ids", "attention_mask"] {
        match input(name).as_ref().and_then(tensor) {
            Some((TensorElementType::Int64, shape)) if shape.len() == 2 => {}
            Some(_) => {
                return Err(mismatch(
                    name,
                    "Int64 [batch, sequence]".into(),
                    describe(&input(name).unwrap()),
                ))
            }
            None => return Err(mismatch(name, "a graph input".into(), "missing".into())),
        }
    }
    let has_position_ids = input("position_ids").is_some();

    let (kv, d) = (cfg.kv_heads(), cfg.head_dim());
    let cache_shape = format!("[batch, {kv}, past, {d}] (from config.json)");
    let mut cache_dtype = None;
    for layer in 0..cfg.num_hidden_layers {
        for kind in ["key", "value"] {
            let name = format!("past_key_values.{layer}.{kind}");
            let ty = input(&name).ok_or_else(|| {
                mismatch(
                    &name,
                    format!(
                        "a graph input (config.json has {} layers)",
                        cfg.num_hidden_layers
                    ),
                    "missing".into(),
                )
            })?;
            let (elem, shape) =
                tensor(&ty).ok_or_else(|| mismatch(&name, cache_shape.clone(), describe(&ty)))?;
            let dtype = match elem {
                TensorElementType::Float32 => CacheDtype::F32,
                TensorElementType::Float16 => CacheDtype::F16,
                _ => return Err(mismatch(&name, "Float32 or Float16".into(), describe(&ty))),
            };
            if shape.len() != 4 || shape[1] != kv as i64 || shape[3] != d as i64 {
                return Err(mismatch(&name, cache_shape.clone(), describe(&ty)));
            }
            if *cache_dtype.get_or_insert(dtype) != dtype {
                return Err(mismatch(
                    &name,
                    format!("{:?} like the other cache tensors", cache_dtype.unwrap()),
                    describe(&ty),
                ));
            }
            let present = format!("present.{layer}.{kind}");
            if output(&present).is_none() {
                return Err(mismatch(
                    &present,
                    "a graph output".into(),
                    "missing".into(),
                ));
            }
        }
    }
    let extra = format!("past_key_values.{}.key", cfg.num_hidden_layers);
    if input(&extra).is_some() {
        let layers = (0..)
            .take_while(|i| input(&format!("past_key_values.{i}.key")).is_some())
            .count();
        return Err(mismatch(
            "past_key_values",
            format!(
                "{} layers (config.json num_hidden_layers)",
                cfg.num_hidden_layers
            ),
            format!("{layers} layers"),
        ));
    }
    let logits = output("logits")
        .ok_or_else(|| mismatch("logits", "a graph output".into(), "missing".into()))?;
    let (elem, shape) =
        tensor(&logits).ok_or_else(|| mismatch("logits", "a tensor".into(), describe(&logits)))?;
    let vocab_ok = shape.len() == 3 && (shape[2] < 0 || shape[2] == cfg.vocab_size as i64);
    if !vocab_ok
        || !matches!(
            elem,
            TensorElementType::Float32 | TensorElementType::Float16
        )
    {
        return Err(mismatch(
            "logits",
            format!("Float32 [batch, sequence, {}] (vocab_size)", cfg.vocab_size),
            describe(&logits),
        ));
    }
    let metadata = session.metadata()?;
    let flag = |key: &str| -> Result<bool> {
        Ok(matches!(
            metadata.custom(key).as_deref(),
            Some("true") | Some("1")
        ))
    };
    Ok(GraphInfo {
        layers: cfg.num_hidden_layers,
        kv_heads: kv,
        head_dim: d,
        cache_dtype: cache_dtype.unwrap_or(CacheDtype::F32),
        logits_f16: elem == TensorElementType::Float16,
        has_position_ids,
        vocab: cfg.vocab_size,
        cache_layout: match flag(SHARED_KV_KEY)? {
            true => Layout::Shared,
            false => Layout::DoubleBuffered,
        },
        logits_to_keep: flag(LOGITS_TO_KEEP_KEY)?,
        max_positions: metadata
            .custom(ROTARY_POSITIONS_KEY)
            .and_then(|v| v.trim().parse().ok()),
    })
}
