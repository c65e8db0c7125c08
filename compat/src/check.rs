//! `compat --check`, which `cargo xtask test` runs after the harness: the
//! host-compatibility measurements (written by `cargo xtask compat`) still
//! describe the code, and the page and its summary are what they say. The
//! pinned release's verdicts must be this very run's (the harness records
//! each check output under `target/this-run/`); each module's imports as
//! they are now; every release of the matrix, by its exact name; the
//! in-process tests on proxy-wasm-host, run again here, with the page's
//! verdicts; and proxy-wasm-java-host given the cases each step's
//! description says it answers. It never writes.

use crate::libraries::{self, LibraryOutcome};
use crate::{module_imports, page, page_path, parse_checks, summary, summary_path, Measured};
use harness::{stack, steps};
use project::step::{Cases, Step};

pub fn run() -> Result<(), String> {
    let measured = Measured::read()?;
    for (path, text) in [
        (page_path(), page(&measured)),
        (summary_path(), summary(&measured)),
    ] {
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            return Err(format!(
                "{} is not what the measurements say; run `cargo xtask compat`",
                path.display()
            ));
        }
    }
    let releases: Vec<&str> = measured.envoy.iter().map(|(r, _)| r.as_str()).collect();
    if releases != project::envoy::releases() {
        return Err(format!(
            "the page's releases {releases:?} are not the matrix's {:?}; run `cargo xtask compat`",
            project::envoy::releases()
        ));
    }
    for step in steps::all_steps() {
        let missing = || {
            format!(
                "{step} is not on the host-compatibility page: run `cargo xtask compat --step \
                 {step}` (this release, Loom and the libraries) or `cargo xtask compat`"
            )
        };
        let on_pinned = measured
            .envoy
            .iter()
            .find(|(release, _)| release == project::envoy::VERSION)
            .and_then(|(_, runs)| runs.iter().find(|(s, _)| *s == step))
            .ok_or_else(missing)?;
        pinned_verdicts_match_this_run(&step, &on_pinned.1)?;
        let imports = measured
            .imports
            .iter()
            .find(|(s, _)| *s == step)
            .ok_or_else(missing)?;
        let bytes = std::fs::read(steps::build(&step)).map_err(|e| e.to_string())?;
        if imports.1 != module_imports(&bytes) {
            return Err(format!(
                "{step}: the module's imports changed; run `cargo xtask compat --step {step}`"
            ));
        }
        let (_, wasmtime, java) = measured
            .libraries
            .iter()
            .find(|(s, _, _)| *s == step)
            .ok_or_else(missing)?;
        libraries_match(&step, wasmtime, java)?;
    }
    if measured.loom.is_empty() {
        return Err("the page has no Loom columns; run `cargo xtask compat` with Loom".into());
    }
    Ok(())
}

/// `pass` or `FAIL` for each check, in order, as this run's check script
/// printed them.
fn pinned_verdicts_match_this_run(step: &str, outcome: &crate::Outcome) -> Result<(), String> {
    let verdicts = |checks: &[crate::Check]| -> Vec<(String, bool)> {
        checks.iter().map(|c| (c.name.clone(), c.passed)).collect()
    };
    let page = verdicts(outcome.as_deref().unwrap_or_default());
    let output = stack::check_output_of_this_run(step)?;
    let now = verdicts(&parse_checks(&output));
    if now.is_empty() {
        return Err(format!("{step}: this run's check output has no checks"));
    }
    // The page keys its rows by check name: two checks of one name would
    // share a row.
    let mut names: Vec<&str> = now.iter().map(|(name, _)| name.as_str()).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(format!(
            "{step}: two checks in check.sh are named `{}`: give each its own name",
            pair[0]
        ));
    }
    if page != now {
        return Err(format!(
            "{step}: the host-compatibility page is out of date; run `cargo xtask compat`\n\
             page:     {page:?}\nthis run: {now:?}"
        ));
    }
    Ok(())
}

/// The in-process tests give the page's verdict again; the Java library
/// was given the cases the description names, every one of them, or none
/// for a step whose cases are its own.
fn libraries_match(
    step: &str,
    wasmtime: &LibraryOutcome,
    java: &LibraryOutcome,
) -> Result<(), String> {
    let now = libraries::on_wasmtime_library(step, &steps::build(step));
    if now != *wasmtime {
        return Err(format!(
            "{step} on {}: the page says {wasmtime:?}, this run {now:?}; run `cargo xtask compat \
             --step {step}`",
            libraries::WASMTIME_LIBRARY
        ));
    }
    let cases = match Step::named(step)?.description().map(|d| d.cases) {
        Some(Cases::ApiKeys) => Some(libraries::api_key_case_count()),
        Some(Cases::SignedBodies) => Some(libraries::signed_body_case_count()),
        Some(Cases::Own) | None => None,
    };
    let consistent = match (java, cases) {
        (LibraryOutcome::NotApplicable(_), None) => true,
        (LibraryOutcome::Passed { cases: ran, .. }, Some(n)) => *ran == n,
        (LibraryOutcome::Partly { cases: ran, cannot }, Some(n)) => ran + cannot.len() == n,
        (LibraryOutcome::Failed(failed), Some(n)) => !failed.is_empty() && failed.len() <= n,
        // Not loaded, or not run: no case ran.
        (LibraryOutcome::NotLoaded(_) | LibraryOutcome::NotRun(_), Some(_)) => true,
        _ => false,
    };
    if !consistent {
        return Err(format!(
            "{step} on {}: the page shows {java:?}, but its description gives it {}; run `cargo \
             xtask compat --step {step}`",
            libraries::JAVA_LIBRARY,
            cases.map_or("no cases".to_owned(), |n| format!("{n} cases"))
        ));
    }
    Ok(())
}
