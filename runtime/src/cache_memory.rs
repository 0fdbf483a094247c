//! Where a session's KV cache lives and how its bytes move.
//!
//! - [`CacheMemory::Host`]: ordinary host memory, for the CPU provider.
//! - [`CacheMemory::Cuda`]: memory of the CUDA device the model runs on, allocated through
//!   ONNX Runtime's allocator for the model's session, so that `past` and `present` are
//!   bound to device buffers rill owns and a decode step copies nothing between host and
//!   device but its token ids and logits. Rows move on the device with the CUDA runtime's
//!   `cudaMemcpy2D` (the library the CUDA provider itself loaded).
//!
//! Every move is one strided copy ([`Strided`]): `height` blocks of `width` bytes, each
//! `pitch` bytes after the last, on both sides. The cache's algorithms (rollback, beam
//! reorder, restoring saved state) are written once over it, never copy between
//! overlapping regions, and run unchanged on both kinds of memory.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr::NonNull;
use std::sync::Arc;

use ort::sys as ortsys;

use crate::error::{Result, RillError};
use crate::ort_value::{api, check};

/// One side of a strided copy: `offset` bytes into a buffer, blocks `pitch` bytes apart.
#[derive(Debug, Clone, Copy)]
pub struct Strided {
    /// Bytes from the buffer's start to the first block.
    pub offset: usize,
    /// Bytes from one block's start to the next.
    pub pitch: usize,
}

impl Strided {
    /// Blocks starting at `offset`, `pitch` bytes apart.
    pub fn new(offset: usize, pitch: usize) -> Self {
        Strided { offset, pitch }
    }

    /// Bytes from the buffer's start just past the last of `height` blocks of `width`.
    fn end(self, width: usize, height: usize) -> usize {
        if height == 0 {
            self.offset
        } else {
            self.offset + (height - 1) * self.pitch + width
        }
    }
}

/// A buffer of cache memory; freed on drop.
pub struct Buffer {
    ptr: NonNull<u8>,
    bytes: usize,
    owner: Owner,
}

enum Owner {
    /// Host words (u64 for alignment); only reached through `ptr`.
    Host(#[allow(dead_code)] Vec<u64>),
    Device(Arc<CudaMemory>),
}

// SAFETY: the buffer exclusively owns its memory; it moves with its session.
unsafe impl Send for Buffer {}

impl Buffer {
    /// First byte (for binding as a tensor).
    pub fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.bytes
    }

    /// Whether it holds no byte.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if let Owner::Device(cuda) = &self.owner {
            cuda.free(self.ptr.as_ptr());
        }
    }
}

/// Where a cache's buffers are allocated.
#[derive(Clone, Default)]
pub enum CacheMemory {
    /// Host memory.
    #[default]
    Host,
    /// Memory of the CUDA device the model's graph runs on.
    Cuda(Arc<CudaMemory>),
}

impl CacheMemory {
    /// Whether buffers live on a device (not host-addressable).
    pub fn on_device(&self) -> bool {
        matches!(self, CacheMemory::Cuda(_))
    }

    /// Where the buffers are, for ONNX Runtime tensors over them (`None`: the CPU).
    pub(crate) fn memory_info(&self) -> Option<*const ortsys::OrtMemoryInfo> {
        match self {
            CacheMemory::Host => None,
            CacheMemory::Cuda(c) => Some(c.info.as_ptr()),
        }
    }

    /// A zeroed buffer of `bytes` (at least one word).
    pub fn alloc(&self, bytes: usize) -> Result<Buffer> {
        let bytes = bytes.max(8);
        match self {
            CacheMemory::Host => {
                let mut words = zeroed_words(bytes.div_ceil(8)).ok_or(RillError::OutOfMemory {
                    what: "the KV cache in host memory".into(),
                    bytes,
                })?;
                let ptr = NonNull::new(words.as_mut_ptr() as *mut u8).expect("Vec is non-null");
                Ok(Buffer {
                    ptr,
                    bytes,
                    owner: Owner::Host(words),
                })
            }
            CacheMemory::Cuda(cuda) => {
                let ptr = cuda.alloc(bytes)?;
                let buffer = Buffer {
                    ptr,
                    bytes,
                    owner: Owner::Device(cuda.clone()),
                };
                cuda.zero(ptr.as_ptr(), bytes)?;
                Ok(buffer)
            }
        }
    }

