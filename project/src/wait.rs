//! Waiting for something to happen by polling it: a server to get ready, a
//! statistic to reach a value. Every wait in the project goes through here,
//! so each has a deadline and none sleeps longer than it must.

use std::time::{Duration, Instant};

/// How often a condition is polled.
pub const EVERY: Duration = Duration::from_millis(20);

/// Polls `ready` until it gives `Some(value)`; `None` once `timeout` has
/// passed without.
pub fn poll<T>(timeout: Duration, mut ready: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = ready() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(EVERY);
    }
}

/// Polls `done` until it holds; whether it did within `timeout`.
pub fn until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    poll(timeout, || done().then_some(())).is_some()
}

/// How waiting for a process to get ready ended.
#[derive(Debug, PartialEq)]
pub enum Ready {
    Yes,
    /// The process exited first; its exit status.
    Exited(String),
    TimedOut,
}

/// Polls `ready` until it holds, unless `exited` first reports the process
/// gone (with its exit status) or `timeout` passes.
pub fn for_process(
    timeout: Duration,
    mut exited: impl FnMut() -> Option<String>,
    mut ready: impl FnMut() -> bool,
) -> Ready {
    poll(timeout, || {
        if ready() {
            Some(Ready::Yes)
        } else {
            exited().map(Ready::Exited)
        }
    })
    .unwrap_or(Ready::TimedOut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_until_ready_or_the_deadline() {
        let mut calls = 0;
        assert_eq!(
            poll(Duration::from_secs(5), || {
                calls += 1;
                (calls == 3).then_some(calls)
            }),
            Some(3)
        );
        let started = Instant::now();
        assert!(!until(Duration::from_millis(100), || false));
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert_eq!(
            for_process(Duration::from_secs(5), || Some("1".into()), || false),
            Ready::Exited("1".into())
        );
        assert_eq!(
            for_process(Duration::from_millis(50), || None, || false),
            Ready::TimedOut
        );
    }
}
