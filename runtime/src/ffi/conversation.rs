//! Conversations over a `rill_session`: new turns, chat templates, cancellation,
//! rollback, why generation stopped, saved state.
//!
//! Sample usage (a chat turn, then "regenerate"):
//! ```c
//! size_t before = 0, n = 0;
//! rill_session_token_count(session, &before);
//! rill_session_chat(session,
//!     "[{\"role\": \"user\", \"content\": \"Who made the heaven?\"}]", on_piece, NULL, &n);
//! rill_session_truncate(session, before);          /* drop the reply ... */
//! rill_session_chat(session, same_messages, on_piece, NULL, &n); /* ... and regenerate */
//! ```

use std::ffi::{c_char, c_void};

use super::model::{model_arc, rill_model};
use super::session::{generate_with, rill_session, rill_token_callback, with_session};
use super::{c_str, check_struct_size, ffi_call, out_ptr, rill_status, slice};
use crate::chat::{ChatMessage, ChatRequest};
use crate::error::RillError;
use crate::session::StopReason;

/// Why the last generation stopped.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum rill_stop_reason {
    /// No generation has finished on this session yet.
    RILL_STOP_NONE = 0,
    /// An end-of-sequence token (not part of the output).
    RILL_STOP_EOS = 1,
    /// `max_new_tokens` were generated.
    RILL_STOP_MAX_TOKENS = 2,
    /// The context is full (default context policy).
    RILL_STOP_CONTEXT_FULL = 3,
    /// The token callback returned non-zero.
    RILL_STOP_CALLBACK = 4,
    /// A stop string appeared (not part of the output).
    RILL_STOP_STOP_STRING = 5,
    /// `rill_session_cancel` was called.
    RILL_STOP_CANCELLED = 6,
}

/// A summary of the last generation; see [`rill_session_last_generation`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct rill_generation_info {
    /// `sizeof(rill_generation_info)` as the caller was compiled; set it before the call.
    pub struct_size: usize,
    /// Why it stopped.
    pub stop_reason: rill_stop_reason,
    /// Tokens generated (end-of-sequence not counted).
    pub generated_tokens: usize,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Prompt tokens whose keys and values were already cached (prefix reuse).
    pub reused_tokens: usize,
    /// Prompt tokens run through the model.
    pub evaluated_tokens: usize,
}

fn stop_code(reason: StopReason) -> rill_stop_reason {
    use rill_stop_reason::*;
    match reason {
        StopReason::Eos => RILL_STOP_EOS,
        StopReason::MaxTokens => RILL_STOP_MAX_TOKENS,
        StopReason::ContextFull => RILL_STOP_CONTEXT_FULL,
        StopReason::Callback => RILL_STOP_CALLBACK,
        StopReason::StopString => RILL_STOP_STOP_STRING,
        StopReason::Cancelled => RILL_STOP_CANCELLED,
    }
}

/// `messages_json`: an array of messages, or an object with `messages` and the other
/// arguments of transformers' `apply_chat_template`.
fn chat_request(json: *const c_char) -> Result<ChatRequest, RillError> {
    let text = c_str(json, "messages_json")?;
    let parsed = if text.trim_start().starts_with('[') {
        serde_json::from_str::<Vec<ChatMessage>>(text).map(|m| ChatRequest::from(&m[..]))
    } else {
        serde_json::from_str::<ChatRequest>(text)
    };
    parsed.map_err(|e| {
        RillError::InvalidArgument(format!(
            "`messages_json` must be a JSON array of {{\"role\", \"content\"}} objects, or an object with `messages` (and `tools`, `documents`, other template variables): {e}"
        ))
    })
}

/// Adds `text` (UTF-8, no BOS added: the next turn as the model expects it) after the
/// session's tokens and generates from there, evaluating only the new tokens. Streaming,
/// stopping and errors as for `rill_session_generate`.
#[no_mangle]
pub extern "C" fn rill_session_append(
    session: *mut rill_session,
    text: *const c_char,
    callback: rill_token_callback,
    user_data: *mut c_void,
    n_tokens_out: *mut usize,
) -> rill_status {
    generate_with(session, callback, user_data, n_tokens_out, |s, cb| {
        s.append(c_str(text, "text")?, cb)
    })
}

