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

use super::handles::{self, Busy, Kind};
use super::model::{model_arc, rill_model};
use super::{c_str, check_struct_size, ffi_call, ffi_void, optional, out_ptr, rill_status};
use crate::config::GenerationConfig;
use crate::session::{ContextPolicy, Generation, Session, SessionOptions};
use crate::stop::CancelToken;

/// One conversation: tokens, KV cache, settings. Opaque; use from one thread at a time
/// (except `rill_session_cancel`).
pub struct rill_session {
    _private: [u8; 0],
}

/// What a `rill_session` handle points to. The cancel token is a separate field so that
/// `rill_session_cancel` on another thread touches only it while a generation borrows
/// `session`.
pub(crate) struct SessionHandle {
    pub(crate) cancel: CancelToken,
    pub(crate) session: Session,
    /// Summary of the last successful generation.
    pub(crate) last: Option<Generation>,
    /// Set for the length of each call (see [`handles`]).
    pub(crate) busy: std::sync::atomic::AtomicBool,
}

/// Options for [`rill_session_new`]; initialise with [`rill_session_options_default`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct rill_session_options {
    /// `sizeof(rill_session_options)` as the caller was compiled.
    pub struct_size: usize,
    /// Context length in tokens (prompt + generated); 0 means the model's maximum. The
    /// KV cache is allocated as tokens come (room for 512 at first, doubling), up to it.
    pub context_len: u32,
    /// Prompt tokens evaluated per forward pass (default 128). On graphs without
    /// `logits_to_keep` (rill's exports have it) each chunk needs `prefill_chunk × vocab`
    /// logits while it runs, in buffers the sessions of a model borrow (the model keeps
    /// the largest one between prompts); otherwise, and for a decode step, the session's
    /// own single row.
    pub prefill_chunk: u32,
    /// When the context fills: 0 (the default) is an error for a prompt that does not
    /// fit and stops generation with `RILL_STOP_CONTEXT_FULL`; 1 slides a window that
    /// keeps the first `pinned_tokens` and drops the oldest tokens after them.
    pub context_policy: u32,
    /// Tokens at the start never dropped by the sliding window (e.g. the system prompt).
    pub pinned_tokens: u32,
}

/// Size of the first released `rill_session_options` (struct_size, context_len,
/// prefill_chunk): callers built against it still work, later fields taking defaults.
const SESSION_OPTIONS_V1: usize = std::mem::size_of::<usize>() + 8;

/// The default session options.
#[no_mangle]
pub extern "C" fn rill_session_options_default() -> rill_session_options {
    let d = SessionOptions::default();
    rill_session_options {
        struct_size: std::mem::size_of::<rill_session_options>(),
        context_len: d.context_len as u32,
        prefill_chunk: d.prefill_chunk as u32,
        context_policy: 0,
        pinned_tokens: 0,
    }
}

/// Called with each piece of generated text: `piece` is `len` bytes of whole UTF-8
/// characters followed by a NUL, valid only during the call. Return 0 to continue,
/// non-zero to stop generation.
pub type rill_token_callback =
    Option<extern "C" fn(user_data: *mut c_void, piece: *const c_char, len: usize) -> c_int>;

/// A session handle checked live and marked busy for one call.
pub(crate) struct Entered {
    handle: *mut SessionHandle,
    _busy: Busy<'static>,
}

impl Entered {
    /// The session (only this field is borrowed, so that a concurrent
    /// `rill_session_cancel`, which reads only `cancel`, does not alias it).
    pub(crate) fn session(&mut self) -> &mut Session {
        // SAFETY: live, and marked busy for this call: no other call touches it.
        unsafe { &mut *std::ptr::addr_of_mut!((*self.handle).session) }
    }

    /// The summary of the last generation.
    pub(crate) fn last(&mut self) -> &mut Option<Generation> {
        // SAFETY: as for `session`.
        unsafe { &mut *std::ptr::addr_of_mut!((*self.handle).last) }
    }
}

