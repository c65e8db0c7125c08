//! One running step: Envoy with a step's configuration and plugin (the echo
//! backend and, for step 3, the auth service are listeners in that same
//! configuration), on free loopback ports instead of the book's fixed ones.

use crate::broken_service::{Behaviour, BrokenService};
use crate::envoy::{Envoy, EnvoyConfig};
use crate::paths;
use crate::process::Server;
use crate::steps;
use project::ports;
use project::step::Step;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct Stack {
    // Field order is drop order: Envoy stops before the service it calls.
    pub envoy: Envoy,
    /// The echo backend's port (a listener of the same Envoy).
    pub echo_port: u16,
    /// The harness's own auth service, when a test asked for one.
    pub auth_service: Option<Server>,
    /// Or a service that breaks at the socket.
    pub broken_service: Option<BrokenService>,
    pub dir: PathBuf,
}

/// Which service a step-3 (auth) or step-7 (keys) configuration calls.
pub enum AuthService<'a> {
    /// The one in the step's own `envoy.yaml` (a Lua listener), as a reader
    /// runs it.
    InConfig,
    /// The harness's auth service (`support/auth-service`) with these keys
    /// and options (e.g. `["--delay-ms", "2000"]`): it can be stopped,
    /// slowed down or made to misbehave, which the one in the config cannot.
    Controlled {
        keys: &'a [&'a str],
        args: &'a [&'a str],
    },
    /// A service that accepts connections and then never answers, or closes
    /// them at once.
    Broken(Behaviour),
    /// A service the test runs itself on this loopback port (step 7's
    /// `key_service::KeyService`).
    Port(u16),
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOWEST: u32 = 10_000;
    let span = ephemeral_ports_start().saturating_sub(LOWEST).max(1000);
    // Processes that run at the same time start at different places.
    let start = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let offset = (start + NEXT.fetch_add(1, Ordering::SeqCst)) % span;
        let Ok(port) = u16::try_from(LOWEST + offset) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!(
        "no free loopback port between {LOWEST} and {}",
        LOWEST + span
    );
}

