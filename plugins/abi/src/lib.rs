//! The Rust mirror of `include/rill_plugin.h` (the sampler plugin ABI), shared by the
//! host (the `rill` runtime) and plugins written in Rust. Layouts are `#[repr(C)]` and
//! checked against the C header's at compile time (sizes and offsets on 64-bit targets).
//!
//! A Rust plugin must not let a panic unwind into the host: [`guard`] wraps a plugin
//! function body, turning a panic into `RILL_PLUGIN_ERROR` with a message.

#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_void};

/// `RILL_PLUGIN_ABI_VERSION`.
pub const RILL_PLUGIN_ABI_VERSION: u32 = 1;
/// `RILL_PLUGIN_ENTRY_SYMBOL`, NUL-terminated.
pub const RILL_PLUGIN_ENTRY_SYMBOL: &[u8] = b"rill_plugin_entry\0";
/// `RILL_PLUGIN_OK`.
pub const RILL_PLUGIN_OK: c_int = 0;
/// `RILL_PLUGIN_ERROR`.
pub const RILL_PLUGIN_ERROR: c_int = 1;

/// `rill_host`.
#[repr(C)]
pub struct rill_host {
    pub abi_version: u32,
    pub struct_size: u32,
    pub host_data: *mut c_void,
    pub log:
        Option<unsafe extern "C" fn(host_data: *mut c_void, level: c_int, message: *const c_char)>,
}

/// `rill_candidates`.
#[repr(C)]
pub struct rill_candidates {
    pub ids: *mut u32,
    pub logits: *mut f32,
    pub size: usize,
    pub selected: i64,
    pub sorted: u8,
}

/// `rill_sampler_context`.
#[repr(C)]
pub struct rill_sampler_context {
    pub abi_version: u32,
    pub struct_size: u32,
    pub tokens: *const u32,
    pub n_tokens: usize,
    pub n_prompt: usize,
    pub vocab_size: usize,
    pub random: Option<unsafe extern "C" fn(random_data: *mut c_void) -> f64>,
    pub random_data: *mut c_void,
    pub token_bytes: Option<TokenBytesFn>,
    pub vocabulary: *const c_void,
    pub eos_ids: *const u32,
    pub n_eos: usize,
}

/// `rill_sampler_context.token_bytes`.
pub type TokenBytesFn =
    unsafe extern "C" fn(vocabulary: *const c_void, id: u32, len_out: *mut usize) -> *const u8;

/// The `struct_size` of a `rill_sampler_context` from before `token_bytes` was appended.
pub const SAMPLER_CONTEXT_BEFORE_TOKEN_BYTES: usize = 56;

impl rill_candidates {
    /// The live candidates: ids and their logits.
    ///
    /// # Safety
    /// `self` must be the candidates the host passed to the current call.
    pub unsafe fn live(&mut self) -> (&[u32], &mut [f32]) {
        if self.size == 0 {
            return (&[], &mut []);
        }
        // SAFETY: per the ABI, both arrays hold `size` entries during the call.
        unsafe {
            (
                std::slice::from_raw_parts(self.ids, self.size),
                std::slice::from_raw_parts_mut(self.logits, self.size),
            )
        }
    }
}

impl rill_sampler_context {
    /// The sequence so far, prompt included.
    ///
    /// # Safety
    /// `self` must be the context the host passed to the current call.
    pub unsafe fn tokens(&self) -> &[u32] {
        if self.n_tokens == 0 || self.tokens.is_null() {
            return &[];
        }
        // SAFETY: per the ABI, n_tokens ids valid during the call.
        unsafe { std::slice::from_raw_parts(self.tokens, self.n_tokens) }
    }

    /// The bytes token `id` adds to the generated text, when the host gives token text
    /// (`None` from a host that does not, or for an id outside the vocabulary).
    ///
    /// # Safety
    /// `self` must be the context the host passed to the current call.
    pub unsafe fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        if (self.struct_size as usize) < std::mem::size_of::<rill_sampler_context>() {
            return None;
        }
        let f = self.token_bytes?;
        let mut len = 0usize;
        // SAFETY: per the ABI, a pointer to `len` bytes valid while the model is open.
        unsafe {
            let ptr = f(self.vocabulary, id, &mut len);
            if ptr.is_null() {
                None
            } else if len == 0 {
                Some(&[])
            } else {
                Some(std::slice::from_raw_parts(ptr, len))
            }
        }
    }

    /// The generation's end-of-sequence ids (empty from a host that does not give them).
    ///
    /// # Safety
    /// `self` must be the context the host passed to the current call.
    pub unsafe fn eos_ids(&self) -> &[u32] {
        if (self.struct_size as usize) < std::mem::size_of::<rill_sampler_context>()
            || self.eos_ids.is_null()
            || self.n_eos == 0
        {
            return &[];
        }
        // SAFETY: per the ABI, n_eos ids valid during the call.
        unsafe { std::slice::from_raw_parts(self.eos_ids, self.n_eos) }
    }
}

