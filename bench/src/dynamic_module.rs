//! Step 1's key check as an Envoy dynamic module: bench/dynamic-module/,
//! written with Envoy's Go SDK (pinned in its go.mod and go.sum), built
//! with `go build -buildmode=c-shared` into
//! `project::envoy::dynamic_modules_dir()`.
//! Envoy runs it in its own process: it must be started with
//! `GODEBUG=cgocheck=0` (xtask's bench.rs), or the SDK's first call panics
//! Go's cgo check, and the panic takes Envoy down.

use std::path::PathBuf;
use std::process::Command;

/// The shared library's file name.
pub const LIBRARY: &str = "libbook_key_check.so";

pub fn build() -> PathBuf {
    let root = project::repo_root();
    let out = project::envoy::dynamic_modules_dir().join(LIBRARY);
    let output = Command::new("go")
        .args(["build", "-buildmode=c-shared", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(root.join("bench/dynamic-module"))
        .env("CGO_ENABLED", "1")
        .output()
        .expect("run go (Go 1.24 or newer: https://go.dev/dl/)");
    assert!(
        output.status.success(),
        "building bench/dynamic-module failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

/// Which Envoy releases load the module and answer a request without a
/// key with 401: each release's Envoy (`version=binary`, from xtask) is
/// started with it alone. (release, outcome). Then the newest once more
/// without `GODEBUG=cgocheck=0`, to show what a panic in a module does.
pub fn across_releases(
    library: &std::path::Path,
    envoys: &[(String, PathBuf)],
) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = envoys
        .iter()
        .map(|(release, binary)| (release.clone(), try_release(library, release, binary, true)))
        .collect();
    if let Some((release, binary)) = envoys.last() {
        rows.push((
            format!("{release}, without `GODEBUG=cgocheck=0`"),
            try_release(library, release, binary, false),
        ));
    }
    rows
}

/// Starts `binary` with the module and says what happened.
fn try_release(
    library: &std::path::Path,
    release: &str,
    binary: &std::path::Path,
    cgocheck_off: bool,
) -> String {
    use crate::configs::{self, Filter};
    let filter = Filter::DynamicModule {
        library,
        json: serde_json::json!({"header_name": "x-api-key", "valid_keys": configs::keys(3)})
            .to_string(),
    };
    let name = format!("bench-dynamic-module-{release}-{cgocheck_off}");
    let dir = harness::stack::test_dir(&name);
    let (config, port, admin) = configs::on_free_ports(&filter, 1);
    let path = dir.join("envoy.yaml");
    std::fs::write(&path, config.text()).expect("write Envoy config");
    let mut command = Command::new(project::envoy::executable(binary));
    command
        .arg("-c")
        .arg(&path)
        .args(["--concurrency", "1", "--disable-hot-restart"])
        .args(["--log-level", "warn"]);
    if !cgocheck_off {
        command.env_remove("GODEBUG");
    }
    let log = dir.join("envoy.log");
    let mut server = harness::process::Server::start("envoy (dynamic module)", command, &log);
    let ready = server
        .wait_for(std::time::Duration::from_secs(30), || {
            project::envoy::is_ready(admin)
        })
        .is_ok();
    let text = server.log();
    if ready {
        let status = harness::http::get(port, "/checked", &[])
            .map(|r| r.status)
            .unwrap_or(0);
        let warned = text.contains("is deprecated");
        return format!(
            "loads; a request without a key: {status}{}",
            if warned {
                " (logs: ABI version deprecated)"
            } else {
                ""
            }
        );
    }
    if let Some(panic) = text.lines().find(|l| l.starts_with("panic: ")) {
        // The Go runtime's panic ends the whole process.
        let exit = server
            .exited()
            .map(|status| status.to_string())
            .unwrap_or_else(|| "still running".into());
        let what = panic.rsplit(": ").next().unwrap_or(panic);
        return format!("Envoy's process ends at start-up ({exit}): the Go SDK panics, `{what}`");
    }
    // Envoy's reason, after its last "Failed to load dynamic module: ", up
    // to the end of the quoted error.
    let marker = "Failed to load dynamic module: ";
    let reason = text
        .lines()
        .find(|l| l.contains(marker))
        .and_then(|l| l.rsplit(marker).next())
        .map(|r| r.split('`').next().unwrap_or(r).trim().to_owned())
        .unwrap_or_else(|| "Envoy did not start".into());
    format!("refused: {}", shorten_hashes(&reason))
}

/// A long hex digest (an ABI hash) cut to its first 12 digits.
fn shorten_hashes(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            if word.len() > 16 && word.chars().all(|c| c.is_ascii_hexdigit()) {
                format!("{}…", &word[..12])
            } else {
                word.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
