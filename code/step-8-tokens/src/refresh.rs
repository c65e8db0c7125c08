//! The refresher: step 7's, asking for a JWK set. Its VM's timer ticks
//! every second, and when a refresh is due, one call goes to the key
//! service, whose answer, once checked, replaces the published set. The
//! next refresh is due `every_seconds` after the call of one that worked
//! was sent, at the next tick after one that failed. An answer that fails
//! a check replaces nothing: the keys from the last refresh that worked
//! stay in use until they are older than the filter's bound.
//!
//! A filter that meets a `kid` it does not know asks, through a shared
//! queue, for a refresh before the next one is due: the refresher makes at
//! most one such early refresh per period, however many requests name
//! unknown keys (an attacker can send a new `kid` with every request).

use crate::config::RefreshConfig;
use crate::{jwks, keys};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};
use std::time::Duration;

/// The longest answer read: 64 KiB holds a hundred RSA keys. A longer one
/// is refused whole, never read in part.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The shared queue through which filters ask for an early refresh.
pub const EARLY_REFRESH_QUEUE: &str = "tokens.early-refresh";

/// How often the timer ticks: how soon a failed refresh is tried again.
pub const TICK: Duration = Duration::from_secs(1);

/// How many usable keys an answer holds, or why it is not used. The
/// reasons never quote the answer.
fn check_answer(status: &[u8], body: &[u8]) -> Result<usize, String> {
    if status != b"200" {
        let status = String::from_utf8_lossy(status);
        return Err(format!("the key service answered status {status}"));
    }
    let (keys, _) = jwks::parse(body)?;
    if keys.is_empty() {
        return Err("a JWK set with no key this plugin can use".into());
    }
    Ok(keys.len())
}

pub struct Refresher {
    config: RefreshConfig,
    /// The call in flight, if any (at most one at a time), and when it was
    /// sent (Unix time, ms).
    call: Option<(u32, u64)>,
    /// When the next refresh is due (Unix time, ms); 0 at start: at once.
    due_ms: u64,
    /// When the last early refresh was asked for (Unix time, ms).
    early_ms: Option<u64>,
}

impl Refresher {
    pub fn new(config: RefreshConfig) -> Self {
        Refresher {
            config,
            call: None,
            due_ms: 0,
            early_ms: None,
        }
    }

    pub fn every(&self) -> Duration {
        self.config.every
    }

    /// A filter met an unknown `kid`: the next refresh is due now, unless
    /// an early one was made less than a period ago. Returns whether it is.
    pub fn early(&mut self, now_ms: u64) -> bool {
        let period = self.config.every.as_millis() as u64;
        if self
            .early_ms
            .is_some_and(|early| now_ms.saturating_sub(early) < period)
        {
            return false;
        }
        self.early_ms = Some(now_ms);
        self.due_ms = self.due_ms.min(now_ms);
        true
    }

    /// Asks the key service for the set when a refresh is due and no call
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
            .and_then(|(status, body)| Ok((check_answer(&status, &body)?, body)));
        let published = match answer.and_then(|(keys, body)| {
            keys::publish(&self.config.keyed_digest, &body, now_ms)
                .map(|()| keys)
                .map_err(|status| format!("could not publish the keys: {status:?}"))
        }) {
            Ok(keys) => {
                log::info!("refreshed: {keys} keys");
                true
            }
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

    const SET: &[u8] = br#"{"keys":[{"kty":"EC","crv":"P-256","kid":"ec","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

    #[test]
    fn only_a_set_with_a_usable_key_is_published() {
        assert_eq!(check_answer(b"200", SET), Ok(1));
        for (status, body, reason) in [
            (&b"503"[..], SET, "the key service answered status 503"),
            (b"200", b"keys", "an answer that is not a JWK set"),
            (
                b"200",
                br#"{"keys": []}"#,
                "a JWK set with no key this plugin can use",
            ),
            (
                b"200",
                br#"{"keys": [{"kty":"oct","kid":"k","k":"c2VjcmV0"}]}"#,
                "a JWK set with no key this plugin can use",
            ),
        ] {
            assert_eq!(
                check_answer(status, body),
                Err(reason.to_owned()),
                "{body:?}"
            );
        }
    }
}
