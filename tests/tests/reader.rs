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

/// PATH for the reader's shell: the Envoy the project installed (its venv's
/// `bin/`, exactly what the book's Prerequisites puts on PATH) first.
fn reader_path() -> std::ffi::OsString {
    let envoy = paths::envoy_binary();
    let mut dirs = vec![envoy.parent().expect("envoy has a folder").to_path_buf()];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(dirs).expect("PATH entries are valid")
}

/// Runs `commands` with bash in `cwd`, stopping at the first failing one;
/// returns (standard output, the folder the commands ended in). Standard
/// error is left out of the output: curl writes a progress meter there
/// when its output is not a terminal, which a reader's terminal never shows.
fn run_in_first_terminal(commands: &str, cwd: &Path, log_dir: &Path) -> (String, PathBuf) {
    let cwd_file = log_dir.join("cwd");
    let script = format!("set -e\n{commands}\npwd > '{}'\n", cwd_file.display());
    let output = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(cwd)
        .env("PATH", reader_path())
        .output()
        .expect("run bash");
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

/// Build output of the previous replay, kept beside the replay's folder.
/// It is moved into the new crate as soon as the crate exists (after the
/// book's `cargo new`), so Cargo rebuilds only what changed.
fn reuse_build_output(cache: &Path, cwd: &Path) {
    if cache.is_dir() && cwd.join("Cargo.toml").is_file() && !cwd.join("target").exists() {
        std::fs::rename(cache, cwd.join("target")).expect("move the build cache in");
    }
}

#[test]
fn part_one_replayed_from_an_empty_folder_ends_in_a_working_plugin() {
    let actions = book::actions(&book::chapters_of_part("Your first plugin"));
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::RunInSecondTerminal { .. })),
        "part one never starts Envoy: {actions:#?}"
    );
    let _ports = take_book_ports();
    let root = outside_workspace("part-one");
    let cache = outside_workspace("part-one-target");
    let logs = paths::repo_root().join("target/harness/part-one");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs).expect("create the log folder");
    // The previous replay's crate: keep its build output, drop the rest.
    if let Ok(entries) = std::fs::read_dir(&root) {
        for entry in entries.filter_map(Result::ok) {
            let target = entry.path().join("target");
            if target.is_dir() && !cache.exists() {
                std::fs::rename(&target, &cache).expect("keep the build cache");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("create the empty folder");

    let mut cwd = root.clone();
    let mut second_terminal: Vec<Server> = Vec::new();
    let mut last_output = String::new();
    let mut outputs_compared = 0;
    for (index, action) in actions.iter().enumerate() {
        match action {
            Action::WriteFile { path, content } => {
                let file = cwd.join(path);
                std::fs::create_dir_all(file.parent().expect("a file has a folder"))
                    .expect("create the file's folder");
                std::fs::write(&file, format!("{content}\n")).expect("write the book's file");
            }
            Action::Run { commands, .. } => {
                (last_output, cwd) = run_in_first_terminal(commands, &cwd, &logs);
                reuse_build_output(&cache, &cwd);
            }
            Action::RunInSecondTerminal { commands, chapter } => {
                let mut command = Command::new("bash");
                command
                    .arg("-c")
                    .arg(format!("exec {commands}"))
                    .current_dir(&cwd)
                    .env("PATH", reader_path());
                let log = logs.join(format!("second-terminal-{index}.log"));
                let mut server = Server::start(chapter, command, &log);
                wait_until_ready(&mut server);
                second_terminal.push(server);
            }
            Action::ExpectOutput { captured } => {
                outputs_compared += 1;
                let shown = paths::repo_root().join("src/captured").join(captured);
                if capture::updating() {
                    std::fs::write(&shown, &last_output).expect("write the capture");
                    continue;
                }
                let shown_text = std::fs::read_to_string(&shown)
                    .unwrap_or_else(|e| panic!("{}: {e}", shown.display()));
                assert_eq!(
                    book::normalise_output(&last_output),
                    book::normalise_output(&shown_text),
                    "the output differs from what the book shows ({captured})"
                );
            }
        }
    }
    assert!(
        !second_terminal.is_empty() && outputs_compared > 0,
        "nothing was run against Envoy"
    );
    // Envoy still serves: no step of part one broke it.
    for server in &mut second_terminal {
        assert!(server.exited().is_none(), "{}", server.log());
    }
}

/// Every file of `from` but its build output, copied into `to`, whose own
/// build output (from an earlier run) is kept.
fn refresh_copy(from: &Path, to: &Path) {
    if let Ok(entries) = std::fs::read_dir(to) {
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
    variants::copy_sources(from, to);
}

#[test]
fn every_step_folder_runs_on_its_own_when_copied_out() {
    let all = steps::all_steps();
    assert!(!all.is_empty(), "no steps found under code/");
    let mut sizes = Vec::new();
    for step in &all {
        let copy = outside_workspace("copy-out").join(step);
        refresh_copy(&paths::repo_root().join("code").join(step), &copy);
        // The build command of the step's README, in the copy.
        let wasm = steps::build_in(&copy, step, &copy.join("target"));
        sizes.push((
            step.clone(),
            std::fs::metadata(&wasm).map(|m| m.len()).unwrap_or(0),
        ));

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
    capture::check_or_update_sizes("wasm-sizes.md", &sizes);
}
