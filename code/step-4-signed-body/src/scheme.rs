//! Whose signatures the plugin checks: what each sender signs, and how it
//! writes the signature and the time into its headers. Each scheme turns
//! a request's headers into a `Claim` (the signatures the sender says it
//! computed, and the bytes it signed before the body) or a refusal.

use crate::filter::Verdict;
use crate::signature::{parse_hex_mac, parse_timestamp, Mac};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use proxy_wasm::types::Bytes;

/// The senders this plugin verifies, each as its documentation says.
pub enum Scheme {
    /// The book's own: `sha256=<hex>` in a header you name, over
    /// `<timestamp>.<body>` when you also name a timestamp header, over
    /// the body alone when you do not.
    Custom {
        signature_header: String,
        timestamp_header: Option<String>,
    },
    /// `X-Hub-Signature-256: sha256=<hex>` over the body alone.
    GitHub,
    /// `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]` over
    /// `<t>.<body>`.
    Stripe,
    /// `X-Slack-Signature: v0=<hex>` over `v0:<timestamp>:<body>`, the
    /// time in `X-Slack-Request-Timestamp`.
    Slack,
    /// `webhook-signature: v1,<base64> [v1,<base64> ...]` over
    /// `<webhook-id>.<webhook-timestamp>.<body>`, under a secret written
    /// `whsec_<base64>`.
    StandardWebhooks,
}

/// What the headers say was signed.
pub struct Claim {
    /// Every signature the sender sent (several during a rotation); one
    /// that matches under any secret is enough.
    pub signatures: Vec<Mac>,
    /// What the sender signed before the body.
    pub prefix: Vec<u8>,
    /// The signed time, for the schemes that sign one.
    pub timestamp: Option<u64>,
}

/// Why the headers alone refuse the request.
#[derive(Debug, PartialEq)]
pub struct Refusal {
    pub verdict: Verdict,
    pub status: u32,
    pub message: &'static str,
}

const fn refusal(verdict: Verdict, status: u32, message: &'static str) -> Refusal {
    Refusal {
        verdict,
        status,
        message,
    }
}

const MISSING_SIGNATURE: Refusal = refusal(Verdict::MissingSignature, 401, "missing signature");
const MALFORMED_SIGNATURE: Refusal =
    refusal(Verdict::MalformedSignature, 401, "malformed signature");
const SIGNATURE_TWICE: Refusal = refusal(
    Verdict::RepeatedHeader,
    400,
    "signature sent more than once",
);
const MISSING_TIMESTAMP: Refusal = refusal(Verdict::BadTimestamp, 400, "missing timestamp");
const TIMESTAMP_TWICE: Refusal =
    refusal(Verdict::BadTimestamp, 400, "timestamp sent more than once");
const MALFORMED_TIMESTAMP: Refusal = refusal(Verdict::BadTimestamp, 400, "malformed timestamp");
const MISSING_ID: Refusal = refusal(Verdict::BadWebhookId, 400, "missing webhook-id");
const ID_TWICE: Refusal = refusal(Verdict::BadWebhookId, 400, "webhook-id sent more than once");
const MALFORMED_ID: Refusal = refusal(Verdict::BadWebhookId, 400, "malformed webhook-id");

/// More signatures than this in one header is not a rotation: refused,
/// so a request cannot make the plugin compare thousands of them.
pub const MAX_SIGNATURES: usize = 8;

impl Scheme {
    /// The name the configuration's `scheme` field uses.
    pub fn named(name: &str) -> Option<Scheme> {
        match name {
            "github" => Some(Scheme::GitHub),
            "stripe" => Some(Scheme::Stripe),
            "slack" => Some(Scheme::Slack),
            "standard-webhooks" => Some(Scheme::StandardWebhooks),
            _ => None,
        }
    }

    /// Whether the sender signs a time (and so a tolerance applies).
    pub fn signs_a_timestamp(&self) -> bool {
        match self {
            Scheme::Custom {
                timestamp_header, ..
            } => timestamp_header.is_some(),
            Scheme::GitHub => false,
            Scheme::Stripe | Scheme::Slack | Scheme::StandardWebhooks => true,
        }
    }

