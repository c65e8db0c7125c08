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

pub struct Stack {
    // Field order is drop order: Envoy stops before the servers behind it.
    pub envoy: Envoy,
    pub backend: Server,
    pub dir: PathBuf,
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
    let server = Server::start("backend", command, &dir.join("backend.log"));
    (server, port)
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
        let dir = test_dir(test_name);
        let (backend, backend_port) = start_backend(&dir);
        let (port, admin_port) = (free_port(), free_port());
        let mut config = EnvoyConfig::for_example(example);
        use_ports(&mut config, port, admin_port, backend_port);
        config.set_wasm(wasm);
        edit(&mut config);
        let envoy = Envoy::start(&config, port, admin_port, concurrency, &dir)?;
        Ok(Stack {
            envoy,
            backend,
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
