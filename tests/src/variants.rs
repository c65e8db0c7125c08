//! Deliberately naive variants of the steps, for the hardening chapter: a
//! step's own sources with a few exact text replacements, built outside
//! `code/`. Each replacement must match exactly once, so a change to the
//! step that a variant no longer fits fails loudly.

use crate::paths;
use crate::steps;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The variants the book shows (in the `project` crate, where the book's
/// listings are made from them too).
pub use project::naive;

pub use naive::Patch;

/// Copies a folder, leaving build output behind.
pub fn copy_sources(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy directory");
    for entry in std::fs::read_dir(from)
        .expect("read step folder")
        .filter_map(Result::ok)
    {
        let name = entry.file_name();
        let (source, destination) = (entry.path(), to.join(&name));
        if name == "target" || source.extension().is_some_and(|ext| ext == "wasm") {
            continue;
        }
        if source.is_dir() {
            copy_sources(&source, &destination);
        } else {
            std::fs::copy(&source, &destination).expect("copy file");
        }
    }
}

/// Writes the patched copy of `step` to `target/naive/<name>/`.
pub fn patched_copy(step: &str, name: &str, patches: &[Patch]) -> PathBuf {
    let dir = paths::repo_root().join("target/naive").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    copy_sources(&paths::repo_root().join("code").join(step), &dir);
    for patch in patches {
        let path = dir.join(patch.file);
        let text = std::fs::read_to_string(&path).expect("read file to patch");
        let count = text.matches(patch.from).count();
        assert_eq!(
            count, 1,
            "{name}: `{}` occurs {count} times in {}",
            patch.from, patch.file
        );
        std::fs::write(&path, text.replacen(patch.from, patch.to, 1)).expect("write patched file");
    }
    dir
}

/// The variants built by this test process, by name: tests that share a
/// variant build it once, and no build replaces a module (or removes its
/// folder) while another test's Envoy is loading it.
static BUILT: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());

/// Builds the naive variant `name` of `step` and returns its `.wasm`. The
/// variants of a step share one Cargo target directory (their dependencies
/// are the same), so each `.wasm` is copied out right after its build.
pub fn build(step: &str, name: &str, patches: &[Patch]) -> PathBuf {
    let mut built = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(wasm) = built.get(name) {
        return wasm.clone();
    }
    let dir = patched_copy(step, name, patches);
    let shared_target = paths::repo_root().join("target/naive/target").join(step);
    let module = steps::build_in(&dir, step, &shared_target);
    let wasm = install_module(&module, &dir.join(format!("{name}.wasm")));
    built.insert(name.to_owned(), wasm.clone());
    wasm
}

/// Like `build`, for the Cargo example `example` of a Rust step.
pub fn build_example(step: &str, example: &str, name: &str, patches: &[Patch]) -> PathBuf {
    let mut built = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(wasm) = built.get(name) {
        return wasm.clone();
    }
    let dir = patched_copy(step, name, patches);
    let shared_target = paths::repo_root().join("target/naive/target").join(step);
    let model = project::step::Step::named(step).unwrap_or_else(|why| panic!("{why}"));
    let status = model
        .build_command(&dir)
        .args(["--quiet", "--example", example])
        .env("CARGO_TARGET_DIR", &shared_target)
        .status()
        .expect("run cargo");
    assert!(status.success(), "building {name} failed");
    let module = shared_target
        .join(project::step::WASM_TARGET)
        .join("release/examples")
        .join(format!("{}.wasm", example.replace('-', "_")));
    let wasm = install_module(&module, &dir.join(format!("{name}.wasm")));
    built.insert(name.to_owned(), wasm.clone());
    wasm
}

/// Puts a built module at `wasm` by renaming a fresh copy over it, so a
/// reader never sees a half-written file.
fn install_module(built: &Path, wasm: &Path) -> PathBuf {
    let fresh = wasm.with_extension(format!("wasm.{}", std::process::id()));
    std::fs::copy(built, &fresh).expect("copy the variant's .wasm");
    std::fs::rename(&fresh, wasm).expect("put the variant's .wasm in place");
    wasm.to_path_buf()
}