/// Checks that `session` is a live handle and marks it busy until the result is dropped.
pub(crate) fn enter(session: *mut rill_session) -> Result<Entered, crate::RillError> {
    handles::with_live(session, Kind::Session, "session", || {
        let h = session as *mut SessionHandle;
        // SAFETY: live (checked under the registry's lock, which freeing also takes);
        // the flag is an atomic, shared by design. The handle outlives the mark: freeing
        // refuses a busy session.
        let flag: &'static std::sync::atomic::AtomicBool =
            unsafe { &*std::ptr::addr_of!((*h).busy) };
        Ok(Entered {
            handle: h,
            _busy: Busy::acquire(flag)?,
        })
    })
}

/// Runs `f` on the session behind a live handle, marked busy meanwhile.
pub(crate) fn with_session<R>(
    session: *mut rill_session,
    f: impl FnOnce(&mut Session) -> crate::Result<R>,
) -> crate::Result<R> {
    f(enter(session)?.session())
}

/// Runs a generation on a handle: streams through the C callback, records the summary
/// for `rill_session_last_generation`, writes the token count.
pub(crate) fn generate_with(
    session: *mut rill_session,
    callback: rill_token_callback,
    user_data: *mut c_void,
    n_tokens_out: *mut usize,
    run: impl FnOnce(&mut Session, &mut dyn FnMut(&str) -> bool) -> crate::Result<Generation>,
) -> rill_status {
    ffi_call(|| {
        let n_out = out_ptr(n_tokens_out, "n_tokens_out")?;
        let mut call = enter(session)?;
        let mut on_piece = |piece: &str| match callback {
            None => true,
            Some(cb) => {
                let text = CString::new(piece.replace('\0', "")).unwrap_or_default();
                cb(user_data, text.as_ptr(), text.as_bytes().len()) == 0
            }
        };
        let result = run(call.session(), &mut on_piece)?;
        // SAFETY: checked non-NULL.
        unsafe { *n_out = result.tokens.len() };
        *call.last() = Some(result);
        Ok(())
    })
}

/// Creates a session over `model` with its own KV cache (allocated as tokens come, up to
/// the context). `options` may be NULL for the defaults.
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
            check_struct_size(o.struct_size, SESSION_OPTIONS_V1, "options")?;
            opts.context_len = o.context_len as usize;
            opts.prefill_chunk = o.prefill_chunk as usize;
            if o.struct_size >= std::mem::size_of::<rill_session_options>() {
                opts.context_policy = match o.context_policy {
                    0 => ContextPolicy::Error,
                    1 => ContextPolicy::SlidingWindow {
                        pinned: o.pinned_tokens as usize,
                    },
                    p => {
                        return Err(crate::RillError::InvalidArgument(format!(
                            "`options.context_policy` is {p}; use 0 (error) or 1 (sliding window)"
                        )))
                    }
                };
            }
        }
        let session = Session::new(model, opts)?;
        let handle = Box::new(SessionHandle {
            cancel: session.cancel_token(),
            session,
            last: None,
            busy: std::sync::atomic::AtomicBool::new(false),
        });
        let ptr = Box::into_raw(handle);
        handles::register(ptr, Kind::Session);
        // SAFETY: checked non-NULL; written only on success.
        unsafe { *out = ptr as *mut rill_session };
        Ok(())
    })
}

/// Frees a session and its cache. NULL is a no-op. A handle that is not live (freed
/// already, or never returned by `rill_session_new`) or a session inside a call on another
/// thread is not freed: the free is ignored and `rill_last_error` says why.
#[no_mangle]
pub extern "C" fn rill_session_free(session: *mut rill_session) {
    ffi_void(|| {
        let h = session as *mut SessionHandle;
        // SAFETY (busy): evaluated only for a live handle, under the registry's lock.
        let busy = || unsafe { (*h).busy.load(std::sync::atomic::Ordering::Acquire) };
        if !session.is_null() && handles::unregister(h, Kind::Session, busy) {
            // SAFETY: a live handle from rill_session_new, removed from the registry
            // just now, so freed once.
            drop(unsafe { Box::from_raw(h) });
        }
    })
}

