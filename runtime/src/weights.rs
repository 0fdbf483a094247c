//! `model.safetensors`, memory-mapped and checked, and handed to ONNX Runtime as
//! initializers that point into the map: rill copies no weight.
//!
//! Every tensor is checked before ONNX Runtime sees it: its bytes lie inside the file,
//! its dtype is one ONNX Runtime takes, and a tensor with a Llama name has the shape the
//! config implies (ONNX Runtime itself does not check the shape of a supplied initializer).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use ort::sys as ortsys;
use safetensors::tensor::{Dtype, SafeTensors};

use crate::config::ModelConfig;
use crate::error::{io_err, Result, RillError};

/// One tensor inside the map.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorEntry {
    /// Element type.
    pub dtype: Dtype,
    /// Shape, row-major.
    pub shape: Vec<usize>,
    /// Byte range inside the file.
    pub range: std::ops::Range<usize>,
}

/// The memory-mapped weights file.
pub struct MappedWeights {
    map: Mmap,
    path: PathBuf,
    /// Tensors by name.
    pub tensors: BTreeMap<String, TensorEntry>,
}

/// The checked quantization of `cfg`'s folder: `matmul_nbits` only.
fn nbits(cfg: &ModelConfig) -> Option<&crate::config::Quantization> {
    cfg.quantization_config
        .as_ref()
        .filter(|q| q.is_matmul_nbits())
}

/// Whether the float matrix `stem.weight` is stored quantized in `cfg`'s folder.
fn is_quantized(cfg: &ModelConfig, stem: &str) -> bool {
    let embedding = stem == "model.embed_tokens" || stem == "lm_head";
    let matrix = !stem.ends_with("norm");
    nbits(cfg).is_some_and(|q| matrix && (!embedding || q.quantize_embeddings))
}

/// The shapes a Llama-family checkpoint's tensors must have under `cfg`, quantized
/// tensors (`.qweight`, `.scales`, `.qzeros`) included.
pub fn llama_shape(cfg: &ModelConfig, name: &str) -> Option<Vec<usize>> {
    for (i, suffix) in [".qweight", ".scales", ".qzeros"].iter().enumerate() {
        if let Some(stem) = name.strip_suffix(suffix) {
            let q = nbits(cfg)?;
            let shape = float_shape(cfg, &format!("{stem}.weight"))?;
            return is_quantized(cfg, stem).then(|| q.stored_shapes(shape[0], shape[1])[i].clone());
        }
    }
    float_shape(cfg, name)
}

fn float_shape(cfg: &ModelConfig, name: &str) -> Option<Vec<usize>> {
    let (h, d, v) = (cfg.hidden_size, cfg.head_dim(), cfg.vocab_size);
    let (nh, kv) = (cfg.num_attention_heads, cfg.kv_heads());
    if name == "model.embed_tokens.weight" || name == "lm_head.weight" {
        return Some(vec![v, h]);
    }
    if name == "model.norm.weight" {
        return Some(vec![h]);
    }
    let rest = name.strip_prefix("model.layers.")?;
    let (layer, leaf) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    if layer >= cfg.num_hidden_layers {
        return None; // a layer the config lacks: the graph check reports the disagreement
    }
    Some(match leaf {
        "input_layernorm.weight" | "post_attention_layernorm.weight" => vec![h],
        "self_attn.q_proj.weight" => vec![nh * d, h],
        // Phi-3's fused q, k, v rows.
        "self_attn.qkv_proj.weight" => vec![(nh + 2 * kv) * d, h],
        "self_attn.k_proj.weight" | "self_attn.v_proj.weight" => vec![kv * d, h],
        "self_attn.o_proj.weight" => vec![h, nh * d],
        // Llama's attention_bias, Qwen2's q, k, v biases.
        "self_attn.q_proj.bias" => vec![nh * d],
        "self_attn.k_proj.bias" | "self_attn.v_proj.bias" => vec![kv * d],
        "self_attn.o_proj.bias" => vec![h],
        _ => return None,
    })
}

/// The tensors a Llama-family checkpoint under `cfg` must hold (Phi-3 stores q, k, v and
/// gate, up as two fused matrices; OLMo 2's layers have no input norm).
fn required_tensors(cfg: &ModelConfig) -> impl Iterator<Item = String> + '_ {
    const PHI3_LEAVES: &[&str] = &[
        "input_layernorm.weight",
        "post_attention_layernorm.weight",
        "self_attn.qkv_proj.weight",
        "self_attn.o_proj.weight",
        "mlp.gate_up_proj.weight",
        "mlp.down_proj.weight",
    ];
    const LEAVES: &[&str] = &[
        "input_layernorm.weight",
        "post_attention_layernorm.weight",
        "self_attn.q_proj.weight",
        "self_attn.k_proj.weight",
        "self_attn.v_proj.weight",
        "self_attn.o_proj.weight",
        "mlp.gate_proj.weight",
        "mlp.up_proj.weight",
        "mlp.down_proj.weight",
    ];
    let leaves = if cfg.model_type == "phi3" {
        PHI3_LEAVES
    } else if cfg.model_type == "olmo2" {
        &LEAVES[1..] // no input_layernorm: OLMo 2 normalises the sublayers' outputs
    } else {
        LEAVES
    };
    let head = (!cfg.tie_word_embeddings).then(|| "lm_head.weight".to_string());
    ["model.embed_tokens.weight", "model.norm.weight"]
        .into_iter()
        .map(str::to_string)
        .chain((0..cfg.num_hidden_layers).flat_map(|i| {
            leaves
                .iter()
                .map(move |leaf| format!("model.layers.{i}.{leaf}"))
        }))
        .chain(head)
        .flat_map(move |name| {
            let stem = name.strip_suffix(".weight").unwrap_or(&name).to_string();
            if !is_quantized(cfg, &stem) {
                return vec![name];
            }
            let zeros = nbits(cfg).is_some_and(|q| !q.sym);
            let mut stored = vec![format!("{stem}.qweight"), format!("{stem}.scales")];
            stored.extend(zeros.then(|| format!("{stem}.qzeros")));
            stored
        })
}

