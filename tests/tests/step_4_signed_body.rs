//! Step 4 (HMAC-signed bodies) on a live Envoy: how the body arrives
//! (chunks, chunked, trailers, HTTP/2, sizes at the limits), what reaches
//! the upstream before the verdict, Envoy's own buffer limit, and the
//! body-rewriting example.

use harness::broken_service::RecordingUpstream;
use harness::capture;
use harness::envoy::EnvoyConfig;
use harness::http::{self, ChunkedRequest, Response};
use harness::stack::{self, Stack};
use harness::steps;
use harness::variants::{self, naive};
use harness::webhook::{self, body_of};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const STEP: &str = "step-4-signed-body";
/// The secrets in the step's envoy.yaml.
const SECRETS: [&str; 2] = [
    "whsec-2026-11-current-7d1f0c9a2b4e",
    "whsec-2026-05-previous-93ab51e07c2d",
];
const PATH: &str = "/webhooks/github";
/// `max_body_bytes` in the step's envoy.yaml.
const LIMIT: usize = 65536;

fn start(test_name: &str, wasm: &Path, edit: impl FnOnce(&mut EnvoyConfig)) -> Stack {
    Stack::start(test_name, STEP, wasm, 2, edit).unwrap_or_else(|log| panic!("{log}"))
}

fn now() -> String {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
        .to_string()
}

/// `sha256=<hex>` of "<timestamp>.<body>" under the current secret.
fn signature(timestamp: &str, body: &[u8]) -> String {
    webhook::signature(SECRETS[0], &[timestamp.as_bytes(), b".", body])
}

fn post(stack: &Stack, signature: &str, timestamp: &str, body: &[u8]) -> Response {
    http::request(
        stack.envoy.port,
        "POST",
        PATH,
        &[
            ("x-signature-256", signature.as_bytes()),
            ("x-signature-timestamp", timestamp.as_bytes()),
        ],
        body,
    )
    .expect("an answer from Envoy")
}

/// The body the echo backend says it received.
fn echoed_body(response: &Response) -> String {
    let echo: serde_json::Value = serde_json::from_str(&response.body)
        .unwrap_or_else(|e| panic!("not the echo's JSON ({e}): {}", response.body));
    echo["body"].as_str().unwrap_or_default().to_owned()
}

fn verdicts(stack: &Stack) -> Vec<String> {
    stack
        .envoy
        .log()
        .lines()
        .filter_map(|line| {
            line.split_once("request completed, verdict ")
                .map(|(_, v)| v.to_owned())
        })
        .collect()
}

fn assert_no_secret_logged(stack: &Stack) {
    let log = stack.envoy.log();
    for secret in SECRETS {
        assert!(!log.contains(secret), "the Envoy log contains a secret");
        assert!(
            !log.contains(&secret[..12]),
            "the Envoy log contains part of a secret"
        );
    }
}

#[test]
fn check_script_passes_and_matches_the_book() {
    let stack = Stack::step("step4-check-script", STEP, 2);
    let (passed, output) = stack.run_check_script(STEP);
    assert!(passed, "check.sh failed:\n{output}");
    // The chapter shows `bash check.sh | tail -n 1`: the verdict.
    capture::check_or_update(
        "step-4-signed-body/check.txt",
        &capture::last_lines(&output, 1),
    );
    assert_no_secret_logged(&stack);
}

