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
        Language::Rust => match project::step::pinned_toolchain(&step.dir) {
            Some(_) => tools::ensure_pinned_toolchain(&step.dir)?,
            None => tools::ensure_wasm_target()?,
        },
    }
    let mut command = step.build_command(&step.dir);
    if step.language == Language::Rust {
        command.arg("--quiet");
    }
    run::status(command)
}

pub fn check_all() -> Result {
    let undescribed = project::step::undescribed_folders();
    if !undescribed.is_empty() {
        return Err(format!(
            "code/{} has no description: add one to DESCRIPTIONS in project/src/step.rs \
             (README.md, \"Adding a step\")",
            undescribed.join(", code/")
        ));
    }
    for step in Step::all() {
        check_one(&step)?;
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

/// One step built, linted and unit-tested as a reader would.
pub fn check_one(step: &Step) -> Result {
    match step.language {
        Language::Go => check_go(step),
        Language::Rust => check_rust(step),
    }
}

/// `cargo xtask step NAME`: one step as `cargo xtask test` checks it,
/// without the others: built, linted and unit-tested; its own row of the
/// benchmark in quick mode; and its check script on the pinned Envoy,
/// Loom and the host libraries, written into the compatibility page
/// (`compat --step`). What a new step needs before `cargo xtask test`.
pub fn one(name: &str) -> Result {
    if project::step::undescribed_folders()
        .iter()
        .any(|f| f == name)
    {
        return Err(format!(
            "code/{name} has no description: add one to DESCRIPTIONS in project/src/step.rs"
        ));
    }
    let step = Step::named(name)?;
    check_one(&step)?;
    crate::bench::run(true, None, false, Some(name))?;
    crate::compat::run(Some(name))
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
    let cargo = |args: &[&str]| {
        let mut command = project::step::cargo_in(&step.dir);
        command.args(args);
        // The steps' tests on the host share one target directory: the
        // host library the in-process tests use is built once for all.
        command.env(
            "CARGO_TARGET_DIR",
            project::repo_root().join("target/steps-host"),
        );
        run::status(command)
    };
    cargo(&clippy)?;
    cargo(&["fmt", "--check"])?;
    // On the host: the unit tests (the pure logic) and, where a folder has
    // them, the in-process tests (the release module in a host library).
    // The tests run on the host, so they are linted there, by the same
    // build: clippy-driver compiles the step's own crate (cargo gives
    // RUSTC_WORKSPACE_WRAPPER to workspace members only) and reports what
    // `cargo clippy --tests -- -D warnings` would, while the dependencies
    // build once, for the tests. A separate `cargo clippy --tests` would
    // check every dependency a second time, the host library's wasmtime
    // included.
    let mut test = project::step::host_test_cargo(&step.dir)?;
    test.args(["test", "--quiet", "--locked"]);
    run::status(test)
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
