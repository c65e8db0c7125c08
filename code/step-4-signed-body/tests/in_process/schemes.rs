//! The real senders' schemes (`senders/envoy.yaml`): each sender's
//! published example where it has one, at the time it was signed, and
//! otherwise signatures computed by openssl, never by the plugin's code.

use crate::cases::Expected;
use crate::host::{self, NotStarted, Plugin, Send};
use crate::judge;
use std::io::Write;
use std::process::{Command, Stdio};

/// Starts the instance `filter` of `senders/envoy.yaml`, its clock at `now`.
fn sender(filter: &str, now: u64) -> Plugin {
    Plugin::start(&host::sender_configuration(filter), now)
        .unwrap_or_else(|why| panic!("{filter} did not start: {why}"))
}

/// Runs `program` with `args`, `input` on its standard input; its output.
fn run(program: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} signs the cases: install it ({e})"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .unwrap_or_else(|e| panic!("{program}: {e}"));
    }
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(output.status.success(), "{program} {args:?} failed");
    output.stdout
}

/// HMAC-SHA256 of `message` under `key`, by openssl: the 32 bytes.
fn openssl_mac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let key_hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let key_option = format!("hexkey:{key_hex}");
    run(
        "openssl",
        &[
            "dgst",
            "-sha256",
            "-mac",
            "HMAC",
            "-macopt",
            &key_option,
            "-binary",
        ],
        message,
    )
}

