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

#[test]
fn a_fused_graph_exported_for_fewer_positions_than_config_json_allows_is_not_run_past_them() {
    // config.json raised to 2,048 positions after the export: the fused graph's rotary
    // tables still have 1,024 rows. Auto runs model.onnx instead (which computes RoPE from
    // position_ids); the fused graph asked for caps the context at its rows.
    let (_tmp, dir) = common::copy_default_model();
    std::fs::copy(
        common::default_model_dir().join("model.gqa.onnx"),
        dir.join("model.gqa.onnx"),
    )
    .unwrap();
    let path = dir.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["max_position_embeddings"] = 2048.into();
    std::fs::write(&path, config.to_string()).unwrap();

    let auto = open(&dir, GraphChoice::Auto).unwrap();
    assert_eq!(auto.graph_file(), dir.join("model.onnx"));
    assert_eq!(auto.max_context(), 2048);

    let fused = std::sync::Arc::new(open(&dir, GraphChoice::Fused).unwrap());
    assert_eq!(fused.graph().max_positions, Some(1024));
    assert_eq!(fused.max_context(), 1024);
    let options = |context_len| rill::SessionOptions {
        context_len,
        ..Default::default()
    };
    match rill::Session::new(fused.clone(), options(2048)) {
        Err(RillError::InvalidArgument(m)) => {
            assert!(m.contains("1024") && m.contains("rotary tables"), "{m}")
        }
        other => panic!("expected InvalidArgument, got {:?}", other.map(|_| ())),
    }
    let mut whole = rill::Session::new(fused, options(0)).unwrap();
    assert_eq!(whole.context_len(), 1024);
    let prompt: Vec<u32> = (0..1100).map(|i| 3 + (i * 37) % 4000).collect();
    assert!(matches!(
        whole.forward(&prompt),
        Err(RillError::PromptTooLong { .. })
    ));
}
