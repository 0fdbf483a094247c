//! Status codes, the one mapping from [`RillError`] to them, and the calling thread's last
//! error message.

use std::cell::RefCell;
use std::ffi::{c_char, CString};

use crate::error::RillError;

/// The result of every fallible rill function. 0 is success; values are grouped in bands
/// (1–99 arguments and internal errors, 100s loading, 200s generation) and never reused.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum rill_status {
    /// Success.
    RILL_OK = 0,
    /// A required pointer was NULL, or an argument is out of range.
    RILL_ERR_INVALID_ARGUMENT = 1,
    /// A string argument is not valid UTF-8.
    RILL_ERR_INVALID_UTF8 = 2,
    /// A caller-provided buffer is too small; the needed size was written.
    RILL_ERR_BUFFER_TOO_SMALL = 3,
    /// rill caught an internal panic; the object involved should not be used further.
    RILL_ERR_PANIC = 99,
    /// A file or folder does not exist.
    RILL_ERR_NOT_FOUND = 100,
    /// A file could not be read.
    RILL_ERR_IO = 101,
    /// `config.json` is malformed or inconsistent.
    RILL_ERR_CONFIG = 102,
    /// The weights file is corrupt or disagrees with the config.
    RILL_ERR_WEIGHTS = 103,
    /// The graph's inputs or outputs disagree with the config.
    RILL_ERR_GRAPH_MISMATCH = 104,
    /// The tokenizer could not be loaded or failed.
    RILL_ERR_TOKENIZER = 105,
    /// The ONNX Runtime library was not found.
    RILL_ERR_ORT_NOT_FOUND = 106,
    /// ONNX Runtime failed.
    RILL_ERR_ORT = 107,
    /// A generation config is malformed.
    RILL_ERR_GENERATION_CONFIG = 108,
    /// The execution provider asked for (CUDA) cannot be used: rill built without the
    /// `cuda` feature, a CPU-only ONNX Runtime library, no usable GPU; the message says
    /// which.
    RILL_ERR_PROVIDER = 109,
    /// Memory for the session (its KV cache) cannot be allocated: ask for a smaller
    /// context. Nothing was created.
    RILL_ERR_OUT_OF_MEMORY = 110,
    /// The prompt does not fit the session's context.
    RILL_ERR_PROMPT_TOO_LONG = 200,
    /// The prompt has no tokens.
    RILL_ERR_EMPTY_PROMPT = 201,
    /// A token id is outside the vocabulary.
    RILL_ERR_TOKEN_OUT_OF_RANGE = 202,
    /// The model has no chat template, or it failed to render the messages.
    RILL_ERR_CHAT_TEMPLATE = 203,
    /// A saved session state is corrupt, of another format version, or from another
    /// model; the session is unchanged.
    RILL_ERR_STATE = 204,
    /// A plugin could not be loaded (missing file or entry symbol, ABI version mismatch,
    /// malformed table, a sampler name already taken).
    RILL_ERR_PLUGIN_LOAD = 300,
    /// A plugin call failed or returned something invalid (NaN, a token outside the
    /// vocabulary, a bad selection); the message names the plugin and sampler.
    RILL_ERR_PLUGIN = 301,
    /// No registered plugin provides the sampler asked for.
    RILL_ERR_UNKNOWN_SAMPLER = 302,
}

