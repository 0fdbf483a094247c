//! `rill_model`: opening a model folder, tokenizing and detokenizing.
//!
//! Sample usage:
//! ```c
//! const rill_model *model = NULL;
//! if (rill_model_open("models/rill-tiny", NULL, &model) != RILL_OK) {
//!     fprintf(stderr, "%s\n", rill_last_error());
//!     return 1;
//! }
//! /* ... sessions ... */
//! rill_model_free(model);
//! ```

use std::ffi::c_char;
use std::sync::Arc;

use super::{c_str, check_struct_size, ffi_call, ffi_void, optional, out_ptr, rill_status, slice};
use crate::error::RillError;
use crate::model::{Model, ModelOptions, WeightSource};

/// An opened model folder. Opaque; shared read-only by any number of sessions on any
/// threads.
pub struct rill_model {
    _private: [u8; 0],
}

/// Options for [`rill_model_open`]. Initialise with [`rill_model_options_default`], then
/// change fields; `struct_size` lets later versions append fields.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct rill_model_options {
    /// `sizeof(rill_model_options)` as the caller was compiled.
    pub struct_size: usize,
    /// ONNX Runtime intra-op threads; 0 lets ONNX Runtime choose.
    pub intra_threads: u32,
    /// 1: ONNX Runtime loads the weights itself (external data) instead of rill mapping
    /// `model.safetensors` and handing it over without a copy (0, the default).
    pub ort_loads_weights: u8,
    /// 0 stops ONNX Runtime from pre-packing weight matrices (no second copy in memory
    /// but a fused-attention export's q, k and v joined at load; slower matrix products);
    /// 1, the default, allows it.
    pub prepack: u8,
    /// Where the graph runs: 0 the CPU (default); 1 CUDA, failing with `RILL_ERR_PROVIDER`
    /// (the message says what is missing) when it cannot be used; 2 CUDA when usable, else
    /// the CPU (`rill_model_provider` tells which).
    pub provider: u32,
    /// The CUDA device ordinal (with `provider` 1 or 2).
    pub device_id: i32,
    /// Which of the folder's graphs runs: 0 (default) the fused-attention
    /// `model.gqa.onnx` when the folder has one, else `model.onnx`; 1 `model.onnx`;
    /// 2 `model.gqa.onnx`, failing with `RILL_ERR_NOT_FOUND` when the folder has none.
    /// [`rill_model_graph_file`] tells which one runs.
    pub graph: u32,
}

/// Size of the first released `rill_model_options` (struct_size, intra_threads,
/// ort_loads_weights, prepack), still accepted.
const MODEL_OPTIONS_V1: usize = std::mem::size_of::<usize>() + 8;

/// Size of the second (through `device_id`), still accepted.
const MODEL_OPTIONS_V2: usize = std::mem::offset_of!(rill_model_options, device_id) + 4;

/// Why CUDA was not used although options `provider` 2 preferred it, NUL-terminated
/// into `buf` (`capacity` bytes; the size needed in `*needed_out`,
/// `RILL_ERR_BUFFER_TOO_SMALL` when it does not fit); "" when there was no fallback.
#[no_mangle]
pub extern "C" fn rill_model_provider_note(
    model: *const rill_model,
    buf: *mut c_char,
    capacity: usize,
    needed_out: *mut usize,
) -> rill_status {
    model_text(model, buf, capacity, needed_out, |m| {
        Ok(m.provider_note().unwrap_or(""))
    })
}

/// Writes the text `text` takes from the model behind `model` into `buf` as
/// NUL-terminated UTF-8 (the C ABI's buffer pattern).
fn model_text(
    model: *const rill_model,
    buf: *mut c_char,
    capacity: usize,
    needed_out: *mut usize,
    text: impl FnOnce(&Model) -> Result<&str, RillError>,
) -> rill_status {
    ffi_call(|| {
        let model = model_arc(model)?;
        let text = text(&model)?;
        super::write_buffer(text.as_bytes(), true, buf as *mut u8, capacity, needed_out)
    })
}

