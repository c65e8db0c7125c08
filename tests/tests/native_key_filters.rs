//! Envoy's own ways to check an API key, against step 1, when a client sends
//! the key header twice: a valid key and a bogus one, in both orders. Step 1
//! refuses both orders (400); RBAC's exact header match and the native
//! `api_key_auth` filter are looser.

use harness::capture;
use harness::envoy::EnvoyConfig;
use harness::http;
use harness::stack::Stack;
use harness::steps;

const STEP: &str = "step-1-auth";
const VALID: &str = "key-abc123";
const BOGUS: &str = "bogus";

/// Envoy's RBAC filter allowing a request whose `x-api-key` is exactly one
/// of step 1's keys.
const RBAC: &str = r#"          - name: auth
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: ALLOW
                policies:
                  api-keys:
                    permissions: [{ any: true }]
                    principals:
                    - or_ids:
                        ids:
                        - header: { name: x-api-key, string_match: { exact: key-abc123 } }
                        - header: { name: x-api-key, string_match: { exact: key-def456 } }
                        - header: { name: x-api-key, string_match: { exact: key-ghi789 } }
"#;

/// Envoy's `api_key_auth` filter with step 1's keys in `x-api-key`.
const API_KEY_AUTH: &str = r#"          - name: auth
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuth
              credentials:
              - { key: key-abc123, client: one }
              - { key: key-def456, client: two }
              - { key: key-ghi789, client: three }
              key_sources:
              - header: x-api-key
"#;

/// Step 1's configuration with its Wasm filter replaced by `filter`.
fn with_filter(filter: &'static str) -> impl FnOnce(&mut EnvoyConfig) {
    move |config: &mut EnvoyConfig| {
        let text = config.text().to_owned();
        let start = text
            .find("          - name: auth\n")
            .expect("step 1's plugin filter");
        let end = start
            + text[start..]
                .find("          - name: envoy.filters.http.router\n")
                .expect("the router after the plugin");
        config.replace_once(&text[start..end], filter);
    }
}

/// The statuses for: the valid key alone, the bogus key alone, valid then
/// bogus, bogus then valid.
fn statuses(stack: &Stack) -> [u16; 4] {
    let get = |keys: &[&str]| {
        let headers: Vec<(&str, &[u8])> = keys
            .iter()
            .map(|key| ("x-api-key", key.as_bytes()))
            .collect();
        http::get(stack.envoy.port, "/api/users", &headers).map_or(0, |r| r.status)
    };
    [
        get(&[VALID]),
        get(&[BOGUS]),
        get(&[VALID, BOGUS]),
        get(&[BOGUS, VALID]),
    ]
}

#[test]
fn envoys_own_key_checks_let_a_repeated_key_through() {
    let wasm = steps::build(STEP);
    let start = |name: &str, edit: Box<dyn FnOnce(&mut EnvoyConfig)>| {
        Stack::start(name, STEP, &wasm, 1, edit).unwrap_or_else(|log| panic!("{log}"))
    };
    let step_1 = statuses(&start("native-keys-step-1", Box::new(|_| {})));
    let rbac = statuses(&start("native-keys-rbac", Box::new(with_filter(RBAC))));
    let api_key_auth = statuses(&start(
        "native-keys-api-key-auth",
        Box::new(with_filter(API_KEY_AUTH)),
    ));
    assert_eq!(step_1, [200, 403, 400, 400], "step 1");
    assert_eq!(rbac, [200, 403, 200, 200], "RBAC, exact header match");
    assert_eq!(api_key_auth, [200, 401, 200, 401], "api_key_auth");
    let mut table =
        String::from("filter         valid key  bogus key  valid, then bogus  bogus, then valid\n");
    for (name, row) in [
        ("step 1", step_1),
        ("RBAC", rbac),
        ("api_key_auth", api_key_auth),
    ] {
        table.push_str(&format!(
            "{name:<14} {:<10} {:<10} {:<18} {}\n",
            row[0], row[1], row[2], row[3]
        ));
    }
    capture::check_or_update("native-filters/repeated-key.txt", &table);
}
