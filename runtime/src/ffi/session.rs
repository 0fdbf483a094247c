//! `rill_session`: one conversation over a model, with its generation settings.
//!
//! Sample usage:
//! ```c
//! static int on_piece(void *user, const char *piece, size_t len) {
//!     fwrite(piece, 1, len, stdout);
//!     return 0; /* non-zero stops generation */
//! }
//! rill_session *session = NULL;
//! rill_session_new(model, NULL, &session);
//! rill_session_set_generation_config(session, "{\"max_new_tokens\": 32}");
//! size_t n = 0;
//! rill_session_generate(session, "In the beginning", on_piece, NULL, &n);
//! rill_session_free(session);
//! ```

use std::ffi::{c_char, c_int, c_void, CString};

use super::model::{model_arc, rill_model};
use super::{
    c_str, check_struct_size, ffi_call, ffi_void, non_null_mut, optional, out_ptr, rill_status,
};
use crate::config::GenerationConfig;
use crate::session::{Session, SessionOptions};

/// One conversation: tokens, KV cache, settings. Opaque; use from one thread at a time.
pub struct rill_session {
    _private: [u8; 0],
}

/// Options for [`rill_session_new`]; initialise with [`rill_session_options_default`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct rill_session_options {
    /// `sizeof(rill_session_options)` as the caller was compiled.
    pub struct_size: usize,
    /// Context length in tokens (prompt + generated); 0 means the model's maximum.
    pub context_len: u32,
    /// Prompt tokens evaluated per forward pass.
    pub prefill_chunk: u32,
}

/// The default session options.
#[no_mangle]
pub extern "C" fn rill_session_options_default() -> rill_session_options {
    let d = SessionOptions::default();
    rill_session_options {
        struct_size: std::mem::size_of::<rill_session_options>(),
        context_len: d.context_len as u32,
        prefill_chunk: d.prefill_chunk as u32,
    }
}

/// Called with each piece of generated text: `piece` is `len` bytes of whole UTF-8
/// characters followed by a NUL, valid only during the call. Return 0 to continue,
/// non-zero to stop generation.
pub type rill_token_callback =
    Option<extern "C" fn(user_data: *mut c_void, piece: *const c_char, len: usize) -> c_int>;

fn session_mut<'a>(session: *mut rill_session) -> Result<&'a mut Session, crate::RillError> {
    non_null_mut(session as *mut Session, "session")
}

/// Creates a session over `model` with its own KV cache (allocated now, for the whole
/// context). `options` may be NULL for the defaults.
///
/// On success writes the handle to `*session_out`; the caller owns it and frees it with
/// [`rill_session_free`]. The session holds a reference to the model, so the model may be
/// freed first. Thread-safe with respect to the model; the new session must then be used
/// from one thread at a time. Returns `RILL_ERR_INVALID_ARGUMENT` for NULL `model` or
/// `session_out` or a context larger than the model's.
#[no_mangle]
pub extern "C" fn rill_session_new(
    model: *const rill_model,
    options: *const rill_session_options,
    session_out: *mut *mut rill_session,
) -> rill_status {
    ffi_call(|| {
        let out = out_ptr(session_out, "session_out")?;
        let model = model_arc(model)?;
        let mut opts = SessionOptions::default();
        if let Some(o) = optional(options) {
            check_struct_size(
                o.struct_size,
                std::mem::size_of::<rill_session_options>(),
                "options",
            )?;
            opts.context_len = o.context_len as usize;
            opts.prefill_chunk = o.prefill_chunk as usize;
        }
        let session = Box::new(Session::new(model, opts)?);
        // SAFETY: checked non-NULL; written only on success.
        unsafe { *out = Box::into_raw(session) as *mut rill_session };
        Ok(())
    })
}

/// Frees a session and its cache. NULL is a no-op; must not be called twice.
#[no_mangle]
pub extern "C" fn rill_session_free(session: *mut rill_session) {
    ffi_void(|| {
        if !session.is_null() {
            // SAFETY: a handle from rill_session_new, freed once.
            drop(unsafe { Box::from_raw(session as *mut Session) });
        }
    })
}

