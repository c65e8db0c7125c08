//! Running commands and saying what is happening: a first run installs tools
//! for minutes, and that must never look like a hang.

use crate::Result;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (xtask lives in `<root>/xtask`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ has a parent directory")
        .to_path_buf()
}

pub fn step(what: &str) {
    eprintln!("==> {what}");
}

pub fn status(mut command: Command) -> Result {
    let status = command
        .status()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed ({status})"))
    }
}

pub fn output(mut command: Command) -> Result<String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `cargo <args>` in `dir` (default: the repository root).
pub fn cargo_command(args: &[&str], dir: Option<&Path>) -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.args(args).current_dir(dir.map_or_else(root, Path::to_path_buf));
    command
}

pub fn cargo(args: &[&str], dir: Option<&Path>) -> Result {
    status(cargo_command(args, dir))
}
