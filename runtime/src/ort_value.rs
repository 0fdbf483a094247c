//! Thin, checked wrappers over the raw ONNX Runtime C API for what the hot path needs and
//! the `ort` crate does not expose without copies: tensors over memory rill owns (the
//! weights map, the KV cache, the logits buffer) and I/O binding runs through `&Session`.
//!
//! ONNX Runtime allows concurrent `Run` calls on one session; each rill session binds
//! through its own `OrtIoBinding`, which is used by one thread at a time.

use std::ffi::{c_void, CString};
use std::ptr::{self, NonNull};
use std::sync::OnceLock;

use ort::sys as ortsys;
use ort::AsPointer;

use crate::error::{Result, RillError};

pub(crate) fn api() -> &'static ortsys::OrtApi {
    ort::api()
}

/// Turns an `OrtStatus*` into a result, releasing the status.
pub(crate) fn check(status: ortsys::OrtStatusPtr) -> Result<()> {
    if status.0.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null status from the API; read its message, then release it once.
    let message = unsafe {
        let msg = (api().GetErrorMessage)(status.0);
        let text = if msg.is_null() {
            "unknown error".to_string()
        } else {
            std::ffi::CStr::from_ptr(msg).to_string_lossy().into_owned()
        };
        (api().ReleaseStatus)(status.0);
        text
    };
    Err(RillError::Ort(message))
}

struct MemInfo(NonNull<ortsys::OrtMemoryInfo>);
// SAFETY: an OrtMemoryInfo is immutable once created and only read afterwards.
unsafe impl Send for MemInfo {}
// SAFETY: as above.
unsafe impl Sync for MemInfo {}

fn cpu_memory_info() -> Result<*const ortsys::OrtMemoryInfo> {
    static INFO: OnceLock<std::result::Result<MemInfo, String>> = OnceLock::new();
    let info = INFO.get_or_init(|| {
        let mut out = ptr::null_mut();
        // SAFETY: plain constructor call with a valid out-pointer.
        let status = unsafe {
            (api().CreateCpuMemoryInfo)(
                ortsys::OrtAllocatorType::OrtDeviceAllocator,
                ortsys::OrtMemType::OrtMemTypeDefault,
                &mut out,
            )
        };
        check(status).map_err(|e| e.to_string())?;
        NonNull::new(out)
            .map(MemInfo)
            .ok_or_else(|| "CreateCpuMemoryInfo returned NULL".to_string())
    });
    info.as_ref()
        .map(|m| m.0.as_ptr() as *const _)
        .map_err(|e| RillError::Ort(e.clone()))
}

/// An `OrtValue` rill created over memory it owns; released on drop (the memory is not).
pub struct RawValue(NonNull<ortsys::OrtValue>);
// SAFETY: the value is only a descriptor of memory whose owner guarantees exclusivity.
unsafe impl Send for RawValue {}

impl RawValue {
    /// A CPU tensor of `shape` over `len` bytes at `data`.
    ///
    /// # Safety
    /// `data` must point to `len` bytes valid for reads (and writes, if ONNX Runtime is
    /// to write them) for as long as the value is used.
    pub unsafe fn over(
        data: *mut c_void,
        len: usize,
        shape: &[usize],
        element: ortsys::ONNXTensorElementDataType,
    ) -> Result<Self> {
        // SAFETY: forwarded to the caller.
        unsafe { Self::over_in(None, data, len, shape, element) }
    }

    /// A tensor over memory described by `info` (`None`: the CPU), such as a KV cache
    /// buffer on the GPU.
    ///
    /// # Safety
    /// As [`RawValue::over`], for memory of the kind `info` describes.
    pub unsafe fn over_in(
        info: Option<*const ortsys::OrtMemoryInfo>,
        data: *mut c_void,
        len: usize,
        shape: &[usize],
        element: ortsys::ONNXTensorElementDataType,
    ) -> Result<Self> {
        let info = match info {
            Some(info) => info,
            None => cpu_memory_info()?,
        };
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let mut out = ptr::null_mut();
        // SAFETY: the caller guarantees the memory; the other arguments are valid.
        check(unsafe {
            (api().CreateTensorWithDataAsOrtValue)(
                info,
                data,
                len,
                dims.as_ptr(),
                dims.len(),
                element,
                &mut out,
            )
        })?;
        NonNull::new(out)
            .map(RawValue)
            .ok_or_else(|| RillError::Ort("CreateTensorWithDataAsOrtValue returned NULL".into()))
    }

    fn ptr(&self) -> *const ortsys::OrtValue {
        self.0.as_ptr()
    }
}

impl Drop for RawValue {
    fn drop(&mut self) {
        // SAFETY: created by CreateTensorWithDataAsOrtValue and released exactly once.
        unsafe { (api().ReleaseValue)(self.0.as_ptr()) }
    }
}

/// An `ort` value over foreign CPU memory, for `SessionBuilder::with_initializer`.
///
/// # Safety
/// As [`RawValue::over`]; the memory must outlive the ONNX Runtime session.
pub unsafe fn cpu_value_over(
    data: *mut c_void,
    len: usize,
    shape: &[usize],
    element: ortsys::ONNXTensorElementDataType,
) -> Result<ort::value::DynValue> {
    // SAFETY: forwarded to the caller.
    let raw = unsafe { RawValue::over(data, len, shape, element)? };
    let ptr = raw.0;
    std::mem::forget(raw); // ownership moves to the ort value
                           // SAFETY: a valid tensor value; the default CPU allocator describes its memory.
    Ok(unsafe { ort::value::DynValue::from_ptr(ptr, Some(&ort::memory::Allocator::default())) })
}

