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
    // The compatibility check re-runs every step's in-process tests and the
    // Java library: minutes that need no core the later stages keep busy,
    // so it runs beside them and is waited for before the run ends.
    let mut compat_check = None;
    for stage in stages {
        match stage {
            Stage::Sources => book::check_sources()?,
            Stage::Steps => steps::check_all()?,
            Stage::Lint => lint()?,
            Stage::Harness => {
                totals = Some(live_tests(&[])?);
                compat_check = Some(start_compat_check()?);
            }
            Stage::Bench => bench::run(true, None, false, None)?,
            Stage::Book => {
                if let Some(install) = book_tools.take() {
                    install.finish()?;
                }
                book::build_and_check()?;
                book::browser_check()?;
            }
        }
    }
    if let Some(check) = compat_check {
        finish_compat_check(check)?;
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
    run::step("checking the CI workflow a fork runs (actionlint, .github/workflows/)");
    let mut actionlint = std::process::Command::new(tools::ensure_actionlint()?);
    actionlint.current_dir(run::root());
    run::status(actionlint)?;
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
/// they recorded (`cargo xtask capture`'s order; `cargo xtask test` runs
/// the comparison beside its later stages).
pub fn harness(env: &[(&str, &str)]) -> Result<(u64, u64)> {
    let totals = live_tests(env)?;
    finish_compat_check(start_compat_check()?)?;
    Ok(totals)
}

/// `compat --check`, started: it compares the host-compatibility page with
/// what the live tests recorded, and runs the host libraries again.
fn start_compat_check() -> Result<CompatCheck> {
    run::step(
        "comparing the host-compatibility page with this run (compat --check, beside what follows)",
    );
    let mut check = run::workspace_program("compat");
    check.arg("--check").env("ENVOY", project::envoy::binary()?);
    check
        .spawn()
        .map(|child| CompatCheck(Some(child)))
        .map_err(|e| format!("cannot run {check:?}: {e}"))
}

/// The running `compat --check`; stopped by its PID if the run ends
/// before it is waited for (a later stage failed).
struct CompatCheck(Option<std::process::Child>);

impl Drop for CompatCheck {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn finish_compat_check(mut check: CompatCheck) -> Result {
    run::step("waiting for compat --check");
    let Some(mut child) = check.0.take() else {
        return Ok(());
    };
    let status = child.wait().map_err(|e| format!("compat --check: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("compat --check failed ({status})"))
    }
}

/// The live tests alone. They run in two lanes side by side: the reader's tests (they
/// compile a reader's folders and use the book's fixed ports; no other
/// test does) followed by the contributor's (a step added in a scratch
/// copy), and every other test binary followed by the tooling's own
/// tests. Two test threads in each: each test runs its own Envoy, and
/// while one test waits (for Envoy to start, for a timeout to pass) the
/// other's Envoy has a core.
fn live_tests(env: &[(&str, &str)]) -> Result<(u64, u64)> {
    ensure_harness_tools()?;
    // What this run records for the stages after it starts empty.
    let this_run = project::this_run_dir();
    if this_run.exists() {
        std::fs::remove_dir_all(&this_run).map_err(|e| format!("{}: {e}", this_run.display()))?;
    }
    const TOOLING: [&str; 4] = ["project", "auth-service", "xtask", "compat"];
    const READER: &str = "reader";
    // The README's "Adding a step" in a scratch copy: it builds a copy of
    // the tooling and waits on Envoy and Loom, so it runs after the reader,
    // in the reader's lane, rather than after every other test.
    const CONTRIBUTOR: &str = "adding_a_step";
    // Step 1 on Loom with the book's patches, where Loom's source is.
    const LOOM: &str = "loom";
    // Without Loom's source the Loom test is left out and said so; with
    // it, Loom that does not build or whose Go tests fail fails the run.
    let loom = match crate::loom::available() {
        Ok(()) => Ok(crate::loom::patched()?),
        Err(why) => Err(why),
    };
    match &loom {
        Ok(binary) => run::step(&format!(
            "Loom with the book's patches: {}",
            binary.display()
        )),
        Err(why) => run::step(&format!("Loom with the book's patches: NOT RUN, {why}")),
    }
    run::step("building the live-Envoy harness and the tooling's tests (cargo test --no-run)");
    let mut tooling = Vec::new();
    for package in TOOLING {
        tooling.extend(["--package", package]);
    }
    let mut build = vec!["test", "--locked", "--no-run", "--package", "harness"];
    build.extend(&tooling);
    run::cargo(&build, None)?;

    let envoy = project::envoy::binary()?;
    let test_command = |selection: &[&str]| {
        let mut args = vec!["test", "--locked", "--no-fail-fast"];
        args.extend_from_slice(selection);
        args.extend(["--", "--test-threads", "2"]);
        let mut command = run::cargo_command(&args, None);
        command.env("ENVOY", &envoy);
        if let Ok(binary) = &loom {
            command.env("LOOM_PATCHED", binary);
        }
        // Captures are rewritten only when `capture` asks for it, never
        // because the caller's environment happens to set the variable.
        command.env_remove("UPDATE_CAPTURES");
        for (key, value) in env {
            command.env(key, value);
        }
        command
    };
    let others: Vec<String> = harness_test_binaries()?
        .into_iter()
        .filter(|name| name != READER && name != CONTRIBUTOR && (name != LOOM || loom.is_ok()))
        .collect();
    let mut harness_rest = vec!["--package", "harness", "--lib"];
    for name in &others {
        harness_rest.extend(["--test", name]);
    }
    run::step(&format!(
        "running the live-Envoy harness and the tooling's own tests (cargo test) in two lanes: \
         [{READER}] (then {CONTRIBUTOR}) and [others] ({})",
        others.join(", ")
    ));
    let (passed, failed) = run::cargo_test_lanes(vec![
        (
            READER.to_owned(),
            vec![
                test_command(&["--package", "harness", "--test", READER]),
                test_command(&["--package", "harness", "--test", CONTRIBUTOR]),
            ],
        ),
        (
            "others".to_owned(),
            vec![test_command(&harness_rest), test_command(&tooling)],
        ),
    ])?;
    if failed > 0 || passed == 0 {
        println!("harness: {passed} passed, {failed} failed");
        return Err("the harness did not pass".into());
    }
    if let Err(why) = &loom {
        println!("loom: step 1 on Loom with the book's patches was NOT RUN: {why}");
    }
    Ok((passed, failed))
}

/// The names of the harness's test binaries: the files of `tests/tests/`.
fn harness_test_binaries() -> Result<Vec<String>> {
    let dir = run::root().join("tests/tests");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(std::result::Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            name.strip_suffix(".rs").map(str::to_owned)
        })
        .collect();
    names.sort();
    Ok(names)
}
