//! Every step folder is something a reader copies: it must build on its own,
//! outside this repository, with the command the book gives.

use harness::{capture, paths, steps};
use std::path::Path;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy directory");
    for entry in std::fs::read_dir(from)
        .expect("read step folder")
        .filter_map(Result::ok)
    {
        let name = entry.file_name();
        if name == "target" {
            continue;
        }
        let (source, destination) = (entry.path(), to.join(&name));
        if source.is_dir() {
            copy_dir(&source, &destination);
        } else {
            std::fs::copy(&source, &destination).expect("copy file");
        }
    }
}

#[test]
fn every_rust_step_builds_when_copied_out_of_the_repository() {
    let steps = steps::rust_steps();
    assert!(!steps.is_empty(), "no step crates found under code/");
    let mut sizes = Vec::new();
    let outside =
        std::env::temp_dir().join(format!("proxy-wasm-book-standalone-{}", std::process::id()));
    for step in &steps {
        let copy = outside.join(step);
        copy_dir(&paths::repo_root().join("code").join(step), &copy);
        steps::run_cargo_build(&copy, &copy.join("target"));
        let wasm = copy
            .join("target/wasm32-wasip1/release")
            .join(steps::wasm_file_name(step));
        let size = std::fs::metadata(&wasm)
            .unwrap_or_else(|e| panic!("{step}: no {} after the build: {e}", wasm.display()))
            .len();
        sizes.push((step.clone(), size));
    }
    let _ = std::fs::remove_dir_all(&outside);
    capture::check_or_update_sizes("wasm-sizes.md", &sizes);
}
