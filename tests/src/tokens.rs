//! Signed tokens for the benchmark: a good one, and the bad ones every
//! token check is sent (the token refusal table), made with a step's test
//! keys the way its `mint.sh` makes them.

use hmac::{Hmac, Mac};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use sha2::Sha256;

/// The token refusal table's columns: the valid token first.
pub const HEADINGS: [&str; 9] = [
    "valid token",
    "no token",
    "expired",
    "wrong audience",
    "`alg: none`",
    "HS256 keyed with the public key",
    "unknown `kid`",
    "signature changed",
    "two Authorization headers",
];

/// The keys a step's description names, read from its folder.
pub struct Minter {
    key: EncodingKey,
    public_pem: Vec<u8>,
    kid: String,
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

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Minter {
    /// An RS256 minter with the PEM private key `private`, naming `kid`;
    /// `public` is the public key's PEM, for the algorithm-confusion token.
    pub fn new(private: &[u8], public: &[u8], kid: &str) -> Minter {
        Minter {
            key: EncodingKey::from_rsa_pem(private).unwrap_or_else(|e| panic!("the key: {e}")),
            public_pem: public.to_vec(),
            kid: kid.to_owned(),
        }
    }

    fn claims(&self, exp: i64, aud: &str) -> serde_json::Value {
        serde_json::json!({
            "sub": "bench", "iss": "https://issuer.example", "aud": aud, "exp": exp,
            "tenant": "a",
        })
    }

    fn signed(&self, kid: &str, claims: &serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        encode(&header, claims, &self.key).unwrap_or_else(|e| panic!("encode: {e}"))
    }

    /// A token valid for a day.
    pub fn good(&self) -> String {
        self.signed(&self.kid, &self.claims(now() + 86_400, "api"))
    }

    /// The requests of the token refusal table: a heading (`HEADINGS`, in
    /// order), and the `authorization` values sent (none, one, or two).
    pub fn inputs(&self) -> Vec<(&'static str, Vec<String>)> {
        let bearer = |token: String| format!("Bearer {token}");
        let good = self.good();
        let unsigned = |alg: &str| {
            let header = format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"{}"}}"#, self.kid);
            let payload = self.claims(now() + 86_400, "api").to_string();
            format!(
                "{}.{}",
                base64url(header.as_bytes()),
                base64url(payload.as_bytes())
            )
        };
        let confused = {
            let input = unsigned("HS256");
            let mut mac =
                Hmac::<Sha256>::new_from_slice(&self.public_pem).unwrap_or_else(|e| panic!("{e}"));
            mac.update(input.as_bytes());
            format!("{input}.{}", base64url(&mac.finalize().into_bytes()))
        };
        let changed = {
            // A character in the signature's middle: whole bytes of it.
            let at = good.rfind('.').unwrap_or(0) + 10;
            let letter = if &good[at..=at] == "A" { "B" } else { "A" };
            format!("{}{letter}{}", &good[..at], &good[at + 1..])
        };
        let sent = vec![
            vec![bearer(good.clone())],
            vec![],
            vec![bearer(
                self.signed(&self.kid, &self.claims(now() - 3_600, "api")),
            )],
            vec![bearer(
                self.signed(&self.kid, &self.claims(now() + 86_400, "other")),
            )],
            vec![bearer(format!("{}.", unsigned("none")))],
            vec![bearer(confused)],
            vec![bearer(
                self.signed("unknown", &self.claims(now() + 86_400, "api")),
            )],
            vec![bearer(changed)],
            vec![bearer(good.clone()), bearer(good)],
        ];
        HEADINGS.into_iter().zip(sent).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::base64url;

    #[test]
    fn base64url_is_rfc_4648s() {
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }
}
