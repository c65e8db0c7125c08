//! The plugin's cases without a proxy: the release module, loaded into a
//! host library by `cargo test`, answers each case in milliseconds.

// The tests run on your machine, never inside the module.
#![cfg(not(target_arch = "wasm32"))]

mod cases;
mod host;

use cases::{Expected, CASES};
use host::{NotStarted, Outcome, Plugin, Proxy};

/// 1,800,000,120 s after the Unix epoch: the start of a minute, so of a
/// window of the limit.
const WINDOW_START: u64 = 1_800_000_120;

/// Starts the plugin in `proxy` with the configuration of the folder's
/// `envoy.yaml` (five requests per key per 60 s).
fn worker(proxy: &Proxy) -> Plugin {
    match Plugin::start(proxy, &host::envoy_configuration()) {
        Ok(plugin) => plugin,
        Err(why) => panic!("the plugin did not start: {why}"),
    }
}

/// The plugin in a proxy of its own, at the start of a window.
fn plugin() -> Plugin {
    worker(&Proxy::at(WINDOW_START))
}

/// The status `plugin` answers a request with `key` (200: it went on),
/// and its `retry-after` header.
fn send_key(plugin: &mut Plugin, key: &str) -> (u32, Option<String>) {
    match plugin.send(&[("x-api-key", key.as_bytes())]) {
        Ok(Outcome::Passed { .. }) => (200, None),
        Ok(Outcome::Answered {
            status, headers, ..
        }) => {
            let retry_after = headers
                .iter()
                .find(|(name, _)| name == b"retry-after")
                .map(|(_, value)| String::from_utf8_lossy(value).into_owned());
            (status, retry_after)
        }
        other => panic!("{key}: {other:?}"),
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
        (
            Expected::Refused(status, text),
            Outcome::Answered {
                status: got, body, ..
            },
        ) if got == status && body.contains(text) => Ok(()),
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

/// A configuration the plugin cannot use is refused when it is loaded.
#[test]
fn a_configuration_without_keys_is_refused() {
    let refused = Plugin::start(
        &Proxy::at(WINDOW_START),
        r#"{"header_name": "X-API-Key", "valid_keys": [],
            "requests_per_window": 5, "window_seconds": 60}"#,
    );
    match refused {
        Err(NotStarted::Refused(reason)) => {
            assert_eq!(reason, "`valid_keys` must list at least one key")
        }
        Err(NotStarted::Failed(error)) => panic!("the VM failed: {error}"),
        Ok(_) => panic!("the plugin accepted an empty key list"),
    }
}

/// Five requests per key in a window; the sixth gets 429 and the seconds
/// to the window's end, which count down; the next window starts afresh.
#[test]
fn the_sixth_request_in_a_window_waits_for_the_next() {
    let proxy = Proxy::at(WINDOW_START);
    let mut plugin = worker(&proxy);
    for n in 1..=5 {
        assert_eq!(send_key(&mut plugin, "key-jkl012"), (200, None), "{n}");
    }
    assert_eq!(
        send_key(&mut plugin, "key-jkl012"),
        (429, Some("60".into()))
    );
    assert_eq!(
        send_key(&mut plugin, "key-abc123"),
        (200, None),
        "another key"
    );
    proxy.clock.set(WINDOW_START + 45);
    assert_eq!(
        send_key(&mut plugin, "key-jkl012"),
        (429, Some("15".into()))
    );
    proxy.clock.set(WINDOW_START + 60);
    assert_eq!(send_key(&mut plugin, "key-jkl012"), (200, None));
}

// ANCHOR: two_workers
/// Two workers, each with a VM of its own, count in the one store: five
/// requests in all pass, whichever worker they reach.
#[test]
fn two_workers_share_one_count() {
    let proxy = Proxy::at(WINDOW_START);
    let mut workers = [worker(&proxy), worker(&proxy)];
    let answers: Vec<u32> = (0..8)
        .map(|n| send_key(&mut workers[n % 2], "key-jkl012").0)
        .collect();
    assert_eq!(answers, [200, 200, 200, 200, 200, 429, 429, 429]);
}
// ANCHOR_END: two_workers

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
