//! The auth service's answers, cached in Envoy's shared data: one cache for
//! all of Envoy's workers, with a time-to-live per answer and a fixed
//! number of slots, because Envoy never removes shared data
//! (envoyproxy/envoy#28339): an entry written once stays until the last VM
//! of its `vm_id` is gone.
//!
//! Shared data is not private to this plugin: every plugin configured with
//! the same `vm_id` reads and writes the same entries. So every entry
//! carries a tag, an HMAC with a secret only this plugin holds, over the
//! API key, the answer and the expiry: an entry whose tag does not match
//! was not written by this plugin for this key and is not believed, and
//! neither is an entry that claims to live longer than this plugin caches.

use hmac::{Hmac, Mac};
use proxy_wasm::hostcalls;
use sha2::Sha256;

/// The keyed MAC, keyed once in `on_configure` and cloned per request.
pub type KeyedDigest = Hmac<Sha256>;

/// A cached answer: the auth service's yes or no. Failures are never
/// cached: the next request asks again.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Answer {
    Valid,
    Invalid,
}

// ANCHOR: slot
/// Where one API key's answer lives. The key itself is never stored: the
/// slot's name and each entry's tag come from HMACs of it, which cannot
/// be traced back to the key, nor made for it, without the secret.
pub struct Slot {
    /// `auth-cache.<n>`: one of `slots` names, chosen by the key's HMAC,
    /// so the cache never holds more than `slots` entries.
    name: String,
    /// The keyed MAC after absorbing the API key: the start of its tags.
    key_mac: KeyedDigest,
}

impl Slot {
    pub fn for_key(keyed: &KeyedDigest, api_key: &str, slots: u32) -> Slot {
        let mut key_mac = keyed.clone();
        // The key's length first: no key followed by a suffix below reads
        // as another key.
        key_mac.update(&(api_key.len() as u64).to_be_bytes());
        key_mac.update(api_key.as_bytes());
        let mut place = key_mac.clone();
        place.update(b"slot");
        let digest = place.finalize().into_bytes();
        let number = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % slots;
        Slot {
            name: format!("auth-cache.{number}"),
            key_mac,
        }
    }

    /// The MAC of an entry for this key with this answer and expiry.
    fn tag(&self, answer: u8, expires_ms: u64) -> KeyedDigest {
        let mut mac = self.key_mac.clone();
        mac.update(b"entry");
        mac.update(&[answer]);
        mac.update(&expires_ms.to_be_bytes());
        mac
    }
}
// ANCHOR_END: slot

// ANCHOR: entry
/// An entry: the answer (1 byte), when it expires (8 bytes, Unix time in
/// milliseconds, big-endian), and the tag over both and the key (32 bytes).
const ENTRY_BYTES: usize = 1 + 8 + 32;

fn encode(slot: &Slot, answer: Answer, expires_ms: u64) -> [u8; ENTRY_BYTES] {
    let byte = u8::from(answer == Answer::Valid);
    let mut entry = [0u8; ENTRY_BYTES];
    entry[0] = byte;
    entry[1..9].copy_from_slice(&expires_ms.to_be_bytes());
    entry[9..].copy_from_slice(&slot.tag(byte, expires_ms).finalize().into_bytes());
    entry
}

/// The answer in `entry` if this plugin wrote it for this key (another key
/// may have taken the slot, another plugin may have written it) and it
/// has not expired. `longest_ms` is the longest this plugin caches that
/// answer: a later expiry was not written by it (or by it with a clock far
/// ahead) and is not believed.
fn decode(
    slot: &Slot,
    entry: &[u8],
    now_ms: u64,
    longest_ms: impl Fn(Answer) -> u64,
) -> Option<Answer> {
    if entry.len() != ENTRY_BYTES {
        return None;
    }
    let expires_ms = u64::from_be_bytes(entry[1..9].try_into().ok()?);
    // A constant-time comparison: how long a wrong tag takes says nothing.
    slot.tag(entry[0], expires_ms)
        .verify_slice(&entry[9..])
        .ok()?;
    let answer = match entry[0] {
        1 => Answer::Valid,
        0 => Answer::Invalid,
        _ => return None,
    };
    let fresh = now_ms < expires_ms && expires_ms <= now_ms.saturating_add(longest_ms(answer));
    fresh.then_some(answer)
}
// ANCHOR_END: entry

