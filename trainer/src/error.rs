//! The trainer's error type: every failure a user can cause, with what to do about it.

use std::path::PathBuf;

/// Everything that can go wrong while preparing data, training or exporting.
#[derive(Debug, thiserror::Error)]
pub enum TrainerError {
    // --- input data -------------------------------------------------------------------
    /// The corpus file could not be read.
    #[error("cannot read corpus `{path}`: {source}")]
    CorpusUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The corpus holds no text.
    #[error("corpus `{0}` is empty: give a UTF-8 text file with one document per line (run `make corpus` for the default one)")]
    CorpusEmpty(PathBuf),
    /// The corpus is too small to give both a training and a held-out split.
    #[error("corpus `{path}` has {documents} document(s); at least {needed} are needed for a training and a held-out split")]
    CorpusTooSmall {
        path: PathBuf,
        documents: usize,
        needed: usize,
    },
    /// The vocabulary cannot hold the byte alphabet and the special tokens.
    #[error("vocab size {requested} is too small: byte-level BPE needs at least {minimum} (256 bytes + {specials} special tokens)")]
    VocabTooSmall {
        requested: usize,
        minimum: usize,
        specials: usize,
    },
    /// An option has a value that cannot work.
    #[error("invalid option: {0}")]
    InvalidOption(String),

    // --- folders and files ------------------------------------------------------------
    /// The output folder exists and `--force` was not given.
    #[error("output folder `{0}` already exists; pass --force to overwrite it")]
    OutputExists(PathBuf),
    /// A file of a model folder is missing.
    #[error("`{0}` not found: a model folder needs config.json and model.safetensors (or a sharded index)")]
    MissingFile(PathBuf),
    /// A `config.json` could not be parsed or describes an unsupported model.
    #[error("config `{path}`: {message}")]
    BadConfig { path: PathBuf, message: String },
    /// A weights file is corrupt or disagrees with the config.
    #[error("checkpoint `{path}`: {message}")]
    BadCheckpoint { path: PathBuf, message: String },
    /// The tokenizer could not be trained, saved or loaded.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A file system operation failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    // --- computation ------------------------------------------------------------------
    /// The tensor library reported an error.
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    /// The loss became NaN or infinite.
    #[error("training diverged at step {step}: loss is {loss}; lower --lr or enable --clip-grad")]
    Diverged { step: usize, loss: f32 },
    /// The loss curve could not be drawn.
    #[error("plot `{path}`: {message}")]
    Plot { path: PathBuf, message: String },
}

/// Result with [`TrainerError`].
pub type Result<T> = std::result::Result<T, TrainerError>;

/// Attaches a path to an I/O error.
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainerError {
    let path = path.into();
    move |source| TrainerError::Io { path, source }
}
