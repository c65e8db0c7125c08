//! The steps on two Proxy-Wasm host libraries, without a proxy:
//! proxy-wasm-host (wasmtime; each Rust step's own `cargo test` suite in
//! `tests/in_process/`, and the Go module loaded by `wasm-host-load`), and
//! proxy-wasm-java-host (Chicory; the API-key cases of step 1's
//! `cases.rs`, driven by `java-host/`'s RunCases).

use harness::in_process_cases::api_key::{Expected, CASES};
use project::step::Cases;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const WASMTIME_LIBRARY: &str = "proxy-wasm-host 0.2.0";
pub const JAVA_LIBRARY: &str = "proxy-wasm-java-host 0.0.5";

/// A step on a host library.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum LibraryOutcome {
    /// Every case passed: how many cases, in how many tests.
    Passed { cases: usize, tests: usize },
    /// These cases or tests failed (each with what it got).
    Failed(Vec<String>),
    /// These cases passed; the library has no way to send the others.
    Partly { cases: usize, cannot: Vec<String> },
    /// The library refused the module or its configuration, with why.
    NotLoaded(String),
    /// Not run, with why.
    NotRun(String),
    /// No cases for this library apply to the step, with why.
    NotApplicable(String),
}

fn code(step: &str) -> PathBuf {
    project::repo_root().join("code").join(step)
}

/// The target directory the steps' host-side builds share (the same as
/// `cargo xtask test`'s), so the library compiles once.
fn host_target() -> PathBuf {
    project::repo_root().join("target/steps-host")
}

/// The step's own in-process tests (`cargo test --test in_process` in its
/// folder); for a step without them (the Go step), whether the library
/// instantiates its module.
pub fn on_wasmtime_library(step: &str, wasm: &Path) -> LibraryOutcome {
    let dir = code(step);
    if !dir.join("tests/in_process").is_dir() {
        return load_only(wasm);
    }
    // As `cargo xtask test` builds them, so what it built is reused.
    let mut command = match project::step::host_test_cargo(&dir) {
        Ok(command) => command,
        Err(why) => return LibraryOutcome::NotRun(why),
    };
    command
        .args(["test", "--quiet", "--locked", "--test", "in_process"])
        .args(["--", "--nocapture", "--test-threads=1"]);
    let output = match command.output() {
        Ok(output) => output,
        Err(e) => return LibraryOutcome::NotRun(format!("cargo test: {e}")),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    // With --nocapture a test's first line follows `test NAME ... ` on
    // the same line: count the verdicts wherever they start.
    let cases = stdout.matches("PASS  ").count();
    let tests = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("test result: "))
        .filter_map(|l| {
            l.split_once(" passed")
                .map(|(n, _)| n.trim_start_matches("ok. "))
        })
        .filter_map(|n| n.trim_start_matches("FAILED. ").parse::<usize>().ok())
        .sum();
    let failed: Vec<String> = stdout
        .lines()
        .filter_map(|l| {
            l.split_once("FAIL  ")
                .map(|(_, case)| case)
                .or_else(|| l.strip_suffix(" ... FAILED"))
        })
        .map(str::to_owned)
        .collect();
    match (output.status.success(), failed.is_empty()) {
        (true, true) => LibraryOutcome::Passed { cases, tests },
        (_, false) => LibraryOutcome::Failed(failed),
        (false, true) => LibraryOutcome::NotRun(format!(
            "cargo test failed: {}",
            last_line(&String::from_utf8_lossy(&output.stderr))
        )),
    }
}

/// `wasm-host-load`'s verdict on `wasm`.
fn load_only(wasm: &Path) -> LibraryOutcome {
    let loader = project::repo_root().join("compat/wasm-host-load");
    let mut command = project::step::cargo_in(&loader);
    command
        .args(["run", "--quiet", "--locked", "--"])
        .arg(wasm)
        .env("CARGO_TARGET_DIR", host_target());
    match command.output() {
        Err(e) => LibraryOutcome::NotRun(format!("wasm-host-load: {e}")),
        Ok(output) => {
            let said = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            match said.strip_prefix("not loaded: ") {
                Some(why) => LibraryOutcome::NotLoaded(why.to_owned()),
                None if said == "loaded" => {
                    LibraryOutcome::NotRun("it loads, but has no in-process tests to run".into())
                }
                None => LibraryOutcome::NotRun(format!(
                    "wasm-host-load: {said} {}",
                    last_line(&String::from_utf8_lossy(&output.stderr))
                )),
            }
        }
    }
}

fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .to_owned()
}

/// How many API-key cases there are.
pub fn api_key_case_count() -> usize {
    CASES.len()
}

/// How many signed-body cases there are.
pub fn signed_body_case_count() -> usize {
    crate::cases::CASES.len()
}

/// The API-key cases in RunCases' format (`case`, `header NAME HEX`,
/// `expect ...` lines).
pub fn api_key_cases_file() -> String {
    let mut text = String::new();
    for case in CASES {
        let _ = writeln!(text, "case {}", case.name);
        for (name, value) in case.headers {
            let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
            let _ = writeln!(text, "header {name} {hex}");
        }
        let _ = match case.expected {
            Expected::Refused(status, body) => writeln!(text, "expect refused {status} {body}"),
            Expected::Passed => writeln!(text, "expect passed"),
        };
    }
    text
}

