//! The project's commands: `cargo xtask <command>`.

mod book;
mod run;
mod steps;
mod tools;
mod up;

const USAGE: &str = "\
usage: cargo xtask <command>

  serve             install mdBook if missing, serve the book on http://127.0.0.1:4000
  test              the whole doc CI: install tools, build and check the book and
                    every step, run the live-Envoy harness
  up <step>         build a step and run it (backend + Envoy) on the book's ports
  capture           re-run the harness and rewrite the captured outputs in src/captured/
  bench             measure module sizes and CPU per request; writes src/captured/bench/
";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["serve"] => book::serve(),
        ["test"] => test(),
        ["up", step] => up::run(step),
        ["capture"] => capture(),
        ["bench"] => bench(false),
        _ => {
            eprint!("{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(error) = result {
        eprintln!("\nxtask: {error}");
        std::process::exit(1);
    }
}

pub type Result<T = ()> = std::result::Result<T, String>;

fn test() -> Result {
    tools::ensure_all()?;
    book::check_sources()?;
    steps::check_all()?;
    run::step("checking the tooling workspace (fmt, clippy)");
    run::cargo(&["fmt", "--all", "--check"], None)?;
    run::cargo(
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--quiet",
            "--",
            "-D",
            "warnings",
        ],
        None,
    )?;
    let totals = run_harness(&[])?;
    bench(true)?;
    // After the harness: it regenerates the host compatibility page.
    book::build_and_check()?;
    book::browser_check()?;
    // The totals last, as the run's closing line.
    println!("harness: {} passed, {} failed", totals.0, totals.1);
    Ok(())
}

/// The benchmark (src/captured/bench/), or with `quick` every configuration
/// with a few requests, written to target/bench-quick/, so it cannot rot.
fn bench(quick: bool) -> Result {
    if !quick {
        tools::ensure_all()?;
    }
    tools::ensure_bench_tools()?;
    run::step(if quick {
        "running the benchmark in quick mode (every configuration, few requests)"
    } else {
        "running the benchmark (several minutes; the numbers land in src/captured/bench/)"
    });
    let mut command = run::cargo_command(
        &[
            "run",
            "--quiet",
            "--package",
            "harness",
            "--bin",
            "bench",
            "--",
        ],
        None,
    );
    if quick {
        command.arg("--quick");
    }
    command.env("ENVOY", tools::envoy_binary()?);
    run::status(command)
}

fn capture() -> Result {
    tools::ensure_all()?;
    let (passed, failed) = run_harness(&[("UPDATE_CAPTURES", "1")])?;
    println!("harness: {passed} passed, {failed} failed");
    // The captured files changed: the book must still build with them.
    book::check_sources()?;
    book::build_and_check()
}

/// The live tests. Two test threads: each test runs its own Envoy, and this
/// is a 2-core machine.
fn run_harness(env: &[(&str, &str)]) -> Result<(u64, u64)> {
    run::step("running the live-Envoy harness (cargo test -p harness)");
    let mut command = run::cargo_command(
        &[
            "test",
            "--no-fail-fast",
            "--package",
            "harness",
            "--",
            "--test-threads",
            "2",
        ],
        None,
    );
    command.env("ENVOY", tools::envoy_binary()?);
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
    Ok((passed, failed))
}
