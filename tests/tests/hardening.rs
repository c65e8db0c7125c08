//! Every defect of the tutorial this book started from, shown with a
//! deliberately naive variant of a step: the variant must fail the check,
//! and the step itself must pass it. The variants are the steps' own
//! sources with the replacements below, so the book can show exactly what
//! differs.

use harness::envoy::EnvoyConfig;
use harness::http;
use harness::load;
use harness::stack::{AuthService, Stack};
use harness::steps;
use harness::variants::{self, naive};
use std::path::Path;

fn start(name: &str, example: &str, wasm: &Path, concurrency: u32) -> Stack {
    Stack::start(name, example, wasm, concurrency, |_| {}).unwrap_or_else(|log| panic!("{log}"))
}

fn status(stack: &Stack, path: &str, key: &[u8]) -> u16 {
    http::get(stack.envoy.port, path, &[("x-api-key", key)]).map_or(0, |r| r.status)
}

#[test]
fn non_utf8_header_panics_the_naive_plugin_only() {
    let naive = variants::build(
        "step-1-auth",
        "read-header-as-string",
        &[naive::READ_HEADER_AS_STRING],
    );
    let stack = start("hardening-non-utf8-naive", "step-1-auth", &naive, 1);
    assert_eq!(
        status(&stack, "/api/users", b"\xff\xfe"),
        503,
        "naive: the crashed request"
    );
    assert_eq!(
        status(&stack, "/api/users", b"key-abc123"),
        503,
        "naive: the next valid request"
    );
    assert!(
        stack.envoy.log().contains("panicked"),
        "naive: no panic in the log"
    );

    let step = Stack::step("hardening-non-utf8-step", "step-1-auth", 1);
    assert_eq!(status(&step, "/api/users", b"\xff\xfe"), 403);
    assert_eq!(status(&step, "/api/users", b"key-abc123"), 200);
    assert!(!step.envoy.log().contains("panicked"));
}

#[test]
fn naive_plugin_logs_keys_and_the_step_does_not() {
    let secret = b"a-customers-real-key-misplaced";
    let naive = variants::build("step-1-auth", "log-the-key", &[naive::LOG_THE_KEY]);
    let stack = start("hardening-logging-naive", "step-1-auth", &naive, 1);
    assert_eq!(status(&stack, "/api/users", secret), 403);
    assert!(
        stack.envoy.log().contains("a-customers-real-key-misplaced"),
        "naive: key not logged"
    );

    let step = Stack::step("hardening-logging-step", "step-1-auth", 1);
    assert_eq!(status(&step, "/api/users", secret), 403);
    assert!(
        !step.envoy.log().contains("a-customers-real-key-misplaced"),
        "step: key logged"
    );
}

#[test]
fn forged_status_header_reaches_public_routes_without_the_route_rule() {
    let wasm = steps::build("step-1-auth");
    let forged: &[(&str, &[u8])] = &[("x-auth-status", b"valid")];
    let without_rule = |config: &mut EnvoyConfig| {
        let patch = naive::PUBLIC_ROUTE_WITHOUT_RULE;
        config.replace_once(patch.from, patch.to)
    };
    let naive = Stack::start(
        "hardening-public-naive",
        "step-1-auth",
        &wasm,
        1,
        without_rule,
    )
    .unwrap_or_else(|log| panic!("{log}"));
    let echo = http::get(naive.envoy.port, "/public/info", forged).expect("answer");
    assert!(
        echo.body.contains(r#""x-auth-status":["valid"]"#),
        "naive: {echo:?}"
    );

    let step = start("hardening-public-step", "step-1-auth", &wasm, 1);
    let echo = http::get(step.envoy.port, "/public/info", forged).expect("answer");
    assert!(!echo.body.contains("x-auth-status"), "step: {echo:?}");
}

#[test]
fn copying_the_key_set_per_request_fails_the_sharing_test() {
    // As a reader runs it, with the folder's pinned toolchain. A target
    // directory holds one build of a package name, so the copy gets one of
    // its own, and no in-process tests (only its unit test is wanted).
    let run_unit_tests = |dir: &Path, target: &str| {
        project::step::cargo_in(dir)
            .args(["test", "--quiet", "--lib", "filters_share_one_key_set"])
            .env("CARGO_TARGET_DIR", harness::paths::repo_root().join(target))
            .output()
            .expect("run cargo test")
    };
    let naive = variants::patched_copy(
        "step-1-auth",
        "copy-keys-per-request",
        &naive::COPY_KEYS_PER_REQUEST,
    );
    let manifest = naive.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("read the copy's Cargo.toml");
    std::fs::write(
        &manifest,
        project::listings::before_testing_chapter("Cargo.toml", &text),
    )
    .expect("write the copy's Cargo.toml");
    let output = run_unit_tests(&naive, "target/naive/unit-tests");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success(),
        "naive: the sharing test passed:\n{text}"
    );
    assert!(text.contains("filters_share_one_key_set"), "naive: {text}");

    let step = harness::paths::repo_root().join("code/step-1-auth");
    assert!(
        run_unit_tests(&step, "target/steps-host").status.success(),
        "step: the sharing test failed"
    );
}

