//! Helpers shared by the runtime's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rill::{Model, ModelOptions};

/// The bundled default model.
pub fn default_model_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/rill-tiny");
    assert!(
        dir.join("model.onnx").exists(),
        "{} is missing: run `make model`",
        dir.display()
    );
    dir
}

/// The default model, opened with default options (its fused-attention graph,
/// `model.gqa.onnx`).
pub fn default_model() -> Arc<Model> {
    Arc::new(
        Model::open(default_model_dir(), &ModelOptions::default()).expect("default model opens"),
    )
}

/// The default model on its plain Hugging Face graph, `model.onnx`.
pub fn plain_default_model() -> Arc<Model> {
    let options = ModelOptions {
        graph: rill::GraphChoice::Plain,
        ..Default::default()
    };
    Arc::new(Model::open(default_model_dir(), &options).expect("default model opens"))
}

/// A copy of the default model folder in a temporary directory, with its plain graph
/// only (no `model.gqa.onnx`: what is done to `model.onnx` is what the copy runs).
pub fn copy_default_model() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("model");
    std::fs::create_dir(&dst).unwrap();
    for entry in std::fs::read_dir(default_model_dir()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != rill::graph::FUSED_GRAPH_FILE {
            std::fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
        }
    }
    (tmp, dst)
}

/// Prompts used across tests.
pub const PROMPTS: [&str; 3] = [
    "In the beginning God created",
    "The function returns a",
    "And the king said unto",
];
