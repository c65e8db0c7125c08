//! A JWK set (RFC 7517), as the key service serves it: the public keys
//! tokens are signed with, each named by its `kid`. Each key is bound to
//! one algorithm here, so that a token can never choose how its own
//! signature is checked.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use std::collections::HashMap;

/// The algorithms this plugin verifies: RSA PKCS#1 v1.5 and ECDSA P-256,
/// each with SHA-256. No HMAC (`HS256`): its key is the secret itself, so
/// a public key set cannot hold one.
pub const ALGORITHMS: [Algorithm; 2] = [Algorithm::RS256, Algorithm::ES256];

/// The shortest RSA modulus used: 2048 bits (NIST SP 800-131A).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// A key a token may name.
pub struct VerifyingKey {
    /// The one algorithm a token signed with this key may use.
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

/// The usable keys of a set, by `kid`.
pub type KeySet = HashMap<String, VerifyingKey>;

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

/// The usable keys in `json`, and how many keys were left out (no `kid`,
/// not for signatures, an algorithm not verified here, an RSA key under
/// 2048 bits, a `kid` given twice). Refused whole only when it is not a
/// JWK set at all; the reasons never quote it.
pub fn parse(json: &[u8]) -> Result<(KeySet, usize), &'static str> {
    let raw: RawSet =
        serde_json::from_slice(json).map_err(|_| "an answer that is not a JWK set")?;
    let mut keys = KeySet::new();
    let mut left_out = 0;
    let mut seen_twice = Vec::new();
    for value in raw.keys {
        let usable = serde_json::from_value::<Jwk>(value)
            .ok()
            .and_then(|jwk| Some((jwk.common.key_id.clone()?, usable(&jwk)?)));
        match usable {
            Some((kid, key)) if !keys.contains_key(&kid) => {
                keys.insert(kid, key);
            }
            Some((kid, _)) => seen_twice.push(kid),
            None => left_out += 1,
        }
    }
    // A `kid` given twice names no key: which one a token meant is unknown.
    for kid in seen_twice {
        keys.remove(&kid);
        left_out += 2;
    }
    Ok((keys, left_out))
}

// ANCHOR: usable
/// The key and its algorithm, if this plugin can verify with it.
fn usable(jwk: &Jwk) -> Option<VerifyingKey> {
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let algorithm = match (&jwk.algorithm, &jwk.common.key_algorithm) {
        (AlgorithmParameters::RSA(rsa), None | Some(KeyAlgorithm::RS256)) => {
            let modulus = base64_len(&rsa.n);
            (modulus >= MIN_RSA_MODULUS_BYTES).then_some(Algorithm::RS256)?
        }
        (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
            if ec.curve == EllipticCurve::P256 =>
        {
            Algorithm::ES256
        }
        _ => return None,
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(VerifyingKey { algorithm, key })
}
// ANCHOR_END: usable

/// The bytes a base64url text without padding decodes to.
fn base64_len(text: &str) -> usize {
    // The modulus's leading zero byte, if any, is not counted by RFC 7518.
    text.trim_end_matches('=').len() * 3 / 4
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RSA key of 2048 bits: `n` is 342 base64url characters.
    fn rsa(kid: &str, extra: &str) -> String {
        format!(
            r#"{{"kty":"RSA","kid":"{kid}","n":"{}","e":"AQAB"{extra}}}"#,
            "u".repeat(341) + "Q"
        )
    }

    #[test]
    fn each_key_is_bound_to_one_algorithm() {
        let ec = r#"{"kty":"EC","crv":"P-256","kid":"ec","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;
        let set = format!(
            r#"{{"keys":[{},{ec},{}]}}"#,
            rsa("rsa", ""),
            rsa("rsa-for-es", r#","alg":"ES256""#)
        );
        let Ok((keys, left_out)) = parse(set.as_bytes()) else {
            panic!("refused");
        };
        assert_eq!(keys.get("rsa").map(|k| k.algorithm), Some(Algorithm::RS256));
        assert_eq!(keys.get("ec").map(|k| k.algorithm), Some(Algorithm::ES256));
        assert!(!keys.contains_key("rsa-for-es"), "an RSA key for ES256");
        assert_eq!(left_out, 1);
    }

    #[test]
    fn keys_this_plugin_must_not_use_are_left_out() {
        let set = format!(
            r#"{{"keys":[{},{},{},{},{},{}]}}"#,
            rsa("enc", r#","use":"enc""#),
            rsa("hs", r#","alg":"HS256""#),
            r#"{"kty":"RSA","kid":"short","n":"AQAB","e":"AQAB"}"#,
            r#"{"kty":"oct","kid":"secret","k":"c2VjcmV0"}"#,
            rsa("", "").replace(r#""kid":"","#, ""),
            r#"{"kty":"EC","crv":"P-384","kid":"p384","x":"AA","y":"AA"}"#,
        );
        let Ok((keys, left_out)) = parse(set.as_bytes()) else {
            panic!("refused");
        };
        assert!(keys.is_empty(), "{:?}", keys.keys().collect::<Vec<_>>());
        assert_eq!(left_out, 6);
    }

    #[test]
    fn a_kid_given_twice_names_no_key() {
        let set = format!(r#"{{"keys":[{},{}]}}"#, rsa("one", ""), rsa("one", ""));
        assert!(
            parse(set.as_bytes()).is_ok_and(|(keys, left_out)| keys.is_empty() && left_out == 2)
        );
    }

    #[test]
    fn what_is_not_a_set_is_refused_without_quoting_it() {
        for answer in [
            &b"keys"[..],
            br#"{"keys": {}}"#,
            br#"{"kid": "secret-text"}"#,
        ] {
            assert_eq!(parse(answer).err(), Some("an answer that is not a JWK set"));
        }
    }
}
