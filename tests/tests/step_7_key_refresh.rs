//! Step 7 (keys refreshed in the background) on a live Envoy: the check
//! script; how many calls the key service gets per period, from a timer in
//! every worker's VM and from one singleton VM, with 1 and 4 workers; and,
//! on one Envoy, start-up before the first refresh, a changed list seen by
//! every worker, hostile answers, a service that is down and the staleness
//! bound.

use harness::capture;
use harness::envoy::EnvoyConfig;
use harness::http;
use harness::key_service::{Answer, KeyService};
use harness::load;
use harness::shared_data;
use harness::stack::{AuthService, Stack};
use harness::steps;
use std::time::{Duration, Instant};

const STEP: &str = "step-7-key-refresh";

/// The refresher's and the filter's JSON in the step's `envoy.yaml`.
const REFRESH_JSON: &str = r#"{"secret_env": "KEY_LIST_SECRET", "refresh": {"cluster": "key-service", "authority": "key-service", "path": "/keys", "every_seconds": 5, "timeout_ms": 2000}}"#;
const FILTER_JSON: &str = r#"{"secret_env": "KEY_LIST_SECRET", "filter": {"header_name": "X-API-Key", "max_key_age_seconds": 30}}"#;

/// The step's Envoy, calling `service`, with the refresher's period and the
/// filter's bound set to `every` and `max_age` seconds. With `in_every_vm`,
/// the refresh moves from the singleton into the filter's configuration:
/// each worker's VM polls, and there is no bootstrap extension. `also`
/// edits the configuration further.
fn start(
    test_name: &str,
    service: &KeyService,
    workers: u32,
    (every, max_age): (u64, u64),
    in_every_vm: bool,
    also: impl FnOnce(&mut EnvoyConfig),
) -> Stack {
    let wasm = steps::build(STEP);
    let refresh = REFRESH_JSON
        .replace(
            "\"every_seconds\": 5",
            &format!("\"every_seconds\": {every}"),
        )
        .replace("\"timeout_ms\": 2000", "\"timeout_ms\": 500");
    let filter = FILTER_JSON.replace(
        "\"max_key_age_seconds\": 30",
        &format!("\"max_key_age_seconds\": {max_age}"),
    );
    let edit = |config: &mut EnvoyConfig| {
        if in_every_vm {
            let text = config.text().to_owned();
            let start = text
                .find("bootstrap_extensions:")
                .expect("the bootstrap extension");
            let end = text.find("static_resources:").expect("static resources");
            config.replace_once(&text[start..end], "");
            let refresh_part = refresh
                .split_once(r#""refresh""#)
                .map(|(_, rest)| rest)
                .expect("the refresh part");
            let both = format!(
                r#"{}, "refresh"{refresh_part}"#,
                &filter[..filter.len() - 1]
            );
            config.replace_once(FILTER_JSON, &both);
        } else {
            config.replace_once(REFRESH_JSON, &refresh);
            config.replace_once(FILTER_JSON, &filter);
        }
        also(config);
    };
    let config = EnvoyConfig::for_step(STEP);
    Stack::start_config(
        test_name,
        STEP,
        config,
        &wasm,
        workers,
        &AuthService::Port(service.port),
        edit,
    )
    .unwrap_or_else(|log| panic!("{log}"))
}

/// The status and body of `/api/users` with `key`, on a new connection.
fn ask(stack: &Stack, key: &str) -> (u16, String) {
    match http::get(
        stack.envoy.port,
        "/api/users",
        &[("x-api-key", key.as_bytes())],
    ) {
        Ok(response) => (response.status, response.body),
        Err(error) => panic!("no answer from Envoy: {error}"),
    }
}

/// Polls until `key` gets `status`; panics after `limit` with Envoy's log.
fn wait_for(stack: &Stack, key: &str, status: u16, limit: Duration) -> Duration {
    let started = Instant::now();
    while started.elapsed() < limit {
        if ask(stack, key).0 == status {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "`{key}` did not get {status} within {limit:?}:\n{}",
        stack.envoy.log()
    );
}

/// Polls until Envoy's log has `text` more often than `before` times.
fn wait_for_log(stack: &Stack, text: &str, before: usize) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        if stack.envoy.log().matches(text).count() > before {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no new `{text}` in Envoy's log:\n{}", stack.envoy.log());
}

/// The thread ids of the plugin's log lines that contain `text`, and the
/// id of Envoy's main thread (the one that logs `[main]`).
fn threads_logging(stack: &Stack, text: &str) -> (Vec<String>, String) {
    let log = stack.envoy.log();
    // `[2026-12-02 18:53:57.760][6879][info][main] ...`
    let thread = |line: &str| line.split("][").nth(1).map(str::to_owned);
    let main = log
        .lines()
        .find(|line| line.contains("][main]"))
        .and_then(thread)
        .expect("a line from Envoy's main thread");
    let threads = log
        .lines()
        .filter(|l| l.contains(text))
        .filter_map(thread)
        .collect();
    (threads, main)
}

/// The key service's requests per second over `window`, once keys are in.
fn calls_per_second(stack: &Stack, service: &KeyService, window: Duration) -> f64 {
    wait_for(stack, "key-abc123", 200, Duration::from_secs(10));
    let before = service.requests();
    std::thread::sleep(window);
    (service.requests() - before) as f64 / window.as_secs_f64()
}

#[test]
fn check_script_passes_and_matches_the_book() {
    let stack = Stack::step("step7-check-script", STEP, 2);
    let (passed, output) = stack.run_check_script(STEP);
    assert!(passed, "check.sh failed:\n{output}");
    // The chapter shows `bash check.sh | sed -n '1p;$p'`: its own check,
    // and the verdict on it and step 1's.
    let first_and_last: String = [output.lines().next(), output.lines().last()]
        .into_iter()
        .flatten()
        .map(|line| format!("{line}\n"))
        .collect();
    capture::check_or_update("step-7-key-refresh/check.txt", &first_and_last);
    let log = stack.envoy.log();
    assert!(log.contains("refreshed: 3 keys"), "{log}");
    assert!(!log.contains("key-abc123"), "a key in the log:\n{log}");
    // What the reader sees of the refresher at start-up: its first call
    // answered 503 by Envoy, then the keys.
    let refresher: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("wasm log key-refresher"))
        .take(3)
        .collect();
    capture::check_or_update_log("step-7-key-refresh/start-up.log", &refresher);
}

/// A timer ticks in every VM that sets one: with the refresh in the
/// filter's configuration, each worker polls. The singleton polls once for
/// all of them. Periods of 1 s, counted over 4 s.
#[test]
fn a_timer_in_every_worker_polls_once_per_worker_and_the_singleton_once() {
    let window = Duration::from_secs(4);
    let mut measured = Vec::new();
    for (in_every_vm, workers) in [(true, 1), (true, 4), (false, 1), (false, 4)] {
        let service = KeyService::start(Answer::keys(&["key-abc123"]));
        let name = format!(
            "step7-calls-{}-{workers}",
            if in_every_vm { "every-vm" } else { "singleton" }
        );
        let stack = start(&name, &service, workers, (1, 30), in_every_vm, |_| {});
        let rate = calls_per_second(&stack, &service, window);
        // Which threads refreshed: every worker's VM and one more on the
        // main thread with the refresh in the filter's configuration; the
        // main thread alone with the singleton (which runs there).
        let (threads, main) = threads_logging(&stack, "refreshed: 1 keys");
        let mut pollers: Vec<&String> = threads.iter().collect();
        pollers.sort();
        pollers.dedup();
        let expected = if in_every_vm { workers as usize + 1 } else { 1 };
        assert_eq!(pollers.len(), expected, "{name}: threads that refreshed");
        assert!(
            pollers.contains(&&main),
            "{name}: no refresh on the main thread"
        );
        // Each poller calls once a period: over 4 periods, 4 times, or 3
        // or 5 at the window's edges.
        let per_poller = rate / expected as f64;
        measured.push(format!("{name}: {rate:.2} calls/s from {expected} VMs"));
        assert!(
            (0.75..=1.25).contains(&per_poller),
            "{name}: {rate:.2} calls per second from {expected} VMs\n{}",
            stack.envoy.log()
        );
    }
    println!("{}", measured.join("\n"));
}

/// A key list as step 7 publishes it, signed with `secret`: the refresh
/// time, the signature, each key's digest.
fn forged_list(secret: &[u8], keys: &[&str], refreshed_ms: u64) -> Vec<u8> {
    let digests: Vec<u8> = keys
        .iter()
        .flat_map(|key| mac(secret, &[b"key", key.as_bytes()]))
        .collect();
    let signature = mac(secret, &[b"list", &refreshed_ms.to_be_bytes(), &digests]);
    [&refreshed_ms.to_be_bytes()[..], &signature, &digests].concat()
}

/// A list's version entry as step 7 publishes it, signed with `secret`.
fn forged_version(secret: &[u8], cas: u32, refreshed_ms: u64) -> Vec<u8> {
    let (cas, time) = (cas.to_be_bytes(), refreshed_ms.to_be_bytes());
    let signature = mac(secret, &[b"version", &cas, &time]);
    [&cas[..], &time, &signature].concat()
}

fn mac(secret: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// One Envoy with 4 workers, a refresh every second and a bound of 3 s.
#[test]
fn refreshes_fail_closed_and_every_worker_sees_a_new_list() {
    let service = KeyService::start(Answer::Reply {
        status: 503,
        body: Vec::new(),
    });
    let mut writer = 0;
    let stack = start("step7-lifecycle", &service, 4, (1, 3), false, |config| {
        writer = shared_data::add_writer(config, "key-refresh");
    });
    let vms = stack.envoy.vms_created();

    // Start-up: Envoy serves, the plugin refuses until a refresh works.
    for _ in 0..8 {
        let (status, body) = ask(&stack, "key-abc123");
        assert_eq!(
            (status, body.as_str()),
            (503, r#"{"error":"keys not loaded yet"}"#)
        );
    }
    service.set(Answer::keys(&["key-abc123", "key-def456"]));
    wait_for(&stack, "key-abc123", 200, Duration::from_secs(3));

    // A new list: every worker uses it within one period (new connections
    // spread over the 4 workers).
    service.set(Answer::keys(&["key-def456", "key-new"]));
    let seen = wait_for(&stack, "key-new", 200, Duration::from_secs(3));
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..40 {
        assert_eq!(ask(&stack, "key-new").0, 200);
        assert_eq!(ask(&stack, "key-abc123").0, 403);
    }
    assert!(seen <= Duration::from_millis(2100), "seen after {seen:?}");

    // 100 requests at once ask the key service nothing: the refresher's
    // one call a second is all it gets.
    let before = service.requests();
    let started = Instant::now();
    let keys = ["key-new"; 100];
    let results = load::concurrent_gets(stack.envoy.port, "/api/users", "x-api-key", &keys, 100);
    assert!(
        results.iter().all(|(_, status)| *status == 200),
        "{results:?}"
    );
    let calls = service.requests() - before;
    let periods = started.elapsed().as_secs() + 1;
    assert!(calls <= periods, "{calls} calls in {:?}", started.elapsed());

    // Hostile answers: each is refused, logged without its content, and
    // the last list stays in use.
    let huge = format!(r#"{{"keys": ["{}"]}}"#, "k".repeat(1 << 20));
    let cases: [(u16, &[u8], &str); 6] = [
        (200, b"{\"keys\": [\"key-abc123\",", "(JSON cut short)"),
        (200, b"<html>keys</html>", "(not JSON)"),
        (200, b"{\"keys\": [\"\xff\xfe\"]}", "(not JSON)"),
        (200, br#"{"keys": "key-abc123"}"#, "(JSON of another shape)"),
        (500, br#"{"keys": ["key-abc123"]}"#, "answered status 500"),
        (
            200,
            huge.as_bytes(),
            "an answer of 1048590 bytes, longer than the 65536 the plugin reads",
        ),
    ];
    for (status, body, reason) in cases {
        let before = stack.envoy.log().matches(reason).count();
        service.set(Answer::Reply {
            status,
            body: body.to_vec(),
        });
        wait_for_log(&stack, reason, before);
        assert_eq!(ask(&stack, "key-new").0, 200, "{reason}");
        assert_eq!(ask(&stack, "key-abc123").0, 403, "{reason}");
        let refreshed = stack.envoy.log().matches("refreshed: 2 keys").count();
        service.set(Answer::keys(&["key-def456", "key-new"]));
        wait_for_log(&stack, "refreshed: 2 keys", refreshed);
    }

    // Another plugin with the same vm_id writes a list of its own, dated
    // now, with a key of its own, and a version naming that very write:
    // everything right but the secret, which it does not have. Only the
    // signature check refuses it. (The service fails meanwhile, so no
    // refresh writes over the forgery.)
    let pause_refreshes = || {
        let failed = stack.envoy.log().matches("answered status 503").count();
        service.set(Answer::Reply {
            status: 503,
            body: Vec::new(),
        });
        wait_for_log(&stack, "answered status 503", failed);
    };
    pause_refreshes();
    let refused = stack
        .envoy
        .log()
        .matches("its version is not signed")
        .count();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let other_secret = b"the-other-plugins-secret-9876543210";
    let forged = forged_list(other_secret, &["key-forged"], now_ms);
    let cas = shared_data::write(writer, "key-refresh.list", &forged);
    let version = forged_version(other_secret, cas, now_ms);
    shared_data::write(writer, "key-refresh.version", &version);
    // A worker that read the last good list keeps using it (403 for the
    // forged key); one that had not read it yet holds an older list, past
    // the bound by now (503). None lets the forged key in.
    for _ in 0..40 {
        assert_ne!(
            ask(&stack, "key-forged").0,
            200,
            "the forged key was let in"
        );
    }
    wait_for_log(
        &stack,
        "its version is not signed with this plugin's secret",
        refused,
    );

    // It keeps a copy of the list and its version, and writes them back
    // after a key was revoked: the revoked key stays refused.
    service.set(Answer::keys(&["key-def456", "key-new"]));
    wait_for(&stack, "key-def456", 200, Duration::from_secs(3));
    let old_list = shared_data::read(writer, "key-refresh.list");
    let old_version = shared_data::read(writer, "key-refresh.version");
    service.set(Answer::keys(&["key-new"]));
    wait_for(&stack, "key-def456", 403, Duration::from_secs(3));
    std::thread::sleep(Duration::from_millis(100));
    pause_refreshes();
    for _ in 0..20 {
        assert_eq!(ask(&stack, "key-def456").0, 403);
    }
    let refused = stack
        .envoy
        .log()
        .matches("not newer than the list in use")
        .count();
    shared_data::write(writer, "key-refresh.list", &old_list);
    shared_data::write(writer, "key-refresh.version", &old_version);
    for _ in 0..40 {
        assert_ne!(ask(&stack, "key-def456").0, 200, "a revoked key came back");
    }
    wait_for_log(
        &stack,
        "its version is not newer than the list in use",
        refused,
    );
    service.set(Answer::keys(&["key-def456", "key-new"]));
    wait_for(&stack, "key-def456", 200, Duration::from_secs(3));

    // The service goes down: the last list serves until it is 3 s old.
    service.set(Answer::Down);
    let down = Instant::now();
    let stale = wait_for(&stack, "key-new", 503, Duration::from_secs(6));
    assert!(
        stale >= Duration::from_secs(2),
        "refused {stale:?} after the service went down"
    );
    let (_, body) = ask(&stack, "key-new");
    assert_eq!(body, r#"{"error":"keys are out of date"}"#);
    println!(
        "service down: keys refused after {:?}",
        down.elapsed().min(stale)
    );
    service.set(Answer::keys(&["key-new"]));
    wait_for(&stack, "key-new", 200, Duration::from_secs(3));

    let log = stack.envoy.log();
    for secret in ["key-abc123", "key-def456", "key-new"] {
        assert!(!log.contains(secret), "a key in Envoy's log:\n{log}");
    }
    stack.envoy.assert_no_plugin_crashed(vms);
}

/// The in-process tests' cases (tests/in_process/cases.rs, step 1's), the
/// same data, sent through Envoy once the keys are in: the same answers.
#[test]
fn the_in_process_cases_get_the_same_answers_through_envoy() {
    let stack = Stack::step("step7-in-process-cases", STEP, 2);
    wait_for(&stack, "key-abc123", 200, Duration::from_secs(10));
    harness::in_process_cases::check_api_key_cases(STEP, stack.envoy.port);
}
