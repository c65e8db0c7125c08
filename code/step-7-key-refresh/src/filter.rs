//! The per-request part: one `AuthFilter` for each HTTP request.

use crate::config::FilterConfig;
use crate::keys::{KeyList, Keys, LocalCopy};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, Bytes};
use std::rc::Rc;
use std::time::UNIX_EPOCH;

/// The header this plugin sets for the upstream. Setting it replaces every
/// copy a client sent, and a rejected request never reaches the upstream, so
/// upstreams can trust it.
const AUTH_STATUS_HEADER: &str = "x-auth-status";

/// What the plugin decided about one request, kept for the access log line.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Verdict {
    Pending,
    Allowed,
    MissingKey,
    RepeatedKey,
    UnknownKey,
    KeysNotLoaded,
    KeysStale,
    NotConfigured,
}

pub struct AuthFilter {
    config: Option<Rc<FilterConfig>>,
    keys: Rc<LocalCopy>,
    verdict: Verdict,
}

impl AuthFilter {
    pub fn new(config: Option<Rc<FilterConfig>>, keys: Rc<LocalCopy>) -> Self {
        AuthFilter {
            config,
            keys,
            verdict: Verdict::Pending,
        }
    }
}

/// Decides from every value of the key header, as bytes. A key sent twice
/// is refused even when one is valid: the upstream might read the other.
fn check_key(config: &FilterConfig, valid_keys: &KeyList, values: &[Bytes]) -> Verdict {
    match values {
        [] => Verdict::MissingKey,
        [value] if value.is_empty() => Verdict::MissingKey,
        [value] => match std::str::from_utf8(value) {
            Ok(key) if valid_keys.contains(&config.keyed_digest, key) => Verdict::Allowed,
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

    fn now_ms(&self) -> u64 {
        self.get_current_time()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

impl Context for AuthFilter {}

impl HttpContext for AuthFilter {
    // ANCHOR: on_http_request_headers
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(config) = self.config.clone() else {
            self.verdict = Verdict::NotConfigured;
            return self.reject(503, br#"{"error":"auth plugin is not configured"}"#);
        };
        // Fail closed: no keys, or keys older than the bound, let nobody in.
        let now_ms = self.now_ms();
        let valid_keys =
            match self
                .keys
                .current(&config.keyed_digest, now_ms, config.max_key_age_ms)
            {
                Keys::Fresh(keys) => keys,
                Keys::NotLoaded => {
                    self.verdict = Verdict::KeysNotLoaded;
                    log::warn!("no key list yet: request refused");
                    return self.reject(503, br#"{"error":"keys not loaded yet"}"#);
                }
                Keys::Stale { age_ms } => {
                    self.verdict = Verdict::KeysStale;
                    log::warn!("the key list is {} s old: request refused", age_ms / 1000);
                    return self.reject(503, br#"{"error":"keys are out of date"}"#);
                }
            };

        let values = self.header_values(&config.header_name);
        self.verdict = check_key(&config, &valid_keys, &values);
        // ANCHOR_END: on_http_request_headers

        match self.verdict {
            Verdict::Allowed => {
                self.set_http_request_header(AUTH_STATUS_HEADER, Some("valid"));
                Action::Continue
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

    fn on_log(&mut self) {
        log::info!("request completed, verdict {:?}", self.verdict);
    }
}
