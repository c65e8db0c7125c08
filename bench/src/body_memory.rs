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

pub fn measure(wasm: &Path, quick: bool) -> Value {
    let json = json!({
        "scheme": "custom",
        "signature_header": "x-signature-256",
        "secrets": ["bench-secret-0123456789abcdef0123456789"],
        "max_body_bytes": 1_048_576,
    })
    .to_string();
    let stack = Stack::start(
        "bench-body-memory",
        "step-4-signed-body",
        wasm,
        2,
        |config| config.set_plugin_configuration(&json),
    )
    .unwrap_or_else(|log| panic!("{log}"));
    let pid = stack.envoy.server.pid();
    let steps: &[usize] = if quick { &[0, 2] } else { &[0, 25, 50, 100] };
    let chunk = vec![b'x'; 100_000];
    let signature = format!("sha256={}", "0".repeat(64));
    let headers = [("x-signature-256", signature.as_bytes())];
    let mut open: Vec<ChunkedRequest> = Vec::new();
    let mut rows = Vec::new();
    let (start_rss, start_heap) = (resident_bytes(pid), heap_bytes(&stack));
    for &count in steps {
        while open.len() < count {
            let mut request = ChunkedRequest::start(stack.envoy.port, "/webhooks/bench", &headers)
                .expect("connect to Envoy");
            for _ in 0..BODY_BYTES / chunk.len() {
                request
                    .send_chunk(&chunk)
                    .expect("send a piece of the body");
            }
            open.push(request);
        }
        // Every byte sent has been read by Envoy before memory is read; a
        // measurement of less is not recorded.
        let expected = (count * BODY_BYTES) as u64;
        let arrived = project::wait::until(Duration::from_secs(30), || {
            received_bytes(&stack) >= expected
        });
        assert!(
            arrived,
            "{count} bodies: Envoy read {} of {expected} bytes within 30 s",
            received_bytes(&stack)
        );
        let (rss, heap) = (resident_bytes(pid), heap_bytes(&stack));
        rows.push(json!({
            "bodies": count,
            "resident_mib": (rss as f64) / 1_048_576.0,
            "heap_mib": (heap as f64) / 1_048_576.0,
            "resident_added_mib": (rss.saturating_sub(start_rss) as f64) / 1_048_576.0,
            "heap_added_mib": (heap.saturating_sub(start_heap) as f64) / 1_048_576.0,
        }));
    }
    drop(open);
    json!(rows)
}
