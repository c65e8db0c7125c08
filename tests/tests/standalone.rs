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
        let (source, destination) = (entry.path(), to.join(&name));
        // Build output stays behind: the copy must build from sources alone.
        if name == "target" || source.extension().is_some_and(|ext| ext == "wasm") {
            continue;
        }
        if source.is_dir() {
            copy_dir(&source, &destination);
        } else {
            std::fs::copy(&source, &destination).expect("copy file");
        }
    }
}

#[test]
fn every_step_builds_when_copied_out_of_the_repository() {
    let steps = steps::all_steps();
    assert!(!steps.is_empty(), "no steps found under code/");
    let outside =
        std::env::temp_dir().join(format!("proxy-wasm-book-standalone-{}", std::process::id()));
    let mut sizes = Vec::new();
    for step in &steps {
        let copy = outside.join(step);
        copy_dir(&paths::repo_root().join("code").join(step), &copy);
        let wasm = steps::build_in(&copy, step);
        let size = std::fs::metadata(&wasm).map(|m| m.len()).unwrap_or(0);
        sizes.push((step.clone(), size));
    }
    let _ = std::fs::remove_dir_all(&outside);
    capture::check_or_update_sizes("wasm-sizes.md", &sizes);
}
