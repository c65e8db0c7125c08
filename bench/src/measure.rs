//! Measuring Envoy's CPU time per request: a fixed number of requests from
//! h2load, and Envoy's CPU time (all threads, in nanoseconds) read from
//! /proc before and after. Throughput is not measured: on a 2-core machine
//! the load generator and Envoy share the cores, so requests per second say
//! more about the machine than about the filter.

use std::process::Command;

/// The CPU time all of a process's threads have run, in nanoseconds: the
/// first field of `/proc/<pid>/task/<tid>/schedstat`, summed. Unlike
/// `/proc/<pid>/stat`, which counts in clock ticks of 10 ms, this resolves
/// the microsecond differences between plugins.
pub fn cpu_ns(pid: u32) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("read /proc/<pid>/task");
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Sends `requests` requests to `url` with h2load over HTTP/1.1 (4
/// connections): GETs, or what `extra` (more h2load arguments: a body file
/// with `-d`, headers) makes them. Returns the CPU microseconds per request
/// of each process in `pids` (Envoy first, then the services a plugin
/// calls). Panics when any request did not get a 2xx, so a misconfigured
/// filter cannot pass for a fast one.
pub fn cpu_us_per_request(pids: &[u32], url: &str, requests: u64, extra: &[String]) -> Vec<f64> {
    let before: Vec<u64> = pids.iter().map(|&pid| cpu_ns(pid)).collect();
    let output = Command::new("h2load")
        .args(["--h1", "-c", "4", "-n", &requests.to_string()])
        .args(["-H", &format!("x-api-key: {}", super::configs::REQUEST_KEY)])
        .args(extra)
        .arg(url)
        .output()
        .expect("run h2load (apt-get install nghttp2-client)");
    let after: Vec<u64> = pids.iter().map(|&pid| cpu_ns(pid)).collect();
    let text = String::from_utf8_lossy(&output.stdout);
    let expected = format!("status codes: {requests} 2xx");
    assert!(
        text.contains(&expected),
        "h2load against {url}: not every request got 2xx:\n{text}"
    );
    after
        .iter()
        .zip(&before)
        .map(|(after, before)| after.saturating_sub(*before) as f64 / 1e3 / requests as f64)
        .collect()
}

/// Median and (min, max) of a sample.
pub fn summary(samples: &[f64]) -> (f64, f64, f64) {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    (median, sorted[0], sorted[n - 1])
}
