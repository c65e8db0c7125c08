//! The plugin's cases without a proxy: the release module, loaded into a
//! host library by `cargo test`, rewrites or refuses each response in
//! milliseconds.

// The tests run on your machine, never inside the module.
#![cfg(not(target_arch = "wasm32"))]

mod cases;
mod host;

use cases::{Body, Case, Expected, Upstream, CASES, USER};
use host::{NotStarted, Outcome, Plugin, Response};

/// Starts the plugin with the configuration of the folder's `envoy.yaml`.
fn plugin() -> Plugin {
    match Plugin::start(&host::envoy_configuration()) {
        Ok(plugin) => plugin,
        Err(why) => panic!("the plugin did not start: {why:?}"),
    }
}

fn pairs(headers: &[(&str, &[u8])]) -> Vec<(Vec<u8>, Vec<u8>)> {
    headers
        .iter()
        .map(|(name, value)| (name.as_bytes().to_vec(), value.to_vec()))
        .collect()
}

/// What `upstream` answers to a request with `seen` headers.
fn answer(upstream: &Upstream, seen: &[(Vec<u8>, Vec<u8>)]) -> Response {
    let range = seen
        .iter()
        .find(|(name, _)| name == b"range")
        .map(|(_, value)| String::from_utf8_lossy(value).into_owned());
    match (upstream, range) {
        (Upstream::HonoursRange, None) => response("200", Some(b"application/json"), &[], USER),
        (Upstream::HonoursRange, Some(range)) => ranged(&range),
        (
            Upstream::Fixed {
                status,
                content_type,
                also,
                body,
                piece,
                trailers,
            },
            _,
        ) => {
            let body = match body {
                Body::Bytes(bytes) => bytes.to_vec(),
                Body::Sized(size) => sized(*size),
            };
            let mut response = response(status, *content_type, also, &body);
            if *piece > 0 {
                response.pieces = body.chunks(*piece).map(<[u8]>::to_vec).collect();
            }
            response.trailers = pairs(trailers);
            response
        }
    }
}

fn response(
    status: &str,
    content_type: Option<&[u8]>,
    also: &[(&str, &[u8])],
    body: &[u8],
) -> Response {
    let mut headers = vec![(b":status".to_vec(), status.as_bytes().to_vec())];
    if let Some(content_type) = content_type {
        headers.push((b"content-type".to_vec(), content_type.to_vec()));
    }
    headers.extend(pairs(also));
    Response {
        headers,
        pieces: if body.is_empty() {
            Vec::new()
        } else {
            vec![body.to_vec()]
        },
        trailers: Vec::new(),
    }
}

/// The part of the user a `Range: bytes=A-B[,C-D]` asks for: one part as
/// JSON, several as multipart/byteranges.
fn ranged(range: &str) -> Response {
    let parts: Vec<(usize, usize)> = range
        .trim_start_matches("bytes=")
        .split(',')
        .filter_map(|part| {
            let (from, to) = part.split_once('-')?;
            Some((
                from.parse().ok()?,
                to.parse::<usize>().ok()?.min(USER.len() - 1),
            ))
        })
        .collect();
    match parts.as_slice() {
        [(from, to)] => response("206", Some(b"application/json"), &[], &USER[*from..=*to]),
        _ => {
            let mut body = Vec::new();
            for (from, to) in &parts {
                body.extend_from_slice(b"--SEP\r\ncontent-type: application/json\r\n\r\n");
                body.extend_from_slice(&USER[*from..=*to]);
                body.extend_from_slice(b"\r\n");
            }
            body.extend_from_slice(b"--SEP--\r\n");
            response(
                "206",
                Some(b"multipart/byteranges; boundary=SEP"),
                &[],
                &body,
            )
        }
    }
}

