//! Before anything is measured, each configuration shows that its filter
//! really does its job. h2load only checks that every measured request got
//! a 2xx, which a filter that lets everything through, or a route where it
//! is not really disabled, would pass as well.

use crate::configs::REMOVED_FIELD;
use harness::http;
use harness::rate_limit::Redis;
use std::time::Duration;

/// What a configuration's filter must be seen doing.
pub use project::step::Acts;

/// The ways a key can arrive that step 1 refuses, each beside the plain
/// valid key (which every key check must let through), for the refusal
/// table: the column heading, then the request's headers. `VALID` is
/// replaced by the configuration's valid key.
pub const KEY_INPUTS: [(&str, Headers); 9] = [
    ("valid key", &[("x-api-key", VALID)]),
    ("no key", &[]),
    ("unknown key", &[("x-api-key", b"bogus")]),
    (
        "valid, then unknown",
        &[("x-api-key", VALID), ("x-api-key", b"bogus")],
    ),
    (
        "unknown, then valid",
        &[("x-api-key", b"bogus"), ("x-api-key", VALID)],
    ),
    (
        "`valid,unknown` in one header",
        &[("x-api-key", b"VALID,bogus")],
    ),
    (
        "valid, and `x_api_key: unknown`",
        &[("x-api-key", VALID), ("x_api_key", b"bogus")],
    ),
    (
        "valid with a non-UTF-8 byte",
        &[("x-api-key", b"VALID\xff")],
    ),
    (
        "valid, and `x-äpi-key: unknown`",
        &[("x-api-key", VALID), ("x-äpi-key", b"bogus")],
    ),
];

/// A request's headers, names and values.
type Headers = &'static [(&'static str, &'static [u8])];

/// Stands for the configuration's valid key in `KEY_INPUTS`.
const VALID: &[u8] = b"VALID";

/// The key of local_ratelimit's own small bucket (configs.rs).
pub const BUCKET_PROOF_KEY: &str = "bucket-proof-key";

/// Where and how the configuration is asked: its listener and admin ports,
/// the route prefix and the request's method and body.
pub struct Target<'a> {
    pub name: &'a str,
    pub port: u16,
    pub admin_port: u16,
    pub prefix: &'a str,
    /// A POST with this body (step 4), or a GET.
    pub post: Option<&'a [u8]>,
    /// Headers that make a request pass (a key, a signature).
    pub passing: Vec<(String, Vec<u8>)>,
}

impl Target<'_> {
    fn send(&self, path: &str, headers: &[(&str, &[u8])]) -> (u16, Option<String>) {
        let (method, body) = match self.post {
            Some(body) => ("POST", body),
            None => ("GET", &b""[..]),
        };
        http::request(
            self.port,
            method,
            &format!("{}{path}", self.prefix),
            headers,
            body,
        )
        .map(|r| (r.status, r.header("ratelimit").map(str::to_owned)))
        .unwrap_or((0, None))
    }

    fn body(&self, path: &str) -> String {
        http::get(
            self.port,
            &format!("{}{path}", self.prefix),
            &self.passing(),
        )
        .map(|r| r.body)
        .unwrap_or_default()
    }

    fn passing(&self) -> Vec<(&str, &[u8])> {
        self.passing
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_slice()))
            .collect()
    }

    fn stat(&self, name: &str) -> u64 {
        let text = http::get(self.admin_port, &format!("/stats?filter=^{name}$"), &[])
            .map(|r| r.body)
            .unwrap_or_default();
        harness::envoy::stat_values(&text).remove(name).unwrap_or(0)
    }
}

/// The status `/checked` answers for each of `KEY_INPUTS`, with `valid`
/// for the valid key.
pub fn refusals(target: &Target, valid: &str) -> Vec<u16> {
    KEY_INPUTS
        .iter()
        .map(|(_, headers)| {
            let values: Vec<Vec<u8>> = headers
                .iter()
                .map(|(_, value)| replace(value, VALID, valid.as_bytes()))
                .collect();
            let headers: Vec<(&str, &[u8])> = headers
                .iter()
                .zip(&values)
                .map(|((name, _), value)| (*name, value.as_slice()))
                .collect();
            target.send("/checked", &headers).0
        })
        .collect()
}

