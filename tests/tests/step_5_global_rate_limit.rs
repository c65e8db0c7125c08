//! Step 5: one limit for a fleet. Two Envoys (two workers each) share one
//! rate limit service and one Redis, as proxies behind a load balancer do;
//! the plugin (and, in the other configuration, Envoy's own rate limit
//! filter) must hold the limit across all of them, and refuse (503) when
//! the service or Redis cannot answer.

use harness::broken_service::{Behaviour, BrokenService};
use harness::envoy::EnvoyConfig;
use harness::http::{self, Response};
use harness::load::{concurrent_gets_across, count};
use harness::rate_limit::{RateLimitService, Redis};

const STEP: &str = "step-5-global-rate-limit";
use harness::stack::{free_port, test_dir, AuthService, Stack};
use harness::{capture, steps};
use project::ports;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const KEY: &str = "key-abc123";
/// The limit of the fleet tests, per hour so that 200 requests never
/// straddle two windows (the test waits for a fresh window when one is
/// about to end).
const LIMIT: usize = 50;
const LIMITS_PER_HOUR: &str = "domain: proxy-wasm-book
descriptors:
  - key: api_key_hash
    rate_limit:
      unit: hour
      requests_per_unit: 50
";
const REQUESTS: usize = 200;
const IN_FLIGHT: usize = 16;

/// Redis, the service, and `envoys` Envoys running `config` (a file of the
/// step's folder) with the rate limit cluster pointed at the service.
struct Fleet {
    // Field order is drop order: the Envoys stop first.
    envoys: Vec<Stack>,
    service: RateLimitService,
    redis: Redis,
    dir: std::path::PathBuf,
}

impl Fleet {
    fn start(test_name: &str, config_file: &str, limits: Option<&str>) -> Fleet {
        let dir = test_dir(test_name);
        let redis = Redis::start(&dir);
        let service = match limits {
            Some(limits) => RateLimitService::start_with_limits(&dir, redis.port, limits),
            None => RateLimitService::start(&dir, redis.port),
        };
        let envoys = (0..2)
            .map(|n| {
                start_envoy(
                    &format!("{test_name}-envoy-{n}"),
                    config_file,
                    service.grpc_port,
                    |_| {},
                )
            })
            .collect();
        Fleet {
            envoys,
            service,
            redis,
            dir,
        }
    }

    fn ports(&self) -> Vec<u16> {
        self.envoys.iter().map(|stack| stack.envoy.port).collect()
    }
}

/// One Envoy (two workers) with step 5's plugin and `config_file`, its
/// rate limit cluster pointed at `service_port`.
fn start_envoy(
    test_name: &str,
    config_file: &str,
    service_port: u16,
    edit: impl FnOnce(&mut EnvoyConfig),
) -> Stack {
    let wasm = steps::build(STEP);
    let config = EnvoyConfig::for_step_file(STEP, config_file);
    Stack::start_config(
        test_name,
        STEP,
        config,
        &wasm,
        2,
        &AuthService::InConfig,
        |config| {
            config.replace_port(ports::RATE_LIMIT_SERVICE, service_port);
            edit(config);
        },
    )
    .unwrap_or_else(|log| panic!("{log}"))
}

fn get(port: u16, key: &str) -> Response {
    http::get(port, "/api/users", &[("x-api-key", key.as_bytes())]).expect("an answer")
}

fn unix_time() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
}

/// The service's windows start at whole multiples of the unit. When less
/// than `needed` is left of the current one, waits for the next to start.
fn wait_for_a_window_with(unit: Duration, needed: Duration) {
    let into = Duration::from_nanos((unix_time().as_nanos() % unit.as_nanos()) as u64);
    let left = unit - into;
    if left < needed {
        std::thread::sleep(left + Duration::from_millis(50));
    }
}

/// (200s, 429s, anything else) for the key.
fn tally(results: &[(String, u16)]) -> (usize, usize, usize) {
    let ok = count(results, KEY, 200);
    let limited = count(results, KEY, 429);
    (ok, limited, results.len() - ok - limited)
}

