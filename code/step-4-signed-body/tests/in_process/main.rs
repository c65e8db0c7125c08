//! The plugin's cases without a proxy: the release module, loaded into a
//! host library by `cargo test`, verifies each signed request in
//! milliseconds.

// The tests run on your machine, never inside the module.
#![cfg(not(target_arch = "wasm32"))]

mod cases;
mod host;
mod schemes;
mod sender;

use cases::{Arrival, Case, Expected, CASES};
use host::{NotStarted, Outcome, Plugin, Send};
use sender::sign;

/// 1,800,000,000 s after the Unix epoch: the plugin's clock, and the
/// senders'.
const NOW: u64 = 1_800_000_000;

/// Starts the plugin with the configuration of the folder's `envoy.yaml`.
fn plugin() -> Plugin {
    match Plugin::start(&host::envoy_configuration(), NOW) {
        Ok(plugin) => plugin,
        Err(why) => panic!("the plugin did not start: {why}"),
    }
}

/// Sends `case` as it arrives, and returns what became of it.
fn send(plugin: &mut Plugin, case: &Case) -> (Vec<u8>, Result<Outcome, String>) {
    let (headers, body) = sender::request(case, NOW);
    let pieces: Vec<&[u8]> = match case.arrival {
        _ if body.is_empty() => Vec::new(),
        Arrival::Whole | Arrival::WithTrailers => vec![&body],
        Arrival::Pieces(size) => body.chunks(size).collect(),
    };
    let trailers = match case.arrival {
        Arrival::WithTrailers => vec![("x-trailer".to_owned(), b"done".to_vec())],
        _ => Vec::new(),
    };
    let outcome = plugin.send(&Send {
        headers,
        pieces,
        trailers,
    });
    (body.clone(), outcome.map_err(|error| error.to_string()))
}

/// Sends every case and prints one `PASS` or `FAIL` line each, then fails
/// if any case failed.
#[test]
fn every_case_gets_its_answer() {
    let mut plugin = plugin();
    let mut failed = 0;
    for case in CASES {
        let (body, outcome) = send(&mut plugin, case);
        match judge(&case.expected, &body, outcome) {
            Ok(()) => println!("PASS  {}", case.name),
            Err(why) => {
                println!("FAIL  {}: {why}", case.name);
                failed += 1;
            }
        }
    }
    assert_eq!(failed, 0, "{failed} case(s) failed");
}

/// Whether `outcome` is what the case expects: refused with nothing of the
/// request gone on, not even its headers, or passed with the body
/// unchanged.
fn judge(expected: &Expected, sent: &[u8], outcome: Result<Outcome, String>) -> Result<(), String> {
    match (expected, outcome?) {
        (
            Expected::Refused(status, text),
            Outcome::Answered {
                status: got,
                body,
                headers_forwarded: false,
                forwarded: 0,
            },
        ) if got == *status && body.contains(text) => Ok(()),
        (Expected::Passed, Outcome::Passed { body }) if body == sent => Ok(()),
        (expected, outcome) => Err(format!("expected {expected:?}, got {outcome:?}")),
    }
}

/// No log line holds a secret or a signature.
#[test]
fn no_secret_reaches_the_log() {
    let mut plugin = plugin();
    for case in CASES {
        let _ = send(&mut plugin, case);
    }
    let lines = plugin.log.lines();
    assert!(!lines.is_empty(), "the plugin logged nothing");
    let signature = sign(cases::SECRET, NOW, cases::EVENT);
    let hex = String::from_utf8_lossy(&signature[7..]).into_owned();
    for secret in [cases::SECRET, cases::PREVIOUS_SECRET, &hex] {
        assert!(!lines.iter().any(|l| l.contains(secret)), "{lines:?}");
    }
}

/// A configuration the plugin cannot use is refused when it is loaded.
#[test]
fn a_configuration_with_a_short_secret_is_refused() {
    let short = host::envoy_configuration().replace(cases::PREVIOUS_SECRET, "too-short");
    assert_ne!(short, host::envoy_configuration());
    match Plugin::start(&short, NOW) {
        Err(NotStarted::Refused(reason)) => assert_eq!(
            reason,
            "secret number 2 in `secrets` is shorter than 16 bytes"
        ),
        Err(NotStarted::Failed(error)) => panic!("the VM failed: {error}"),
        Ok(_) => panic!("a 9-byte secret was accepted"),
    }
}

/// Where this host and Envoy differ: Envoy refuses a header name with `_`
/// when the connection manager says so (`headers_with_underscores_action:
/// REJECT_REQUEST` in `envoy.yaml`), so a second signature spelt
/// `x_signature_256` never reaches the plugin. Here it does, and the
/// plugin, which reads only `x-signature-256`, verifies the request: the
/// rule is Envoy's, and the upstream must not read that header either.
#[test]
fn a_second_signature_spelt_with_underscores_is_only_refused_by_envoy() {
    let mut plugin = plugin();
    let (mut headers, body) = sender::request(&cases::CASES[0], NOW);
    headers.push(("x_signature_256".into(), b"sha256=00".to_vec()));
    let outcome = plugin.send(&Send {
        headers,
        pieces: vec![&body],
        trailers: Vec::new(),
    });
    assert!(matches!(outcome, Ok(Outcome::Passed { .. })), "{outcome:?}");
}