/// The status `/checked` answers for each token input (a heading and the
/// `authorization` values sent).
pub fn token_refusals(target: &Target, inputs: &[(&'static str, Vec<String>)]) -> Vec<u16> {
    inputs
        .iter()
        .map(|(_, values)| {
            let headers: Vec<(&str, &[u8])> = values
                .iter()
                .map(|value| ("authorization", value.as_bytes()))
                .collect();
            target.send("/checked", &headers).0
        })
        .collect()
}

/// `bytes` with its first `from` replaced by `to`.
fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    match bytes.windows(from.len()).position(|window| window == from) {
        Some(at) => [&bytes[..at], to, &bytes[at + from.len()..]].concat(),
        None => bytes.to_vec(),
    }
}

/// The filter runs on `/checked` and not on `/unchecked`, and does what
/// `acts` says; panics with what it saw otherwise.
pub fn check(target: &Target, acts: Acts, redis: &Redis) {
    let name = target.name;
    if acts == Acts::RefusesOnceRefreshed {
        // Until its first refresh, step 7 refuses every request (503);
        // under valgrind that refresh takes a while.
        let refreshed = project::wait::until(Duration::from_secs(120), || {
            target.send("/checked", &target.passing()).0 == 200
        });
        assert!(refreshed, "{name}: the key list never arrived");
    }
    let (off, _) = target.send("/unchecked", &[]);
    assert_eq!(off, 200, "{name}: /unchecked without a key");
    let passing = target.passing();
    let (on, _) = target.send("/checked", &passing);
    assert_eq!(on, 200, "{name}: /checked with a valid key or signature");
    match acts {
        Acts::Nothing => {}
        Acts::RemovesFields => {
            let field = format!("\"{REMOVED_FIELD}\"");
            let (off, on) = (target.body("/unchecked"), target.body("/checked"));
            assert!(off.contains(&field), "{name}: /unchecked answered {off}");
            assert!(
                on.starts_with('{') && !on.contains(&field),
                "{name}: /checked answered {on}"
            );
        }
        Acts::Refuses | Acts::RefusesOnceRefreshed => {
            let (refused, _) = target.send("/checked", &[]);
            assert!(
                (400..500).contains(&refused),
                "{name}: /checked without a key answered {refused}, not a refusal"
            );
            // A signed body: the whole body is verified, so a signature
            // that differs in its last digit is refused too.
            if target.post.is_some() {
                let tampered: Vec<(String, Vec<u8>)> = target
                    .passing
                    .iter()
                    .map(|(header, value)| match value.split_last() {
                        Some((last, rest)) if header == "x-signature-256" => {
                            let flipped = if *last == b'0' { b'1' } else { b'0' };
                            (header.clone(), [rest, &[flipped]].concat())
                        }
                        _ => (header.clone(), value.clone()),
                    })
                    .collect();
                let headers: Vec<(&str, &[u8])> = tampered
                    .iter()
                    .map(|(header, value)| (header.as_str(), value.as_slice()))
                    .collect();
                let (refused, _) = target.send("/checked", &headers);
                assert!(
                    (400..500).contains(&refused),
                    "{name}: /checked with a wrong signature answered {refused}, not a refusal"
                );
            }
        }
        Acts::CountsInSharedData => {
            let remaining = || {
                let (_, header) = target.send("/checked", &passing);
                let header = header.unwrap_or_default();
                let r = header
                    .split(";r=")
                    .nth(1)
                    .and_then(|rest| rest.split(';').next());
                r.and_then(|r| r.parse::<u64>().ok()).unwrap_or_else(|| {
                    panic!("{name}: no remaining count in `ratelimit: {header}`")
                })
            };
            let (first, second) = (remaining(), remaining());
            assert_eq!(second + 1, first, "{name}: the count did not move");
        }
        Acts::EmptiesItsBucket => {
            let key: &[(&str, &[u8])] = &[("x-api-key", BUCKET_PROOF_KEY.as_bytes())];
            let statuses: Vec<u16> = (0..3).map(|_| target.send("/checked", key).0).collect();
            assert_eq!(
                statuses,
                [200, 200, 429],
                "{name}: the proof key's bucket of 2"
            );
        }
        Acts::CountsInRedis => {
            let before = redis.counted();
            for _ in 0..3 {
                assert_eq!(target.send("/checked", &passing).0, 200, "{name}");
            }
            assert_eq!(
                redis.counted(),
                before + 3,
                "{name}: Redis did not count 3 requests"
            );
        }
        Acts::AsksTheAuthService => {
            let calls = "http.auth_service.downstream_rq_completed";
            let before = target.stat(calls);
            for _ in 0..3 {
                assert_eq!(target.send("/checked", &passing).0, 200, "{name}");
            }
            assert_eq!(
                target.stat(calls),
                before + 3,
                "{name}: not one call per request"
            );
        }
        Acts::AnswersFromItsCache => {
            let hits = "wasmcustom.auth_plugin.cache.hit";
            let before = target.stat(hits);
            for _ in 0..3 {
                assert_eq!(target.send("/checked", &passing).0, 200, "{name}");
            }
            assert_eq!(
                target.stat(hits),
                before + 3,
                "{name}: the cache did not answer"
            );
        }
    }
}
