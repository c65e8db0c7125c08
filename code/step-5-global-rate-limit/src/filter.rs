//! The per-request part: one `AuthFilter` for each HTTP request.

use crate::config::{AuthConfig, Counter, ServiceConfig};
use crate::descriptor::key_descriptor;
use crate::rls::{self, Code, RateLimitResponse};
use prost::Message;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, Bytes};
use std::rc::Rc;

/// The header this plugin sets for the upstream. Setting it replaces every
/// copy a client sent, and a rejected request never reaches the upstream, so
/// upstreams can trust it.
const AUTH_STATUS_HEADER: &str = "x-auth-status";

/// The largest answer read from the rate limit service; a real one is a
/// few dozen bytes.
const MAX_ANSWER_BYTES: usize = 4096;

/// The name of a gRPC status code, for the log
/// (<https://grpc.github.io/grpc/core/md_doc_statuscodes.html>).
fn grpc_code_name(code: u32) -> &'static str {
    match code {
        1 => "CANCELLED",
        2 => "UNKNOWN",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        16 => "UNAUTHENTICATED",
        _ => "another status",
    }
}

/// What the plugin decided about one request, kept for the access log line.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Verdict {
    Pending,
    /// Paused, waiting for the rate limit service.
    Counting,
    Allowed,
    /// Allowed without being counted: the service failed and the
    /// configuration says `fail_open`.
    AllowedUncounted,
    RateLimited,
    LimitServiceFailed,
    MissingKey,
    RepeatedKey,
    UnknownKey,
    NotConfigured,
}

pub struct AuthFilter {
    config: Option<Rc<AuthConfig>>,
    verdict: Verdict,
    /// The `RateLimit-Policy` and `RateLimit` header values for the
    /// response, from the service's answer.
    quota: Option<(String, String)>,
}

impl AuthFilter {
    pub fn new(config: Option<Rc<AuthConfig>>) -> Self {
        AuthFilter {
            config,
            verdict: Verdict::Pending,
            quota: None,
        }
    }
}

/// Decides from every value of the key header, as bytes. A key sent twice
/// is refused even when one is valid: the upstream might read the other.
fn check_key(config: &AuthConfig, values: &[Bytes]) -> Verdict {
    match values {
        [] => Verdict::MissingKey,
        [value] if value.is_empty() => Verdict::MissingKey,
        [value] => match std::str::from_utf8(value) {
            Ok(key) if config.valid_keys.contains(key) => Verdict::Allowed,
            _ => Verdict::UnknownKey,
        },
        _ => Verdict::RepeatedKey,
    }
}

impl AuthFilter {
    /// Every value the request has for the header `name`, as bytes.
    fn header_values(&self, name: &str) -> Vec<Bytes> {
        self.get_http_request_headers_bytes()
            .into_iter()
            .filter(|(header, _)| header == name)
            .map(|(_, value)| value)
            .collect()
    }

    /// Answers the client directly; the request never reaches the upstream.
    fn reject(&self, status: u32, headers: Vec<(&str, &str)>, body: &[u8]) -> Action {
        let mut headers = headers;
        headers.push(("content-type", "application/json"));
        self.send_http_response(status, headers, Some(body));
        Action::Pause
    }

    fn allow(&mut self, verdict: Verdict) {
        self.verdict = verdict;
        self.set_http_request_header(AUTH_STATUS_HEADER, Some("valid"));
    }
}

// ANCHOR: ask_the_service
impl AuthFilter {
    /// Runs after authentication, so only valid keys are ever counted: a
    /// client sending random keys costs the service nothing.
    fn count_request(&mut self, config: &AuthConfig, key: &[u8]) -> Action {
        let descriptor = key_descriptor(&config.descriptor_secret, key);
        match &config.counter {
            Counter::Service(service) => self.ask_service(config, service, descriptor),
            // Envoy's rate limit filter runs next and reads the descriptor
            // from this header. Setting it replaces any copy the client
            // sent: a client must not choose whose counter it uses.
            Counter::EnvoyFilter { header } => {
                self.set_http_request_header(header, Some(&descriptor));
                self.allow(Verdict::Allowed);
                Action::Continue
            }
        }
    }

