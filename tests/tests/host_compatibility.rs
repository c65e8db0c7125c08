//! Generates the host compatibility page from test runs: the Envoy results
//! are the check-script outputs that the step tests verify in the same run;
//! Loom is installed the way the original tutorial says and, if that works,
//! run with the step-1 plugin. Loom's outcome is information, not a test
//! result: whatever happens, this test only fails if it cannot write the
//! page. The page is rewritten on every run (`cargo xtask test` builds the
//! book after the harness), so it cannot go stale.

use harness::paths;
use harness::stack::{free_port, test_dir, wait_for_port};
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
    let backend_port = free_port();
    let mut backend_command = Command::new(steps::workspace_binary("backend"));
    backend_command.arg(backend_port.to_string());
    let mut backend =
        harness::process::Server::start("backend", backend_command, &dir.join("backend.log"));
    wait_for_port(&mut backend, backend_port);
    let (port, admin) = (free_port(), free_port());
    let config = std::fs::read_to_string(paths::repo_root().join("code/step-1-auth/loom.yaml"))
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
    let step_dir = paths::repo_root().join("code/step-1-auth");
    harness::stack::run_check_script(&step_dir, &format!("http://127.0.0.1:{port}")).1
}

#[test]
fn host_compatibility_page_is_generated() {
    let captured = |step: &str| {
        std::fs::read_to_string(
            paths::repo_root()
                .join("src/captured")
                .join(step)
                .join("check.txt"),
        )
        .unwrap_or_default()
    };
    // The Go plugin's output is the Rust step 1's: tests/go_auth.rs requires
    // the two to be identical.
    let step_1 = captured("step-1-auth");
    let mut columns: Vec<(String, Vec<(String, &str)>)> = vec![
        ("Envoy · step-1-auth (Rust)".into(), results(&step_1)),
        ("Envoy · go-auth (Go)".into(), results(&step_1)),
        (
            "Envoy · step-2-rate-limit".into(),
            results(&captured("step-2-rate-limit")),
        ),
        (
            "Envoy · step-3-http-call".into(),
            results(&captured("step-3-http-call")),
        ),
    ];
    for (name, rows) in &columns {
        assert!(!rows.is_empty(), "no captured check results for {name}");
    }

    let loom = match install_loom() {
        Err(error) => Err(error),
        Ok(binary) => Ok(results(&run_loom(&binary))),
    };
    let loom_column = match &loom {
        Ok(rows) => rows.clone(),
        Err(_) => Vec::new(),
    };
    columns.push(("Loom · step-1-auth".into(), loom_column));

    // One row per check, in the order the scripts run them.
    let mut checks: Vec<String> = Vec::new();
    for (_, rows) in &columns {
        for (check, _) in rows {
            if !checks.contains(check) {
                checks.push(check.clone());
            }
        }
    }
    let step_1_checks: Vec<&String> = columns[0].1.iter().map(|(check, _)| check).collect();
    let mut page = String::new();
    let names: Vec<&str> = columns.iter().map(|(name, _)| name.as_str()).collect();
    let _ = writeln!(page, "| check | {} |", names.join(" | "));
    let _ = writeln!(page, "|---|{}", "---|".repeat(columns.len()));
    for check in &checks {
        let cells: Vec<String> = columns
            .iter()
            .enumerate()
            .map(
                |(index, (_, rows))| match rows.iter().find(|(name, _)| name == check) {
                    Some((_, result)) => result.to_string(),
                    None if index == columns.len() - 1
                        && loom.is_err()
                        && step_1_checks.contains(&check) =>
                    {
                        "not run".into()
                    }
                    None => "·".into(),
                },
            )
            .collect();
        let _ = writeln!(
            page,
            "| {} | {} |",
            check.replace('|', "\\|"),
            cells.join(" | ")
        );
    }
    let _ = writeln!(
        page,
        "\n`pass`: the check passed; `·`: not one of that step's checks.\n"
    );
    let _ = writeln!(page, "### Loom\n");
    let _ = writeln!(
        page,
        "Installed as the original tutorial says: `go install {LOOM_PACKAGE}`.\n"
    );
    match &loom {
        Err(error) => {
            let _ = writeln!(page, "**Not installable here**, so no check could be run. `go install` answered:\n\n```text\n{error}\n```");
        }
        Ok(_) => {
            let _ = writeln!(
                page,
                "Installed; the column above is step 1's check script against it."
            );
        }
    }
    println!("{page}");
    let path = paths::repo_root().join("src/captured/host-compatibility.md");
    std::fs::write(&path, page).expect("write the host compatibility page");
}
