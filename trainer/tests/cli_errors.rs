//! Bad input to `rill-train`: each a clear message and a failing exit status.

use std::path::Path;
use std::process::Command;

fn rill_train(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rill-train"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn train_args<'a>(corpus: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--corpus",
        corpus,
        "--out",
        out,
        "--steps",
        "2",
        "--preset",
        "test",
        "--vocab-size",
        "300",
        "--quiet",
    ]
}

#[test]
fn missing_corpus_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m");
    let (ok, err) = rill_train(&train_args(
        "/nonexistent/corpus.txt",
        out.to_str().unwrap(),
    ));
    assert!(!ok);
    assert!(
        err.contains("cannot read corpus `/nonexistent/corpus.txt`"),
        "{err}"
    );
}

#[test]
fn empty_corpus_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("empty.txt");
    std::fs::write(&corpus, "\n  \n\n").unwrap();
    let out = dir.path().join("m");
    let (ok, err) = rill_train(&train_args(corpus.to_str().unwrap(), out.to_str().unwrap()));
    assert!(!ok);
    assert!(err.contains("is empty"), "{err}");
}

#[test]
fn too_small_vocab_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("c.txt");
    std::fs::write(&corpus, "one line\n".repeat(100)).unwrap();
    let out = dir.path().join("m");
    let mut args = train_args(corpus.to_str().unwrap(), out.to_str().unwrap());
    let at = args.iter().position(|a| *a == "300").unwrap();
    args[at] = "100";
    let (ok, err) = rill_train(&args);
    assert!(!ok);
    assert!(err.contains("vocab size 100 is too small"), "{err}");
}

#[test]
fn existing_output_folder_needs_force() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("c.txt");
    let text: String = (0..200)
        .map(|i| format!("document number {i} says the earth is round\n"))
        .collect();
    std::fs::write(&corpus, text).unwrap();
    let out = dir.path().join("m");
    std::fs::create_dir(&out).unwrap();
    let args = train_args(corpus.to_str().unwrap(), out.to_str().unwrap());
    let (ok, err) = rill_train(&args);
    assert!(!ok);
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    let mut forced = args.clone();
    forced.push("--force");
    let (ok, err) = rill_train(&forced);
    assert!(ok, "{err}");
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
        "training_log.jsonl",
        "loss_curve.png",
    ] {
        assert!(Path::new(&out).join(f).exists(), "{f} written");
    }
}

#[test]
fn corrupt_checkpoint_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m");
    let (ok, err) = rill_train(&[
        "init",
        "--out",
        out.to_str().unwrap(),
        "--vocab-size",
        "300",
    ]);
    assert!(ok, "{err}");
    let st = out.join("model.safetensors");
    let bytes = std::fs::read(&st).unwrap();
    std::fs::write(&st, &bytes[..bytes.len() / 2]).unwrap();
    let (ok, err) = rill_train(&["logits", "--model", out.to_str().unwrap(), "--ids", "0,1,2"]);
    assert!(!ok);
    assert!(err.contains("corrupt or truncated safetensors"), "{err}");
    std::fs::write(&st, b"garbage").unwrap();
    let (ok, err) = rill_train(&["sample", "--model", out.to_str().unwrap(), "--prompt", "x"]);
    assert!(!ok);
    assert!(err.contains("model.safetensors"), "{err}");
}