/// Sets generation settings from a JSON object with Hugging Face `generation_config.json`
/// keys (`max_new_tokens`, `max_length`, `min_new_tokens`, `eos_token_id`, `do_sample`,
/// `temperature`, `top_k`, `top_p`, `min_p`, `typical_p`, `epsilon_cutoff`, `eta_cutoff`,
/// `repetition_penalty`, `no_repeat_ngram_size`, `suppress_tokens`, `seed`,
/// `prompt_lookup_num_tokens`, beam search's keys; README lists all), with transformers'
/// meanings; they override the model folder's
/// `generation_config.json`. On error the previous settings stay. Returns
/// `RILL_ERR_GENERATION_CONFIG` for malformed JSON, invalid values, or a setting of
/// transformers' that rill does not implement (named in the message).
#[no_mangle]
pub extern "C" fn rill_session_set_generation_config(
    session: *mut rill_session,
    json: *const c_char,
) -> rill_status {
    ffi_call(|| {
        let mut call = super::session::enter(session)?;
        let session = call.session();
        let config = GenerationConfig::from_json(c_str(json, "json")?)?;
        session.set_generation_config(config)
    })
}

/// Sets `assistant` (a model opened with [`rill_model_open`]; NULL removes it) as the
/// session's assistant for assisted generation (speculative decoding): a smaller model
/// with the same tokenizer proposes the next tokens, up to `num_assistant_tokens`
/// (generation config, default 20), and the session's model checks them in one pass.
/// Greedy and seeded sampled output stay the same as without it. The session keeps a
/// reference to `assistant` (it may be freed first) and its own cache for it. Returns
/// `RILL_ERR_INVALID_ARGUMENT` when its vocabulary or end tokens differ from the
/// model's; a generation with beams or `prompt_lookup_num_tokens` then returns
/// `RILL_ERR_GENERATION_CONFIG`. Not thread-safe for one session.
#[no_mangle]
pub extern "C" fn rill_session_set_assistant(
    session: *mut rill_session,
    assistant: *const rill_model,
) -> rill_status {
    ffi_call(|| {
        let mut call = super::session::enter(session)?;
        let assistant = match assistant.is_null() {
            true => None,
            false => Some(model_arc(assistant)?),
        };
        call.session().set_assistant(assistant)
    })
}

/// Generates a continuation of `prompt` (UTF-8, the whole conversation so far; the
/// tokenizer's BOS is added), streaming text pieces to `callback` (may be NULL) with
/// `user_data`, and writes the number of generated tokens to `*n_tokens_out`.
///
/// The longest prefix of the prompt's tokens already in the session's cache is reused;
/// only the rest is evaluated, so sending a whole chat history each turn costs the new
/// tokens only. Afterwards the session holds the prompt and the generated tokens.
/// Stops at an end-of-sequence token, `max_new_tokens` (default 256), a stop string
/// (`stop_strings` in the generation config; not emitted), a full context,
/// `rill_session_cancel`, or when the
/// callback returns non-zero; `rill_session_last_generation`
/// says which. Returns `RILL_ERR_PROMPT_TOO_LONG` (before any work) when the prompt does
/// not fit the context (default policy), `RILL_ERR_INVALID_UTF8` for an invalid prompt,
/// `RILL_ERR_INVALID_ARGUMENT` for NULL arguments. The session stays usable after any
/// error. A session is used by one thread at a time: a call while another thread
/// is inside a call on it returns `RILL_ERR_INVALID_ARGUMENT` (only
/// `rill_session_cancel` may be called meanwhile), as does a freed handle.
#[no_mangle]
pub extern "C" fn rill_session_generate(
    session: *mut rill_session,
    prompt: *const c_char,
    callback: rill_token_callback,
    user_data: *mut c_void,
    n_tokens_out: *mut usize,
) -> rill_status {
    generate_with(session, callback, user_data, n_tokens_out, |s, cb| {
        s.generate(c_str(prompt, "prompt")?, cb)
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
        let mut call = super::session::enter(session)?;
        let session = call.session();
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
        let mut call = super::session::enter(session)?;
        let session = call.session();
        let (text, score) = session.beam_text(index)?;
        super::write_optional(score_out, score);
        super::write_buffer(text.as_bytes(), true, buf as *mut u8, capacity, needed_out)
    })
}
