//! Model weights on disk: writing `model.safetensors` with Hugging Face names, and reading
//! a folder's weights (one file or shards with an index) with every tensor checked against
//! the config. Reading also reports where each tensor's bytes sit in its file, which the
//! ONNX exporter turns into external-data references.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use memmap2::Mmap;
use safetensors::tensor::{Dtype, SafeTensors, TensorView, View};

use crate::config::LlamaConfig;
use crate::error::{io_err, Result, TrainerError};
use crate::quantize::{stored_tensors, StoredKind};

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

/// Element type of a tensor as stored: a float weight, or the packed integers of a
/// quantized one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredDtype {
    /// A float weight of this dtype.
    Float(WeightDtype),
    /// bfloat16, as most Hugging Face checkpoints are published: read and converted to
    /// f32 (`rill-train export --out`), never run as is (ONNX Runtime's CPU provider
    /// has no bf16 matrix products).
    Bf16,
    /// Unsigned bytes (packed quantized values, zero points).
    U8,
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
    pub dtype: StoredDtype,
    /// Shape, row-major.
    pub shape: Vec<usize>,
}

/// The weights of a folder: where each lives, and (loaded on demand, one tensor at a
/// time) their values. The files are memory-mapped, not read: opening a folder of many
/// gigabytes costs its headers.
pub struct FolderWeights {
    /// HF tensor name -> location.
    pub locations: BTreeMap<String, TensorLocation>,
    /// File name -> its mapping.
    maps: BTreeMap<String, Mmap>,
    dir: PathBuf,
    quantization: Option<crate::quantize::QuantizationConfig>,
}

/// Writes `tensors` (HF name -> f32 tensor) to `path` as safetensors in `dtype`.
pub fn save(tensors: &[(String, Tensor)], dtype: WeightDtype, path: &Path) -> Result<()> {
    let mut raw = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let values = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        check_range(name, &values, dtype, path)?;
        raw.push(RawTensor::float(name, t.dims().to_vec(), &values, dtype));
    }
    save_raw(&raw, path)
}

/// One tensor's bytes, ready to be written.
pub struct RawTensor {
    /// Name.
    pub name: String,
    /// Element type.
    pub dtype: StoredDtype,
    /// Shape, row-major.
    pub shape: Vec<usize>,
    /// Little-endian bytes.
    pub data: Vec<u8>,
}

impl RawTensor {
    /// Float `values` stored in `dtype`.
    pub fn float(name: &str, shape: Vec<usize>, values: &[f32], dtype: WeightDtype) -> Self {
        let data = match dtype {
            WeightDtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            WeightDtype::F16 => values
                .iter()
                .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                .collect(),
        };
        RawTensor {
            name: name.into(),
            dtype: StoredDtype::Float(dtype),
            shape,
            data,
        }
    }

    /// Bytes stored as they are.
    pub fn bytes(name: &str, shape: Vec<usize>, data: Vec<u8>) -> Self {
        RawTensor {
            name: name.into(),
            dtype: StoredDtype::U8,
            shape,
            data,
        }
    }
}