/// `create` of a sampler.
pub type CreateFn = unsafe extern "C" fn(
    *const c_char,
    *const rill_host,
    *mut *mut c_void,
    *mut c_char,
    usize,
) -> c_int;
/// `apply` of a sampler.
pub type ApplyFn = unsafe extern "C" fn(
    *mut c_void,
    *mut rill_candidates,
    *const rill_sampler_context,
    *mut c_char,
    usize,
) -> c_int;
/// `clone` of a sampler.
pub type CloneFn =
    unsafe extern "C" fn(*const c_void, *mut *mut c_void, *mut c_char, usize) -> c_int;

/// `rill_sampler_vtable`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rill_sampler_vtable {
    pub abi_version: u32,
    pub struct_size: u32,
    pub name: *const c_char,
    pub create: Option<CreateFn>,
    pub apply: Option<ApplyFn>,
    pub accept: Option<unsafe extern "C" fn(*mut c_void, u32)>,
    pub reset: Option<unsafe extern "C" fn(*mut c_void)>,
    pub clone: Option<CloneFn>,
    pub destroy: Option<unsafe extern "C" fn(*mut c_void)>,
}

// SAFETY: vtables are immutable static data (function pointers and a static name).
unsafe impl Sync for rill_sampler_vtable {}

/// `rill_search_step`.
#[repr(C)]
pub struct rill_search_step {
    pub abi_version: u32,
    pub struct_size: u32,
    pub n_rows: usize,
    pub vocab_size: usize,
    pub logits: *const f32,
    pub tokens: *const u32,
    pub length: usize,
    pub prompt_len: usize,
    pub max_length: usize,
    pub stops: Option<unsafe extern "C" fn(stop_data: *mut c_void, row: usize, token: u32) -> u8>,
    pub stop_data: *mut c_void,
}

/// The `struct_size` of a `rill_search_step` from before `stops` was appended.
pub const SEARCH_STEP_BEFORE_STOPS: usize = 64;

/// `rill_search_choice`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct rill_search_choice {
    pub parent: u32,
    pub token: u32,
}

/// `create` of a strategy.
pub type SearchCreateFn = unsafe extern "C" fn(
    *const c_char,
    *const rill_host,
    *mut *mut c_void,
    *mut usize,
    *mut c_char,
    usize,
) -> c_int;
/// `step` of a strategy.
pub type SearchStepFn = unsafe extern "C" fn(
    *mut c_void,
    *const rill_search_step,
    *mut rill_search_choice,
    *mut u8,
    *mut c_char,
    usize,
) -> c_int;
/// `result` of a strategy.
pub type SearchResultFn =
    unsafe extern "C" fn(*const c_void, usize, *mut *const u32, *mut usize, *mut f32) -> c_int;

/// `rill_search_vtable`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rill_search_vtable {
    pub abi_version: u32,
    pub struct_size: u32,
    pub name: *const c_char,
    pub create: Option<SearchCreateFn>,
    pub step: Option<SearchStepFn>,
    pub n_results: Option<unsafe extern "C" fn(*const c_void) -> usize>,
    pub result: Option<SearchResultFn>,
    pub destroy: Option<unsafe extern "C" fn(*mut c_void)>,
    pub flags: u32,
}

/// `RILL_SEARCH_APPLIES_STOPS`: a strategy that ends a hypothesis where
/// `rill_search_step.stops` says so.
pub const RILL_SEARCH_APPLIES_STOPS: u32 = 1;

/// The `struct_size` of a `rill_search_vtable` from before `flags` was appended.
pub const SEARCH_VTABLE_BEFORE_FLAGS: usize = 56;

// SAFETY: vtables are immutable static data.
unsafe impl Sync for rill_search_vtable {}

/// `rill_plugin_table`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rill_plugin_table {
    pub abi_version: u32,
    pub struct_size: u32,
    pub plugin_name: *const c_char,
    pub n_samplers: usize,
    pub samplers: *const *const rill_sampler_vtable,
    pub n_strategies: usize,
    pub strategies: *const *const rill_search_vtable,
}

/// The `struct_size` of a table from before strategies were appended.
pub const PLUGIN_TABLE_SAMPLERS_ONLY: usize = 32;

// SAFETY: tables are immutable static data.
unsafe impl Sync for rill_plugin_table {}

/// `rill_plugin_entry_fn`.
pub type EntryFn = unsafe extern "C" fn(
    u32,
    *const rill_host,
    *mut *const rill_plugin_table,
    *mut c_char,
    usize,
) -> c_int;