/// Sets generation settings from a JSON object with Hugging Face `generation_config.json`
/// keys (`max_new_tokens`, `eos_token_id`, `do_sample`, `temperature`, `top_k`, `top_p`,
/// `min_p`, `typical_p`, `repetition_penalty`, `no_repeat_ngram_size`, `seed`), with
/// transformers' meanings; they override the model folder's `generation_config.json`.
/// On error the previous settings stay. Returns `RILL_ERR_GENERATION_CONFIG` for malformed
/// JSON or invalid values.
#[no_mangle]
pub extern "C" fn rill_session_set_generation_config(
    session: *mut rill_session,
    json: *const c_char,
) -> rill_status {
    ffi_call(|| {
        let session = session_mut(session)?;
        let config = GenerationConfig::from_json(c_str(json, "json")?)?;
        session.set_generation_config(config)
    })
}

/// Generates a continuation of `prompt` (UTF-8), streaming text pieces to `callback`
/// (may be NULL) with `user_data`, and writes the number of generated tokens to
/// `*n_tokens_out`. The session starts from an empty cache.
///
/// Stops at an end-of-sequence token, `max_new_tokens` (default 256), a full context, or
/// when the callback returns non-zero. Returns `RILL_ERR_PROMPT_TOO_LONG` (before any
/// work) when the prompt does not fit the context, `RILL_ERR_INVALID_UTF8` for an invalid
/// prompt, `RILL_ERR_INVALID_ARGUMENT` for NULL arguments. The session stays usable after
/// any error. Not thread-safe for one session.
#[no_mangle]
pub extern "C" fn rill_session_generate(
    session: *mut rill_session,
    prompt: *const c_char,
    callback: rill_token_callback,
    user_data: *mut c_void,
    n_tokens_out: *mut usize,
) -> rill_status {
    ffi_call(|| {
        let n_out = out_ptr(n_tokens_out, "n_tokens_out")?;
        let session = session_mut(session)?;
        let prompt = c_str(prompt, "prompt")?;
        let result = session.generate(prompt, |piece| match callback {
            None => true,
            Some(cb) => {
                let text = CString::new(piece.replace('\0', "")).unwrap_or_default();
                cb(user_data, text.as_ptr(), text.as_bytes().len()) == 0
            }
        })?;
        // SAFETY: checked non-NULL.
        unsafe { *n_out = result.tokens.len() };
        Ok(())
    })
}

/// The library version, e.g. "0.1.0". Static; never freed.
#[no_mangle]
pub extern "C" fn rill_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

/// The number of hypotheses the last beam search of `session` returned
/// (`num_return_sequences`; 0 when the last generation was not a beam search).
#[no_mangle]
pub extern "C" fn rill_session_beam_count(
    session: *mut rill_session,
    n_out: *mut usize,
) -> rill_status {
    ffi_call(|| {
        let n_out = out_ptr(n_out, "n_out")?;
        let session = session_mut(session)?;
        // SAFETY: checked non-NULL.
        unsafe { *n_out = session.beam_results().len() };
        Ok(())
    })
}

/// Hypothesis `index` (0 is the best) of the last beam search: its generated text (the
/// prompt and a final end-of-sequence token left out) NUL-terminated into `buf`
/// (`capacity` bytes, size including the NUL in `*needed_out`; `RILL_ERR_BUFFER_TOO_SMALL`
/// when it does not fit) and its score (`sum_logprobs / generated_len ** length_penalty`)
/// into `*score_out` (may be NULL). `RILL_ERR_INVALID_ARGUMENT` for an index out of range.
#[no_mangle]
pub extern "C" fn rill_session_beam_result(
    session: *mut rill_session,
    index: usize,
    buf: *mut c_char,
    capacity: usize,
    needed_out: *mut usize,
    score_out: *mut f32,
) -> rill_status {
    ffi_call(|| {
        let needed_out = out_ptr(needed_out, "needed_out")?;
        let session = session_mut(session)?;
        let (text, score) = session.beam_text(index)?;
        let needed = text.len() + 1;
        // SAFETY: checked non-NULL.
        unsafe { *needed_out = needed };
        super::write_optional(score_out, score);
        if needed > capacity {
            return Err(crate::RillError::BufferTooSmall(format!(
                "`buf` holds {capacity}, {needed} needed"
            )));
        }
        let dst = out_ptr(buf, "buf")? as *mut u8;
        // SAFETY: the caller provides `capacity` >= needed writable bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), dst, text.len());
            *dst.add(text.len()) = 0;
        }
        Ok(())
    })
}
