//! Loom, the Go gateway the book's original tutorial deployed to, built
//! from its source at the commit the book measures: as it is, and with the
//! book's patches to its Proxy-Wasm host (`compat/loom/patches/`). Its
//! module is not served by the Go module proxy, so the source comes from
//! an archive (`../shared/hosts/loom-0e09cd2.tar.gz`), `$LOOM_SOURCE` (a
//! source folder or that archive), or not at all; `$LOOM` and
//! `$LOOM_PATCHED` name binaries built elsewhere.

use crate::run::{self, root, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The commit measured.
pub const COMMIT: &str = "0e09cd2";
const ARCHIVE: &str = "../shared/hosts/loom-0e09cd2.tar.gz";

/// The book's patch series, applied in order.
fn patches() -> Result<Vec<PathBuf>> {
    let dir = root().join("compat/loom/patches");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(std::result::Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "patch"))
        .collect();
    found.sort();
    Ok(found)
}

/// Where Loom's source is, or why there is none. Only a missing source
/// lets a run go on without Loom; a source that does not build, a patch
/// that does not apply or a failing Go test is an error.
fn source() -> Result<PathBuf> {
    let source = std::env::var_os("LOOM_SOURCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(ARCHIVE));
    if source.exists() {
        Ok(source)
    } else {
        Err(format!(
            "no Loom source at {} (set LOOM_SOURCE to a source folder or to loom-{COMMIT}.tar.gz, \
             or LOOM / LOOM_PATCHED to a binary)",
            source.display()
        ))
    }
}

/// Whether Loom can be had: both binaries named (`$LOOM` and
/// `$LOOM_PATCHED`), or the source.
pub fn available() -> Result {
    if std::env::var_os("LOOM").is_some() && std::env::var_os("LOOM_PATCHED").is_some() {
        return Ok(());
    }
    source().map(|_| ())
}

/// Loom as it is at [`COMMIT`]: `$LOOM`, or built once into
/// `.tools/loom-<commit>/`.
pub fn unpatched() -> Result<PathBuf> {
    if let Some(binary) = std::env::var_os("LOOM") {
        return Ok(PathBuf::from(binary));
    }
    build(&project::tools_dir().join(format!("loom-{COMMIT}")), &[])
}

/// Loom with the book's patches: `$LOOM_PATCHED`, or built once per
/// version of the patches into `.tools/loom-<commit>-patched-<digest>/`.
pub fn patched() -> Result<PathBuf> {
    if let Some(binary) = std::env::var_os("LOOM_PATCHED") {
        return Ok(PathBuf::from(binary));
    }
    let patches = patches()?;
    let mut text = Vec::new();
    for patch in &patches {
        text.extend(std::fs::read(patch).map_err(|e| format!("{}: {e}", patch.display()))?);
    }
    let dir = project::tools_dir().join(format!("loom-{COMMIT}-patched-{:016x}", fnv1a(&text)));
    build(&dir, &patches)
}

/// Builds `dir/loom` from a fresh copy of the source with `patches`
/// applied, unless it is there.
fn build(dir: &Path, patches: &[PathBuf]) -> Result<PathBuf> {
    let binary = dir.join("loom");
    if binary.is_file() {
        return Ok(binary);
    }
    let source = self::source()?;
    let work = dir.join("source");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let folder = if source.is_dir() {
        let mut copy = Command::new("cp");
        copy.arg("-a").arg(&source).arg(&work);
        run::status(copy)?;
        work.join(source.file_name().unwrap_or_default())
    } else {
        let mut tar = Command::new("tar");
        tar.arg("-xzf").arg(&source).arg("-C").arg(&work);
        run::status(tar)?;
        std::fs::read_dir(&work)
            .map_err(|e| e.to_string())?
            .filter_map(std::result::Result::ok)
            .map(|entry| entry.path())
            .find(|path| path.join("go.mod").is_file())
            .ok_or_else(|| format!("{} holds no Go module", source.display()))?
    };
    if !patches.is_empty() {
        // A repository of its own: inside another one (this repository's
        // `.tools/`), `git apply` would skip every path outside the
        // enclosing repository's subdirectory, silently.
        let mut init = Command::new("git");
        init.args(["init", "--quiet"]).current_dir(&folder);
        run::status(init)?;
    }
    for patch in patches {
        let mut apply = Command::new("git");
        apply.arg("apply").arg(patch).current_dir(&folder);
        run::status(apply).map_err(|e| format!("{} does not apply: {e}", patch.display()))?;
    }
    run::step(&format!(
        "building Loom {COMMIT}{} (about a minute)",
        if patches.is_empty() {
            String::new()
        } else {
            format!(" with the book's {} patches", patches.len())
        }
    ));
    let mut go = Command::new("go");
    go.args(["build", "-o"])
        .arg(&binary)
        .arg("./cmd/loom")
        .env("GOFLAGS", "-mod=mod")
        .current_dir(&folder);
    run::status(go).map_err(|e| format!("Loom did not build: {e}"))?;
    if !patches.is_empty() {
        // The patches' own tests, beside Loom's, in the package they change.
        let mut test = Command::new("go");
        test.args(["test", "./internal/plugin/", "./internal/proxy/"])
            .env("GOFLAGS", "-mod=mod")
            .current_dir(&folder);
        if let Err(e) = run::status(test) {
            let _ = std::fs::remove_file(&binary);
            return Err(format!("the patched Loom's tests failed: {e}"));
        }
    }
    Ok(binary)
}

/// A digest of the patches' bytes, to name the build they make.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
