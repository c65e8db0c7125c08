//! The refresher: its VM's timer ticks every second, and when a refresh is
//! due, one call goes to the key service, whose answer, once checked,
//! replaces the published list. The next refresh is due `every_seconds`
//! after the call of one that worked was sent, at the next tick after one
//! that failed. An answer that
//! fails a check replaces nothing: the keys from the last refresh that
//! worked stay in use until they are older than the filter's bound.

use crate::config::RefreshConfig;
use crate::keys;
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};
use serde::Deserialize;
use std::time::Duration;

/// The longest answer read: 64 KiB holds a thousand long keys. A longer
/// one is refused whole, never read in part.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// How often the timer ticks: how soon a failed refresh is tried again.
pub const TICK: Duration = Duration::from_secs(1);

/// What the key service answers: `{"keys": ["...", ...]}`, nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyList {
    keys: Vec<String>,
}

/// The keys in an answer, or why it is not used. The reasons never quote
/// the answer: it may hold keys.
fn check_answer(status: &[u8], body: &[u8]) -> Result<Vec<String>, String> {
    if status != b"200" {
        let status = String::from_utf8_lossy(status);
        return Err(format!("the key service answered status {status}"));
    }
    // Not UTF-8, not JSON, another shape, a key that is not a string: all
    // refused here, by serde_json.
    let list: KeyList = serde_json::from_slice(body).map_err(|e| {
        format!(
            "an answer that is not {{\"keys\": [strings]}} ({})",
            e.classify_name()
        )
    })?;
    if list.keys.iter().any(String::is_empty) {
        return Err("an answer with an empty key".into());
    }
    Ok(list.keys)
}

/// The kind of a serde_json error, without its text (which can quote input).
trait Classify {
    fn classify_name(&self) -> &'static str;
}

impl Classify for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax => "not JSON",
            serde_json::error::Category::Data => "JSON of another shape",
            serde_json::error::Category::Eof => "JSON cut short",
        }
    }
}

pub struct Refresher {
    config: RefreshConfig,
    /// The call in flight, if any (at most one at a time), and when it was
    /// sent (Unix time, ms).
    call: Option<(u32, u64)>,
    /// When the next refresh is due (Unix time, ms); 0 at start: at once.
    due_ms: u64,
}

impl Refresher {
    pub fn new(config: RefreshConfig) -> Self {
        Refresher {
            config,
            call: None,
            due_ms: 0,
        }
    }

    pub fn every(&self) -> Duration {
        self.config.every
    }

    /// Asks the key service for the list when a refresh is due and no call
    /// is still out.
    pub fn tick(&mut self, now_ms: u64) {
        if self.call.is_some() || now_ms < self.due_ms {
            return;
        }
        let headers = vec![
            (":method", "GET"),
            (":path", self.config.path.as_str()),
            (":authority", self.config.authority.as_str()),
        ];
        match hostcalls::dispatch_http_call(
            &self.config.cluster,
            headers,
            None,
            vec![],
            self.config.timeout,
        ) {
            Ok(token) => self.call = Some((token, now_ms)),
            Err(status) => {
                log::error!(
                    "could not call the key service (cluster `{}`): {status:?}",
                    self.config.cluster
                );
                self.due_ms = now_ms;
            }
        }
    }

    /// Handles the answer to `token`, if it is this refresher's call.
    /// Returns whether it was.
    pub fn on_answer(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        now_ms: u64,
    ) -> bool {
        let Some((_, sent_ms)) = self.call.filter(|(call, _)| *call == token) else {
            return false;
        };
        self.call = None;
        let answer = read_answer(num_headers, body_size)
            .and_then(|(status, body)| check_answer(&status, &body));
        let published = match answer {
            Ok(keys) => match keys::publish(&self.config.keyed_digest, &keys, now_ms) {
                Ok(()) => {
                    log::info!("refreshed: {} keys", keys.len());
                    true
                }
                Err(status) => {
                    log::error!("could not publish the keys: {status:?}");
                    false
                }
            },
            Err(reason) => {
                log::warn!("refresh failed: {reason}; the last keys stay in use");
                false
            }
        };
        if published {
            // Half a tick early, so that the tick a period after this call
            // is never a few milliseconds too soon to send the next one.
            let period = self.config.every.as_millis() as u64;
            let half_tick = TICK.as_millis() as u64 / 2;
            self.due_ms = sent_ms.saturating_add(period).saturating_sub(half_tick);
        }
        true
    }
}

/// The call's status and body, read without a call that can panic: the
/// SDK's getters panic on any status but Ok and NotFound, and Envoy
/// answers BadArgument to a read of `:status` from a call that was reset
/// (no headers at all). So nothing is read from a call without headers,
/// and nothing longer than the plugin would use.
fn read_answer(num_headers: usize, body_size: usize) -> Result<(Vec<u8>, Vec<u8>), String> {
    if num_headers == 0 {
        return Err("the call was reset: no response headers".into());
    }
    if body_size > MAX_ANSWER_BYTES {
        return Err(format!(
            "an answer of {body_size} bytes, longer than the {MAX_ANSWER_BYTES} the plugin reads"
        ));
    }
    let status = hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status")
        .ok()
        .flatten()
        .ok_or("an answer without a status")?;
    let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
        .ok()
        .flatten()
        .unwrap_or_default();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_list_of_keys_is_used() {
        let good = br#"{"keys": ["key-abc123", "key-def456"]}"#;
        assert_eq!(
            check_answer(b"200", good),
            Ok(vec!["key-abc123".to_owned(), "key-def456".to_owned()])
        );
        assert_eq!(check_answer(b"200", br#"{"keys": []}"#), Ok(vec![]));
        for (status, body, reason) in [
            (
                &b"503"[..],
                &good[..],
                "the key service answered status 503",
            ),
            (
                b"200",
                b"keys",
                "an answer that is not {\"keys\": [strings]} (not JSON)",
            ),
            (
                b"200",
                br#"{"keys": ["a", 7]}"#,
                "an answer that is not {\"keys\": [strings]} (JSON of another shape)",
            ),
            (
                b"200",
                br#"{"keys": ["a"], "more": 1}"#,
                "an answer that is not {\"keys\": [strings]} (JSON of another shape)",
            ),
            (
                b"200",
                b"{\"keys\": [\"\xff\xfe\"]}",
                "an answer that is not {\"keys\": [strings]} (not JSON)",
            ),
            (
                b"200",
                br#"{"keys": ["a""#,
                "an answer that is not {\"keys\": [strings]} (JSON cut short)",
            ),
            (b"200", br#"{"keys": [""]}"#, "an answer with an empty key"),
        ] {
            assert_eq!(
                check_answer(status, body),
                Err(reason.to_owned()),
                "{body:?}"
            );
        }
    }

    #[test]
    fn a_reason_never_quotes_the_answer() {
        let Err(reason) = check_answer(b"200", br#"{"keys": ["secret-1", {"k": "secret-2"}]}"#)
        else {
            panic!("accepted");
        };
        assert!(!reason.contains("secret"), "{reason}");
    }
}
