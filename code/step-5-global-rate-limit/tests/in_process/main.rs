//! The plugin's cases without a proxy: the release module, loaded into a
//! host library by `cargo test`, with the test playing the rate limit
//! service.

// The tests run on your machine, never inside the module.
#![cfg(not(target_arch = "wasm32"))]

mod cases;
mod host;

use cases::{Expected, CASES};
use host::{Call, NotStarted, Outcome, Plugin, RateLimitService, Reply};
use std::collections::HashMap;
use std::sync::Arc;

/// Starts the plugin with the configuration of the folder's `envoy.yaml`,
/// its calls going to `service`.
fn plugin_for(service: &Arc<RateLimitService>) -> Plugin {
    match Plugin::start(&host::envoy_configuration(), service.clone()) {
        Ok(plugin) => plugin,
        Err(why) => panic!("the plugin did not start: {why}"),
    }
}

fn plugin() -> Plugin {
    plugin_for(&Arc::new(RateLimitService::default()))
}

// ANCHOR: answer
/// A `RateLimitResponse`, encoded by hand as the protobuf wire format
/// says (not with the plugin's code): the overall code (1 OK, 2
/// OVER_LIMIT) and one status with a limit of 5 per minute, `remaining`
/// left, and 42 s until the window resets.
fn answer(code: u8, remaining: u8) -> Vec<u8> {
    vec![
        0x08, code, // overall_code
        0x12, 14, // statuses, 14 bytes
        0x08, code, // code
        0x12, 4, 0x08, 5, 0x10, 2, // current_limit: 5 per MINUTE
        0x18, remaining, // limit_remaining
        0x22, 2, 0x08, 42, // duration_until_reset: 42 s
    ]
}
// ANCHOR_END: answer

/// The rate limit service as `envoy.yaml`'s is configured: 5 requests per
/// minute per descriptor. It counts each distinct request message, which
/// for this plugin is one per key.
#[derive(Default)]
struct Limits(HashMap<Vec<u8>, u8>);

impl Limits {
    fn answer(&mut self, call: &Call) -> Reply {
        let count = self.0.entry(call.message.clone()).or_default();
        *count = count.saturating_add(1);
        if *count <= 5 {
            Reply::Message(answer(1, 5 - *count))
        } else {
            Reply::Message(answer(2, 0))
        }
    }
}

