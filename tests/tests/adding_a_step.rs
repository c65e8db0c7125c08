//! The README's "Adding a step", followed as written in a scratch copy of
//! the repository (its tracked files, with this checkout's `.tools/` and
//! the steps' host build linked in): its `bash` blocks run in order and
//! its `rust` block goes into `DESCRIPTIONS`, as a contributor would paste
//! it. The new step must then be built, checked, benchmarked in quick mode
//! and listed on the compatibility page, and a folder without its
//! description must be refused.

use harness::paths;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The step the README adds.
const NEW_STEP: &str = "step-9-example";

#[test]
fn the_readme_adds_a_step_that_is_built_checked_benchmarked_and_listed() {
    let root = paths::repo_root();
    let scratch = scratch_copy(&root);
    let readme = std::fs::read_to_string(root.join("README.md")).expect("read README.md");
    let blocks = code_blocks(section(&readme, "## Adding a step"));
    assert!(
        blocks.iter().any(|(language, _)| language == "rust")
            && blocks
                .iter()
                .filter(|(language, _)| language == "bash")
                .count()
                >= 2,
        "the section has a description and commands: {blocks:?}"
    );
    let mut described = false;
    for (language, text) in &blocks {
        match language.as_str() {
            "rust" => {
                add_description(&scratch, text);
                described = true;
            }
            "bash" => {
                let output = run(&scratch, text);
                assert!(
                    output.status.success(),
                    "`{text}` failed:\n{}\n{}",
                    String::from_utf8_lossy(&output.stdout),
                    stderr(&output)
                );
            }
            _ => {}
        }
        // Before its description, the new folder is refused.
        if language == "bash" && !described && scratch.join("code").join(NEW_STEP).is_dir() {
            let output = run(&scratch, &format!("cargo xtask step {NEW_STEP}"));
            assert!(
                !output.status.success() && stderr(&output).contains("DESCRIPTIONS"),
                "an undescribed step was not refused:\n{}",
                stderr(&output)
            );
        }
    }

    // Built, linted and tested (`cargo xtask step` fails otherwise) ...
    let wasm = scratch
        .join("code")
        .join(NEW_STEP)
        .join("target/wasm32-wasip1/release/step_9_example.wasm");
    assert!(wasm.is_file(), "{} was not built", wasm.display());
    // ... benchmarked in quick mode, with the nine key requests ...
    let row_path = scratch.join(format!("target/bench-quick/step-{NEW_STEP}.json"));
    let row: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&row_path).expect("the step's benchmark row"),
    )
    .expect("a JSON row");
    let statuses: Vec<u64> = row["refusals"]
        .as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
        .unwrap_or_default();
    assert_eq!(statuses.len(), 9, "{row}");
    assert_eq!(statuses[0], 200, "{row}");
    assert!(
        statuses[1..].iter().all(|s| [400, 401, 403].contains(s)),
        "{row}"
    );
    // ... and listed on the compatibility page, passing on the pinned release.
    let summary =
        std::fs::read_to_string(scratch.join("src/captured/host-compatibility-summary.md"))
            .expect("the compatibility summary");
    let line = summary
        .lines()
        .find(|line| line.starts_with(&format!("| {NEW_STEP} |")))
        .unwrap_or_else(|| panic!("{NEW_STEP} is not on the page:\n{summary}"));
    let page = std::fs::read_to_string(scratch.join("src/captured/host-compatibility.md"))
        .expect("the compatibility page");
    assert!(
        page.contains(&format!("### {NEW_STEP}")) && line.contains('✓'),
        "{line}"
    );
    let measured: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(scratch.join("src/captured/host-compatibility.json"))
            .expect("the measurements"),
    )
    .expect("JSON");
    let pinned = measured["envoy"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|release| release[0] == project::envoy::VERSION)
        .expect("the pinned release");
    let checks = pinned[1]
        .as_array()
        .into_iter()
        .flatten()
        .find(|run| run[0] == NEW_STEP)
        .map(|run| run[1]["Ok"].clone())
        .unwrap_or_else(|| panic!("{NEW_STEP} did not run on Envoy: {pinned}"));
    let checks = checks.as_array().cloned().unwrap_or_default();
    assert!(
        !checks.is_empty() && checks.iter().all(|c| c["passed"] == true),
        "{checks:?}"
    );
}

