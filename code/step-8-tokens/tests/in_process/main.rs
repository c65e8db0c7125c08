//! The plugin's cases without a proxy: the release module, loaded into a
//! host library by `cargo test`, as a refresher and as workers of one
//! proxy, with the key service's answers, the clock and the tokens in the
//! test's hands.

// The tests run on your machine, never inside the module.
#![cfg(not(target_arch = "wasm32"))]

mod cases;
mod host;
mod tokens;

use cases::{Carried, Expected, Token, CASES, GOOD};
use host::{jwks, NotStarted, Outcome, Plugin, Proxy, Reply};

/// 1,800,000,000,000 ms after the Unix epoch: any fixed time will do.
const NOW_MS: u64 = 1_800_000_000_000;
const NOW: i64 = (NOW_MS / 1000) as i64;
/// The keys the key service of `envoy.yaml` serves.
const BOOK_KEYS: &[&str] = &["rsa-1", "ec-1"];

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

/// One period (5 s) later, the timer fires: a refresh is due, the
/// refresher calls, and `reply` answers it.
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
    answer(&mut singleton, &jwks(BOOK_KEYS));
    (proxy, singleton)
}

/// The request of `carried`, made at `now`: its path and headers.
fn request(carried: Carried, now: i64) -> (String, Vec<(&'static str, Vec<u8>)>) {
    let bearer = |scheme: &str, token: Token| format!("{scheme} {}", tokens::make(token, now));
    let path = "/api/users".to_owned();
    match carried {
        Carried::Bearer(token) => (
            path,
            vec![("authorization", bearer("Bearer", token).into())],
        ),
        Carried::LowerCaseBearer(token) => (
            path,
            vec![("authorization", bearer("bearer", token).into())],
        ),
        Carried::Twice(token) => {
            let value = bearer("Bearer", token);
            let header = ("authorization", value.clone().into_bytes());
            (path, vec![header.clone(), header])
        }
        Carried::Joined(token) => {
            let value = bearer("Bearer", token);
            (
                path,
                vec![("authorization", format!("{value},{value}").into())],
            )
        }
        Carried::Query(token) => (
            format!("{path}?access_token={}", tokens::make(token, now)),
            vec![],
        ),
        Carried::Header(value) => (path, vec![("authorization", value.into())]),
        Carried::Nothing => (path, vec![]),
    }
}

/// Sends `carried` (and `headers`) through `plugin`.
fn send(plugin: &mut Plugin, carried: Carried, headers: &[(&str, &[u8])]) -> Outcome {
    let (path, mut sent) = request(carried, NOW);
    sent.extend(headers.iter().map(|(n, v)| (*n, v.to_vec())));
    let sent: Vec<(&str, &[u8])> = sent.iter().map(|(n, v)| (*n, v.as_slice())).collect();
    plugin
        .send(&path, &sent)
        .unwrap_or_else(|error| panic!("the VM failed: {error}"))
}

/// The status a token gets (200: it went on).
fn status(plugin: &mut Plugin, token: Token) -> u32 {
    match send(plugin, Carried::Bearer(token), &[]) {
        Outcome::Passed(_) => 200,
        Outcome::Answered { status, .. } => status,
        Outcome::Paused => 0,
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
        let outcome = send(&mut plugin, case.carried, case.headers);
        match judge(&case.expected, &outcome) {
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
                status: got,
                challenge,
                body,
            },
        ) if got == status => {
            // Every 400 and 401 carries the challenge (RFC 6750, 3).
            let challenge = challenge.as_deref().unwrap_or_default();
            if !challenge.starts_with("Bearer realm=\"api\"") {
                Err(format!("WWW-Authenticate: {challenge:?}"))
            } else if challenge.contains(text) || body.contains(text) {
                Ok(())
            } else {
                Err(format!("no {text:?} in {challenge:?} or {body:?}"))
            }
        }
        (Expected::Passed(tenant), Outcome::Passed(passed)) => {
            let tenant = vec![tenant.as_bytes().to_vec()];
            let sent: Vec<Vec<u8>> = passed
                .headers
                .iter()
                .filter(|(name, _)| name == b"x-tenant")
                .map(|(_, value)| value.clone())
                .collect();
            if sent != tenant {
                Err(format!("the backend would see x-tenant {sent:?}"))
            } else if passed.route_chosen_with.as_ref() != Some(&tenant) {
                Err(format!(
                    "the route was chosen with x-tenant {:?}",
                    passed.route_chosen_with
                ))
            } else {
                Ok(())
            }
        }
        _ => Err(format!("expected {expected:?}, got {outcome:?}")),
    }
}

