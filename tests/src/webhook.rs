//! Signing as step 4's webhook senders do: HMAC-SHA256 over what they send,
//! written `sha256=<hex>`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// `sha256=<hex>` of the concatenated `parts` under `secret`.
pub fn signature(secret: &str, parts: &[&[u8]]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        panic!("HMAC refused the key");
    };
    for part in parts {
        mac.update(part);
    }
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// A body of `size` bytes, easy to recognise where it arrives.
pub fn body_of(size: usize) -> Vec<u8> {
    (0..size).map(|i| b'a' + (i % 26) as u8).collect()
}
