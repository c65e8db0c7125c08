//! Step 1 (API-key auth) and its Go twin (code/go-auth) on a live Envoy:
//! every test runs against both plugins, which must behave the same.

use harness::envoy::{self, EnvoyConfig};
use harness::http;
use harness::stack::{start_with_refused_configuration, Stack};
use harness::{capture, paths, steps};

const RUST: &str = "step-1-auth";
const GO: &str = "go-auth";
const PLUGINS: [&str; 2] = [RUST, GO];

/// A step file without its opening comment block (which names the step)
/// and the book's anchor lines (only step 1's files are in the book).
fn without_header(text: &str) -> Vec<&str> {
    text.lines()
        .skip_while(|line| line.starts_with('#'))
        .filter(|line| !line.contains("ANCHOR"))
        .collect()
}

#[test]
fn check_script_passes_with_the_output_the_book_shows() {
    for plugin in PLUGINS {
        let stack = Stack::step(&format!("{plugin}-check-script"), plugin, 2);
        let (passed, output) = stack.run_check_script(plugin);
        assert!(
            passed,
            "{plugin}: check.sh failed:\n{output}\nEnvoy log: {}",
            stack.envoy.server.log_path().display()
        );
        // One capture for both: the Go plugin must print exactly what the
        // Rust one printed in the book.
        if plugin == RUST {
            capture::check_or_update("step-1-auth/check.txt", &output);
        } else {
            capture::assert_matches("step-1-auth/check.txt", &output);
        }
        let log = stack.envoy.log();
        for key in ["key-abc123", "key-def456", "key-ghi789", "invalid"] {
            assert!(
                !log.contains(key),
                "{plugin}: the Envoy log contains `{key}`"
            );
        }
    }
}

#[test]
fn the_go_folder_differs_from_step_1_only_where_it_must() {
    let rust = EnvoyConfig::for_step(RUST);
    let go = EnvoyConfig::for_step(GO);
    let (rust, go) = (without_header(rust.text()), without_header(go.text()));
    let differing: Vec<(&&str, &&str)> =
        rust.iter().zip(go.iter()).filter(|(a, b)| a != b).collect();
    assert_eq!(rust.len(), go.len());
    assert_eq!(differing.len(), 1, "{differing:?}");
    assert!(
        differing[0].0.trim_start().starts_with("filename:"),
        "{differing:?}"
    );
    let read = |step: &str| {
        std::fs::read_to_string(paths::repo_root().join("code").join(step).join("check.sh"))
            .expect("read check.sh")
    };
    let (rust, go) = (read(RUST), read(GO));
    assert_eq!(
        without_header(&rust),
        without_header(&go),
        "code/go-auth/check.sh must run exactly step 1's checks"
    );
}

#[test]
fn non_utf8_key_does_not_take_down_a_worker() {
    for plugin in PLUGINS {
        let stack = Stack::step(&format!("{plugin}-non-utf8"), plugin, 2);
        let port = stack.envoy.port;
        // Several connections, so both workers are likely to see one.
        for _ in 0..4 {
            let response = http::get(port, "/api/users", &[("x-api-key", b"\xff\xfe\x80")])
                .expect("answer to the non-UTF-8 request");
            assert_eq!(response.status, 403, "{plugin}: {response:?}");
        }
        let statuses: Vec<u16> = (0..20)
            .map(|_| {
                http::get(port, "/api/users", &[("x-api-key", b"key-abc123")])
                    .map_or(0, |r| r.status)
            })
            .collect();
        assert!(
            statuses.iter().all(|&s| s == 200),
            "{plugin}: after a non-UTF-8 key: {statuses:?}"
        );
        assert!(
            !stack.envoy.log().contains("panic"),
            "{plugin}: the plugin panicked"
        );
    }
}

#[test]
fn secrets_never_reach_the_log() {
    for plugin in PLUGINS {
        let stack = Stack::step(&format!("{plugin}-no-key-logging"), plugin, 1);
        let port = stack.envoy.port;
        for key in ["key-abc123", "a-wrong-key-0123"] {
            let _ = http::get(port, "/api/users", &[("x-api-key", key.as_bytes())]);
        }
        let log = stack.envoy.log();
        assert!(
            log.contains("unknown API key"),
            "{plugin}: nothing logged for a wrong key"
        );
        for secret in ["key-abc123", "key-def456", "a-wrong-key-0123"] {
            assert!(
                !log.contains(secret),
                "{plugin}: the log contains `{secret}`"
            );
        }
    }
}

/// Each bad configuration must keep the route closed: Envoy refuses to start
/// (or the plugin to load), the reason is logged, and /api/ never answers
/// 200. The reasons are the Rust plugin's words; the Go plugin's parser
/// words them its own way.
#[test]
fn bad_configurations_are_refused() {
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
            "`header_name` must be letters, digits and -_.",
        ),
        (
            "empty-valid-keys",
            r#"{"header_name": "X-API-Key", "valid_keys": []}"#,
            "`valid_keys` must list at least one key",
        ),
        (
            "bad-header-name",
            r#"{"header_name": "X API Key", "valid_keys": ["key-abc123"]}"#,
            "`header_name` must be letters, digits and -_.",
        ),
        (
            "empty-key",
            r#"{"header_name": "X-API-Key", "valid_keys": ["key-abc123", ""]}"#,
            "`valid_keys` must not contain an empty key",
        ),
        (
            "a-key-not-a-string",
            r#"{"header_name": "X-API-Key", "valid_keys": ["ok", 5, "key-abc123"]}"#,
            "`valid_keys` must be a list of strings",
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
    for plugin in PLUGINS {
        let wasm = steps::build(plugin);
        for (name, json, rust_reason) in cases {
            let log = start_with_refused_configuration(
                &format!("{plugin}-bad-config-{name}"),
                plugin,
                &wasm,
                json,
            );
            assert!(
                log.contains("rejected plugin configuration"),
                "{plugin} {name}: no rejection logged:\n{log}"
            );
            assert!(
                plugin != RUST || log.contains(rust_reason),
                "{name}: expected `{rust_reason}` in the log:\n{log}"
            );
            assert!(
                !log.contains("key-abc123"),
                "{plugin} {name}: a key was logged"
            );
            if plugin == RUST && name == "empty-valid-keys" {
                let lines = envoy::log_lines(&log, "wasm", &["error", "critical"]);
                capture::check_or_update("step-1-auth/bad-config.log", &lines);
            }
        }
    }
}

/// Step 1's in-process cases (code/step-1-auth/tests/in_process/cases.rs),
/// the same data, sent through Envoy: every case gets the answer it gets
/// from the module in a host library, from both plugins.
#[test]
fn the_in_process_cases_get_the_same_answers_through_envoy() {
    for plugin in PLUGINS {
        let stack = Stack::step(&format!("{plugin}-in-process-cases"), plugin, 1);
        harness::in_process_cases::check_api_key_cases(plugin, stack.envoy.port);
    }
}