/// Writes `tensors` to `path` as safetensors.
pub fn save_raw(tensors: &[RawTensor], path: &Path) -> Result<()> {
    let views = tensors
        .iter()
        .map(|t| {
            let dtype = match t.dtype {
                StoredDtype::Float(WeightDtype::F32) => Dtype::F32,
                StoredDtype::Float(WeightDtype::F16) => Dtype::F16,
                StoredDtype::Bf16 => Dtype::BF16,
                StoredDtype::U8 => Dtype::U8,
            };
            Ok((
                t.name.clone(),
                TensorView::new(dtype, t.shape.clone(), &t.data)?,
            ))
        })
        .collect::<std::result::Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| bad(path, format!("cannot serialize: {e}")))?;
    safetensors::serialize_to_file(views, Some(pt_metadata()), path)
        .map_err(|e| bad(path, e.to_string()))
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
        let mut maps = BTreeMap::new();
        for file in weight_files(dir)? {
            let path = dir.join(&file);
            let data = map_file(&path)?;
            SafeTensors::deserialize(&data)
                .map_err(|e| bad(&path, format!("corrupt or truncated safetensors file: {e}")))?;
            let (header_len, meta) = SafeTensors::read_metadata(&data)
                .map_err(|e| bad(&path, format!("corrupt safetensors header: {e}")))?;
            for (name, info) in meta.tensors() {
                // A multimodal Gemma 3's language model alone, under the names it has
                // as a text model; the vision tower is left out.
                let name = match cfg.nested_language_model {
                    false => name,
                    true => match crate::config::language_model_tensor(&name) {
                        Some(text_name) => text_name,
                        None => continue,
                    },
                };
                let dtype = match info.dtype {
                    Dtype::F32 => StoredDtype::Float(WeightDtype::F32),
                    Dtype::F16 => StoredDtype::Float(WeightDtype::F16),
                    Dtype::BF16 => StoredDtype::Bf16,
                    Dtype::U8 if cfg.quantization_config.is_some() => StoredDtype::U8,
                    other => {
                        return Err(bad(
                            &path,
                            format!(
                            "tensor `{name}` is {other:?}; only F32, F16 and BF16 weights are supported (and U8 in folders whose config.json has a quantization_config)"
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
            maps.insert(file, data);
        }
        let weights = FolderWeights {
            locations,
            maps,
            dir: dir.to_path_buf(),
            quantization: cfg.quantization_config.clone(),
        };
        weights.check(cfg)?;
        Ok(weights)
    }

    fn check(&self, cfg: &LlamaConfig) -> Result<()> {
        let mut float = None;
        for (name, shape, kind) in stored_tensors(cfg) {
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
            match (kind, loc.dtype) {
                (StoredKind::U8, StoredDtype::U8) => {}
                (StoredKind::Float, d @ (StoredDtype::Float(_) | StoredDtype::Bf16)) => {
                    if *float.get_or_insert(d) != d {
                        return Err(bad(&self.dir, format!("tensor `{name}` is {d:?} but others are {:?}; mixed dtypes are not supported", float.unwrap())));
                    }
                }
                (_, found) => {
                    return Err(bad(
                        &self.dir,
                        format!("tensor `{name}` is {found:?}, expected {kind:?}"),
                    ))
                }
            }
        }
        Ok(())
    }

    /// The element type shared by all float weights (f32 for bf16 ones, which are
    /// converted when loaded).
    pub fn dtype(&self) -> WeightDtype {
        self.locations
            .values()
            .find_map(|l| match l.dtype {
                StoredDtype::Float(d) => Some(d),
                StoredDtype::Bf16 => Some(WeightDtype::F32),
                StoredDtype::U8 => None,
            })
            .unwrap_or(WeightDtype::F32)
    }

    /// Whether the float weights are bf16 (a graph cannot read them in place).
    pub fn is_bf16(&self) -> bool {
        self.locations
            .values()
            .any(|l| l.dtype == StoredDtype::Bf16)
    }

    /// How the weights are quantized, if they are.
    pub fn quantization(&self) -> Option<&crate::quantize::QuantizationConfig> {
        self.quantization.as_ref()
    }

    /// Loads every tensor as f32 on the CPU.
    /// A quantized folder has no f32 weights to load: that is an error naming the folder.
    pub fn load_f32(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for (name, loc) in &self.locations {
            let values = self.tensor_f32(name)?;
            out.insert(
                name.clone(),
                Tensor::from_vec(values, loc.shape.as_slice(), &candle_core::Device::Cpu)?,
            );
        }
        Ok(out)
    }

    /// One float tensor's values as f32 (f16 and bf16 converted exactly), read from the
    /// mapped file. A quantized folder, or a name it does not hold, is an error.
    pub fn tensor_f32(&self, name: &str) -> Result<Vec<f32>> {
        if let Some(q) = &self.quantization {
            return Err(bad(
                &self.dir,
                format!(
                    "this folder is already quantized ({}); use the float folder it was quantized from",
                    q.describe()
                ),
            ));
        }
        let loc = self
            .locations
            .get(name)
            .ok_or_else(|| bad(&self.dir, format!("tensor `{name}` is missing")))?;
        let start = loc.offset as usize;
        let bytes = &self.maps[&loc.file][start..start + loc.length as usize];
        Ok(match loc.dtype {
            StoredDtype::Float(WeightDtype::F32) => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            StoredDtype::Float(WeightDtype::F16) => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            StoredDtype::Bf16 => bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            StoredDtype::U8 => {
                return Err(bad(
                    &self.dir,
                    format!("tensor `{name}` holds packed integers, not float weights"),
                ))
            }
        })
    }
}

/// Maps `path` read-only.
fn map_file(path: &Path) -> Result<Mmap> {
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => TrainerError::MissingFile(path.to_path_buf()),
        _ => TrainerError::Io {
            path: path.to_path_buf(),
            source: e,
        },
    };
    let file = std::fs::File::open(path).map_err(io)?;
    // SAFETY: the mapping is read-only and private to this process; like every reader of
    // memory-mapped weights we rely on the file not being truncated while it is open
    // (rill's own writers replace files by renaming a new one over them).
    unsafe { Mmap::map(&file) }.map_err(io)
}

/// Writes every float tensor of `weights` to `path` as safetensors in `dtype`, one
/// tensor in memory at a time (a checkpoint of many gigabytes converts in the memory of
/// its largest tensor). On an error (a value beyond f16's range, say) nothing is left at
/// `path`.
pub fn save_converted(weights: &FolderWeights, dtype: WeightDtype, path: &Path) -> Result<()> {
    let failure = std::cell::RefCell::new(None);
    let count = weights
        .locations
        .values()
        .map(|l| l.shape.iter().product::<usize>());
    let progress = tensor_progress("converting", count.sum());
    let views: Vec<_> = weights
        .locations
        .iter()
        .map(|(name, loc)| {
            let view = ConvertedTensor {
                weights,
                name,
                shape: &loc.shape,
                dtype,
                failure: &failure,
                progress: &progress,
            };
            (name.clone(), view)
        })
        .collect();
    let written = safetensors::serialize_to_file(views, Some(pt_metadata()), path)
        .map_err(|e| bad(path, e.to_string()));
    let result = failure.into_inner().map_or(written, Err);
    progress.finish_and_clear();
    if result.is_err() {
        let _ = std::fs::remove_file(path);
    }
    result
}

/// A progress bar on stderr over `weights` values, shown only where stderr is a
/// terminal (a conversion of billions of weights takes minutes).
pub fn tensor_progress(what: &str, weights: usize) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(weights as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {percent}% of {human_len} weights, ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// A tensor of a folder, read and converted when the writer asks for its bytes.
struct ConvertedTensor<'a> {
    weights: &'a FolderWeights,
    name: &'a str,
    shape: &'a [usize],
    dtype: WeightDtype,
    /// The first error met; the writer then gets zeros and the file is discarded.
    failure: &'a std::cell::RefCell<Option<TrainerError>>,
    /// Advanced by each tensor's values.
    progress: &'a indicatif::ProgressBar,
}

impl View for ConvertedTensor<'_> {
    fn dtype(&self) -> Dtype {
        match self.dtype {
            WeightDtype::F32 => Dtype::F32,
            WeightDtype::F16 => Dtype::F16,
        }
    }

    fn shape(&self) -> &[usize] {
        self.shape
    }

    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        if self.failure.borrow().is_some() {
            return vec![0; self.data_len()].into(); // the file is discarded anyway
        }
        self.progress
            .inc(self.shape.iter().product::<usize>() as u64);
        let converted = self.weights.tensor_f32(self.name).and_then(|values| {
            check_range(self.name, &values, self.dtype, &self.weights.dir)?;
            Ok(RawTensor::float(self.name, self.shape.to_vec(), &values, self.dtype).data)
        });
        match converted {
            Ok(bytes) => bytes.into(),
            Err(e) => {
                self.failure.borrow_mut().get_or_insert(e);
                vec![0; self.data_len()].into()
            }
        }
    }

    fn data_len(&self) -> usize {
        let width = match self.dtype {
            WeightDtype::F32 => 4,
            WeightDtype::F16 => 2,
        };
        self.shape.iter().product::<usize>() * width
    }
}

/// Refuses values f16 cannot hold when writing `dtype` f16.
fn check_range(name: &str, values: &[f32], dtype: WeightDtype, path: &Path) -> Result<()> {
    if dtype == WeightDtype::F16 {
        if let Some(v) = values.iter().find(|v| v.is_finite() && v.abs() > 65504.0) {
            return Err(bad(
                path,
                format!("tensor `{name}` holds {v}, beyond f16's range (65504): keep f32 (`--dtype f32`)"),
            ));
        }
    }
    Ok(())
}

/// The metadata Hugging Face writes (`format: pt`).
fn pt_metadata() -> HashMap<String, String> {
    HashMap::from([("format".to_string(), "pt".to_string())])
}
