//! Step 1 (API-key auth) on a live Envoy.

use harness::capture;
use harness::envoy;
use harness::http;
use harness::stack::{start_with_refused_configuration, Stack};
use harness::steps;

const STEP: &str = "step-1-auth";

#[test]
fn check_script_passes_and_matches_the_book() {
    let stack = Stack::step("step1-check-script", STEP, 2);
    let (passed, output) = stack.run_check_script(STEP);
    assert!(
        passed,
        "check.sh failed:\n{output}\nEnvoy log: {}",
        stack.envoy.server.log_path().display()
    );
    capture::check_or_update("step-1-auth/check.txt", &output);
}

#[test]
fn non_utf8_key_does_not_take_down_a_worker() {
    let stack = Stack::step("step1-non-utf8", STEP, 2);
    let port = stack.envoy.port;
    // Several connections, so both workers are likely to see one.
    for _ in 0..4 {
        let response = http::get(port, "/api/users", &[("x-api-key", b"\xff\xfe\x80")])
            .expect("answer to the non-UTF-8 request");
        assert_eq!(response.status, 403, "{response:?}");
    }
    let statuses: Vec<u16> = (0..20)
        .map(|_| {
            http::get(port, "/api/users", &[("x-api-key", b"key-abc123")])
                .map(|r| r.status)
                .unwrap_or(0)
        })
        .collect();
    assert!(
        statuses.iter().all(|&s| s == 200),
        "after a non-UTF-8 key: {statuses:?}"
    );
    assert!(
        !stack.envoy.log().contains("panicked"),
        "the plugin panicked"
    );
}

#[test]
fn secrets_never_reach_the_log() {
    let stack = Stack::step("step1-no-key-logging", STEP, 1);
    let port = stack.envoy.port;
    for key in ["key-abc123", "a-wrong-key-0123"] {
        let _ = http::get(port, "/api/users", &[("x-api-key", key.as_bytes())]);
    }
    let log = stack.envoy.log();
    assert!(
        log.contains("unknown API key"),
        "the plugin logged nothing for a wrong key"
    );
    for secret in ["key-abc123", "key-def456", "a-wrong-key-0123"] {
        assert!(!log.contains(secret), "the Envoy log contains `{secret}`");
    }
}

/// Each bad configuration must keep the route closed: Envoy refuses to start
/// (or the plugin to load), the reason is logged, and /api/ never answers 200.
#[test]
fn bad_configurations_are_refused() {
    let wasm = steps::build(STEP);
    let cases = [
        (
            "invalid-json",
            r#"{"header_name": "X-API-Key", "valid_keys": ["#,
            "configuration is not valid: EOF",
        ),
        (
            "missing-header-name",
            r#"{"valid_keys": ["key-abc123"]}"#,
            "missing field `header_name`",
        ),
        (
            "empty-header-name",
            r#"{"header_name": "", "valid_keys": ["key-abc123"]}"#,
            "`header_name` must not be empty",
        ),
        (
            "empty-valid-keys",
            r#"{"header_name": "X-API-Key", "valid_keys": []}"#,
            "`valid_keys` must list at least one key",
        ),
        (
            "keys-not-a-list",
            r#"{"header_name": "X-API-Key", "valid_keys": "key-abc123"}"#,
            "`valid_keys` must be a list of strings",
        ),
        (
            "header-name-a-number",
            r#"{"header_name": 42, "valid_keys": ["key-abc123"]}"#,
            "invalid type: integer `42`, expected a string",
        ),
        (
            "unknown-field",
            r#"{"header_name": "X-API-Key", "valid_keys": ["k"], "valid_key": ["k"]}"#,
            "unknown field `valid_key`",
        ),
    ];
    for (name, json, expected_log) in cases {
        let log = start_with_refused_configuration(
            &format!("step1-bad-config-{name}"),
            STEP,
            &wasm,
            json,
        );
        assert!(
            log.contains("rejected plugin configuration"),
            "{name}: no rejection logged:\n{log}"
        );
        assert!(
            log.contains(expected_log),
            "{name}: expected `{expected_log}` in the log:\n{log}"
        );
        assert!(!log.contains("key-abc123"), "{name}: a key was logged");
        if name == "empty-valid-keys" {
            let lines = envoy::log_lines(&log, "wasm", &["error", "critical"]);
            capture::check_or_update("step-1-auth/bad-config.log", &lines);
        }
    }
}
