//! The per-request part: one `AuthFilter` for each HTTP request, which asks
//! the auth service about the key and waits for its answer.

use crate::cache::{self, Answer, Slot};
use crate::config::AuthConfig;
use crate::metrics::{Metrics, Outcome};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, Bytes};
use serde::Deserialize;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The header this plugin sets for the upstream. Setting it replaces every
/// copy a client sent, and a rejected request never reaches the upstream, so
/// upstreams can trust it.
const AUTH_STATUS_HEADER: &str = "x-auth-status";

/// The longest answer the plugin reads: `{"valid":true}` needs 14 bytes. A
/// longer answer is not one the plugin understands, so it is refused whole:
/// parsing only its first bytes would accept `{"valid":true}` followed by
/// anything at all.
const MAX_ANSWER_BYTES: usize = 4096;

/// What the plugin decided about one request, kept for the access log line.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Verdict {
    Pending,
    WaitingForAuthService,
    Allowed,
    MissingKey,
    RepeatedKey,
    UnknownKey,
    AuthServiceFailed,
    NotConfigured,
}

pub struct AuthFilter {
    config: Option<Rc<AuthConfig>>,
    metrics: Option<Metrics>,
    verdict: Verdict,
    /// The token of the call in flight, to recognise its answer.
    call: Option<u32>,
    /// When the call was sent, for the latency histogram.
    call_sent: Option<SystemTime>,
    /// Where the call's answer goes in the cache.
    slot: Option<Slot>,
}

impl AuthFilter {
    pub fn new(config: Option<Rc<AuthConfig>>, metrics: Option<Metrics>) -> Self {
        AuthFilter {
            config,
            metrics,
            verdict: Verdict::Pending,
            call: None,
            call_sent: None,
            slot: None,
        }
    }
}

enum KeyHeader<'a> {
    Missing,
    /// Sent more than once: refused even when one of them is valid, because
    /// the upstream might read another one than the service checked.
    Repeated,
    /// Not UTF-8, so it cannot be put in a JSON string, and cannot be one of
    /// the service's keys (they are JSON strings too).
    NotUtf8,
    Key(&'a str),
}

fn read_key(values: &[Bytes]) -> KeyHeader<'_> {
    match values {
        [] => KeyHeader::Missing,
        [value] if value.is_empty() => KeyHeader::Missing,
        [value] => match std::str::from_utf8(value) {
            Ok(key) => KeyHeader::Key(key),
            Err(_) => KeyHeader::NotUtf8,
        },
        _ => KeyHeader::Repeated,
    }
}

// ANCHOR: validation_request
/// `{"key": "..."}`, built by serde_json: a key containing `"` or `\` is
/// escaped, so it can never add fields of its own to the JSON.
fn validation_request(key: &str) -> Vec<u8> {
    serde_json::json!({ "key": key }).to_string().into_bytes()
}
// ANCHOR_END: validation_request

/// What the auth service said, reduced to the three cases that matter.
#[derive(Debug, PartialEq)]
enum AuthAnswer {
    Valid,
    Invalid,
    /// Anything else: the plugin cannot tell, so it must not let the request
    /// through. The reason is for the log.
    Unavailable(String),
}

#[derive(Deserialize)]
struct ValidateResponse {
    valid: bool,
}

fn interpret(status: &[u8], body: &[u8]) -> AuthAnswer {
    match status {
        b"200" => match serde_json::from_slice::<ValidateResponse>(body) {
            Ok(ValidateResponse { valid: true }) => AuthAnswer::Valid,
            Ok(ValidateResponse { valid: false }) => AuthAnswer::Invalid,
            Err(_) => {
                AuthAnswer::Unavailable("200 with a body that is not {\"valid\": bool}".into())
            }
        },
        b"401" | b"403" => AuthAnswer::Invalid,
        other => AuthAnswer::Unavailable(match envoy_reason(other, body) {
            Some(reason) => reason,
            None => format!(
                "the auth service answered status {}",
                String::from_utf8_lossy(other)
            ),
        }),
    }
}