/// `senders/envoy.yaml`: one instance of the plugin per real sender, each
/// on its own route. `senders/check.sh` sends GitHub's, Slack's and
/// Standard Webhooks' published examples and requests it signs with
/// openssl, over HTTP/1.1 (whole and chunked) and HTTP/2; the chapter
/// shows its output. The GitHub instance holds GitHub's 26-byte example
/// secret: accepted, with a warning that names no secret.
#[test]
fn the_senders_configuration_verifies_each_senders_scheme() {
    let wasm = steps::build(STEP);
    let config = EnvoyConfig::for_step_file(STEP, "senders/envoy.yaml");
    let stack = Stack::start_config(
        "step4-senders",
        STEP,
        config,
        &wasm,
        2,
        &stack::AuthService::InConfig,
        |_| {},
    )
    .unwrap_or_else(|log| panic!("{log}"));
    let folder = harness::paths::repo_root()
        .join("code")
        .join(STEP)
        .join("senders");
    let (passed, output) = stack::run_check_script(&folder, &stack.base_url());
    assert!(passed, "senders/check.sh failed:\n{output}");
    // The chapter shows `bash senders/check.sh | tail -n 1`: the verdict.
    capture::check_or_update(
        "step-4-signed-body/senders-check.txt",
        &capture::last_lines(&output, 1),
    );
    let log = stack.envoy.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("wasm log github: secret number 1 in `secrets` is shorter"))
        .collect();
    assert!(
        !warnings.is_empty(),
        "no warning about the short secret:\n{log}"
    );
    // Logged at warning level, as `log::warn!` in the plugin says; the
    // capture starts there (no time or thread id).
    let Some(at) = warnings[0].find("[warning][wasm]") else {
        panic!("not a warning: {}", warnings[0]);
    };
    capture::check_or_update(
        "step-4-signed-body/short-secret-warning.txt",
        &format!("{}\n", &warnings[0][at..]),
    );
    for secret in [
        "Secret to Everybody",
        "8f742231b10e8888abcd99yyyzzz85a5",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_7Hq2Lm9Xc4Rt8Vb1Nz6Kp3Wd5Gf0Sj2A",
    ] {
        assert!(!log.contains(secret), "the Envoy log contains a secret");
    }
    let verified = log
        .lines()
        .filter(|line| line.contains("request completed, verdict Verified"))
        .count();
    // Every 200 of check.sh was a verified request: no route lets one
    // through without its instance of the plugin.
    assert_eq!(verified, output.matches("got 200").count(), "{output}");
}

#[test]
fn a_body_in_many_chunks_is_verified_whole_and_passed_on_unchanged() {
    let stack = Stack::step("step4-many-chunks", STEP, 2);
    let body = body_of(40 * 1000);
    for (signed, expected) in [(&body[..], 200), (&b"something else"[..], 401)] {
        let timestamp = now();
        let signature = signature(&timestamp, signed);
        let headers = [
            ("x-signature-256", signature.as_bytes()),
            ("x-signature-timestamp", timestamp.as_bytes()),
        ];
        let mut request = ChunkedRequest::start(stack.envoy.port, PATH, &headers).expect("connect");
        for chunk in body.chunks(1000) {
            request.send_chunk(chunk).expect("send a chunk");
            // Separate reads for Envoy, so the plugin sees many pieces.
            std::thread::sleep(Duration::from_millis(2));
        }
        let response = request.finish(&[]).expect("an answer");
        assert_eq!(response.status, expected, "{}", response.body);
        if expected == 200 {
            assert_eq!(echoed_body(&response).as_bytes(), &body[..]);
        }
    }
}

#[test]
fn sizes_at_the_limit_over_http_1_and_2() {
    let stack = Stack::step("step4-limits", STEP, 2);
    let timestamp = now();
    // An empty body, declared with content-length: 0: what was signed is
    // the empty string.
    assert_eq!(
        post(&stack, &signature(&timestamp, b""), &timestamp, b"").status,
        200
    );
    let at_limit = body_of(LIMIT);
    let response = post(
        &stack,
        &signature(&timestamp, &at_limit),
        &timestamp,
        &at_limit,
    );
    assert_eq!(response.status, 200);
    assert_eq!(echoed_body(&response).len(), LIMIT);
    let over = body_of(LIMIT + 1);
    let response = post(&stack, &signature(&timestamp, &over), &timestamp, &over);
    assert_eq!(response.status, 413);
    assert!(
        response.body.contains("body too large"),
        "{}",
        response.body
    );

    // HTTP/2 (cleartext, prior knowledge), without content-length: the
    // body arrives in DATA frames and the limit is found while buffering.
    for (size, expected) in [(0, "200"), (LIMIT, "200"), (LIMIT + 1, "413")] {
        let output = curl_http2(
            &stack,
            &timestamp,
            &body_of(size),
            &["-H", "content-length:"],
        );
        assert_eq!(output.0, expected, "HTTP/2, {size} bytes: {}", output.1);
    }
    // With content-length the plugin refuses at the headers, while curl
    // is still sending: Envoy answers 413 and resets the rest of the
    // stream, which curl 7.88 reports as error 92 instead of the answer.
    // The body is far larger than the socket buffers, so curl is always
    // still sending when the answer comes: with one byte over the limit a
    // slow machine sometimes let curl finish first and show the 413.
    let before = verdicts(&stack).len();
    let output = curl_http2(&stack, &timestamp, &body_of(32 << 20), &[]);
    capture::check_or_update(
        "step-4-signed-body/http2-early-413.txt",
        &format!("status {}, curl exit code {}\n", output.0, output.1),
    );
    let verdicts = verdicts(&stack);
    assert_eq!(verdicts.len(), before + 1);
    assert_eq!(verdicts.last().map(String::as_str), Some("BodyTooLarge"));
}