/// Step 4's cases in RunCases' format, signed for now (openssl, by the
/// in-process tests' sender), each body in the pieces the case says.
pub fn signed_body_cases_file() -> String {
    use crate::cases::{Arrival, Expected, CASES};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let mut text = String::new();
    for case in CASES {
        let (headers, body) = crate::sender::request(case, now);
        let _ = writeln!(text, "case {}", case.name);
        let _ = writeln!(text, "request POST /webhooks/github");
        for (name, value) in &headers {
            let _ = writeln!(text, "header {name} {}", hex(value));
        }
        let pieces: Vec<&[u8]> = match case.arrival {
            _ if body.is_empty() => Vec::new(),
            Arrival::Pieces(size) => body.chunks(size).collect(),
            Arrival::Whole | Arrival::WithTrailers => vec![&body],
        };
        for piece in pieces {
            let _ = writeln!(text, "body {}", hex(piece));
        }
        if let Arrival::WithTrailers = case.arrival {
            let _ = writeln!(text, "trailers");
        }
        let _ = match case.expected {
            Expected::Refused(status, body) => writeln!(text, "expect refused {status} {body}"),
            Expected::Passed => writeln!(text, "expect forwarded"),
        };
    }
    text
}

/// The RunCases program, compiled, and its class path; `Err` with why
/// when Maven cannot build it.
pub fn java_driver() -> Result<String, String> {
    let dir = project::repo_root().join("compat/java-host");
    let output = Command::new("mvn")
        .args(["-q", "-B", "compile", "dependency:build-classpath"])
        .arg("-Dmdep.outputFile=target/classpath.txt")
        .current_dir(&dir)
        .output()
        .map_err(|e| {
            format!(
                "mvn: {e} (install Maven and Java 17: apt-get install maven default-jdk-headless)"
            )
        })?;
    if !output.status.success() {
        return Err(format!(
            "mvn failed: {}",
            last_line(&String::from_utf8_lossy(&output.stdout))
        ));
    }
    let dependencies = std::fs::read_to_string(dir.join("target/classpath.txt"))
        .map_err(|e| format!("the class path Maven wrote: {e}"))?;
    Ok(format!(
        "{}:{}",
        dir.join("target/classes").display(),
        dependencies.trim()
    ))
}

/// The step's module on proxy-wasm-java-host, with the shared cases its
/// description says it answers; "not applicable" for a step whose cases
/// are its own.
pub fn on_java_library(step: &str, wasm: &Path, class_path: &str) -> LibraryOutcome {
    let cases = match project::step::Step::named(step)
        .ok()
        .and_then(|s| s.description())
        .map(|d| d.cases)
    {
        Some(Cases::ApiKeys) => api_key_cases_file(),
        Some(Cases::SignedBodies) => signed_body_cases_file(),
        Some(Cases::Own) | None => {
            return LibraryOutcome::NotApplicable(
                "its cases are its own (no driver for them)".into(),
            )
        }
    };
    let Some(configuration) = harness::envoy::EnvoyConfig::for_step(step).plugin_configuration()
    else {
        return LibraryOutcome::NotRun("no plugin configuration in envoy.yaml".into());
    };
    let dir = harness::stack::test_dir(&format!("compat-java-{step}"));
    let (config_file, cases_file) = (dir.join("configuration.json"), dir.join("cases.txt"));
    if let Err(e) = std::fs::write(&config_file, configuration)
        .and_then(|()| std::fs::write(&cases_file, cases))
    {
        return LibraryOutcome::NotRun(format!("writing the cases: {e}"));
    }
    let output = Command::new("java")
        .args(["-cp", class_path, "book.RunCases"])
        .arg(wasm)
        .args([&config_file, &cases_file])
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) => return LibraryOutcome::NotRun(format!("java: {e}")),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    if let Some(line) = stdout.lines().find(|l| l.starts_with("NOT LOADED  ")) {
        let logged: Vec<&str> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("LOG  "))
            .filter(|l| l.starts_with("ERROR") || l.starts_with("CRITICAL"))
            .collect();
        let why = line.trim_start_matches("NOT LOADED  ");
        return LibraryOutcome::NotLoaded(if logged.is_empty() {
            why.to_owned()
        } else {
            format!("{why}; the plugin logged: {}", logged.join(" / "))
        });
    }
    let cases = stdout.lines().filter(|l| l.starts_with("PASS  ")).count();
    let failed: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("FAIL  "))
        .map(str::to_owned)
        .collect();
    let cannot: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("CANNOT  "))
        .map(|l| format!("cannot send {l}"))
        .collect();
    match (output.status.success(), failed.is_empty(), cases) {
        (_, false, _) => LibraryOutcome::Failed(failed.into_iter().chain(cannot).collect()),
        (true, true, n) if n > 0 && !cannot.is_empty() => {
            LibraryOutcome::Partly { cases: n, cannot }
        }
        (true, true, n) if n > 0 => LibraryOutcome::Passed { cases: n, tests: 1 },
        _ => LibraryOutcome::NotRun(format!(
            "RunCases: {}",
            last_line(&String::from_utf8_lossy(&output.stderr))
        )),
    }
}
