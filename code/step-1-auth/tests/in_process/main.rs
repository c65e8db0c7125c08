// ANCHOR: first_test
//! The plugin's decisions without a proxy: the release module, loaded into
//! a host library by `cargo test`, answers each request in milliseconds.

// The tests run on your machine, never inside the module.
#![cfg(not(target_arch = "wasm32"))]

mod host;

use host::{Outcome, Plugin};

/// No key: the plugin answers 401. A valid key: the request goes on, the
/// backend would see `x-auth-status: valid`, and the log never names it.
#[test]
fn a_valid_key_passes_and_no_key_is_refused() {
    let mut plugin = match Plugin::start(&host::envoy_configuration()) {
        Ok(plugin) => plugin,
        Err(why) => panic!("the plugin did not start: {why}"),
    };
    match plugin.send(&[]) {
        Ok(Outcome::Answered { status, body }) => {
            assert_eq!(
                (status, body.as_str()),
                (401, r#"{"error":"missing API key"}"#)
            );
        }
        other => panic!("no key: {other:?}"),
    }
    match plugin.send(&[("x-api-key", b"key-abc123")]) {
        Ok(Outcome::Passed { headers }) => {
            let status = (b"x-auth-status".to_vec(), b"valid".to_vec());
            assert!(headers.contains(&status), "{headers:?}");
        }
        other => panic!("a valid key: {other:?}"),
    }
    let log = plugin.log.lines();
    assert!(
        !log.iter().any(|line| line.contains("key-abc123")),
        "{log:?}"
    );
}
// ANCHOR_END: first_test

// Every case of `check.sh` the plugin decides, as data (cases.rs).
mod cases;

use cases::{Expected, CASES};
use host::NotStarted;

/// Starts the plugin with the configuration of the folder's `envoy.yaml`.
fn plugin() -> Plugin {
    match Plugin::start(&host::envoy_configuration()) {
        Ok(plugin) => plugin,
        Err(why) => panic!("the plugin did not start: {why}"),
    }
}

/// Sends every case and prints one `PASS` or `FAIL` line each, then fails
/// if any case failed.
#[test]
fn every_case_gets_its_answer() {
    let mut plugin = plugin();
    let mut failed = 0;
    for case in CASES {
        let verdict = match plugin.send(case.headers) {
            Ok(outcome) => judge(&case.expected, &outcome),
            Err(error) => Err(format!("the VM failed: {error}")),
        };
        match verdict {
            Ok(()) => println!("PASS  {}", case.name),
            Err(why) => {
                println!("FAIL  {}: {why}", case.name);
                failed += 1;
            }
        }
    }
    assert_eq!(failed, 0, "{failed} case(s) failed");
}

/// Whether `outcome` is what the case expects.
fn judge(expected: &Expected, outcome: &Outcome) -> Result<(), String> {
    match (expected, outcome) {
        (Expected::Refused(status, text), Outcome::Answered { status: got, body })
            if got == status && body.contains(text) =>
        {
            Ok(())
        }
        (Expected::Passed, Outcome::Passed { headers }) => {
            let status: Vec<&[u8]> = headers
                .iter()
                .filter(|(name, _)| name == b"x-auth-status")
                .map(|(_, value)| value.as_slice())
                .collect();
            if status == [b"valid"] {
                Ok(())
            } else {
                Err(format!("the backend would see x-auth-status {status:?}"))
            }
        }
        _ => Err(format!("expected {expected:?}, got {outcome:?}")),
    }
}

/// No log line names a key, valid or not.
#[test]
fn no_key_reaches_the_log() {
    let mut plugin = plugin();
    for case in CASES {
        let _ = plugin.send(case.headers);
    }
    let lines = plugin.log.lines();
    assert!(lines.iter().any(|l| l.contains("configured")), "{lines:?}");
    for key in ["key-abc123", "key-def456", "attacker", "invalid"] {
        assert!(!lines.iter().any(|l| l.contains(key)), "{key}: {lines:?}");
    }
}

/// The reason the plugin gives for refusing `configuration`: a refusal,
/// not a crash.
fn refusal(configuration: &str) -> String {
    match Plugin::start(configuration) {
        Err(NotStarted::Refused(reason)) => reason,
        Err(NotStarted::Failed(error)) => panic!("the VM failed: {error}"),
        Ok(_) => panic!("accepted: {configuration}"),
    }
}

/// A configuration the plugin cannot use is refused when it is loaded,
/// for its reason.
#[test]
fn a_configuration_without_keys_is_refused() {
    assert_eq!(
        refusal(r#"{"header_name": "X-API-Key", "valid_keys": []}"#),
        "`valid_keys` must list at least one key"
    );
}

/// Where this host and Envoy differ: Envoy's HTTP codec refuses a header
/// name that is not ASCII with 400 before any filter runs, so the plugin
/// never sees one. Here nothing refuses it, and the SDK's
/// `get_http_request_headers_bytes`, which turns each name into a
/// `String`, panics: the plugin relies on Envoy for this one.
#[test]
fn a_header_name_that_is_not_utf8_reaches_the_plugin_only_here_and_crashes_it() {
    let mut plugin = plugin();
    let name: &[u8] = b"x-\xff\xfe";
    let crashed = plugin.send_raw(&[(b"x-api-key", b"key-abc123"), (name, b"1")]);
    assert!(crashed.is_err(), "{crashed:?}");
    let lines = plugin.log.lines();
    assert!(lines.iter().any(|l| l.contains("panicked")), "{lines:?}");
}
