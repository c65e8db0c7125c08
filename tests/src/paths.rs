//! Where things are: the repository and the tools `cargo xtask` installs
//! (from the `project` crate, which xtask reads too), as the tests need them:
//! a missing tool fails the test with the way to install it.

use std::path::{Path, PathBuf};

pub use project::repo_root;

/// Where the workspace's own binaries (the auth service) are built: next to
/// the running test executable, `target/<profile>/deps/..`.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable sits in target/<profile>/deps");
    profile_dir.join(name)
}

/// The Envoy to test with (`$ENVOY`, or the project's); panics with the way
/// to install it when there is none.
pub fn envoy_binary() -> PathBuf {
    project::envoy::binary().unwrap_or_else(|why| panic!("{why}"))
}

/// Fails the test with an install hint when a command-line tool is missing.
pub fn require_tool(name: &str, hint: &str) {
    if let Err(why) = project::require_command(name, hint) {
        panic!("this test needs it: {why}");
    }
}