/// The same in hex, as the hex schemes write it.
fn openssl_hex(key: &[u8], message: &[u8]) -> String {
    openssl_mac(key, message)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The same in base64 (openssl's encoder), as Standard Webhooks writes it.
fn openssl_base64(key: &[u8], message: &[u8]) -> String {
    let mac = openssl_mac(key, message);
    String::from_utf8_lossy(&run("openssl", &["base64", "-A"], &mac)).into_owned()
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
        .collect()
}

/// Sends `body` with `pairs`, whole, in pieces of 3 bytes, and whole with
/// trailers; each must get `expected`.
fn check(plugin: &mut Plugin, pairs: &[(&str, &str)], body: &[u8], expected: &Expected) {
    let trailers = vec![("x-trailer".to_owned(), b"done".to_vec())];
    for (how, pieces, trailers) in [
        ("whole", vec![body], Vec::new()),
        ("in pieces", body.chunks(3).collect(), Vec::new()),
        ("with trailers", vec![body], trailers),
    ] {
        let outcome = plugin.send(&Send {
            headers: headers(pairs),
            pieces,
            trailers,
        });
        let verdict = judge(expected, body, outcome.map_err(|e| e.to_string()));
        assert!(verdict.is_ok(), "{pairs:?}, {how}: {verdict:?}");
    }
}

/// GitHub's documented example, with its secret in `senders/envoy.yaml`.
#[test]
fn githubs_documented_example_passes_and_refuses_it_altered() {
    let mut github = sender("github", 1_800_000_000);
    let good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let flipped = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e18";
    let signed = [("x-hub-signature-256", good)];
    check(&mut github, &signed, b"Hello, World!", &Expected::Passed);
    let refused = Expected::Refused(401, "invalid signature");
    check(
        &mut github,
        &[("x-hub-signature-256", flipped)],
        b"Hello, World!",
        &refused,
    );
    check(&mut github, &signed, b"Hello, World?", &refused);
}

/// Slack's worked example verifies at the time Slack signed it, and is a
/// replay five minutes and a second later.
#[test]
fn slacks_worked_example_passes_at_its_time_and_is_stale_after_five_minutes() {
    let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    let pairs = [
        (
            "x-slack-signature",
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        ),
        ("x-slack-request-timestamp", "1531420618"),
    ];
    check(
        &mut sender("slack", 1_531_420_618),
        &pairs,
        body,
        &Expected::Passed,
    );
    check(
        &mut sender("slack", 1_531_420_618 + 300),
        &pairs,
        body,
        &Expected::Passed,
    );
    let stale = Expected::Refused(400, "stale timestamp");
    check(
        &mut sender("slack", 1_531_420_618 + 301),
        &pairs,
        body,
        &stale,
    );
    let mut slack = sender("slack", 1_531_420_618);
    check(
        &mut slack,
        &pairs,
        b"token=other",
        &Expected::Refused(401, "invalid signature"),
    );
}

/// The Standard Webhooks reference libraries' example, at its own time.
#[test]
fn the_standard_webhooks_example_passes_at_its_time() {
    let mut standard = sender("standard-webhooks", 1_614_265_330);
    let body = br#"{"test": 2432232314}"#;
    let mut pairs = [
        ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
        ("webhook-timestamp", "1614265330"),
        (
            "webhook-signature",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ),
    ];
    check(&mut standard, &pairs, body, &Expected::Passed);
    pairs[0].1 = "msg_p5jXN8AQM9LWM0D4loKWxJeK";
    check(
        &mut standard,
        &pairs,
        body,
        &Expected::Refused(401, "invalid signature"),
    );
}

/// Standard Webhooks, signed now by openssl: several signatures in one
/// header, and the entries the plugin must not be fooled by.
#[test]
fn standard_webhooks_signed_by_openssl() {
    let now = 1_800_000_000;
    let mut standard = sender("standard-webhooks", now);
    let key = run(
        "openssl",
        &["base64", "-d", "-A"],
        b"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    );
    let body = br#"{"type":"invoice.paid"}"#;
    let signed = [&b"msg_1."[..], b"1800000000.", body].concat();
    let good = format!("v1,{}", openssl_base64(&key, &signed));
    let other = format!(
        "v1,{}",
        openssl_base64(b"another-secret-another-secret", &signed)
    );
    for (list, expected) in [
        (good.clone(), Expected::Passed),
        (format!("{other} {good}"), Expected::Passed),
        (format!("v1a,AAAA {good}"), Expected::Passed),
        (other.clone(), Expected::Refused(401, "invalid signature")),
        (
            format!("v1a,{}", &good[3..]),
            Expected::Refused(401, "malformed signature"),
        ),
        (
            format!("{good} "),
            Expected::Refused(401, "malformed signature"),
        ),
    ] {
        let pairs = [
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", "1800000000"),
            ("webhook-signature", list.as_str()),
        ];
        check(&mut standard, &pairs, body, &expected);
    }
}

/// Stripe has no published example with its secret: the signatures are
/// openssl's, for both secrets of `senders/envoy.yaml`.
#[test]
fn stripe_signed_by_openssl() {
    let config = host::sender_configuration("stripe");
    let secrets: Vec<&str> = config
        .split('"')
        .filter(|part| part.starts_with("whsec_"))
        .collect();
    let [current, previous] = secrets[..] else {
        panic!("two secrets expected in the stripe configuration: {secrets:?}");
    };
    let now = 1_800_000_000_u64;
    let mut stripe = sender("stripe", now);
    let body = br#"{"id":"evt_1","type":"charge.succeeded"}"#;
    let sign = |secret: &str, t: u64| {
        openssl_hex(
            secret.as_bytes(),
            &[format!("{t}.").as_bytes(), body].concat(),
        )
    };
    let old = now - 600;
    for (header, expected) in [
        (
            format!("t={now},v1={}", sign(current, now)),
            Expected::Passed,
        ),
        (
            format!("t={now},v1={}", sign(previous, now)),
            Expected::Passed,
        ),
        (
            format!(
                "t={now},v1={},v1={}",
                sign(previous, now),
                sign(current, now)
            ),
            Expected::Passed,
        ),
        (
            format!("t={now},v1={},v0={}", sign(current, now), "0".repeat(64)),
            Expected::Passed,
        ),
        (
            format!("t={now},v1={}", sign("whsec_unknown_unknown", now)),
            Expected::Refused(401, "invalid signature"),
        ),
        (
            format!("t={old},v1={}", sign(current, old)),
            Expected::Refused(400, "stale timestamp"),
        ),
        (
            format!("t={now},v1={}", sign(current, old)),
            Expected::Refused(401, "invalid signature"),
        ),
        (
            format!("t={old},t={now},v1={}", sign(current, now)),
            Expected::Refused(400, "timestamp sent more than once"),
        ),
        (
            format!("t={now},v0={}", sign(current, now)),
            Expected::Refused(401, "malformed signature"),
        ),
    ] {
        check(
            &mut stripe,
            &[("stripe-signature", &header)],
            body,
            &expected,
        );
    }
}

/// GitHub's example secret is 26 bytes: accepted, with one warning when
/// the plugin is configured, which names the secret by position only. A
/// secret under the floor (16 bytes) is refused.
#[test]
fn a_short_secret_is_accepted_with_a_warning_and_one_under_the_floor_is_refused() {
    let github = sender("github", 1_800_000_000);
    let warnings: Vec<String> = github
        .log
        .lines()
        .into_iter()
        .filter(|line| line.starts_with("Warn"))
        .collect();
    assert_eq!(warnings.len(), 1, "{:?}", github.log.lines());
    assert!(warnings[0].contains("secret number 1"), "{warnings:?}");
    assert!(
        !github
            .log
            .lines()
            .iter()
            .any(|line| line.contains("Secret to Everybody")),
        "{:?}",
        github.log.lines()
    );
    let floor =
        host::sender_configuration("github").replace("It's a Secret to Everybody", "13-byte-secrt");
    match Plugin::start(&floor, 1_800_000_000) {
        Err(NotStarted::Refused(reason)) => assert_eq!(
            reason,
            "secret number 1 in `secrets` is shorter than 16 bytes"
        ),
        Err(NotStarted::Failed(error)) => panic!("the VM failed: {error}"),
        Ok(_) => panic!("a 13-byte secret was accepted"),
    }
}
