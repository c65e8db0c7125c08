//! The cases' tokens, made here with the folder's test keys (`keys/`), as
//! `mint.sh` makes them for `check.sh`.

use crate::cases::{Claim, Token};
use hmac::{Hmac, Mac};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use sha2::Sha256;
use std::path::Path;

fn key_file(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("keys")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// base64url without padding (RFC 7515, section 2).
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// The good token's claims at `now` (Unix seconds), changed by `edits`.
fn claims(edits: &[(&str, Claim)], now: i64) -> serde_json::Value {
    let mut claims = serde_json::json!({
        "sub": "ada", "iss": "https://issuer.example", "aud": "api",
        "exp": now + 300, "tenant": "a",
    });
    for (name, claim) in edits {
        let value = match claim {
            Claim::Text(text) => serde_json::json!(text),
            Claim::FromNow(seconds) => serde_json::json!(now + seconds),
            Claim::Number(number) => serde_json::json!(number),
            Claim::Audiences(audiences) => serde_json::json!(audiences),
            Claim::Absent => {
                if let Some(claims) = claims.as_object_mut() {
                    claims.remove(*name);
                }
                continue;
            }
        };
        claims[*name] = value;
    }
    claims
}

/// `claims` signed with `alg` (`RS256` or `ES256`, by the key of that
/// type), naming `kid`.
fn sign(alg: &str, kid: Option<&str>, claims: &serde_json::Value) -> String {
    let (algorithm, key) = match alg {
        "ES256" => (
            Algorithm::ES256,
            EncodingKey::from_ec_pem(&key_file("ec.pem")),
        ),
        _ => (
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(&key_file("rsa.pem")),
        ),
    };
    let key = key.unwrap_or_else(|e| panic!("the test key: {e}"));
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, &key).unwrap_or_else(|e| panic!("encode: {e}"))
}

/// `token`, made at `now` (Unix seconds).
pub fn make(token: Token, now: i64) -> String {
    match token {
        Token::Signed {
            alg,
            kid,
            claims: edits,
        } => sign(alg, kid, &claims(edits, now)),
        Token::Unsigned => {
            let header = base64url(br#"{"alg":"none","typ":"JWT","kid":"rsa-1"}"#);
            let payload = base64url(claims(&[], now).to_string().as_bytes());
            format!("{header}.{payload}.")
        }
        Token::HmacWithThePublicKey => {
            let header = base64url(br#"{"alg":"HS256","typ":"JWT","kid":"rsa-1"}"#);
            let payload = base64url(claims(&[], now).to_string().as_bytes());
            let input = format!("{header}.{payload}");
            let mut mac = Hmac::<Sha256>::new_from_slice(&key_file("rsa.pub.pem"))
                .unwrap_or_else(|e| panic!("{e}"));
            mac.update(input.as_bytes());
            format!("{input}.{}", base64url(&mac.finalize().into_bytes()))
        }
        Token::BitFlipped => {
            let good = make(crate::cases::GOOD, now);
            // The signature's tenth character: whole bytes of it, not the
            // padding bits its last character carries.
            let at = good.rfind('.').unwrap_or(0) + 10;
            let flipped = if &good[at..=at] == "A" { "B" } else { "A" };
            format!("{}{flipped}{}", &good[..at], &good[at + 1..])
        }
        Token::Oversized => {
            let mut claims = claims(&[], now);
            claims["pad"] = serde_json::json!("x".repeat(5000));
            sign("RS256", Some("rsa-1"), &claims)
        }
        Token::Garbage(text) => text.to_owned(),
    }
}

#[test]
fn base64url_is_rfc_4648s() {
    assert_eq!(base64url(b""), "");
    assert_eq!(base64url(b"f"), "Zg");
    assert_eq!(base64url(b"fo"), "Zm8");
    assert_eq!(base64url(b"foo"), "Zm9v");
    assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
}
