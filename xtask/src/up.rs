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

    // Step 5 counts in the rate limit service, which counts in Redis: both
    // start first, on the book's ports, and stop (by PID) with Envoy.
    let _services = if step.uses_rate_limit_service() {
        tools::ensure_rate_limit_services()?;
        start_rate_limit_services(&step, &stop)?
    } else {
        Vec::new()
    };

    // The step's folder is the working directory, as in its README: the
    // config names the .wasm relative to it. The echo backend (and step 3's
    // auth service) are listeners in the same config.
    run::step(&format!(
        "starting Envoy in code/{name}: listener 127.0.0.1:{}, admin 127.0.0.1:{}, echo backend 127.0.0.1:{}",
        ports::LISTENER,
        ports::ADMIN,
        ports::ECHO_BACKEND
    ));
    let envoy = project::envoy::with_step_environment(&mut Command::new(project::envoy::binary()?))
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

/// Redis on the book's port, then the step's `rate-limit-service.sh`; each
/// waited for (Redis's port, the service's `/healthcheck`).
fn start_rate_limit_services(step: &Step, stop: &AtomicBool) -> Result<Vec<Running>> {
    run::step(&format!(
        "starting Redis on 127.0.0.1:{} (in memory only)",
        ports::REDIS
    ));
    let redis =
        project::rate_limit::redis_command(&project::rate_limit::redis_binary()?, ports::REDIS)
            .spawn()
            .map_err(|e| format!("cannot start Redis: {e}"))?;
    let mut redis = Running(redis);
    wait_until("Redis", &mut redis, stop, || {
        std::net::TcpStream::connect(("127.0.0.1", ports::REDIS)).is_ok()
    })?;
    run::step(&format!(
        "starting the rate limit service (code/{}/rate-limit-service.sh): gRPC 127.0.0.1:{}",
        step.name,
        ports::RATE_LIMIT_SERVICE
    ));
    let service = Command::new("bash")
        .arg(step.rate_limit_service_script())
        .env("RATELIMIT", project::rate_limit::service_binary()?)
        .spawn()
        .map_err(|e| format!("cannot start the rate limit service: {e}"))?;
    let mut service = Running(service);
    wait_until("the rate limit service", &mut service, stop, || {
        project::answers_200(ports::RATE_LIMIT_SERVICE_HTTP, "/healthcheck")
    })?;
    Ok(vec![service, redis])
}

/// Waits up to 20 s for `ready` (`project::wait`), failing if the process
/// exits or Ctrl-C is pressed first.
fn wait_until(
    name: &str,
    process: &mut Running,
    stop: &AtomicBool,
    ready: impl Fn() -> bool,
) -> Result {
    let waited = project::wait::for_process(
        Duration::from_secs(20),
        || {
            if stop.load(Ordering::SeqCst) {
                return Some("stopped by Ctrl-C".into());
            }
            process
                .0
                .try_wait()
                .ok()
                .flatten()
                .map(|status| status.to_string())
        },
        ready,
    );
    match waited {
        project::wait::Ready::Yes => Ok(()),
        project::wait::Ready::Exited(status) => {
            Err(format!("{name} exited ({status}); see its output above"))
        }
        project::wait::Ready::TimedOut => Err(format!("{name} did not get ready within 20 s")),
    }
}
