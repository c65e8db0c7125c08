//! The tutorial's steps: every folder under `code/` with a Cargo.toml (Rust)
//! or a go.mod (Go) is one, found by listing the folder, so a new step needs
//! no change here.

use crate::paths;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Every step folder under `code/`, sorted.
pub fn all_steps() -> Vec<String> {
    let mut steps: Vec<String> = std::fs::read_dir(paths::repo_root().join("code"))
        .expect("read code/")
        .filter_map(Result::ok)
        .filter(|entry| is_rust(&entry.path()) || is_go(&entry.path()))
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    steps.sort();
    steps
}

pub fn is_rust(dir: &Path) -> bool {
    dir.join("Cargo.toml").is_file()
}

pub fn is_go(dir: &Path) -> bool {
    dir.join("go.mod").is_file()
}

static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// Builds a step in its folder (a no-op when up to date) and returns the
/// path of its `.wasm`.
pub fn build(step: &str) -> PathBuf {
    let _one_at_a_time = BUILD_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = paths::repo_root().join("code").join(step);
    build_in(&dir, step, &dir.join("target"))
}

/// Builds the step whose sources are in `dir` with the command the book
/// gives, and returns the path of the `.wasm`:
/// Rust: `cargo build --target wasm32-wasip1 --release` (lands in
/// `target/wasm32-wasip1/release/<crate_name>.wasm`);
/// Go: `GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o <step>.wasm .`.
/// Rust builds use `target_dir` as CARGO_TARGET_DIR.
pub fn build_in(dir: &Path, step: &str, target_dir: &Path) -> PathBuf {
    let (mut command, wasm) = if is_go(dir) {
        let mut command = Command::new("go");
        command
            .args(["build", "-buildmode=c-shared", "-o"])
            .arg(format!("{step}.wasm"))
            .arg(".")
            .env("GOOS", "wasip1")
            .env("GOARCH", "wasm");
        (command, dir.join(format!("{step}.wasm")))
    } else {
        let mut command = Command::new(env!("CARGO"));
        command
            .args(["build", "--quiet", "--target", "wasm32-wasip1", "--release"])
            .env("CARGO_TARGET_DIR", target_dir);
        let file = format!("{}.wasm", step.replace('-', "_"));
        (command, target_dir.join("wasm32-wasip1/release").join(file))
    };
    let output = command
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the build of {step} ({command:?}): {e}"));
    assert!(
        output.status.success(),
        "building {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        wasm.is_file(),
        "{step}: no {} after the build",
        wasm.display()
    );
    wasm
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
