//! The per-request part: hold the request until its whole body has been
//! seen and its signature checked.

use crate::config::SignatureConfig;
use crate::signature::{Mac, Verifier};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::rc::Rc;
use std::time::UNIX_EPOCH;

// ANCHOR: verdict
/// What the plugin decided about one request, kept for the access log line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Verdict {
    /// Headers seen, body still arriving.
    Pending,
    Verified,
    MissingSignature,
    MalformedSignature,
    WrongSignature,
    RepeatedHeader,
    BadTimestamp,
    StaleTimestamp,
    BadWebhookId,
    BodyTooLarge,
    NotConfigured,
}
// ANCHOR_END: verdict

pub struct SignatureFilter {
    config: Option<Rc<SignatureConfig>>,
    verdict: Verdict,
    /// Between the headers and the end of the body: the signature the
    /// sender claims, and the MAC of the body so far.
    check: Option<BodyCheck>,
}

struct BodyCheck {
    /// Every signature the sender sent (several during a rotation).
    signatures: Vec<Mac>,
    verifier: Verifier,
    /// How many bytes of the body the verifier has already read.
    hashed: usize,
}

impl SignatureFilter {
    pub fn new(config: Option<Rc<SignatureConfig>>) -> Self {
        SignatureFilter {
            config,
            verdict: Verdict::Pending,
            check: None,
        }
    }
}

impl SignatureFilter {
    /// Answers the client directly and forgets the body check: the request,
    /// and any part of its body, never reaches the upstream.
    fn reject(&mut self, verdict: Verdict, status: u32, message: &str) -> Action {
        self.verdict = verdict;
        self.check = None;
        let body = serde_json::json!({ "error": message }).to_string();
        self.send_http_response(
            status,
            vec![("content-type", "application/json")],
            Some(body.as_bytes()),
        );
        Action::Pause
    }
}

// ANCHOR: header_checks
impl SignatureFilter {
    /// Everything that can be decided from the headers alone. `Ok` carries
    /// the check the body must still pass; `Err` the answer already sent.
    fn check_headers(&mut self, config: &SignatureConfig) -> Result<BodyCheck, Action> {
        let headers = self.get_http_request_headers_bytes();
        // The scheme reads its headers exactly as its sender writes them,
        // each header once: with two, the plugin could verify one while
        // the upstream reads the other.
        let claim = match config.scheme.read(&headers) {
            Ok(claim) => claim,
            Err(refusal) => {
                return Err(self.reject(refusal.verdict, refusal.status, refusal.message))
            }
        };
        if let (Some(sent), Some(tolerance)) = (claim.timestamp, config.tolerance_seconds) {
            let now = self
                .get_current_time()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            if now.abs_diff(sent) > tolerance {
                return Err(self.reject(Verdict::StaleTimestamp, 400, "stale timestamp"));
            }
        }

        // A declared length over the limit is refused before any of the
        // body arrives. (Envoy has already refused a request whose
        // `content-length` is malformed or given twice with two values.)
        let declared_too_long = headers
            .iter()
            .filter(|(name, _)| name == "content-length")
            .filter_map(|(_, value)| std::str::from_utf8(value).ok()?.parse::<u64>().ok())
            .any(|length| length > config.max_body_bytes as u64);
        if declared_too_long {
            return Err(self.reject(Verdict::BodyTooLarge, 413, "body too large"));
        }

        Ok(BodyCheck {
            signatures: claim.signatures,
            verifier: Verifier::start(&config.secrets, &claim.prefix),
            hashed: 0,
        })
    }

    /// The end of the body: let the request go on, or refuse it.
    fn finish(&mut self) -> Action {
        let Some(check) = self.check.take() else {
            return Action::Pause;
        };
        if check.verifier.matches(&check.signatures) {
            self.verdict = Verdict::Verified;
            Action::Continue
        } else {
            self.reject(Verdict::WrongSignature, 401, "invalid signature")
        }
    }
}
// ANCHOR_END: header_checks

impl Context for SignatureFilter {}

impl HttpContext for SignatureFilter {
    // ANCHOR: on_http_request_headers
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(config) = self.config.clone() else {
            return self.reject(Verdict::NotConfigured, 503, "plugin is not configured");
        };
        match self.check_headers(&config) {
            Err(answered) => answered,
            Ok(check) => {
                self.check = Some(check);
                if end_of_stream {
                    // No body at all: what was signed is the empty body.
                    self.finish()
                } else {
                    // Hold the headers too: nothing of a request reaches
                    // the upstream before its verdict. This needs
                    // `allow_on_headers_stop_iteration` (envoy.yaml):
                    // without it, Envoy holds the body back from the
                    // plugin as well, and the request waits forever.
                    Action::Pause
                }
            }
        }
    }
    // ANCHOR_END: on_http_request_headers

    // ANCHOR: on_http_request_body
    /// Called for each piece of the body as it arrives. `body_size` is all
    /// of the body Envoy holds for this request so far: returning `Pause`
    /// tells Envoy to keep buffering it, and not to pass any of it on.
    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(max_body_bytes) = self.config.as_ref().map(|c| c.max_body_bytes) else {
            return Action::Pause;
        };
        let Some(hashed) = self.check.as_ref().map(|check| check.hashed) else {
            // Decided already: refused (the answer is on its way), or
            // verified (nothing left to check).
            return match self.verdict {
                Verdict::Verified => Action::Continue,
                _ => Action::Pause,
            };
        };
        // Stop at the first byte over the limit, not at the end of a body
        // the client may never finish sending.
        if body_size > max_body_bytes {
            return self.reject(Verdict::BodyTooLarge, 413, "body too large");
        }
        // Read only what arrived since the last call: the MAC is fed as
        // the body streams in, and the plugin never copies all of it.
        if body_size > hashed {
            let chunk = self.get_http_request_body(hashed, body_size - hashed);
            if let (Some(check), Some(chunk)) = (self.check.as_mut(), chunk) {
                check.verifier.update(&chunk);
                check.hashed += chunk.len();
            }
        }
        if end_of_stream {
            self.finish()
        } else {
            Action::Pause
        }
    }
    // ANCHOR_END: on_http_request_body

    // ANCHOR: on_http_request_trailers
    /// A body followed by trailers ends here, not with `end_of_stream` in
    /// `on_http_request_body`. Without this callback the request would go
    /// on unverified: the default answer is `Continue`.
    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.check.is_some() {
            self.finish()
        } else {
            match self.verdict {
                Verdict::Verified => Action::Continue,
                _ => Action::Pause,
            }
        }
    }
    // ANCHOR_END: on_http_request_trailers

    fn on_log(&mut self) {
        log::info!("request completed, verdict {:?}", self.verdict);
    }
}
