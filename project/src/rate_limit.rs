//! Step 5's services: Envoy's rate limit service (github.com/envoyproxy/ratelimit,
//! built with `go install` into `.tools/`) and the Redis it counts in
//! (Debian's `redis-server`).

use std::path::PathBuf;

/// The module and the pinned version `go install` builds. The project
/// publishes its main branch rather than tagged releases; the module proxy
/// serves the commit the book was tested with as this pseudo-version.
pub const MODULE: &str = "github.com/envoyproxy/ratelimit/src/service_cmd";
pub const VERSION: &str = "v1.4.1-0.20260122083618-3fb702589d36";

/// Where `cargo xtask` installs the service (`GOBIN`).
pub fn bin_dir() -> PathBuf {
    crate::tools_dir().join("ratelimit/bin")
}

/// `$RATELIMIT` when set; otherwise the project's own build.
pub fn service_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("RATELIMIT") {
        return Ok(PathBuf::from(path));
    }
    let binary = bin_dir().join("service_cmd");
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!(
            "the rate limit service is not installed: `cargo xtask test` or `cargo xtask up \
             step-5-global-rate-limit` builds it (go install {MODULE}@{VERSION}) into {}; \
             or set RATELIMIT=/path/to/service_cmd",
            bin_dir().display()
        ))
    }
}

/// Debian's Redis server.
pub const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// Redis on 127.0.0.1:`port`, in memory only (no snapshot, no append-only
/// file): the rate limit service's counters need nothing more.
pub fn redis_command(binary: &std::path::Path, port: u16) -> std::process::Command {
    let mut command = std::process::Command::new(binary);
    command
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"]);
    command
}

/// `Err` with the way to install Redis when it is missing.
pub fn redis_binary() -> Result<PathBuf, String> {
    let path = PathBuf::from(REDIS_SERVER);
    if path.is_file() {
        Ok(path)
    } else {
        Err(
            "Redis is not installed: `cargo xtask test` installs Debian's redis-server \
             package (as root), or run `apt-get install redis-server`"
                .to_owned(),
        )
    }
}
