//! The steps under `code/`: Rust crates (a Cargo.toml) and Go modules (a
//! go.mod), built, linted and unit-tested exactly as a reader would in the
//! step's own folder.

use crate::run::{self, root};
use crate::tools::{self, WASM_TARGET};
use crate::Result;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every folder under `code/` with a Cargo.toml or a go.mod, sorted.
pub fn all_steps() -> Vec<PathBuf> {
    let mut steps: Vec<PathBuf> = std::fs::read_dir(root().join("code"))
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok())
                .map(|entry| entry.path())
                .filter(|path| is_rust(path) || is_go(path))
                .collect()
        })
        .unwrap_or_default();
    steps.sort();
    steps
}

fn is_rust(step: &Path) -> bool {
    step.join("Cargo.toml").is_file()
}

fn is_go(step: &Path) -> bool {
    step.join("go.mod").is_file()
}

fn name(step: &Path) -> String {
    step.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub fn build(step: &Path) -> Result {
    if is_go(step) {
        tools::ensure_go()?;
        return run::status(go_build_command(step));
    }
    tools::ensure_wasm_target()?;
    run::cargo(
        &["build", "--quiet", "--release", "--target", WASM_TARGET],
        Some(step),
    )
}

/// The book's Go build command; the module lands in `<step>/<step>.wasm`.
fn go_build_command(step: &Path) -> Command {
    let mut command = go(step, &["build", "-buildmode=c-shared", "-o"]);
    command.arg(format!("{}.wasm", name(step))).arg(".");
    command.env("GOOS", "wasip1").env("GOARCH", "wasm");
    command
}

fn go(step: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("go");
    command.args(args).current_dir(step);
    command
}

pub fn check_all() -> Result {
    for step in all_steps() {
        if is_go(&step) {
            check_go(&step)?;
        } else {
            check_rust(&step)?;
        }
    }
    Ok(())
}

fn check_rust(step: &Path) -> Result {
    run::step(&format!(
        "{}: build ({WASM_TARGET}, release), clippy, fmt, unit tests",
        name(step)
    ));
    build(step)?;
    let clippy = [
        "clippy",
        "--quiet",
        "--release",
        "--target",
        WASM_TARGET,
        "--",
        "-D",
        "warnings",
    ];
    run::cargo(&clippy, Some(step))?;
    run::cargo(&["fmt", "--check"], Some(step))?;
    // The unit tests run on the host: they cover the pure logic, the live
    // tests cover the host calls.
    run::cargo(&["test", "--quiet"], Some(step))
}

fn check_go(step: &Path) -> Result {
    run::step(&format!(
        "{}: go build (wasip1/wasm), gofmt, go vet, go test",
        name(step)
    ));
    build(step)?;
    let mut gofmt = Command::new("gofmt");
    gofmt.args(["-l", "."]).current_dir(step);
    let unformatted = run::output(gofmt)?;
    if !unformatted.trim().is_empty() {
        return Err(format!("gofmt would change: {}", unformatted.trim()));
    }
    run::status(go(step, &["vet", "./..."]))?;
    // Host tests with the SDK's proxytest emulator.
    run::status(go(step, &["test", "./..."]))
}
