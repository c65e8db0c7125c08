//! The auth service's answers, cached in Envoy's shared data: one cache for
//! all of Envoy's workers, with a time-to-live per answer and a fixed
//! number of slots, because Envoy never removes shared data
//! (envoyproxy/envoy#28339): an entry written once stays for the life of
//! the process.

use proxy_wasm::hostcalls;
use sha2::{Digest, Sha256};

// ANCHOR: answer
/// A cached answer: the auth service's yes or no. Failures are never
/// cached: the next request asks again.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Answer {
    Valid,
    Invalid,
}
// ANCHOR_END: answer

// ANCHOR: slot
/// Where one API key's answer lives. The key itself is never stored, only
/// its SHA-256: shared data can be read by every plugin in the same
/// `vm_id`, and a digest of a key is no use to them.
pub struct Slot {
    /// `auth-cache.<n>`: one of `slots` names, chosen by the digest, so
    /// the cache never holds more than `slots` entries.
    name: String,
    digest: [u8; 32],
}

impl Slot {
    pub fn for_key(api_key: &str, slots: u32) -> Slot {
        let digest: [u8; 32] = Sha256::digest(api_key.as_bytes()).into();
        let number = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % slots;
        Slot {
            name: format!("auth-cache.{number}"),
            digest,
        }
    }
}
// ANCHOR_END: slot

// ANCHOR: entry
/// An entry: the key's digest (32 bytes), the answer (1 byte), and when it
/// expires (8 bytes, Unix time in milliseconds, big-endian).
const ENTRY_BYTES: usize = 32 + 1 + 8;

fn encode(slot: &Slot, answer: Answer, expires_ms: u64) -> [u8; ENTRY_BYTES] {
    let mut entry = [0u8; ENTRY_BYTES];
    entry[..32].copy_from_slice(&slot.digest);
    entry[32] = u8::from(answer == Answer::Valid);
    entry[33..].copy_from_slice(&expires_ms.to_be_bytes());
    entry
}

/// The answer in `entry` if it is this key's (another key may have taken
/// the slot) and has not expired.
fn decode(slot: &Slot, entry: &[u8], now_ms: u64) -> Option<Answer> {
    if entry.len() != ENTRY_BYTES || entry[..32] != slot.digest {
        return None;
    }
    let expires_ms = u64::from_be_bytes(entry[33..].try_into().ok()?);
    if now_ms >= expires_ms {
        return None;
    }
    Some(if entry[32] == 1 {
        Answer::Valid
    } else {
        Answer::Invalid
    })
}
// ANCHOR_END: entry

// ANCHOR: lookup
pub fn lookup(slot: &Slot, now_ms: u64) -> Option<Answer> {
    match hostcalls::get_shared_data(&slot.name) {
        Ok((Some(entry), _)) => decode(slot, &entry, now_ms),
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
// ANCHOR_END: lookup

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_answers_only_for_its_own_key_and_only_until_it_expires() {
        let slot = Slot::for_key("key-abc123", 1);
        let entry = encode(&slot, Answer::Valid, 100);
        assert_eq!(decode(&slot, &entry, 99), Some(Answer::Valid));
        assert_eq!(decode(&slot, &entry, 100), None, "expired");
        let other = Slot::for_key("key-def456", 1);
        assert_eq!(other.name, slot.name, "one slot: the same name");
        assert_eq!(decode(&other, &entry, 0), None, "another key's entry");
        let no = encode(&slot, Answer::Invalid, 100);
        assert_eq!(decode(&slot, &no, 0), Some(Answer::Invalid));
        assert_eq!(decode(&slot, &no[..40], 0), None, "truncated");
    }

    #[test]
    fn keys_spread_over_the_slots() {
        let names: std::collections::HashSet<String> = (0..1000)
            .map(|i| Slot::for_key(&format!("key-{i}"), 16).name)
            .collect();
        assert_eq!(names.len(), 16);
        assert!(names.iter().all(|n| n.starts_with("auth-cache.")));
    }
}
