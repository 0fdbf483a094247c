//! An application-chosen ONNX Runtime path is used first (its own process: the library is
//! loaded once per process).

mod common;

use std::path::Path;

#[test]
fn the_library_is_loaded_from_the_path_the_application_sets() {
    let found = rill::ort_env::locate(rill::ort_env::candidate_paths()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("libonnxruntime.so");
    std::fs::copy(&found, &copy).unwrap();
    rill::ort_env::set_library_path(&copy).unwrap();
    let model = common::default_model();
    assert_eq!(rill::ort_env::loaded_from(), Some(copy.as_path()));
    assert!(model.tokenize("In the beginning").is_ok());
    let late = rill::ort_env::set_library_path(Path::new("/elsewhere/libonnxruntime.so"));
    assert!(late.unwrap_err().to_string().contains("already loaded"));
}
