//! Sending many requests at once: `in_flight` threads share one list of
//! requests, each taking the next until none are left.

use crate::http;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Sends a GET to `path` with one header for each entry of `header_values`,
/// `in_flight` at a time. Returns (header value, status) per request, in no
/// particular order; a request that got no answer has status 0.
pub fn concurrent_gets(
    port: u16,
    path: &str,
    header_name: &str,
    header_values: &[&str],
    in_flight: usize,
) -> Vec<(String, u16)> {
    concurrent_gets_across(&[port], path, header_name, header_values, in_flight)
}

/// `concurrent_gets` spread over several proxies, as a load balancer
/// spreads them: request `i` goes to `ports[i % ports.len()]`.
pub fn concurrent_gets_across(
    ports: &[u16],
    path: &str,
    header_name: &str,
    header_values: &[&str],
    in_flight: usize,
) -> Vec<(String, u16)> {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(header_values.len()));
    std::thread::scope(|scope| {
        for _ in 0..in_flight {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(value) = header_values.get(index) else {
                    break;
                };
                let port = ports[index % ports.len()];
                let status = http::get(port, path, &[(header_name, value.as_bytes())])
                    .map(|response| response.status)
                    .unwrap_or(0);
                results
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .push((value.to_string(), status));
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How many results for `value` have `status`.
pub fn count(results: &[(String, u16)], value: &str, status: u16) -> usize {
    results
        .iter()
        .filter(|(v, s)| v == value && *s == status)
        .count()
}
