//! What a webhook sender does: sign the body (with openssl, not with the
//! plugin's code) and set the headers, for each case.

use crate::cases::{self, Arrival, Body, Case, Signature, Timestamp};
use std::io::Write;
use std::process::{Command, Stdio};

/// `sha256=<hex>` of the HMAC-SHA256 of `<timestamp>.<body>` under
/// `secret`, computed by openssl as a sender would (not with the plugin's
/// code): the signatures are checked against an implementation of their
/// own.
pub fn sign(secret: &str, timestamp: u64, body: &[u8]) -> Vec<u8> {
    let mut openssl = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", secret])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("openssl signs the cases: install it ({e})"));
    if let Some(mut input) = openssl.stdin.take() {
        let signed = [format!("{timestamp}.").as_bytes(), body].concat();
        input
            .write_all(&signed)
            .unwrap_or_else(|e| panic!("openssl: {e}"));
    }
    let output = openssl
        .wait_with_output()
        .unwrap_or_else(|e| panic!("openssl: {e}"));
    assert!(output.status.success(), "openssl failed");
    let text = String::from_utf8_lossy(&output.stdout);
    let hex = text.trim().rsplit("= ").next().unwrap_or_default();
    format!("sha256={hex}").into_bytes()
}

/// `size` bytes of JSON-ish text.
fn sized_body(size: usize) -> Vec<u8> {
    let mut body = br#"{"event":"push","pad":""#.to_vec();
    body.resize(size.saturating_sub(2), b'a');
    body.extend_from_slice(br#""}"#);
    body.truncate(size);
    body
}

/// The request a sender makes for `case` at `now` (seconds after the
/// Unix epoch): its headers, and its body.
pub fn request(case: &Case, now: u64) -> (Vec<(String, Vec<u8>)>, Vec<u8>) {
    let (signed, sent) = match case.body {
        Body::Event => (cases::EVENT.to_vec(), cases::EVENT.to_vec()),
        Body::ChangedAfterSigning => (
            cases::EVENT.to_vec(),
            br#"{"event":"push","ref":"refs/heads/evil"}"#.to_vec(),
        ),
        Body::Empty => (Vec::new(), Vec::new()),
        Body::Sized(size) => (sized_body(size), sized_body(size)),
    };
    let ago = now - 600;
    let mut headers = Vec::new();
    let mut header = |name: &str, value: Vec<u8>| headers.push((name.to_owned(), value));
    match case.signature {
        Signature::Current => header("x-signature-256", sign(cases::SECRET, now, &signed)),
        Signature::Previous => header(
            "x-signature-256",
            sign(cases::PREVIOUS_SECRET, now, &signed),
        ),
        Signature::Unknown => header(
            "x-signature-256",
            sign("not-the-secret-not-the-secret-xx", now, &signed),
        ),
        Signature::TenMinutesAgo => header("x-signature-256", sign(cases::SECRET, ago, &signed)),
        Signature::Missing => {}
        Signature::Malformed => {
            let good = sign(cases::SECRET, now, &signed);
            header("x-signature-256", [b"sha1=", &good[7..]].concat());
        }
        Signature::Twice => {
            header("x-signature-256", sign(cases::SECRET, now, &signed));
            header(
                "x-signature-256",
                format!("sha256={}", "0".repeat(64)).into(),
            );
        }
    }
    match case.timestamp {
        Timestamp::Now => header("x-signature-timestamp", now.to_string().into()),
        Timestamp::TenMinutesAgo => header("x-signature-timestamp", ago.to_string().into()),
        Timestamp::Missing => {}
        Timestamp::Twice => {
            header("x-signature-timestamp", now.to_string().into());
            header("x-signature-timestamp", ago.to_string().into());
        }
        Timestamp::Malformed => header("x-signature-timestamp", format!("{now}.0").into()),
    }
    if let Arrival::Whole = case.arrival {
        header("content-length", sent.len().to_string().into());
    }
    (headers, sent)
}
