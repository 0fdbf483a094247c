//! Shared pieces of rill's fuzz targets (`make fuzz`): the bundled default model, opened
//! once per fuzzing process.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// `models/rill-tiny` of the source tree.
pub fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/rill-tiny")
}

/// The default model, opened on first use (ONNX Runtime from `ORT_DYLIB_PATH` or the
/// source tree's `.venv`, as for every rill program).
pub fn model() -> Arc<rill::Model> {
    static MODEL: OnceLock<Arc<rill::Model>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let options = rill::ModelOptions {
                intra_threads: 1,
                ..Default::default()
            };
            Arc::new(rill::Model::open(model_dir(), &options).expect("the default model opens"))
        })
        .clone()
}

/// Reads the fuzzer's bytes as a little cursor.
pub struct Bytes<'a>(pub &'a [u8]);

impl<'a> Bytes<'a> {
    /// The next byte (0 when exhausted).
    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    /// The next `n` bytes (fewer when exhausted).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    /// A length-prefixed slice (length: one byte).
    pub fn slice(&mut self) -> &'a [u8] {
        let n = self.byte() as usize;
        self.take(n)
    }

    /// Whether anything is left.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
