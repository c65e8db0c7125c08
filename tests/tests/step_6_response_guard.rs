//! Step 6 (JSON responses rewritten on their way out) on a live Envoy: the
//! check script, what holding the headers needs, what deciding after they
//! went costs, Envoy's own buffer limit, and a response with trailers.

use harness::capture;
use harness::envoy::EnvoyConfig;
use harness::stack::Stack;
use harness::steps;
use harness::variants::{self, naive};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const STEP: &str = "step-6-response-guard";

fn start(test_name: &str, wasm: &Path, edit: impl FnOnce(&mut EnvoyConfig)) -> Stack {
    Stack::start(test_name, STEP, wasm, 2, edit).unwrap_or_else(|log| panic!("{log}"))
}

/// `curl -s -i` of `path` with `args`: the exit code and the answer.
fn curl(stack: &Stack, path: &str, args: &[&str]) -> (i32, String) {
    let output = Command::new("curl")
        .args(["-s", "-i", "-m", "10"])
        .args(args)
        .arg(format!("{}{path}", stack.base_url()))
        .output()
        .expect("run curl");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).replace('\r', ""),
    )
}

fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or_default()
}

fn verdicts(stack: &Stack) -> Vec<String> {
    stack
        .envoy
        .log()
        .lines()
        .filter_map(|line| {
            line.split_once("response completed, verdict ")
                .map(|(_, v)| v.to_owned())
        })
        .collect()
}

#[test]
fn check_script_passes_and_matches_the_book() {
    let stack = Stack::step("step6-check-script", STEP, 2);
    let (passed, output) = stack.run_check_script(STEP);
    assert!(passed, "check.sh failed:\n{output}");
    // The chapter shows `bash check.sh | tail -n 1`: the verdict.
    capture::check_or_update(
        "step-6-response-guard/check.txt",
        &capture::last_lines(&output, 1),
    );
    // No field value the plugin removed ever reaches Envoy's log.
    let log = stack.envoy.log();
    assert!(
        !log.contains("078-05-1120"),
        "the log holds a removed value"
    );
    assert!(verdicts(&stack).iter().any(|v| v == "Redacted(3)"), "{log}");
}

/// Without `allow_on_headers_stop_iteration`, a `Pause` from the response
/// headers callback makes Envoy hold the body back from the plugin too: no
/// body callback, no answer until the stream idle timeout (1 s here).
#[test]
fn pausing_the_response_headers_needs_allow_on_headers_stop_iteration() {
    let wasm = steps::build(STEP);
    let stack = start("step6-without-allow", &wasm, |config| {
        config.replace_once(
            "allow_on_headers_stop_iteration: true",
            "allow_on_headers_stop_iteration: false",
        );
        config.replace_once(
            "stat_prefix: ingress\n",
            "stat_prefix: ingress\n          stream_idle_timeout: 1s\n",
        );
    });
    let started = Instant::now();
    let (code, answer) = curl(&stack, "/users/7", &[]);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(950),
        "{elapsed:?}: {answer}"
    );
    assert!(!answer.contains("Ada"), "the response went out: {answer}");
    capture::check_or_update(
        "step-6-response-guard/without-allow.txt",
        &format!(
            "allow_on_headers_stop_iteration: false, a JSON response:\n\
             after the 1 s stream idle timeout: {:?} (curl exit code {code}), the plugin's verdict: {}\n",
            status_line(&answer),
            verdicts(&stack).join(", ")
        ),
    );
}

/// A guard that lets the headers go and decides at the end of the body
/// cannot refuse any more: the client already has `200 OK`, and all Envoy
/// can do with the plugin's refusal is reset the stream.
#[test]
fn deciding_after_the_headers_went_cannot_refuse() {
    let wasm = steps::build(STEP);
    let late = variants::build(
        STEP,
        "decide-after-the-headers",
        &[
            naive::LET_RESPONSE_HEADERS_GO,
            naive::NO_LENGTH_AFTER_THE_HEADERS,
        ],
    );
    let mut table =
        String::from("a truncated JSON response       status line               curl exit code\n");
    for (name, module) in [("step 6", &wasm), ("headers let go first", &late)] {
        let stack = start(&format!("step6-decide-late-{}", name.len()), module, |_| {});
        let (code, answer) = curl(&stack, "/users/7/broken", &[]);
        assert!(!answer.contains("password_hash"), "{name}: {answer}");
        let line = status_line(&answer).to_owned();
        if name == "step 6" {
            assert_eq!(line, "HTTP/1.1 502 Bad Gateway", "{answer}");
            assert_eq!(code, 0);
        } else {
            assert_eq!(line, "HTTP/1.1 200 OK", "{answer}");
            assert_ne!(code, 0, "curl saw a complete response: {answer}");
        }
        table.push_str(&format!("{name:<31} {line:<25} {code}\n"));
    }
    capture::check_or_update("step-6-response-guard/decide-late.txt", &table);
}

