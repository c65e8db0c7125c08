//! The plugin's cases without a proxy: the release module, loaded into a
//! host library by `cargo test`, as a refresher and as workers of one
//! proxy, with the key service's answers and the clock in the test's hands.

// The tests run on your machine, never inside the module.
#![cfg(not(target_arch = "wasm32"))]

mod cases;
mod host;

use cases::{Expected, CASES};
use host::{keys, NotStarted, Outcome, Plugin, Proxy, Reply};

/// 1,800,000,000,000 ms after the Unix epoch: any fixed time will do.
const NOW_MS: u64 = 1_800_000_000_000;
/// The keys the key service of `envoy.yaml` answers with.
const BOOK_KEYS: &[&str] = &["key-abc123", "key-def456", "key-ghi789"];

fn start(proxy: &Proxy, configuration: &str) -> Plugin {
    match Plugin::start(proxy, configuration) {
        Ok(plugin) => plugin,
        Err(why) => panic!("the plugin did not start: {why:?}"),
    }
}

/// The singleton of `envoy.yaml`: it calls the key service at once.
fn refresher(proxy: &Proxy) -> Plugin {
    start(proxy, &host::envoy_configuration("refresh"))
}

/// A worker's VM, with the filter's configuration of `envoy.yaml`.
fn worker(proxy: &Proxy) -> Plugin {
    start(proxy, &host::envoy_configuration("filter"))
}

/// The refresher answers its waiting call with `reply`.
fn answer(refresher: &mut Plugin, reply: &Reply) {
    match refresher.answer(reply) {
        Ok(true) => {}
        Ok(false) => panic!("no call was waiting"),
        Err(error) => panic!("the VM failed: {error}"),
    }
}

/// `period_ms` later, the timer fires: a refresh is due, the refresher
/// calls, and `reply` answers it.
fn refresh(proxy: &Proxy, refresher: &mut Plugin, reply: &Reply) {
    proxy.clock.advance_ms(5_000);
    if let Err(error) = refresher.tick() {
        panic!("the VM failed: {error}");
    }
    answer(refresher, reply);
}

