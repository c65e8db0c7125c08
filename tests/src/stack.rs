//! One running example: the echo backend and Envoy with a step's plugin, on
//! free loopback ports instead of the book's fixed ones.

use crate::envoy::{Envoy, EnvoyConfig};
use crate::paths;
use crate::process::Server;
use crate::steps;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The fixed ports the book uses; tests swap each for a free one.
pub const BOOK_LISTENER_PORT: u16 = 8080;
pub const BOOK_ADMIN_PORT: u16 = 9091;
pub const BOOK_BACKEND_PORT: u16 = 3000;
pub const BOOK_AUTH_SERVICE_PORT: u16 = 3001;

pub struct Stack {
    // Field order is drop order: Envoy stops before the servers behind it.
    pub envoy: Envoy,
    pub backend: Server,
    /// Started when the config has an `auth-service` cluster (step 3).
    pub auth_service: Option<Server>,
    pub dir: PathBuf,
}

/// How to run the auth service, for configs that use it.
#[derive(Default)]
pub struct AuthSetup<'a> {
    /// Its keys; `None` uses `examples/<example>/keys.txt`.
    pub keys: Option<&'a [&'a str]>,
    /// Extra command-line options, e.g. `["--delay-ms", "2000"]`.
    pub args: &'a [&'a str],
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("bind an ephemeral loopback port")
}

/// A fresh directory for one test's configs and logs, kept after the test
/// (under target/harness/) so a failure can be read.
pub fn test_dir(test_name: &str) -> PathBuf {
    let dir = paths::repo_root().join("target/harness").join(test_name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test directory");
    dir
}

/// Starts the echo backend on a free port.
pub fn start_backend(dir: &Path) -> (Server, u16) {
    let port = free_port();
    let mut command = Command::new(steps::workspace_binary("backend"));
    command.arg(port.to_string());
    let mut server = Server::start("backend", command, &dir.join("backend.log"));
    wait_for_port(&mut server, port);
    (server, port)
}

/// Polls until `server` accepts connections on `port`; panics with its log
/// if it exits or takes longer than 10 s.
fn wait_for_port(server: &mut Server, port: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if server.exited().is_some() || std::time::Instant::now() > deadline {
            panic!("server on port {port} did not start:\n{}", server.log());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Points a book config at the given ports.
pub fn use_ports(config: &mut EnvoyConfig, listener: u16, admin: u16, backend: u16) {
    for (book, real) in [
        (BOOK_LISTENER_PORT, listener),
        (BOOK_ADMIN_PORT, admin),
        (BOOK_BACKEND_PORT, backend),
    ] {
        config.replace_once(
            &format!("port_value: {book} "),
            &format!("port_value: {real} "),
        );
    }
}

/// Starts the auth service on a free port with the given keys.
fn start_auth_service(dir: &Path, example: &str, setup: &AuthSetup) -> (Server, u16) {
    let keys_file = dir.join("keys.txt");
    let book_keys = paths::repo_root()
        .join("examples")
        .join(example)
        .join("keys.txt");
    match setup.keys {
        Some(keys) => std::fs::write(&keys_file, keys.join("\n")),
        None => std::fs::copy(&book_keys, &keys_file).map(|_| ()),
    }
    .expect("write the auth service's keys file");
    let port = free_port();
    let mut command = Command::new(steps::workspace_binary("auth-service"));
    command
        .arg(port.to_string())
        .arg(&keys_file)
        .args(setup.args);
    let mut server = Server::start("auth-service", command, &dir.join("auth-service.log"));
    wait_for_port(&mut server, port);
    (server, port)
}

impl Stack {
    /// Backend + Envoy running `examples/<example>/envoy.yaml` with `wasm`
    /// as the plugin; `edit` may change the config further first.
    pub fn start(
        test_name: &str,
        example: &str,
        wasm: &Path,
        concurrency: u32,
        edit: impl FnOnce(&mut EnvoyConfig),
    ) -> Result<Stack, String> {
        let auth = AuthSetup::default();
        Stack::start_with(test_name, example, wasm, concurrency, &auth, edit)
    }

    /// `start`, choosing how the auth service runs (if the config uses it).
    pub fn start_with(
        test_name: &str,
        example: &str,
        wasm: &Path,
        concurrency: u32,
        auth: &AuthSetup,
        edit: impl FnOnce(&mut EnvoyConfig),
    ) -> Result<Stack, String> {
        let dir = test_dir(test_name);
        let (backend, backend_port) = start_backend(&dir);
        let (port, admin_port) = (free_port(), free_port());
        let mut config = EnvoyConfig::for_example(example);
        use_ports(&mut config, port, admin_port, backend_port);
        let auth_port_text = format!("port_value: {BOOK_AUTH_SERVICE_PORT} ");
        let auth_service = config.text().contains(&auth_port_text).then(|| {
            let (server, auth_port) = start_auth_service(&dir, example, auth);
            config.replace_once(&auth_port_text, &format!("port_value: {auth_port} "));
            server
        });
        config.set_wasm(wasm);
        edit(&mut config);
        let envoy = Envoy::start(&config, port, admin_port, concurrency, &dir)?;
        Ok(Stack {
            envoy,
            backend,
            auth_service,
            dir,
        })
    }

    /// Like `start` for a step's own example and plugin, panicking on failure.
    pub fn step(test_name: &str, step: &str, concurrency: u32) -> Stack {
        let wasm = steps::build(step);
        Stack::start(test_name, step, &wasm, concurrency, |_| {})
            .unwrap_or_else(|log| panic!("{log}"))
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.envoy.port)
    }

    /// Runs `examples/<example>/check.sh` against this stack; returns
    /// (success, combined output).
    pub fn run_check_script(&self, example: &str) -> (bool, String) {
        paths::require_tool("curl", "install it with `apt-get install curl`");
        let script = paths::repo_root()
            .join("examples")
            .join(example)
            .join("check.sh");
        let output = Command::new("bash")
            .arg(&script)
            .env("BASE_URL", self.base_url())
            .output()
            .expect("run check.sh");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }
}

/// Starts `example` with `wasm` and the plugin configuration `json`, which
/// the plugin must refuse: either Envoy does not start, or `/api/` never
/// answers 200. Returns Envoy's log, for the caller to look for the reason.
pub fn start_with_refused_configuration(
    test_name: &str,
    example: &str,
    wasm: &Path,
    json: &str,
) -> String {
    let started = Stack::start(test_name, example, wasm, 2, |config: &mut EnvoyConfig| {
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
