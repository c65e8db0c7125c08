//! The host-compatibility page (written by `cargo xtask compat`) still
//! describes the code: its column for the release the book pins matches
//! what the step tests capture in this run, and its ABI table lists each
//! module's imports as they are now. This test reads the page; it never
//! writes it.

use harness::compat::{module_imports, page_column, page_imports, parse_checks};
use harness::{paths, steps};

fn page() -> String {
    let path = paths::repo_root().join("src/captured/host-compatibility.md");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask compat`", path.display()))
}

/// The captured check output the book shows for a step (the Go plugin's
/// must equal step 1's: tests/go_auth.rs).
fn captured_checks(step: &str) -> String {
    let shown = if step == "go-auth" {
        "step-1-auth"
    } else {
        step
    };
    let path = paths::repo_root()
        .join("src/captured")
        .join(shown)
        .join("check.txt");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_pinned_release_column_matches_the_checks_of_this_run() {
    let page = page();
    for step in steps::all_steps() {
        // `pass`, or `FAIL: <what it got>`: the verdicts are compared.
        let column: Vec<(String, String)> = page_column(&page, &step, project::envoy::VERSION)
            .into_iter()
            .map(|(check, cell)| (check, cell.split(':').next().unwrap_or_default().to_owned()))
            .collect();
        let now: Vec<(String, String)> = parse_checks(&captured_checks(&step))
            .into_iter()
            .map(|check| {
                let cell = if check.passed { "pass" } else { "FAIL" };
                (check.name.replace('|', "\\|"), cell.to_owned())
            })
            .collect();
        assert!(!now.is_empty(), "{step}: no captured checks");
        assert_eq!(
            column, now,
            "{step}: the host-compatibility page is out of date; run `cargo xtask compat`"
        );
    }
}

#[test]
fn the_abi_table_lists_each_modules_imports() {
    let page = page();
    for step in steps::all_steps() {
        let bytes = std::fs::read(steps::build(&step)).expect("read the module");
        assert_eq!(
            page_imports(&page, &step),
            module_imports(&bytes),
            "{step}: the imports changed; run `cargo xtask compat`"
        );
    }
}

#[test]
fn the_page_has_every_release_and_a_loom_section() {
    let page = page();
    assert!(
        page.contains("Measured by `cargo xtask compat` on "),
        "{page}"
    );
    for release in ["1.36", "1.37", "1.38", "1.39", "1.40"] {
        assert!(
            page.lines()
                .any(|line| line.starts_with("| check |") && line.contains(release)),
            "no Envoy {release} column"
        );
    }
    assert!(page.contains("<!-- loom:begin -->") && page.contains("<!-- loom:end -->"));
}