/// curl over HTTP/2 cleartext: (status, exit code and error message).
fn curl_http2(stack: &Stack, timestamp: &str, body: &[u8], args: &[&str]) -> (String, String) {
    let file = stack.dir.join(format!("body-{}", body.len()));
    std::fs::write(&file, body).expect("write the body");
    let output = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "--http2-prior-knowledge"])
        .args(["-w", "%{http_code}\t%{exitcode} %{errormsg}"])
        .args([
            "-H",
            &format!("x-signature-256: {}", signature(timestamp, body)),
        ])
        .args(["-H", &format!("x-signature-timestamp: {timestamp}")])
        .args(args)
        .arg("--data-binary")
        .arg(format!("@{}", file.display()))
        .arg(format!("{}{PATH}", stack.base_url()))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (status, rest) = text.split_once('\t').unwrap_or((&text, ""));
    (status.to_owned(), rest.to_owned())
}

/// A body followed by trailers ends in `on_http_request_trailers`, not with
/// `end_of_stream` on the last piece of body. HTTP/2 clients can always
/// send trailers; Envoy's HTTP/1 codec passes them on with `enable_trailers`.
fn with_request_trailers(config: &mut EnvoyConfig) {
    config.replace_once(
        "stat_prefix: ingress\n",
        "stat_prefix: ingress\n          http_protocol_options: { enable_trailers: true }\n",
    );
}

fn send_with_trailers(stack: &Stack, signed: &[u8], sent: &[u8]) -> Response {
    let timestamp = now();
    let signature = signature(&timestamp, signed);
    let headers = [
        ("x-signature-256", signature.as_bytes()),
        ("x-signature-timestamp", timestamp.as_bytes()),
        ("te", b"trailers".as_slice()),
    ];
    let mut request = ChunkedRequest::start(stack.envoy.port, PATH, &headers).expect("connect");
    request.send_chunk(sent).expect("send the body");
    request
        .finish(&[("x-delivery-checksum", "abc")])
        .expect("an answer")
}

#[test]
fn a_body_with_trailers_is_verified_before_it_goes_on() {
    let wasm = steps::build(STEP);
    let stack = start("step4-trailers", &wasm, with_request_trailers);
    let body = b"{\"event\":\"push\"}";
    assert_eq!(send_with_trailers(&stack, body, body).status, 200);
    assert_eq!(
        send_with_trailers(&stack, body, b"{\"event\":\"evil\"}").status,
        401
    );

    // Without the trailers callback, the SDK's default (Continue) lets the
    // forged body through.
    let naive = variants::build(STEP, "no-trailers-callback", &[naive::NO_TRAILERS_CALLBACK]);
    let stack = start("step4-trailers-naive", &naive, with_request_trailers);
    assert_eq!(
        send_with_trailers(&stack, body, b"{\"event\":\"evil\"}").status,
        200,
        "naive: the forged body should have passed"
    );
}

/// What reached the upstream of a request with a wrongly signed body, sent
/// as headers and a first piece, then the rest after a pause.
struct SeenUpstream {
    /// The first piece arrived before the plugin's verdict.
    first_piece_early: bool,
    /// Anything at all (headers included) arrived, by the end.
    anything: bool,
    status: u16,
}

fn what_reaches_upstream(
    test_name: &str,
    wasm: &Path,
    edit: impl FnOnce(&mut EnvoyConfig),
) -> SeenUpstream {
    let upstream = RecordingUpstream::start();
    let stack = start(test_name, wasm, |config| {
        config.set_backend_port(upstream.port);
        edit(config);
    });
    let timestamp = now();
    let signature = signature(&timestamp, b"what the sender signed");
    let headers = [
        ("x-signature-256", signature.as_bytes()),
        ("x-signature-timestamp", timestamp.as_bytes()),
    ];
    let mut request = ChunkedRequest::start(stack.envoy.port, PATH, &headers).expect("connect");
    request
        .send_chunk(b"FIRST-PIECE-OF-A-FORGED-BODY")
        .expect("send");
    let contains = |needle: &[u8]| {
        upstream
            .received()
            .windows(needle.len())
            .any(|w| w == needle)
    };
    let reached = project::wait::until(Duration::from_millis(1500), || contains(b"FIRST-PIECE"));
    request.send_chunk(b"-and-the-rest").expect("send");
    let status = request.finish(&[]).map_or(0, |r| r.status);
    // Give anything still in flight the time to arrive.
    std::thread::sleep(Duration::from_millis(300));
    SeenUpstream {
        first_piece_early: reached,
        anything: !upstream.received().is_empty(),
        status,
    }
}

