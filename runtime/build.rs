//! Reads the ONNX Runtime pin from the workspace Cargo.toml (its one place), so the
//! runtime looks for the library version that `make venv` installs.

fn main() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    println!("cargo:rerun-if-changed={manifest}");
    let text = std::fs::read_to_string(manifest).expect("workspace Cargo.toml");
    let version = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("onnxruntime-wheel"))
        .and_then(|rest| rest.split('"').nth(1))
        .expect("[workspace.metadata.onnxruntime] onnxruntime-wheel in Cargo.toml");
    println!("cargo:rustc-env=RILL_ORT_VERSION={version}");
}
