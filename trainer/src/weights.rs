//! Model weights on disk: writing `model.safetensors` with Hugging Face names, and reading
//! a folder's weights (one file or shards with an index) with every tensor checked against
//! the config. Reading also reports where each tensor's bytes sit in its file, which the
//! ONNX exporter turns into external-data references.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::config::LlamaConfig;
use crate::error::{io_err, Result, TrainerError};
use crate::model::weight_shapes;

/// Element type of stored weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WeightDtype {
    /// 32-bit float.
    F32,
    /// 16-bit IEEE float.
    F16,
}

impl WeightDtype {
    /// The name Hugging Face's `torch_dtype` uses.
    pub fn torch_name(self) -> &'static str {
        match self {
            WeightDtype::F32 => "float32",
            WeightDtype::F16 => "float16",
        }
    }
}

/// Where one tensor's bytes are: a file of the folder and a byte range inside it.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorLocation {
    /// File name relative to the model folder.
    pub file: String,
    /// Offset of the first byte from the start of the file.
    pub offset: u64,
    /// Number of bytes.
    pub length: u64,
    /// Element type.
    pub dtype: WeightDtype,
    /// Shape, row-major.
    pub shape: Vec<usize>,
}

/// The weights of a folder: where each lives, and (loaded on demand) their values.
pub struct FolderWeights {
    /// HF tensor name -> location.
    pub locations: BTreeMap<String, TensorLocation>,
    dir: PathBuf,
}

/// Writes `tensors` (HF name -> f32 tensor) to `path` as safetensors in `dtype`.
pub fn save(tensors: &[(String, Tensor)], dtype: WeightDtype, path: &Path) -> Result<()> {
    let mut bytes: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let values = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let data: Vec<u8> = match dtype {
            WeightDtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            WeightDtype::F16 => values
                .iter()
                .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                .collect(),
        };
        bytes.push((name.clone(), t.dims().to_vec(), data));
    }
    let st_dtype = match dtype {
        WeightDtype::F32 => Dtype::F32,
        WeightDtype::F16 => Dtype::F16,
    };
    let views = bytes
        .iter()
        .map(|(name, shape, data)| {
            Ok((
                name.clone(),
                TensorView::new(st_dtype, shape.clone(), data)?,
            ))
        })
        .collect::<std::result::Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| bad(path, format!("cannot serialize: {e}")))?;
    let mut info = HashMap::new();
    info.insert("format".to_string(), "pt".to_string());
    safetensors::serialize_to_file(views, Some(info), path).map_err(|e| bad(path, e.to_string()))
}

fn bad(path: &Path, message: impl Into<String>) -> TrainerError {
    TrainerError::BadCheckpoint {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// The weight files of a folder: `model.safetensors`, or the shards named by
/// `model.safetensors.index.json`, with the tensor names each holds.
fn weight_files(dir: &Path) -> Result<Vec<String>> {
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec!["model.safetensors".into()]);
    }
    let index = dir.join("model.safetensors.index.json");
    if !index.exists() {
        return Err(TrainerError::MissingFile(single));
    }
    let text = std::fs::read_to_string(&index).map_err(io_err(&index))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(&index, format!("not JSON: {e}")))?;
    let map = value
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| bad(&index, "no `weight_map` object"))?;
    let mut files: Vec<String> = map
        .values()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    files.sort();
    files.dedup();
    Ok(files)
}

impl FolderWeights {
    /// Reads the headers of a folder's weight files and checks that every tensor `cfg`
    /// needs is present once, f32 or f16, with the right shape and inside its file.
    pub fn open(dir: &Path, cfg: &LlamaConfig) -> Result<Self> {
        let mut locations = BTreeMap::new();
        for file in weight_files(dir)? {
            let path = dir.join(&file);
            let data = std::fs::read(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => TrainerError::MissingFile(path.clone()),
                _ => TrainerError::Io {
                    path: path.clone(),
                    source: e,
                },
            })?;
            SafeTensors::deserialize(&data)
                .map_err(|e| bad(&path, format!("corrupt or truncated safetensors file: {e}")))?;
            let (header_len, meta) = SafeTensors::read_metadata(&data)
                .map_err(|e| bad(&path, format!("corrupt safetensors header: {e}")))?;
            for (name, info) in meta.tensors() {
                let dtype = match info.dtype {
                    Dtype::F32 => WeightDtype::F32,
                    Dtype::F16 => WeightDtype::F16,
                    other => {
                        return Err(bad(
                            &path,
                            format!(
                            "tensor `{name}` is {other:?}; only F32 and F16 weights are supported"
                        ),
                        ))
                    }
                };
                let loc = TensorLocation {
                    file: file.clone(),
                    offset: (8 + header_len + info.data_offsets.0) as u64,
                    length: (info.data_offsets.1 - info.data_offsets.0) as u64,
                    dtype,
                    shape: info.shape.clone(),
                };
                if locations.insert(name.clone(), loc).is_some() {
                    return Err(bad(&path, format!("tensor `{name}` appears in two files")));
                }
            }
        }
        let weights = FolderWeights {
            locations,
            dir: dir.to_path_buf(),
        };
        weights.check(cfg)?;
        Ok(weights)
    }

    fn check(&self, cfg: &LlamaConfig) -> Result<()> {
        let mut dtype = None;
        for (name, shape) in weight_shapes(cfg) {
            let loc = self.locations.get(&name).ok_or_else(|| {
                bad(
                    &self.dir,
                    format!("tensor `{name}` is missing (expected shape {shape:?})"),
                )
            })?;
            if loc.shape != shape {
                return Err(bad(
                    &self.dir.join(&loc.file),
                    format!(
                        "tensor `{name}`: expected shape {shape:?} from config.json, found {:?}",
                        loc.shape
                    ),
                ));
            }
            if *dtype.get_or_insert(loc.dtype) != loc.dtype {
                return Err(bad(&self.dir, format!("tensor `{name}` is {:?} but others are {:?}; mixed dtypes are not supported", loc.dtype, dtype.unwrap())));
            }
        }
        Ok(())
    }

    /// The element type shared by all weights.
    pub fn dtype(&self) -> WeightDtype {
        self.locations
            .values()
            .next()
            .map(|l| l.dtype)
            .unwrap_or(WeightDtype::F32)
    }

    /// Loads every tensor as f32 on the CPU.
    pub fn load_f32(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        let mut files: Vec<&str> = self.locations.values().map(|l| l.file.as_str()).collect();
        files.sort();
        files.dedup();
        for file in files {
            let path = self.dir.join(file);
            let tensors = candle_core::safetensors::load(&path, &Device::Cpu)
                .map_err(|e| bad(&path, format!("cannot load tensors: {e}")))?;
            for (name, t) in tensors {
                out.insert(name, t.to_dtype(DType::F32)?);
            }
        }
        Ok(out)
    }
}
