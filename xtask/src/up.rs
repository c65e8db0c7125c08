//! `cargo xtask up <step>`: the step running on the book's ports, in the
//! foreground, so you can curl it by hand. Ctrl-C (or SIGTERM) stops
//! Envoy, by its PID, on the way out.

use crate::run::{self, root};
use crate::{steps, tools, Result};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Kills the child by PID when dropped, so no early return leaves it running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(step: &str) -> Result {
    let step_dir = root().join("code").join(step);
    if !step_dir.join("envoy.yaml").is_file() {
        return Err(format!(
            "unknown step `{step}` (expected code/{step}/envoy.yaml)"
        ));
    }
    tools::ensure_envoy()?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .map_err(|e| format!("cannot handle Ctrl-C: {e}"))?;

    run::step(&format!("building code/{step}"));
    steps::build(&step_dir)?;

    // The step's folder is the working directory, as in its README: the
    // config names the .wasm relative to it. The echo backend (and step 3's
    // auth service) are listeners in the same config.
    run::step(&format!(
        "starting Envoy in code/{step}: listener 127.0.0.1:8080, admin 127.0.0.1:9091, echo backend 127.0.0.1:3000"
    ));
    let envoy = Command::new(tools::envoy_binary()?)
        .args(["-c", "envoy.yaml", "--concurrency", "2"])
        .args(["--component-log-level", "wasm:debug"])
        .current_dir(&step_dir)
        .spawn()
        .map_err(|e| format!("cannot start Envoy: {e}"))?;
    let mut envoy = Running(envoy);

    run::step("waiting for Envoy to be ready (GET :9091/ready)");
    let started = Instant::now();
    let mut announced = false;
    while !stop.load(Ordering::SeqCst) {
        if let Ok(Some(status)) = envoy.0.try_wait() {
            return Err(format!("Envoy exited ({status}); see its output above"));
        }
        if !announced && ready() {
            announced = true;
            eprintln!(
                "==> ready after {:.1} s. In a second terminal, try:\n      curl -i http://127.0.0.1:8080/api/users -H 'X-API-Key: key-abc123'\n      bash code/{step}/check.sh\n    Ctrl-C here stops Envoy.",
                started.elapsed().as_secs_f32()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    run::step("stopping Envoy");
    Ok(())
}

/// `GET /ready` on the admin port answers 200 once Envoy serves traffic.
fn ready() -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", 9091)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"GET /ready HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200")
}
