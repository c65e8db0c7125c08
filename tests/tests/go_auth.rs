//! The Go version of step 1 (code/go-auth) must behave exactly like the
//! Rust one: same Envoy config but for the .wasm path, same check script,
//! same output.

use harness::envoy::EnvoyConfig;
use harness::http;
use harness::stack::{start_with_refused_configuration, Stack};
use harness::{capture, paths, steps};

const STEP: &str = "go-auth";

/// A step file without its opening comment block (which names the step).
fn without_header(text: &str) -> Vec<&str> {
    text.lines()
        .skip_while(|line| line.starts_with('#'))
        .collect()
}

#[test]
fn config_differs_from_step_1_only_in_the_wasm_path() {
    let rust = EnvoyConfig::for_step("step-1-auth");
    let go = EnvoyConfig::for_step(STEP);
    let (rust, go) = (without_header(rust.text()), without_header(go.text()));
    let differing: Vec<(&&str, &&str)> =
        rust.iter().zip(go.iter()).filter(|(a, b)| a != b).collect();
    assert_eq!(rust.len(), go.len());
    assert_eq!(differing.len(), 1, "{differing:?}");
    assert!(
        differing[0].0.trim_start().starts_with("filename:"),
        "{differing:?}"
    );
}

#[test]
fn check_script_is_step_1s_and_passes_with_the_same_output() {
    let read = |step: &str| {
        std::fs::read_to_string(paths::repo_root().join("code").join(step).join("check.sh"))
            .expect("read check.sh")
    };
    let (rust, go) = (read("step-1-auth"), read(STEP));
    assert_eq!(
        without_header(&rust),
        without_header(&go),
        "code/go-auth/check.sh must run exactly step 1's checks"
    );
    let stack = Stack::step("go-auth-check-script", STEP, 2);
    let (passed, output) = stack.run_check_script(STEP);
    assert!(
        passed,
        "code/go-auth/check.sh failed against the Go plugin:\n{output}"
    );
    // Not a capture of its own: the Go plugin must print exactly what the
    // Rust one printed in the book.
    capture::assert_matches("step-1-auth/check.txt", &output);
    let log = stack.envoy.log();
    for key in ["key-abc123", "key-def456", "key-ghi789", "invalid"] {
        assert!(!log.contains(key), "the Envoy log contains `{key}`");
    }
}

#[test]
fn non_utf8_key_does_not_take_down_a_worker() {
    let stack = Stack::step("go-auth-non-utf8", STEP, 2);
    let port = stack.envoy.port;
    for _ in 0..4 {
        let status =
            http::get(port, "/api/users", &[("x-api-key", b"\xff\xfe\x80")]).map(|r| r.status);
        assert_eq!(status.ok(), Some(403));
    }
    let statuses: Vec<u16> = (0..20)
        .map(|_| {
            http::get(port, "/api/users", &[("x-api-key", b"key-abc123")]).map_or(0, |r| r.status)
        })
        .collect();
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
}

#[test]
fn bad_configurations_are_refused() {
    let wasm = steps::build(STEP);
    for (name, json) in [
        (
            "invalid-json",
            r#"{"header_name": "X-API-Key", "valid_keys": ["#,
        ),
        (
            "empty-valid-keys",
            r#"{"header_name": "X-API-Key", "valid_keys": []}"#,
        ),
        (
            "keys-not-a-list",
            r#"{"header_name": "X-API-Key", "valid_keys": "key-abc123"}"#,
        ),
    ] {
        let log = start_with_refused_configuration(
            &format!("go-auth-bad-config-{name}"),
            STEP,
            &wasm,
            json,
        );
        assert!(
            log.contains("rejected plugin configuration"),
            "{name}:\n{log}"
        );
        assert!(!log.contains("key-abc123"), "{name}: a key was logged");
    }
}