/// Makes `path` (UTF-8) the first place rill loads the ONNX Runtime shared library from,
/// before `ORT_DYLIB_PATH`, the executable's folder and the source tree's `.venv`: for
/// applications that ship the library inside their own bundle (Android, desktop apps).
/// Call it before the first `rill_model_open`; afterwards the library is loaded and this
/// returns `RILL_ERR_INVALID_ARGUMENT` naming where it came from. Thread-safe.
#[no_mangle]
pub extern "C" fn rill_set_onnxruntime_path(path: *const c_char) -> rill_status {
    ffi_call(|| crate::ort_env::set_library_path(std::path::Path::new(c_str(path, "path")?)))
}

/// The default model options.
#[no_mangle]
pub extern "C" fn rill_model_options_default() -> rill_model_options {
    rill_model_options {
        struct_size: std::mem::size_of::<rill_model_options>(),
        intra_threads: 0,
        ort_loads_weights: 0,
        prepack: 1,
        provider: 0,
        device_id: 0,
        graph: 0,
    }
}

/// The path (UTF-8) of the graph file `model` runs, `model.onnx` or `model.gqa.onnx`,
/// NUL-terminated into `buf` (`capacity` bytes; the size needed in `*needed_out`,
/// `RILL_ERR_BUFFER_TOO_SMALL` when it does not fit).
#[no_mangle]
pub extern "C" fn rill_model_graph_file(
    model: *const rill_model,
    buf: *mut c_char,
    capacity: usize,
    needed_out: *mut usize,
) -> rill_status {
    model_text(model, buf, capacity, needed_out, |m| {
        m.graph_file()
            .to_str()
            .ok_or(RillError::InvalidUtf8("the graph file's path (not UTF-8)"))
    })
}

/// The execution provider `model` runs on: 0 the CPU, 1 CUDA (its device ordinal in
/// `*device_out`, which may be NULL). After a fallback (options `provider` 2) this is 0;
/// [`rill_model_provider_note`] says why.
#[no_mangle]
pub extern "C" fn rill_model_provider(
    model: *const rill_model,
    provider_out: *mut u32,
    device_out: *mut i32,
) -> rill_status {
    ffi_call(|| {
        let m = model_arc(model)?;
        let out = out_ptr(provider_out, "provider_out")?;
        let (p, d) = match m.provider() {
            crate::Provider::Cpu => (0, 0),
            crate::Provider::Cuda { device } | crate::Provider::CudaOrCpu { device } => (1, device),
        };
        // SAFETY: checked non-NULL above.
        unsafe { *out = p };
        super::write_optional(device_out, d);
        Ok(())
    })
}

/// A new reference to the model behind a live handle (taken under the registry's lock,
/// so a concurrent `rill_model_free` cannot pull it away meanwhile).
pub(crate) fn model_arc(model: *const rill_model) -> Result<Arc<Model>, RillError> {
    super::handles::with_live(model, super::handles::Kind::Model, "model", || {
        // SAFETY: a live handle from Arc::into_raw in rill_model_open; increment first so
        // the Arc made here owns its own count.
        unsafe {
            Arc::increment_strong_count(model as *const Model);
            Ok(Arc::from_raw(model as *const Model))
        }
    })
}

