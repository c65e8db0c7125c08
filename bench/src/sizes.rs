//! Module sizes: every step as built, gzip'd, and step 1 with each
//! release-profile setting of the book changed one at a time.

use harness::{paths, steps};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

fn gzip_size(file: &Path) -> u64 {
    let output = Command::new("gzip")
        .args(["-9", "-c"])
        .arg(file)
        .output()
        .expect("run gzip");
    output.stdout.len() as u64
}

fn size(file: &Path) -> u64 {
    std::fs::metadata(file).map(|m| m.len()).unwrap_or(0)
}

pub fn steps() -> Value {
    let rows: Vec<Value> = steps::all_steps()
        .iter()
        .map(|step| {
            let wasm = steps::build(step);
            json!({ "step": step, "bytes": size(&wasm), "gzip_bytes": gzip_size(&wasm) })
        })
        .collect();
    Value::Array(rows)
}

/// Step 1 as built, and rebuilt with one profile line changed (Cargo's
/// CARGO_PROFILE_RELEASE_* variables override Cargo.toml), plus wasm-opt
/// from Debian's binaryen package on the book's build when it is installed.
/// `quick`: the book's profile and one changed line (each variant is a
/// build from nothing; quick figures are not published).
pub fn profile_variants(quick: bool) -> Value {
    let step = project::step::Step::part_one();
    let variants: [(&str, &[(&str, &str)]); 6] = [
        (
            "as in the book (opt-level z, lto, codegen-units 1, panic abort, strip)",
            &[],
        ),
        (
            "opt-level = \"s\"",
            &[("CARGO_PROFILE_RELEASE_OPT_LEVEL", "s")],
        ),
        ("lto = false", &[("CARGO_PROFILE_RELEASE_LTO", "false")]),
        (
            "codegen-units = 16",
            &[("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")],
        ),
        (
            "panic = \"unwind\"",
            &[("CARGO_PROFILE_RELEASE_PANIC", "unwind")],
        ),
        ("strip = false", &[("CARGO_PROFILE_RELEASE_STRIP", "false")]),
    ];
    let mut rows = Vec::new();
    let mut book_build = None;
    let count = if quick { 2 } else { variants.len() };
    for (index, (name, env)) in variants.iter().take(count).enumerate() {
        let target = paths::repo_root().join(format!("target/bench/profile-{index}"));
        if env.is_empty() {
            // The book's own profile: the step as built, copied.
            let built = steps::build(&step.name);
            let wasm = target.join(step.wasm_file_name());
            std::fs::create_dir_all(&target).expect("create the variant's folder");
            std::fs::copy(&built, &wasm).expect("copy step 1's module");
            rows.push(
                json!({ "variant": name, "bytes": size(&wasm), "gzip_bytes": gzip_size(&wasm) }),
            );
            book_build = Some(wasm);
            continue;
        }
        let output = step
            .build_command(&step.dir)
            .arg("--quiet")
            .env("CARGO_TARGET_DIR", &target)
            .envs(env.iter().copied())
            .output()
            .expect("run cargo");
        let wasm = target
            .join(project::step::WASM_TARGET)
            .join("release")
            .join(step.wasm_file_name());
        if output.status.success() {
            rows.push(
                json!({ "variant": name, "bytes": size(&wasm), "gzip_bytes": gzip_size(&wasm) }),
            );
        } else {
            let error = String::from_utf8_lossy(&output.stderr);
            let first = error
                .lines()
                .find(|l| l.starts_with("error"))
                .unwrap_or("build failed");
            rows.push(json!({ "variant": name, "error": first }));
        }
    }
    if let Some(wasm) = book_build {
        rows.push(wasm_opt(&wasm));
    }
    Value::Array(rows)
}

fn wasm_opt(wasm: &Path) -> Value {
    let name = "as in the book, then wasm-opt -Oz (binaryen)";
    let optimised = wasm.with_extension("opt.wasm");
    // Rust's default wasm features; binaryen 108 needs them named.
    let features = [
        "--enable-bulk-memory",
        "--enable-sign-ext",
        "--enable-nontrapping-float-to-int",
        "--enable-mutable-globals",
    ];
    match Command::new("wasm-opt")
        .arg("-Oz")
        .args(features)
        .arg(wasm)
        .arg("-o")
        .arg(&optimised)
        .output()
    {
        Ok(output) if output.status.success() => {
            json!({ "variant": name, "bytes": size(&optimised), "gzip_bytes": gzip_size(&optimised) })
        }
        Ok(output) => {
            json!({ "variant": name, "error": String::from_utf8_lossy(&output.stderr).trim() })
        }
        Err(_) => {
            json!({ "variant": name, "error": "wasm-opt not installed (apt-get install binaryen)" })
        }
    }
}