#[cfg(target_pointer_width = "64")]
const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<rill_host>() == 24);
    assert!(size_of::<rill_candidates>() == 40 && offset_of!(rill_candidates, selected) == 24);
    assert!(
        size_of::<rill_sampler_context>() == 88 && offset_of!(rill_sampler_context, random) == 40
    );
    assert!(offset_of!(rill_sampler_context, token_bytes) == SAMPLER_CONTEXT_BEFORE_TOKEN_BYTES);
    assert!(
        size_of::<rill_sampler_vtable>() == 64 && offset_of!(rill_sampler_vtable, destroy) == 56
    );
    assert!(
        size_of::<rill_plugin_table>() == 48 && offset_of!(rill_plugin_table, n_strategies) == 32
    );
    assert!(size_of::<rill_search_step>() == 80 && offset_of!(rill_search_step, max_length) == 56);
    assert!(offset_of!(rill_search_step, stops) == SEARCH_STEP_BEFORE_STOPS);
    assert!(size_of::<rill_search_choice>() == 8);
    assert!(size_of::<rill_search_vtable>() == 64 && offset_of!(rill_search_vtable, destroy) == 48);
    assert!(offset_of!(rill_search_vtable, flags) == SEARCH_VTABLE_BEFORE_FLAGS);
};

/// A `create` call's parameters as text: `{}` for NULL, an error for bytes that are not
/// UTF-8.
///
/// # Safety
/// `params` is NULL or a NUL-terminated string valid for the call.
pub unsafe fn params_text<'a>(params: *const c_char) -> Result<&'a str, String> {
    if params.is_null() {
        return Ok("{}");
    }
    // SAFETY: per the contract above.
    unsafe { std::ffi::CStr::from_ptr(params) }
        .to_str()
        .map_err(|_| "params are not UTF-8".to_string())
}

/// Writes `message` NUL-terminated into a caller's error buffer, truncated to fit
/// (at a character boundary).
///
/// # Safety
/// `buf` is NULL or points to `len` writable bytes.
pub unsafe fn write_error(buf: *mut c_char, len: usize, message: &str) {
    if buf.is_null() || len == 0 {
        return;
    }
    let mut n = message.len().min(len - 1);
    while !message.is_char_boundary(n) {
        n -= 1;
    }
    // SAFETY: n < len bytes plus the NUL fit the caller's buffer.
    unsafe {
        std::ptr::copy_nonoverlapping(message.as_ptr(), buf as *mut u8, n);
        *buf.add(n) = 0;
    }
}

/// Runs a plugin function body, turning an `Err` or a panic into `RILL_PLUGIN_ERROR` with
/// the message written to the error buffer.
///
/// # Safety
/// As [`write_error`].
pub unsafe fn guard(
    error: *mut c_char,
    error_len: usize,
    body: impl FnOnce() -> Result<(), String>,
) -> c_int {
    let message = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(Ok(())) => return RILL_PLUGIN_OK,
        Ok(Err(m)) => m,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            format!("panicked: {what}")
        }
    };
    // SAFETY: forwarded to the caller.
    unsafe { write_error(error, error_len, &message) };
    RILL_PLUGIN_ERROR
}

/// The body of a plugin's entry function: checks the host's ABI version and hands over
/// `table`.
///
/// # Safety
/// `out` is a valid out-pointer; `error` as in [`write_error`].
pub unsafe fn serve_table(
    host_abi: u32,
    table: &'static rill_plugin_table,
    out: *mut *const rill_plugin_table,
    error: *mut c_char,
    len: usize,
) -> c_int {
    // SAFETY: forwarded to the caller.
    unsafe {
        guard(error, len, || {
            if host_abi != RILL_PLUGIN_ABI_VERSION {
                return Err(format!(
                    "built for plugin ABI {RILL_PLUGIN_ABI_VERSION}, host has {host_abi}"
                ));
            }
            *out = table;
            Ok(())
        })
    }
}

/// Defines a plugin's entry function `$name` serving `$table` (for static registration by
/// the runtime) and, when the calling crate's `export-entry` feature is on, the same entry
/// under the ABI's symbol name `rill_plugin_entry` (for the loadable library).
#[macro_export]
macro_rules! plugin_entry {
    ($(#[$doc:meta])* $name:ident, $table:expr) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// As `rill_plugin_entry_fn` in `rill_plugin.h`.
        pub unsafe extern "C" fn $name(
            host_abi: u32,
            _host: *const $crate::rill_host,
            out: *mut *const $crate::rill_plugin_table,
            error: *mut ::std::ffi::c_char,
            len: usize,
        ) -> ::std::ffi::c_int {
            // SAFETY: forwarded from the host.
            unsafe { $crate::serve_table(host_abi, $table, out, error, len) }
        }

        /// The same entry under the ABI's symbol name (feature `export-entry`, for the
        /// loadable library; off when linked into the runtime, which registers it
        /// statically).
        ///
        /// # Safety
        /// As `rill_plugin_entry_fn` in `rill_plugin.h`.
        #[cfg(feature = "export-entry")]
        #[no_mangle]
        pub unsafe extern "C" fn rill_plugin_entry(
            host_abi: u32,
            host: *const $crate::rill_host,
            out: *mut *const $crate::rill_plugin_table,
            error: *mut ::std::ffi::c_char,
            len: usize,
        ) -> ::std::ffi::c_int {
            // SAFETY: forwarded.
            unsafe { $name(host_abi, host, out, error, len) }
        }
    };
}
