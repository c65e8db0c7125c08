//! The step crates under `code/`: built, linted and unit-tested exactly as a
//! reader would in the step's own folder.

use crate::run::{self, root};
use crate::tools::WASM_TARGET;
use crate::Result;
use std::path::PathBuf;

/// Every folder under `code/` with a Cargo.toml, sorted.
pub fn rust_steps() -> Vec<PathBuf> {
    let mut steps: Vec<PathBuf> = std::fs::read_dir(root().join("code"))
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok())
                .map(|entry| entry.path())
                .filter(|path| path.join("Cargo.toml").is_file())
                .collect()
        })
        .unwrap_or_default();
    steps.sort();
    steps
}

pub fn build(step: &std::path::Path) -> Result {
    run::cargo(
        &["build", "--quiet", "--release", "--target", WASM_TARGET],
        Some(step),
    )
}

pub fn check_all() -> Result {
    for step in rust_steps() {
        let name = step
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        run::step(&format!(
            "{name}: build ({WASM_TARGET}, release), clippy, fmt, unit tests"
        ));
        build(&step)?;
        run::cargo(
            &[
                "clippy",
                "--quiet",
                "--release",
                "--target",
                WASM_TARGET,
                "--",
                "-D",
                "warnings",
            ],
            Some(&step),
        )?;
        run::cargo(&["fmt", "--check"], Some(&step))?;
        // The unit tests run on the host: they cover the pure logic, the
        // live tests cover the host calls.
        run::cargo(&["test", "--quiet"], Some(&step))?;
    }
    Ok(())
}
