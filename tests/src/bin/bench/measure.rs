//! Measuring Envoy's CPU time per request: a fixed number of requests from
//! h2load, and Envoy's CPU time (user + system, all threads) read from
//! /proc before and after. Throughput is not measured: on a 2-core machine
//! the load generator and Envoy share the cores, so requests per second say
//! more about the machine than about the filter.

use std::process::Command;

/// Clock ticks per second for /proc/<pid>/stat (`getconf CLK_TCK`).
pub fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of a process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/<pid>/stat");
    // The command name is in parentheses and may contain spaces: count fields
    // after the last ')'. utime and stime are fields 14 and 15 (1-based).
    let after = &stat[stat.rfind(')').expect("stat has a command name") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields[11].parse().expect("utime");
    let stime: u64 = fields[12].parse().expect("stime");
    utime + stime
}

/// Sends `requests` requests to `url` with h2load over HTTP/1.1 (4
/// connections): GETs, or what `extra` (more h2load arguments: a body file
/// with `-d`, headers) makes them. Returns Envoy's CPU microseconds per
/// request. Panics when any request did not get a 2xx, so a misconfigured
/// filter cannot pass for a fast one.
pub fn cpu_us_per_request(
    envoy_pid: u32,
    url: &str,
    requests: u64,
    ticks_per_second: f64,
    extra: &[String],
) -> f64 {
    let before = cpu_ticks(envoy_pid);
    let output = Command::new("h2load")
        .args(["--h1", "-c", "4", "-n", &requests.to_string()])
        .args(["-H", &format!("x-api-key: {}", super::configs::REQUEST_KEY)])
        .args(extra)
        .arg(url)
        .output()
        .expect("run h2load (apt-get install nghttp2-client)");
    let after = cpu_ticks(envoy_pid);
    let text = String::from_utf8_lossy(&output.stdout);
    let expected = format!("status codes: {requests} 2xx");
    assert!(
        text.contains(&expected),
        "h2load against {url}: not every request got 2xx:\n{text}"
    );
    (after - before) as f64 / ticks_per_second * 1e6 / requests as f64
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
