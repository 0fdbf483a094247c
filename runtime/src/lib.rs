//! rill: an embeddable inference runtime for decoder-only language models.
//!
//! A [`Model`] is a model folder opened once (ONNX Runtime session, memory-mapped weights,
//! config, tokenizer) and shared by any number of [`Session`]s, each one sequence with its
//! own KV cache. The C ABI in [`ffi`] is a thin layer over these types.

mod assistant;
pub mod beam;
pub mod cache_memory;
pub mod chat;
pub mod config;
pub mod error;
pub mod ffi;
pub mod graph;
pub mod kv_cache;
mod logits_pool;
pub mod model;
pub mod ort_env;
mod ort_value;
pub mod plugin;
mod prompt_lookup;
pub mod provider;
pub mod sampling;
pub mod session;
mod state;
pub mod stop;
pub mod stream;
pub mod vocabulary;
pub mod weights;

pub use chat::ChatMessage;
pub use config::{GenerationConfig, ModelConfig};
pub use error::{Result, RillError};
pub use model::{GraphChoice, Model, ModelOptions, WeightSource};
pub use provider::Provider;
pub use session::{ContextPolicy, Generation, Session, SessionOptions, StopReason, Timings};
pub use stop::CancelToken;

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

const _: () = {
    const fn shared<T: Send + Sync>() {}
    const fn sendable<T: Send>() {}
    shared::<Model>();
    sendable::<Session>();
};