#[test]
fn the_fleet_holds_one_limit_where_step_2_lets_each_proxy_count_its_own() {
    let keys = vec![KEY; REQUESTS];
    wait_for_a_window_with(Duration::from_secs(3600), Duration::from_secs(30));

    // Step 5: two Envoys, one service, one Redis.
    let fleet = Fleet::start("step5-fleet", "envoy.yaml", Some(LIMITS_PER_HOUR));
    let results =
        concurrent_gets_across(&fleet.ports(), "/api/users", "x-api-key", &keys, IN_FLIGHT);
    let step_5 = tally(&results);
    assert_eq!(step_5, (LIMIT, REQUESTS - LIMIT, 0), "step 5");

    // Redis holds one counter, named by the keyed hash, never by the key.
    let counters = fleet.redis.keys();
    assert_eq!(counters.len(), 1, "{counters:?}");
    assert!(
        counters[0].starts_with("proxy-wasm-book_api_key_hash_"),
        "{counters:?}"
    );
    assert!(!counters[0].contains("abc123"), "{counters:?}");
    drop(fleet);

    // Step 2 in the same setup, with the same limit: each Envoy counts
    // in its own shared data, so each lets `LIMIT` through.
    let step_2 = "step-2-rate-limit";
    let wasm = steps::build(step_2);
    let envoys: Vec<Stack> = (0..2)
        .map(|n| {
            Stack::start(&format!("step5-fleet-step2-{n}"), step_2, &wasm, 2, |config| {
                config.set_plugin_configuration(&format!(
                    r#"{{"header_name":"X-API-Key","valid_keys":["{KEY}"],"requests_per_window":{LIMIT},"window_seconds":3600}}"#
                ))
            })
            .unwrap_or_else(|log| panic!("{log}"))
        })
        .collect();
    let ports: Vec<u16> = envoys.iter().map(|stack| stack.envoy.port).collect();
    let results = concurrent_gets_across(&ports, "/api/users", "x-api-key", &keys, IN_FLIGHT);
    let step_2 = tally(&results);
    assert_eq!(step_2, (2 * LIMIT, REQUESTS - 2 * LIMIT, 0), "step 2");

    capture::check_or_update(
        "step-5-global-rate-limit/fleet.txt",
        &format!(
            "{REQUESTS} requests with one key, {IN_FLIGHT} at a time, spread over 2 Envoys \
             (2 workers each), limit {LIMIT} per hour:\n\
             step 5, one rate limit service: {} x 200, {} x 429\n\
             step 2, shared data per Envoy:  {} x 200, {} x 429\n",
            step_5.0, step_5.1, step_2.0, step_2.1
        ),
    );
}

#[test]
fn the_window_resets() {
    let limits = "domain: proxy-wasm-book
descriptors:
  - key: api_key_hash
    rate_limit:
      unit: second
      requests_per_unit: 3
";
    let fleet = Fleet::start("step5-window", "envoy.yaml", Some(limits));
    let port = fleet.ports()[0];
    let other = fleet.ports()[1];
    // Start right after a second begins, so the four requests share it.
    wait_for_a_window_with(Duration::from_secs(1), Duration::from_secs(1));
    let statuses: Vec<u16> = [port, other, port, other]
        .iter()
        .map(|&port| get(port, KEY).status)
        .collect();
    let refused = get(port, KEY);
    assert_eq!(statuses, [200, 200, 200, 429], "three per second");
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(
        refused.header("ratelimit-policy"),
        Some("\"per-key\";q=3;w=1")
    );
    // The next second is a new window, on both Envoys.
    wait_for_a_window_with(Duration::from_secs(1), Duration::from_secs(1));
    assert_eq!(get(other, KEY).status, 200);
    assert_eq!(get(port, KEY).status, 200);
}

