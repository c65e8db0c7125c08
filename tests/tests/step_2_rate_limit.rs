//! Step 2 (per-key rate limit in shared data) on a live Envoy.

use harness::capture;
use harness::envoy::EnvoyConfig;
use harness::http;
use harness::load;
use harness::stack::{self, Stack};
use harness::steps;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const STEP: &str = "step-2-rate-limit";

fn plugin_config(keys: &[&str], requests: u64, window_seconds: u64) -> String {
    serde_json::json!({
        "header_name": "X-API-Key",
        "valid_keys": keys,
        "requests_per_window": requests,
        "window_seconds": window_seconds,
    })
    .to_string()
}

fn start(test_name: &str, keys: &[&str], requests: u64, window_seconds: u64) -> Stack {
    let wasm = steps::build(STEP);
    let json = plugin_config(keys, requests, window_seconds);
    Stack::start(test_name, STEP, &wasm, 2, |config: &mut EnvoyConfig| {
        config.set_plugin_configuration(&json)
    })
    .unwrap_or_else(|log| panic!("{log}"))
}

/// Windows are aligned to the Unix epoch. Waits until at least `needed` of
/// the current window is left, so a burst cannot straddle two windows.
fn wait_for_room_in_window(window_seconds: u64, needed: Duration) {
    loop {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let into_window = Duration::from_secs(now.as_secs() % window_seconds)
            + Duration::from_nanos(u64::from(now.subsec_nanos()));
        let left = Duration::from_secs(window_seconds).saturating_sub(into_window);
        if left >= needed {
            return;
        }
        std::thread::sleep(left + Duration::from_millis(50));
    }
}

#[test]
fn check_script_passes_and_matches_the_book() {
    let stack = Stack::step("step2-check-script", STEP, 2);
    let (passed, output) = stack.run_check_script(STEP);
    assert!(passed, "check.sh failed:\n{output}");
    // The chapter shows `bash check.sh | tail -n 16`: step 2's own checks.
    capture::check_or_update(
        "step-2-rate-limit/check.txt",
        &capture::last_lines(&output, 16),
    );
}

/// The count is exact across Envoy's two worker VMs: a per-VM counter
/// would let up to 100 of these through.
#[test]
fn limit_is_exact_across_workers_under_concurrency() {
    let stack = start("step2-exact", &["key-abc123"], 50, 3600);
    wait_for_room_in_window(3600, Duration::from_secs(60));
    let keys = vec!["key-abc123"; 200];
    let results = load::concurrent_gets(stack.envoy.port, "/api/users", "x-api-key", &keys, 16);
    let ok = load::count(&results, "key-abc123", 200);
    let limited = load::count(&results, "key-abc123", 429);
    println!("200 requests, 16 in flight, 2 workers, limit 50: {ok} answered 200, {limited} answered 429");
    assert_eq!((ok, limited), (50, 150), "all results: {results:?}");
}

#[test]
fn window_resets_after_retry_after_seconds() {
    let stack = start("step2-reset", &["key-abc123"], 2, 2);
    let port = stack.envoy.port;
    let key: &[(&str, &[u8])] = &[("x-api-key", b"key-abc123")];
    wait_for_room_in_window(2, Duration::from_millis(1500));
    for _ in 0..2 {
        assert_eq!(
            http::get(port, "/api/users", key).map(|r| r.status).ok(),
            Some(200)
        );
    }
    let limited = http::get(port, "/api/users", key).expect("answer to the third request");
    assert_eq!(limited.status, 429, "{limited:?}");
    let retry_after: u64 = limited
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no numeric Retry-After: {limited:?}"));
    assert!(
        (1..=2).contains(&retry_after),
        "Retry-After {retry_after} for a 2 s window"
    );
    std::thread::sleep(Duration::from_secs(retry_after));
    let after = http::get(port, "/api/users", key).expect("answer after the window");
    assert_eq!(
        after.status, 200,
        "still limited after Retry-After: {after:?}"
    );
}

#[test]
fn two_keys_are_counted_independently_under_load() {
    let stack = start("step2-two-keys", &["key-one", "key-two"], 30, 3600);
    wait_for_room_in_window(3600, Duration::from_secs(60));
    let keys: Vec<&str> = (0..120)
        .map(|i| if i % 2 == 0 { "key-one" } else { "key-two" })
        .collect();
    let results = load::concurrent_gets(stack.envoy.port, "/api/users", "x-api-key", &keys, 16);
    for key in ["key-one", "key-two"] {
        let (ok, limited) = (
            load::count(&results, key, 200),
            load::count(&results, key, 429),
        );
        println!("{key}: {ok} answered 200, {limited} answered 429");
        assert_eq!((ok, limited), (30, 30), "{key}");
    }
}

