//! The C ABI: a thin, mechanical layer over the safe Rust below it (after rustls-ffi).
//!
//! This module holds the boundary kit only: [`ffi_call`] wraps every exported body in
//! `catch_unwind` so no panic crosses into C, and the argument helpers turn NULL or
//! invalid UTF-8 into `RILL_ERR_INVALID_ARGUMENT` / `RILL_ERR_INVALID_UTF8` with a
//! message; [`handles`] refuses freed, foreign and doubly freed handles and a session used by
//! two threads at once. One file per exported object: [`model`], [`session`], [`plugin`],
//! [`error`].

#![allow(non_camel_case_types)]

pub mod conversation;
pub mod error;
pub(crate) mod handles;
pub mod model;
pub mod plugin;
pub mod session;

use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

pub use error::rill_status;
use error::set_last_error;

use crate::error::RillError;

/// Runs `body`, turning an error into its status (and the thread's last error message)
/// and a panic into `RILL_ERR_PANIC`.
pub(crate) fn ffi_call(body: impl FnOnce() -> Result<(), RillError>) -> rill_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => rill_status::RILL_OK,
        Ok(Err(e)) => {
            let status = error::status_of(&e);
            set_last_error(&e.to_string());
            status
        }
        Err(_) => {
            set_last_error(
                "internal error: a panic was caught at the C boundary (please report it)",
            );
            rill_status::RILL_ERR_PANIC
        }
    }
}

/// Runs `body` for its side effects only (used by `*_free`), swallowing panics.
pub(crate) fn ffi_void(body: impl FnOnce()) {
    let _ = catch_unwind(AssertUnwindSafe(body));
}

/// A required pointer argument.
pub(crate) fn non_null<'a, T>(ptr: *const T, what: &str) -> Result<&'a T, RillError> {
    // SAFETY: the caller promises, per the header, that a non-NULL pointer is valid.
    unsafe { ptr.as_ref() }.ok_or_else(|| RillError::InvalidArgument(format!("`{what}` is NULL")))
}

/// An optional pointer argument (NULL means "defaults").
pub(crate) fn optional<'a, T>(ptr: *const T) -> Option<&'a T> {
    // SAFETY: per the header, a non-NULL pointer is valid.
    unsafe { ptr.as_ref() }
}

/// `n` elements at `ptr`; NULL is allowed only when `n` is 0.
pub(crate) fn slice<'a, T>(ptr: *const T, n: usize, what: &str) -> Result<&'a [T], RillError> {
    if n == 0 {
        return Ok(&[]);
    }
    non_null(ptr, what)?;
    // SAFETY: non-NULL, and per the header the caller provides `n` readable elements.
    Ok(unsafe { std::slice::from_raw_parts(ptr, n) })
}

/// A required NUL-terminated UTF-8 string argument.
pub(crate) fn c_str<'a>(ptr: *const c_char, what: &'static str) -> Result<&'a str, RillError> {
    if ptr.is_null() {
        return Err(RillError::InvalidArgument(format!("`{what}` is NULL")));
    }
    // SAFETY: non-NULL and, per the header, NUL-terminated.
    unsafe { CStr::from_ptr(ptr) }
        .to_str()
        .map_err(|_| RillError::InvalidUtf8(what))
}

/// Writes `value` through an optional output pointer (NULL: not wanted).
pub(crate) fn write_optional<T>(ptr: *mut T, value: T) {
    if !ptr.is_null() {
        // SAFETY: per the header, a non-NULL output pointer is valid for a write.
        unsafe { *ptr = value };
    }
}

/// An output pointer argument, checked before any work.
pub(crate) fn out_ptr<T>(ptr: *mut T, what: &str) -> Result<*mut T, RillError> {
    if ptr.is_null() {
        Err(RillError::InvalidArgument(format!("`{what}` is NULL")))
    } else {
        Ok(ptr)
    }
}

/// Checks an options struct's `struct_size` (callers built against an older header pass
/// a smaller size; fields past it take their defaults).
pub(crate) fn check_struct_size(size: usize, minimum: usize, what: &str) -> Result<(), RillError> {
    if size < minimum {
        return Err(RillError::InvalidArgument(format!(
            "`{what}.struct_size` is {size}, smaller than any released layout ({minimum}); initialise it with its *_default() function"
        )));
    }
    Ok(())
}

/// Copies `bytes` (and a terminating NUL when `nul`) into the caller's `buf` of
/// `capacity` bytes, writing the size needed to `*needed_out` first: the two-call pattern
/// (ask with capacity 0, allocate, call again). `RILL_ERR_BUFFER_TOO_SMALL` when it does
/// not fit.
pub(crate) fn write_buffer(
    bytes: &[u8],
    nul: bool,
    buf: *mut u8,
    capacity: usize,
    needed_out: *mut usize,
) -> Result<(), RillError> {
    let needed_out = out_ptr(needed_out, "needed_out")?;
    let needed = bytes.len() + usize::from(nul);
    // SAFETY: checked non-NULL.
    unsafe { *needed_out = needed };
    if needed > capacity {
        return Err(RillError::BufferTooSmall(format!(
            "`buf` holds {capacity} bytes, {needed} needed"
        )));
    }
    let dst = out_ptr(buf, "buf")?;
    // SAFETY: the caller provides `capacity` >= needed writable bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len());
        if nul {
            *dst.add(bytes.len()) = 0;
        }
    }
    Ok(())
}

/// Copies token ids into the caller's `ids` (`capacity` elements), writing the count to
/// `*n_out` first; `RILL_ERR_BUFFER_TOO_SMALL` (count written) when they do not fit.
pub(crate) fn write_ids(
    tokens: &[u32],
    ids: *mut u32,
    capacity: usize,
    n_out: *mut usize,
) -> Result<(), RillError> {
    write_values(tokens, ids, capacity, n_out, "ids")
}

/// Writes `values` into the caller's array `out` of `capacity` elements (named `name` in
/// errors) and their count into `*n_out`, which is written even when they do not fit
/// (`RILL_ERR_BUFFER_TOO_SMALL`).
pub(crate) fn write_values<T: Copy>(
    values: &[T],
    out: *mut T,
    capacity: usize,
    n_out: *mut usize,
    name: &str,
) -> Result<(), RillError> {
    let n_out = out_ptr(n_out, "n_out")?;
    // SAFETY: checked non-NULL.
    unsafe { *n_out = values.len() };
    if values.len() > capacity {
        return Err(RillError::BufferTooSmall(format!(
            "`{name}` holds {capacity}, {} needed",
            values.len()
        )));
    }
    if !values.is_empty() {
        let dst = out_ptr(out, name)?;
        // SAFETY: the caller provides `capacity` >= len writable elements.
        unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), dst, values.len()) };
    }
    Ok(())
}