/// The reasons of the plugin's "rate limit service failed" log lines, in
/// order.
fn logged_failures(stack: &Stack) -> Vec<String> {
    stack
        .envoy
        .log()
        .lines()
        .filter_map(|line| {
            let (_, reason) = line.split_once("rate limit service failed (")?;
            reason
                .rsplit_once("); ")
                .map(|(reason, _)| reason.to_owned())
        })
        .collect()
}

/// The reason of the plugin's last "rate limit service failed" log line.
fn logged_failure(stack: &Stack) -> String {
    logged_failures(stack)
        .pop()
        .unwrap_or_else(|| panic!("no failure logged:\n{}", stack.envoy.log()))
}

/// Sends `n` requests; each must be refused with 503 within `within`.
fn assert_refused_quickly(port: u16, n: usize, within: Duration) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let started = Instant::now();
            let response = get(port, KEY);
            let took = started.elapsed();
            assert_eq!(response.status, 503, "{}", response.body);
            assert!(
                response.body.contains("rate limit service unavailable"),
                "{}",
                response.body
            );
            assert!(took < within, "took {took:?}");
            took
        })
        .collect()
}

#[test]
fn no_service_no_pass_and_fail_open_is_a_choice() {
    // Nothing listens on the service's port: every call is refused.
    let nowhere = free_port();
    let stack = start_envoy("step5-no-service", "envoy.yaml", nowhere, |_| {});
    assert_refused_quickly(stack.envoy.port, 20, Duration::from_millis(200));
    let refused = logged_failure(&stack);
    assert_eq!(refused, "gRPC status 14 (UNAVAILABLE)");

    // A service that accepts and never answers: the plugin's own timeout
    // (250 ms) ends the wait.
    let silent = BrokenService::start(Behaviour::NeverAnswers);
    let stack = start_envoy("step5-silent-service", "envoy.yaml", silent.port, |_| {});
    let took = assert_refused_quickly(stack.envoy.port, 3, Duration::from_millis(1000));
    // Envoy's timers may fire a tick early (see step 3's timeout tests).
    assert!(
        took.iter().all(|t| *t >= Duration::from_millis(230)),
        "{took:?}"
    );
    // Envoy ends the call with UNAVAILABLE: not the DEADLINE_EXCEEDED a
    // gRPC client library would report.
    let timed_out = logged_failure(&stack);
    assert_eq!(timed_out, "gRPC status 14 (UNAVAILABLE)");

    // fail_open: the same outage lets requests through, uncounted.
    let stack = start_envoy("step5-fail-open", "envoy.yaml", nowhere, |config| {
        config.replace_once(r#""fail_open": false"#, r#""fail_open": true"#)
    });
    let started = Instant::now();
    let response = get(stack.envoy.port, KEY);
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(response.body.contains(r#""x-auth-status":["valid"]"#));
    // Let through from the gRPC callback: the plugin must resume the
    // request itself (a first version forgot, and the request waited 30 s).
    assert!(started.elapsed() < Duration::from_millis(200));
    assert!(stack.envoy.log().contains("verdict AllowedUncounted"));

    capture::check_or_update(
        "step-5-global-rate-limit/failures.txt",
        &format!(
            "nothing listens on the service's port: 503, logged: {refused}\n\
             the service accepts and never answers:  503 after the 250 ms timeout, logged: {timed_out}\n\
             the same outage with \"fail_open\": true: 200, verdict AllowedUncounted\n"
        ),
    );
}

/// Whoever answers on the rate limit cluster chooses the bytes of
/// `grpc-message`; the SDK's `get_grpc_status` panics when they are not
/// UTF-8. The plugin never reads the message: the request is refused
/// (fail closed) at once, and the VM lives on.
#[test]
fn a_grpc_message_that_is_not_utf8_is_refused_and_the_vm_survives() {
    let server = BrokenService::start(Behaviour::GrpcErrorNotUtf8);
    let stack = start_envoy(
        "step5-grpc-message-not-utf8",
        "envoy.yaml",
        server.port,
        |_| {},
    );
    let created = stack.envoy.vms_created();
    assert_refused_quickly(stack.envoy.port, 3, Duration::from_millis(200));
    assert_eq!(logged_failure(&stack), "gRPC status 14 (UNAVAILABLE)");
    stack.envoy.assert_no_plugin_crashed(created);
}

#[test]
fn redis_down_no_pass() {
    let mut fleet = Fleet::start("step5-redis-down", "envoy.yaml", None);
    let port = fleet.ports()[0];
    assert_eq!(get(port, KEY).status, 200);
    fleet.redis.server.stop();
    // The service answers UNKNOWN at once when it cannot reach Redis; on a
    // busy machine it may not answer within the call's 250 ms, and Envoy
    // ends the call (UNAVAILABLE). Either way the request is refused.
    assert_refused_quickly(port, 10, Duration::from_millis(1000));
    let reasons = logged_failures(&fleet.envoys[0]);
    assert!(
        reasons
            .iter()
            .all(|r| r == "gRPC status 2 (UNKNOWN)" || r == "gRPC status 14 (UNAVAILABLE)"),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r == "gRPC status 2 (UNKNOWN)"),
        "{reasons:?}"
    );

    // Redis back (empty, on the same port): the service reconnects and
    // requests pass again, without restarting anything else.
    fleet.redis = Redis::start_on(&fleet.dir, fleet.redis.port);
    assert!(
        project::wait::until(Duration::from_secs(10), || get(port, KEY).status == 200),
        "no 200 within 10 s of Redis's return"
    );
    capture::check_or_update(
        "step-5-global-rate-limit/redis-down.txt",
        "Redis stopped: 503 for each of 10 requests, logged: gRPC status 2 (UNKNOWN)\n\
         Redis started again: 200 once the service has reconnected\n",
    );
}

#[test]
fn check_script_passes_and_matches_the_book() {
    let fleet = Fleet::start("step5-check", "envoy.yaml", None);
    let (passed, output) = fleet.envoys[0].run_check_script(STEP);
    assert!(passed, "{output}");
    // The chapter shows `bash check.sh | tail -n 1`: the verdict.
    capture::check_or_update(
        "step-5-global-rate-limit/check.txt",
        &capture::last_lines(&output, 1),
    );
    // What the service loaded, as its debug page shows it.
    let loaded = http::get(fleet.service.debug_port, "/rlconfig", &[]).expect("rlconfig");
    capture::check_or_update("step-5-global-rate-limit/rlconfig.txt", &loaded.body);
}

#[test]
fn envoys_rate_limit_filter_counts_the_plugins_descriptor() {
    wait_for_a_window_with(Duration::from_secs(3600), Duration::from_secs(30));
    let fleet = Fleet::start("step5-native", "envoy-native.yaml", Some(LIMITS_PER_HOUR));
    let keys = vec![KEY; REQUESTS];
    let results =
        concurrent_gets_across(&fleet.ports(), "/api/users", "x-api-key", &keys, IN_FLIGHT);
    assert_eq!(tally(&results), (LIMIT, REQUESTS - LIMIT, 0));

    // A client cannot pick whose counter it uses: the plugin replaces the
    // descriptor header, so another key is counted as itself.
    let port = fleet.ports()[0];
    let counters = fleet.redis.keys();
    assert_eq!(counters.len(), 1, "{counters:?}");
    let victim = counters[0]
        .split('_')
        .nth_back(1)
        .expect("the counter's name ends in _<hash>_<window>")
        .to_owned();
    let forged = http::get(
        port,
        "/api/users",
        &[
            ("x-api-key", b"key-def456"),
            ("x-api-key-hash", victim.as_bytes()),
        ],
    )
    .expect("an answer");
    assert_eq!(forged.status, 200, "{}", forged.body);
    assert!(!forged.body.contains("x-api-key-hash"), "{}", forged.body);
    assert_eq!(fleet.redis.keys().len(), 2);

    let refused = get(port, KEY);
    assert_eq!(refused.status, 429);
    let mut shown: Vec<String> = refused
        .headers
        .iter()
        .filter(|(name, _)| {
            name.starts_with("x-") || name.contains("ratelimit") || name == "retry-after"
        })
        .map(|(name, value)| match name.as_str() {
            // Seconds to the end of the hour: different on every run.
            "x-ratelimit-reset" => format!("{name}: <seconds until the window resets>"),
            _ => format!("{name}: {value}"),
        })
        .collect();
    shown.sort();
    capture::check_or_update(
        "step-5-global-rate-limit/native-429.txt",
        &format!("HTTP {}\n{}\n", refused.status, shown.join("\n")),
    );
}

#[test]
fn envoys_rate_limit_filter_fails_closed_when_told_to() {
    let stack = start_envoy(
        "step5-native-no-service",
        "envoy-native.yaml",
        free_port(),
        |_| {},
    );
    for _ in 0..10 {
        let started = Instant::now();
        let response = get(stack.envoy.port, KEY);
        assert_eq!(response.status, 503, "{}", response.body);
        assert!(started.elapsed() < Duration::from_millis(200));
    }
    // failure_mode_deny: false (the filter's default) lets the same
    // requests through.
    let stack = start_envoy(
        "step5-native-fail-open",
        "envoy-native.yaml",
        free_port(),
        |config| config.replace_once("failure_mode_deny: true", "failure_mode_deny: false"),
    );
    assert_eq!(get(stack.envoy.port, KEY).status, 200);
}

/// The naive variant reads the status message for its log line, with the
/// SDK's `get_grpc_status`: a message that is not UTF-8 panics it.
#[test]
fn reading_the_grpc_message_crashes_the_naive_variant() {
    use harness::variants::{self, naive};
    let wasm = variants::build(STEP, "grpc-status-message", &[naive::READ_GRPC_MESSAGE]);
    let server = BrokenService::start(Behaviour::GrpcErrorNotUtf8);
    let config = EnvoyConfig::for_step_file(STEP, "envoy.yaml");
    let stack = Stack::start_config(
        "step5-naive-grpc-message",
        STEP,
        config,
        &wasm,
        1,
        &AuthService::InConfig,
        |config| config.replace_port(ports::RATE_LIMIT_SERVICE, server.port),
    )
    .unwrap_or_else(|log| panic!("{log}"));
    let port = stack.envoy.port;
    std::thread::spawn(move || http::get(port, "/api/users", &[("x-api-key", KEY.as_bytes())]));
    let panicked = project::wait::until(Duration::from_secs(5), || {
        stack.envoy.log().contains("panicked at")
    });
    assert!(
        panicked,
        "the naive variant did not panic:\n{}",
        stack.envoy.log()
    );
}

/// The chapter and the step's README install the rate limit service the
/// tests run, at the same pinned version.
#[test]
fn the_book_installs_the_rate_limit_service_the_tests_run() {
    let pin = format!("version={}\n", project::rate_limit::VERSION);
    let install = format!("go install {}@$version", project::rate_limit::MODULE);
    for file in [
        "src/fleet-rate-limit.md",
        "code/step-5-global-rate-limit/README.md",
    ] {
        let text = std::fs::read_to_string(harness::paths::repo_root().join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(text.contains(&pin) && text.contains(&install), "{file}");
    }
}

/// The in-process tests' cases (tests/in_process/cases.rs, step 1's),
/// the same data, sent through Envoy, with the real rate limit service
/// and Redis, get the same answers.
#[test]
fn the_in_process_cases_get_the_same_answers_through_envoy() {
    let fleet = Fleet::start("step5-in-process-cases", "envoy.yaml", None);
    harness::in_process_cases::check_api_key_cases(STEP, fleet.envoys[0].envoy.port);
}
