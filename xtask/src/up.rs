//! `cargo xtask up <step>`: the step running on the book's ports, in the
//! foreground, so you can curl it by hand. Ctrl-C (or SIGTERM) stops
//! Envoy, by its PID, on the way out.

use crate::run;
use crate::run::Result;
use crate::{steps, tools};
use project::ports;
use project::step::Step;
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

pub fn run(name: &str) -> Result {
    let step = Step::named(name)?;
    tools::ensure_envoy()?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .map_err(|e| format!("cannot handle Ctrl-C: {e}"))?;

    run::step(&format!("building code/{name}"));
    steps::build(&step)?;

    // The step's folder is the working directory, as in its README: the
    // config names the .wasm relative to it. The echo backend (and step 3's
    // auth service) are listeners in the same config.
    run::step(&format!(
        "starting Envoy in code/{name}: listener 127.0.0.1:{}, admin 127.0.0.1:{}, echo backend 127.0.0.1:{}",
        ports::LISTENER,
        ports::ADMIN,
        ports::ECHO_BACKEND
    ));
    let envoy = Command::new(project::envoy::binary()?)
        .args(["-c", "envoy.yaml", "--concurrency", "2"])
        .args(["--component-log-level", "wasm:debug"])
        .current_dir(&step.dir)
        .spawn()
        .map_err(|e| format!("cannot start Envoy: {e}"))?;
    let mut envoy = Running(envoy);

    run::step(&format!(
        "waiting for Envoy to be ready (GET :{}/ready)",
        ports::ADMIN
    ));
    let started = Instant::now();
    let mut announced = false;
    while !stop.load(Ordering::SeqCst) {
        if let Ok(Some(status)) = envoy.0.try_wait() {
            return Err(format!("Envoy exited ({status}); see its output above"));
        }
        if !announced && project::envoy::is_ready(ports::ADMIN) {
            announced = true;
            eprintln!(
                "==> ready after {:.1} s. In a second terminal, try:\n      curl -i http://127.0.0.1:{}/api/users -H 'X-API-Key: key-abc123'\n      bash code/{name}/check.sh\n    Ctrl-C here stops Envoy.",
                started.elapsed().as_secs_f32(),
                ports::LISTENER
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    run::step("stopping Envoy");
    Ok(())
}