/// A JSON document of exactly `size` bytes (at least 40), with an `ssn`.
fn sized(size: usize) -> Vec<u8> {
    let head = br#"{"ssn":"078-05-1120","pad":""#;
    let mut body = head.to_vec();
    body.resize(size - 2, b'a');
    body.extend_from_slice(br#""}"#);
    body
}

/// Sends `case` and returns what the client got.
fn send(plugin: &mut Plugin, case: &Case) -> Result<Outcome, String> {
    plugin
        .exchange(case.path, case.request, |seen| answer(&case.upstream, seen))
        .map(|(_, outcome)| outcome)
        .map_err(|error| error.to_string())
}

/// Sends every case and prints one `PASS` or `FAIL` line each, then fails
/// if any case failed.
#[test]
fn every_case_gets_its_answer() {
    let mut plugin = plugin();
    let mut failed = 0;
    for case in CASES {
        let upstream_body = match &case.upstream {
            Upstream::Fixed {
                body: Body::Bytes(bytes),
                ..
            } => bytes.to_vec(),
            _ => Vec::new(),
        };
        match send(&mut plugin, case).and_then(|o| judge(&case.expected, &upstream_body, o)) {
            Ok(()) => println!("PASS  {}", case.name),
            Err(why) => {
                println!("FAIL  {}: {why}", case.name);
                failed += 1;
            }
        }
    }
    assert_eq!(failed, 0, "{failed} case(s) failed");
}

/// Whether `outcome` is what the case expects.
fn judge(expected: &Expected, upstream_body: &[u8], outcome: Outcome) -> Result<(), String> {
    match (expected, outcome) {
        (Expected::Refused(status, text), Outcome::Refused { status: got, body })
            if got == *status && body.contains(text) =>
        {
            Ok(())
        }
        (Expected::Unchanged, Outcome::Sent { body, .. }) if body == upstream_body => Ok(()),
        (Expected::Rewritten { lacks, has }, Outcome::Sent { headers, body }) => {
            let mut text: String = headers
                .iter()
                .map(|(n, v)| {
                    format!(
                        "{}: {}\n",
                        String::from_utf8_lossy(n),
                        String::from_utf8_lossy(v)
                    )
                })
                .collect();
            text.push_str(&String::from_utf8_lossy(&body));
            let length = format!("content-length: {}\n", body.len());
            if let Some(found) = lacks.iter().find(|l| text.contains(*l)) {
                Err(format!("`{found}` reached the client: {text}"))
            } else if let Some(missing) = has.iter().find(|h| !text.contains(*h)) {
                Err(format!("no `{missing}` in {text}"))
            } else if !text.contains(&length) {
                Err(format!("the length is not the body's: {text}"))
            } else {
                Ok(())
            }
        }
        (expected, outcome) => Err(format!("expected {expected:?}, got {outcome:?}")),
    }
}

/// The upstream never sees a `Range`, an `If-Range` or an
/// `Accept-Encoding`: it answers with the whole document, uncompressed.
#[test]
fn the_upstream_is_asked_for_the_whole_response() {
    let mut plugin = plugin();
    let request: &[(&str, &[u8])] = &[
        ("range", b"bytes=92-104"),
        ("if-range", b"\"v1\""),
        ("accept-encoding", b"gzip, br"),
        ("accept", b"application/json"),
    ];
    let Ok((seen, _)) = plugin.exchange("/users/7", request, |seen| {
        answer(&Upstream::HonoursRange, seen)
    }) else {
        panic!("the VM failed");
    };
    let names: Vec<String> = seen
        .iter()
        .map(|(name, _)| String::from_utf8_lossy(name).into_owned())
        .collect();
    assert_eq!(names, [":method", ":path", "accept"]);
}

/// No removed value ever reaches the log.
#[test]
fn no_removed_value_reaches_the_log() {
    let mut plugin = plugin();
    for case in CASES {
        let _ = send(&mut plugin, case);
    }
    let lines = plugin.log.lines();
    assert!(lines.iter().any(|l| l.contains("configured")), "{lines:?}");
    for value in ["078-05-1120", "$2b$12", "flagged"] {
        assert!(
            !lines.iter().any(|l| l.contains(value)),
            "{value}: {lines:?}"
        );
    }
}

/// The reason the plugin gives for refusing `configuration`: a refusal,
/// not a crash.
fn refusal(configuration: &str) -> String {
    match Plugin::start(configuration) {
        Err(NotStarted::Refused(reason)) => reason,
        Err(NotStarted::Failed(error)) => panic!("the VM failed: {error}"),
        Ok(_) => panic!("accepted: {configuration}"),
    }
}

/// A configuration that would turn the guard off, or could not be
/// followed, is refused when it is loaded, each for its reason.
#[test]
fn a_configuration_that_would_turn_the_guard_off_is_refused() {
    let envoy = host::envoy_configuration();
    let with = |from: &str, to: &str| {
        let changed = envoy.replacen(from, to, 1);
        assert_ne!(changed, envoy, "no `{from}` in envoy.yaml's configuration");
        changed
    };
    for (configuration, reason) in [
        (
            with(r#"["server", "#, r#"["content-type", "server", "#),
            "`content-type` is set by Envoy or read by the plugin itself and cannot be configured",
        ),
        (
            with(
                r#"{ "x-content"#,
                r#"{ "Content-Type": "text/plain", "x-content"#,
            ),
            "`content-type` is set by Envoy or read by the plugin itself and cannot be configured",
        ),
        (
            with(r#"["image/*"]"#, r#"["image/*", "text/json"]"#),
            "`text/json` in `pass_unread` would let JSON responses pass unread",
        ),
        (
            with(r#"["image/*"]"#, r#"["*/*"]"#),
            "`*/*` in `pass_unread` is not a type/subtype or type/*",
        ),
        (
            with(r#""max_body_bytes": 65536"#, r#""max_body_bytes": 0"#),
            "`max_body_bytes` must be between 1 and 8388608",
        ),
        (
            with(r#""remove_fields": ["#, r#""remove_fields": [], "x": ["#),
            "configuration is not valid JSON of the expected shape (line 2, column 46)",
        ),
    ] {
        assert_eq!(refusal(&configuration), reason, "{configuration}");
    }
}
