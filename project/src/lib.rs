//! The repository as the commands and the tests see it: where it is, which
//! steps it holds and how each is built and run, where the installed tools
//! are, and the ports the book's configurations use. `cargo xtask` and the
//! harness both read it from here, so they cannot disagree.

pub mod envoy;
pub mod listings;
pub mod naive;
pub mod ports;
pub mod rate_limit;
pub mod step;
pub mod wait;

use std::path::{Path, PathBuf};

/// The repository root (this crate lives in `<root>/project`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("project/ has a parent directory")
        .to_path_buf()
}

/// `.tools/`: everything the project installs for itself.
pub fn tools_dir() -> PathBuf {
    repo_root().join(".tools")
}

/// `target/this-run/`: what the harness of the current `cargo xtask test`
/// records for the stages after it. Emptied before the harness starts.
pub fn this_run_dir() -> PathBuf {
    repo_root().join("target/this-run")
}

/// Whether `name --version` runs and succeeds.
pub fn command_works(name: &str) -> bool {
    std::process::Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// `Err` naming the command and how to get it when it does not run.
pub fn require_command(name: &str, hint: &str) -> Result<(), String> {
    if command_works(name) {
        Ok(())
    } else {
        Err(format!("`{name}` was not found; {hint}"))
    }
}

/// Whether `GET path` on 127.0.0.1:`port` answers 200 (readiness and health
/// checks: Envoy's `/ready`, the rate limit service's `/healthcheck`).
pub fn answers_200(port: u16, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(2)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer.starts_with(b"HTTP/1.1 200") || answer.starts_with(b"HTTP/1.0 200")
}
