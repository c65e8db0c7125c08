//! A second plugin beside step 3, for the lesson on calling a service less
//! often: a request whose key is already being asked about waits for that
//! answer instead of asking again, so a VM has at most one call in flight
//! per key. It reads step 3's configuration but has none of its cache or
//! metrics, so the idea stands alone; in a real plugin the two combine
//! (the cache answers first, and only a miss joins or makes a call).

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, Bytes, ContextType, LogLevel, MapType};
use serde::Deserialize;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

/// Set for the upstream on every request let through, as in step 3.
const AUTH_STATUS_HEADER: &str = "x-auth-status";

/// `{"valid":true}` needs 14 bytes: a longer answer is refused whole.
const MAX_ANSWER_BYTES: usize = 4096;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(CoalescingRoot { config: None, in_flight: Rc::default() })
    });
}}

/// The fields of step 3's configuration this plugin uses, with step 3's
/// defaults; it ignores the cache's.
#[derive(Deserialize)]
struct Config {
    header_name: String,
    auth_cluster: String,
    auth_authority: String,
    #[serde(default = "default_auth_path")]
    auth_path: String,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
}

fn default_auth_path() -> String {
    "/validate".to_owned()
}

fn default_timeout_ms() -> u64 {
    500
}

/// As in step 3: a waiting request waits at most this long for its answer.
const MAX_TIMEOUT_MS: u64 = 10_000;

/// The calls this VM has in flight, by key. A VM runs one callback at a
/// time, so the root and every filter share it through an `Rc<RefCell>`,
/// without a lock. It holds a key only while its call is in flight.
#[derive(Default)]
struct InFlight {
    calls: BTreeMap<String, Vec<u32>>,
}

impl InFlight {
    /// Adds `request` (its context id) to those waiting for the answer
    /// about `key`; false if no call for `key` is in flight.
    fn wait_for(&mut self, key: &str, request: u32) -> bool {
        match self.calls.get_mut(key) {
            Some(waiting) => {
                waiting.push(request);
                true
            }
            None => false,
        }
    }

    /// The call about `key` is done (or gone): the requests that waited.
    fn finish(&mut self, key: &str) -> Vec<u32> {
        self.calls.remove(key).unwrap_or_default()
    }
}

struct CoalescingRoot {
    config: Option<Rc<Config>>,
    in_flight: Rc<RefCell<InFlight>>,
}

impl Context for CoalescingRoot {}

