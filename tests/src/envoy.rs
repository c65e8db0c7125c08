//! Envoy: the book's configuration files, rewritten for a test, and a running
//! Envoy that is ready when `start` returns.

use crate::http;
use crate::paths;
use crate::process::Server;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The text of a `code/<step>/envoy.yaml`, edited by exact replacement:
/// every edit must match exactly once, so a change to the book's file that
/// a test no longer understands fails loudly instead of testing the wrong thing.
#[derive(Clone)]
pub struct EnvoyConfig {
    text: String,
}

impl EnvoyConfig {
    /// A step's own `code/<step>/envoy.yaml`.
    pub fn for_step(step: &str) -> EnvoyConfig {
        EnvoyConfig::for_step_file(step, "envoy.yaml")
    }

    /// Another configuration in a step's folder (`envoy-native.yaml`).
    pub fn for_step_file(step: &str, file: &str) -> EnvoyConfig {
        let path = paths::repo_root().join("code").join(step).join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        EnvoyConfig { text }
    }

    /// A configuration written by a test or the benchmark itself.
    pub fn from_text(text: String) -> EnvoyConfig {
        EnvoyConfig { text }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Moves every address on `port` (a listener and the cluster pointing at
    /// it) to `to`; at least one must exist.
    pub fn replace_port(&mut self, port: u16, to: u16) {
        let from = format!("port_value: {port} ");
        assert!(self.text.contains(&from), "no `{from}` in the Envoy config");
        self.text = self.text.replace(&from, &format!("port_value: {to} "));
    }

    /// Points the `backend` cluster (the echo listener, in the book's
    /// configs) at `port` instead.
    pub fn set_backend_port(&mut self, port: u16) {
        self.set_cluster_port("backend", port);
    }

    /// Points the cluster `cluster` (its first endpoint) at `port`.
    pub fn set_cluster_port(&mut self, cluster: &str, port: u16) {
        let start = self
            .text
            .find(&format!("cluster_name: {cluster}\n"))
            .unwrap_or_else(|| panic!("no cluster `{cluster}` in the Envoy config"));
        let offset = self.text[start..]
            .find("port_value: ")
            .unwrap_or_else(|| panic!("no endpoint in the cluster `{cluster}`"))
            + start
            + "port_value: ".len();
        let end = offset
            + self.text[offset..]
                .find(|c: char| !c.is_ascii_digit())
                .expect("a port number");
        self.text.replace_range(offset..end, &port.to_string());
    }

    pub fn replace_once(&mut self, from: &str, to: &str) {
        let count = self.text.matches(from).count();
        assert_eq!(
            count, 1,
            "expected `{from}` exactly once in the Envoy config, found {count}"
        );
        self.text = self.text.replacen(from, to, 1);
    }

    /// The lines of the HTTP filter's JSON: the first `value: '...'` line,
    /// or `value: |` block, after `http_filters:` (so not the
    /// configuration of a singleton service before it, step 7's refresher).
    fn plugin_configuration_lines(&self) -> Option<(usize, usize)> {
        let lines: Vec<&str> = self.text.lines().collect();
        let filters = lines
            .iter()
            .position(|line| line.trim_start() == "http_filters:")?;
        let start = filters
            + lines[filters..].iter().position(|line| {
                let line = line.trim_start();
                line.starts_with("value: '") || line == "value: |"
            })?;
        let indent = lines[start].len() - lines[start].trim_start().len();
        let mut end = start + 1;
        if lines[start].trim_start() == "value: |" {
            while end < lines.len() && lines[end].len() - lines[end].trim_start().len() > indent {
                end += 1;
            }
        }
        Some((start, end))
    }

    /// The HTTP filter's JSON, as the plugin receives it.
    pub fn plugin_configuration(&self) -> Option<String> {
        let (start, end) = self.plugin_configuration_lines()?;
        let lines: Vec<&str> = self.text.lines().collect();
        let first = lines[start].trim_start();
        Some(match first.strip_prefix("value: '") {
            Some(value) => value.trim_end_matches('\'').replace("''", "'"),
            None => lines[start + 1..end].join("\n"),
        })
    }

    /// Replaces the HTTP filter's JSON.
    pub fn set_plugin_configuration(&mut self, json: &str) {
        let value = format!("value: '{}'", json.replace('\'', "''"));
        let (start, end) = self
            .plugin_configuration_lines()
            .expect("the Envoy config has a `value:` plugin configuration");
        let lines: Vec<&str> = self.text.lines().collect();
        let indent = lines[start].len() - lines[start].trim_start().len();
        let mut edited: Vec<String> = lines[..start].iter().map(|l| l.to_string()).collect();
        edited.push(format!("{}{value}", &lines[start][..indent]));
        edited.extend(lines[end..].iter().map(|l| l.to_string()));
        self.text = edited.join("\n") + "\n";
    }

    /// The `.wasm` path of the plugin, in every `filename:` line (each
    /// instance of the plugin in the configuration).
    pub fn set_wasm(&mut self, wasm: &Path) {
        // Every instance of the plugin in the configuration loads it.
        let lines: Vec<String> = self
            .text
            .lines()
            .filter(|line| line.trim_start().starts_with("filename:"))
            .map(str::to_owned)
            .collect();
        assert!(
            !lines.is_empty(),
            "the Envoy config has no `filename:` line"
        );
        for line in lines {
            let indent = &line[..line.len() - line.trim_start().len()];
            self.text = self
                .text
                .replace(&line, &format!("{indent}filename: {}", wasm.display()));
        }
    }
}

pub struct Envoy {
    pub server: Server,
    pub port: u16,
    pub admin_port: u16,
}

impl Envoy {
    /// Starts Envoy and waits (polling the admin `/ready`) until it serves.
    /// `Err` carries Envoy's log when it exits or never gets ready.
    /// Envoy for a test: the plugin's debug lines are logged.
    pub fn start(
        config: &EnvoyConfig,
        port: u16,
        admin_port: u16,
        concurrency: u32,
        dir: &Path,
    ) -> Result<Envoy, String> {
        let log_args = ["--component-log-level", "wasm:debug"];
        Envoy::start_with(config, port, admin_port, concurrency, dir, &log_args)
    }

    /// Envoy as in production for the benchmark: warnings and errors only,
    /// so writing log lines is not part of what is measured.
    pub fn start_quiet(
        config: &EnvoyConfig,
        port: u16,
        admin_port: u16,
        concurrency: u32,
        dir: &Path,
    ) -> Result<Envoy, String> {
        Envoy::start_with(
            config,
            port,
            admin_port,
            concurrency,
            dir,
            &["--log-level", "warn"],
        )
    }

    fn start_with(
        config: &EnvoyConfig,
        port: u16,
        admin_port: u16,
        concurrency: u32,
        dir: &Path,
        log_args: &[&str],
    ) -> Result<Envoy, String> {
        let config_path = dir.join("envoy.yaml");
        std::fs::write(&config_path, config.text()).expect("write Envoy config");
        let mut command = Command::new(paths::envoy_binary());
        project::envoy::with_step_environment(&mut command);
        command
            .arg("-c")
            .arg(&config_path)
            .args(["--concurrency", &concurrency.to_string()])
            // Several Envoys run at once in the tests: no shared memory.
            .arg("--disable-hot-restart")
            .args(log_args)
            .current_dir(paths::repo_root());
        let mut server = Server::start("envoy", command, &dir.join("envoy.log"));
        server.wait_for(Duration::from_secs(60), || {
            project::envoy::is_ready(admin_port)
        })?;
        Ok(Envoy {
            server,
            port,
            admin_port,
        })
    }

    pub fn log(&self) -> String {
        self.server.log()
    }

    /// GET on the admin interface; the body, or an empty string.
    pub fn admin(&self, path: &str) -> String {
        http::get(self.admin_port, path, &[])
            .map(|response| response.body)
            .unwrap_or_default()
    }

    /// One counter or gauge from the admin `/stats` (`name` is matched
    /// whole), or `None` when Envoy has no such stat.
    pub fn stat(&self, name: &str) -> Option<u64> {
        // The filter is a regular expression (a `.` matches any character);
        // the map keeps only the statistic of exactly this name.
        stat_values(&self.admin(&format!("/stats?filter=^{name}$"))).remove(name)
    }

    /// The VMs Envoy has created so far (`wasm.envoy.wasm.runtime.v8.created`):
    /// a plugin that crashes under `FAIL_RELOAD` gets a new one.
    pub fn vms_created(&self) -> u64 {
        self.stat("wasm.envoy.wasm.runtime.v8.created")
            .unwrap_or_else(|| panic!("no VM statistics:\n{}", self.admin("/stats?filter=wasm")))
    }

    /// No plugin of this Envoy panicked, and no VM was created since
    /// `vms_created` said `created_before` (a crashed VM is replaced on the
    /// next request under `FAIL_RELOAD`: send one before asking).
    pub fn assert_no_plugin_crashed(&self, created_before: u64) {
        let log = self.log();
        assert!(!log.contains("panicked at"), "a plugin panicked:\n{log}");
        assert_eq!(
            self.vms_created(),
            created_before,
            "Envoy created new VMs: one crashed\n{log}"
        );
    }
}

/// The statistics in an admin `/stats` text (`name: value` lines) that have
/// a number for a value, by name; histograms and text lines are left out.
pub fn stat_values(text: &str) -> std::collections::BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(": ")?;
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// Envoy log lines from `component` at `levels`, without the timestamp and
/// thread id that start each line, so they can be compared across runs.
pub fn log_lines(log: &str, component: &str, levels: &[&str]) -> String {
    log.lines()
        .filter_map(|line| {
            // [2026-01-01 00:00:00.000][1234][error][wasm] [source/...] message
            let mut parts = line.splitn(3, "][");
            let (_time, _thread, rest) = (parts.next()?, parts.next()?, parts.next()?);
            let (level, rest) = rest.split_once("][")?;
            let (line_component, message) = rest.split_once("] ")?;
            (line_component == component && levels.contains(&level))
                .then(|| format!("[{level}][{component}] {message}\n"))
        })
        .collect()
}
