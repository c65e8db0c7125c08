//! `compat --check`, which `cargo xtask test` runs after the harness: the
//! host-compatibility page (written by `cargo xtask compat`) still
//! describes the code. Its column for the release the book pins must match
//! the check scripts' verdicts of this very run (the harness records each
//! one under `target/this-run/`), and its ABI table must list each module's
//! imports as they are now. It reads the page; it never writes it.

use crate::{module_imports, page_column, page_imports, parse_checks};
use harness::{paths, stack, steps};

pub fn run() -> Result<(), String> {
    let path = paths::repo_root().join("src/captured/host-compatibility.md");
    let page = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e}; run `cargo xtask compat`", path.display()))?;
    has_every_release_and_loom(&page)?;
    for step in steps::all_steps() {
        pinned_column_matches_this_run(&page, &step)?;
        let bytes = std::fs::read(steps::build(&step)).map_err(|e| e.to_string())?;
        if page_imports(&page, &step) != module_imports(&bytes) {
            return Err(format!(
                "{step}: the module's imports changed; run `cargo xtask compat`"
            ));
        }
    }
    Ok(())
}

fn pinned_column_matches_this_run(page: &str, step: &str) -> Result<(), String> {
    // `pass`, or `FAIL: <what it got>`: the verdicts are compared.
    let column: Vec<(String, String)> = page_column(page, step, project::envoy::VERSION)
        .into_iter()
        .map(|(check, cell)| (check, cell.split(':').next().unwrap_or_default().to_owned()))
        .collect();
    let output = stack::check_output_of_this_run(step)?;
    let now: Vec<(String, String)> = parse_checks(&output)
        .into_iter()
        .map(|check| {
            let cell = if check.passed { "pass" } else { "FAIL" };
            (check.name.replace('|', "\\|"), cell.to_owned())
        })
        .collect();
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
    if column != now {
        return Err(format!(
            "{step}: the host-compatibility page is out of date; run `cargo xtask compat`\n\
             page:     {column:?}\nthis run: {now:?}"
        ));
    }
    Ok(())
}

fn has_every_release_and_loom(page: &str) -> Result<(), String> {
    if !page.contains("Measured on ") {
        return Err("the page does not say when it was measured".into());
    }
    for release in project::envoy::releases() {
        let found = page
            .lines()
            .any(|line| line.starts_with("| check |") && line.contains(&release));
        if !found {
            return Err(format!("the page has no Envoy {release} column"));
        }
    }
    if !(page.contains("<!-- loom:begin -->") && page.contains("<!-- loom:end -->")) {
        return Err("the page has no Loom section".into());
    }
    let libraries = page
        .split_once("## Two host libraries")
        .map(|(_, rest)| rest)
        .ok_or("the page has no host-library section")?;
    for step in harness::steps::all_steps() {
        if !libraries
            .lines()
            .any(|l| l.starts_with(&format!("| {step} |")))
        {
            return Err(format!("the host-library table has no row for {step}"));
        }
    }
    Ok(())
}