/// The fresh answer in the key's slot, if there is one. Envoy answers a
/// read with the entry or NotFound (`None` here); the SDK's
/// `get_shared_data` panics on any other status, which Envoy never gives.
pub fn lookup(slot: &Slot, now_ms: u64, longest_ms: impl Fn(Answer) -> u64) -> Option<Answer> {
    match hostcalls::get_shared_data(&slot.name) {
        Ok((Some(entry), _)) => decode(slot, &entry, now_ms, longest_ms),
        _ => None,
    }
}

/// Writes the answer over whatever the slot held. Two workers storing at
/// once both succeed, the last one wins; either way the slot holds a
/// complete entry with a real answer from the service.
pub fn store(slot: &Slot, answer: Answer, expires_ms: u64) {
    let entry = encode(slot, answer, expires_ms);
    if let Err(status) = hostcalls::set_shared_data(&slot.name, Some(&entry), None) {
        log::warn!("could not cache an answer: {status:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed(secret: &[u8]) -> KeyedDigest {
        match KeyedDigest::new_from_slice(secret) {
            Ok(mac) => mac,
            Err(_) => panic!("HMAC refused a key"),
        }
    }

    /// Cached for 1,000 ms at most, yes or no.
    fn second(_: Answer) -> u64 {
        1000
    }

    #[test]
    fn an_entry_answers_only_for_its_own_key_and_only_until_it_expires() {
        let secret = keyed(b"cache-secret-0123456789");
        let slot = Slot::for_key(&secret, "key-abc123", 1);
        let entry = encode(&slot, Answer::Valid, 100);
        assert_eq!(decode(&slot, &entry, 99, second), Some(Answer::Valid));
        assert_eq!(decode(&slot, &entry, 100, second), None, "expired");
        let other = Slot::for_key(&secret, "key-def456", 1);
        assert_eq!(other.name, slot.name, "one slot: the same name");
        assert_eq!(
            decode(&other, &entry, 0, second),
            None,
            "another key's entry"
        );
        let no = encode(&slot, Answer::Invalid, 100);
        assert_eq!(decode(&slot, &no, 0, second), Some(Answer::Invalid));
        assert_eq!(decode(&slot, &no[..40], 0, second), None, "truncated");
    }

    #[test]
    fn an_entry_changed_by_anyone_without_the_secret_is_not_believed() {
        let slot = Slot::for_key(&keyed(b"cache-secret-0123456789"), "key-abc123", 1);
        let no = encode(&slot, Answer::Invalid, 6_000);
        let mut flipped = no;
        flipped[0] = 1;
        assert_eq!(decode(&slot, &flipped, 5_000, second), None, "no made yes");
        let mut later = no;
        later[1..9].copy_from_slice(&6_500u64.to_be_bytes());
        assert_eq!(decode(&slot, &later, 5_000, second), None, "new expiry");
        let elsewhere = Slot::for_key(&keyed(b"another-secret-98765432"), "key-abc123", 1);
        let forged = encode(&elsewhere, Answer::Valid, 6_000);
        assert_eq!(decode(&slot, &forged, 5_000, second), None, "other secret");
    }

    #[test]
    fn an_entry_that_claims_to_live_longer_than_the_plugin_caches_is_not_believed() {
        let slot = Slot::for_key(&keyed(b"cache-secret-0123456789"), "key-abc123", 1);
        let forever = encode(&slot, Answer::Valid, u64::MAX);
        assert_eq!(decode(&slot, &forever, 5_000, second), None);
        let just_right = encode(&slot, Answer::Valid, 6_000);
        assert_eq!(
            decode(&slot, &just_right, 5_000, second),
            Some(Answer::Valid)
        );
    }

    #[test]
    fn keys_spread_over_the_slots() {
        let secret = keyed(b"cache-secret-0123456789");
        let names: std::collections::HashSet<String> = (0..1000)
            .map(|i| Slot::for_key(&secret, &format!("key-{i}"), 16).name)
            .collect();
        assert_eq!(names.len(), 16);
        assert!(names.iter().all(|n| n.starts_with("auth-cache.")));
    }
}
