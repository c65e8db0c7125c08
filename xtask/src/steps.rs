//! The steps under `code/` (the model is the `project` crate's): built,
//! linted and unit-tested exactly as a reader would in the step's folder.

use crate::run::{self, Result};
use crate::tools;
use project::step::{Language, Step, WASM_TARGET};
use std::process::Command;

/// Builds a step with its README's command.
pub fn build(step: &Step) -> Result {
    match step.language {
        Language::Go => tools::ensure_go()?,
        Language::Rust => tools::ensure_wasm_target()?,
    }
    let mut command = step.build_command(&step.dir);
    if step.language == Language::Rust {
        command.arg("--quiet");
    }
    run::status(command)
}

pub fn check_all() -> Result {
    for step in Step::all() {
        match step.language {
            Language::Go => check_go(&step)?,
            Language::Rust => check_rust(&step)?,
        }
    }
    // Part one's stages before step 1 (examples/first-plugin/): crates
    // like the steps, built and linted the same way.
    let stages = project::listings::part_one_stages();
    for dir in &stages[..stages.len().saturating_sub(1)] {
        let name = project::listings::stage_name(dir);
        check_rust(&Step {
            name: format!("examples/first-plugin/{name}"),
            dir: dir.clone(),
            language: Language::Rust,
        })?;
    }
    Ok(())
}

fn check_rust(step: &Step) -> Result {
    run::step(&format!(
        "{}: build ({WASM_TARGET}, release), clippy, fmt, unit tests",
        step.name
    ));
    build(step)?;
    let clippy = [
        "clippy",
        "--quiet",
        "--locked",
        "--all-targets",
        "--release",
        "--target",
        WASM_TARGET,
        "--",
        "-D",
        "warnings",
    ];
    run::cargo(&clippy, Some(&step.dir))?;
    run::cargo(&["fmt", "--check"], Some(&step.dir))?;
    // The unit tests run on the host: they cover the pure logic, the live
    // tests cover the host calls.
    run::cargo(&["test", "--quiet", "--locked"], Some(&step.dir))
}

fn check_go(step: &Step) -> Result {
    run::step(&format!(
        "{}: go build (wasip1/wasm), gofmt, go vet, go test",
        step.name
    ));
    build(step)?;
    let mut gofmt = Command::new("gofmt");
    gofmt.args(["-l", "."]).current_dir(&step.dir);
    let unformatted = run::output(gofmt)?;
    if !unformatted.trim().is_empty() {
        return Err(format!("gofmt would change: {}", unformatted.trim()));
    }
    run::status(go(step, &["vet", "./..."]))?;
    // Host tests with the SDK's proxytest emulator.
    run::status(go(step, &["test", "./..."]))
}

fn go(step: &Step, args: &[&str]) -> Command {
    let mut command = Command::new("go");
    command.args(args).current_dir(&step.dir);
    command
}