#[test]
fn unknown_keys_are_not_counted() {
    let stack = start("step2-unknown-keys", &["key-abc123"], 3, 3600);
    wait_for_room_in_window(3600, Duration::from_secs(60));
    let port = stack.envoy.port;
    for i in 0..20 {
        let key = format!("random-{i}");
        let status =
            http::get(port, "/api/users", &[("x-api-key", key.as_bytes())]).map(|r| r.status);
        assert_eq!(status.ok(), Some(403));
    }
    let statuses: Vec<u16> = (0..4)
        .map(|_| {
            http::get(port, "/api/users", &[("x-api-key", b"key-abc123")]).map_or(0, |r| r.status)
        })
        .collect();
    assert_eq!(statuses, [200, 200, 200, 429]);
}

/// The step-2 config with a second listener running the same plugin, whose
/// VMs have `vm_id: <second_vm_id>`; returns the second listener's port.
fn add_second_listener(config: &mut EnvoyConfig, second_vm_id: &str) -> u16 {
    let text = config.text().to_owned();
    let start = text
        .find("  - name: http\n")
        .expect("the plugin's listener");
    let end = start
        + text[start..]
            .find("\n  # The upstream")
            .or_else(|| text[start..].find("\n  - name: echo\n"))
            .expect("the listener ends where the echo backend starts");
    let listener = &text[start..end];
    let port_line = listener
        .lines()
        .find(|line| line.contains("port_value: "))
        .expect("the listener's address");
    let port = stack::free_port();
    let second = listener
        .replacen("- name: http", "- name: http-second", 1)
        .replacen(
            port_line,
            &format!(
                "    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}"
            ),
            1,
        )
        .replacen("vm_id: rate-limit", &format!("vm_id: {second_vm_id}"), 1);
    assert!(second.contains(&format!("vm_id: {second_vm_id}")));
    config.replace_once(listener, &format!("{listener}\n{second}"));
    port
}

/// Shared data belongs to a `vm_id`, for the whole Envoy process: two
/// listeners running step 2 share their counters when their VMs have the
/// same `vm_id`, and count apart when they do not.
#[test]
fn counters_are_shared_by_vm_id_across_listeners() {
    let key: &[(&str, &[u8])] = &[("x-api-key", b"key-abc123")];
    for (second_vm_id, expected_on_second) in [("rate-limit", 429), ("another-plugin", 200)] {
        let wasm = steps::build(STEP);
        let json = plugin_config(&["key-abc123"], 3, 3600);
        let mut second_port = 0;
        let stack = Stack::start(
            &format!("step2-vm-id-{second_vm_id}"),
            STEP,
            &wasm,
            1,
            |config: &mut EnvoyConfig| {
                config.set_plugin_configuration(&json);
                second_port = add_second_listener(config, second_vm_id);
            },
        )
        .unwrap_or_else(|log| panic!("{log}"));
        wait_for_room_in_window(3600, Duration::from_secs(60));
        for _ in 0..3 {
            let status = http::get(stack.envoy.port, "/api/users", key).map(|r| r.status);
            assert_eq!(status.ok(), Some(200), "first listener");
        }
        let status = http::get(second_port, "/api/users", key).map(|r| r.status);
        assert_eq!(
            status.ok(),
            Some(expected_on_second),
            "second listener with vm_id `{second_vm_id}`"
        );
    }
}

/// The shared-data name step 2 counts a key under (`limiter::shared_key`):
/// SipHash with fixed keys, the same here as in the plugin.
fn counter_name(api_key: &str) -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    api_key.hash(&mut hasher);
    format!("rate-limit/{:016x}", hasher.finish())
}

/// Another plugin with step 2's `vm_id` can write over a key's counter.
/// The plugin cannot count in an entry that is not a counter: it lets the
/// key through uncounted (as for any counter it cannot use) and its log
/// says exactly why.
#[test]
fn an_entry_that_is_not_a_counter_is_named_in_the_log() {
    let wasm = steps::build(STEP);
    let json = plugin_config(&["key-abc123"], 3, 3600);
    let mut writer = 0;
    let stack = Stack::start(
        "step2-not-a-counter",
        STEP,
        &wasm,
        1,
        |config: &mut EnvoyConfig| {
            config.set_plugin_configuration(&json);
            writer = harness::shared_data::add_writer(config, "rate-limit");
        },
    )
    .unwrap_or_else(|log| panic!("{log}"));
    let name = counter_name("key-abc123");
    harness::shared_data::write(writer, &name, b"hello");
    let key: &[(&str, &[u8])] = &[("x-api-key", b"key-abc123")];
    let status = http::get(stack.envoy.port, "/api/users", key).map(|r| r.status);
    assert_eq!(status.ok(), Some(200));
    let expected = format!(
        "rate limiter unavailable (the entry `{name}` is not a counter (5 bytes)); \
         request allowed uncounted"
    );
    assert!(
        stack.envoy.log().contains(&expected),
        "{}",
        stack.envoy.log()
    );
}

/// The in-process tests' cases (tests/in_process/cases.rs, step 1's),
/// the same data, sent through Envoy get the same answers.
#[test]
fn the_in_process_cases_get_the_same_answers_through_envoy() {
    let stack = Stack::step("step2-in-process-cases", STEP, 2);
    harness::in_process_cases::check_api_key_cases(STEP, stack.envoy.port);
}
