//! Finding and loading the ONNX Runtime shared library once per process.
//!
//! rill loads the official library shipped in the pinned `onnxruntime` wheel at run time
//! (`ort` with `load-dynamic`). It looks, in order, at a path the application set with
//! [`set_library_path`] (`rill_set_onnxruntime_path`: apps that ship the library in their
//! own bundle, e.g. on Android), `ORT_DYLIB_PATH`, next to the running executable, and
//! where `make venv` installs the wheel in this source tree.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::error::{Result, RillError};

/// The onnxruntime wheel version this build is made for (Cargo.toml's pin, read by
/// build.rs).
pub const ORT_VERSION: &str = env!("RILL_ORT_VERSION");

static ENVIRONMENT: OnceLock<std::result::Result<ort::environment::Environment, String>> =
    OnceLock::new();
static LOADED_FROM: OnceLock<PathBuf> = OnceLock::new();
static EXPLICIT: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Makes `path` the first place rill loads ONNX Runtime from. Must come before the first
/// model is opened: once the library is loaded it is an error naming where it came from.
pub fn set_library_path(path: &Path) -> Result<()> {
    let mut explicit = EXPLICIT.lock().unwrap_or_else(|p| p.into_inner());
    if ENVIRONMENT.get().is_some() {
        return Err(RillError::InvalidArgument(format!(
            "ONNX Runtime is already loaded{}; set its path before opening the first model",
            loaded_from()
                .map(|p| format!(" from `{}`", p.display()))
                .unwrap_or_default()
        )));
    }
    *explicit = Some(path.to_path_buf());
    Ok(())
}

fn library_names() -> Vec<String> {
    vec![
        format!("libonnxruntime.so.{ORT_VERSION}"),
        "libonnxruntime.so.1".into(),
        "libonnxruntime.so".into(),
        "libonnxruntime.dylib".into(),
        "onnxruntime.dll".into(),
    ]
}

/// The places searched for the library, in order.
pub fn candidate_paths() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = EXPLICIT.lock().unwrap_or_else(|p| p.into_inner()).clone() {
        out.push(p);
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        out.push(PathBuf::from(p));
    }
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(dir.clone());
        // Test and example binaries live one level below target/<profile>/.
        if let Some(parent) = dir.parent() {
            dirs.push(parent.to_path_buf());
        }
    }
    let tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if let Ok(entries) = std::fs::read_dir(tree.join(".venv/lib")) {
        for python in entries.flatten() {
            dirs.push(python.path().join("site-packages/onnxruntime/capi"));
        }
    }
    for dir in dirs {
        for name in library_names() {
            out.push(dir.join(name));
        }
    }
    out
}

/// The first of `candidates` that is a file, or an error listing them all.
pub fn locate(candidates: Vec<PathBuf>) -> Result<PathBuf> {
    match candidates.iter().find(|p| p.is_file()) {
        Some(p) => Ok(p.clone()),
        None => Err(RillError::OrtNotFound {
            searched: candidates,
            version: ORT_VERSION,
        }),
    }
}

/// The process-wide ONNX Runtime environment, loading the library on first use.
pub fn environment() -> Result<&'static ort::environment::Environment> {
    let env = ENVIRONMENT.get_or_init(|| {
        let searched = candidate_paths();
        let Some(path) = searched.iter().find(|p| p.is_file()).cloned() else {
            return Err(RillError::OrtNotFound {
                searched,
                version: ORT_VERSION,
            }
            .to_string());
        };
        let load = || -> std::result::Result<ort::environment::Environment, String> {
            let builder = ort::init_from(&path).map_err(|e| e.to_string())?;
            builder.with_name("rill").build().map_err(|e| e.to_string())
        };
        match std::panic::catch_unwind(load) {
            Ok(Ok(env)) => {
                let _ = LOADED_FROM.set(path);
                Ok(env)
            }
            Ok(Err(message)) => Err(RillError::OrtLoad { path, message }.to_string()),
            Err(_) => Err(RillError::OrtLoad {
                path,
                message: "the library panicked while loading".into(),
            }
            .to_string()),
        }
    });
    env.as_ref().map_err(|m| RillError::Ort(m.clone()))
}

/// Where the library was loaded from, once loaded.
pub fn loaded_from() -> Option<&'static Path> {
    LOADED_FROM.get().map(PathBuf::as_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_error_lists_where_it_looked_and_how_to_fix_it() {
        let tried = vec![
            PathBuf::from("/nowhere/libonnxruntime.so"),
            PathBuf::from("/also/not/here.so"),
        ];
        let message = locate(tried).unwrap_err().to_string();
        assert!(
            message.contains("/nowhere/libonnxruntime.so") && message.contains("/also/not/here.so"),
            "{message}"
        );
        assert!(
            message.contains("ORT_DYLIB_PATH") && message.contains(ORT_VERSION),
            "{message}"
        );
    }

    #[test]
    fn the_application_path_then_ort_dylib_path_are_searched_first() {
        std::env::set_var("ORT_DYLIB_PATH", "/custom/libonnxruntime.so");
        let first = candidate_paths().remove(0);
        set_library_path(Path::new("/app/lib/libonnxruntime.so")).unwrap();
        let with_app = candidate_paths();
        *EXPLICIT.lock().unwrap() = None;
        std::env::remove_var("ORT_DYLIB_PATH");
        assert_eq!(first, PathBuf::from("/custom/libonnxruntime.so"));
        assert_eq!(with_app[0], PathBuf::from("/app/lib/libonnxruntime.so"));
        assert_eq!(with_app[1], PathBuf::from("/custom/libonnxruntime.so"));
    }
}