/// The status for an error (the only place errors map to statuses).
pub(crate) fn status_of(e: &RillError) -> rill_status {
    use rill_status::*;
    match e {
        RillError::InvalidArgument(_) => RILL_ERR_INVALID_ARGUMENT,
        RillError::InvalidUtf8(_) => RILL_ERR_INVALID_UTF8,
        RillError::BufferTooSmall(_) => RILL_ERR_BUFFER_TOO_SMALL,
        RillError::OrtNotFound { .. } => RILL_ERR_ORT_NOT_FOUND,
        RillError::OrtLoad { .. } | RillError::Ort(_) => RILL_ERR_ORT,
        RillError::MissingFile(_) | RillError::NoFusedGraph(_) => RILL_ERR_NOT_FOUND,
        RillError::Io { .. } => RILL_ERR_IO,
        RillError::Config { .. } => RILL_ERR_CONFIG,
        RillError::GenerationConfig(_) => RILL_ERR_GENERATION_CONFIG,
        RillError::Weights { .. } => RILL_ERR_WEIGHTS,
        RillError::GraphMismatch { .. } => RILL_ERR_GRAPH_MISMATCH,
        RillError::Tokenizer(_) => RILL_ERR_TOKENIZER,
        RillError::PromptTooLong { .. } => RILL_ERR_PROMPT_TOO_LONG,
        RillError::EmptyPrompt => RILL_ERR_EMPTY_PROMPT,
        RillError::TokenOutOfRange { .. } => RILL_ERR_TOKEN_OUT_OF_RANGE,
        RillError::ChatTemplate(_) => RILL_ERR_CHAT_TEMPLATE,
        RillError::State(_) => RILL_ERR_STATE,
        RillError::Provider { .. } => RILL_ERR_PROVIDER,
        RillError::OutOfMemory { .. } => RILL_ERR_OUT_OF_MEMORY,
        RillError::PluginLoad(_) => RILL_ERR_PLUGIN_LOAD,
        RillError::Plugin(_) => RILL_ERR_PLUGIN,
        RillError::UnknownSampler(_) => RILL_ERR_UNKNOWN_SAMPLER,
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub(crate) fn set_last_error(message: &str) {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|cell| *cell.borrow_mut() = text);
}

/// The message of the last error on the calling thread ("" if none).
///
/// The string is owned by rill and valid until the next rill call that fails on this
/// thread. Thread-safe: each thread has its own message.
#[no_mangle]
pub extern "C" fn rill_last_error() -> *const c_char {
    let read = || LAST_ERROR.with(|cell| cell.borrow().as_ptr());
    // A byte string, not c"": cbindgen 0.24 (Debian's, which CI uses) cannot parse c"".
    #[allow(clippy::manual_c_str_literals)]
    let empty = b"\0".as_ptr() as *const c_char;
    std::panic::catch_unwind(read).unwrap_or(empty)
}

/// A static name for `status` (e.g. "RILL_ERR_WEIGHTS"); never NULL, never freed.
#[no_mangle]
pub extern "C" fn rill_status_str(status: rill_status) -> *const c_char {
    use rill_status::*;
    let s: &'static [u8] = match status {
        RILL_OK => b"RILL_OK\0",
        RILL_ERR_INVALID_ARGUMENT => b"RILL_ERR_INVALID_ARGUMENT\0",
        RILL_ERR_INVALID_UTF8 => b"RILL_ERR_INVALID_UTF8\0",
        RILL_ERR_BUFFER_TOO_SMALL => b"RILL_ERR_BUFFER_TOO_SMALL\0",
        RILL_ERR_PANIC => b"RILL_ERR_PANIC\0",
        RILL_ERR_NOT_FOUND => b"RILL_ERR_NOT_FOUND\0",
        RILL_ERR_IO => b"RILL_ERR_IO\0",
        RILL_ERR_CONFIG => b"RILL_ERR_CONFIG\0",
        RILL_ERR_WEIGHTS => b"RILL_ERR_WEIGHTS\0",
        RILL_ERR_GRAPH_MISMATCH => b"RILL_ERR_GRAPH_MISMATCH\0",
        RILL_ERR_TOKENIZER => b"RILL_ERR_TOKENIZER\0",
        RILL_ERR_ORT_NOT_FOUND => b"RILL_ERR_ORT_NOT_FOUND\0",
        RILL_ERR_ORT => b"RILL_ERR_ORT\0",
        RILL_ERR_GENERATION_CONFIG => b"RILL_ERR_GENERATION_CONFIG\0",
        RILL_ERR_PROVIDER => b"RILL_ERR_PROVIDER\0",
        RILL_ERR_OUT_OF_MEMORY => b"RILL_ERR_OUT_OF_MEMORY\0",
        RILL_ERR_PROMPT_TOO_LONG => b"RILL_ERR_PROMPT_TOO_LONG\0",
        RILL_ERR_EMPTY_PROMPT => b"RILL_ERR_EMPTY_PROMPT\0",
        RILL_ERR_TOKEN_OUT_OF_RANGE => b"RILL_ERR_TOKEN_OUT_OF_RANGE\0",
        RILL_ERR_CHAT_TEMPLATE => b"RILL_ERR_CHAT_TEMPLATE\0",
        RILL_ERR_STATE => b"RILL_ERR_STATE\0",
        RILL_ERR_PLUGIN_LOAD => b"RILL_ERR_PLUGIN_LOAD\0",
        RILL_ERR_PLUGIN => b"RILL_ERR_PLUGIN\0",
        RILL_ERR_UNKNOWN_SAMPLER => b"RILL_ERR_UNKNOWN_SAMPLER\0",
    };
    s.as_ptr() as *const c_char
}