    /// For the log line at configuration: which headers this scheme reads.
    pub fn describe(&self) -> String {
        match self {
            Scheme::Custom {
                signature_header,
                timestamp_header,
            } => match timestamp_header {
                Some(t) => format!("header `{signature_header}`, timestamp `{t}`"),
                None => format!("header `{signature_header}`"),
            },
            Scheme::GitHub => "github (`x-hub-signature-256`)".into(),
            Scheme::Stripe => "stripe (`stripe-signature`)".into(),
            Scheme::Slack => "slack (`x-slack-signature`, `x-slack-request-timestamp`)".into(),
            Scheme::StandardWebhooks => {
                "standard-webhooks (`webhook-signature`, `webhook-id`, `webhook-timestamp`)".into()
            }
        }
    }

    /// Below this many bytes a secret is accepted with a warning: for the
    /// hex schemes, SHA-256's output length (RFC 2104, section 3, calls
    /// shorter keys "strongly discouraged"); for Standard Webhooks, the 24
    /// bytes its specification asks for.
    pub fn recommended_secret_bytes(&self) -> usize {
        match self {
            Scheme::StandardWebhooks => 24,
            _ => 32,
        }
    }

    /// The HMAC key a configured secret stands for: its bytes as written,
    /// except for Standard Webhooks, whose secrets are `whsec_` and the
    /// key in base64. `None` when the secret is not written that way.
    pub fn key_of(&self, secret: &str) -> Option<Vec<u8>> {
        match self {
            Scheme::StandardWebhooks => BASE64.decode(secret.strip_prefix("whsec_")?).ok(),
            _ => Some(secret.as_bytes().to_vec()),
        }
    }

    // ANCHOR: read
    /// What the headers claim, read exactly as the sender writes them.
    pub fn read(&self, headers: &[(String, Bytes)]) -> Result<Claim, Refusal> {
        match self {
            Scheme::Custom {
                signature_header,
                timestamp_header,
            } => {
                let signature = hex_signature(headers, signature_header, b"sha256=")?;
                match timestamp_header {
                    None => Ok(Claim {
                        signatures: vec![signature],
                        prefix: Vec::new(),
                        timestamp: None,
                    }),
                    Some(name) => {
                        let (time, text) = timestamp(headers, name)?;
                        Ok(Claim {
                            signatures: vec![signature],
                            prefix: [text, b"."].concat(),
                            timestamp: Some(time),
                        })
                    }
                }
            }
            Scheme::GitHub => Ok(Claim {
                signatures: vec![hex_signature(headers, "x-hub-signature-256", b"sha256=")?],
                prefix: Vec::new(),
                timestamp: None,
            }),
            Scheme::Slack => {
                let signature = hex_signature(headers, "x-slack-signature", b"v0=")?;
                let (time, text) = timestamp(headers, "x-slack-request-timestamp")?;
                Ok(Claim {
                    signatures: vec![signature],
                    prefix: [b"v0:", text, b":"].concat(),
                    timestamp: Some(time),
                })
            }
            Scheme::Stripe => stripe(one(headers, "stripe-signature", MISSING_SIGNATURE)?),
            Scheme::StandardWebhooks => standard_webhooks(headers),
        }
    }
    // ANCHOR_END: read
}

/// The single value of header `name`: `missing` when there is none, 400
/// when there are several (the plugin could check one while the upstream
/// reads another).
fn one<'h>(
    headers: &'h [(String, Bytes)],
    name: &str,
    missing: Refusal,
) -> Result<&'h [u8], Refusal> {
    let mut values = headers.iter().filter(|(header, _)| header == name);
    match (values.next(), values.next()) {
        (None, _) => Err(missing),
        (Some((_, value)), None) => Ok(value),
        (Some(_), Some(_)) => Err(match missing.verdict {
            Verdict::MissingSignature => SIGNATURE_TWICE,
            Verdict::BadWebhookId => ID_TWICE,
            _ => TIMESTAMP_TWICE,
        }),
    }
}

/// `<prefix><64 hex digits>` in header `name`.
fn hex_signature(headers: &[(String, Bytes)], name: &str, prefix: &[u8]) -> Result<Mac, Refusal> {
    let value = one(headers, name, MISSING_SIGNATURE)?;
    value
        .strip_prefix(prefix)
        .and_then(parse_hex_mac)
        .ok_or(MALFORMED_SIGNATURE)
}

