//! A second plugin beside step 4, for the chapter's lesson on changing a
//! request body: it removes the top-level `"password"` field from JSON
//! bodies before they reach the upstream. The new body is shorter than the
//! one the client announced, and that is the whole point of the example.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

/// The field that must not reach the upstream.
const REDACTED_FIELD: &str = "password";

/// Bodies over this size are refused with 413, so a client cannot make
/// Envoy buffer more than this for one request.
const MAX_BODY_BYTES: usize = 64 * 1024;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(RedactRoot) });
}}

struct RedactRoot;

impl Context for RedactRoot {}

impl RootContext for RedactRoot {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(RedactBody { body_size: 0 }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct RedactBody {
    /// The bytes Envoy has buffered so far, for a body that ends with
    /// trailers: its last body callback does not say `end_of_stream`.
    body_size: usize,
}

impl Context for RedactBody {}

impl RedactBody {
    /// Rewrites the whole buffered body, once it is complete.
    fn redact(&mut self) -> Action {
        let body_size = self.body_size;
        let Some(body) = self.get_http_request_body(0, body_size) else {
            return Action::Continue;
        };
        let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_slice(&body) else {
            // Not a JSON object: nothing to redact, pass it on unchanged.
            return Action::Continue;
        };
        if fields.remove(REDACTED_FIELD).is_some() {
            let redacted = serde_json::Value::Object(fields).to_string();
            // Replace all `body_size` bytes Envoy holds with the new body.
            self.set_http_request_body(0, body_size, redacted.as_bytes());
        }
        Action::Continue
    }
}

impl HttpContext for RedactBody {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            // The body this plugin passes on may be shorter than the one
            // the client announced. Removing `content-length` now, while
            // the headers can still change, makes Envoy send the body with
            // `transfer-encoding: chunked` (HTTP/1.1) or plain DATA frames
            // (HTTP/2), whose length is whatever the body turns out to be.
            self.set_http_request_header("content-length", None);
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.body_size = body_size;
        if body_size > MAX_BODY_BYTES {
            self.send_http_response(413, vec![], Some(b"body too large\n"));
            return Action::Pause;
        }
        if !end_of_stream {
            // Keep buffering: the body can only be rewritten whole.
            return Action::Pause;
        }
        self.redact()
    }

    /// A body followed by trailers (HTTP/2, or HTTP/1.1 with `enable_trailers`) is
    /// complete here, not in a body callback with `end_of_stream`. Without
    /// this callback, such a body would go on unredacted.
    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.body_size > MAX_BODY_BYTES {
            // Already answered with 413.
            return Action::Pause;
        }
        self.redact()
    }
}
