//! What buffering bodies costs in memory: step 4 holds each request's body
//! in Envoy until the whole of it has arrived. Requests that send 1 MB and
//! never finish are opened in steps, and Envoy's resident memory and heap
//! (the admin `/memory` endpoint) read after each step.

use harness::http::ChunkedRequest;
use harness::stack::Stack;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const BODY_BYTES: usize = 1_000_000;

/// Envoy's resident set size, from /proc.
pub fn resident_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Bytes the allocator has handed out (`allocated` in `/memory`).
fn heap_bytes(stack: &Stack) -> u64 {
    let memory: Value = serde_json::from_str(&stack.envoy.admin("/memory")).unwrap_or_default();
    memory["allocated"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Received body bytes the listener has read, from its stats.
fn received_bytes(stack: &Stack) -> u64 {
    stack
        .envoy
        .stat("http.ingress.downstream_cx_rx_bytes_total")
        .unwrap_or(0)
}

pub fn measure(step: &str, wasm: &Path, quick: bool) -> Value {
    let json = json!({
        "scheme": "custom",
        "signature_header": "x-signature-256",
        "secrets": ["bench-secret-0123456789abcdef0123456789"],
        "max_body_bytes": 1_048_576,
    })
    .to_string();
    let stack = Stack::start("bench-body-memory", step, wasm, 2, |config| {
        config.set_plugin_configuration(&json)
    })
    .unwrap_or_else(|log| panic!("{log}"));
    let chunk = vec![b'x'; 100_000];
    let signature = format!("sha256={}", "0".repeat(64));
    let headers = [("x-signature-256", signature.as_bytes())];
    pile_up(&stack, quick, "bodies", BODY_BYTES, received_bytes, || {
        let mut request = ChunkedRequest::start(stack.envoy.port, "/webhooks/bench", &headers)
            .expect("connect to Envoy");
        for _ in 0..BODY_BYTES / chunk.len() {
            request
                .send_chunk(&chunk)
                .expect("send a piece of the body");
        }
        request
    })
}

/// Opens held requests in steps (0, 25, 50 and 100 of them; 0 and 2 in
/// quick mode) with `open_one`, waits until Envoy has read `bytes_each`
/// for every one (`read` says how much it has read), and reads its memory
/// after each step: a row per step, with the count under `what`.
fn pile_up<T>(
    stack: &Stack,
    quick: bool,
    what: &str,
    bytes_each: usize,
    read: impl Fn(&Stack) -> u64,
    mut open_one: impl FnMut() -> T,
) -> Value {
    let pid = stack.envoy.server.pid();
    let steps: &[usize] = if quick { &[0, 2] } else { &[0, 25, 50, 100] };
    let mut open: Vec<T> = Vec::new();
    let mut rows = Vec::new();
    let (start_rss, start_heap) = (resident_bytes(pid), heap_bytes(stack));
    for &count in steps {
        while open.len() < count {
            open.push(open_one());
        }
        // Every byte sent has been read by Envoy before memory is read; a
        // measurement of less is not recorded.
        let expected = (count * bytes_each) as u64;
        let arrived = project::wait::until(Duration::from_secs(30), || read(stack) >= expected);
        assert!(
            arrived,
            "{count} {what}: Envoy read {} of {expected} bytes within 30 s",
            read(stack)
        );
        let (rss, heap) = (resident_bytes(pid), heap_bytes(stack));
        rows.push(json!({
            what: count,
            "resident_mib": (rss as f64) / 1_048_576.0,
            "heap_mib": (heap as f64) / 1_048_576.0,
            "resident_added_mib": (rss.saturating_sub(start_rss) as f64) / 1_048_576.0,
            "heap_added_mib": (heap.saturating_sub(start_heap) as f64) / 1_048_576.0,
        }));
    }
    drop(open);
    json!(rows)
}

/// How much of a JSON response the held backend sends before it stalls:
/// under step 6's `max_body_bytes` here and under Envoy's 1 MiB buffer
/// limit, so Envoy holds it rather than refusing it.
const RESPONSE_BYTES: usize = 500_000;

/// An upstream whose every response is JSON that never ends: headers and
/// `RESPONSE_BYTES` of body, then nothing, its connection held open until
/// the backend is dropped. Step 6 holds a JSON response until its end, so
/// each such response stays in Envoy.
struct HeldBackend {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HeldBackend {
    fn start() -> HeldBackend {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener =
            std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind the held backend");
        let port = listener.local_addr().expect("its port").port();
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            let chunk = format!("{:x}\r\n{}\r\n", 100_000, "x".repeat(100_000));
            while !stopping.load(Ordering::SeqCst) {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let mut request = Vec::new();
                let mut byte = [0u8; 1];
                while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                    request.push(byte[0]);
                }
                let mut answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                    transfer-encoding: chunked\r\n\r\n"
                    .to_vec();
                for _ in 0..RESPONSE_BYTES / 100_000 {
                    answer.extend_from_slice(chunk.as_bytes());
                }
                let _ = stream.write_all(&answer);
                held.push(stream);
            }
        });
        HeldBackend {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for HeldBackend {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Response body bytes Envoy has read from upstreams, from its stats.
fn upstream_received_bytes(stack: &Stack) -> u64 {
    stack
        .envoy
        .stat("cluster.backend.upstream_cx_rx_bytes_total")
        .unwrap_or(0)
}

/// Step 6 holding concurrent JSON responses of `RESPONSE_BYTES` that never
/// end: Envoy's memory after each step, as `measure` does for step 4.
pub fn measure_responses(step: &str, wasm: &Path, quick: bool) -> Value {
    let json = json!({
        "remove_fields": ["password_hash"],
        "max_body_bytes": 1_000_000,
    })
    .to_string();
    let backend = HeldBackend::start();
    let stack = Stack::start("bench-response-memory", step, wasm, 2, |config| {
        config.set_plugin_configuration(&json);
        config.set_backend_port(backend.port);
    })
    .unwrap_or_else(|log| panic!("{log}"));
    let rows = pile_up(
        &stack,
        quick,
        "responses",
        RESPONSE_BYTES,
        upstream_received_bytes,
        || {
            use std::io::Write;
            let mut client =
                std::net::TcpStream::connect(("127.0.0.1", stack.envoy.port)).expect("connect");
            client
                .write_all(b"GET /api/users HTTP/1.1\r\nhost: bench\r\n\r\n")
                .expect("send a request");
            client
        },
    );
    // Envoy first, then the backend it holds connections to.
    drop(stack);
    drop(backend);
    rows
}
