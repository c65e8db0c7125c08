//! The repository as the commands and the tests see it: where it is, which
//! steps it holds and how each is built and run, where the installed tools
//! are, and the ports the book's configurations use. `cargo xtask` and the
//! harness both read it from here, so they cannot disagree.

pub mod envoy;
pub mod ports;
pub mod rate_limit;
pub mod step;

use std::path::{Path, PathBuf};

/// The repository root (this crate lives in `<root>/project`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("project/ has a parent directory")
        .to_path_buf()
}

/// `.tools/`: everything the project installs for itself.
pub fn tools_dir() -> PathBuf {
    repo_root().join(".tools")
}

/// Whether `name --version` runs and succeeds.
pub fn command_works(name: &str) -> bool {
    std::process::Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// `Err` naming the command and how to get it when it does not run.
pub fn require_command(name: &str, hint: &str) -> Result<(), String> {
    if command_works(name) {
        Ok(())
    } else {
        Err(format!("`{name}` was not found; {hint}"))
    }
}