/// `target/scratch-repository/`: the tracked files of this checkout, their
/// times kept (so the scratch's tooling build, in its own persistent
/// target directory, recompiles only what the README changes); `.tools/`
/// and the steps' host build (`target/steps-host/`) linked from here, so
/// nothing is installed or built twice.
fn scratch_copy(root: &Path) -> PathBuf {
    let scratch = root.join("target/scratch-repository");
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch).expect("remove the last scratch copy");
    }
    std::fs::create_dir_all(scratch.join("target")).expect("create the scratch copy");
    let copy = Command::new("bash")
        .args(["-c", "git ls-files -z | xargs -0 cp -p --parents -t \"$0\""])
        .arg(&scratch)
        .current_dir(root)
        .status()
        .expect("run git ls-files (a git checkout is needed)");
    assert!(copy.success(), "copying the tracked files failed");
    // The one file the README's steps edit, dated now: a scratch tooling
    // build left by an earlier run saw it with the description added, and
    // with its old date kept, cargo would take that build as fresh.
    std::fs::File::options()
        .write(true)
        .open(scratch.join("project/src/step.rs"))
        .and_then(|file| file.set_modified(std::time::SystemTime::now()))
        .expect("date the copied step.rs now");
    for link in [".tools", "target/steps-host"] {
        std::fs::create_dir_all(root.join(link)).expect("create the linked folder");
        std::os::unix::fs::symlink(root.join(link), scratch.join(link)).expect("link");
    }
    scratch
}

/// `command` run by bash in the scratch copy: its tooling built into a
/// target directory of its own, Envoy and Loom as this run has them.
fn run(scratch: &Path, command: &str) -> std::process::Output {
    let root = paths::repo_root();
    let mut bash = Command::new("bash");
    bash.args(["-euo", "pipefail", "-c", command])
        .current_dir(scratch)
        .env("CARGO_TARGET_DIR", root.join("target/scratch-tooling"))
        .env("ENVOY", paths::envoy_binary());
    // Loom from the source beside this checkout, if there is one.
    let loom = root.join("../shared/hosts/loom-0e09cd2.tar.gz");
    match std::env::var_os("LOOM_SOURCE").map(PathBuf::from) {
        Some(source) => bash.env("LOOM_SOURCE", source),
        None if loom.is_file() => bash.env("LOOM_SOURCE", loom),
        None => bash.env_remove("LOOM_PATCHED").env_remove("LOOM"),
    };
    bash.output().expect("run bash")
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The section of `text` that starts with the line `heading`, up to the
/// next heading of its level.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README.md has no `{heading}`"));
    let rest = &text[start + 1 + heading.len()..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

/// The fenced code blocks of `text`: (language, body).
fn code_blocks(text: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some(language) = line.trim_start().strip_prefix("```") {
            let body: Vec<&str> = lines
                .by_ref()
                .take_while(|l| l.trim_start() != "```")
                .collect();
            blocks.push((language.to_owned(), body.join("\n") + "\n"));
        }
    }
    blocks
}

/// The description added where `DESCRIPTIONS` ends.
fn add_description(scratch: &Path, description: &str) {
    let path = scratch.join("project/src/step.rs");
    let text = std::fs::read_to_string(&path).expect("read step.rs");
    let start = text
        .find("pub const DESCRIPTIONS: &[Description] = &[")
        .expect("DESCRIPTIONS in step.rs");
    let end = start
        + text[start..]
            .find("\n];\n")
            .expect("the end of DESCRIPTIONS")
        + 1;
    let edited = format!("{}{description}{}", &text[..end], &text[end..]);
    std::fs::write(&path, edited).expect("write step.rs");
}
