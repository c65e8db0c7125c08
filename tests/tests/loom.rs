//! Step 1 on Loom, the gateway the book's original tutorial deployed to,
//! built with the book's patches to its Proxy-Wasm host
//! (`compat/loom/patches/`): `cargo xtask test` builds it from the source
//! beside the repository and runs this test only when it could; without
//! the source it says so and leaves this test out.

use harness::capture;
use harness::checks::parse_checks;
use harness::steps;
use std::process::Command;

/// The checks of step 1's `check.sh` that Loom's configuration cannot
/// pass, and why: each is a rule Envoy's configuration expresses and
/// Loom's has no place for.
const LOOM_CONFIGURATION_LIMITS: [(&str, &str); 2] = [
    (
        "... is removed before the backend",
        "a Loom route cannot remove a request header (Envoy: request_headers_to_remove)",
    ),
    (
        "... or as X_API_Key beside it -> 400",
        "Loom has no rule for header names with underscores (Envoy: headers_with_underscores_action)",
    ),
];

#[test]
fn step_1_passes_on_patched_loom_but_for_its_configuration_limits() {
    let loom = harness::loom::patched_binary();
    let wasm = steps::build("step-1-auth");
    let run = harness::loom::run_check(&loom, "step-1-auth", &wasm, "loom-step-1")
        .unwrap_or_else(|why| panic!("{why}"));
    let checks = parse_checks(&run.output);
    assert_eq!(checks.len(), 14, "{}", run.output);
    let failed: Vec<&str> = checks
        .iter()
        .filter(|check| !check.passed)
        .map(|check| check.name.as_str())
        .collect();
    let limits: Vec<&str> = LOOM_CONFIGURATION_LIMITS
        .iter()
        .map(|(name, _)| *name)
        .collect();
    assert_eq!(failed, limits, "{}\n{}", run.output, run.log);
    // The chapter shows `bash check.sh | grep -v '^PASS'`.
    let shown: String = run
        .output
        .lines()
        .filter(|line| !line.starts_with("PASS"))
        .map(|line| format!("{line}\n"))
        .collect();
    capture::check_or_update("loom/check.txt", &shown);

    // A request without a key, as curl shows Loom's answer.
    let output = Command::new("curl")
        .args(["-s", "-i", "-w", "\\n"])
        .arg(format!("http://127.0.0.1:{}/api/users", run.port))
        .output()
        .expect("run curl");
    let answer = String::from_utf8_lossy(&output.stdout).replace('\r', "");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    capture::check_or_update_output("loom/no-key.txt", &answer);

    // The plugin's own log lines, in Loom's log, name no key.
    assert!(
        run.log
            .contains("wasm log: request without `x-api-key` header"),
        "{}",
        run.log
    );
    assert!(!run.log.contains("key-abc123"), "{}", run.log);
}