/// Renders `messages_json` with the model's chat template as transformers'
/// `apply_chat_template` renders it, ending where the assistant's reply begins, and
/// generates the reply as `rill_session_generate` does: the cached prefix (earlier turns)
/// is reused. `messages_json` is the whole conversation, a JSON array of `{"role": ...,
/// "content": ...}` (other keys of a message reach the template; `content` may be null
/// or a list of parts, `[{"type": "text", "text": ...}]`), or an object `{"messages": [...], "tools": [...], "documents": [...], ...}` whose
/// other keys are template variables (`enable_thinking`, `date_string`), as the keyword
/// arguments of `apply_chat_template`; `"continue_final_message": true` ends the prompt
/// inside the final message (an assistant reply begun by the caller), which the model
/// then continues. `RILL_ERR_CHAT_TEMPLATE` when the model folder
/// has no template or it fails to render; `RILL_ERR_INVALID_ARGUMENT` for malformed JSON.
#[no_mangle]
pub extern "C" fn rill_session_chat(
    session: *mut rill_session,
    messages_json: *const c_char,
    callback: rill_token_callback,
    user_data: *mut c_void,
    n_tokens_out: *mut usize,
) -> rill_status {
    generate_with(session, callback, user_data, n_tokens_out, |s, cb| {
        s.chat_request(&chat_request(messages_json)?, cb)
    })
}

/// Renders `messages_json` (as for [`rill_session_chat`]: messages, or an object with
/// tools and template variables) with the model's chat template into `buf` (NUL-terminated,
/// `capacity` bytes; the size needed including the NUL in `*needed_out`,
/// `RILL_ERR_BUFFER_TOO_SMALL` when it does not fit). `add_generation_prompt` non-zero
/// ends the text where the assistant's reply begins (it must be 0 with
/// `continue_final_message`). Thread-safe.
#[no_mangle]
pub extern "C" fn rill_model_apply_chat_template(
    model: *const rill_model,
    messages_json: *const c_char,
    add_generation_prompt: i32,
    buf: *mut c_char,
    capacity: usize,
    needed_out: *mut usize,
) -> rill_status {
    ffi_call(|| {
        out_ptr(needed_out, "needed_out")?;
        let model = model_arc(model)?;
        let text =
            model.apply_chat_request(&chat_request(messages_json)?, add_generation_prompt != 0)?;
        super::write_buffer(text.as_bytes(), true, buf as *mut u8, capacity, needed_out)
    })
}

/// Asks the generation in progress on `session` to stop after its current forward pass;
/// it then returns `RILL_OK` with stop reason `RILL_STOP_CANCELLED`, and the session stays
/// usable. The one session function that may be called from another thread while the
/// session generates. A cancel while no generation runs has no effect (each generation
/// starts uncancelled). A session freed meanwhile is refused by the free, not pulled away.
#[no_mangle]
pub extern "C" fn rill_session_cancel(session: *mut rill_session) -> rill_status {
    ffi_call(|| {
        let cancel =
            super::handles::with_live(session, super::handles::Kind::Session, "session", || {
                let h = session as *const super::session::SessionHandle;
                // SAFETY: live (checked under the registry's lock); only the `cancel` field
                // is read, which no call borrows mutably (a generation on another thread
                // borrows `session` only). The token is cloned, so nothing is read after
                // the lock is released.
                Ok(unsafe { &*std::ptr::addr_of!((*h).cancel) }.clone())
            })?;
        cancel.cancel();
        Ok(())
    })
}

/// Writes the number of tokens the session holds (prompt and generated tokens of the
/// conversation so far) to `*n_out`.
#[no_mangle]
pub extern "C" fn rill_session_token_count(
    session: *mut rill_session,
    n_out: *mut usize,
) -> rill_status {
    ffi_call(|| {
        let n_out = out_ptr(n_out, "n_out")?;
        let mut call = super::session::enter(session)?;
        let s = call.session();
        // SAFETY: checked non-NULL.
        unsafe { *n_out = s.history().len() };
        Ok(())
    })
}

/// Copies up to `capacity` of the session's token ids to `ids` and their count to
/// `*n_out` (`RILL_ERR_BUFFER_TOO_SMALL` with the count when they do not fit).
#[no_mangle]
pub extern "C" fn rill_session_tokens(
    session: *mut rill_session,
    ids: *mut u32,
    capacity: usize,
    n_out: *mut usize,
) -> rill_status {
    ffi_call(|| {
        out_ptr(n_out, "n_out")?;
        let history = with_session(session, |s| Ok(s.history()))?;
        super::write_ids(&history, ids, capacity, n_out)
    })
}

