//! The tutorial's steps: every folder under `code/` is one, found by listing
//! the folder, so a new step needs no change here.

use crate::paths;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// Every step folder under `code/` that holds a Rust crate.
pub fn rust_steps() -> Vec<String> {
    let mut steps: Vec<String> = std::fs::read_dir(paths::repo_root().join("code"))
        .expect("read code/")
        .filter_map(Result::ok)
        .filter(|entry| entry.path().join("Cargo.toml").is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    steps.sort();
    steps
}

/// `step-1-auth` -> `step_1_auth.wasm`, as Cargo names a cdylib.
pub fn wasm_file_name(step: &str) -> String {
    format!("{}.wasm", step.replace('-', "_"))
}

static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// Builds a step to wasm32-wasip1 in release (a no-op when up to date) and
/// returns the path of its `.wasm`.
pub fn build(step: &str) -> PathBuf {
    let _one_at_a_time = BUILD_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = paths::repo_root().join("code").join(step);
    run_cargo_build(&dir, &dir.join("target"));
    dir.join("target/wasm32-wasip1/release")
        .join(wasm_file_name(step))
}

/// `cargo build --target wasm32-wasip1 --release` in `dir`, as the book says.
pub fn run_cargo_build(dir: &std::path::Path, target_dir: &std::path::Path) {
    let output = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--target", "wasm32-wasip1", "--release"])
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(dir)
        .output()
        .expect("run cargo");
    assert!(
        output.status.success(),
        "building {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Builds a binary of this workspace (backend, auth service) once per test
/// process and returns its path.
pub fn workspace_binary(package: &str) -> PathBuf {
    let _one_at_a_time = BUILD_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--package", package])
        .current_dir(paths::repo_root())
        .status()
        .expect("run cargo");
    assert!(status.success(), "building {package} failed");
    paths::workspace_bin(package)
}