    /// Copies `height` blocks of `width` bytes from `src` in `from` to `dst` in `to`
    /// (which may be the same buffer, if the regions do not overlap).
    pub fn copy(
        &self,
        to: &Buffer,
        dst: Strided,
        from: &Buffer,
        src: Strided,
        width: usize,
        height: usize,
    ) -> Result<()> {
        check_bounds(to.bytes, dst, width, height, "destination");
        check_bounds(from.bytes, src, width, height, "source");
        // SAFETY: both regions lie inside live buffers (checked above).
        unsafe {
            self.raw_copy(
                to.ptr().add(dst.offset),
                dst.pitch,
                from.ptr().add(src.offset),
                src.pitch,
                width,
                height,
            )
        }
    }

    /// Copies from host bytes into a buffer.
    pub fn upload(
        &self,
        to: &Buffer,
        dst: Strided,
        from: &[u8],
        src: Strided,
        width: usize,
        height: usize,
    ) -> Result<()> {
        check_bounds(to.bytes, dst, width, height, "destination");
        check_bounds(from.len(), src, width, height, "source");
        // SAFETY: both regions are in bounds; `from` is not written.
        unsafe {
            self.raw_copy(
                to.ptr().add(dst.offset),
                dst.pitch,
                from.as_ptr().add(src.offset) as *mut u8,
                src.pitch,
                width,
                height,
            )
        }
    }

    /// Copies from a buffer into host bytes.
    pub fn download(
        &self,
        to: &mut [u8],
        dst: Strided,
        from: &Buffer,
        src: Strided,
        width: usize,
        height: usize,
    ) -> Result<()> {
        check_bounds(to.len(), dst, width, height, "destination");
        check_bounds(from.bytes, src, width, height, "source");
        // SAFETY: both regions are in bounds; `to` is exclusively borrowed.
        unsafe {
            self.raw_copy(
                to.as_mut_ptr().add(dst.offset),
                dst.pitch,
                from.ptr().add(src.offset),
                src.pitch,
                width,
                height,
            )
        }
    }

    /// Waits until every copy issued so far is done (a no-op on the host).
    pub fn synchronize(&self) -> Result<()> {
        match self {
            CacheMemory::Host => Ok(()),
            CacheMemory::Cuda(c) => c.synchronize(),
        }
    }

    /// # Safety
    /// Both regions must be valid for `height` blocks of `width` bytes at their pitches.
    unsafe fn raw_copy(
        &self,
        dst: *mut u8,
        dst_pitch: usize,
        src: *const u8,
        src_pitch: usize,
        width: usize,
        height: usize,
    ) -> Result<()> {
        if width == 0 || height == 0 {
            return Ok(());
        }
        match self {
            CacheMemory::Host => {
                for i in 0..height {
                    // SAFETY: forwarded; `copy` tolerates overlap.
                    unsafe {
                        std::ptr::copy(src.add(i * src_pitch), dst.add(i * dst_pitch), width)
                    };
                }
                Ok(())
            }
            CacheMemory::Cuda(c) => c.copy_2d(dst, dst_pitch, src, src_pitch, width, height),
        }
    }
}

fn check_bounds(len: usize, at: Strided, width: usize, height: usize, side: &str) {
    assert!(
        height <= 1 || at.pitch >= width,
        "{side}: pitch {} below width {width}",
        at.pitch
    );
    assert!(
        at.end(width, height) <= len,
        "{side}: {height} blocks of {width} bytes at {} (pitch {}) overrun {len} bytes",
        at.offset,
        at.pitch
    );
}

type CudaMemcpy2d =
    unsafe extern "C" fn(*mut c_void, usize, *const c_void, usize, usize, usize, c_int) -> c_int;
type CudaMemset = unsafe extern "C" fn(*mut c_void, c_int, usize) -> c_int;
type CudaStreamSynchronize = unsafe extern "C" fn(*mut c_void) -> c_int;
type CudaErrorString = unsafe extern "C" fn(c_int) -> *const c_char;
type CudaSetDevice = unsafe extern "C" fn(c_int) -> c_int;
type CudaGetDevice = unsafe extern "C" fn(*mut c_int) -> c_int;

/// `cudaMemcpyDefault`: the direction follows from the pointers (unified addressing).
const CUDA_MEMCPY_DEFAULT: c_int = 4;

/// The CUDA runtime functions rill calls.
struct Cudart {
    memcpy_2d: CudaMemcpy2d,
    memset: CudaMemset,
    synchronize: CudaStreamSynchronize,
    error_string: CudaErrorString,
    set_device: CudaSetDevice,
    get_device: CudaGetDevice,
    device_synchronize: unsafe extern "C" fn() -> c_int,
    _library: libloading::Library,
}

