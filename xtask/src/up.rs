//! `cargo xtask up <step>`: the step running on the book's ports, in the
//! foreground, so you can curl it by hand. Ctrl-C (or SIGTERM) stops
//! everything: each server is killed by its PID on the way out.

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
    let example = root().join("examples").join(step).join("envoy.yaml");
    if !step_dir.is_dir() || !example.is_file() {
        return Err(format!(
            "unknown step `{step}` (expected code/{step} and examples/{step}/envoy.yaml)"
        ));
    }
    tools::ensure_wasm_target()?;
    tools::ensure_envoy()?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .map_err(|e| format!("cannot handle Ctrl-C: {e}"))?;

    run::step(&format!("building code/{step}"));
    steps::build(&step_dir)?;
    run::cargo(
        &[
            "build",
            "--quiet",
            "--package",
            "backend",
            "--package",
            "auth-service",
        ],
        None,
    )?;

    run::step("starting the echo backend on 127.0.0.1:3000");
    let backend = Command::new(root().join("target/debug/backend"))
        .arg("3000")
        .spawn()
        .map_err(|e| format!("cannot start the backend: {e}"))?;
    let mut servers = vec![Running(backend)];

    // A step whose example has a keys file talks to the auth service.
    let keys = root().join("examples").join(step).join("keys.txt");
    if keys.is_file() {
        run::step(
            "starting the auth service on 127.0.0.1:3001 (keys from examples/<step>/keys.txt)",
        );
        let auth = Command::new(root().join("target/debug/auth-service"))
            .arg("3001")
            .arg(&keys)
            .spawn()
            .map_err(|e| format!("cannot start the auth service: {e}"))?;
        servers.push(Running(auth));
    }

    run::step("starting Envoy: listener 127.0.0.1:8080, admin 127.0.0.1:9091");
    let envoy = Command::new(tools::envoy_binary()?)
        .arg("-c")
        .arg(&example)
        .args(["--concurrency", "2", "--component-log-level", "wasm:debug"])
        .current_dir(root())
        .spawn()
        .map_err(|e| format!("cannot start Envoy: {e}"))?;
    servers.push(Running(envoy));

    run::step("waiting for Envoy to be ready (GET :9091/ready)");
    let started = Instant::now();
    let mut announced = false;
    while !stop.load(Ordering::SeqCst) {
        for server in servers.iter_mut() {
            if let Ok(Some(status)) = server.0.try_wait() {
                return Err(format!("a server exited ({status}); see its output above"));
            }
        }
        if !announced && ready() {
            announced = true;
            eprintln!(
                "==> ready after {:.1} s. Try:\n      curl -i http://127.0.0.1:8080/api/users -H 'X-API-Key: key-abc123'\n      BASE_URL=http://127.0.0.1:8080 examples/{step}/check.sh\n    Ctrl-C stops everything.",
                started.elapsed().as_secs_f32()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    run::step("stopping the servers");
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
