//! Every step folder is something a reader copies: it must build on its own,
//! outside this repository, with the command the book gives.

use harness::{capture, paths, steps, variants};

#[test]
fn every_step_builds_when_copied_out_of_the_repository() {
    let steps = steps::all_steps();
    assert!(!steps.is_empty(), "no steps found under code/");
    let outside =
        std::env::temp_dir().join(format!("proxy-wasm-book-standalone-{}", std::process::id()));
    let mut sizes = Vec::new();
    for step in &steps {
        let copy = outside.join(step);
        variants::copy_sources(&paths::repo_root().join("code").join(step), &copy);
        let wasm = steps::build_in(&copy, step, &copy.join("target"));
        let size = std::fs::metadata(&wasm).map(|m| m.len()).unwrap_or(0);
        sizes.push((step.clone(), size));
    }
    let _ = std::fs::remove_dir_all(&outside);
    capture::check_or_update_sizes("wasm-sizes.md", &sizes);
}
