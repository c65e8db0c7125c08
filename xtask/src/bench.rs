//! `cargo xtask bench`: module sizes, Envoy's CPU and instructions per request, written to
//! src/captured/bench/; in quick mode (every configuration, a few
//! requests, results in target/bench-quick/) as a stage of the tests.

use crate::run::{self, Result};
use crate::{test, tools};

/// `probe`: only the instruction counts of the configurations whose name
/// contains it, printed, nothing written. `report_only`: the tables
/// written again from src/captured/bench/results.json, nothing measured.
/// `step`: only that step's own row, in quick mode (`cargo xtask step`).
pub fn run(quick: bool, probe: Option<&str>, report_only: bool, step: Option<&str>) -> Result {
    test::ensure_harness_tools()?;
    tools::ensure_bench_tools()?;
    // Step 1 as an Envoy dynamic module is built with Envoy's Go SDK.
    tools::ensure_go()?;
    run::step(if quick {
        "running the benchmark in quick mode (every configuration, few requests)"
    } else {
        "running the benchmark (several minutes; the numbers land in src/captured/bench/)"
    });
    let mut command = run::workspace_program("bench");
    if quick {
        command.arg("--quick");
    }
    if let Some(probe) = probe {
        command.args(["--probe", probe]);
    }
    if report_only {
        command.arg("--report-only");
    }
    if let Some(step) = step {
        command.args(["--step", step]);
    }
    command.env("ENVOY", project::envoy::binary()?);
    // Envoy's Go SDK for dynamic modules hands Envoy pointers that Go's
    // cgo check refuses: without this, its first call panics, and the
    // panic ends Envoy's process (measured with Envoy 1.40.0).
    command.env("GODEBUG", "cgocheck=0");
    // Where Envoy finds the dynamic module (lib<name>.so) the benchmark
    // builds.
    command.env(
        "ENVOY_DYNAMIC_MODULES_SEARCH_PATH",
        project::envoy::dynamic_modules_dir(),
    );
    if !quick && probe.is_none() && !report_only && step.is_none() {
        // A full run tries the dynamic module on every release of the
        // compatibility matrix.
        for release in project::envoy::releases() {
            let binary = crate::compat::envoy_release(&release)?;
            command
                .arg("--envoy")
                .arg(format!("{release}={}", binary.display()));
        }
    }
    run::status(command)
}