#[test]
fn nothing_of_a_refused_request_reaches_the_upstream() {
    // Step 4 pauses at the headers, with `allow_on_headers_stop_iteration`
    // (Envoy 1.35 and later): Envoy holds the headers while the body
    // callbacks still run, and the verdict releases both or neither.
    let step = steps::build(STEP);
    let held = what_reaches_upstream("step4-upstream-sees-nothing", &step, |_| {});
    assert_eq!(held.status, 401);
    assert!(!held.anything, "the upstream saw the refused request");

    // Letting the headers go at once: the upstream gets the headers of the
    // refused request, then a reset; never a byte of its body.
    let early = variants::build(
        STEP,
        "let-request-headers-go",
        &[naive::LET_REQUEST_HEADERS_GO],
    );
    let alone = what_reaches_upstream("step4-upstream-sees-headers", &early, |_| {});
    assert_eq!(alone.status, 401);
    assert!(
        alone.anything,
        "the headers should have reached the upstream"
    );
    assert!(
        !alone.first_piece_early,
        "a piece of the refused body reached the upstream"
    );

    // Envoy's buffer filter in front of that plugin holds the headers too,
    // until the whole body is there.
    let buffered = what_reaches_upstream("step4-upstream-buffer-filter", &early, |config| {
        config.replace_once(
            "          http_filters:\n          - name: signature\n",
            "          http_filters:\n          - name: envoy.filters.http.buffer\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer\n              max_request_bytes: 65536\n          - name: signature\n",
        )
    });
    assert_eq!(buffered.status, 401);
    assert!(
        !buffered.anything,
        "with the buffer filter, the upstream saw the refused request"
    );

    let naive = variants::build(
        STEP,
        "decide-at-the-end",
        &[naive::PASS_BODY_ON_WHILE_HASHING],
    );
    let naive_seen = what_reaches_upstream("step4-upstream-sees-body-naive", &naive, |_| {});
    assert!(
        naive_seen.first_piece_early,
        "naive: the first piece should have reached the upstream"
    );
    let yes = |b: bool| if b { "yes" } else { "no" };
    capture::check_or_update(
        "step-4-signed-body/what-reaches-upstream.txt",
        &format!(
            "a wrongly signed body in two pieces      answer  upstream got headers  upstream got body before the verdict\n\
             step 4                                   {}     {:<21} no\n\
             headers let go at once                   {}     {:<21} {}\n\
             ... behind Envoy's buffer filter         {}     {:<21} no\n\
             passing pieces on while hashing          {}     {:<21} {}\n",
            held.status, yes(held.anything),
            alone.status, yes(alone.anything), yes(alone.first_piece_early),
            buffered.status, yes(buffered.anything),
            naive_seen.status, yes(naive_seen.anything), yes(naive_seen.first_piece_early),
        ),
    );
}

/// With Envoy's buffer limit below the plugin's, Envoy answers before the
/// plugin has the whole body: its own 413 over HTTP/1.1. Over HTTP/2 the
/// stream's limit is not the connection's, and the same body passes.
#[test]
fn envoys_buffer_limit_below_the_plugins_limit() {
    let wasm = steps::build(STEP);
    let stack = start("step4-envoy-buffer-limit", &wasm, |config| {
        config.replace_once(
            "per_connection_buffer_limit_bytes: 1048576",
            "per_connection_buffer_limit_bytes: 32768",
        )
    });
    let timestamp = now();
    let body = body_of(40_000);
    let response = post(&stack, &signature(&timestamp, &body), &timestamp, &body);
    println!(
        "40000 bytes, HTTP/1.1: {} {:?}",
        response.status, response.body
    );
    assert_eq!(response.status, 413);
    assert_eq!(
        response.body, "Payload Too Large",
        "Envoy's answer, not the plugin's"
    );
    assert_eq!(verdicts(&stack).last().map(String::as_str), Some("Pending"));

    let output = curl_http2(&stack, &timestamp, &body, &[]);
    assert_eq!(output.0, "200", "HTTP/2: {}", output.1);
    capture::check_or_update(
        "step-4-signed-body/envoy-buffer-limit.txt",
        &format!(
            "per_connection_buffer_limit_bytes: 32768, max_body_bytes: 65536, a 40000-byte body\n\
             HTTP/1.1: {} {}, the plugin's verdict: {}\n\
             HTTP/2:   {}\n",
            response.status,
            response.body,
            verdicts(&stack)[0],
            output.0
        ),
    );
}