/// A proxy whose refresher has published the book's keys once.
fn proxy_with_keys() -> (Proxy, Plugin) {
    let proxy = Proxy::at_ms(NOW_MS);
    let mut singleton = refresher(&proxy);
    answer(&mut singleton, &keys(BOOK_KEYS));
    (proxy, singleton)
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
    let (proxy, _singleton) = proxy_with_keys();
    let mut plugin = worker(&proxy);
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

/// The refresher asks the cluster and path of its configuration, once at
/// start and once a period after a refresh that worked.
#[test]
fn the_refresher_calls_once_a_period() {
    let proxy = Proxy::at_ms(NOW_MS);
    let mut singleton = refresher(&proxy);
    assert_eq!(proxy.service.calls(), 1, "a call at start");
    assert_eq!(proxy.service.waiting(), ["key-service GET /keys"]);
    answer(&mut singleton, &keys(BOOK_KEYS));
    for _ in 0..4 {
        proxy.clock.advance_ms(1_000);
        assert!(singleton.tick().is_ok());
    }
    assert_eq!(proxy.service.calls(), 1, "4 s after a refresh");
    proxy.clock.advance_ms(1_000);
    assert!(singleton.tick().is_ok());
    assert_eq!(proxy.service.calls(), 2, "5 s after");
}

/// Before the first refresh, and once the list is older than the bound
/// (30 s), every request gets 503: never one let through.
#[test]
fn no_keys_or_old_keys_let_nobody_in() {
    let proxy = Proxy::at_ms(NOW_MS);
    let mut singleton = refresher(&proxy);
    let mut plugin = worker(&proxy);
    assert_eq!(status(&mut plugin, "key-abc123"), 503, "before any refresh");
    answer(&mut singleton, &keys(BOOK_KEYS));
    assert_eq!(status(&mut plugin, "key-abc123"), 200);
    proxy.clock.advance_ms(30_000);
    assert_eq!(status(&mut plugin, "key-abc123"), 200, "30 s old");
    proxy.clock.advance_ms(1);
    assert_eq!(status(&mut plugin, "key-abc123"), 503, "30.001 s old");
}

/// A new list reaches every worker at its next request: a key added is
/// accepted, a key removed refused.
#[test]
fn every_worker_uses_a_new_list() {
    let (proxy, mut singleton) = proxy_with_keys();
    let mut workers = [worker(&proxy), worker(&proxy)];
    for plugin in &mut workers {
        assert_eq!(status(plugin, "key-abc123"), 200);
    }
    refresh(&proxy, &mut singleton, &keys(&["key-def456", "key-new"]));
    for plugin in &mut workers {
        assert_eq!(status(plugin, "key-new"), 200);
        assert_eq!(status(plugin, "key-abc123"), 403);
    }
}

/// Whatever the key service answers that is not a list, the last list
/// stays in use, and the log says why without quoting the answer.
#[test]
fn a_bad_answer_keeps_the_last_list() {
    let (proxy, mut singleton) = proxy_with_keys();
    let mut plugin = worker(&proxy);
    let huge = format!(r#"{{"keys": ["{}"]}}"#, "k".repeat(70_000));
    for (reply, reason) in [
        (Reply::Reset, "the call was reset: no response headers"),
        (Reply::TimedOut, "the key service answered status 504"),
        (
            Reply::Answer(500, br#"{"keys": ["key-evil"]}"#.to_vec()),
            "the key service answered status 500",
        ),
        (
            Reply::Answer(200, b"<html>key-evil</html>".to_vec()),
            "(not JSON)",
        ),
        (
            Reply::Answer(200, huge.into_bytes()),
            "an answer of 70014 bytes, longer than the 65536 the plugin reads",
        ),
    ] {
        let before = singleton.log.count(reason);
        proxy.clock.advance_ms(1_000);
        assert!(singleton.tick().is_ok());
        if !singleton.answer(&reply).is_ok_and(|answered| answered) {
            // The next refresh is due 5 s after the last that worked.
            refresh(&proxy, &mut singleton, &reply);
        }
        assert_eq!(singleton.log.count(reason), before + 1, "{reason}");
        assert_eq!(status(&mut plugin, "key-abc123"), 200, "{reason}");
        assert_eq!(status(&mut plugin, "key-evil"), 403, "{reason}");
    }
    let log = singleton.log.lines();
    assert!(!log.iter().any(|l| l.contains("key-evil")), "{log:?}");
}

/// Another plugin of the same `vm_id` writes a list of its own, signed
/// with a secret of its own, dated now, with a version that names it: no
/// worker believes it, and a worker that held the good list keeps it.
#[test]
fn a_list_another_plugin_signs_is_not_believed() {
    let (proxy, _singleton) = proxy_with_keys();
    let mut holding = worker(&proxy);
    assert_eq!(status(&mut holding, "key-abc123"), 200);

    let mut other = Proxy::at_ms(NOW_MS + 1_000);
    other.store = proxy.store.clone();
    other.environment = vec![(
        b"KEY_LIST_SECRET".to_vec(),
        b"the-other-plugins-secret-9876543210".to_vec(),
    )];
    let mut forger = refresher(&other);
    answer(&mut forger, &keys(&["key-forged"]));

    let mut fresh = worker(&proxy);
    assert_eq!(status(&mut holding, "key-forged"), 403);
    assert_eq!(
        status(&mut holding, "key-abc123"),
        200,
        "the good list is kept"
    );
    assert_eq!(status(&mut fresh, "key-forged"), 503, "no good list to use");
    let reason = "not used: its version is not signed with this plugin's secret";
    assert_eq!(holding.log.count(reason), 1, "{:?}", holding.log.lines());
}

/// Another plugin of the same `vm_id` keeps a copy of the list and its
/// version from before a key was revoked, and writes them back: the
/// revoked key stays refused, on a worker that saw the new list and on one
/// started after the copy was written back.
#[test]
fn an_older_list_written_back_is_not_believed() {
    let (proxy, mut singleton) = proxy_with_keys();
    let co_tenant = proxy.co_tenant();
    let old_list = co_tenant.read("key-refresh.list");
    let old_version = co_tenant.read("key-refresh.version");

    refresh(&proxy, &mut singleton, &keys(&["key-def456"]));
    let mut holding = worker(&proxy);
    assert_eq!(status(&mut holding, "key-abc123"), 403, "revoked");

    co_tenant.write("key-refresh.list", &old_list);
    co_tenant.write("key-refresh.version", &old_version);
    let mut fresh = worker(&proxy);
    assert_eq!(status(&mut holding, "key-abc123"), 403, "rolled back");
    assert_eq!(status(&mut fresh, "key-abc123"), 503, "rolled back, new VM");

    // Only the version written back: it is older than the list held.
    refresh(&proxy, &mut singleton, &keys(&["key-def456"]));
    co_tenant.write("key-refresh.version", &old_version);
    assert_eq!(status(&mut holding, "key-abc123"), 403);
    assert_eq!(
        status(&mut holding, "key-def456"),
        200,
        "the list held stays"
    );
}

/// Garbage in the version entry costs one log line, not one per request,
/// and the list held stays in use.
#[test]
fn garbage_written_over_the_version_is_logged_once() {
    let (proxy, _singleton) = proxy_with_keys();
    let mut plugin = worker(&proxy);
    assert_eq!(status(&mut plugin, "key-abc123"), 200);
    proxy.co_tenant().write("key-refresh.version", &[0x7f; 44]);
    for _ in 0..20 {
        assert_eq!(status(&mut plugin, "key-abc123"), 200);
    }
    assert_eq!(plugin.log.count("the shared key list was not used"), 1);
}

/// No log line names a key, valid or not.
#[test]
fn no_key_reaches_the_log() {
    let (proxy, singleton) = proxy_with_keys();
    let mut plugin = worker(&proxy);
    for case in CASES {
        let _ = plugin.send(case.headers);
    }
    let lines = [plugin.log.lines(), singleton.log.lines()].concat();
    assert!(
        lines.iter().any(|l| l.contains("refreshed: 3 keys")),
        "{lines:?}"
    );
    for key in ["key-abc123", "key-def456", "attacker", "invalid"] {
        assert!(!lines.iter().any(|l| l.contains(key)), "{key}: {lines:?}");
    }
}

/// The reason the plugin gives for refusing `configuration`: a refusal,
/// not a crash.
fn refusal(proxy: &Proxy, configuration: &str) -> String {
    match Plugin::start(proxy, configuration) {
        Err(NotStarted::Refused(reason)) => reason,
        Err(NotStarted::Failed(error)) => panic!("the VM failed: {error}"),
        Ok(_) => panic!("accepted: {configuration}"),
    }
}

/// A configuration the plugin cannot follow is refused when it is loaded,
/// each for its reason.
#[test]
fn a_configuration_it_cannot_follow_is_refused() {
    let proxy = Proxy::at_ms(NOW_MS);
    let refresh = host::envoy_configuration("refresh");
    let with = |from: &str, to: &str| {
        let changed = refresh.replacen(from, to, 1);
        assert_ne!(
            changed, refresh,
            "no `{from}` in envoy.yaml's configuration"
        );
        changed
    };
    for (configuration, reason) in [
        (
            with(r#""every_seconds": 5"#, r#""every_seconds": 0"#),
            "`refresh`: `every_seconds` must be between 1 and 86400",
        ),
        (
            with(
                r#""every_seconds": 5"#,
                r#""every_seconds": 18446744073709551615"#,
            ),
            "`refresh`: `every_seconds` must be between 1 and 86400",
        ),
        (
            with(r#""timeout_ms": 2000"#, r#""timeout_ms": 5000"#),
            "`refresh`: `timeout_ms` must be more than 0 and less than `every_seconds`",
        ),
    ] {
        assert_eq!(refusal(&proxy, &configuration), reason, "{configuration}");
    }
    let mut unset = proxy.clone();
    unset.environment.clear();
    assert_eq!(
        refusal(&unset, &host::envoy_configuration("filter")),
        "`secret_env` must name an environment variable of the VM holding at least 16 bytes"
    );
}