    fn ask_service(
        &mut self,
        config: &AuthConfig,
        service: &ServiceConfig,
        descriptor: String,
    ) -> Action {
        let request = rls::RateLimitRequest {
            domain: service.domain.clone(),
            descriptors: vec![rls::RateLimitDescriptor {
                entries: vec![rls::Entry {
                    key: config.descriptor_key.clone(),
                    value: descriptor,
                }],
            }],
            hits_addend: 1,
        };
        let sent = self.dispatch_grpc_call(
            &service.cluster,
            rls::SERVICE,
            rls::METHOD,
            Vec::new(),
            Some(&request.encode_to_vec()),
            service.timeout,
        );
        match sent {
            // Hold the request until `on_grpc_call_response`.
            Ok(_token) => {
                self.verdict = Verdict::Counting;
                Action::Pause
            }
            // Envoy refused to start the call (an unknown cluster, say).
            Err(status) => self.service_failed(service, &format!("call not sent: {status:?}")),
        }
    }
}
// ANCHOR_END: ask_the_service

// ANCHOR: service_failed
impl AuthFilter {
    /// The service could not give an answer. Failing closed is the
    /// default: a limit that lapses whenever Redis restarts is no limit.
    /// `fail_open` lets the request through, uncounted, for APIs where an
    /// outage of the limiter must not become an outage of the API.
    fn service_failed(&mut self, service: &ServiceConfig, reason: &str) -> Action {
        if service.fail_open {
            log::error!("rate limit service failed ({reason}); request allowed uncounted");
            self.allow(Verdict::AllowedUncounted);
            Action::Continue
        } else {
            log::error!("rate limit service failed ({reason}); request refused");
            self.verdict = Verdict::LimitServiceFailed;
            self.reject(
                503,
                Vec::new(),
                br#"{"error":"rate limit service unavailable"}"#,
            )
        }
    }
}

impl AuthFilter {
    /// In a callback, `Continue` is not returned to Envoy: the paused
    /// request must be resumed explicitly, or it waits until a timeout.
    fn resume_if(&self, action: Action) {
        if action == Action::Continue {
            self.resume_http_request();
        }
    }
}
// ANCHOR_END: service_failed

// ANCHOR: on_grpc_call_response
impl Context for AuthFilter {
    fn on_grpc_call_response(&mut self, _token_id: u32, status_code: u32, response_size: usize) {
        let Some(config) = self.config.clone() else {
            return;
        };
        let Counter::Service(service) = &config.counter else {
            return;
        };
        // 0 is gRPC's OK; anything else means no answer. Envoy reports a
        // refused connection and this call's own timeout both as 14
        // (UNAVAILABLE); the service answers 2 (UNKNOWN) when it cannot
        // reach Redis. The status message is not read: the SDK's
        // `get_grpc_status` turns it into a `String` and panics when it is
        // not UTF-8, and whoever answers on the cluster chooses its bytes.
        if status_code != 0 {
            let reason = format!(
                "gRPC status {status_code} ({})",
                grpc_code_name(status_code)
            );
            let action = self.service_failed(service, &reason);
            self.resume_if(action);
            return;
        }
        // An answer longer than any real one is not read at all: decoding a
        // prefix of it could make sense of what the service never said.
        if response_size > MAX_ANSWER_BYTES {
            let reason = format!("an answer of {response_size} bytes");
            let action = self.service_failed(service, &reason);
            self.resume_if(action);
            return;
        }
        // Envoy answers Ok, or NotFound (`None`) when there is no body; the
        // SDK panics on any other status.
        let body = self
            .get_grpc_call_response_body(0, response_size)
            .unwrap_or_default();
        match RateLimitResponse::decode(body.as_slice()) {
            Ok(answer) => self.follow(service, &answer),
            Err(_) => {
                let action = self.service_failed(service, "the answer is not a RateLimitResponse");
                self.resume_if(action);
            }
        }
    }
}
// ANCHOR_END: on_grpc_call_response