/// When Envoy's HTTP client gets no answer from the service, it answers the
/// call itself, as a router answers a client: 503 when the connection
/// failed or closed before the answer, 504 when the call's timeout expired.
/// Its body says which. Only Envoy's own text is ever logged: a service's
/// body might quote the key.
fn envoy_reason(status: &[u8], body: &[u8]) -> Option<String> {
    const CONNECT: &[u8] = b"upstream connect error or disconnect/reset before headers.";
    match status {
        b"503" if body.starts_with(CONNECT) => {
            let detail = String::from_utf8_lossy(&body[CONNECT.len()..]);
            let detail: String = detail.trim().chars().take(160).collect();
            Some(format!(
                "status 503 from Envoy, which could not get an answer ({detail})"
            ))
        }
        b"504" if body == b"upstream request timeout" => {
            Some("status 504 from Envoy: no answer within the call's timeout".into())
        }
        _ => None,
    }
}

impl AuthFilter {
    /// Unix time in milliseconds, the cache's clock.
    fn now_ms(&self) -> u64 {
        self.get_current_time()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    /// Marks the request as checked, for the upstream.
    fn allow(&mut self) {
        self.verdict = Verdict::Allowed;
        self.set_http_request_header(AUTH_STATUS_HEADER, Some("valid"));
    }

    fn refuse_unknown_key(&mut self) -> Action {
        log::warn!("request with an API key the auth service refused");
        self.reject(Verdict::UnknownKey, 403, br#"{"error":"invalid API key"}"#)
    }

    /// Answers the client directly; the request never reaches the upstream.
    fn reject(&mut self, verdict: Verdict, status: u32, body: &[u8]) -> Action {
        self.verdict = verdict;
        self.send_http_response(
            status,
            vec![("content-type", "application/json")],
            Some(body),
        );
        Action::Pause
    }
}

// ANCHOR: ask_auth_service
impl AuthFilter {
    fn ask_auth_service(&mut self, config: &AuthConfig, key: &str) -> Action {
        let body = validation_request(key);
        let headers = vec![
            (":method", "POST"),
            (":path", config.auth_path.as_str()),
            (":authority", config.auth_authority.as_str()),
            ("content-type", "application/json"),
        ];
        match self.dispatch_http_call(
            &config.auth_cluster,
            headers,
            Some(&body),
            vec![],
            config.timeout,
        ) {
            Ok(token) => {
                self.call = Some(token);
                self.call_sent = Some(self.get_current_time());
                self.verdict = Verdict::WaitingForAuthService;
                // Hold the request here until on_http_call_response.
                Action::Pause
            }
            Err(status) => {
                log::error!(
                    "could not call the auth service (cluster `{}`): {status:?}",
                    config.auth_cluster
                );
                self.reject(
                    Verdict::AuthServiceFailed,
                    503,
                    br#"{"error":"authentication unavailable"}"#,
                )
            }
        }
    }
}
// ANCHOR_END: ask_auth_service

impl AuthFilter {
    /// The cached answer for this key, if there is a fresh one; otherwise
    /// a call to the auth service, whose answer `remember` caches.
    fn check_key(&mut self, config: &AuthConfig, key: &str) -> Action {
        let Some(keyed_digest) = &config.cache.keyed_digest else {
            return self.ask_auth_service(config, key);
        };
        let slot = Slot::for_key(keyed_digest, key, config.cache.slots);
        let cached = cache::lookup(&slot, self.now_ms(), |answer| {
            config.cache.seconds_for(answer) * 1000
        });
        if let Some(metrics) = self.metrics {
            metrics.count_cache(cached.is_some());
        }
        match cached {
            Some(Answer::Valid) => {
                self.allow();
                Action::Continue
            }
            Some(Answer::Invalid) => self.refuse_unknown_key(),
            None => {
                self.slot = Some(slot);
                self.ask_auth_service(config, key)
            }
        }
    }

    /// Caches the auth service's answer for as long as the configuration
    /// says (not at all for a time-to-live of 0).
    fn remember(&mut self, answer: Answer) {
        let (Some(slot), Some(config)) = (self.slot.take(), self.config.as_ref()) else {
            return;
        };
        let seconds = config.cache.seconds_for(answer);
        if seconds > 0 {
            cache::store(&slot, answer, self.now_ms() + seconds * 1000);
        }
    }
}

// ANCHOR: read_answer
impl AuthFilter {
    /// The call's answer, read without a call that can panic. The SDK's
    /// `hostcalls` functions panic on any status but Ok and NotFound, and a
    /// call whose stream was reset comes back with no headers at all: Envoy
    /// then answers BadArgument to a read of `:status`. So the plugin reads
    /// nothing from a call without headers, and nothing longer than it
    /// would believe.
    fn read_answer(&self, num_headers: usize, body_size: usize) -> AuthAnswer {
        if num_headers == 0 {
            return AuthAnswer::Unavailable("the call was reset: no response headers".into());
        }
        if body_size > MAX_ANSWER_BYTES {
            return AuthAnswer::Unavailable(format!(
                "an answer of {body_size} bytes, longer than the {MAX_ANSWER_BYTES} the plugin reads"
            ));
        }
        let status = self.get_http_call_response_header_bytes(":status");
        let body = self.get_http_call_response_body(0, body_size);
        match status {
            Some(status) => interpret(&status, body.as_deref().unwrap_or_default()),
            None => AuthAnswer::Unavailable("an answer without a status".into()),
        }
    }
}
// ANCHOR_END: read_answer

// ANCHOR: on_http_call_response
impl Context for AuthFilter {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        if self.call != Some(token_id) {
            return;
        }
        self.call = None;
        if let (Some(metrics), Some(sent)) = (self.metrics, self.call_sent.take()) {
            let waited = self
                .get_current_time()
                .duration_since(sent)
                .unwrap_or_default();
            metrics.record_auth_call(waited.as_millis() as u64);
        }
        let answer = self.read_answer(num_headers, body_size);
        match answer {
            AuthAnswer::Valid => {
                self.remember(Answer::Valid);
                self.allow();
                self.resume_http_request();
            }
            AuthAnswer::Invalid => {
                self.remember(Answer::Invalid);
                self.refuse_unknown_key();
            }
            // Fail closed: when in doubt, the request does not go through.
            // The reason names what happened, never what the service said.
            AuthAnswer::Unavailable(reason) => {
                log::error!("auth service unusable: {reason}; request refused");
                self.reject(
                    Verdict::AuthServiceFailed,
                    503,
                    br#"{"error":"authentication unavailable"}"#,
                );
            }
        }
    }
}
// ANCHOR_END: on_http_call_response

// ANCHOR: on_http_request_headers
impl HttpContext for AuthFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(config) = self.config.clone() else {
            return self.reject(
                Verdict::NotConfigured,
                503,
                br#"{"error":"auth plugin is not configured"}"#,
            );
        };

