//! Loom, the Go gateway the book's original tutorial deployed to, running
//! a step's `check.sh`: the step's `loom.yaml` with its ports moved to
//! free ones and its module at the path the harness built it to, in front
//! of the echo backend of the step's own `envoy.yaml` (an Envoy beside
//! it). Loom is built from source by `cargo xtask` (`xtask/src/loom.rs`).

use crate::process::Server;
use crate::stack::{free_port, run_check_script, test_dir, Stack};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The patched Loom this run was given (`cargo xtask test` builds it and
/// sets `LOOM_PATCHED`); a test run without it fails with how to get it.
pub fn patched_binary() -> PathBuf {
    match std::env::var_os("LOOM_PATCHED") {
        Some(path) => PathBuf::from(path),
        None => panic!(
            "LOOM_PATCHED is not set: `cargo xtask test` builds Loom with the book's patches from \
             ../shared/hosts/loom-0e09cd2.tar.gz (or LOOM_SOURCE) and sets it; or set it to a \
             patched Loom binary yourself"
        ),
    }
}

/// What a step's check script printed through Loom, and Loom's log.
pub struct LoomRun {
    pub output: String,
    pub log: String,
    /// Loom's port, while `_servers` runs.
    pub port: u16,
    _servers: (Server, Stack),
}

/// Starts Loom with `step`'s `loom.yaml` (`Err` when the step has none, or
/// Loom does not listen) and runs the step's check script through it.
pub fn run_check(loom: &Path, step: &str, wasm: &Path, test_name: &str) -> Result<LoomRun, String> {
    let step_dir = project::repo_root().join("code").join(step);
    let yaml = std::fs::read_to_string(step_dir.join("loom.yaml"))
        .map_err(|_| format!("{step} has no loom.yaml"))?;
    let dir = test_dir(test_name);
    let backend = Stack::start(&format!("{test_name}-backend"), step, wasm, 1, |_| {})
        .map_err(|log| format!("the echo backend did not start: {log}"))?;
    let (port, admin) = (free_port(), free_port());
    let config: String = yaml
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:9091", &format!("127.0.0.1:{admin}"))
        .replace(
            "127.0.0.1:3000",
            &format!("127.0.0.1:{}", backend.echo_port),
        )
        .lines()
        .map(|line| match line.trim_start().strip_prefix("path: ./") {
            // The plugin's module, where the harness built it.
            Some(_) if line.contains(".wasm") => {
                let indent = &line[..line.len() - line.trim_start().len()];
                format!("{indent}path: {}\n", wasm.display())
            }
            _ => format!("{line}\n"),
        })
        .collect();
    std::fs::write(dir.join("loom.yaml"), config).map_err(|e| e.to_string())?;
    let mut command = Command::new(loom);
    command.arg("-config").arg(dir.join("loom.yaml"));
    let mut server = Server::start("loom", command, &dir.join("loom.log"));
    let listening = server.wait_for(Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    if let Err(log) = listening {
        return Err(format!("Loom did not listen within 20 s: {log}"));
    }
    let (_, output) = run_check_script(&step_dir, &format!("http://127.0.0.1:{port}"));
    Ok(LoomRun {
        output,
        log: server.log(),
        port,
        _servers: (server, backend),
    })
}
