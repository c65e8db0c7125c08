//! The per-request part: one `AuthFilter` for each HTTP request.

use crate::config::AuthConfig;
use crate::limiter::{self, Outcome};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, Bytes};
use std::rc::Rc;

/// The header this plugin sets for the upstream. Setting it replaces every
/// copy a client sent, and a rejected request never reaches the upstream, so
/// upstreams can trust it.
const AUTH_STATUS_HEADER: &str = "x-auth-status";

/// What the plugin decided about one request, kept for the access log line.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Verdict {
    Pending,
    Allowed,
    RateLimited,
    MissingKey,
    RepeatedKey,
    UnknownKey,
    NotConfigured,
}

pub struct AuthFilter {
    config: Option<Rc<AuthConfig>>,
    verdict: Verdict,
    /// The `RateLimit` header value for the response, once counted.
    quota: Option<String>,
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
    /// Every value the request has for the header `name`, as bytes (Envoy
    /// keeps header names in lower case, as the configuration does). The
    /// SDK decodes the names as UTF-8, and would panic on one that is not;
    /// Envoy refuses such a request before any filter runs.
    fn header_values(&self, name: &str) -> Vec<Bytes> {
        self.get_http_request_headers_bytes()
            .into_iter()
            .filter(|(header, _)| header == name)
            .map(|(_, value)| value)
            .collect()
    }

    /// Answers the client directly; the request never reaches the upstream.
    fn reject(&self, status: u32, body: &[u8]) -> Action {
        self.send_http_response(
            status,
            vec![("content-type", "application/json")],
            Some(body),
        );
        Action::Pause
    }
}

impl AuthFilter {
    /// Runs after authentication, so only valid keys are ever counted and a
    /// client sending random keys cannot fill the shared data.
    fn count_request(&mut self, config: &AuthConfig, key: &str) -> Action {
        match limiter::take(key, config.limit) {
            Outcome::Allowed { remaining, reset } => {
                self.quota = Some(quota_header(remaining, reset));
                self.set_http_request_header(AUTH_STATUS_HEADER, Some("valid"));
                Action::Continue
            }
            Outcome::Limited { retry_after } => {
                self.verdict = Verdict::RateLimited;
                self.quota = Some(quota_header(0, retry_after));
                let retry_after = retry_after.to_string();
                self.send_http_response(
                    429,
                    vec![
                        ("content-type", "application/json"),
                        ("retry-after", &retry_after),
                    ],
                    Some(br#"{"error":"rate limit exceeded"}"#),
                );
                Action::Pause
            }
            // Fail open: the key is valid, and a counter that cannot be
            // used (another plugin with this vm_id wrote over it, or the
            // workers fought over it 64 times in a row) should not become
            // an outage of the API. Logged at error level so it is seen;
            // the chapter explains the trade-off.
            Outcome::Unavailable(reason) => {
                log::error!("rate limiter unavailable ({reason}); request allowed uncounted");
                self.set_http_request_header(AUTH_STATUS_HEADER, Some("valid"));
                Action::Continue
            }
        }
    }
}

/// `RateLimit-Policy` and `RateLimit` as in the IETF draft
/// "RateLimit header fields for HTTP": quota `q` per window `w` seconds;
/// `r` requests remaining, window resets in `t` seconds.
fn policy_header(config: &AuthConfig) -> String {
    format!(
        "\"per-key\";q={};w={}",
        config.limit.requests, config.limit.window_seconds
    )
}

fn quota_header(remaining: u64, reset: u64) -> String {
    format!("\"per-key\";r={remaining};t={reset}")
}

impl Context for AuthFilter {}

impl HttpContext for AuthFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(config) = self.config.clone() else {
            self.verdict = Verdict::NotConfigured;
            return self.reject(503, br#"{"error":"auth plugin is not configured"}"#);
        };

        let values = self.header_values(&config.header_name);
        self.verdict = check_key(&config, &values);

        match self.verdict {
            Verdict::Allowed => {
                // check_key accepted this one value as UTF-8, so this
                // borrows it without a copy or a change.
                let key = String::from_utf8_lossy(values.first().map_or(&[][..], Vec::as_slice));
                self.count_request(&config, &key)
            }
            Verdict::MissingKey => {
                log::warn!("request without `{}` header", config.header_name);
                self.reject(401, br#"{"error":"missing API key"}"#)
            }
            Verdict::RepeatedKey => {
                log::warn!("request with `{}` more than once", config.header_name);
                self.reject(400, br#"{"error":"API key sent more than once"}"#)
            }
            // Never log the key, not even an invalid one.
            _ => {
                log::warn!("request with an unknown API key");
                self.reject(403, br#"{"error":"invalid API key"}"#)
            }
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let (Some(quota), Some(config)) = (&self.quota, &self.config) {
            self.set_http_response_header("ratelimit-policy", Some(&policy_header(config)));
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
        let json = br#"{"header_name":"x-api-key","valid_keys":["key-abc123"]}"#;
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
        assert_eq!(check(&[b"other", b"key-abc123"]), Verdict::RepeatedKey);
    }
}
