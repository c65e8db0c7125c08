//! `native-body-cost verify|redact FILE ITERATIONS [FIELD...]`: runs step
//! 4's HMAC verifier (`verify`, one secret) or step 6's redaction
//! (`redact`, removing each FIELD) over FILE's bytes ITERATIONS times. The
//! benchmark runs it under callgrind with two iteration counts: the
//! difference, divided, is what one body costs natively.
// The steps' own unit tests come with their files and need the rest of
// their crates: this program has none of its own, and builds nothing as a
// test (clippy's --all-targets).
#![cfg(not(test))]

#[path = "../../../code/step-4-signed-body/src/signature.rs"]
#[allow(dead_code)]
mod signature;

#[path = "../../../code/step-6-response-guard/src/redact.rs"]
#[allow(dead_code)]
mod redact;

use std::collections::BTreeSet;
use std::hint::black_box;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [work, file, iterations, fields @ ..] = args.as_slice() else {
        eprintln!("usage: native-body-cost verify|redact FILE ITERATIONS [FIELD...]");
        std::process::exit(2);
    };
    let body = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
    let iterations: u32 = iterations.parse().expect("ITERATIONS is a number");
    match work.as_str() {
        "verify" => {
            let secret = signature::Secret::new(b"bench-secret-0123456789abcdef0123456789")
                .expect("HMAC takes any key");
            for _ in 0..iterations {
                let mut verifier =
                    signature::Verifier::start(black_box(std::slice::from_ref(&secret)), b"");
                verifier.update(black_box(&body));
                black_box(verifier.matches(&[[0u8; 32]]));
            }
        }
        "redact" => {
            let fields: BTreeSet<String> = fields.iter().cloned().collect();
            for _ in 0..iterations {
                black_box(redact::redact(black_box(&body), &fields).ok());
            }
        }
        other => panic!("unknown work {other}"),
    }
}
