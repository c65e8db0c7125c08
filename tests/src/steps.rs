//! Building the steps for the tests, with the commands their READMEs give
//! (from the step model in the `project` crate).

use crate::paths;
use project::step::{Language, Step};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The names of every step folder under `code/`, sorted.
pub fn all_steps() -> Vec<String> {
    Step::all().into_iter().map(|step| step.name).collect()
}

fn step(name: &str) -> Step {
    Step::named(name).unwrap_or_else(|why| panic!("{why}"))
}

static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// Builds a step in its folder (a no-op when up to date) and returns the
/// path of its `.wasm`.
pub fn build(name: &str) -> PathBuf {
    let _one_at_a_time = BUILD_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let step = step(name);
    let target = step.dir.join("target");
    build_in(&step.dir.clone(), name, &target)
}

/// Builds the step `name` whose sources are in `dir` (its folder or a copy)
/// with its README's command, Rust builds using `target_dir` as
/// CARGO_TARGET_DIR, and returns the path of the `.wasm`.
pub fn build_in(dir: &Path, name: &str, target_dir: &Path) -> PathBuf {
    let step = step(name);
    let mut command = step.build_command(dir);
    let wasm = match step.language {
        Language::Rust => {
            command.arg("--quiet").env("CARGO_TARGET_DIR", target_dir);
            target_dir
                .join(project::step::WASM_TARGET)
                .join("release")
                .join(step.wasm_file_name())
        }
        Language::Go => dir.join(step.wasm_relative_path()),
    };
    run_build(command, &wasm, &dir.display().to_string());
    wasm
}

/// Runs a build and checks that it made `wasm`; `what` names it in failures.
fn run_build(mut command: Command, wasm: &Path, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run the build of {what} ({command:?}): {e}"));
    assert!(
        output.status.success(),
        "building {what} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        wasm.is_file(),
        "{what}: no {} after the build",
        wasm.display()
    );
}

/// Builds a binary of this workspace (the auth service) once per test
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

/// Builds a plugin of this workspace (`support/shared-data-writer`) for
/// Wasm, in release, and returns its `.wasm`.
pub fn workspace_wasm(package: &str) -> PathBuf {
    let _one_at_a_time = BUILD_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--release", "--package", package])
        .args(["--target", project::step::WASM_TARGET])
        .current_dir(paths::repo_root())
        .status()
        .expect("run cargo");
    assert!(status.success(), "building {package} failed");
    paths::repo_root()
        .join("target")
        .join(project::step::WASM_TARGET)
        .join("release")
        .join(format!("{}.wasm", package.replace('-', "_")))
}

/// Builds the Cargo example `example` of a Rust step (a second plugin in
/// the step's folder) as its README says, and returns its `.wasm`.
pub fn build_example(name: &str, example: &str) -> PathBuf {
    let _one_at_a_time = BUILD_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let step = step(name);
    let mut command = step.build_command(&step.dir);
    command.args(["--quiet", "--example", example]);
    let wasm = step
        .dir
        .join("target")
        .join(project::step::WASM_TARGET)
        .join("release/examples")
        .join(format!("{}.wasm", example.replace('-', "_")));
    run_build(command, &wasm, &format!("{name}'s example {example}"));
    wasm
}
