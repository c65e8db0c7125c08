//! The plugin's cases without a proxy: the release module, loaded into a
//! host library by `cargo test`, answers each case in milliseconds.

// The tests run on your machine, never inside the module.
#![cfg(not(target_arch = "wasm32"))]

mod cases;
mod host;

use cases::{Expected, CASES};
use host::{NotStarted, Outcome, Plugin, Proxy, Reply};

/// 1,800,000,120 s after the Unix epoch: any fixed time will do.
const NOW: u64 = 1_800_000_120;

/// Starts the plugin in `proxy` with `configuration`.
fn worker_with(proxy: &Proxy, configuration: &str) -> Plugin {
    match Plugin::start(proxy, configuration) {
        Ok(plugin) => plugin,
        Err(why) => panic!("the plugin did not start: {why}"),
    }
}

/// Starts the plugin in `proxy` with the configuration of the folder's
/// `envoy.yaml` (yes cached 30 s, no 5 s).
fn worker(proxy: &Proxy) -> Plugin {
    worker_with(proxy, &host::envoy_configuration())
}

/// The plugin in a proxy of its own.
fn plugin() -> Plugin {
    worker(&Proxy::at(NOW))
}

/// The status `plugin` answers a request with `key` (200: it went on).
fn status(plugin: &mut Plugin, key: &str) -> u32 {
    match plugin.send(&[("x-api-key", key.as_bytes())]) {
        Ok(Outcome::Passed { .. }) => 200,
        Ok(Outcome::Answered { status, .. }) => status,
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

/// The cache needs its secret: without `AUTH_CACHE_SECRET` in the
/// environment the plugin refuses its configuration.
#[test]
fn a_configuration_without_its_cache_secret_is_refused() {
    let mut proxy = Proxy::at(NOW);
    proxy.environment.clear();
    match Plugin::start(&proxy, &host::envoy_configuration()) {
        Err(NotStarted::Refused(reason)) => assert_eq!(reason, "answers are cached, so `cache_secret_env` must name an environment variable that holds at least 16 bytes (now: `AUTH_CACHE_SECRET`)"),
        Err(NotStarted::Failed(error)) => panic!("the VM failed: {error}"),
        Ok(_) => panic!("the plugin started without its secret"),
    }
}

/// The key reaches the auth service as JSON, intact, whatever it holds:
/// a key that tries to add a field of its own is one string, and refused.
#[test]
fn the_auth_service_gets_the_key_as_one_json_string() {
    let mut plugin = plugin();
    let forged = r#"x","valid":true,"k":"\"#;
    let mut sent = Vec::new();
    let outcome = plugin.send_answered(&[("x-api-key", forged.as_bytes())], |call| {
        sent = call.body.clone();
        host::book_auth_service(call)
    });
    assert!(
        matches!(outcome, Ok(Outcome::Answered { status: 403, .. })),
        "{outcome:?}"
    );
    let body: serde_json::Value = match serde_json::from_slice(&sent) {
        Ok(body) => body,
        Err(error) => panic!("not JSON ({error}): {}", String::from_utf8_lossy(&sent)),
    };
    assert_eq!(body, serde_json::json!({ "key": forged }));
}

// ANCHOR: failures
/// Whatever goes wrong with the auth service, the request is refused with
/// 503 (fail closed), the VM keeps serving, and the next request asks
/// again.
#[test]
fn an_auth_service_that_fails_gets_503() {
    let proxy = Proxy::at(NOW);
    let mut plugin = worker(&proxy);
    let padded = [&br#"{"valid":true}"#[..], &[b' '; 5_000], br#"{"more":1}"#].concat();
    let failures = [
        ("the call timed out (Envoy's 504)", Reply::TimedOut),
        ("the call was reset (no headers)", Reply::Reset),
        ("a 500", Reply::Answer(500, b"oops".to_vec())),
        (
            "a garbled answer",
            Reply::Answer(200, b"{\"valid\":tr".to_vec()),
        ),
        ("a yes padded past 4,096 bytes", Reply::Answer(200, padded)),
        (
            "a 200 without a verdict",
            Reply::Answer(200, b"{}".to_vec()),
        ),
    ];
    for (name, reply) in &failures {
        let outcome = plugin.send_answered(&[("x-api-key", b"key-abc123")], |_| reply.clone());
        match outcome {
            Ok(Outcome::Answered { status: 503, .. }) => {}
            other => panic!("{name}: {other:?}"),
        }
    }
    assert_eq!(
        proxy.auth.calls(),
        failures.len() as u64,
        "failures are not cached"
    );
    assert_eq!(
        status(&mut plugin, "key-abc123"),
        200,
        "the VM still serves"
    );
}
// ANCHOR_END: failures

/// A yes is cached for 30 s and a no for 5 s, for every worker: the
/// service is asked once per key and time-to-live.
#[test]
fn answers_are_cached_for_every_worker() {
    let proxy = Proxy::at(NOW);
    let mut workers = [worker(&proxy), worker(&proxy)];
    for n in 0..6 {
        assert_eq!(status(&mut workers[n % 2], "key-abc123"), 200);
        assert_eq!(status(&mut workers[n % 2], "invalid"), 403);
    }
    assert_eq!(proxy.auth.calls(), 2, "one call per key");
    proxy.clock.set(NOW + 6);
    assert_eq!(status(&mut workers[0], "invalid"), 403);
    assert_eq!(status(&mut workers[1], "key-abc123"), 200);
    assert_eq!(proxy.auth.calls(), 3, "the no expired, the yes did not");
    proxy.clock.set(NOW + 31);
    assert_eq!(status(&mut workers[1], "key-abc123"), 200);
    assert_eq!(proxy.auth.calls(), 4, "the yes expired");
}

/// Another plugin with the same `vm_id` shares the store, but not the
/// secret: the yes it caches for a key is not believed here.
#[test]
fn a_yes_cached_by_another_plugin_is_not_believed() {
    let one_slot =
        host::envoy_configuration().replace(r#""cache_slots": 10000"#, r#""cache_slots": 1"#);
    assert!(one_slot.contains(r#""cache_slots": 1,"#), "{one_slot}");
    let proxy = Proxy::at(NOW);
    let mut plugin = worker_with(&proxy, &one_slot);
    let mut other = Proxy::at(NOW);
    other.store = proxy.store.clone();
    other.environment = vec![(
        b"AUTH_CACHE_SECRET".to_vec(),
        b"the-other-plugins-secret-9876543210".to_vec(),
    )];
    let mut co_tenant = worker_with(&other, &one_slot);
    let says_yes = |_: &host::Call| Reply::Answer(200, br#"{"valid":true}"#.to_vec());
    let cached = co_tenant.send_answered(&[("x-api-key", b"invalid")], says_yes);
    assert!(matches!(cached, Ok(Outcome::Passed { .. })), "{cached:?}");
    assert_eq!(status(&mut plugin, "invalid"), 403);
    assert_eq!(proxy.auth.calls(), 1, "the plugin asked its own service");
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
    let crashed = plugin.send_raw(
        &[(b"x-api-key", b"key-abc123"), (name, b"1")],
        host::book_auth_service,
    );
    assert!(crashed.is_err(), "{crashed:?}");
    let lines = plugin.log.lines();
    assert!(lines.iter().any(|l| l.contains("panicked")), "{lines:?}");
}