/// The function `name` (NUL-terminated) of `library`.
///
/// # Safety
/// `T` must be the symbol's C type.
unsafe fn symbol<T: Copy>(
    library: &libloading::Library,
    name: &[u8],
) -> std::result::Result<T, String> {
    // SAFETY: forwarded to the caller.
    unsafe { library.get::<T>(name) }
        .map(|f| *f)
        .map_err(|e| e.to_string())
}

/// CUDA runtime sonames, newest first.
const CUDART_NAMES: [&str; 3] = ["libcudart.so.13", "libcudart.so.12", "libcudart.so"];

impl Cudart {
    /// The CUDA runtime already loaded by ONNX Runtime's CUDA provider, else the first
    /// that loads.
    fn load() -> std::result::Result<Cudart, String> {
        let library = Self::already_loaded()
            .or_else(|| {
                CUDART_NAMES
                    .iter()
                    // SAFETY: loading the CUDA runtime runs only its own initialisers.
                    .find_map(|name| unsafe { libloading::Library::new(name) }.ok())
            })
            .ok_or_else(|| {
                format!(
                    "the CUDA runtime library was not found (tried {}): put the onnxruntime-gpu wheel's nvidia/*/lib folders on LD_LIBRARY_PATH (`make cuda-env` installs them)",
                    CUDART_NAMES.join(", ")
                )
            })?;
        // SAFETY: symbol types follow the CUDA runtime API's C declarations.
        unsafe {
            let memcpy_2d = symbol::<CudaMemcpy2d>(&library, b"cudaMemcpy2D\0")?;
            let memset = symbol::<CudaMemset>(&library, b"cudaMemset\0")?;
            let synchronize =
                symbol::<CudaStreamSynchronize>(&library, b"cudaStreamSynchronize\0")?;
            let error_string = symbol::<CudaErrorString>(&library, b"cudaGetErrorString\0")?;
            let set_device = symbol::<CudaSetDevice>(&library, b"cudaSetDevice\0")?;
            let get_device = symbol::<CudaGetDevice>(&library, b"cudaGetDevice\0")?;
            let device_synchronize =
                symbol::<unsafe extern "C" fn() -> c_int>(&library, b"cudaDeviceSynchronize\0")?;
            Ok(Cudart {
                memcpy_2d,
                memset,
                synchronize,
                error_string,
                set_device,
                get_device,
                device_synchronize,
                _library: library,
            })
        }
    }

    #[cfg(target_os = "linux")]
    fn already_loaded() -> Option<libloading::Library> {
        use libloading::os::unix::{Library, RTLD_LAZY};
        const RTLD_NOLOAD: c_int = 4; // glibc and musl
        CUDART_NAMES.iter().find_map(|name| {
            // SAFETY: RTLD_NOLOAD only returns a library that is already loaded.
            unsafe { Library::open(Some(name), RTLD_LAZY | RTLD_NOLOAD) }
                .ok()
                .map(Into::into)
        })
    }

    #[cfg(not(target_os = "linux"))]
    fn already_loaded() -> Option<libloading::Library> {
        None
    }

    fn result(&self, what: &str, code: c_int) -> Result<()> {
        if code == 0 {
            return Ok(());
        }
        // SAFETY: cudaGetErrorString returns a static string for any code.
        let text = unsafe {
            let s = (self.error_string)(code);
            if s.is_null() {
                "unknown error".into()
            } else {
                CStr::from_ptr(s).to_string_lossy().into_owned()
            }
        };
        Err(RillError::Ort(format!(
            "CUDA {what} failed with error {code}: {text}"
        )))
    }
}

/// The device memory of one model on CUDA: ONNX Runtime's allocator for the model's
/// session on that device, and the CUDA runtime for copies.
pub struct CudaMemory {
    allocator: NonNull<ortsys::OrtAllocator>,
    info: NonNull<ortsys::OrtMemoryInfo>,
    cudart: Cudart,
    device: i32,
}

// SAFETY: ONNX Runtime's allocators and memory infos are thread-safe; the CUDA runtime
// functions are too.
unsafe impl Send for CudaMemory {}
// SAFETY: as above.
unsafe impl Sync for CudaMemory {}