/// The first port the kernel hands to outgoing connections
/// (`net.ipv4.ip_local_port_range`). Ports for servers are chosen below it:
/// a port from that range can be taken by any outgoing connection (Envoy's
/// own, to its upstreams) between the moment a test picks it and the moment
/// Envoy binds it.
fn ephemeral_ports_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A fresh directory for one test's configs and logs, kept after the test
/// (under target/harness/) so a failure can be read.
pub fn test_dir(test_name: &str) -> PathBuf {
    let dir = paths::repo_root().join("target/harness").join(test_name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test directory");
    dir
}

/// Polls until `server` accepts connections on `port`; panics with its log
/// if it exits or takes longer than 10 s.
pub fn wait_for_port(server: &mut Server, port: u16) {
    server.wait_until_ready(std::time::Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

/// Moves every listener of a step's config (and the clusters that point at
/// them) from the book's ports to free ones, so tests can run side by side.
/// Returns the (listener, admin, echo backend) ports.
pub fn use_free_ports(config: &mut EnvoyConfig, step: &Step) -> (u16, u16, u16) {
    let (listener, admin, echo) = (free_port(), free_port(), free_port());
    config.replace_port(ports::LISTENER, listener);
    config.replace_port(ports::ADMIN, admin);
    config.replace_port(ports::ECHO_BACKEND, echo);
    if step.http_service_cluster().is_some() {
        config.replace_port(ports::AUTH_SERVICE, free_port());
    }
    (listener, admin, echo)
}

/// Starts the harness's auth service on a free port with the given keys.
fn start_auth_service(dir: &Path, keys: &[&str], args: &[&str]) -> (Server, u16) {
    let keys_file = dir.join("keys.txt");
    std::fs::write(&keys_file, keys.join("\n")).expect("write the auth service's keys file");
    let port = free_port();
    let mut command = Command::new(steps::workspace_binary("auth-service"));
    command.arg(port.to_string()).arg(&keys_file).args(args);
    let mut server = Server::start("auth-service", command, &dir.join("auth-service.log"));
    wait_for_port(&mut server, port);
    (server, port)
}

impl Stack {
    /// Envoy running `code/<step>/envoy.yaml` (its echo backend included)
    /// with `wasm` as the plugin; `edit` may change the config further first.
    pub fn start(
        test_name: &str,
        step: &str,
        wasm: &Path,
        concurrency: u32,
        edit: impl FnOnce(&mut EnvoyConfig),
    ) -> Result<Stack, String> {
        Stack::start_with(
            test_name,
            step,
            wasm,
            concurrency,
            &AuthService::InConfig,
            edit,
        )
    }

    /// `start`, choosing which service a step-3 or step-7 config calls.
    pub fn start_with(
        test_name: &str,
        step: &str,
        wasm: &Path,
        concurrency: u32,
        auth: &AuthService,
        edit: impl FnOnce(&mut EnvoyConfig),
    ) -> Result<Stack, String> {
        let config = EnvoyConfig::for_step(step);
        Stack::start_config(test_name, step, config, wasm, concurrency, auth, edit)
    }

    /// `start_with` for a configuration of the step's other than its
    /// `envoy.yaml` (`EnvoyConfig::for_step_file`).
    pub fn start_config(
        test_name: &str,
        step: &str,
        mut config: EnvoyConfig,
        wasm: &Path,
        concurrency: u32,
        auth: &AuthService,
        edit: impl FnOnce(&mut EnvoyConfig),
    ) -> Result<Stack, String> {
        let dir = test_dir(test_name);
        let model = Step::named(step)?;
        let (port, admin_port, echo_port) = use_free_ports(&mut config, &model);
        let (mut auth_service, mut broken_service) = (None, None);
        let auth_port = match auth {
            AuthService::InConfig => None,
            AuthService::Controlled { keys, args } => {
                let (server, port) = start_auth_service(&dir, keys, args);
                auth_service = Some(server);
                Some(port)
            }
            AuthService::Broken(behaviour) => {
                let service = BrokenService::start(*behaviour);
                let port = service.port;
                broken_service = Some(service);
                Some(port)
            }
            AuthService::Port(port) => Some(*port),
        };
        if let Some(auth_port) = auth_port {
            let cluster = model
                .http_service_cluster()
                .ok_or_else(|| format!("{step} calls no service over HTTP"))?;
            config.set_cluster_port(cluster, auth_port);
        }
        config.set_wasm(wasm);
        edit(&mut config);
        let envoy = Envoy::start(&config, port, admin_port, concurrency, &dir)?;
        Ok(Stack {
            envoy,
            echo_port,
            auth_service,
            broken_service,
            dir,
        })
    }

    /// Like `start` for a step's own config and plugin, panicking on failure.
    pub fn step(test_name: &str, step: &str, concurrency: u32) -> Stack {
        let wasm = steps::build(step);
        Stack::start(test_name, step, &wasm, concurrency, |_| {})
            .unwrap_or_else(|log| panic!("{log}"))
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.envoy.port)
    }

    /// Runs `code/<step>/check.sh` against this stack; returns (success,
    /// combined output), and records the output as this run's.
    pub fn run_check_script(&self, step: &str) -> (bool, String) {
        let (passed, output) = run_check_script(
            &paths::repo_root().join("code").join(step),
            &self.base_url(),
        );
        record_check_output(step, &output);
        (passed, output)
    }
}

/// Runs `<step_dir>/check.sh` as the book says (`bash check.sh`, in the
/// step's folder) against `base_url`; returns (success, combined output).
pub fn run_check_script(step_dir: &Path, base_url: &str) -> (bool, String) {
    paths::require_tool("curl", "install it with `apt-get install curl`");
    let output = Command::new("bash")
        .arg("check.sh")
        .current_dir(step_dir)
        .env("BASE_URL", base_url)
        .output()
        .expect("run check.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Keeps a step's check-script output of this run (with the pinned Envoy)
/// for `compat --check`, which compares the host-compatibility page with it.
pub fn record_check_output(step: &str, output: &str) {
    let dir = project::this_run_dir().join("checks");
    std::fs::create_dir_all(&dir).expect("create target/this-run/checks");
    // Written aside and renamed: the reader's copy-out test records the
    // same step's output while other tests run, and `compat --check` must
    // never read a half-written file.
    let partial = dir.join(format!(
        "{step}.txt.{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&partial, output).expect("record the check output");
    std::fs::rename(&partial, dir.join(format!("{step}.txt"))).expect("record the check output");
}

/// The check-script output this run recorded for `step`.
pub fn check_output_of_this_run(step: &str) -> Result<String, String> {
    let path = project::this_run_dir()
        .join("checks")
        .join(format!("{step}.txt"));
    std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "{}: {e}; the harness records it (run `cargo xtask test --only harness`)",
            path.display()
        )
    })
}

/// Starts `step` with `wasm` and the plugin configuration `json`, which
/// the plugin must refuse: either Envoy does not start, or `/api/` never
/// answers 200. Returns Envoy's log, for the caller to look for the reason.
pub fn start_with_refused_configuration(
    test_name: &str,
    step: &str,
    wasm: &Path,
    json: &str,
) -> String {
    let started = Stack::start(test_name, step, wasm, 2, |config: &mut EnvoyConfig| {
        config.set_plugin_configuration(json)
    });
    match started {
        Err(log) => log,
        Ok(stack) => {
            let response = crate::http::get(
                stack.envoy.port,
                "/api/users",
                &[("x-api-key", b"key-abc123")],
            );
            assert!(
                !response.is_ok_and(|r| r.status == 200),
                "{test_name}: /api/ answered 200 with a refused configuration"
            );
            stack.envoy.log()
        }
    }
}
