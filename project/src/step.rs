//! A step: one folder under `code/` that a reader can copy, build and run
//! on its own (the plugin, `envoy.yaml`, `check.sh`, `README.md`), and its
//! description in [`DESCRIPTIONS`], the one place that says what the step
//! is. xtask, the harness, the benchmark and compat know a step from its
//! description, never from its name or the text of its files; a folder
//! under `code/` without one fails `cargo xtask test`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Rust target every Proxy-Wasm plugin here is built for.
pub const WASM_TARGET: &str = "wasm32-wasip1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    Rust,
    Go,
}

/// What a step is, for every tool that runs it.
#[derive(Debug)]
pub struct Description {
    /// Its folder under `code/`.
    pub folder: &'static str,
    pub language: Language,
    /// The step its chapter grows it from, shown as a diff (`None`: shown
    /// whole).
    pub grows_from: Option<&'static str>,
    /// Part one's step: built stage by stage in `examples/first-plugin/`;
    /// its first test opens the Testing chapter, its builds are the
    /// benchmark's candidates.
    pub part_one: bool,
    /// What runs beside Envoy for it.
    pub services: &'static [Service],
    /// The shared cases its plugin answers, which a host library is given.
    pub cases: Cases,
    /// Its row in the benchmark's tables.
    pub bench: Bench,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// A service the plugin calls over HTTP (`dispatch_http_call`), the
    /// cluster of this name in `envoy.yaml`, on the book's auth-service
    /// port; a test points the cluster at a service of its own.
    Http { cluster: &'static str },
    /// Envoy's rate limit service and Redis, started by the step's
    /// `rate-limit-service.sh` with its `ratelimit/config/`.
    RateLimit,
}

/// The cases shared between steps (`tests/in_process/cases.rs`), each
/// owned by one step's folder and copied by the others that answer it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cases {
    /// An API key in a header: step 1's cases (the benchmark also sends
    /// such a step the nine ways a key can arrive).
    ApiKeys,
    /// A signed request body: step 4's cases.
    SignedBodies,
    /// Neither: the step's own tests only ("not applicable" elsewhere).
    Own,
}

/// How the benchmark runs a step. Its configurations use keys(3)
/// (`key-000000` to `key-000002`; requests send `key-000001`) and the
/// `sink` cluster, which answers `/validate`, `/keys` and `/json/`.
#[derive(Debug)]
pub struct Bench {
    /// The row's name in the benchmark's tables.
    pub name: &'static str,
    pub filter: BenchFilter,
    pub request: BenchRequest,
    pub acts: Acts,
}

