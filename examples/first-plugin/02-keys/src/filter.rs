//! The per-request part: one `AuthFilter` for each HTTP request.

use crate::config::AuthConfig;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::rc::Rc;

pub struct AuthFilter {
    config: Option<Rc<AuthConfig>>,
}

impl AuthFilter {
    pub fn new(config: Option<Rc<AuthConfig>>) -> Self {
        AuthFilter { config }
    }
}

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

impl Context for AuthFilter {}

impl HttpContext for AuthFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(config) = self.config.clone() else {
            return self.reject(503, br#"{"error":"auth plugin is not configured"}"#);
        };

        // The key as bytes: a header value need not be UTF-8.
        match self.get_http_request_header_bytes(&config.header_name) {
            None => self.reject(401, br#"{"error":"missing API key"}"#),
            Some(value) => match std::str::from_utf8(&value) {
                Ok(key) if config.valid_keys.contains(key) => Action::Continue,
                _ => self.reject(403, br#"{"error":"invalid API key"}"#),
            },
        }
    }
}
