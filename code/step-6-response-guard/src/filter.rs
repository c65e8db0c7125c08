//! The per-request part: hold each JSON response until all of it has
//! arrived, rewrite it, and only then let its headers and body go.

use crate::config::GuardConfig;
use crate::media::{self, Kind};
use crate::redact::redact;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::rc::Rc;

/// What became of one response, for the access log line.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Verdict {
    Pending,
    /// No body (HEAD, 204, 304, or an empty response): headers only.
    NoBody,
    /// A type the configuration lets pass (`pass_unread`): streamed
    /// through untouched, never held.
    PassedUnread,
    /// Rewritten, with this many fields removed.
    Redacted(usize),
    /// Refused with 502: a type the guard may not pass, part of a
    /// response, compressed, too large, or not readable as JSON.
    TypeNotAllowed,
    PartialContent,
    Compressed,
    TooLarge,
    Unreadable,
    NotConfigured,
}

pub struct GuardFilter {
    config: Option<Rc<GuardConfig>>,
    verdict: Verdict,
    /// True from a JSON response's headers until its verdict: Envoy holds
    /// the headers and the body, and the plugin decides at the end.
    holding: bool,
    /// The size of the body Envoy holds, from the last body callback.
    held_bytes: usize,
}

impl GuardFilter {
    pub fn new(config: Option<Rc<GuardConfig>>) -> Self {
        GuardFilter {
            config,
            verdict: Verdict::Pending,
            holding: false,
            held_bytes: 0,
        }
    }

    /// Replaces the upstream's response with a 502 of the plugin's own:
    /// possible only while its headers have not gone to the client.
    fn refuse(&mut self, verdict: Verdict, message: &str) -> Action {
        self.verdict = verdict;
        self.holding = false;
        let body = serde_json::json!({ "error": message }).to_string();
        self.send_http_response(
            502,
            vec![("content-type", "application/json")],
            Some(body.as_bytes()),
        );
        Action::Pause
    }

    fn response_header(&self, name: &str) -> Option<Vec<u8>> {
        self.get_http_response_header_bytes(name)
    }
}

impl Context for GuardFilter {}

impl HttpContext for GuardFilter {
    // ANCHOR: on_http_request_headers
    /// Asks the upstream for the whole response, uncompressed: the guard
    /// reads only what it can parse, and a part of a document (the answer
    /// to a `Range`) can be a secret value alone, with no field name left
    /// to remove.
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for name in ["accept-encoding", "range", "if-range"] {
            self.set_http_request_header(name, None);
        }
        Action::Continue
    }
    // ANCHOR_END: on_http_request_headers

    // ANCHOR: on_http_response_headers
    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(config) = self.config.clone() else {
            return self.refuse(Verdict::NotConfigured, "plugin is not configured");
        };
        // What the response is, read before any header is changed.
        let kind = media::classify(
            self.response_header("content-type").as_deref(),
            &config.pass_unread,
        );
        let partial = self.response_header(":status").as_deref() == Some(b"206");
        for name in &config.remove_headers {
            self.set_http_response_header(name, None);
        }
        for (name, value) in &config.set_headers {
            self.set_http_response_header(name, Some(value));
        }
        if end_of_stream {
            // HEAD, 204, 304: no body callback will come. The length a
            // HEAD answer gives is the unredacted body's: not the client's
            // business.
            if kind == Kind::Json {
                self.set_http_response_header("content-length", None);
            }
            self.verdict = Verdict::NoBody;
            return Action::Continue;
        }
        match kind {
            Kind::Refused => {
                return self.refuse(Verdict::TypeNotAllowed, "response type not allowed")
            }
            Kind::PassUnread => {
                self.verdict = Verdict::PassedUnread;
                return Action::Continue;
            }
            Kind::Json => {}
        }
        if partial {
            return self.refuse(Verdict::PartialContent, "partial response");
        }
        let encoded = self
            .response_header("content-encoding")
            .is_some_and(|e| !e.eq_ignore_ascii_case(b"identity"));
        if encoded {
            return self.refuse(Verdict::Compressed, "response is compressed");
        }
        let declared = self
            .response_header("content-length")
            .and_then(|v| std::str::from_utf8(&v).ok()?.trim().parse::<u64>().ok());
        if declared.is_some_and(|length| length > config.max_body_bytes as u64) {
            return self.refuse(Verdict::TooLarge, "response too large");
        }
        // Hold the headers until the body is rewritten: its length, and
        // whether there is a response at all, are not known yet. With
        // `allow_on_headers_stop_iteration` (Envoy 1.35+), Envoy still
        // calls the body callbacks while the headers wait.
        self.holding = true;
        Action::Pause
    }
    // ANCHOR_END: on_http_response_headers

    // ANCHOR: on_http_response_body
    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.holding {
            return match self.verdict {
                Verdict::PassedUnread | Verdict::NoBody | Verdict::Redacted(_) => Action::Continue,
                _ => Action::Pause,
            };
        }
        let Some(limit) = self.config.as_ref().map(|c| c.max_body_bytes) else {
            return Action::Pause;
        };
        if body_size > limit {
            return self.refuse(Verdict::TooLarge, "response too large");
        }
        self.held_bytes = body_size;
        if end_of_stream {
            self.finish()
        } else {
            Action::Pause
        }
    }
    // ANCHOR_END: on_http_response_body

    // ANCHOR: on_http_response_trailers
    /// A body followed by trailers ends here, not with `end_of_stream` in
    /// `on_http_response_body`.
    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.holding {
            self.finish()
        } else {
            Action::Continue
        }
    }
    // ANCHOR_END: on_http_response_trailers

    fn on_log(&mut self) {
        log::info!("response completed, verdict {:?}", self.verdict);
    }
}

// ANCHOR: finish
impl GuardFilter {
    /// The whole body is here: rewrite it and let the response go, or
    /// refuse it. Never a half-rewritten body: either all of it was read
    /// and rewritten, or the client gets the plugin's 502.
    fn finish(&mut self) -> Action {
        let Some(config) = self.config.clone() else {
            return Action::Pause;
        };
        let size = self.held_bytes;
        let body = self.get_http_response_body(0, size).unwrap_or_default();
        match redact(&body, &config.remove_fields) {
            Ok((rewritten, removed)) => {
                self.holding = false;
                self.verdict = Verdict::Redacted(removed);
                self.set_http_response_body(0, size, &rewritten);
                // The headers are still held, so they can say the new length.
                let length = rewritten.len().to_string();
                self.set_http_response_header("content-length", Some(&length));
                Action::Continue
            }
            Err(_) => self.refuse(Verdict::Unreadable, "response is not valid JSON"),
        }
    }
}
// ANCHOR_END: finish