impl CudaMemory {
    /// Device memory of GPU `device` through `session`'s allocator. The allocator lives
    /// as long as the session: the model drops this before its session.
    pub(crate) fn new(session: &ort::session::Session, device: i32) -> Result<CudaMemory> {
        use ort::AsPointer;
        let cudart = Cudart::load().map_err(|e| RillError::Provider {
            provider: format!("cuda:{device}"),
            message: format!("cannot keep the KV cache on the GPU: {e}"),
        })?;
        let mut info = std::ptr::null_mut();
        // ONNX Runtime's name for CUDA device memory (not a `c""` literal: cbindgen's
        // parser predates them).
        let name = crate::ort_value::cstring("Cuda");
        // SAFETY: plain constructor call with valid arguments.
        check(unsafe {
            (api().CreateMemoryInfo)(
                name.as_ptr(),
                ortsys::OrtAllocatorType::OrtDeviceAllocator,
                device,
                ortsys::OrtMemType::OrtMemTypeDefault,
                &mut info,
            )
        })?;
        let info =
            NonNull::new(info).ok_or_else(|| RillError::Ort("CreateMemoryInfo: NULL".into()))?;
        let mut allocator = std::ptr::null_mut();
        // SAFETY: a live session and memory info.
        let status =
            check(unsafe { (api().CreateAllocator)(session.ptr(), info.as_ptr(), &mut allocator) });
        let allocator = match status.and_then(|()| {
            NonNull::new(allocator).ok_or_else(|| RillError::Ort("CreateAllocator: NULL".into()))
        }) {
            Ok(a) => a,
            Err(e) => {
                // SAFETY: created above, released once.
                unsafe { (api().ReleaseMemoryInfo)(info.as_ptr()) };
                return Err(e);
            }
        };
        let memory = CudaMemory {
            allocator,
            info,
            cudart,
            device,
        };
        // Fails here (and the model keeps its caches in host memory) rather than in every
        // session when this runtime cannot drive the device.
        memory.on_device(|| Ok(()))?;
        Ok(memory)
    }

    /// Runs `f` with this GPU as the calling thread's current CUDA device (rill's CUDA
    /// calls act on the current device), restoring the caller's afterwards.
    fn on_device<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let mut previous = 0;
        // SAFETY: valid out-pointer; plain calls into the CUDA runtime.
        let code = unsafe { (self.cudart.get_device)(&mut previous) };
        self.cudart.result("cudaGetDevice", code)?;
        if previous != self.device {
            // SAFETY: as above.
            let code = unsafe { (self.cudart.set_device)(self.device) };
            self.cudart.result("cudaSetDevice", code)?;
        }
        let out = f();
        if previous != self.device {
            // SAFETY: restores the caller's device, which was valid.
            unsafe { (self.cudart.set_device)(previous) };
        }
        out
    }

    /// Waits for everything queued on the device, ONNX Runtime's streams included (after a
    /// failed run, before rill touches buffers its kernels may still write).
    pub(crate) fn synchronize_device(&self) -> Result<()> {
        self.on_device(|| {
            // SAFETY: no arguments.
            let code = unsafe { (self.cudart.device_synchronize)() };
            self.cudart.result("cudaDeviceSynchronize", code)
        })
    }

    /// The GPU's ordinal.
    pub fn device(&self) -> i32 {
        self.device
    }

    fn alloc(&self, bytes: usize) -> Result<NonNull<u8>> {
        let mut out = std::ptr::null_mut();
        // SAFETY: a live allocator.
        check(unsafe { (api().AllocatorAlloc)(self.allocator.as_ptr(), bytes, &mut out) })
            .map_err(|e| RillError::OutOfMemory {
                what: format!("the KV cache on GPU {} ({e})", self.device),
                bytes,
            })?;
        NonNull::new(out as *mut u8).ok_or_else(|| RillError::Ort("AllocatorAlloc: NULL".into()))
    }

    fn free(&self, ptr: *mut u8) {
        // SAFETY: `ptr` came from this allocator and is freed once (by its Buffer).
        let status = unsafe { (api().AllocatorFree)(self.allocator.as_ptr(), ptr.cast()) };
        let _ = check(status);
    }

    fn zero(&self, ptr: *mut u8, bytes: usize) -> Result<()> {
        self.on_device(|| {
            // SAFETY: a live device allocation of `bytes`.
            let code = unsafe { (self.cudart.memset)(ptr.cast(), 0, bytes) };
            self.cudart.result("cudaMemset", code)
        })?;
        self.synchronize()
    }

    fn copy_2d(
        &self,
        dst: *mut u8,
        dst_pitch: usize,
        src: *const u8,
        src_pitch: usize,
        width: usize,
        height: usize,
    ) -> Result<()> {
        // A single block's pitch is free; the CUDA runtime still wants it >= width.
        let (dst_pitch, src_pitch) = if height == 1 {
            (width, width)
        } else {
            (dst_pitch, src_pitch)
        };
        self.on_device(|| {
            // SAFETY: the caller checked both regions.
            let code = unsafe {
                (self.cudart.memcpy_2d)(
                    dst.cast(),
                    dst_pitch,
                    src.cast(),
                    src_pitch,
                    width,
                    height,
                    CUDA_MEMCPY_DEFAULT,
                )
            };
            self.cudart.result("cudaMemcpy2D", code)
        })
    }

    /// Waits for rill's copies: they run on the legacy default stream (stream 0), which
    /// the next `Run` must not overtake on ONNX Runtime's own stream. (ONNX Runtime's
    /// writes are complete before rill copies: a successful run synchronizes its streams
    /// before returning; after a failed one the session synchronizes the device.)
    fn synchronize(&self) -> Result<()> {
        self.on_device(|| {
            // SAFETY: the null stream is always valid.
            let code = unsafe { (self.cudart.synchronize)(std::ptr::null_mut()) };
            self.cudart.result("cudaStreamSynchronize", code)
        })
    }
}