#[test]
fn a_per_vm_counter_lets_more_than_the_limit_through() {
    let json = r#"{"header_name": "X-API-Key", "valid_keys": ["key-abc123"], "requests_per_window": 50, "window_seconds": 86400}"#;
    let mut allowed = Vec::new();
    for (name, wasm) in [
        (
            "naive",
            variants::build("step-2-rate-limit", "count-per-vm", &[naive::COUNT_PER_VM]),
        ),
        ("step", steps::build("step-2-rate-limit")),
    ] {
        let stack = Stack::start(
            &format!("hardening-per-vm-{name}"),
            "step-2-rate-limit",
            &wasm,
            2,
            |config| config.set_plugin_configuration(json),
        )
        .unwrap_or_else(|log| panic!("{log}"));
        let keys = vec!["key-abc123"; 200];
        let results = load::concurrent_gets(stack.envoy.port, "/api/users", "x-api-key", &keys, 16);
        let ok = load::count(&results, "key-abc123", 200);
        println!("{name}: limit 50, 2 workers: {ok} of 200 answered 200");
        allowed.push(ok);
    }
    assert!(
        allowed[0] > 50,
        "naive: only {} allowed; both workers should count alone",
        allowed[0]
    );
    assert_eq!(allowed[1], 50, "step");
}

#[test]
fn a_forged_key_passes_when_json_is_built_with_format() {
    let forged = br#"x", "key": "key-abc123"#;
    let naive = variants::build(
        "step-3-http-call",
        "json-with-format",
        &[naive::JSON_WITH_FORMAT],
    );
    let step = steps::build("step-3-http-call");
    // The harness's auth service parses the JSON and keeps the last of two
    // equal fields, as many services do (the book's Lua stand-in compares
    // whole bodies, which would hide the flaw).
    let parsing_service = AuthService::Controlled {
        keys: &["key-abc123"],
        args: &[],
    };
    for (name, wasm, expected) in [("naive", naive, 200), ("step", step, 403)] {
        let stack = Stack::start_with(
            &format!("hardening-format-{name}"),
            "step-3-http-call",
            &wasm,
            1,
            &parsing_service,
            |_| {},
        )
        .unwrap_or_else(|log| panic!("{log}"));
        assert_eq!(
            status(&stack, "/api/users", forged),
            expected,
            "{name}: forged key"
        );
    }
}

#[test]
fn resuming_on_a_failed_auth_call_lets_requests_through() {
    let naive = variants::build(
        "step-3-http-call",
        "resume-on-failure",
        &[naive::RESUME_ON_FAILURE],
    );
    let step = steps::build("step-3-http-call");
    for (name, wasm, expected) in [("naive", naive, 200), ("step", step, 503)] {
        let mut stack = Stack::start_with(
            &format!("hardening-resume-{name}"),
            "step-3-http-call",
            &wasm,
            1,
            &AuthService::Controlled {
                keys: &["key-abc123"],
                args: &[],
            },
            |_| {},
        )
        .unwrap_or_else(|log| panic!("{log}"));
        stack.auth_service.as_mut().expect("auth service").stop();
        assert_eq!(
            status(&stack, "/api/users", b"key-abc123"),
            expected,
            "{name}, auth service down"
        );
    }
}
