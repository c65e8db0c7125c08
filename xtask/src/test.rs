//! `cargo xtask test`: the doc CI as stages that run in order, or one at a
//! time with `--only <stage>`. Each stage installs only what it needs.

use crate::run::{self, Result};
use crate::{bench, book, steps, tools};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    /// The book's sources: includes name existing files and anchors, no pasted Rust
    Sources,
    /// Every step built, linted and unit-tested as its README says
    Steps,
    /// The tooling workspace: rustfmt and clippy
    Lint,
    /// The live-Envoy harness (outputs compared with src/captured/)
    Harness,
    /// The benchmark in quick mode
    Bench,
    /// The book built (no warnings, links checked) and opened in headless Chromium
    Book,
}

const ALL: [Stage; 6] = [
    Stage::Sources,
    Stage::Steps,
    Stage::Lint,
    Stage::Harness,
    Stage::Bench,
    Stage::Book,
];

pub fn run(only: Option<Stage>) -> Result {
    let stages: Vec<Stage> = match only {
        Some(stage) => vec![stage],
        None => ALL.to_vec(),
    };
    let before = run::tree_state()?;
    if before.is_none() {
        run::step("not a git checkout: the check that this run changes no file cannot be made");
    }
    // On a new machine the book's tools take minutes to build: when the
    // book stage is to run after others, they build while those run.
    let mut book_tools = match stages.first() {
        Some(first) if *first != Stage::Book && stages.contains(&Stage::Book) => {
            tools::start_book_tools_install()?
        }
        _ => None,
    };
    let mut totals = None;
    for stage in stages {
        match stage {
            Stage::Sources => book::check_sources()?,
            Stage::Steps => steps::check_all()?,
            Stage::Lint => lint()?,
            Stage::Harness => totals = Some(harness(&[])?),
            Stage::Bench => bench::run(true)?,
            Stage::Book => {
                if let Some(install) = book_tools.take() {
                    install.finish()?;
                }
                book::build_and_check()?;
                book::browser_check()?;
            }
        }
    }
    // A test run compares; it must not have changed, added or removed any
    // file git would see (build output is ignored).
    let after = run::tree_state()?;
    if after != before {
        return Err(format!(
            "the test run changed the working tree: a test compares, only `cargo xtask capture` \
             rewrites. Before:\n{}\nAfter:\n{}",
            before.unwrap_or_default(),
            after.unwrap_or_default()
        ));
    }
    // The harness totals last, as the run's closing line.
    if let Some((passed, failed)) = totals {
        println!("harness: {passed} passed, {failed} failed");
    }
    Ok(())
}

fn lint() -> Result {
    run::step("checking the tooling workspace (fmt, clippy)");
    run::cargo(&["fmt", "--all", "--check"], None)?;
    run::cargo(
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--quiet",
            "--",
            "-D",
            "warnings",
        ],
        None,
    )
}

/// What the harness needs: the target for the steps, Envoy, curl, Go, and
/// step 5's rate limit service and Redis.
pub fn ensure_harness_tools() -> Result {
    tools::ensure_wasm_target()?;
    tools::ensure_envoy()?;
    tools::ensure_go()?;
    tools::ensure_rate_limit_services()?;
    project::require_command("curl", "the check scripts use it: apt-get install curl")
}

/// The live tests, then the host-compatibility page compared with what
/// they recorded. Two test threads: each test runs its own Envoy, and this
/// is a 2-core machine.
pub fn harness(env: &[(&str, &str)]) -> Result<(u64, u64)> {
    ensure_harness_tools()?;
    // What this run records for the stages after it starts empty.
    let this_run = project::this_run_dir();
    if this_run.exists() {
        std::fs::remove_dir_all(&this_run).map_err(|e| format!("{}: {e}", this_run.display()))?;
    }
    run::step("running the live-Envoy harness and the tooling's own tests (cargo test)");
    let mut command = run::cargo_command(
        &[
            "test",
            "--locked",
            "--no-fail-fast",
            "--package",
            "harness",
            "--package",
            "project",
            "--package",
            "auth-service",
            "--package",
            "xtask",
            "--package",
            "compat",
            "--",
            "--test-threads",
            "2",
        ],
        None,
    );
    command.env("ENVOY", project::envoy::binary()?);
    // Captures are rewritten only when `capture` asks for it, never because
    // the caller's environment happens to set the variable.
    command.env_remove("UPDATE_CAPTURES");
    for (key, value) in env {
        command.env(key, value);
    }
    let (passed, failed) = run::cargo_test_totals(command)?;
    if failed > 0 || passed == 0 {
        println!("harness: {passed} passed, {failed} failed");
        return Err("the harness did not pass".into());
    }
    run::step("comparing the host-compatibility page with this run (compat --check)");
    let mut check = run::workspace_program("compat");
    check.arg("--check").env("ENVOY", project::envoy::binary()?);
    run::status(check)?;
    Ok((passed, failed))
}
