//! HMAC-SHA256 over the request body, from the RustCrypto crates: this
//! module keys the secrets, reads a hex MAC and compares in constant time.

use hmac::digest::CtOutput;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

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

/// An HMAC-SHA256: 32 bytes.
pub type Mac = [u8; 32];

/// 64 hex digits (either case), as the hex schemes write a MAC after
/// their prefix (`sha256=`, `v0=`, `v1=`). Anything else is malformed.
pub fn parse_hex_mac(hex: &[u8]) -> Option<Mac> {
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

// ANCHOR: verifier
/// The MAC of one request under every configured secret, fed chunk by
/// chunk as the body arrives, so the plugin never holds a copy of the
/// whole body.
pub struct Verifier {
    macs: Vec<HmacSha256>,
}

impl Verifier {
    /// `prefix` is what the scheme signs before the body (a timestamp, an
    /// id): a replayed body with a fresh timestamp then no longer matches.
    pub fn start(secrets: &[Secret], prefix: &[u8]) -> Self {
        let mut macs: Vec<HmacSha256> = secrets.iter().map(|s| s.0.clone()).collect();
        for mac in &mut macs {
            mac.update(prefix);
        }
        Verifier { macs }
    }

    pub fn update(&mut self, chunk: &[u8]) {
        for mac in &mut self.macs {
            mac.update(chunk);
        }
    }

    /// True when any signature matches under any secret. `CtOutput`
    /// compares in constant time, and every pair is compared even after a
    /// match, so the time taken says nothing about the signatures or about
    /// which secret signed.
    pub fn matches(self, signatures: &[Mac]) -> bool {
        let computed: Vec<CtOutput<HmacSha256>> =
            self.macs.into_iter().map(|mac| mac.finalize()).collect();
        let mut found = false;
        for signature in signatures {
            let claimed = CtOutput::<HmacSha256>::new((*signature).into());
            for mac in &computed {
                found |= *mac == claimed;
            }
        }
        found
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
    use crate::scheme::Scheme;

    const OLD: &[u8] = b"old-secret-old-secret-old-secret";
    const NEW: &[u8] = b"new-secret-new-secret-new-secret";

    fn secret(key: &[u8]) -> Secret {
        Secret::new(key).unwrap_or_else(|| panic!("HMAC refused a key"))
    }

    fn sign(key: &[u8], message: &[u8]) -> Mac {
        let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
            panic!("key refused");
        };
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    /// Whether `body`, sent with `pairs`, verifies under `secret` in
    /// `scheme`, the way the filter checks it (chunk by chunk).
    fn verifies(scheme: &Scheme, text: &str, pairs: &[(&str, &str)], body: &[u8]) -> bool {
        let Some(key) = scheme.key_of(text) else {
            panic!("secret not usable");
        };
        let Ok(claim) = scheme.read(&headers(pairs)) else {
            return false;
        };
        let mut verifier = Verifier::start(&[secret(&key)], &claim.prefix);
        for chunk in body.chunks(5) {
            verifier.update(chunk);
        }
        verifier.matches(&claim.signatures)
    }

    /// RFC 4231, test case 2: the crates and this module agree with the
    /// standard's published value.
    #[test]
    fn matches_rfc_4231() {
        let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let Some(signature) = parse_hex_mac(expected.as_bytes()) else {
            panic!("signature not parsed");
        };
        let mut verifier = Verifier::start(&[secret(b"Jefe")], b"");
        verifier.update(b"what do ya want ");
        verifier.update(b"for nothing?");
        assert!(verifier.matches(&[signature]));
    }

    /// GitHub's documented example ("Validating webhook deliveries"):
    /// secret `It's a Secret to Everybody`, body `Hello, World!`.
    #[test]
    fn githubs_documented_example_verifies_and_one_digit_flipped_does_not() {
        let secret = "It's a Secret to Everybody";
        let good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let flipped = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e18";
        let body = b"Hello, World!";
        assert!(verifies(
            &Scheme::GitHub,
            secret,
            &[("x-hub-signature-256", good)],
            body
        ));
        assert!(!verifies(
            &Scheme::GitHub,
            secret,
            &[("x-hub-signature-256", flipped)],
            body
        ));
        assert!(!verifies(
            &Scheme::GitHub,
            secret,
            &[("x-hub-signature-256", good)],
            b"Hello, World?"
        ));
    }

    /// Slack's worked example ("Verifying requests from Slack").
    #[test]
    fn slacks_worked_example_verifies() {
        let secret = "8f742231b10e8888abcd99yyyzzz85a5";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let signature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        let pairs = [
            ("x-slack-signature", signature),
            ("x-slack-request-timestamp", "1531420618"),
        ];
        assert!(verifies(&Scheme::Slack, secret, &pairs, body));
        let later = [pairs[0], ("x-slack-request-timestamp", "1531420619")];
        assert!(!verifies(&Scheme::Slack, secret, &later, body));
    }

    /// The Standard Webhooks example (its libraries' tests and Svix's docs).
    #[test]
    fn the_standard_webhooks_example_verifies() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let mut pairs = [
            ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
            ("webhook-timestamp", "1614265330"),
            (
                "webhook-signature",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
        ];
        assert!(verifies(&Scheme::StandardWebhooks, secret, &pairs, body));
        pairs[0].1 = "msg_p5jXN8AQM9LWM0D4loKWxJeK";
        assert!(!verifies(&Scheme::StandardWebhooks, secret, &pairs, body));
    }

    #[test]
    fn any_configured_secret_and_any_sent_signature_verifies() {
        let secrets = [secret(OLD), secret(NEW)];
        for key in [OLD, NEW] {
            let mut verifier = Verifier::start(&secrets, b"");
            verifier.update(b"{}");
            assert!(verifier.matches(&[sign(key, b"{}")]));
        }
        let mut verifier = Verifier::start(&secrets[1..], b"");
        verifier.update(b"{}");
        assert!(!verifier.matches(&[sign(OLD, b"{}")]), "a retired secret");
        let mut verifier = Verifier::start(&secrets[1..], b"");
        verifier.update(b"{}");
        assert!(verifier.matches(&[sign(OLD, b"{}"), sign(NEW, b"{}")]));
    }

    #[test]
    fn the_prefix_is_part_of_what_is_signed() {
        let secrets = [secret(NEW)];
        let mut verifier = Verifier::start(&secrets, b"1700000000.");
        verifier.update(b"{}");
        assert!(verifier.matches(&[sign(NEW, b"1700000000.{}")]));
        let mut verifier = Verifier::start(&secrets, b"1700000001.");
        verifier.update(b"{}");
        assert!(!verifier.matches(&[sign(NEW, b"1700000000.{}")]));
    }

    #[test]
    fn malformed_hex_is_refused() {
        let good = hex(&sign(NEW, b""));
        assert!(parse_hex_mac(good.as_bytes()).is_some());
        assert!(parse_hex_mac(good.to_ascii_uppercase().as_bytes()).is_some());
        for bad in [
            format!(" {good}"),
            format!("{good} "),
            good[1..].to_owned(),
            format!("{good}0"),
            format!("{}g", &good[1..]),
            String::new(),
        ] {
            assert_eq!(parse_hex_mac(bad.as_bytes()), None, "{bad}");
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