/// What the plugin hands Envoy for its access log: the verified subject
/// and tenant as properties (filter state `wasm.token_subject`, ...); and
/// its own log line reads Envoy's properties, never the token.
#[test]
fn the_claims_reach_envoy_and_the_token_reaches_no_log() {
    let (proxy, _singleton) = proxy_with_keys();
    let mut plugin = worker(&proxy);
    let Outcome::Passed(passed) = send(&mut plugin, Carried::Bearer(GOOD), &[]) else {
        panic!("the good token was refused");
    };
    let properties: Vec<(String, String)> = passed
        .properties
        .iter()
        .map(|(n, v)| {
            (
                String::from_utf8_lossy(n).into(),
                String::from_utf8_lossy(v).into(),
            )
        })
        .collect();
    assert_eq!(
        properties,
        [
            ("token_subject".to_owned(), "ada".to_owned()),
            ("token_route".to_owned(), "a".to_owned())
        ]
    );
    let lines = plugin.log.lines();
    assert!(
        lines.iter().any(|l| l.contains(
            "request in-process-request from 127.0.0.1:40000, route `tenant-a`: verdict Allowed"
        )),
        "{lines:?}"
    );
    let token = tokens::make(GOOD, NOW);
    let signature = token.rsplit('.').next().unwrap_or_default();
    for case in CASES {
        send(&mut plugin, case.carried, case.headers);
    }
    assert!(
        !plugin
            .log
            .lines()
            .iter()
            .any(|l| l.contains(signature) || l.contains("eyJ")),
        "a token in the log"
    );
}

/// A key the service adds is used, and a key it removes refused, within a
/// period, on every worker.
#[test]
fn every_worker_follows_the_key_set_within_a_period() {
    let proxy = Proxy::at_ms(NOW_MS);
    let mut singleton = refresher(&proxy);
    answer(&mut singleton, &jwks(&["rsa-1"]));
    let mut workers = [worker(&proxy), worker(&proxy)];
    let es256 = Token::Signed {
        alg: "ES256",
        kid: Some("ec-1"),
        claims: &[],
    };
    for worker in &mut workers {
        assert_eq!(status(worker, GOOD), 200);
        assert_eq!(status(worker, es256), 401, "a key not served yet");
    }
    refresh(&proxy, &mut singleton, &jwks(&["ec-1"]));
    for worker in &mut workers {
        assert_eq!(status(worker, es256), 200, "the added key");
        assert_eq!(status(worker, GOOD), 401, "the removed key");
    }
}

/// Tokens naming unknown keys, many per second from every worker, make at
/// most one early refresh per period: an attacker's random `kid`s cannot
/// make the plugin hammer the key service.
#[test]
fn unknown_keys_make_one_early_refresh_a_period() {
    let (proxy, mut singleton) = proxy_with_keys();
    let mut workers = [worker(&proxy), worker(&proxy)];
    let unknown = Token::Signed {
        alg: "RS256",
        kid: Some("rsa-9"),
        claims: &[],
    };
    let calls = proxy.service.calls();
    // Four seconds, ten requests a second on each worker.
    for _ in 0..4 {
        for _ in 0..10 {
            for worker in &mut workers {
                assert_eq!(status(worker, unknown), 401);
            }
        }
        assert!(proxy.queued() <= 2, "more than one ask a second per worker");
        singleton
            .queue_ready(&proxy)
            .unwrap_or_else(|e| panic!("{e}"));
        proxy.clock.advance_ms(1_000);
    }
    // The early refresh: one call, however many asks.
    assert_eq!(proxy.service.calls(), calls + 1, "one early refresh");
    answer(&mut singleton, &jwks(BOOK_KEYS));
    // The period after it: the timer's own refresh, and still no other.
    proxy.clock.advance_ms(1_000);
    singleton.tick().unwrap_or_else(|e| panic!("{e}"));
    for worker in &mut workers {
        assert_eq!(status(worker, unknown), 401);
    }
    singleton
        .queue_ready(&proxy)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(proxy.service.calls(), calls + 2, "the timer's refresh only");
}

/// A key the service serves later is found by an early refresh, long
/// before the next one is due.
#[test]
fn a_new_kid_is_found_by_an_early_refresh() {
    let proxy = Proxy::at_ms(NOW_MS);
    let mut singleton = refresher(&proxy);
    answer(&mut singleton, &jwks(&["rsa-1"]));
    let mut plugin = worker(&proxy);
    let es256 = Token::Signed {
        alg: "ES256",
        kid: Some("ec-1"),
        claims: &[],
    };
    assert_eq!(status(&mut plugin, es256), 401);
    proxy.clock.advance_ms(1_000);
    singleton
        .queue_ready(&proxy)
        .unwrap_or_else(|e| panic!("{e}"));
    answer(&mut singleton, &jwks(BOOK_KEYS));
    assert_eq!(
        status(&mut plugin, es256),
        200,
        "a second later, not a period"
    );
}