#[test]
fn a_refused_configuration_never_quotes_a_secret() {
    let wasm = steps::build(STEP);
    let secret = "whsec-misplaced-0123456789abcdef0123";
    for json in [
        format!(
            r#"{{"scheme":"custom","signature_header":"x-sig","secrets":"{secret}","max_body_bytes":10}}"#
        ),
        format!(
            r#"{{"scheme":"custom","signature_header":"x-sig","secrets":["short"],"max_body_bytes":"{secret}"}}"#
        ),
        format!(
            r#"{{"scheme":"custom","signature_header":"x-sig","secrets":["{secret}"],"{secret}":1,"max_body_bytes":10}}"#
        ),
    ] {
        let log =
            stack::start_with_refused_configuration("step4-refused-config", STEP, &wasm, &json);
        assert!(log.contains("rejected plugin configuration"), "{log}");
        assert!(
            !log.contains(&secret[..16]),
            "the log quotes the secret:\n{log}"
        );
    }
}

/// The redact-body example removes a field, so the body it passes on is
/// shorter than the client's `content-length`. It drops that header; the
/// naive variant keeps it, and the upstream waits for bytes that never
/// come until the route's timeout.
#[test]
fn a_replaced_body_needs_its_content_length_removed() {
    let body = br#"{"user":"ada","password":"correct horse battery staple"}"#;
    let wasm = steps::build_example(STEP, "redact-body");
    let stack = start("step4-redact-body", &wasm, |_| {});
    let first =
        http::request(stack.envoy.port, "POST", PATH, &[], body).expect("an answer from Envoy");
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(echoed_body(&first), r#"{"user":"ada"}"#);
    assert!(!first.body.contains("content-length"), "{}", first.body);

    let naive = variants::build_example(
        STEP,
        "redact-body",
        "keep-content-length",
        &[naive::KEEP_CONTENT_LENGTH],
    );
    let stack = start("step4-redact-body-naive", &naive, |config| {
        config.replace_once(
            "              - match: { prefix: \"/webhooks/\" }\n                route: { cluster: backend }",
            "              - match: { prefix: \"/webhooks/\" }\n                route: { cluster: backend, timeout: 1s }",
        )
    });
    let started = Instant::now();
    let response =
        http::request(stack.envoy.port, "POST", PATH, &[], body).expect("an answer from Envoy");
    let elapsed = started.elapsed();
    println!("naive: {} after {elapsed:?}", response.status);
    assert_eq!(response.status, 504, "{}", response.body);
    assert!(
        elapsed >= Duration::from_millis(950),
        "{elapsed:?}: not the route's 1 s timeout"
    );
    capture::check_or_update(
        "step-4-signed-body/content-length.txt",
        &format!(
            "content-length removed: {} {}\n\
             content-length kept:    {} {} (after the route's 1 s timeout)\n",
            first.status,
            echoed_body(&first),
            response.status,
            response.body
        ),
    );
}

/// A body that ends with trailers (HTTP/2 here) is complete in
/// `on_http_request_trailers`, not in a body callback with `end_of_stream`:
/// the redact example must rewrite it there, or the password goes on.
#[test]
fn the_redact_example_redacts_a_body_that_ends_with_trailers() {
    let body = br#"{"user":"ada","password":"correct horse battery staple"}"#;
    let wasm = steps::build_example(STEP, "redact-body");
    let stack = start("step4-redact-trailers", &wasm, |_| {});
    let response = harness::http2::post_with_trailers(
        stack.envoy.port,
        PATH,
        &[("content-type", b"application/json")],
        body,
        3,
        &[("x-delivery-checksum", "abc")],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(echoed_body(&response), r#"{"user":"ada"}"#);
}

/// Step 4's `Pause` at the headers without `allow_on_headers_stop_iteration`:
/// Envoy turns it into "stop all iteration", the body is buffered by Envoy,
/// not handed to the plugin, and the request hangs until the stream idle
/// timeout (5 minutes by default, 1 s here).
#[test]
fn pausing_at_the_headers_without_the_setting_holds_the_body_back_from_the_plugin() {
    let wasm = steps::build(STEP);
    let stack = start("step4-pause-without-allow", &wasm, |config| {
        let patch = naive::NO_STOP_ITERATION_ALLOWED;
        config.replace_once(patch.from, patch.to);
        config.replace_once(
            "stat_prefix: ingress\n",
            "stat_prefix: ingress\n          stream_idle_timeout: 1s\n",
        )
    });
    let timestamp = now();
    let body = b"{}";
    let started = Instant::now();
    let response = post(&stack, &signature(&timestamp, body), &timestamp, body);
    let elapsed = started.elapsed();
    assert_eq!(response.status, 504, "{}", response.body);
    assert!(elapsed >= Duration::from_millis(950), "{elapsed:?}");
    assert_eq!(verdicts(&stack), ["Pending"], "the body callback ran");
    capture::check_or_update(
        "step-4-signed-body/pause-at-headers.txt",
        &format!(
            "{} {} after the 1 s stream idle timeout, the plugin's verdict: {}\n",
            response.status,
            response.body,
            verdicts(&stack)[0]
        ),
    );
}

/// Two readings of one body's length are refused before any filter runs:
/// Envoy's HTTP/1.1 codec answers 400, so the plugin never has to choose.
#[test]
fn conflicting_lengths_are_refused_by_envoy() {
    use std::io::{Read, Write};
    let stack = Stack::step("step4-conflicting-lengths", STEP, 1);
    for (name, framing) in [
        (
            "content-length and transfer-encoding",
            "content-length: 5\r\ntransfer-encoding: chunked\r\n",
        ),
        (
            "two different content-lengths",
            "content-length: 5\r\ncontent-length: 6\r\n",
        ),
    ] {
        let mut stream =
            std::net::TcpStream::connect(("127.0.0.1", stack.envoy.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("a read timeout");
        let request = format!(
            "POST {PATH} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n{framing}\r\n5\r\nhello\r\n0\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).expect("send");
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{name}: {answer}");
    }
    // Envoy answers through the filter chain, so the plugin logs each
    // request, but its header callback never ran: no decision was made.
    assert_eq!(verdicts(&stack), ["Pending", "Pending"]);
}

/// The in-process tests' cases and their sender
/// (code/step-4-signed-body/tests/in_process/), the same data, signed the
/// same way, sent through Envoy as each case says it arrives (whole over
/// HTTP/1.1 with a length, chunked, or over HTTP/2 with trailers): each
/// gets the answer it gets from the module in a host library.
#[path = "../../code/step-4-signed-body/tests/in_process/cases.rs"]
mod cases;
#[path = "../../code/step-4-signed-body/tests/in_process/sender.rs"]
mod sender;

#[test]
fn the_in_process_cases_get_the_same_answers_through_envoy() {
    use cases::{Arrival, Expected};
    let stack = Stack::step("step4-in-process-cases", STEP, 2);
    let port = stack.envoy.port;
    for case in cases::CASES {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_secs();
        let (headers, body) = sender::request(case, now);
        let headers: Vec<(&str, &[u8])> = headers
            .iter()
            .filter(|(name, _)| name != "content-length")
            .map(|(name, value)| (name.as_str(), value.as_slice()))
            .collect();
        let response = match case.arrival {
            Arrival::Whole => {
                http::request(port, "POST", PATH, &headers, &body).map_err(|e| e.to_string())
            }
            Arrival::Pieces(size) => ChunkedRequest::start(port, PATH, &headers)
                .and_then(|mut request| {
                    for piece in body.chunks(size) {
                        request.send_chunk(piece)?;
                    }
                    request.finish(&[])
                })
                .map_err(|e| e.to_string()),
            Arrival::WithTrailers => harness::http2::post_with_trailers(
                port,
                PATH,
                &headers,
                &body,
                1,
                &[("x-trailer", "done")],
            ),
        };
        let response = response.unwrap_or_else(|e| panic!("{}: {e}", case.name));
        match case.expected {
            Expected::Refused(status, text) => {
                assert_eq!(u32::from(response.status), status, "{}", case.name);
                assert!(
                    response.body.contains(text),
                    "{}: {}",
                    case.name,
                    response.body
                );
            }
            Expected::Passed => {
                assert_eq!(response.status, 200, "{}: {}", case.name, response.body);
                assert!(
                    response.body.contains(r#""path":"/webhooks/github""#),
                    "{}",
                    case.name
                );
            }
        }
    }
}
