//! Generates the host compatibility page from test runs: the Envoy results
//! are the check-script outputs that the step tests verify in the same run;
//! Loom is installed the way the original tutorial says and, if that works,
//! run with the step-1 plugin. Loom's outcome is information, not a test
//! result: whatever happens, this test only fails if it cannot write the
//! page. The page is rewritten on every run (`cargo xtask test` builds the
//! book after the harness), so it cannot go stale.

use harness::paths;
use harness::stack::{free_port, start_backend, test_dir};
use harness::steps;
use std::fmt::Write;
use std::process::Command;
use std::time::Duration;

const LOOM_PACKAGE: &str = "github.com/josedab/loom/cmd/loom@latest";

/// `PASS  name  expected ..., got ...` lines -> (name, "pass"/"FAIL").
fn results(check_output: &str) -> Vec<(String, &'static str)> {
    check_output
        .lines()
        .filter_map(|line| {
            let (verdict, rest) = line.split_once("  ")?;
            let name = rest.trim_start().split("  ").next()?.trim().to_owned();
            match verdict {
                "PASS" => Some((name, "pass")),
                "FAIL" => Some((name, "FAIL")),
                _ => None,
            }
        })
        .collect()
}

/// Module proxy addresses are not something the book should print.
fn redact(text: &str) -> String {
    text.lines()
        .map(|line| {
            line.split_whitespace()
                .map(|word| {
                    if word.starts_with("https://") {
                        "<module proxy URL>"
                    } else {
                        word
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Tries `go install` into a scratch GOBIN; Ok(binary) or Err(what go said).
fn install_loom() -> Result<std::path::PathBuf, String> {
    let bin = test_dir("host-compat-loom-bin");
    let output = Command::new("go")
        .args(["install", LOOM_PACKAGE])
        .env("GOBIN", &bin)
        .output()
        .map_err(|e| format!("go could not be run: {e}"))?;
    if output.status.success() {
        Ok(bin.join("loom"))
    } else {
        Err(redact(String::from_utf8_lossy(&output.stderr).trim()))
    }
}

/// Runs the seed's loom.yaml (ports rewritten) with the step-1 plugin and
/// step 1's check script; returns the script's output.
fn run_loom(loom: &std::path::Path) -> String {
    let dir = test_dir("host-compat-loom-run");
    let wasm = steps::build("step-1-auth");
    let (_backend, backend_port) = start_backend(&dir);
    let (port, admin) = (free_port(), free_port());
    let config = std::fs::read_to_string(paths::repo_root().join("examples/step-1-auth/loom.yaml"))
        .expect("read loom.yaml")
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:9091", &format!("127.0.0.1:{admin}"))
        .replace("127.0.0.1:3000", &format!("127.0.0.1:{backend_port}"))
        .replace(
            "./code/step-1-auth/target/wasm32-wasip1/release/step_1_auth.wasm",
            &wasm.display().to_string(),
        );
    std::fs::write(dir.join("loom.yaml"), config).expect("write loom.yaml");
    let mut command = Command::new(loom);
    command.arg("-config").arg(dir.join("loom.yaml"));
    let _loom = harness::process::Server::start("loom", command, &dir.join("loom.log"));
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = Command::new("bash")
        .arg(paths::repo_root().join("examples/step-1-auth/check.sh"))
        .env("BASE_URL", format!("http://127.0.0.1:{port}"))
        .output()
        .expect("run check.sh");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn host_compatibility_page_is_generated() {
    let mut page = String::new();
    let captured = |step: &str| {
        std::fs::read_to_string(
            paths::repo_root()
                .join("src/captured")
                .join(step)
                .join("check.txt"),
        )
        .unwrap_or_default()
    };
    let step_1 = captured("step-1-auth");
    let _ = writeln!(page, "### Envoy 1.40.0 (V8), the reference host\n");
    let _ = writeln!(page, "| step | check | result |\n|---|---|---|");
    for (step, output) in [
        ("step-1-auth (Rust)", step_1.clone()),
        ("go-auth (Go)", step_1.clone()),
        ("step-2-rate-limit", captured("step-2-rate-limit")),
        ("step-3-http-call", captured("step-3-http-call")),
    ] {
        let rows = results(&output);
        assert!(!rows.is_empty(), "no captured check results for {step}");
        for (check, result) in rows {
            let _ = writeln!(
                page,
                "| {step} | {} | {result} |",
                check.replace('|', "\\|")
            );
        }
    }

    let _ = writeln!(page, "\n### Loom\n");
    let _ = writeln!(
        page,
        "Installed as the original tutorial says: `go install {LOOM_PACKAGE}`.\n"
    );
    match install_loom() {
        Err(error) => {
            let _ = writeln!(
                page,
                "**Not installable here.** `go install` answered:\n\n```text\n{error}\n```\n"
            );
            let _ = writeln!(page, "No check could be run against Loom.");
        }
        Ok(loom) => {
            let output = run_loom(&loom);
            let _ = writeln!(page, "| step | check | result |\n|---|---|---|");
            let rows = results(&output);
            if rows.is_empty() {
                let _ = writeln!(
                    page,
                    "| step-1-auth | (the check script printed no results) | FAIL |"
                );
            }
            for (check, result) in rows {
                let _ = writeln!(
                    page,
                    "| step-1-auth | {} | {result} |",
                    check.replace('|', "\\|")
                );
            }
        }
    }
    println!("{page}");
    let path = paths::repo_root().join("src/captured/host-compatibility.md");
    std::fs::write(&path, page).expect("write the host compatibility page");
}
