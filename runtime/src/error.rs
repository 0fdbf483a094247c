//! The runtime's error type. Each variant carries what a user needs to act: the file,
//! the tensor, both shapes, where a library was looked for.

use std::path::PathBuf;

/// Everything that can fail in the runtime.
#[derive(Debug, thiserror::Error)]
pub enum RillError {
    // --- arguments --------------------------------------------------------------------
    /// An argument is invalid (NULL, out of range, inconsistent).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A caller-provided buffer is too small.
    #[error("buffer too small: {0}")]
    BufferTooSmall(String),
    /// Text is not valid UTF-8.
    #[error("invalid UTF-8 in {0}")]
    InvalidUtf8(&'static str),

    // --- ONNX Runtime -----------------------------------------------------------------
    /// The ONNX Runtime shared library was not found.
    #[error("ONNX Runtime library not found; looked in: {}. Set ORT_DYLIB_PATH to the path of libonnxruntime.so (from the onnxruntime {version} wheel: `make venv` installs it into .venv), or place the library next to the executable", searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    OrtNotFound {
        /// Paths tried, in order.
        searched: Vec<PathBuf>,
        /// The pinned version.
        version: &'static str,
    },
    /// ONNX Runtime failed to load or initialise.
    #[error("cannot load ONNX Runtime from `{path}`: {message}")]
    OrtLoad { path: PathBuf, message: String },
    /// ONNX Runtime reported an error.
    #[error("ONNX Runtime: {0}")]
    Ort(String),

    // --- model folder -----------------------------------------------------------------
    /// A required file of the model folder is missing.
    #[error("`{0}` not found: a model folder needs config.json, model.onnx, model.safetensors (unless the graph embeds its weights) and tokenizer.json")]
    MissingFile(PathBuf),
    /// The fused-attention graph was asked for ([`crate::GraphChoice::Fused`]) and the
    /// folder has none.
    #[error("`{0}` not found: the fused-attention graph was asked for and this folder has none; write it beside model.onnx with `rill-train export --from DIR --attention both`, or open the folder's own graph")]
    NoFusedGraph(PathBuf),
    /// A file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `config.json` is malformed or inconsistent.
    #[error("config `{path}`: {message}")]
    Config { path: PathBuf, message: String },
    /// `generation_config.json` or a generation config given at run time is malformed.
    #[error("generation config: {0}")]
    GenerationConfig(String),
    /// The weights file is corrupt or disagrees with the config.
    #[error("weights `{path}`: {message}")]
    Weights { path: PathBuf, message: String },
    /// A graph input or output disagrees with the config.
    #[error("graph `{graph}`: {tensor}: expected {expected}, found {found}")]
    GraphMismatch {
        graph: PathBuf,
        tensor: String,
        expected: String,
        found: String,
    },
    /// The tokenizer could not be loaded or failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),

    // --- generation -------------------------------------------------------------------
    /// The prompt (plus at least one new token) does not fit the session's context.
    #[error("prompt of {tokens} tokens does not fit the context of {context} tokens (at least one new token must fit); shorten the prompt or open the session with a larger context")]
    PromptTooLong { tokens: usize, context: usize },
    /// The prompt is empty after tokenization.
    #[error("the prompt is empty: give at least one token")]
    EmptyPrompt,
    /// A plugin could not be loaded or registered.
    #[error("cannot load {0}")]
    PluginLoad(String),
    /// A plugin call failed or returned something invalid.
    #[error("{0}")]
    Plugin(String),
    /// No registered plugin provides the sampler asked for.
    #[error("{0}")]
    UnknownSampler(String),
    /// A token id is outside the vocabulary.
    #[error("token id {id} is outside the vocabulary (size {vocab})")]
    TokenOutOfRange { id: u32, vocab: usize },
    /// The chat template is missing, does not compile, or failed to render.
    #[error("chat template: {0}")]
    ChatTemplate(String),
    /// A saved session state is corrupt, of another version, or made with another model.
    #[error("saved session state: {0}")]
    State(String),
    /// Memory for a session (its KV cache) was refused by the allocator, or its size
    /// overflows.
    #[error("cannot allocate {bytes} bytes for {what}: open the session with a smaller context_len (or fewer beams)")]
    OutOfMemory {
        /// What the memory was for (and the allocator's own message, if any).
        what: String,
        /// How much was asked for (`usize::MAX` when the size itself overflows).
        bytes: usize,
    },

    /// The execution provider asked for cannot be used.
    #[error("execution provider {provider}: {message}")]
    Provider { provider: String, message: String },
}

/// Result with [`RillError`].
pub type Result<T> = std::result::Result<T, RillError>;

impl From<ort::Error> for RillError {
    fn from(e: ort::Error) -> Self {
        RillError::Ort(e.to_string())
    }
}

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> RillError {
    let path = path.into();
    move |source| match source.kind() {
        std::io::ErrorKind::NotFound => RillError::MissingFile(path),
        _ => RillError::Io { path, source },
    }
}