/// Opens the model folder at `path` (UTF-8): config, tokenizer, weights and graph, all
/// checked.
///
/// `options` may be NULL for the defaults. On success writes a new handle to
/// `*model_out`; the caller owns it and frees it with [`rill_model_free`] (sessions keep
/// the model alive until they are freed too). On failure `*model_out` is untouched and
/// [`rill_last_error`](super::error::rill_last_error) says what is wrong.
/// Thread-safe. Returns `RILL_ERR_NOT_FOUND`, `RILL_ERR_CONFIG`, `RILL_ERR_WEIGHTS`,
/// `RILL_ERR_GRAPH_MISMATCH`, `RILL_ERR_TOKENIZER`, `RILL_ERR_ORT_NOT_FOUND`, `RILL_ERR_ORT`,
/// `RILL_ERR_INVALID_ARGUMENT` (NULL `path` or `model_out`) or `RILL_ERR_INVALID_UTF8`.
#[no_mangle]
pub extern "C" fn rill_model_open(
    path: *const c_char,
    options: *const rill_model_options,
    model_out: *mut *const rill_model,
) -> rill_status {
    ffi_call(|| {
        let out = out_ptr(model_out, "model_out")?;
        let path = c_str(path, "path")?;
        let mut opts = ModelOptions::default();
        if let Some(o) = optional(options) {
            check_struct_size(o.struct_size, MODEL_OPTIONS_V1, "options")?;
            opts.intra_threads = o.intra_threads as usize;
            opts.prepack = o.prepack != 0;
            if o.ort_loads_weights != 0 {
                opts.weights = WeightSource::OrtExternalData;
            }
            if o.struct_size >= MODEL_OPTIONS_V2 {
                opts.provider = match o.provider {
                    0 => crate::Provider::Cpu,
                    1 => crate::Provider::Cuda {
                        device: o.device_id,
                    },
                    2 => crate::Provider::CudaOrCpu {
                        device: o.device_id,
                    },
                    other => {
                        return Err(RillError::InvalidArgument(format!(
                            "`options.provider` is {other}: 0 (CPU), 1 (CUDA) or 2 (CUDA, else CPU)"
                        )))
                    }
                };
            }
            if o.struct_size >= std::mem::size_of::<rill_model_options>() {
                opts.graph = match o.graph {
                    0 => crate::GraphChoice::Auto,
                    1 => crate::GraphChoice::Plain,
                    2 => crate::GraphChoice::Fused,
                    other => {
                        return Err(RillError::InvalidArgument(format!(
                            "`options.graph` is {other}: 0 (the fused graph when present), 1 (model.onnx) or 2 (model.gqa.onnx)"
                        )))
                    }
                };
            }
        }
        let model = Arc::into_raw(Arc::new(Model::open(path, &opts)?));
        super::handles::register(model, super::handles::Kind::Model);
        // SAFETY: checked non-NULL above; written only on success.
        unsafe { *out = model as *const rill_model };
        Ok(())
    })
}

/// Releases the caller's reference to `model`. NULL is a no-op; a handle already freed (or
/// never returned by `rill_model_open`) is ignored, `rill_last_error` saying so. Sessions
/// created from it stay valid until freed.
#[no_mangle]
pub extern "C" fn rill_model_free(model: *const rill_model) {
    ffi_void(|| {
        if !model.is_null()
            && super::handles::unregister(model, super::handles::Kind::Model, || false)
        {
            // SAFETY: a live handle from rill_model_open, removed from the registry just
            // now, so released once.
            drop(unsafe { Arc::from_raw(model as *const Model) });
        }
    })
}

/// Tokenizes `text` (UTF-8) with the model's tokenizer, special tokens included (BOS for
/// Llama models).
///
/// Writes up to `capacity` ids to `ids` and the number of ids to `*n_out`. If `capacity`
/// is too small, returns `RILL_ERR_BUFFER_TOO_SMALL` with the needed count in `*n_out`
/// (call with `ids = NULL, capacity = 0` to ask). Thread-safe.
#[no_mangle]
pub extern "C" fn rill_tokenize(
    model: *const rill_model,
    text: *const c_char,
    ids: *mut u32,
    capacity: usize,
    n_out: *mut usize,
) -> rill_status {
    ffi_call(|| {
        out_ptr(n_out, "n_out")?;
        let model = model_arc(model)?;
        let text = c_str(text, "text")?;
        let tokens = model.tokenize(text)?;
        super::write_ids(&tokens, ids, capacity, n_out)
    })
}

/// Turns `n` token ids into UTF-8 text, special tokens dropped.
///
/// Writes the text and a terminating NUL into `buf` (`capacity` bytes) and the needed size
/// including the NUL into `*needed_out`. If `capacity` is too small, returns
/// `RILL_ERR_BUFFER_TOO_SMALL` (call with `buf = NULL, capacity = 0` to ask). An id outside
/// the vocabulary is `RILL_ERR_TOKEN_OUT_OF_RANGE`. Thread-safe.
#[no_mangle]
pub extern "C" fn rill_detokenize(
    model: *const rill_model,
    ids: *const u32,
    n: usize,
    buf: *mut c_char,
    capacity: usize,
    needed_out: *mut usize,
) -> rill_status {
    ffi_call(|| {
        let model = model_arc(model)?;
        let ids = slice(ids, n, "ids")?;
        let text = model.detokenize(ids)?;
        super::write_buffer(text.as_bytes(), true, buf as *mut u8, capacity, needed_out)
    })
}