impl AuthFilter {
    /// Acts on the service's answer: resume the request, or answer 429.
    fn follow(&mut self, service: &ServiceConfig, answer: &RateLimitResponse) {
        let status = answer.statuses.first();
        let limit = status.and_then(|s| s.current_limit.as_ref());
        let reset = status
            .and_then(|s| s.duration_until_reset.as_ref())
            .map_or(0, rls::Duration::ceil_seconds);
        if let (Some(status), Some(limit)) = (status, limit) {
            let window = limit.unit().seconds().unwrap_or(0);
            self.quota = Some((
                format!("\"per-key\";q={};w={window}", limit.requests_per_unit),
                format!("\"per-key\";r={};t={reset}", status.limit_remaining),
            ));
        }
        match answer.overall_code() {
            Code::Ok => {
                self.allow(Verdict::Allowed);
                self.resume_http_request();
            }
            Code::OverLimit => {
                self.verdict = Verdict::RateLimited;
                // Never invite a client back before the window resets.
                let retry_after = reset.max(1).to_string();
                let mut headers = vec![("retry-after", retry_after.as_str())];
                if let Some((policy, quota)) = &self.quota {
                    headers.push(("ratelimit-policy", policy));
                    headers.push(("ratelimit", quota));
                }
                self.reject(429, headers, br#"{"error":"rate limit exceeded"}"#);
            }
            // The service knows no limit for this descriptor's key (its
            // configuration lacks it) or answered nonsense: not an answer.
            Code::Unknown => {
                let action = self.service_failed(service, "the answer's code is UNKNOWN");
                self.resume_if(action);
            }
        }
    }
}

impl HttpContext for AuthFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(config) = self.config.clone() else {
            self.verdict = Verdict::NotConfigured;
            return self.reject(
                503,
                Vec::new(),
                br#"{"error":"auth plugin is not configured"}"#,
            );
        };

        let values = self.header_values(&config.header_name);
        self.verdict = check_key(&config, &values);

        match (self.verdict, values.first()) {
            (Verdict::Allowed, Some(key)) => self.count_request(&config, key),
            (Verdict::MissingKey, _) => {
                log::warn!("request without `{}` header", config.header_name);
                self.reject(401, Vec::new(), br#"{"error":"missing API key"}"#)
            }
            (Verdict::RepeatedKey, _) => {
                log::warn!("request with `{}` more than once", config.header_name);
                self.reject(
                    400,
                    Vec::new(),
                    br#"{"error":"API key sent more than once"}"#,
                )
            }
            // Never log the key, not even an invalid one.
            _ => {
                log::warn!("request with an unknown API key");
                self.reject(403, Vec::new(), br#"{"error":"invalid API key"}"#)
            }
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some((policy, quota)) = &self.quota {
            self.set_http_response_header("ratelimit-policy", Some(policy));
            self.set_http_response_header("ratelimit", Some(quota));
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        log::info!("request completed, verdict {:?}", self.verdict);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AuthConfig {
        let json = br#"{"header_name":"x-api-key","valid_keys":["key-abc123"],
            "rate_limit":{"descriptor_secret":"0123456789abcdef","descriptor_header":"x-h"}}"#;
        match AuthConfig::parse(Some(json)) {
            Ok(config) => config,
            Err(error) => panic!("test config refused: {error}"),
        }
    }

    #[test]
    fn decides_from_raw_bytes() {
        let config = config();
        let check = |values: &[&[u8]]| {
            let values: Vec<Bytes> = values.iter().map(|v| v.to_vec()).collect();
            check_key(&config, &values)
        };
        assert_eq!(check(&[]), Verdict::MissingKey);
        assert_eq!(check(&[b""]), Verdict::MissingKey);
        assert_eq!(check(&[b"key-abc123"]), Verdict::Allowed);
        assert_eq!(check(&[b"key-abc1234"]), Verdict::UnknownKey);
        assert_eq!(check(&[b"\xff\xfe"]), Verdict::UnknownKey);
        assert_eq!(check(&[b"key-abc123", b"other"]), Verdict::RepeatedKey);
    }
}