impl RootContext for CoalescingRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        match serde_json::from_slice::<Config>(&bytes) {
            Ok(config) if !(1..=MAX_TIMEOUT_MS).contains(&config.timeout_ms) => {
                log::error!("rejected plugin configuration: `timeout_ms` must be between 1 and {MAX_TIMEOUT_MS}");
                false
            }
            Ok(mut config) => {
                config.header_name.make_ascii_lowercase();
                self.config = Some(Rc::new(config));
                true
            }
            Err(error) => {
                log::error!("rejected plugin configuration: {error}");
                false
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(CoalescingFilter {
            context_id,
            config: self.config.clone(),
            in_flight: self.in_flight.clone(),
            asking: None,
            waiting: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct CoalescingFilter {
    /// Envoy's id for this request's context: what the request that made
    /// the call needs to act on this one.
    context_id: u32,
    config: Option<Rc<Config>>,
    in_flight: Rc<RefCell<InFlight>>,
    /// The call this request made (its token) and the key it asks about.
    asking: Option<(u32, String)>,
    /// The key whose answer this request waits for, made by another.
    waiting: Option<String>,
}

/// What one answer means for every request that waited for it.
#[derive(Clone, Copy, Debug)]
enum Decision {
    Allow,
    Refuse,
    Unavailable,
}

/// Lets through or refuses the request of the *effective* context: the
/// callback's own, or the one `hostcalls::set_effective_context` chose.
/// These SDK functions return a `Result` but panic on any status other than
/// Ok, as the `HttpContext` methods do; they are called only for a context
/// that exists.
fn decide(decision: Decision) {
    let json = vec![("content-type", "application/json")];
    let _ = match decision {
        Decision::Allow => hostcalls::set_map_value(
            MapType::HttpRequestHeaders,
            AUTH_STATUS_HEADER,
            Some("valid"),
        )
        .and_then(|()| hostcalls::resume_http_request()),
        Decision::Refuse => {
            hostcalls::send_http_response(403, json, Some(br#"{"error":"invalid API key"}"#))
        }
        Decision::Unavailable => hostcalls::send_http_response(
            503,
            json,
            Some(br#"{"error":"authentication unavailable"}"#),
        ),
    };
}

/// Gives the requests that waited the decision. A request whose client has
/// left has no context any more: Envoy answers BadArgument (the one status
/// this SDK function returns instead of panicking on) and it is skipped.
fn decide_for(waiting: &[u32], decision: Decision) {
    for &request in waiting {
        if hostcalls::set_effective_context(request).is_ok() {
            decide(decision);
        }
    }
}

// ANCHOR: join_or_ask
impl CoalescingFilter {
    fn join_or_ask(&mut self, config: &Config, key: &str) -> Action {
        if self.in_flight.borrow_mut().wait_for(key, self.context_id) {
            // Another request is asking about this key: wait for its answer.
            self.waiting = Some(key.to_owned());
            return Action::Pause;
        }
        let body = serde_json::json!({ "key": key }).to_string();
        let headers = vec![
            (":method", "POST"),
            (":path", config.auth_path.as_str()),
            (":authority", config.auth_authority.as_str()),
            ("content-type", "application/json"),
        ];
        let timeout = Duration::from_millis(config.timeout_ms);
        match self.dispatch_http_call(
            &config.auth_cluster,
            headers,
            Some(body.as_bytes()),
            vec![],
            timeout,
        ) {
            Ok(token) => {
                self.in_flight
                    .borrow_mut()
                    .calls
                    .insert(key.to_owned(), Vec::new());
                self.asking = Some((token, key.to_owned()));
                Action::Pause
            }
            Err(status) => {
                log::error!("could not call the auth service: {status:?}");
                self.refuse(Decision::Unavailable)
            }
        }
    }
}
// ANCHOR_END: join_or_ask

impl Context for CoalescingFilter {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body_size: usize, _: usize) {
        let Some((_, key)) = self.asking.take_if(|(asked, _)| *asked == token) else {
            return;
        };
        let decision = self.read_answer(headers, body_size);
        let waiting = self.in_flight.borrow_mut().finish(&key);
        log::info!(
            "one answer ({decision:?}) for {} requests",
            waiting.len() + 1
        );
        decide(decision);
        decide_for(&waiting, decision);
        // Envoy restores this callback's own context when it returns; this
        // keeps any host call added below acting on this request.
        let _ = hostcalls::set_effective_context(self.context_id);
    }

    /// Envoy cancels the call of a request whose client leaves, so no
    /// answer will come for those waiting on it: they are refused now
    /// (fail closed) instead of hanging until their own timeouts.
    fn on_done(&mut self) -> bool {
        if let Some((_, key)) = self.asking.take() {
            let waiting = self.in_flight.borrow_mut().finish(&key);
            if !waiting.is_empty() {
                log::warn!(
                    "the request asking left: {} waiting requests refused",
                    waiting.len()
                );
            }
            decide_for(&waiting, Decision::Unavailable);
        }
        if let Some(key) = self.waiting.take() {
            if let Some(waiting) = self.in_flight.borrow_mut().calls.get_mut(&key) {
                waiting.retain(|&request| request != self.context_id);
            }
        }
        true
    }
}

impl CoalescingFilter {
    /// Step 3's reading of an answer, shortened: nothing is read from a
    /// reset call (no headers), nor from an answer longer than it believes.
    fn read_answer(&self, headers: usize, body_size: usize) -> Decision {
        if headers == 0 || body_size > MAX_ANSWER_BYTES {
            return Decision::Unavailable;
        }
        let status = self.get_http_call_response_header_bytes(":status");
        let body = self
            .get_http_call_response_body(0, body_size)
            .unwrap_or_default();
        #[derive(Deserialize)]
        struct Answer {
            valid: bool,
        }
        match (status.as_deref(), serde_json::from_slice::<Answer>(&body)) {
            (Some(b"200"), Ok(Answer { valid: true })) => Decision::Allow,
            (Some(b"200"), Ok(Answer { valid: false })) | (Some(b"401" | b"403"), _) => {
                Decision::Refuse
            }
            _ => Decision::Unavailable,
        }
    }

    fn refuse(&mut self, decision: Decision) -> Action {
        decide(decision);
        Action::Pause
    }
}

impl HttpContext for CoalescingFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(config) = self.config.clone() else {
            return self.refuse(Decision::Unavailable);
        };
        // As in step 3: every value, as bytes; one UTF-8 value or a refusal.
        let values: Vec<Bytes> = self
            .get_http_request_headers_bytes()
            .into_iter()
            .filter(|(name, _)| *name == config.header_name)
            .map(|(_, value)| value)
            .collect();
        let json = [("content-type", "application/json")];
        match values.as_slice() {
            [value] if !value.is_empty() => match std::str::from_utf8(value) {
                Ok(key) => self.join_or_ask(&config, key),
                Err(_) => self.refuse(Decision::Refuse),
            },
            [] | [_] => {
                self.send_http_response(
                    401,
                    json.to_vec(),
                    Some(br#"{"error":"missing API key"}"#),
                );
                Action::Pause
            }
            _ => {
                self.send_http_response(
                    400,
                    json.to_vec(),
                    Some(br#"{"error":"API key sent more than once"}"#),
                );
                Action::Pause
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_has_one_call_and_its_waiting_requests() {
        let mut in_flight = InFlight::default();
        assert!(!in_flight.wait_for("key-abc123", 2), "no call yet");
        in_flight.calls.insert("key-abc123".into(), Vec::new());
        assert!(in_flight.wait_for("key-abc123", 3));
        assert!(in_flight.wait_for("key-abc123", 4));
        assert!(!in_flight.wait_for("key-def456", 5), "another key");
        assert_eq!(in_flight.finish("key-abc123"), vec![3, 4]);
        assert!(in_flight.calls.is_empty(), "the key is forgotten");
        assert_eq!(in_flight.finish("key-abc123"), Vec::<u32>::new());
    }
}