/// Rolls the session back to its first `n_tokens` tokens (regenerate a reply, edit the
/// last turn); the next generation reuses them. Works after beam search, whose best
/// hypothesis the session holds. `RILL_ERR_INVALID_ARGUMENT`, changing nothing, when
/// `n_tokens` exceeds the session's token count.
#[no_mangle]
pub extern "C" fn rill_session_truncate(
    session: *mut rill_session,
    n_tokens: usize,
) -> rill_status {
    ffi_call(|| with_session(session, |s| s.truncate(n_tokens)))
}

/// Writes a summary of the session's last successful generation into `*info_out`, whose
/// `struct_size` the caller sets first. `stop_reason` is `RILL_STOP_NONE` before any.
#[no_mangle]
pub extern "C" fn rill_session_last_generation(
    session: *mut rill_session,
    info_out: *mut rill_generation_info,
) -> rill_status {
    ffi_call(|| {
        let out = out_ptr(info_out, "info_out")?;
        // SAFETY: checked non-NULL; the caller set struct_size.
        let size = unsafe { (*out).struct_size };
        check_struct_size(
            size,
            std::mem::size_of::<rill_generation_info>(),
            "info_out",
        )?;
        let mut call = super::session::enter(session)?;
        let info = match call.last() {
            None => rill_generation_info {
                struct_size: size,
                stop_reason: rill_stop_reason::RILL_STOP_NONE,
                generated_tokens: 0,
                prompt_tokens: 0,
                reused_tokens: 0,
                evaluated_tokens: 0,
            },
            Some(g) => rill_generation_info {
                struct_size: size,
                stop_reason: stop_code(g.stop),
                generated_tokens: g.tokens.len(),
                prompt_tokens: g.prompt_tokens,
                reused_tokens: g.reused_tokens,
                evaluated_tokens: g.evaluated_tokens,
            },
        };
        // SAFETY: checked non-NULL.
        unsafe { *out = info };
        Ok(())
    })
}

/// Copies the log-probabilities of the last successful generation's tokens (natural log,
/// under the model's raw logits; one per generated token) to `logprobs` and their count to
/// `*n_out` (`RILL_ERR_BUFFER_TOO_SMALL` with the count when they do not fit). There are
/// none unless the generation config set `"output_logprobs": true`, and none after beam
/// search (`rill_session_beam_result` gives its scores).
#[no_mangle]
pub extern "C" fn rill_session_last_logprobs(
    session: *mut rill_session,
    logprobs: *mut f32,
    capacity: usize,
    n_out: *mut usize,
) -> rill_status {
    ffi_call(|| {
        out_ptr(n_out, "n_out")?;
        let mut call = super::session::enter(session)?;
        let values = call
            .last()
            .as_ref()
            .map_or(Vec::new(), |g| g.logprobs.clone());
        super::write_values(&values, logprobs, capacity, n_out, "logprobs")
    })
}

/// Saves the session's tokens, KV cache and generation settings into `buf` (`capacity`
/// bytes; the size needed in `*needed_out`, `RILL_ERR_BUFFER_TOO_SMALL` when it does not
/// fit: call with capacity 0 first). The blob is versioned and checksummed and names the
/// model it belongs to; restore it with [`rill_session_load`].
#[no_mangle]
pub extern "C" fn rill_session_save(
    session: *mut rill_session,
    buf: *mut u8,
    capacity: usize,
    needed_out: *mut usize,
) -> rill_status {
    ffi_call(|| {
        out_ptr(needed_out, "needed_out")?;
        let blob = with_session(session, |s| s.save_state())?;
        super::write_buffer(&blob, false, buf, capacity, needed_out)
    })
}

/// Restores a blob from [`rill_session_save`] (possibly of another process) into
/// `session`, replacing its tokens, cache and settings. A truncated, corrupt or
/// foreign blob (other format version, other model, larger than the context) is
/// `RILL_ERR_STATE` and leaves the session unchanged.
#[no_mangle]
pub extern "C" fn rill_session_load(
    session: *mut rill_session,
    data: *const u8,
    len: usize,
) -> rill_status {
    ffi_call(|| {
        let mut call = super::session::enter(session)?;
        let s = call.session();
        s.load_state(slice(data, len, "data")?)
    })
}