/// The refresher asks the cluster and path of its configuration at once.
#[test]
fn the_refresher_asks_for_the_jwk_set() {
    let proxy = Proxy::at_ms(NOW_MS);
    let _singleton = refresher(&proxy);
    assert_eq!(proxy.service.waiting(), ["key-service GET /jwks"]);
}

/// Without a key set, or with one older than the bound, nobody gets in.
#[test]
fn no_keys_or_old_keys_let_nobody_in() {
    let proxy = Proxy::at_ms(NOW_MS);
    let mut singleton = refresher(&proxy);
    let mut plugin = worker(&proxy);
    assert_eq!(status(&mut plugin, GOOD), 503, "before the first refresh");
    answer(&mut singleton, &jwks(BOOK_KEYS));
    assert_eq!(status(&mut plugin, GOOD), 200);
    // The service fails for longer than `max_key_age_seconds` (30 s).
    for _ in 0..7 {
        refresh(&proxy, &mut singleton, &Reply::Answer(503, Vec::new()));
    }
    assert_eq!(status(&mut plugin, GOOD), 503, "keys older than the bound");
}

/// Answers the refresher must not publish: the last good set stays.
#[test]
fn a_bad_answer_keeps_the_last_set() {
    let (proxy, mut singleton) = proxy_with_keys();
    let mut plugin = worker(&proxy);
    for bad in [
        Reply::Answer(500, b"{}".to_vec()),
        Reply::Answer(200, b"keys".to_vec()),
        Reply::Answer(200, br#"{"keys": []}"#.to_vec()),
        Reply::Answer(
            200,
            br#"{"keys": [{"kty":"oct","kid":"rsa-1","k":"c2VjcmV0"}]}"#.to_vec(),
        ),
        Reply::TimedOut,
        Reply::Reset,
    ] {
        refresh(&proxy, &mut singleton, &bad);
        assert_eq!(status(&mut plugin, GOOD), 200);
    }
}

/// Another plugin of the `vm_id` writes a key set of its own: a key it
/// holds the private half of. No worker believes it.
#[test]
fn a_key_set_another_plugin_writes_is_not_believed() {
    let proxy = Proxy::at_ms(NOW_MS);
    let mut singleton = refresher(&proxy);
    answer(&mut singleton, &jwks(&["ec-1"]));
    let co_tenant = proxy.co_tenant();
    let (set, version) = (
        co_tenant.read("tokens.key-set"),
        co_tenant.read("tokens.version"),
    );
    // The set with the RSA key in place of the EC one, under the same
    // header and version: the signature no longer matches.
    let Reply::Answer(_, forged) = jwks(&["rsa-1"]) else {
        panic!("a set");
    };
    let mut written = set[..40].to_vec();
    written.extend_from_slice(&forged);
    co_tenant.write("tokens.key-set", &written);
    co_tenant.write("tokens.version", &version);
    let mut plugin = worker(&proxy);
    assert_eq!(status(&mut plugin, GOOD), 503, "no set it can believe");
    assert!(plugin.log.count("the shared key set was not used") == 1);
}

/// What the plugin must not start with.
#[test]
fn a_configuration_it_cannot_follow_is_refused() {
    let proxy = Proxy::at_ms(NOW_MS);
    let filter = host::envoy_configuration("filter");
    for (from, to, reason) in [
        (
            r#"["RS256", "ES256"]"#,
            r#"["HS256"]"#,
            "`algorithms` may hold RS256 and ES256 only",
        ),
        (
            r#""clock_skew_seconds": 30"#,
            r#""clock_skew_seconds": 3600"#,
            "`clock_skew_seconds` must be at most 300",
        ),
        (
            r#""audiences": ["api"]"#,
            r#""audiences": []"#,
            "`issuer` and `audiences` must be given",
        ),
    ] {
        assert!(filter.contains(from), "{from}");
        match Plugin::start(&proxy, &filter.replace(from, to)) {
            Err(NotStarted::Refused(why)) if why.contains(reason) => {}
            Err(other) => panic!("{to}: {other}"),
            Ok(_) => panic!("{to}: started"),
        }
    }
    let unset = filter.replace("KEY_SET_SECRET", "UNSET");
    assert!(matches!(
        Plugin::start(&proxy, &unset),
        Err(NotStarted::Refused(why)) if why.contains("secret_env")
    ));
}