        // Every value, as bytes: the SDK's `get_http_request_header` returns
        // only the first one, and panics when it is not UTF-8. (Header names
        // are ASCII: Envoy refuses other requests before any filter runs.)
        let values: Vec<Bytes> = self
            .get_http_request_headers_bytes()
            .into_iter()
            .filter(|(header, _)| *header == config.header_name)
            .map(|(_, value)| value)
            .collect();
        match read_key(&values) {
            KeyHeader::Missing => {
                log::warn!("request without `{}` header", config.header_name);
                self.reject(Verdict::MissingKey, 401, br#"{"error":"missing API key"}"#)
            }
            KeyHeader::Repeated => {
                log::warn!("request with `{}` more than once", config.header_name);
                self.reject(
                    Verdict::RepeatedKey,
                    400,
                    br#"{"error":"API key sent more than once"}"#,
                )
            }
            KeyHeader::NotUtf8 => {
                log::warn!("request with an API key that is not UTF-8");
                self.reject(Verdict::UnknownKey, 403, br#"{"error":"invalid API key"}"#)
            }
            KeyHeader::Key(key) => self.check_key(&config, key),
        }
    }
    // ANCHOR_END: on_http_request_headers

    // ANCHOR: on_log
    fn on_log(&mut self) {
        log::info!("request completed, verdict {:?}", self.verdict);
        let outcome = match self.verdict {
            Verdict::Allowed => Outcome::Allowed,
            Verdict::MissingKey => Outcome::MissingKey,
            Verdict::RepeatedKey => Outcome::RepeatedKey,
            Verdict::UnknownKey => Outcome::UnknownKey,
            Verdict::AuthServiceFailed => Outcome::AuthServiceFailed,
            // Not configured (the plugin was refused), or the client left
            // before a verdict: nothing to count.
            _ => return,
        };
        if let Some(metrics) = self.metrics {
            metrics.count(outcome);
        }
    }
    // ANCHOR_END: on_log
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_with_quotes_stay_one_json_string() {
        let forged = r#"x", "key": "key-abc123"#;
        let body = validation_request(forged);
        let parsed: serde_json::Value = match serde_json::from_slice(&body) {
            Ok(value) => value,
            Err(error) => panic!("not JSON: {error}"),
        };
        assert_eq!(parsed, serde_json::json!({ "key": forged }));
        assert_eq!(validation_request(r"a\b"), br#"{"key":"a\\b"}"#.to_vec());
    }

    #[test]
    fn only_a_clear_yes_is_valid() {
        let yes = &br#"{"valid": true}"#[..];
        assert_eq!(interpret(b"200", yes), AuthAnswer::Valid);
        assert_eq!(
            interpret(b"200", br#"{"valid": false}"#),
            AuthAnswer::Invalid
        );
        assert_eq!(interpret(b"403", b""), AuthAnswer::Invalid);
        assert_eq!(interpret(b"401", yes), AuthAnswer::Invalid);
        for (status, body) in [
            (&b"500"[..], yes),
            (b"503", b""),
            (b"200", b"valid"),
            (b"200", br#"{"valid": "true"}"#),
            (b"200", br#"{"valid": true} {"valid": false}"#),
            (b"200", b""),
            (b"302", yes),
        ] {
            assert!(
                matches!(interpret(status, body), AuthAnswer::Unavailable(_)),
                "{status:?} {body:?}"
            );
        }
    }

    #[test]
    fn a_key_sent_twice_is_refused_even_when_valid() {
        let twice = [b"key-abc123".to_vec(), b"other".to_vec()];
        assert!(matches!(read_key(&twice), KeyHeader::Repeated));
        assert!(matches!(read_key(&[]), KeyHeader::Missing));
        assert!(matches!(read_key(&[Vec::new()]), KeyHeader::Missing));
        assert!(matches!(read_key(&[b"\xff".to_vec()]), KeyHeader::NotUtf8));
        assert!(matches!(
            read_key(&[b"key-abc123".to_vec()]),
            KeyHeader::Key("key-abc123")
        ));
    }

    #[test]
    fn envoys_own_answers_are_named_and_a_services_body_is_never_quoted() {
        let reason = |status: &[u8], body: &[u8]| match interpret(status, body) {
            AuthAnswer::Unavailable(reason) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            reason(b"504", b"upstream request timeout"),
            "status 504 from Envoy: no answer within the call's timeout"
        );
        assert_eq!(
            reason(
                b"503",
                b"upstream connect error or disconnect/reset before headers. reset reason: connection termination"
            ),
            "status 503 from Envoy, which could not get an answer (reset reason: connection termination)"
        );
        assert_eq!(
            reason(b"503", br#"{"error": "no such key: key-abc123"}"#),
            "the auth service answered status 503"
        );
    }
}