/// An `OrtIoBinding` for one rill session. Each graph input or output is a numbered slot
/// that stays bound from run to run: binding a slot again with the same memory and shape
/// costs nothing, so a decode step rebinds only what moved (the attention mask, which
/// grows; the cache sides of a double-buffered graph, which swap).
pub struct Binding {
    ptr: NonNull<ortsys::OrtIoBinding>,
    slots: Vec<Option<(Tensor, RawValue)>>,
    /// Whether ONNX Runtime copies host inputs to another device when they are bound
    /// (a GPU provider): such inputs are bound again before every run, since the run
    /// reads the copy taken at binding time, not the host memory.
    copies_host_inputs: bool,
}
// SAFETY: a binding is used by one thread at a time (it lives inside a rill Session).
unsafe impl Send for Binding {}

/// A tensor over memory rill owns, as a binding slot describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tensor {
    /// The memory's kind (`None`: the CPU).
    pub info: Option<*const ortsys::OrtMemoryInfo>,
    /// First byte.
    pub data: *mut c_void,
    /// Bytes covered.
    pub len: usize,
    /// Dimensions (the first `rank`).
    pub shape: [usize; 4],
    /// Number of dimensions.
    pub rank: usize,
    /// Element type.
    pub element: ortsys::ONNXTensorElementDataType,
}

impl Tensor {
    /// `len` bytes at `data` in the memory `info` describes (`None`: the CPU), shaped
    /// `shape` (rank 4 at most).
    pub fn new(
        info: Option<*const ortsys::OrtMemoryInfo>,
        data: *mut c_void,
        len: usize,
        shape: &[usize],
        element: ortsys::ONNXTensorElementDataType,
    ) -> Tensor {
        assert!(shape.len() <= 4, "tensor rank {} above 4", shape.len());
        let mut dims = [0; 4];
        dims[..shape.len()].copy_from_slice(shape);
        Tensor {
            info,
            data,
            len,
            shape: dims,
            rank: shape.len(),
            element,
        }
    }
}

/// Which side of the graph a slot binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A graph input.
    Input,
    /// A graph output, written into the bound memory.
    Output,
}

impl Binding {
    /// A new binding on `session`; `copies_host_inputs` when the graph runs on a device
    /// other than the CPU (see [`Binding::bind`]).
    pub fn new(session: &ort::session::Session, copies_host_inputs: bool) -> Result<Self> {
        let mut out = ptr::null_mut();
        // SAFETY: a live session; valid out-pointer.
        check(unsafe { (api().CreateIoBinding)(session.ptr() as *mut _, &mut out) })?;
        NonNull::new(out)
            .map(|ptr| Binding {
                ptr,
                slots: Vec::new(),
                copies_host_inputs,
            })
            .ok_or_else(|| RillError::Ort("CreateIoBinding returned NULL".into()))
    }

    /// Binds slot `slot` (the graph input or output `name`) to `tensor`, unless it is
    /// bound there with that shape already (always, for a host input that ONNX Runtime
    /// copies to the device when it is bound: its contents may have changed).
    ///
    /// # Safety
    /// The tensor's memory must stay valid, and unaliased by Rust references during every
    /// run, until the slot is bound elsewhere, [`Binding::reset`] is called or the binding
    /// is dropped.
    pub unsafe fn bind(
        &mut self,
        slot: usize,
        direction: Direction,
        name: &CString,
        tensor: Tensor,
    ) -> Result<()> {
        if self.slots.len() <= slot {
            self.slots.resize_with(slot + 1, || None);
        }
        let copied =
            direction == Direction::Input && tensor.info.is_none() && self.copies_host_inputs;
        if !copied && matches!(&self.slots[slot], Some((bound, _)) if *bound == tensor) {
            return Ok(());
        }
        let shape = &tensor.shape[..tensor.rank];
        // SAFETY: forwarded to the caller.
        let value = unsafe {
            RawValue::over_in(tensor.info, tensor.data, tensor.len, shape, tensor.element)?
        };
        let bind = match direction {
            Direction::Input => api().BindInput,
            Direction::Output => api().BindOutput,
        };
        // SAFETY: live binding and value; ONNX Runtime keeps its own reference, and binding
        // a name again replaces its value.
        if let Err(e) = check(unsafe { bind(self.ptr.as_ptr(), name.as_ptr(), value.ptr()) }) {
            self.reset();
            return Err(e);
        }
        self.slots[slot] = Some((tensor, value));
        Ok(())
    }

    /// Runs `session` with the bound inputs, writing into the bound outputs.
    pub fn run(&self, session: &ort::session::Session) -> Result<()> {
        // SAFETY: ONNX Runtime allows concurrent Run calls on one session; this binding
        // is used by one thread at a time and its buffers are alive and correctly sized.
        check(unsafe {
            (api().RunWithBinding)(session.ptr() as *mut _, ptr::null(), self.ptr.as_ptr())
        })
    }

    /// Drops every bound input and output (the next run binds every slot again).
    pub fn reset(&mut self) {
        // SAFETY: live binding.
        unsafe {
            (api().ClearBoundInputs)(self.ptr.as_ptr());
            (api().ClearBoundOutputs)(self.ptr.as_ptr());
        }
        self.slots.clear();
    }
}

impl Drop for Binding {
    fn drop(&mut self) {
        // SAFETY: created by CreateIoBinding, released once.
        unsafe { (api().ReleaseIoBinding)(self.ptr.as_ptr()) }
    }
}

/// Element type of a cache or weight dtype.
pub fn element_type(f16: bool) -> ortsys::ONNXTensorElementDataType {
    if f16 {
        ortsys::ONNXTensorElementDataType::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16
    } else {
        ortsys::ONNXTensorElementDataType::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT
    }
}

/// Names as C strings, made once.
pub fn cstring(name: &str) -> CString {
    CString::new(name).expect("graph names have no NUL")
}