/// The time in header `name`, and its text exactly as sent (what was
/// signed).
fn timestamp<'h>(headers: &'h [(String, Bytes)], name: &str) -> Result<(u64, &'h [u8]), Refusal> {
    let text = one(headers, name, MISSING_TIMESTAMP)?;
    let time = parse_timestamp(text).ok_or(MALFORMED_TIMESTAMP)?;
    Ok((time, text))
}

// ANCHOR: stripe
/// `t=<unix>,v1=<hex>,v1=<hex>,v0=<hex>`: one `t`, at least one `v1`.
/// Other keys (`v0`, Stripe's test-mode signature, or a scheme Stripe adds
/// later) are ignored, as Stripe's own libraries ignore them.
fn stripe(value: &[u8]) -> Result<Claim, Refusal> {
    let mut time: Option<&[u8]> = None;
    let mut signatures = Vec::new();
    for item in value.split(|&b| b == b',') {
        let Some(equals) = item.iter().position(|&b| b == b'=') else {
            return Err(MALFORMED_SIGNATURE);
        };
        let (key, text) = (&item[..equals], &item[equals + 1..]);
        match key {
            b"t" if time.is_some() => return Err(TIMESTAMP_TWICE),
            b"t" => time = Some(text),
            b"v1" => signatures.push(parse_hex_mac(text).ok_or(MALFORMED_SIGNATURE)?),
            _ => {}
        }
    }
    if signatures.is_empty() || signatures.len() > MAX_SIGNATURES {
        return Err(MALFORMED_SIGNATURE);
    }
    let text = time.ok_or(MISSING_TIMESTAMP)?;
    let time = parse_timestamp(text).ok_or(MALFORMED_TIMESTAMP)?;
    Ok(Claim {
        signatures,
        prefix: [text, b"."].concat(),
        timestamp: Some(time),
    })
}
// ANCHOR_END: stripe

