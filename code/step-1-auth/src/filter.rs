// ANCHOR: whole
//! The per-request part: one `AuthFilter` for each HTTP request.

use crate::config::AuthConfig;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::rc::Rc;

// ANCHOR: auth_status_header
/// The header this plugin sets for the upstream. Setting it replaces every
/// copy a client sent, and a rejected request never reaches the upstream, so
/// upstreams can trust it.
const AUTH_STATUS_HEADER: &str = "x-auth-status";
// ANCHOR_END: auth_status_header

// ANCHOR: verdict
/// What the plugin decided about one request, kept for the access log line.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Verdict {
    Pending,
    Allowed,
    MissingKey,
    UnknownKey,
    NotConfigured,
}
// ANCHOR_END: verdict

// ANCHOR: filter
pub struct AuthFilter {
    config: Option<Rc<AuthConfig>>,
    verdict: Verdict,
}

impl AuthFilter {
    pub fn new(config: Option<Rc<AuthConfig>>) -> Self {
        AuthFilter {
            config,
            verdict: Verdict::Pending,
        }
    }
}
// ANCHOR_END: filter

// ANCHOR: check_key
/// Decides from the raw header bytes. A value that is not UTF-8 cannot be
/// one of the configured keys (they are JSON strings), so it is unknown.
fn check_key(config: &AuthConfig, value: Option<&[u8]>) -> Verdict {
    match value {
        None | Some(b"") => Verdict::MissingKey,
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(key) if config.valid_keys.contains(key) => Verdict::Allowed,
            _ => Verdict::UnknownKey,
        },
    }
}
// ANCHOR_END: check_key

// ANCHOR: reject
impl AuthFilter {
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
// ANCHOR_END: reject

impl Context for AuthFilter {}

// ANCHOR: on_http_request_headers
impl HttpContext for AuthFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(config) = self.config.clone() else {
            self.verdict = Verdict::NotConfigured;
            return self.reject(503, br#"{"error":"auth plugin is not configured"}"#);
        };

        // The _bytes variant: the plain one panics on a non-UTF-8 value.
        let value = self.get_http_request_header_bytes(&config.header_name);
        self.verdict = check_key(&config, value.as_deref());

        match self.verdict {
            Verdict::Allowed => {
                self.set_http_request_header(AUTH_STATUS_HEADER, Some("valid"));
                Action::Continue
            }
            Verdict::MissingKey => {
                log::warn!("request without `{}` header", config.header_name);
                self.reject(401, br#"{"error":"missing API key"}"#)
            }
            // Never log the key itself, not even an invalid one: clients
            // paste real keys into the wrong header and into the wrong proxy.
            _ => {
                log::warn!("request with an unknown API key");
                self.reject(403, br#"{"error":"invalid API key"}"#)
            }
        }
    }
    // ANCHOR_END: on_http_request_headers

    // ANCHOR: on_log
    fn on_log(&mut self) {
        log::info!("request completed, verdict {:?}", self.verdict);
    }
}
// ANCHOR_END: on_log
// ANCHOR_END: whole

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
        assert_eq!(check_key(&config, None), Verdict::MissingKey);
        assert_eq!(check_key(&config, Some(b"")), Verdict::MissingKey);
        assert_eq!(check_key(&config, Some(b"key-abc123")), Verdict::Allowed);
        assert_eq!(
            check_key(&config, Some(b"key-abc1234")),
            Verdict::UnknownKey
        );
        assert_eq!(check_key(&config, Some(b"\xff\xfe")), Verdict::UnknownKey);
    }
}
