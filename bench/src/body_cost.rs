//! What reading a body costs per KiB: the Wasm steps' rows (rows.rs's
//! per-KiB rows, counted in Envoy under callgrind) beside the same Rust
//! functions compiled for this machine (support/native-body-cost, built
//! with the steps' own release profile, and at opt-level 3) and counted
//! under callgrind over the same bytes.

use crate::configs;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The native program, built as the steps build their modules (LTO, one
/// codegen unit, abort on panic) at `opt_level`: "z" as the steps, or 3.
fn build(opt_level: &str) -> PathBuf {
    let root = project::repo_root();
    let target = root.join(format!("target/native-body-cost-opt-{opt_level}"));
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "--release",
            "--package",
            "native-body-cost",
        ])
        .env("CARGO_TARGET_DIR", &target)
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", opt_level)
        .env("CARGO_PROFILE_RELEASE_LTO", "true")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .env("CARGO_PROFILE_RELEASE_PANIC", "abort")
        .current_dir(&root)
        .status()
        .expect("run cargo");
    assert!(status.success(), "building support/native-body-cost failed");
    target.join("release/native-body-cost")
}

/// Instructions `program` executes for `work` over `file` `iterations`
/// times, under callgrind.
fn count(
    program: &Path,
    dir: &Path,
    work: &str,
    file: &Path,
    iterations: u32,
    fields: &[String],
) -> u64 {
    let out = dir.join(format!("native-{work}-{iterations}.out"));
    let output = Command::new("valgrind")
        .args(["--tool=callgrind"])
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(program)
        .arg(work)
        .arg(file)
        .arg(iterations.to_string())
        .args(fields)
        .output()
        .expect("run valgrind (apt-get install valgrind)");
    assert!(
        output.status.success(),
        "native-body-cost {work} under callgrind failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let profile = std::fs::read_to_string(&out).unwrap_or_default();
    crate::instructions::header(&profile, "summary")
        .unwrap_or_else(|| panic!("no `summary:` in {}", out.display()))
}

/// Instructions per body natively: step 4's verifier over the signed
/// bodies, step 6's redaction (removing `fields`) over the JSON documents,
/// at every size of `BODY_SIZES`, built with the steps' opt-level ("z")
/// and with 3.
pub fn native(fields: &[String]) -> Vec<Value> {
    let dir = harness::stack::test_dir("bench-native-body-cost");
    let mut rows = Vec::new();
    for opt_level in ["z", "3"] {
        let program = build(opt_level);
        for mut row in native_with(&program, &dir, fields) {
            row["opt_level"] = json!(opt_level);
            rows.push(row);
        }
    }
    rows
}

fn native_with(program: &Path, dir: &Path, fields: &[String]) -> Vec<Value> {
    let mut rows = Vec::new();
    for size in configs::BODY_SIZES {
        for (work, bytes) in [
            ("verify", harness::webhook::body_of(size)),
            ("redact", configs::sized_json(size).into_bytes()),
        ] {
            let file = dir.join(format!("{work}-{size}"));
            std::fs::write(&file, &bytes).expect("write a body");
            let fields: &[String] = if work == "redact" { fields } else { &[] };
            // Ten more runs over the body: the difference is ten bodies'
            // work, without the program's start and the file's read.
            let once = count(program, dir, work, &file, 1, fields);
            let eleven = count(program, dir, work, &file, 11, fields);
            rows.push(json!({
                "work": work, "size": size, "body_bytes": bytes.len(),
                "instructions": (eleven.saturating_sub(once)) as f64 / 10.0,
            }));
        }
    }
    rows
}
