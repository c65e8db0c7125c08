//! Per-key fixed-window counting in the proxy's shared data, so all of
//! Envoy's worker VMs count together.

use crate::config::RateLimit;
use proxy_wasm::hostcalls;
use proxy_wasm::types::Status;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, UNIX_EPOCH};

/// Where `now` falls in the fixed windows of `window_seconds` that start at
/// the Unix epoch: the window's number, and the whole seconds until it ends
/// (rounded up, so waiting that long always reaches the next window).
pub fn window_at(now: Duration, window_seconds: u64) -> (u64, u64) {
    let index = now.as_secs() / window_seconds;
    let window_end = Duration::from_secs((index + 1) * window_seconds);
    let left = window_end.saturating_sub(now);
    let seconds_left = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    (index, seconds_left.max(1))
}

// ANCHOR: counter
/// One key's entry in shared data: which window it counts, and how many
/// requests it has let through in that window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Counter {
    pub window: u64,
    pub count: u64,
}

impl Counter {
    pub fn to_bytes(self) -> [u8; 16] {
        let mut bytes = [0; 16];
        bytes[..8].copy_from_slice(&self.window.to_le_bytes());
        bytes[8..].copy_from_slice(&self.count.to_le_bytes());
        bytes
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Counter> {
        if bytes.len() != 16 {
            return None;
        }
        let window = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
        let count = u64::from_le_bytes(bytes.get(8..16)?.try_into().ok()?);
        Some(Counter { window, count })
    }
}
// ANCHOR_END: counter

// ANCHOR: next_count
/// The counter after one more request in `window`, or `None` when the
/// request is over the limit. A counter from an earlier window starts over.
pub fn next_count(stored: Counter, window: u64, limit: u64) -> Option<Counter> {
    let used = if stored.window == window {
        stored.count
    } else {
        0
    };
    (used < limit).then_some(Counter {
        window,
        count: used + 1,
    })
}
// ANCHOR_END: next_count

pub enum Outcome {
    /// Counted. `remaining` more requests fit in this window, which ends in
    /// `reset` seconds.
    Allowed { remaining: u64, reset: u64 },
    /// Over the limit until the window ends in `retry_after` seconds.
    Limited { retry_after: u64 },
    /// The shared data held no usable counter, or compare-and-swap lost
    /// too many times in a row.
    Unavailable(String),
}

// ANCHOR: shared_key
/// The shared-data entry of an API key. The key is hashed so that the
/// secret itself never sits in shared data, in plain sight of whatever can
/// list its entries. The hash is unkeyed (`DefaultHasher::new()` is SipHash
/// with fixed keys, the same in every VM, as it must be for all workers to
/// find one entry), so it does not hide a key from someone who can read the
/// entries and has a list of candidate keys: they can hash each candidate.
/// Keeping other plugins out is the `vm_id`'s job. A 64-bit hash of a few
/// thousand keys does not collide in practice.
pub fn shared_key(api_key: &str) -> String {
    let mut hasher = DefaultHasher::new();
    api_key.hash(&mut hasher);
    format!("rate-limit/{:016x}", hasher.finish())
}
// ANCHOR_END: shared_key

/// Gives up after this many compare-and-swap conflicts in a row. Each
/// conflict means another worker counted a request in between, so this is
/// only reached under extreme contention for a single key.
const MAX_ATTEMPTS: u32 = 64;

// ANCHOR: ensure_counter
/// Creates the entry of a key if it does not exist yet. Called for every
/// valid key in `on_configure`, before any request: the host's
/// compare-and-swap cannot protect the creation of an entry (a write without
/// a CAS value always succeeds), so entries must exist before the counting
/// starts.
pub fn ensure_counter(api_key: &str) -> Result<(), Status> {
    let key = shared_key(api_key);
    if let (None, _) = hostcalls::get_shared_data(&key)? {
        let fresh = Counter {
            window: 0,
            count: 0,
        };
        hostcalls::set_shared_data(&key, Some(&fresh.to_bytes()), None)?;
    }
    Ok(())
}
// ANCHOR_END: ensure_counter

// ANCHOR: take
/// Counts one request for `api_key`, exactly, across every VM of the proxy:
/// read the entry and its CAS value, compute the new count, and write it back
/// only if nobody else wrote in between (otherwise read again and retry).
pub fn take(api_key: &str, limit: RateLimit) -> Outcome {
    let now = match hostcalls::get_current_time() {
        Ok(time) => time.duration_since(UNIX_EPOCH).unwrap_or_default(),
        Err(status) => return Outcome::Unavailable(format!("clock: {status:?}")),
    };
    let (window, seconds_left) = window_at(now, limit.window_seconds);
    let key = shared_key(api_key);

    for _ in 0..MAX_ATTEMPTS {
        // Envoy answers a read with the entry or NotFound (`None`); the
        // SDK's `get_shared_data` panics on any other status, so its `Err`
        // arm never runs with Envoy.
        let (bytes, cas) = match hostcalls::get_shared_data(&key) {
            Ok(entry) => entry,
            Err(status) => return Outcome::Unavailable(format!("read: {status:?}")),
        };
        let stored = match bytes.as_deref().map(Counter::from_bytes) {
            Some(Some(stored)) => stored,
            // Only possible for a key added by a configuration update while
            // traffic flows: create it, then count as usual.
            None => {
                if let Err(error) = ensure_counter(api_key) {
                    return Outcome::Unavailable(format!("create: {error:?}"));
                }
                continue;
            }
            // Something else wrote this entry (a plugin with the same
            // vm_id): not a counter this plugin can trust or repair.
            Some(None) => {
                return Outcome::Unavailable(format!(
                    "the entry `{key}` is not a counter ({} bytes)",
                    bytes.as_deref().map_or(0, <[u8]>::len)
                ))
            }
        };
        let Some(next) = next_count(stored, window, limit.requests) else {
            return Outcome::Limited {
                retry_after: seconds_left,
            };
        };
        // Ok, or CasMismatch when another worker wrote first; the SDK
        // panics on any other status (Envoy gives none).
        match hostcalls::set_shared_data(&key, Some(&next.to_bytes()), cas) {
            Ok(()) => {
                return Outcome::Allowed {
                    remaining: limit.requests - next.count,
                    reset: seconds_left,
                }
            }
            Err(Status::CasMismatch) => continue,
            Err(status) => return Outcome::Unavailable(format!("write: {status:?}")),
        }
    }
    Outcome::Unavailable(format!("{MAX_ATTEMPTS} CAS conflicts in a row"))
}
// ANCHOR_END: take

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_aligned_and_reset_is_rounded_up() {
        assert_eq!(window_at(Duration::from_secs(120), 60), (2, 60));
        assert_eq!(window_at(Duration::from_millis(120_001), 60), (2, 60));
        assert_eq!(window_at(Duration::from_millis(179_001), 60), (2, 1));
        assert_eq!(window_at(Duration::from_millis(179_999), 60), (2, 1));
        assert_eq!(window_at(Duration::from_secs(179), 60), (2, 1));
    }

    #[test]
    fn counts_up_to_the_limit_then_refuses_until_the_next_window() {
        let mut counter = Counter {
            window: 0,
            count: 0,
        };
        for expected in 1..=3 {
            counter = next_count(counter, 7, 3).unwrap_or_else(|| panic!("request {expected}"));
            assert_eq!(counter.count, expected);
        }
        assert_eq!(next_count(counter, 7, 3), None);
        assert_eq!(
            next_count(counter, 8, 3),
            Some(Counter {
                window: 8,
                count: 1
            })
        );
    }

    #[test]
    fn counters_round_trip_through_bytes() {
        let counter = Counter {
            window: u64::MAX - 1,
            count: 42,
        };
        assert_eq!(Counter::from_bytes(&counter.to_bytes()), Some(counter));
        assert_eq!(Counter::from_bytes(b"short"), None);
        assert_eq!(Counter::from_bytes(&[0; 17]), None, "too long");
    }
}