impl MappedWeights {
    /// Drops the mapped pages from this process's resident memory (`MADV_DONTNEED`).
    /// The data stays in the file and the page cache: any page read again (the embedding
    /// rows a Gather touches, the norm weights) faults back in. Used once ONNX Runtime has
    /// pre-packed the matrices into its own copy and no longer reads most of the map.
    pub fn release_resident(&self) {
        // SAFETY: a read-only, file-backed mapping: discarding its pages loses nothing,
        // they are re-read from the file on the next access.
        let _ = unsafe {
            self.map
                .unchecked_advise(memmap2::UncheckedAdvice::DontNeed)
        };
    }

    /// Maps `path` and checks every tensor against `cfg`.
    pub fn open(path: &Path, cfg: &ModelConfig) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(io_err(path))?;
        // SAFETY: the map is read-only; rill documents that model files must not be
        // modified while a model is open (as every memory-mapping runtime does).
        let map = unsafe { Mmap::map(&file) }.map_err(io_err(path))?;
        let bad = |message: String| RillError::Weights {
            path: path.to_path_buf(),
            message,
        };
        let st = SafeTensors::deserialize(&map)
            .map_err(|e| bad(format!("corrupt or truncated safetensors file: {e}")))?;
        let (header_len, meta) = SafeTensors::read_metadata(&map)
            .map_err(|e| bad(format!("corrupt safetensors header: {e}")))?;
        let base = 8 + header_len;
        let mut tensors = BTreeMap::new();
        let sorted: BTreeMap<String, _> = meta.tensors().into_iter().collect();
        for (name, info) in sorted {
            let (start, end) = info.data_offsets;
            if base + end > map.len() || start > end {
                return Err(bad(format!("tensor `{name}` lies outside the file")));
            }
            let packed = name.ends_with(".qweight") || name.ends_with(".qzeros");
            let expected_u8 = packed && nbits(cfg).is_some();
            let ok = match info.dtype {
                Dtype::F32 | Dtype::F16 => !expected_u8,
                Dtype::U8 => expected_u8,
                _ => false,
            };
            if !ok && info.dtype == Dtype::BF16 {
                return Err(bad(format!(
                    "tensor `{name}` is BF16, which ONNX Runtime's CPU provider cannot multiply: convert the folder with `rill-train export --from DIR --out NEW --dtype f32` (exact; `--dtype f16` halves the size and rounds)"
                )));
            }
            if !ok {
                return Err(bad(format!(
                    "tensor `{name}` is {:?}; rill takes F32 and F16 weights, and U8 for the packed tensors of a quantized folder",
                    info.dtype
                )));
            }
            if let Some(expected) = llama_shape(cfg, &name) {
                if expected != info.shape {
                    return Err(bad(format!(
                        "tensor `{name}`: expected shape {expected:?} from config.json, found {:?}",
                        info.shape
                    )));
                }
            }
            let entry = TensorEntry {
                dtype: info.dtype,
                shape: info.shape.clone(),
                range: base + start..base + end,
            };
            tensors.insert(name.clone(), entry);
        }
        drop(st);
        let dtypes: std::collections::BTreeSet<String> = tensors
            .values()
            .filter(|t| t.dtype != Dtype::U8)
            .map(|t| format!("{:?}", t.dtype))
            .collect();
        if dtypes.len() > 1 {
            return Err(bad(format!(
                "mixed weight dtypes {dtypes:?}; export the folder in one dtype"
            )));
        }
        if let Some(name) = required_tensors(cfg).find(|n| !tensors.contains_key(n)) {
            return Err(bad(format!(
                "tensor `{name}` is missing (config.json describes a Llama model with {} layers{})",
                cfg.num_hidden_layers,
                if cfg.tie_word_embeddings {
                    ", tied LM head"
                } else {
                    ""
                }
            )));
        }
        Ok(MappedWeights {
            map,
            path: path.to_path_buf(),
            tensors,
        })
    }

    /// The file's size in bytes.
    pub fn file_size(&self) -> usize {
        self.map.len()
    }

    /// The path that was mapped.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// ONNX Runtime values over the mapped bytes of every tensor, by name. The values
    /// borrow the map: the caller keeps `self` alive for as long as any value lives.
    pub fn ort_values(&self) -> Result<Vec<(String, ort::value::DynValue)>> {
        let mut out = Vec::with_capacity(self.tensors.len());
        for (name, t) in &self.tensors {
            let element = match t.dtype {
                Dtype::F16 => {
                    ortsys::ONNXTensorElementDataType::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16
                }
                Dtype::U8 => ortsys::ONNXTensorElementDataType::ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8,
                _ => ortsys::ONNXTensorElementDataType::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT,
            };
            let ptr = self.map[t.range.clone()].as_ptr() as *mut std::ffi::c_void;
            // SAFETY: ptr/len describe bytes of the live, read-only map; ONNX Runtime only
            // reads initializers; `self` outlives the values (documented above).
            let value =
                unsafe { crate::ort_value::cpu_value_over(ptr, t.range.len(), &t.shape, element)? };
            out.push((name.clone(), value));
        }
        Ok(out)
    }
}