#[derive(Debug)]
pub enum BenchFilter {
    /// The plugin as an HTTP filter, with this configuration.
    Plugin { json: &'static str },
    /// The same, its request or response headers held while it reads the
    /// body (`allow_on_headers_stop_iteration: true`).
    HoldingHeaders { json: &'static str },
    /// The plugin as an HTTP filter, and the same module as a singleton
    /// service (a bootstrap extension) in the same `vm_id`.
    WithSingleton {
        json: &'static str,
        singleton_json: &'static str,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchRequest {
    /// A GET answered by Envoy itself.
    Get,
    /// A GET through the sink cluster (Envoy's rate limit filter skips
    /// `direct_response` routes).
    GetToCluster,
    /// A GET of the sink's `/json/` user record.
    GetJson,
    /// A POST of a 1 KiB body signed with this secret.
    SignedPost { secret: &'static str },
    /// A GET with `Authorization: Bearer` and an RS256 token signed with
    /// the step folder's `private_key` (PEM), naming `kid`; the sink serves
    /// the folder's `jwks` at `/jwks`. `public_key` (PEM) keys the
    /// algorithm-confusion token of the refusal table.
    Bearer {
        private_key: &'static str,
        public_key: &'static str,
        kid: &'static str,
        jwks: &'static str,
    },
}

/// What a configuration must be seen doing before it is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acts {
    /// Nothing: the do-nothing plugin, the floor of every Wasm plugin.
    Nothing,
    /// Refuses a request without a key (or signature) with a 4xx.
    Refuses,
    /// Counts each request in shared data, so the `ratelimit` header's
    /// remaining count drops by one per request.
    CountsInSharedData,
    /// local_ratelimit: counts in token buckets, so the proof key's bucket
    /// of two is empty on the third request (429).
    EmptiesItsBucket,
    /// The rate limit service counts each request in Redis.
    CountsInRedis,
    /// Asks the auth service (the sink's `/validate`) for every request.
    AsksTheAuthService,
    /// After the first request, answers from its cache (the plugin's
    /// `cache.hit` counter grows).
    AnswersFromItsCache,
    /// The field the unchecked route's response has is gone from the
    /// checked route's.
    RemovesFields,
    /// Once its key list has arrived, lets the key through and refuses a
    /// request without one.
    RefusesOnceRefreshed,
}

/// Every step, described. A new step is its folder and an entry here.
pub const DESCRIPTIONS: &[Description] = &[
    Description {
        folder: "step-1-auth",
        language: Language::Rust,
        grows_from: None,
        part_one: true,
        services: &[],
        cases: Cases::ApiKeys,
        bench: Bench {
            name: "step 1, 3 keys",
            filter: BenchFilter::Plugin { json: KEYS_3 },
            request: BenchRequest::Get,
            acts: Acts::Refuses,
        },
    },
    Description {
        folder: "step-2-rate-limit",
        language: Language::Rust,
        grows_from: Some("step-1-auth"),
        part_one: false,
        services: &[],
        cases: Cases::ApiKeys,
        bench: Bench {
            name: "step 2",
            filter: BenchFilter::Plugin {
                json: r#"{"header_name":"x-api-key","valid_keys":["key-000000","key-000001","key-000002"],"requests_per_window":1000000000,"window_seconds":60}"#,
            },
            request: BenchRequest::Get,
            acts: Acts::CountsInSharedData,
        },
    },
    Description {
        folder: "step-3-http-call",
        language: Language::Rust,
        grows_from: Some("step-1-auth"),
        part_one: false,
        services: &[Service::Http {
            cluster: "auth-service",
        }],
        cases: Cases::ApiKeys,
        bench: Bench {
            name: "step 3, warm cache",
            // Everything is about fifty times slower under valgrind.
            filter: BenchFilter::Plugin {
                json: r#"{"header_name":"x-api-key","auth_cluster":"auth_service","auth_authority":"auth_service","auth_path":"/validate","timeout_ms":10000,"cache_valid_seconds":3600,"cache_invalid_seconds":3600,"cache_secret_env":"AUTH_CACHE_SECRET"}"#,
            },
            request: BenchRequest::Get,
            acts: Acts::AnswersFromItsCache,
        },
    },
    Description {
        folder: "step-4-signed-body",
        language: Language::Rust,
        grows_from: None,
        part_one: false,
        services: &[],
        cases: Cases::SignedBodies,
        bench: Bench {
            name: "step 4, a 1 KiB body",
            filter: BenchFilter::HoldingHeaders {
                json: r#"{"scheme":"custom","signature_header":"x-signature-256","secrets":["bench-secret-0123456789abcdef0123456789"],"max_body_bytes":1048576}"#,
            },
            request: BenchRequest::SignedPost {
                secret: "bench-secret-0123456789abcdef0123456789",
            },
            acts: Acts::Refuses,
        },
    },
    Description {
        folder: "step-5-global-rate-limit",
        language: Language::Rust,
        grows_from: Some("step-2-rate-limit"),
        part_one: false,
        services: &[Service::RateLimit],
        cases: Cases::ApiKeys,
        bench: Bench {
            name: "step 5",
            // As long a timeout as the plugin allows: everything is
            // slower under valgrind.
            filter: BenchFilter::Plugin {
                json: r#"{"header_name":"x-api-key","valid_keys":["key-000000","key-000001","key-000002"],"rate_limit":{"descriptor_secret":"bench-descriptor-secret-0123456789","service":{"cluster":"rate_limit_service","domain":"proxy-wasm-book","timeout_ms":10000}}}"#,
            },
            request: BenchRequest::GetToCluster,
            acts: Acts::CountsInRedis,
        },
    },
    Description {
        folder: "step-6-response-guard",
        language: Language::Rust,
        grows_from: None,
        part_one: false,
        services: &[],
        cases: Cases::Own,
        bench: Bench {
            name: "step 6, a 0.3 KiB JSON response",
            filter: BenchFilter::HoldingHeaders {
                json: r#"{"remove_fields":["password_hash","ssn","internal_notes"],"max_body_bytes":65536,"remove_headers":["server","x-powered-by"],"set_headers":{"x-content-type-options":"nosniff"}}"#,
            },
            request: BenchRequest::GetJson,
            acts: Acts::RemovesFields,
        },
    },
    Description {
        folder: "step-7-key-refresh",
        language: Language::Rust,
        grows_from: Some("step-1-auth"),
        part_one: false,
        services: &[Service::Http {
            cluster: "key-service",
        }],
        cases: Cases::ApiKeys,
        bench: Bench {
            name: "step 7",
            // The refresher asks the sink's `/keys` once an hour: no
            // refresh falls inside a measurement, and the list stays
            // fresh for a day.
            filter: BenchFilter::WithSingleton {
                json: r#"{"secret_env":"KEY_LIST_SECRET","filter":{"header_name":"x-api-key","max_key_age_seconds":86400}}"#,
                singleton_json: r#"{"secret_env":"KEY_LIST_SECRET","refresh":{"cluster":"sink","authority":"sink","path":"/keys","every_seconds":3600,"timeout_ms":10000}}"#,
            },
            request: BenchRequest::Get,
            acts: Acts::RefusesOnceRefreshed,
        },
    },
    Description {
        folder: "step-8-tokens",
        language: Language::Rust,
        grows_from: Some("step-7-key-refresh"),
        part_one: false,
        services: &[Service::Http {
            cluster: "key-service",
        }],
        cases: Cases::Own,
        bench: Bench {
            name: "step 8, an RS256 token",
            // The refresher asks the sink's `/jwks` once an hour.
            filter: BenchFilter::WithSingleton {
                json: r#"{"secret_env":"KEY_LIST_SECRET","filter":{"issuer":"https://issuer.example","audiences":["api"],"algorithms":["RS256","ES256"],"clock_skew_seconds":30,"max_key_age_seconds":86400,"realm":"api"}}"#,
                singleton_json: r#"{"secret_env":"KEY_LIST_SECRET","refresh":{"cluster":"sink","authority":"sink","path":"/jwks","every_seconds":3600,"timeout_ms":10000}}"#,
            },
            request: BenchRequest::Bearer {
                private_key: "keys/rsa.pem",
                public_key: "keys/rsa.pub.pem",
                kid: "rsa-1",
                jwks: "keys/jwks.json",
            },
            acts: Acts::RefusesOnceRefreshed,
        },
    },
    Description {
        folder: "go-auth",
        language: Language::Go,
        grows_from: None,
        part_one: false,
        services: &[],
        cases: Cases::ApiKeys,
        bench: Bench {
            name: "step 1 in Go",
            filter: BenchFilter::Plugin { json: KEYS_3 },
            request: BenchRequest::Get,
            acts: Acts::Refuses,
        },
    },
];

/// Step 1's configuration in the benchmark.
const KEYS_3: &str =
    r#"{"header_name":"x-api-key","valid_keys":["key-000000","key-000001","key-000002"]}"#;

#[derive(Clone, Debug)]
pub struct Step {
    pub name: String,
    pub dir: PathBuf,
    pub language: Language,
}

impl Step {
    /// Every described step, sorted by folder name.
    pub fn all() -> Vec<Step> {
        let mut steps: Vec<Step> = DESCRIPTIONS
            .iter()
            .map(|description| Step {
                name: description.folder.to_owned(),
                dir: crate::repo_root().join("code").join(description.folder),
                language: description.language,
            })
            .collect();
        steps.sort_by(|a, b| a.name.cmp(&b.name));
        steps
    }

    /// The step `code/<name>`.
    pub fn named(name: &str) -> Result<Step, String> {
        Step::all()
            .into_iter()
            .find(|step| step.name == name)
            .ok_or_else(|| {
                let known: Vec<String> = Step::all().into_iter().map(|step| step.name).collect();
                format!("unknown step `{name}`; the steps are: {}", known.join(", "))
            })
    }

    /// The step's description; a part-one stage, built like a step, has
    /// none.
    pub fn description(&self) -> Option<&'static Description> {
        DESCRIPTIONS.iter().find(|d| d.folder == self.name)
    }

    /// The cluster of the service the plugin calls over HTTP, if it calls one.
    pub fn http_service_cluster(&self) -> Option<&'static str> {
        self.description()?.services.iter().find_map(|s| match s {
            Service::Http { cluster } => Some(*cluster),
            Service::RateLimit => None,
        })
    }

    /// Whether the step counts requests in Envoy's rate limit service.
    pub fn uses_rate_limit_service(&self) -> bool {
        self.description()
            .is_some_and(|d| d.services.contains(&Service::RateLimit))
    }

    /// The step part one builds (its description's `part_one`).
    pub fn part_one() -> Step {
        let description = DESCRIPTIONS
            .iter()
            .find(|d| d.part_one)
            .expect("one step is part one's");
        Step::named(description.folder).expect("part one's step is described")
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

/// Cargo in a step's folder for its tests on the host, as `cargo xtask
/// test` and `compat` both run them: in `target/steps-host` (shared by the
/// steps, so the host library compiles once per feature set), with the
/// step's own crate compiled by `clippy-driver` (cargo gives
/// RUSTC_WORKSPACE_WRAPPER to workspace members only), which reports what
/// `cargo clippy --tests -- -D warnings` would. Both callers set the same
/// environment, so neither rebuilds what the other built.
pub fn host_test_cargo(dir: &Path) -> Result<Command, String> {
    let mut which = Command::new("rustup");
    which.args(["which", "clippy-driver"]).current_dir(dir);
    if let Some(channel) = pinned_toolchain(dir) {
        which.args(["--toolchain", &channel]);
    }
    let output = which
        .output()
        .map_err(|e| format!("rustup which clippy-driver: {e} (install rustup)"))?;
    if !output.status.success() {
        return Err(format!(
            "rustup which clippy-driver: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let driver = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let mut command = cargo_in(dir);
    command
        .env(
            "CARGO_TARGET_DIR",
            crate::repo_root().join("target/steps-host"),
        )
        .env("RUSTC_WORKSPACE_WRAPPER", driver)
        // The arguments `cargo clippy -- -D warnings` hands the driver.
        .env(
            "CLIPPY_ARGS",
            "-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__",
        );
    Ok(command)
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

impl Cases {
    /// The step whose folder owns these cases: the first described step
    /// that answers them. The others carry a copy of its file.
    pub fn owner(self) -> Option<&'static Description> {
        DESCRIPTIONS.iter().find(|d| d.cases == self)
    }
}

/// The folders under `code/` that hold a plugin (a `Cargo.toml` or a
/// `go.mod`) and have no description: each is an error.
pub fn undescribed_folders() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(crate::repo_root().join("code")) else {
        return Vec::new();
    };
    let mut found: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|dir| dir.join("Cargo.toml").is_file() || dir.join("go.mod").is_file())
        .filter_map(|dir| Some(dir.file_name()?.to_string_lossy().into_owned()))
        .filter(|name| !DESCRIPTIONS.iter().any(|d| d.folder == name))
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_folder_is_described_and_every_description_has_its_folder() {
        assert_eq!(undescribed_folders(), Vec::<String>::new());
        for step in Step::all() {
            let built_by = match step.language {
                Language::Rust => "Cargo.toml",
                Language::Go => "go.mod",
            };
            assert!(
                step.dir.join(built_by).is_file(),
                "{}: no {built_by}",
                step.name
            );
            if let Some(base) = step.description().and_then(|d| d.grows_from) {
                assert!(
                    Step::named(base).is_ok(),
                    "{}: grows from {base}",
                    step.name
                );
            }
        }
        assert_eq!(DESCRIPTIONS.iter().filter(|d| d.part_one).count(), 1);
    }

    /// A step that answers shared cases carries its owner's file, byte
    /// for byte: a run of the owner's cases through Envoy is then a run of
    /// its own.
    #[test]
    fn shared_cases_are_copies_of_their_owners() {
        let file = |folder: &str| {
            std::fs::read(
                crate::repo_root()
                    .join("code")
                    .join(folder)
                    .join("tests/in_process/cases.rs"),
            )
            .ok()
        };
        for d in DESCRIPTIONS.iter().filter(|d| d.cases != Cases::Own) {
            let owner = d.cases.owner().expect("the cases have an owner");
            if let Some(copy) = file(d.folder) {
                assert!(
                    Some(copy) == file(owner.folder),
                    "{}'s in-process cases differ from {}'s",
                    d.folder,
                    owner.folder
                );
            }
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

    /// What a description says a step needs is in its folder: the script
    /// and configuration of the rate limit service, the cluster of the
    /// service it calls.
    #[test]
    fn each_service_a_step_uses_is_in_its_folder() {
        for step in Step::all() {
            assert_eq!(
                step.uses_rate_limit_service(),
                step.rate_limit_service_script().is_file()
                    && step.dir.join("ratelimit/config").is_dir(),
                "{}",
                step.name
            );
            if let Some(cluster) = step.http_service_cluster() {
                let config = std::fs::read_to_string(step.config()).expect("read envoy.yaml");
                assert!(
                    config.contains(&format!("cluster_name: {cluster}\n")),
                    "{}: no cluster {cluster}",
                    step.name
                );
            }
        }
    }
}
