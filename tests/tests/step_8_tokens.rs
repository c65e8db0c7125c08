//! Step 8 (signed tokens) on a live Envoy: the check script over HTTP/1.1
//! and HTTP/2; the token's tenant choosing the backend, and a client's own
//! tenant header choosing nothing (and what happens without the route
//! chosen again); the access log's fields; and unknown `kid`s, a hundred
//! at once, making one early refresh.

use harness::capture;
use harness::envoy::EnvoyConfig;
use harness::http;
use harness::key_service::{Answer, KeyService};
use harness::stack::{AuthService, Stack};
use harness::{paths, steps, variants};
use project::naive;
use std::process::Command;
use std::time::{Duration, Instant};

const STEP: &str = "step-8-tokens";

/// `bash mint.sh ALG KID CLAIMS` in the step's folder: a token signed with
/// its test keys.
fn mint(alg: &str, kid: &str, claims: &str) -> String {
    let output = Command::new("bash")
        .args(["mint.sh", alg, kid, claims])
        .current_dir(paths::repo_root().join("code").join(STEP))
        .output()
        .expect("run mint.sh");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A good token's claims for `tenant`, valid for five minutes.
fn claims(tenant: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        r#"{{"sub":"ada","iss":"https://issuer.example","aud":"api","exp":{},"tenant":"{tenant}"}}"#,
        now + 300
    )
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Waits until the refresher has published the keys (the first request
/// that gets 200).
fn wait_for_keys(stack: &Stack, token: &str) {
    let auth = bearer(token);
    let loaded = project::wait::until(Duration::from_secs(10), || {
        http::get(
            stack.envoy.port,
            "/api/users",
            &[("authorization", auth.as_bytes())],
        )
        .is_ok_and(|r| r.status == 200)
    });
    assert!(loaded, "the keys never arrived:\n{}", stack.envoy.log());
}

#[test]
fn the_check_script_passes_over_http_1_and_http_2() {
    let stack = Stack::step("step8-check", STEP, 2);
    let (passed, output) = stack.run_check_script(STEP);
    assert!(passed, "{output}\n{}", stack.envoy.log());
    capture::check_or_update("step-8-tokens/check.txt", &output);
    let over_h2 = Command::new("bash")
        .arg("check.sh")
        .current_dir(paths::repo_root().join("code").join(STEP))
        .env("BASE_URL", stack.base_url())
        .env("HTTP2", "1")
        .output()
        .expect("run check.sh");
    let text = String::from_utf8_lossy(&over_h2.stdout);
    assert!(over_h2.status.success(), "over HTTP/2:\n{text}");
    // The access log: what the token said, beside what Envoy did. Envoy
    // flushes its output every few seconds.
    let access_line = || {
        stack
            .envoy
            .log()
            .lines()
            .find(|line| line.starts_with("access 200 /tenant-b/"))
            .map(str::to_owned)
    };
    project::wait::until(Duration::from_secs(20), || access_line().is_some());
    let line = access_line()
        .unwrap_or_else(|| panic!("no access line for tenant b:\n{}", stack.envoy.log()));
    assert_eq!(
        line,
        "access 200 /tenant-b/users route=tenant-b cluster=backend-b subject=ada tenant=b"
    );
    capture::check_or_update("step-8-tokens/access-log.txt", &format!("{line}\n"));
    // A token sent in the query string is refused, and not written to the
    // access log either: once a line per check (both runs) is out, none
    // holds the query.
    let checks = output.lines().filter(|l| l.starts_with("PASS")).count() * 2;
    let access_lines = || {
        let log = stack.envoy.log();
        let lines: Vec<String> = log
            .lines()
            .filter(|l| l.starts_with("access "))
            .map(str::to_owned)
            .collect();
        lines
    };
    let flushed = project::wait::until(Duration::from_secs(20), || access_lines().len() >= checks);
    assert!(
        flushed,
        "{} access lines, {checks} checks",
        access_lines().len()
    );
    let leaked: Vec<String> = access_lines()
        .into_iter()
        .filter(|l| l.contains("access_token"))
        .collect();
    assert!(
        leaked.is_empty(),
        "the access log holds a token: {leaked:?}"
    );
}

/// The cluster a request went to, from Envoy's counters.
fn requests_to(stack: &Stack, cluster: &str) -> u64 {
    stack
        .envoy
        .stat(&format!("cluster.{cluster}.upstream_rq_total"))
        .unwrap_or(0)
}

/// Two tenants reach two backends; a client's own `x-tenant` reaches
/// neither, with a token for another tenant or with none. And what Envoy
/// 1.40 does for a module of ABI 0.2.1 (this SDK's) that changes a request
/// header without calling `clear_route_cache`: it chooses the route again
/// all the same, so the plugin's header still wins.
#[test]
fn the_token_chooses_the_backend_and_a_forged_tenant_chooses_nothing() {
    let route_kept = variants::build(
        STEP,
        "without-clear-route-cache",
        &[naive::WITHOUT_CLEAR_ROUTE_CACHE],
    );
    for (name, wasm) in [("step", steps::build(STEP)), ("naive", route_kept)] {
        let stack = Stack::start(&format!("step8-route-{name}"), STEP, &wasm, 2, |_| {})
            .unwrap_or_else(|log| panic!("{log}"));
        let (a, b) = (
            mint("RS256", "rsa-1", &claims("a")),
            mint("ES256", "ec-1", &claims("b")),
        );
        wait_for_keys(&stack, &a);
        let before = (
            requests_to(&stack, "backend-a"),
            requests_to(&stack, "backend-b"),
        );
        let get = |token: Option<&str>, tenant: Option<&str>| {
            let auth = token.map(bearer);
            let mut headers: Vec<(&str, &[u8])> = Vec::new();
            if let Some(auth) = &auth {
                headers.push(("authorization", auth.as_bytes()));
            }
            if let Some(tenant) = tenant {
                headers.push(("x-tenant", tenant.as_bytes()));
            }
            let response = http::get(stack.envoy.port, "/api/users", &headers).expect("a response");
            let path = response
                .body
                .split_once(r#""path":""#)
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(path, _)| path.to_owned());
            (response.status, path)
        };
        let forged = get(Some(&a), Some("b"));
        if name == "naive" {
            assert_eq!(
                forged,
                (200, Some("/tenant-a/users".to_owned())),
                "Envoy 1.40 chooses the route again for an ABI 0.2.1 module"
            );
            continue;
        }
        assert_eq!(get(Some(&a), None), (200, Some("/tenant-a/users".into())));
        assert_eq!(get(Some(&b), None), (200, Some("/tenant-b/users".into())));
        assert_eq!(
            forged,
            (200, Some("/tenant-a/users".into())),
            "a forged tenant"
        );
        assert_eq!(
            get(None, Some("b")).0,
            401,
            "a forged tenant without a token"
        );
        let after = (
            requests_to(&stack, "backend-a"),
            requests_to(&stack, "backend-b"),
        );
        assert_eq!(
            (after.0 - before.0, after.1 - before.1),
            (2, 1),
            "requests per backend"
        );
    }
}

/// A hundred requests with tokens naming keys the set does not hold, from
/// eight connections at once over both workers, make one early refresh;
/// a key the service then serves is used a second later, long before the
/// next refresh is due (30 s here).
#[test]
fn unknown_kids_make_one_early_refresh() {
    let jwks = std::fs::read(
        paths::repo_root()
            .join("code")
            .join(STEP)
            .join("keys/jwks.json"),
    )
    .expect("the step's JWK set");
    let rsa_only: serde_json::Value = serde_json::from_slice(&jwks).expect("JSON");
    let rsa_only = serde_json::json!({ "keys": [rsa_only["keys"][0].clone()] });
    let service = KeyService::start(Answer::Reply {
        status: 200,
        body: rsa_only.to_string().into_bytes(),
    });
    let wasm = steps::build(STEP);
    let config = EnvoyConfig::for_step(STEP);
    let stack = Stack::start_config(
        "step8-early",
        STEP,
        config,
        &wasm,
        2,
        &AuthService::Port(service.port),
        |config| config.replace_once(r#""every_seconds": 5"#, r#""every_seconds": 30"#),
    )
    .unwrap_or_else(|log| panic!("{log}"));
    wait_for_keys(&stack, &mint("RS256", "rsa-1", &claims("a")));
    service.set(Answer::Reply {
        status: 200,
        body: jwks.clone(),
    });
    let asked = service.requests();
    let started = Instant::now();
    let tokens: Vec<String> = (0..100)
        .map(|i| bearer(&mint("RS256", &format!("random-{i}"), &claims("a"))))
        .collect();
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let results =
        harness::load::concurrent_gets(stack.envoy.port, "/api/users", "authorization", &refs, 8);
    assert!(
        results.iter().all(|(_, status)| *status == 401),
        "{results:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the burst took too long"
    );
    assert_eq!(
        service.requests() - asked,
        1,
        "one early refresh for a hundred unknown kids"
    );
    let es256 = bearer(&mint("ES256", "ec-1", &claims("b")));
    let status = http::get(
        stack.envoy.port,
        "/api/users",
        &[("authorization", es256.as_bytes())],
    )
    .map(|r| r.status);
    assert_eq!(status.ok(), Some(200), "the key the early refresh brought");
}
