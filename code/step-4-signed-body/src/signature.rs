//! HMAC-SHA256 over the request body, from the RustCrypto crates: this
//! module only decides what is signed and how the signature is written.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

// ANCHOR: secret
/// A shared secret, kept as the HMAC state after absorbing the key: each
/// request starts from a copy instead of hashing the key again. There is no
/// `Debug` or `Display`: nothing can print it by accident.
#[derive(Clone)]
pub struct Secret(HmacSha256);

impl Secret {
    /// Keyed once, when the configuration is read. HMAC takes keys of any
    /// length (a long one is hashed first), so this never fails;
    /// `new_from_slice` returns a `Result` only because other MACs have
    /// fixed key sizes. Were it to fail, the configuration is refused,
    /// never a request.
    pub fn new(key: &[u8]) -> Option<Self> {
        HmacSha256::new_from_slice(key).ok().map(Secret)
    }
}
// ANCHOR_END: secret

// ANCHOR: parse_signature
/// What the sender writes in the signature header: `sha256=` and the 32
/// bytes of the MAC in hex (either case). Anything else is malformed.
pub fn parse_signature(value: &[u8]) -> Option<[u8; 32]> {
    let hex = value.strip_prefix(b"sha256=")?;
    if hex.len() != 64 {
        return None;
    }
    let mut mac = [0u8; 32];
    for (byte, pair) in mac.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = hex_value(pair[0])? << 4 | hex_value(pair[1])?;
    }
    Some(mac)
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}
// ANCHOR_END: parse_signature

// ANCHOR: verifier
/// The MAC of one request's body under every configured secret, fed chunk
/// by chunk as the body arrives, so the plugin never holds a copy of the
/// whole body.
pub struct Verifier {
    macs: Vec<HmacSha256>,
}

impl Verifier {
    /// `timestamp`, when the configuration asks for one, is signed before
    /// the body as `<timestamp>.`: a replayed body with a fresh timestamp
    /// then no longer matches its signature.
    pub fn start(secrets: &[Secret], timestamp: Option<&[u8]>) -> Self {
        let mut macs: Vec<HmacSha256> = secrets.iter().map(|s| s.0.clone()).collect();
        if let Some(timestamp) = timestamp {
            for mac in &mut macs {
                mac.update(timestamp);
                mac.update(b".");
            }
        }
        Verifier { macs }
    }

    pub fn update(&mut self, chunk: &[u8]) {
        for mac in &mut self.macs {
            mac.update(chunk);
        }
    }

    /// True when the signature matches under any secret. `verify_slice`
    /// compares in constant time, and every secret is tried even after a
    /// match, so the time taken says nothing about the signature or about
    /// which secret signed it.
    pub fn matches(self, signature: &[u8; 32]) -> bool {
        self.macs.into_iter().fold(false, |found, mac| {
            mac.verify_slice(signature).is_ok() | found
        })
    }
}
// ANCHOR_END: verifier

/// Unix seconds, ASCII digits only: no sign, no spaces, no fraction.
pub fn parse_timestamp(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 12 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &[u8] = b"old-secret-old-secret-old-secret";
    const NEW: &[u8] = b"new-secret-new-secret-new-secret";

    fn secret(key: &[u8]) -> Secret {
        Secret::new(key).unwrap_or_else(|| panic!("HMAC refused a key"))
    }

    fn sign(key: &[u8], message: &[u8]) -> [u8; 32] {
        let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
            panic!("key refused");
        };
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// RFC 4231, test case 2: the crates and this module agree with the
    /// standard's published value.
    #[test]
    fn matches_rfc_4231() {
        let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let header = format!("sha256={expected}");
        let Some(signature) = parse_signature(header.as_bytes()) else {
            panic!("signature not parsed");
        };
        let mut verifier = Verifier::start(&[secret(b"Jefe")], None);
        verifier.update(b"what do ya want ");
        verifier.update(b"for nothing?");
        assert!(verifier.matches(&signature));
    }

    #[test]
    fn any_configured_secret_verifies() {
        let secrets = [secret(OLD), secret(NEW)];
        for key in [OLD, NEW] {
            let mut verifier = Verifier::start(&secrets, None);
            verifier.update(b"{}");
            assert!(verifier.matches(&sign(key, b"{}")));
        }
        let mut verifier = Verifier::start(&secrets[1..], None);
        verifier.update(b"{}");
        assert!(!verifier.matches(&sign(OLD, b"{}")), "a retired secret");
    }

    #[test]
    fn the_timestamp_is_part_of_what_is_signed() {
        let secrets = [secret(NEW)];
        let mut verifier = Verifier::start(&secrets, Some(b"1700000000"));
        verifier.update(b"{}");
        assert!(verifier.matches(&sign(NEW, b"1700000000.{}")));
        let mut verifier = Verifier::start(&secrets, Some(b"1700000001"));
        verifier.update(b"{}");
        assert!(!verifier.matches(&sign(NEW, b"1700000000.{}")));
    }

    #[test]
    fn malformed_signatures_are_refused() {
        let good = hex(&sign(NEW, b""));
        assert!(parse_signature(format!("sha256={good}").as_bytes()).is_some());
        let upper = good.to_ascii_uppercase();
        assert!(parse_signature(format!("sha256={upper}").as_bytes()).is_some());
        for bad in [
            good.clone(),
            format!("sha1={good}"),
            format!("SHA256={good}"),
            format!("sha256= {good}"),
            format!("sha256={good} "),
            format!("sha256={}", &good[1..]),
            format!("sha256={good}0"),
            format!("sha256={}g", &good[1..]),
            "sha256=".to_owned(),
        ] {
            assert_eq!(parse_signature(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn timestamps_are_plain_digits() {
        assert_eq!(parse_timestamp(b"1700000000"), Some(1_700_000_000));
        for bad in [
            &b""[..],
            b"-5",
            b"+5",
            b" 5",
            b"5.0",
            b"1e9",
            b"9999999999999",
        ] {
            assert_eq!(parse_timestamp(bad), None);
        }
    }
}