impl Drop for CudaMemory {
    fn drop(&mut self) {
        // SAFETY: created in `new`, released once, before the session (see `new`).
        unsafe {
            (api().ReleaseAllocator)(self.allocator.as_ptr());
            (api().ReleaseMemoryInfo)(self.info.as_ptr());
        }
    }
}

/// `words` zeroed words, or None when the allocator refuses (a failed `vec!` would abort
/// the host process). Zeroed by the allocator, so pages are committed only when written.
fn zeroed_words(words: usize) -> Option<Vec<u64>> {
    let layout = std::alloc::Layout::array::<u64>(words).ok()?;
    if layout.size() == 0 {
        return Some(Vec::new());
    }
    // SAFETY: a layout of non-zero size.
    let ptr = unsafe { std::alloc::alloc_zeroed(layout) } as *mut u64;
    if ptr.is_null() {
        return None;
    }
    // SAFETY: allocated by the global allocator with the layout of `words` u64s, which is
    // the layout a Vec<u64> of that capacity frees with; zero bytes are valid u64s.
    Some(unsafe { Vec::from_raw_parts(ptr, words, words) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allocation_the_system_refuses_is_an_error() {
        for bytes in [usize::MAX / 2, usize::MAX - 7, 1 << 62] {
            match CacheMemory::Host.alloc(bytes) {
                Err(e @ RillError::OutOfMemory { .. }) => {
                    assert!(e.to_string().contains("context_len"), "{e}")
                }
                Err(other) => panic!("{other}"),
                Ok(_) => panic!("{bytes} bytes allocated"),
            }
        }
        let small = CacheMemory::Host.alloc(24).unwrap();
        assert_eq!(small.bytes, 24);
    }

    #[test]
    fn strided_copies_move_blocks_between_pitches() {
        let m = CacheMemory::Host;
        let a = m.alloc(64).unwrap();
        let b = m.alloc(64).unwrap();
        let data: Vec<u8> = (0..64).collect();
        m.upload(&a, Strided::new(0, 16), &data, Strided::new(0, 16), 16, 4)
            .unwrap();
        // Compact the first 4 bytes of each 16-byte block into b.
        m.copy(&b, Strided::new(0, 4), &a, Strided::new(0, 16), 4, 4)
            .unwrap();
        let mut out = vec![0u8; 16];
        m.download(&mut out, Strided::new(0, 4), &b, Strided::new(0, 4), 4, 4)
            .unwrap();
        assert_eq!(
            out,
            [0, 1, 2, 3, 16, 17, 18, 19, 32, 33, 34, 35, 48, 49, 50, 51]
        );
    }

    #[test]
    #[should_panic(expected = "overrun")]
    fn copies_past_a_buffer_are_refused() {
        let m = CacheMemory::Host;
        let a = m.alloc(16).unwrap();
        let b = m.alloc(16).unwrap();
        let _ = m.copy(&b, Strided::new(8, 8), &a, Strided::new(0, 8), 8, 2);
    }

    #[test]
    fn the_cuda_runtime_is_named_when_missing() {
        // On machines without the CUDA runtime this is the error a GPU model would give.
        if let Err(e) = Cudart::load() {
            assert!(e.contains("libcudart.so.12"), "{e}");
            assert!(e.contains("make cuda-env"), "{e}");
        }
    }
}
