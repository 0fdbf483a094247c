//! A folder with two graphs of the same weights: `model.onnx` (Hugging Face convention)
//! and the fused-attention `model.gqa.onnx` beside it. Which one opens for each
//! [`GraphChoice`], the errors, and the bundled default model's second graph.

mod common;

use rill::kv_cache::Layout;
use rill::{GraphChoice, Model, ModelOptions, RillError};

fn open(dir: &std::path::Path, graph: GraphChoice) -> rill::Result<Model> {
    Model::open(
        dir,
        &ModelOptions {
            graph,
            ..Default::default()
        },
    )
}

#[test]
fn the_trainer_and_the_runtime_name_the_fused_graph_alike() {
    assert_eq!(
        rill::graph::FUSED_GRAPH_FILE,
        rill_trainer::onnx::FUSED_GRAPH_FILE
    );
}

#[test]
fn each_choice_opens_its_graph_on_the_default_model() {
    let dir = common::default_model_dir();
    for (choice, file, layout) in [
        (GraphChoice::Auto, "model.gqa.onnx", Layout::Shared),
        (GraphChoice::Fused, "model.gqa.onnx", Layout::Shared),
        (GraphChoice::Plain, "model.onnx", Layout::DoubleBuffered),
    ] {
        let model = open(&dir, choice).unwrap();
        assert_eq!(model.graph_file(), dir.join(file), "{choice:?}");
        assert_eq!(model.graph().cache_layout, layout, "{choice:?}");
    }
}

#[test]
fn the_bundled_fused_graph_is_what_the_exporter_writes_today() {
    // A stale model.gqa.onnx (an exporter change not carried into models/) fails here:
    // `rill-train export --from models/rill-tiny --attention both` rewrites both graphs.
    let (_tmp, dir) = common::copy_default_model();
    rill_trainer::onnx::export_folder_with(&dir, rill_trainer::onnx::Graphs::Both).unwrap();
    for file in ["model.onnx", "model.gqa.onnx"] {
        let bundled = std::fs::read(common::default_model_dir().join(file)).unwrap();
        let written = std::fs::read(dir.join(file)).unwrap();
        assert!(bundled == written, "models/rill-tiny/{file} is stale");
    }
}

#[test]
fn a_folder_without_a_fused_graph_runs_model_onnx_unless_the_fused_one_is_required() {
    let (_tmp, dir) = common::copy_default_model();
    let auto = open(&dir, GraphChoice::Auto).unwrap();
    assert_eq!(auto.graph_file(), dir.join("model.onnx"));
    assert_eq!(auto.graph().cache_layout, Layout::DoubleBuffered);
    match open(&dir, GraphChoice::Fused) {
        Err(e @ RillError::NoFusedGraph(_)) => {
            let message = e.to_string();
            assert!(message.contains("model.gqa.onnx"), "{message}");
            assert!(message.contains("--attention both"), "{message}");
        }
        other => panic!("expected NoFusedGraph, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn the_plain_choice_needs_model_onnx_even_beside_a_fused_graph() {
    let (_tmp, dir) = common::copy_default_model();
    rill_trainer::onnx::export_folder_with(&dir, rill_trainer::onnx::Graphs::Both).unwrap();
    std::fs::remove_file(dir.join("model.onnx")).unwrap();
    assert!(matches!(
        open(&dir, GraphChoice::Plain),
        Err(RillError::MissingFile(p)) if p == dir.join("model.onnx")
    ));
    // The fused graph alone still opens.
    let auto = open(&dir, GraphChoice::Auto).unwrap();
    assert_eq!(auto.graph().cache_layout, Layout::Shared);
}

#[test]
fn a_plain_export_removes_a_fused_graph_left_from_before() {
    // The old fused graph may point at weights of another layout: it must not outlive the
    // export that replaced model.onnx.
    let (_tmp, dir) = common::copy_default_model();
    rill_trainer::onnx::export_folder_with(&dir, rill_trainer::onnx::Graphs::Both).unwrap();
    assert!(dir.join("model.gqa.onnx").exists());
    rill_trainer::onnx::export_folder_with(&dir, rill_trainer::onnx::Graphs::Hf).unwrap();
    assert!(!dir.join("model.gqa.onnx").exists());
    let model = open(&dir, GraphChoice::Auto).unwrap();
    assert_eq!(model.graph_file(), dir.join("model.onnx"));
}

#[test]
fn both_graphs_give_the_same_greedy_tokens_on_the_default_model() {
    let dir = common::default_model_dir();
    let config = rill::GenerationConfig {
        max_new_tokens: Some(40),
        do_sample: Some(false),
        eos_token_id: Some(rill::config::OneOrMany::Many(vec![])),
        ..Default::default()
    };
    let run = |choice| {
        let model = std::sync::Arc::new(open(&dir, choice).unwrap());
        let prompt = model.tokenize(common::PROMPTS[0]).unwrap();
        let mut s = rill::Session::new(model, Default::default()).unwrap();
        s.set_generation_config(config.clone()).unwrap();
        s.generate_ids(&prompt, |_| true).unwrap().tokens
    };
    let fused = run(GraphChoice::Auto);
    assert_eq!(fused.len(), 40);
    assert_eq!(fused, run(GraphChoice::Plain));
}
