//! Step 3 (keys checked by an external auth service) on a live Envoy.

use harness::broken_service::Behaviour;
use harness::capture;
use harness::envoy::EnvoyConfig;
use harness::http::{self, Response};
use harness::load;
use harness::stack::{AuthService, Stack};
use harness::steps;
use harness::variants::{self, naive};
use std::time::{Duration, Instant};

const STEP: &str = "step-3-http-call";
const BOOK_KEYS: [&str; 3] = ["key-abc123", "key-def456", "key-ghi789"];

fn start(test_name: &str, auth: &AuthService, edit: impl FnOnce(&mut EnvoyConfig)) -> Stack {
    let wasm = steps::build(STEP);
    Stack::start_with(test_name, STEP, &wasm, 2, auth, edit).unwrap_or_else(|log| panic!("{log}"))
}

/// The book's cache times, and the same with the cache off: the failure
/// tests need every request to call the service.
const BOOK_CACHE: &str = r#""cache_valid_seconds": 30, "cache_invalid_seconds": 5"#;

fn without_cache(config: &mut EnvoyConfig) {
    config.replace_once(
        BOOK_CACHE,
        r#""cache_valid_seconds": 0, "cache_invalid_seconds": 0"#,
    );
}

fn with_cache_seconds(seconds: u64, slots: u32) -> impl FnOnce(&mut EnvoyConfig) {
    move |config: &mut EnvoyConfig| {
        config.replace_once(
            BOOK_CACHE,
            &format!(r#""cache_valid_seconds": {seconds}, "cache_invalid_seconds": {seconds}"#),
        );
        config.replace_once(
            r#""cache_slots": 10000"#,
            &format!(r#""cache_slots": {slots}"#),
        );
    }
}

/// The harness's auth service with the book's keys and `args`.
fn controlled<'a>(args: &'a [&'a str]) -> AuthService<'a> {
    AuthService::Controlled {
        keys: &BOOK_KEYS,
        args,
    }
}

fn get_with_key(stack: &Stack, key: &[u8]) -> Response {
    http::get(stack.envoy.port, "/api/users", &[("x-api-key", key)]).expect("an answer from Envoy")
}

fn assert_no_key_logged(stack: &Stack, keys: &[&str]) {
    let log = stack.envoy.log();
    for key in keys {
        assert!(!log.contains(key), "the Envoy log contains the key `{key}`");
    }
}

#[test]
fn check_script_passes_and_matches_the_book() {
    let stack = Stack::step("step3-check-script", STEP, 2);
    let (passed, output) = stack.run_check_script(STEP);
    assert!(passed, "check.sh failed:\n{output}");
    // The chapter shows `bash check.sh | tail -n 1`: step 1's checks passed.
    capture::check_or_update(
        "step-3-http-call/check.txt",
        &capture::last_lines(&output, 1),
    );
    assert_no_key_logged(&stack, &BOOK_KEYS);
    assert_no_key_logged(&stack, &["invalid"]);
}

/// The plugin's error line for a failed auth call: what it saw, in its words.
fn logged_reason(stack: &Stack) -> String {
    stack
        .envoy
        .log()
        .lines()
        .find_map(|line| {
            line.split_once("auth service unusable: ")
                .map(|(_, r)| r.to_owned())
        })
        .unwrap_or_else(|| panic!("no `auth service unusable` line:\n{}", stack.envoy.log()))
}

/// The client's answer when the auth call failed, and how long it took.
fn refused_request(stack: &Stack) -> Duration {
    let started = Instant::now();
    let response = get_with_key(stack, b"key-abc123");
    let elapsed = started.elapsed();
    assert_eq!(response.status, 503, "{response:?}");
    assert!(
        response.body.contains("authentication unavailable"),
        "{response:?}"
    );
    elapsed
}

/// `timeout_ms` in the book's config.
const CALL_TIMEOUT: Duration = Duration::from_millis(500);

/// Envoy's timers run on libevent, which by default reads a coarse monotonic
/// clock (ticks of a few milliseconds) and caches it per loop iteration, so a
/// timeout can fire slightly before the client's clock says it is due (a CI
/// run measured 499.1 ms for 500 ms). The slack allows for that; the upper
/// bound is what the test is about.
const TIMER_SLACK: Duration = Duration::from_millis(20);

fn assert_ended_by_call_timeout(elapsed: Duration) {
    assert!(
        elapsed >= CALL_TIMEOUT - TIMER_SLACK && elapsed < CALL_TIMEOUT + Duration::from_secs(1),
        "took {elapsed:?} with a {CALL_TIMEOUT:?} call timeout"
    );
}

#[test]
fn a_stopped_service_is_envoys_503_and_refused_quickly() {
    let mut stack = start("step3-service-down", &controlled(&[]), without_cache);
    assert_eq!(
        get_with_key(&stack, b"key-abc123").status,
        200,
        "service up: valid key"
    );
    stack
        .auth_service
        .as_mut()
        .expect("auth service started")
        .stop();
    let elapsed = refused_request(&stack);
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    let reason = logged_reason(&stack);
    println!("service stopped: {reason}");
    assert!(
        reason.starts_with("status 503 from Envoy, which could not get an answer"),
        "{reason}"
    );
}

#[test]
fn a_service_that_closes_connections_is_envoys_503() {
    let stack = start(
        "step3-service-closes",
        &AuthService::Broken(Behaviour::ClosesAtOnce),
        |_| {},
    );
    let elapsed = refused_request(&stack);
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    let reason = logged_reason(&stack);
    println!("service closes at once: {reason}");
    assert!(
        reason.starts_with("status 503 from Envoy, which could not get an answer"),
        "{reason}"
    );
}

/// A request the plugin holds is not covered by the route's timeout (the
/// router never saw it): the call's own timeout is what ends the wait.
#[test]
fn a_service_that_never_answers_is_cut_off_by_the_call_timeout() {
    let stack = start(
        "step3-service-silent",
        &AuthService::Broken(Behaviour::NeverAnswers),
        |_| {},
    );
    let elapsed = refused_request(&stack);
    println!("service never answers: 503 after {elapsed:?}");
    assert_ended_by_call_timeout(elapsed);
    let reason = logged_reason(&stack);
    assert!(
        reason.starts_with("status 504 from Envoy: no answer within the call's timeout"),
        "{reason}"
    );
}

#[test]
fn a_slow_service_is_cut_off_by_the_call_timeout() {
    let auth = controlled(&["--delay-ms", "3000"]);
    let stack = start("step3-slow-service", &auth, |_| {});
    let elapsed = refused_request(&stack);
    println!("slow auth service: 503 after {elapsed:?}");
    assert_ended_by_call_timeout(elapsed);
    let reason = logged_reason(&stack);
    assert!(
        reason.starts_with("status 504 from Envoy: no answer within the call's timeout"),
        "{reason}"
    );
}

#[test]
fn keys_with_quotes_and_backslashes_are_sent_intact_and_cannot_forge_json() {
    let odd_key = r#"we"ird\key"#;
    let auth = AuthService::Controlled {
        keys: &["key-abc123", odd_key],
        args: &[],
    };
    let stack = start("step3-json-escaping", &auth, |_| {});
    assert_eq!(
        get_with_key(&stack, odd_key.as_bytes()).status,
        200,
        "the odd key arrived changed"
    );
    // With format!-built JSON this becomes {"key": "x", "key": "key-abc123"},
    // and a JSON parser that keeps the last duplicate field sees a valid key.
    let forged = r#"x", "key": "key-abc123"#;
    assert_eq!(
        get_with_key(&stack, forged.as_bytes()).status,
        403,
        "forged JSON accepted"
    );
    assert_no_key_logged(&stack, &[odd_key, "key-abc123"]);
}

#[test]
fn auth_service_errors_and_garbage_give_503_with_the_reason_logged() {
    for (answer, expected) in [
        ("server-error", "the auth service answered status 500"),
        ("garbage", "200 with a body that is not {\"valid\": bool}"),
    ] {
        let args = ["--answer", answer];
        let auth = controlled(&args);
        let stack = start(&format!("step3-service-answers-{answer}"), &auth, |_| {});
        refused_request(&stack);
        let reason = logged_reason(&stack);
        assert!(reason.starts_with(expected), "{answer}: {reason}");
    }
}

#[test]
fn unknown_cluster_gives_503_without_a_panic() {
    let stack = start("step3-unknown-cluster", &AuthService::InConfig, |config| {
        config.replace_once(
            r#""auth_cluster": "auth-service""#,
            r#""auth_cluster": "no-such-cluster""#,
        )
    });
    for _ in 0..3 {
        let response = get_with_key(&stack, b"key-abc123");
        assert_eq!(response.status, 503, "{response:?}");
    }
    let log = stack.envoy.log();
    assert!(
        log.contains("could not call the auth service (cluster `no-such-cluster`)"),
        "{log}"
    );
    assert!(!log.contains("panicked"), "the plugin panicked");
}

#[test]
fn fifty_concurrent_valid_requests_all_succeed() {
    let stack = start("step3-concurrent", &AuthService::InConfig, |_| {});
    let keys: Vec<&str> = (0..50).map(|i| BOOK_KEYS[i % 3]).collect();
    let results = load::concurrent_gets(stack.envoy.port, "/api/users", "x-api-key", &keys, 50);
    let ok = results.iter().filter(|(_, status)| *status == 200).count();
    println!("50 concurrent valid requests: {ok} answered 200");
    assert_eq!(ok, 50, "{results:?}");
}

/// One line of `/stats/prometheus` (`name value`), or `None`.
fn prometheus_value(stack: &Stack, name: &str) -> Option<u64> {
    stack
        .envoy
        .admin("/stats/prometheus")
        .lines()
        .find_map(|line| {
            let (metric, value) = line.rsplit_once(' ')?;
            let metric = metric.split('{').next()?;
            (metric == name).then(|| value.parse().ok())?
        })
}

/// The plugin's counters after a known sequence of requests, in both of
/// Envoy's formats, and the latency histogram's count once Envoy has
/// merged it (histograms reach the admin output at each stats flush).
#[test]
fn metrics_count_each_outcome() {
    // With the book's cache: the first request with a key asks the
    // service, the next ones within the time-to-live do not.
    let mut stack = start("step3-metrics", &controlled(&[]), |_| {});
    let port = stack.envoy.port;
    for _ in 0..3 {
        assert_eq!(get_with_key(&stack, b"key-abc123").status, 200);
    }
    for _ in 0..2 {
        assert_eq!(get_with_key(&stack, b"not-a-key").status, 403);
    }
    assert_eq!(
        http::get(port, "/api/users", &[]).map(|r| r.status).ok(),
        Some(401)
    );
    let twice = http::get(
        port,
        "/api/users",
        &[("x-api-key", b"key-abc123"), ("x-api-key", b"other")],
    );
    assert_eq!(twice.map(|r| r.status).ok(), Some(400));
    stack
        .auth_service
        .as_mut()
        .expect("auth service started")
        .stop();
    // A key not asked before: not in the cache, so the stopped service is
    // called, and fails.
    assert_eq!(get_with_key(&stack, b"key-def456").status, 503);

    let stats = stack
        .envoy
        .admin("/stats?filter=^wasmcustom[.]auth_plugin[.]");
    let counters: String = stats
        .lines()
        .filter(|line| !line.contains("auth_call_ms"))
        .map(|line| format!("{line}\n"))
        .collect();
    for expected in [
        "wasmcustom.auth_plugin.allowed: 3",
        "wasmcustom.auth_plugin.refused.unknown_key: 2",
        "wasmcustom.auth_plugin.refused.missing_key: 1",
        "wasmcustom.auth_plugin.refused.repeated_key: 1",
        "wasmcustom.auth_plugin.auth_service_failed: 1",
        "wasmcustom.auth_plugin.cache.hit: 3",
        "wasmcustom.auth_plugin.cache.miss: 3",
    ] {
        assert!(counters.contains(expected), "no `{expected}` in:\n{stats}");
    }
    assert_eq!(prometheus_value(&stack, "auth_plugin_allowed"), Some(3));

    // Three calls reached Envoy's HTTP client: one yes, one no, one failed;
    // the other valid and unknown keys were answered from the cache.
    // Envoy merges a histogram's values at its stats flush.
    let calls = || prometheus_value(&stack, "auth_plugin_auth_call_ms_count");
    project::wait::until(Duration::from_secs(15), || calls() == Some(3));
    assert_eq!(calls(), Some(3), "the auth call histogram's count");
    let prometheus: String = stack
        .envoy
        .admin("/stats/prometheus")
        .lines()
        .filter(|line| {
            line.starts_with("auth_plugin_") && !line.contains("_bucket") && !line.contains("_sum")
        })
        .map(|line| format!("{line}\n"))
        .collect();
    capture::check_or_update_stats(
        "step-3-http-call/metrics.txt",
        &format!("$ curl -s 'http://127.0.0.1:9091/stats?filter=^wasmcustom[.]auth_plugin[.]' | grep -v auth_call_ms\n{counters}\n$ curl -s http://127.0.0.1:9091/stats/prometheus | grep '^auth_plugin_'\n{prometheus}"),
    );
}

/// The validation requests the harness's auth service has logged. The
/// service writes its log when it starts, so a missing log is a failure,
/// never zero calls.
fn service_calls(stack: &Stack) -> usize {
    let path = stack.dir.join("auth-service.log");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .matches("validation request")
        .count()
}

fn cache_counter(stack: &Stack, name: &str) -> u64 {
    prometheus_value(stack, &format!("auth_plugin_cache_{name}")).unwrap_or(0)
}

/// The cache helps only once an answer is in it: 100 requests sent at once
/// with one key it has not seen, to a service that answers in 250 ms, each
/// find the cache empty and ask on their own.
#[test]
fn a_burst_for_one_new_key_asks_the_service_once_per_request_in_flight() {
    let stack = start("step3-burst", &controlled(&["--delay-ms", "250"]), |_| {});
    let keys = ["key-abc123"; 100];
    let results = load::concurrent_gets(stack.envoy.port, "/api/users", "x-api-key", &keys, 100);
    assert!(
        results.iter().all(|(_, status)| *status == 200),
        "{results:?}"
    );
    let calls = service_calls(&stack);
    println!("100 concurrent requests for one new key: {calls} calls to the auth service");
    assert!(
        calls >= 20,
        "{calls} calls: the requests did not ask on their own"
    );
}

/// Many requests with one key: one call to the service per time-to-live,
/// and the plugin's hit and miss counters agree with the service's count.
#[test]
fn cached_answers_mean_one_call_per_time_to_live() {
    let stack = start(
        "step3-cache",
        &controlled(&[]),
        with_cache_seconds(2, 10_000),
    );
    for _ in 0..20 {
        assert_eq!(get_with_key(&stack, b"key-abc123").status, 200);
    }
    for _ in 0..10 {
        assert_eq!(get_with_key(&stack, b"not-a-key").status, 403);
    }
    assert_eq!(service_calls(&stack), 2, "one call per key");
    assert_eq!(cache_counter(&stack, "miss"), 2);
    assert_eq!(cache_counter(&stack, "hit"), 28);

    // After the time-to-live, the next request asks again.
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(get_with_key(&stack, b"key-abc123").status, 200);
    assert_eq!(service_calls(&stack), 3);
    assert_eq!(
        cache_counter(&stack, "miss") as usize,
        service_calls(&stack)
    );
    capture::check_or_update(
        "step-3-http-call/cache.txt",
        &format!(
            "20 requests with key-abc123, 10 with not-a-key, then key-abc123 after the 2 s time-to-live\n\
             calls to the auth service: {}\n\
             auth_plugin_cache_hit: {}\n\
             auth_plugin_cache_miss: {}\n",
            service_calls(&stack),
            cache_counter(&stack, "hit"),
            cache_counter(&stack, "miss")
        ),
    );
}

/// A key the service stops accepting keeps working from the cache, but no
/// longer than the time-to-live of a yes.
#[test]
fn a_revoked_key_stops_working_within_the_time_to_live() {
    let stack = start(
        "step3-cache-revoked",
        &controlled(&[]),
        with_cache_seconds(2, 10_000),
    );
    assert_eq!(get_with_key(&stack, b"key-def456").status, 200);
    let revoked_at = Instant::now();
    std::fs::write(stack.dir.join("keys.txt"), "key-abc123\nkey-ghi789\n")
        .expect("rewrite the auth service's keys");
    assert_eq!(
        get_with_key(&stack, b"key-def456").status,
        200,
        "from the cache"
    );
    let mut status = 200;
    while status == 200 && revoked_at.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
        status = get_with_key(&stack, b"key-def456").status;
    }
    let elapsed = revoked_at.elapsed();
    assert_eq!(
        status, 403,
        "still accepted {elapsed:?} after the revocation"
    );
    assert!(
        elapsed <= Duration::from_millis(2500),
        "refused only after {elapsed:?}"
    );
}

/// The cache holds at most `cache_slots` answers, and an answer is only
/// ever used for the key it was given for: with one slot, every key
/// shares it, and a valid key's yes never answers for another key.
#[test]
fn the_cache_is_bounded_and_answers_only_for_its_own_key() {
    let stack = start(
        "step3-cache-one-slot",
        &controlled(&[]),
        with_cache_seconds(30, 1),
    );
    assert_eq!(get_with_key(&stack, b"key-abc123").status, 200);
    assert_eq!(get_with_key(&stack, b"key-abc123").status, 200);
    assert_eq!(
        service_calls(&stack),
        1,
        "the second answer came from the cache"
    );
    // Another key lands in the same slot: the stored yes is not for it.
    assert_eq!(get_with_key(&stack, b"not-a-key").status, 403);
    assert_eq!(service_calls(&stack), 2);
    // Its no took the only slot: the valid key is asked again.
    assert_eq!(get_with_key(&stack, b"key-abc123").status, 200);
    assert_eq!(service_calls(&stack), 3);
    // Headers a client sends do not change what is cached or answered.
    let forged = http::get(
        stack.envoy.port,
        "/api/users",
        &[("x-api-key", b"not-a-key"), ("x-auth-status", b"valid")],
    )
    .expect("an answer");
    assert_eq!(forged.status, 403);
    assert_no_key_logged(&stack, &BOOK_KEYS);
}

/// A call whose stream is reset after the service's answer began comes
/// back with no headers. Reading its `:status` would panic inside the SDK
/// (Envoy answers BadArgument, and the SDK panics on it), take the VM down
/// and leave the request waiting: the plugin must answer 503 at once.
#[test]
fn a_call_reset_mid_answer_is_refused_at_once_and_the_vm_survives() {
    let stack = start(
        "step3-reset-mid-answer",
        &AuthService::Broken(Behaviour::ClosesMidAnswer),
        without_cache,
    );
    let created = stack.envoy.vms_created();
    for _ in 0..3 {
        let elapsed = refused_request(&stack);
        assert!(elapsed < CALL_TIMEOUT, "took {elapsed:?}");
    }
    let reason = logged_reason(&stack);
    assert!(
        reason.starts_with("the call was reset: no response headers"),
        "{reason}"
    );
    stack.envoy.assert_no_plugin_crashed(created);
}

/// `{"valid":true}`, 5,000 spaces and `{"valid":false}`: a yes only in its
/// first 4,096 bytes. An answer longer than the plugin reads is refused
/// whole, never judged by the part that was read.
#[test]
fn an_answer_longer_than_the_plugin_reads_is_refused() {
    let args = ["--answer", "padded"];
    let stack = start("step3-padded-answer", &controlled(&args), without_cache);
    refused_request(&stack);
    let reason = logged_reason(&stack);
    assert!(
        reason.starts_with("an answer of 5029 bytes, longer than the 4096 the plugin reads"),
        "{reason}"
    );
}

/// The cache secret every Envoy here gets in `AUTH_CACHE_SECRET`.
const CACHE_SECRET: &str = project::envoy::STEP_ENVIRONMENT[0].1;

/// The secret is in no file: `envoy.yaml` names the variable, and Envoy
/// passes only the variables `host_env_keys` lists into the VM. Listing
/// none, the plugin sees no secret and refuses its configuration, so Envoy
/// does not start.
#[test]
fn the_cache_secret_comes_from_the_environment_or_envoy_does_not_start() {
    assert_eq!(project::envoy::STEP_ENVIRONMENT[0].0, "AUTH_CACHE_SECRET");
    let config = EnvoyConfig::for_step(STEP);
    assert!(
        !config.text().contains(CACHE_SECRET),
        "the secret is in envoy.yaml"
    );
    let wasm = steps::build(STEP);
    let started = Stack::start_with(
        "step3-no-secret",
        STEP,
        &wasm,
        1,
        &controlled(&[]),
        |config| {
            config.replace_once(
                r#"host_env_keys: ["AUTH_CACHE_SECRET"]"#,
                "host_env_keys: []",
            )
        },
    );
    let Err(log) = started else {
        panic!("Envoy started without the cache secret")
    };
    let lines = harness::envoy::log_lines(&log, "wasm", &["critical", "error"]);
    assert!(
        lines.contains(
            "rejected plugin configuration: answers are cached, so `cache_secret_env` \
             must name an environment variable that holds at least 16 bytes \
             (now: `AUTH_CACHE_SECRET`)"
        ),
        "{log}"
    );
}

/// The plugin's keyed MAC (code/step-3-http-call/src/cache.rs), after the
/// API key: its length, then its bytes.
fn key_mac(secret: &str, key: &str) -> hmac::Hmac<sha2::Sha256> {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| panic!("HMAC refused the key"));
    mac.update(&(key.len() as u64).to_be_bytes());
    mac.update(key.as_bytes());
    mac
}

/// The name of the slot the plugin keeps `key`'s answer in.
fn slot_name(secret: &str, key: &str, slots: u32) -> String {
    use hmac::Mac;
    let mut place = key_mac(secret, key);
    place.update(b"slot");
    let digest = place.finalize().into_bytes();
    let number = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % slots;
    format!("auth-cache.{number}")
}

/// An entry as the plugin writes it, tagged under `secret`: the answer,
/// the expiry (Unix milliseconds, big-endian), the tag over both and the key.
fn cache_entry(secret: &str, key: &str, valid: bool, expires_ms: u64) -> Vec<u8> {
    use hmac::Mac;
    let answer = u8::from(valid);
    let mut tag = key_mac(secret, key);
    tag.update(b"entry");
    tag.update(&[answer]);
    tag.update(&expires_ms.to_be_bytes());
    let mut entry = vec![answer];
    entry.extend_from_slice(&expires_ms.to_be_bytes());
    entry.extend_from_slice(&tag.finalize().into_bytes());
    entry
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Shared data is not the plugin's alone: another plugin configured with
/// the same `vm_id` can write the cache's entries. A yes for a key the
/// service refuses, written by that plugin into the key's slot, must not
/// be believed: not without the secret, not as a cached no turned into a
/// yes, and not with an expiry further away than the plugin caches a yes
/// (30 s), even tagged with the secret. The same yes, tagged with the
/// secret and a plausible expiry, is believed: the writer really writes
/// where the plugin reads.
#[test]
fn cache_entries_the_plugin_did_not_write_are_not_believed() {
    const KEY: &str = "key-not-known-to-the-service";
    let mut writer = 0;
    let stack = start("step3-forged-cache", &controlled(&[]), |config| {
        writer = harness::shared_data::add_writer(config, "auth-service-cache");
    });
    let slot = slot_name(CACHE_SECRET, KEY, 10_000);
    let a_year = 365 * 24 * 3600 * 1000;
    let soon = now_ms() + 20_000;
    let mut flipped = cache_entry(CACHE_SECRET, KEY, false, soon);
    flipped[0] = 1;
    for (what, entry, believed) in [
        (
            "a yes tagged with another secret",
            cache_entry("not-the-plugins-secret-0000", KEY, true, soon),
            false,
        ),
        ("the plugin's no, turned into a yes", flipped, false),
        (
            "a yes tagged with the secret, a year ahead",
            cache_entry(CACHE_SECRET, KEY, true, now_ms() + a_year),
            false,
        ),
        (
            "a yes tagged with the secret, 20 s ahead",
            cache_entry(CACHE_SECRET, KEY, true, soon),
            true,
        ),
    ] {
        harness::shared_data::write(writer, &slot, &entry);
        let status = get_with_key(&stack, KEY.as_bytes()).status;
        assert_eq!(status, if believed { 200 } else { 403 }, "{what}");
    }
    assert_eq!(
        service_calls(&stack),
        3,
        "asked for each of the three forgeries it refused"
    );
}

/// Polls Envoy's log for a panic for up to five seconds.
fn panics_within_5_s(stack: &Stack) -> bool {
    project::wait::until(Duration::from_secs(5), || {
        stack.envoy.log().contains("panicked at")
    })
}

/// The naive variant reads `:status` from a call that came back without
/// headers: the SDK panics, the VM crashes, and the paused request gets no
/// answer from the plugin (the client here is left waiting in a thread).
#[test]
fn reading_the_status_of_a_reset_call_crashes_the_naive_variant() {
    use harness::variants::{self, naive};
    let wasm = variants::build(
        STEP,
        "read-status-without-headers",
        &[naive::READ_STATUS_WITHOUT_HEADERS],
    );
    let stack = Stack::start_with(
        "step3-naive-reset",
        STEP,
        &wasm,
        1,
        &AuthService::Broken(Behaviour::ClosesMidAnswer),
        without_cache,
    )
    .unwrap_or_else(|log| panic!("{log}"));
    let port = stack.envoy.port;
    std::thread::spawn(move || http::get(port, "/api/users", &[("x-api-key", b"key-abc123")]));
    assert!(
        panics_within_5_s(&stack),
        "the naive variant did not panic:\n{}",
        stack.envoy.log()
    );
}

/// The naive variant believes any entry in the key's slot: a second
/// plugin's yes, without the secret's tag and a year ahead, for a key the
/// service refuses, is taken.
#[test]
fn the_naive_cache_believes_a_forged_entry() {
    use harness::variants::{self, naive};
    const KEY: &str = "key-not-known-to-the-service";
    let wasm = variants::build(STEP, "untagged-cache-entry", &naive::UNTAGGED_CACHE_ENTRY);
    let mut writer = 0;
    let stack = Stack::start_with(
        "step3-naive-cache",
        STEP,
        &wasm,
        2,
        &controlled(&[]),
        |config| {
            writer = harness::shared_data::add_writer(config, "auth-service-cache");
        },
    )
    .unwrap_or_else(|log| panic!("{log}"));
    let slot = slot_name(CACHE_SECRET, KEY, 10_000);
    let a_year_ahead = now_ms() + 365 * 24 * 3600 * 1000;
    let entry = cache_entry("not-the-plugins-secret-0000", KEY, true, a_year_ahead);
    harness::shared_data::write(writer, &slot, &entry);
    assert_eq!(
        get_with_key(&stack, KEY.as_bytes()).status,
        200,
        "the forged yes"
    );
    assert_eq!(service_calls(&stack), 0, "the service was never asked");
}

/// The in-process tests' cases (tests/in_process/cases.rs, step 1's),
/// the same data, sent through Envoy get the same answers.
#[test]
fn the_in_process_cases_get_the_same_answers_through_envoy() {
    let stack = Stack::step("step3-in-process-cases", STEP, 2);
    harness::in_process_cases::check_api_key_cases(STEP, stack.envoy.port);
}

/// The example `one-call-per-key` (a second plugin in the step's folder)
/// with the step's configuration, `workers` VMs, and `edit`.
fn start_one_call_per_key(
    test_name: &str,
    auth: &AuthService,
    workers: u32,
    edit: impl FnOnce(&mut EnvoyConfig),
) -> Stack {
    let wasm = steps::build_example(STEP, "one-call-per-key");
    Stack::start_with(test_name, STEP, &wasm, workers, auth, edit)
        .unwrap_or_else(|log| panic!("{log}"))
}

/// Step 3's burst, half with a valid key and half with an unknown one, to
/// the example: the requests for a key already asked about wait for that
/// answer, so each VM asks once per key, and each waiting request gets the
/// answer meant for its key.
#[test]
fn one_call_per_key_asks_once_per_key_per_vm() {
    for workers in [1u32, 2] {
        let stack = start_one_call_per_key(
            &format!("one-call-per-key-{workers}"),
            &controlled(&["--delay-ms", "250"]),
            workers,
            |_| {},
        );
        let keys: Vec<&str> = (0..100)
            .map(|i| {
                if i % 2 == 0 {
                    "key-abc123"
                } else {
                    "not-a-key"
                }
            })
            .collect();
        let results =
            load::concurrent_gets(stack.envoy.port, "/api/users", "x-api-key", &keys, 100);
        assert_eq!(load::count(&results, "key-abc123", 200), 50, "{results:?}");
        assert_eq!(load::count(&results, "not-a-key", 403), 50, "{results:?}");
        let calls = service_calls(&stack);
        println!("100 concurrent requests for 2 new keys, {workers} worker(s): {calls} calls");
        let most = 2 * workers as usize;
        assert!(
            (2..=most).contains(&calls),
            "{calls} calls, expected at most one per key per VM ({most})"
        );
        let answered = stack.envoy.log().matches("one answer (").count();
        assert_eq!(answered, calls, "one logged answer per call");
        if workers == 1 {
            capture::check_or_update(
                "step-3-http-call/one-call-per-key.txt",
                &format!(
                    "100 requests at once, 50 with key-abc123 and 50 with not-a-key, one worker,\n\
                     an auth service answering in 250 ms\n\
                     200 (key-abc123): {}\n\
                     403 (not-a-key): {}\n\
                     calls to the auth service: {calls}\n",
                    load::count(&results, "key-abc123", 200),
                    load::count(&results, "not-a-key", 403),
                ),
            );
        }
    }
}

/// A service slower than the call's timeout: Envoy answers the one call
/// 504, and every request that waited on it is refused 503 with it.
#[test]
fn one_call_per_key_refuses_every_waiting_request_when_the_call_times_out() {
    let stack = start_one_call_per_key(
        "one-call-per-key-timeout",
        &controlled(&["--delay-ms", "2000"]),
        1,
        |_| {},
    );
    let keys = ["key-abc123"; 20];
    let started = Instant::now();
    let results = load::concurrent_gets(stack.envoy.port, "/api/users", "x-api-key", &keys, 20);
    assert_eq!(load::count(&results, "key-abc123", 503), 20, "{results:?}");
    assert!(
        started.elapsed() < Duration::from_millis(1900),
        "refused at the call's timeout (500 ms), not at the service's answer: {:?}",
        started.elapsed()
    );
    assert_eq!(service_calls(&stack), 1);
}

/// The request that made the call leaves: Envoy cancels its call, so the
/// request waiting on it is refused at once instead of waiting for an
/// answer that will not come; the next request asks again.
#[test]
fn one_call_per_key_refuses_the_waiting_requests_when_the_asker_leaves() {
    let stack = start_one_call_per_key(
        "one-call-per-key-asker-leaves",
        &controlled(&["--delay-ms", "1500"]),
        1,
        // A timeout longer than the service's delay: only the asker's
        // leaving can end the wait early.
        |config| config.replace_once(r#""timeout_ms": 500"#, r#""timeout_ms": 5000"#),
    );
    let vms = stack.envoy.vms_created();
    let key = ("x-api-key", &b"key-abc123"[..]);
    let asker = http::ChunkedRequest::start(stack.envoy.port, "/api/users", &[key])
        .expect("send the asker's headers");
    project::wait::until(Duration::from_secs(5), || service_calls(&stack) == 1);
    assert_eq!(service_calls(&stack), 1, "the asker's call");
    let port = stack.envoy.port;
    let waiter = std::thread::spawn(move || {
        let started = Instant::now();
        let response = http::get(port, "/api/users", &[key]).map(|r| r.status);
        (response, started.elapsed())
    });
    // Both requests are held by the plugin: the asker and the one waiting.
    let active = || stack.envoy.stat("http.ingress.downstream_rq_active");
    project::wait::until(Duration::from_secs(5), || active() == Some(2));
    assert_eq!(active(), Some(2), "two requests in Envoy");
    drop(asker);
    let (status, waited) = waiter.join().expect("the waiting request's thread");
    assert_eq!(status.ok(), Some(503), "the waiting request");
    assert!(
        waited < Duration::from_millis(1200),
        "refused when the asker left, not at the service's answer: {waited:?}"
    );
    assert_eq!(service_calls(&stack), 1, "the waiting request did not ask");
    assert_eq!(
        get_with_key(&stack, b"key-abc123").status,
        200,
        "asked again"
    );
    assert_eq!(service_calls(&stack), 2);
    stack.envoy.assert_no_plugin_crashed(vms);

    // The naive variant forgets the call: every request for the key waits
    // until Envoy gives up on the stream (1 s here; 5 minutes by default).
    let naive = variants::build_example(
        STEP,
        "one-call-per-key",
        "forget-the-waiting",
        &[naive::FORGET_THE_WAITING],
    );
    let stack = Stack::start_with(
        "one-call-per-key-forget-the-waiting",
        STEP,
        &naive,
        1,
        &controlled(&["--delay-ms", "1500"]),
        |config| {
            config.replace_once(r#""timeout_ms": 500"#, r#""timeout_ms": 5000"#);
            config.replace_once(
                "stat_prefix: ingress\n",
                "stat_prefix: ingress\n          stream_idle_timeout: 1s\n",
            );
        },
    )
    .unwrap_or_else(|log| panic!("{log}"));
    let asker = http::ChunkedRequest::start(stack.envoy.port, "/api/users", &[key])
        .expect("send the asker's headers");
    project::wait::until(Duration::from_secs(5), || service_calls(&stack) == 1);
    drop(asker);
    // Past the moment the service answers (1.5 s after the call): the key
    // stays in flight even then.
    std::thread::sleep(Duration::from_millis(1600));
    let started = Instant::now();
    let later = get_with_key(&stack, b"key-abc123");
    let waited = started.elapsed();
    println!("naive: {} after {waited:?}", later.status);
    assert_eq!(
        later.status, 504,
        "a later request waits for a call that is gone"
    );
    assert!(
        waited >= Duration::from_millis(950),
        "{waited:?}: not the 1 s idle timeout"
    );
    assert_eq!(service_calls(&stack), 1, "and never asks");
}