/// Sends every case with the service saying OK, and prints one `PASS` or
/// `FAIL` line each, then fails if any case failed.
#[test]
fn every_case_gets_its_answer() {
    let mut plugin = plugin();
    let mut failed = 0;
    for case in CASES {
        let outcome = plugin.send(case.headers, |_| Reply::Message(answer(1, 4)));
        let verdict = match outcome {
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

/// The status a request with `key` gets (200: it went on), and the
/// answer's headers.
fn send_key(plugin: &mut Plugin, key: &str, limits: &mut Limits) -> (u32, Vec<(String, String)>) {
    let text = |pairs: &[(Vec<u8>, Vec<u8>)]| {
        pairs
            .iter()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    };
    match plugin.send(&[("x-api-key", key.as_bytes())], |call| limits.answer(call)) {
        Ok(Outcome::Passed { .. }) => (200, Vec::new()),
        Ok(Outcome::Answered {
            status, headers, ..
        }) => (status, text(&headers)),
        other => panic!("{key}: {other:?}"),
    }
}

/// The service says when the sixth request is over the limit; the plugin
/// answers 429 with the service's reset time and limit, and another key
/// is not affected.
#[test]
fn the_sixth_request_gets_429_with_the_services_reset() {
    let mut plugin = plugin();
    let mut limits = Limits::default();
    for n in 1..=5 {
        assert_eq!(
            send_key(&mut plugin, "key-jkl012", &mut limits).0,
            200,
            "{n}"
        );
    }
    let (status, headers) = send_key(&mut plugin, "key-jkl012", &mut limits);
    assert_eq!(status, 429);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("retry-after"), Some("42"), "{headers:?}");
    assert_eq!(header("ratelimit-policy"), Some(r#""per-key";q=5;w=60"#));
    assert_eq!(header("ratelimit"), Some(r#""per-key";r=0;t=42"#));
    assert_eq!(send_key(&mut plugin, "key-abc123", &mut limits).0, 200);
}

/// The call goes to the configured cluster and method, in the configured
/// domain, and names the key by its HMAC only: one descriptor per key,
/// which the service cannot turn back into the key.
#[test]
fn the_service_sees_a_descriptor_never_the_key() {
    let mut plugin = plugin();
    let mut messages = Vec::new();
    for key in ["key-abc123", "key-abc123", "key-def456"] {
        let sent = plugin.send(&[("x-api-key", key.as_bytes())], |call| {
            assert_eq!(call.upstream, b"rate_limit_service");
            assert_eq!(call.service, b"envoy.service.ratelimit.v3.RateLimitService");
            assert_eq!(call.method, b"ShouldRateLimit");
            messages.push(call.message.clone());
            Reply::Message(answer(1, 4))
        });
        assert!(matches!(sent, Ok(Outcome::Passed { .. })), "{sent:?}");
    }
    let contains = |message: &[u8], text: &[u8]| message.windows(text.len()).any(|w| w == text);
    for message in &messages {
        assert!(contains(message, b"proxy-wasm-book"), "the domain");
        assert!(contains(message, b"api_key_hash"), "the descriptor key");
        assert!(!contains(message, b"key-abc123") && !contains(message, b"key-def456"));
    }
    assert_eq!(messages[0], messages[1], "one descriptor per key");
    assert_ne!(messages[0], messages[2], "another key, another descriptor");
}

/// Whatever goes wrong with the service, the request is refused with 503
/// (`fail_open` is false), and the VM keeps serving.
#[test]
fn a_service_that_fails_gets_503() {
    let service = Arc::new(RateLimitService::default());
    let mut plugin = plugin_for(&service);
    let failures = [
        (
            "unavailable (refused, or timed out)",
            Reply::Status(14, String::new()),
        ),
        (
            "unknown (no Redis)",
            Reply::Status(2, "redis: connection refused".into()),
        ),
        (
            "a message cut short",
            Reply::Message(answer(1, 4)[..17].to_vec()),
        ),
        (
            "an answer of 5,000 bytes",
            Reply::Message(vec![0x08; 5_000]),
        ),
        ("the code UNKNOWN", Reply::Message(answer(0, 4))),
    ];
    for (name, reply) in &failures {
        let outcome = plugin.send(&[("x-api-key", b"key-abc123")], |_| reply.clone());
        match outcome {
            Ok(Outcome::Answered { status: 503, .. }) => {}
            other => panic!("{name}: {other:?}"),
        }
    }
    assert_eq!(service.calls(), failures.len() as u64);
    let mut limits = Limits::default();
    assert_eq!(send_key(&mut plugin, "key-abc123", &mut limits).0, 200);
}

/// No log line names a key, valid or not.
#[test]
fn no_key_reaches_the_log() {
    let mut plugin = plugin();
    for case in CASES {
        let _ = plugin.send(case.headers, |_| Reply::Status(14, String::new()));
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
    let empty = host::envoy_configuration().replace(
        r#"["key-abc123", "key-def456", "key-ghi789", "key-jkl012"]"#,
        "[]",
    );
    assert_ne!(empty, host::envoy_configuration());
    match Plugin::start(&empty, Arc::new(RateLimitService::default())) {
        Err(NotStarted::Refused(reason)) => {
            assert_eq!(reason, "`valid_keys` must list at least one key")
        }
        Err(NotStarted::Failed(error)) => panic!("the VM failed: {error}"),
        Ok(_) => panic!("the plugin accepted an empty key list"),
    }
}