/// Setting a response header after the headers went is an error status
/// from Envoy, and the SDK's `set_http_response_header` panics on it: the
/// VM crashes, and its worker answers 503 until Envoy has reloaded it.
#[test]
fn changing_a_header_after_the_headers_went_crashes_the_vm() {
    let late = variants::build(
        STEP,
        "header-after-the-headers",
        &[naive::LET_RESPONSE_HEADERS_GO],
    );
    let stack = Stack::start("step6-header-late", STEP, &late, 1, |_| {})
        .unwrap_or_else(|log| panic!("{log}"));
    // The 503s last until Envoy has loaded a new VM, about a second: on a
    // loaded machine the next request can come after that. Up to three
    // tries, a crash each, each given the time to reload first.
    let (mut code, mut answer, mut next) = (0, String::new(), String::new());
    for attempt in 0..3 {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_secs(2));
        }
        (code, answer) = curl(&stack, "/users/7", &[]);
        assert!(!answer.contains("password_hash"), "{answer}");
        next = curl(&stack, "/users/7", &[]).1;
        if status_line(&next) == "HTTP/1.1 503 Service Unavailable" {
            break;
        }
    }
    let log = stack.envoy.log();
    assert!(log.contains("panicked"), "no panic in the log:\n{log}");
    capture::check_or_update(
        "step-6-response-guard/header-after-the-headers.txt",
        &format!(
            "first response: {:?}, curl exit code {code}\nthe next one: {:?}\n",
            status_line(&answer),
            status_line(&next)
        ),
    );
}

/// The plugin's limit above Envoy's buffer: over HTTP/1.1, Envoy refuses
/// the response itself (500) once it holds more than
/// `per_connection_buffer_limit_bytes`, before the plugin has all of it;
/// over HTTP/2, whose streams Envoy limits with flow-control windows
/// instead, the plugin gets the whole body and rewrites it. Either way no
/// unredacted byte leaves.
#[test]
fn envoys_buffer_limit_refuses_over_http1_and_not_over_http2() {
    let wasm = steps::build(STEP);
    let stack = start("step6-envoy-buffer", &wasm, |config| {
        config.replace_once(
            "per_connection_buffer_limit_bytes: 1048576",
            "per_connection_buffer_limit_bytes: 32768",
        );
    });
    let mut text = String::from(
        "per_connection_buffer_limit_bytes: 32768, max_body_bytes: 65536, a 40000-byte JSON response\n",
    );
    for (n, (name, args, expected, verdict)) in [
        (
            "HTTP/1.1",
            &[][..],
            "HTTP/1.1 500 Internal Server Error",
            "Pending",
        ),
        (
            "HTTP/2",
            &["--http2-prior-knowledge"][..],
            "HTTP/2 200 ",
            "Redacted(1)",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let (code, answer) = curl(&stack, "/sized/40000", args);
        assert!(
            !answer.contains("078-05-1120"),
            "{name}: the body went out: {answer}"
        );
        assert_eq!(
            (status_line(&answer), code),
            (expected, 0),
            "{name}: {answer}"
        );
        // The verdict is logged when the stream ends, just after curl's.
        project::wait::until(Duration::from_secs(2), || verdicts(&stack).len() > n);
        assert_eq!(
            verdicts(&stack).get(n).map(String::as_str),
            Some(verdict),
            "{name}"
        );
        text.push_str(&format!(
            "{name}: {:?} (curl exit code {code}), the plugin's verdict: {verdict}\n",
            status_line(&answer),
        ));
    }
    capture::check_or_update("step-6-response-guard/envoy-buffer-limit.txt", &text);
}

/// An upstream that answers every request with one HTTP/1.1 response: a
/// chunked JSON body followed by trailers.
struct TrailerUpstream {
    port: u16,
}

impl TrailerUpstream {
    fn start() -> TrailerUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("its address").port();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let body = br#"{"id":7,"ssn":"078-05-1120","name":"Ada"}"#;
                let mut answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
                answer.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
                answer.extend_from_slice(body);
                answer.extend_from_slice(b"\r\n0\r\nx-checksum: 1234\r\n\r\n");
                let _ = stream.write_all(&answer);
            }
        });
        TrailerUpstream { port }
    }
}

/// A response body followed by trailers ends in the trailers callback, not
/// with `end_of_stream` in the body callback: without that callback, the
/// SDK's default `Continue` sends the held body on unredacted.
#[test]
fn a_response_with_trailers_is_redacted_in_the_trailers_callback() {
    let wasm = steps::build(STEP);
    let naive = variants::build(
        STEP,
        "no-response-trailers-callback",
        &[naive::NO_RESPONSE_TRAILERS_CALLBACK],
    );
    let upstream = TrailerUpstream::start();
    let mut table = String::from("a JSON response with trailers   ssn in what the client got\n");
    for (name, module) in [("step 6", &wasm), ("no trailers callback", &naive)] {
        let stack = start(
            &format!("step6-trailers-{}", name.len()),
            module,
            |config| {
                config.set_backend_port(upstream.port);
                // Envoy drops HTTP/1.1 trailers unless the codec is told to
                // keep them.
                config.replace_once(
                "  - name: backend\n    connect_timeout: 1s\n",
                "  - name: backend\n    connect_timeout: 1s\n    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        explicit_http_config:\n          http_protocol_options: { enable_trailers: true }\n",
            );
            },
        );
        let (code, answer) = curl(&stack, "/users/7", &["--http2-prior-knowledge"]);
        assert_eq!(code, 0, "{name}: {answer}");
        assert!(answer.contains("\"name\":\"Ada\""), "{name}: {answer}");
        let leaked = answer.contains("078-05-1120");
        assert_eq!(leaked, name != "step 6", "{name}: {answer}");
        table.push_str(&format!(
            "{name:<31} {}\n",
            if leaked { "yes" } else { "no" }
        ));
    }
    capture::check_or_update("step-6-response-guard/trailers.txt", &table);
}
