//! A step: one folder under `code/` that a reader can copy, build and run
//! on its own (the plugin, `envoy.yaml`, `check.sh`, `README.md`). A new
//! folder with a Cargo.toml or a go.mod is a new step; nothing else lists
//! them.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Rust target every Proxy-Wasm plugin here is built for.
pub const WASM_TARGET: &str = "wasm32-wasip1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    Rust,
    Go,
}

#[derive(Clone, Debug)]
pub struct Step {
    pub name: String,
    pub dir: PathBuf,
    pub language: Language,
}

impl Step {
    /// Every step folder under `code/`, sorted by name.
    pub fn all() -> Vec<Step> {
        let mut steps: Vec<Step> = std::fs::read_dir(crate::repo_root().join("code"))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|entry| Step::in_folder(&entry.path()))
                    .collect()
            })
            .unwrap_or_default();
        steps.sort_by(|a, b| a.name.cmp(&b.name));
        steps
    }

    /// The step `code/<name>`.
    pub fn named(name: &str) -> Result<Step, String> {
        Step::in_folder(&crate::repo_root().join("code").join(name)).ok_or_else(|| {
            let known: Vec<String> = Step::all().into_iter().map(|step| step.name).collect();
            format!("unknown step `{name}`; the steps are: {}", known.join(", "))
        })
    }

    fn in_folder(dir: &Path) -> Option<Step> {
        let language = if dir.join("Cargo.toml").is_file() {
            Language::Rust
        } else if dir.join("go.mod").is_file() {
            Language::Go
        } else {
            return None;
        };
        Some(Step {
            name: dir.file_name()?.to_string_lossy().into_owned(),
            dir: dir.to_path_buf(),
            language,
        })
    }

    /// The step's Envoy configuration.
    pub fn config(&self) -> PathBuf {
        self.dir.join("envoy.yaml")
    }

    /// The step's check script (`bash check.sh`, `BASE_URL` to point it
    /// elsewhere).
    pub fn check_script(&self) -> PathBuf {
        self.dir.join("check.sh")
    }

    /// The build command of the step's README, to run in `dir`: the step's
    /// folder or a copy of it.
    pub fn build_command(&self, dir: &Path) -> Command {
        let mut command = match self.language {
            Language::Rust => {
                let mut command = cargo_in(dir);
                // `--locked`: the versions of the folder's Cargo.lock, the
                // ones the book was tested with, or an error.
                command.args(["build", "--locked", "--target", WASM_TARGET, "--release"]);
                command
            }
            Language::Go => {
                let mut command = Command::new("go");
                command
                    .args(["build", "-buildmode=c-shared", "-o"])
                    .arg(self.wasm_file_name())
                    .arg(".")
                    .env("GOOS", "wasip1")
                    .env("GOARCH", "wasm");
                command
            }
        };
        command.current_dir(dir);
        command
    }

    /// The module's file name: Cargo turns the crate's `-` into `_`.
    pub fn wasm_file_name(&self) -> String {
        match self.language {
            Language::Rust => format!("{}.wasm", self.name.replace('-', "_")),
            Language::Go => format!("{}.wasm", self.name),
        }
    }

    /// Where the build command leaves the module, relative to the folder it
    /// ran in; `envoy.yaml` names the same path.
    pub fn wasm_relative_path(&self) -> PathBuf {
        match self.language {
            Language::Rust => Path::new("target")
                .join(WASM_TARGET)
                .join("release")
                .join(self.wasm_file_name()),
            Language::Go => PathBuf::from(self.wasm_file_name()),
        }
    }

    /// Whether the step's plugin calls the auth service (a listener on the
    /// book's auth-service port in its `envoy.yaml`).
    pub fn uses_auth_service(&self) -> bool {
        std::fs::read_to_string(self.config()).is_ok_and(|config| {
            config.contains(&format!("port_value: {} ", crate::ports::AUTH_SERVICE))
        })
    }

    /// Whether the step counts requests in Envoy's rate limit service: it
    /// carries the service's configuration (`ratelimit/config/`) and the
    /// script that starts it.
    pub fn uses_rate_limit_service(&self) -> bool {
        self.dir.join("ratelimit/config").is_dir()
    }

    /// The step's script that starts the rate limit service in the
    /// foreground (`RATELIMIT`, `REDIS_URL`, the ports and `RUNTIME_ROOT`
    /// may be set to run it elsewhere).
    pub fn rate_limit_service_script(&self) -> PathBuf {
        self.dir.join("rate-limit-service.sh")
    }
}

/// The toolchain a Rust folder pins in its `rust-toolchain.toml`
/// (`channel = "..."`), if it pins one.
pub fn pinned_toolchain(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("rust-toolchain.toml")).ok()?;
    text.lines().find_map(|line| {
        let value = line
            .trim()
            .strip_prefix("channel")?
            .trim()
            .strip_prefix('=')?;
        Some(value.trim().trim_matches('"').to_owned())
    })
}

/// Cargo as a reader runs it in `dir`: with the toolchain the folder pins
/// (`rustup run`, since the `cargo` that runs this program is its own
/// toolchain's), otherwise the `cargo` running this program.
pub fn cargo_in(dir: &Path) -> Command {
    let mut command = match pinned_toolchain(dir) {
        Some(channel) => {
            let mut command = Command::new("rustup");
            command.args(["run", &channel, "cargo"]);
            command
        }
        None => Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())),
    };
    command.current_dir(dir);
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_steps_are_found() {
        let names: Vec<String> = Step::all().into_iter().map(|step| step.name).collect();
        for expected in [
            "step-1-auth",
            "step-2-rate-limit",
            "step-3-http-call",
            "step-4-signed-body",
            "step-5-global-rate-limit",
            "step-6-response-guard",
            "step-7-key-refresh",
            "go-auth",
        ] {
            assert!(names.iter().any(|name| name == expected), "{names:?}");
        }
    }

    /// The model and each step's configuration name the same module.
    #[test]
    fn each_config_loads_the_module_its_build_makes() {
        for step in Step::all() {
            let config = std::fs::read_to_string(step.config()).expect("read envoy.yaml");
            let wasm = step.wasm_relative_path();
            let line = format!("filename: {}", wasm.display());
            assert!(
                config.lines().any(|l| l.trim() == line),
                "{}: envoy.yaml has no `{line}`",
                step.name
            );
        }
    }

    #[test]
    fn only_step_5_uses_the_rate_limit_service() {
        for step in Step::all() {
            assert_eq!(
                step.uses_rate_limit_service(),
                step.name == "step-5-global-rate-limit",
                "{}",
                step.name
            );
            if step.uses_rate_limit_service() {
                assert!(step.rate_limit_service_script().is_file(), "{}", step.name);
            }
        }
    }

    #[test]
    fn only_steps_3_and_7_call_a_service_on_the_auth_service_port() {
        for step in Step::all() {
            assert_eq!(
                step.uses_auth_service(),
                step.name == "step-3-http-call" || step.name == "step-7-key-refresh",
                "{}",
                step.name
            );
        }
    }
}
