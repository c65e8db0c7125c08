// ANCHOR: all
//! What the rate limit service counts a request under: a keyed hash of the
//! API key, never the key itself.
//!
//! The descriptor value travels to the rate limit service, appears in its
//! debug logs and becomes part of a Redis key: all places an API key must
//! never be. A plain SHA-256 of the key would not do: keys are often short
//! or guessable, and anyone who can read Redis could try candidates until a
//! hash matches. An HMAC with a secret only the proxies know makes the value
//! useless without that secret, and the same key still maps to the same
//! counter on every proxy of the fleet.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// HMAC-SHA256 keyed with the descriptor secret: keyed once, when the
/// configuration is read (a key HMAC refused would refuse the
/// configuration, never a request), and cloned for each request.
pub type DescriptorKey = Hmac<Sha256>;

/// 16 bytes (32 hex digits) of the HMAC: far more than enough to keep the
/// counters of different keys apart, and a short Redis key.
const DESCRIPTOR_BYTES: usize = 16;

pub fn key_descriptor(keyed: &DescriptorKey, api_key: &[u8]) -> String {
    let mut mac = keyed.clone();
    mac.update(api_key);
    let digest = mac.finalize().into_bytes();
    let mut value = String::with_capacity(DESCRIPTOR_BYTES * 2);
    for byte in &digest[..DESCRIPTOR_BYTES] {
        value.push(char::from(HEX[usize::from(byte >> 4)]));
        value.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    value
}

const HEX: &[u8; 16] = b"0123456789abcdef";
// ANCHOR_END: all

#[cfg(test)]
mod tests {
    use super::*;

    fn key_descriptor(secret: &[u8], api_key: &[u8]) -> String {
        match DescriptorKey::new_from_slice(secret) {
            Ok(keyed) => super::key_descriptor(&keyed, api_key),
            Err(_) => panic!("HMAC refused a key"),
        }
    }

    #[test]
    fn same_key_same_value_and_the_key_never_shows() {
        let a = key_descriptor(b"fleet-secret", b"key-abc123");
        assert_eq!(a, key_descriptor(b"fleet-secret", b"key-abc123"));
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!a.contains("abc123"));
        assert_ne!(a, key_descriptor(b"fleet-secret", b"key-def456"));
        // Another secret, another value: without the secret, a value
        // cannot be matched to a key by trying candidates.
        assert_ne!(a, key_descriptor(b"other-secret", b"key-abc123"));
    }

    /// RFC 4231, test case 2: HMAC-SHA256 with key "Jefe".
    #[test]
    fn is_hmac_sha256() {
        assert_eq!(
            key_descriptor(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c7"
        );
    }
}
