//! Step 5's services for a test: Redis and Envoy's rate limit service, each
//! on free loopback ports, stopped by PID when dropped. The service is
//! started with the step's own `rate-limit-service.sh`, as a reader starts it.

use crate::process::Server;
use crate::stack::free_port;
use project::ports;
use project::step::Step;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

pub struct Redis {
    pub server: Server,
    pub port: u16,
}

impl Redis {
    /// An empty Redis, in memory only (no snapshot, no append-only file).
    pub fn start(dir: &Path) -> Redis {
        Redis::start_on(dir, free_port())
    }

    /// The same on `port` (the book's, for a test that runs as a reader).
    pub fn start_on(dir: &Path, port: u16) -> Redis {
        let binary = project::rate_limit::redis_binary().unwrap_or_else(|why| panic!("{why}"));
        let mut command = project::rate_limit::redis_command(&binary, port);
        command.current_dir(dir);
        let mut server = Server::start("redis", command, &dir.join("redis.log"));
        server.wait_until_ready(Duration::from_secs(10), || redis_answers(port));
        Redis { server, port }
    }

    /// Every key in Redis (the rate limit service's counters).
    pub fn keys(&self) -> Vec<String> {
        let reply = redis_command(self.port, "KEYS *").unwrap_or_default();
        // An array reply: `*N`, then `$len` and the key, per key.
        reply
            .lines()
            .skip(1)
            .filter(|line| !line.starts_with('$'))
            .map(str::to_owned)
            .collect()
    }
}

impl Redis {
    /// The sum of every counter in Redis: what the rate limit service has
    /// counted so far, for all descriptors.
    pub fn counted(&self) -> u64 {
        self.keys()
            .iter()
            .filter_map(|key| {
                let reply = redis_command(self.port, &format!("GET {key}")).ok()?;
                // A bulk reply: `$len`, then the value.
                reply.lines().nth(1)?.trim().parse::<u64>().ok()
            })
            .sum()
    }
}

fn redis_answers(port: u16) -> bool {
    redis_command(port, "PING").is_ok_and(|reply| reply.starts_with("+PONG"))
}

/// Sends one inline command and reads what arrives within 200 ms.
fn redis_command(port: u16, command: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    stream.write_all(format!("{command}\r\n").as_bytes())?;
    let mut reply = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buffer[..n]),
            Err(_) if !reply.is_empty() => break,
            Err(error) => return Err(error),
        }
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

pub struct RateLimitService {
    pub server: Server,
    /// gRPC: what Envoy's `rate_limit_service` cluster points at.
    pub grpc_port: u16,
    pub http_port: u16,
    pub debug_port: u16,
}

impl RateLimitService {
    /// The service with the step's own limits (`ratelimit/config/`).
    pub fn start(dir: &Path, redis_port: u16) -> RateLimitService {
        let step = step();
        RateLimitService::start_with_root(dir, redis_port, &step.dir)
    }

    /// The service with `limits` (the YAML of one configuration file) in
    /// place of the step's own.
    pub fn start_with_limits(dir: &Path, redis_port: u16, limits: &str) -> RateLimitService {
        let root = dir.join("runtime");
        let config_dir = root.join("ratelimit/config");
        std::fs::create_dir_all(&config_dir).expect("create the service's config folder");
        std::fs::write(config_dir.join("limits.yaml"), limits).expect("write the limits");
        RateLimitService::start_with_root(dir, redis_port, &root)
    }

    fn start_with_root(dir: &Path, redis_port: u16, runtime_root: &Path) -> RateLimitService {
        let binary = project::rate_limit::service_binary().unwrap_or_else(|why| panic!("{why}"));
        let (grpc_port, http_port, debug_port) = (free_port(), free_port(), free_port());
        let mut command = Command::new("bash");
        command
            .arg(step().rate_limit_service_script())
            .env("RATELIMIT", binary)
            .env("RUNTIME_ROOT", runtime_root)
            .env("REDIS_URL", format!("127.0.0.1:{redis_port}"))
            .env("GRPC_PORT", grpc_port.to_string())
            .env("PORT", http_port.to_string())
            .env("DEBUG_PORT", debug_port.to_string());
        let server = start_healthy(command, dir, http_port);
        RateLimitService {
            server,
            grpc_port,
            http_port,
            debug_port,
        }
    }

    /// `bash rate-limit-service.sh` in `step_dir` (a copy of the step's
    /// folder), exactly as its README says: the book's ports, the folder's
    /// own limits, Redis on the book's port. Only `RATELIMIT` is set (the
    /// README's alternative to having `service_cmd` on the PATH).
    pub fn start_as_reader(step_dir: &Path, log_dir: &Path) -> RateLimitService {
        let binary = project::rate_limit::service_binary().unwrap_or_else(|why| panic!("{why}"));
        let mut command = Command::new("bash");
        command
            .arg("rate-limit-service.sh")
            .current_dir(step_dir)
            .env("RATELIMIT", binary);
        let http_port = ports::RATE_LIMIT_SERVICE_HTTP;
        RateLimitService {
            server: start_healthy(command, log_dir, http_port),
            grpc_port: ports::RATE_LIMIT_SERVICE,
            http_port,
            debug_port: ports::RATE_LIMIT_SERVICE_DEBUG,
        }
    }
}

/// Starts the service and polls its `/healthcheck` until it answers 200.
/// The script `exec`s the service: the PID the harness holds is the
/// service's own.
fn start_healthy(command: Command, log_dir: &Path, http_port: u16) -> Server {
    let mut server = Server::start(
        "rate limit service",
        command,
        &log_dir.join("ratelimit.log"),
    );
    server.wait_until_ready(Duration::from_secs(20), || {
        project::answers_200(http_port, "/healthcheck")
    });
    server
}

/// The step that counts in the rate limit service (its description says
/// so): its folder holds the service's script and configuration.
pub fn step() -> Step {
    Step::all()
        .into_iter()
        .find(Step::uses_rate_limit_service)
        .expect("a step uses the rate limit service")
}