/// The three `webhook-` headers. The signature header is a space-separated
/// list of `<version>,<base64>`; only `v1` (HMAC-SHA256) is this plugin's
/// to check, and `v1a` (ed25519) entries are skipped.
fn standard_webhooks(headers: &[(String, Bytes)]) -> Result<Claim, Refusal> {
    let list = one(headers, "webhook-signature", MISSING_SIGNATURE)?;
    let mut signatures = Vec::new();
    for entry in list.split(|&b| b == b' ') {
        let Some(comma) = entry.iter().position(|&b| b == b',') else {
            return Err(MALFORMED_SIGNATURE);
        };
        if &entry[..comma] == b"v1" {
            let mac = BASE64
                .decode(&entry[comma + 1..])
                .ok()
                .and_then(|bytes| Mac::try_from(bytes.as_slice()).ok())
                .ok_or(MALFORMED_SIGNATURE)?;
            signatures.push(mac);
        }
    }
    if signatures.is_empty() || signatures.len() > MAX_SIGNATURES {
        return Err(MALFORMED_SIGNATURE);
    }
    // The specification forbids `.` in the id: with one, `a.b` + time `c`
    // and `a` + `b.c` would sign the same bytes.
    let id = one(headers, "webhook-id", MISSING_ID)?;
    let id_ok =
        (1..=256).contains(&id.len()) && id.iter().all(|&b| b.is_ascii_graphic() && b != b'.');
    if !id_ok {
        return Err(MALFORMED_ID);
    }
    let (time, text) = timestamp(headers, "webhook-timestamp")?;
    Ok(Claim {
        signatures,
        prefix: [id, b".", text, b"."].concat(),
        timestamp: Some(time),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, Bytes)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn hex(mac: &Mac) -> String {
        mac.iter().map(|b| format!("{b:02x}")).collect()
    }

    const A: &str = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    const B: &str = "a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    #[test]
    fn stripe_reads_every_v1_and_skips_other_keys() {
        let value = format!("t=1492774577,v1={A},v0={B},v1={B}");
        let Ok(claim) = Scheme::Stripe.read(&headers(&[("stripe-signature", &value)])) else {
            panic!("refused");
        };
        assert_eq!(claim.prefix, b"1492774577.");
        assert_eq!(claim.timestamp, Some(1_492_774_577));
        assert_eq!(claim.signatures.iter().map(hex).collect::<Vec<_>>(), [A, B]);
    }

    #[test]
    fn stripe_refuses_what_it_cannot_read_one_way() {
        let many = format!("t=1{}", format!(",v1={A}").repeat(MAX_SIGNATURES + 1));
        for (value, expected) in [
            (format!("v1={A}"), MISSING_TIMESTAMP),
            (format!("t=1,t=2,v1={A}"), TIMESTAMP_TWICE),
            (format!("t=1,v0={A}"), MALFORMED_SIGNATURE),
            (format!("t=1,v1={A},junk"), MALFORMED_SIGNATURE),
            (format!("t=1,v1={}", &A[1..]), MALFORMED_SIGNATURE),
            (format!("t=1, v1={A}"), MALFORMED_SIGNATURE),
            (format!("t=1.5,v1={A}"), MALFORMED_TIMESTAMP),
            (many, MALFORMED_SIGNATURE),
        ] {
            let got = Scheme::Stripe.read(&headers(&[("stripe-signature", &value)]));
            assert_eq!(got.err(), Some(expected), "{value}");
        }
    }

    #[test]
    fn standard_webhooks_reads_v1_and_skips_v1a() {
        let list = "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg== v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        let request = headers(&[
            ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
            ("webhook-timestamp", "1614265330"),
            ("webhook-signature", list),
        ]);
        let Ok(claim) = Scheme::StandardWebhooks.read(&request) else {
            panic!("refused");
        };
        assert_eq!(claim.signatures.len(), 1);
        assert_eq!(claim.prefix, b"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.");
    }

    #[test]
    fn standard_webhooks_refuses_ambiguous_ids_and_bad_entries() {
        let good = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        for (id, list, expected) in [
            ("msg.1", good, MALFORMED_ID),
            ("", good, MALFORMED_ID),
            ("msg 1", good, MALFORMED_ID),
            ("msg_1", "v1a,AAAA", MALFORMED_SIGNATURE),
            ("msg_1", "v1,AAAA", MALFORMED_SIGNATURE),
            (
                "msg_1",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE",
                MALFORMED_SIGNATURE,
            ),
            (
                "msg_1",
                "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                MALFORMED_SIGNATURE,
            ),
            (
                "msg_1",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=  v1,x",
                MALFORMED_SIGNATURE,
            ),
        ] {
            let request = headers(&[
                ("webhook-id", id),
                ("webhook-timestamp", "1614265330"),
                ("webhook-signature", list),
            ]);
            let got = Scheme::StandardWebhooks.read(&request);
            assert_eq!(got.err(), Some(expected), "{id} {list}");
        }
    }

    #[test]
    fn a_repeated_header_is_refused_in_every_scheme() {
        let sig = format!("sha256={A}");
        let twice = headers(&[("x-hub-signature-256", &sig), ("x-hub-signature-256", &sig)]);
        assert_eq!(Scheme::GitHub.read(&twice).err(), Some(SIGNATURE_TWICE));
        let slack = format!("v0={A}");
        let twice = headers(&[
            ("x-slack-signature", &slack),
            ("x-slack-request-timestamp", "1"),
            ("x-slack-request-timestamp", "2"),
        ]);
        assert_eq!(Scheme::Slack.read(&twice).err(), Some(TIMESTAMP_TWICE));
        let twice = headers(&[
            (
                "webhook-signature",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
            ("webhook-id", "a"),
            ("webhook-id", "b"),
            ("webhook-timestamp", "1"),
        ]);
        assert_eq!(Scheme::StandardWebhooks.read(&twice).err(), Some(ID_TWICE));
    }

    #[test]
    fn standard_webhooks_secrets_are_base64_after_whsec() {
        let scheme = Scheme::StandardWebhooks;
        assert_eq!(
            scheme
                .key_of("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                .map(|k| k.len()),
            Some(24)
        );
        assert_eq!(scheme.key_of("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), None);
        assert_eq!(scheme.key_of("whsec_not base64!"), None);
        // Stripe's secrets also start with whsec_, but are used as written.
        assert_eq!(
            Scheme::Stripe.key_of("whsec_abc").as_deref(),
            Some(&b"whsec_abc"[..])
        );
    }
}
