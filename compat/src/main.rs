//! `cargo xtask compat` runs this: every step against each Envoy release,
//! the Proxy-Wasm imports each module needs against what each host binary
//! holds, the steps on Loom, and the steps on two host libraries without a
//! proxy; kept as src/captured/host-compatibility.json and written as the
//! host-compatibility page and its summary.
//!
//! Usage: compat --commit SHA --date DATE
//!               --envoy VERSION=PATH ... (oldest first)
//!               [--loom PATH --loom-patched PATH]
//!               [--step NAME]   (only this step, into the last measurements)
//!        compat --check   (the page against this run; see check.rs)
//!        compat --render  (the page again from the measurements)

use compat::libraries::LibraryOutcome;
use compat::Measured;
use std::path::PathBuf;

fn main() {
    if let Err(why) = run() {
        eprintln!("compat: {why}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    if std::env::args().nth(1).as_deref() == Some("--check") {
        compat::check::run()?;
        eprintln!("compat --check: the host-compatibility page matches this run");
        return Ok(());
    }
    if std::env::args().nth(1).as_deref() == Some("--render") {
        // The page and its summary written again from the measurements,
        // after a change to how they are laid out; nothing measured.
        return Measured::read()?.write();
    }
    let mut args = std::env::args().skip(1);
    let mut measured = Measured::default();
    let mut releases: Vec<(String, PathBuf)> = Vec::new();
    let (mut loom, mut loom_patched, mut only) = (None, None, None);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--commit" => measured.commit = value,
            "--date" => measured.date = value,
            "--envoy" => {
                let (version, path) = value.split_once('=').ok_or("--envoy VERSION=PATH")?;
                releases.push((version.to_owned(), PathBuf::from(path)));
            }
            "--loom" => loom = Some(PathBuf::from(value)),
            "--loom-patched" => loom_patched = Some(PathBuf::from(value)),
            "--step" => only = Some(value),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    let steps: Vec<String> = match &only {
        Some(step) => vec![project::step::Step::named(step)?.name],
        None => harness::steps::all_steps(),
    };
    // Without Loom this time, a full run keeps the last Loom columns, each
    // with the date it was measured on.
    let previous = Measured::read();

    measured.imports = compat::step_imports(&steps);
    let all: Vec<String> = measured
        .imports
        .iter()
        .flat_map(|(_, names)| names.clone())
        .collect();
    for (version, envoy) in &releases {
        eprintln!("==> Envoy {version}: the check scripts");
        measured
            .envoy
            .push(compat::run_steps_on_envoy(&steps, version, envoy));
        measured.hosts.push((
            format!("Envoy {version}"),
            compat::names_in_binary(envoy, &all),
        ));
    }
    match (&loom, &loom_patched) {
        (Some(binary), Some(patched)) => {
            eprintln!("==> Loom, as it is and with the book's patches");
            let when = format!("{} (book commit `{}`)", measured.date, measured.commit);
            measured
                .hosts
                .push(("Loom".into(), compat::names_in_binary(binary, &all)));
            measured.loom = vec![
                compat::run_steps_on_loom(&steps, binary, "Loom 0e09cd2", &when),
                compat::run_steps_on_loom(
                    &steps,
                    patched,
                    "Loom 0e09cd2 + the book's patches",
                    &when,
                ),
            ];
        }
        (None, None) => eprintln!("==> Loom not given"),
        _ => return Err("--loom and --loom-patched go together".into()),
    }
    eprintln!("==> the steps on two host libraries, without a proxy");
    measured.libraries = libraries(&steps);

    let measured = match (only, previous) {
        (Some(step), Ok(mut previous)) => {
            previous.replace_step(&step, measured);
            previous
        }
        (Some(_), Err(why)) => return Err(format!("--step adds to the last measurements: {why}")),
        (None, previous) => {
            if let (true, Ok(previous)) = (measured.loom.is_empty(), previous) {
                measured.loom = previous.loom;
                let loom = previous
                    .hosts
                    .into_iter()
                    .filter(|(host, _)| host == "Loom");
                measured.hosts.extend(loom);
            }
            measured
        }
    };
    measured.write()?;
    eprintln!("==> wrote {}", Measured::path().display());
    Ok(())
}

/// `steps` on proxy-wasm-host and on proxy-wasm-java-host.
fn libraries(steps: &[String]) -> Vec<(String, LibraryOutcome, LibraryOutcome)> {
    let java = compat::libraries::java_driver();
    steps
        .iter()
        .map(|step| {
            let wasm = harness::steps::build(step);
            let wasmtime = compat::libraries::on_wasmtime_library(step, &wasm);
            let on_java = match &java {
                Ok(class_path) => compat::libraries::on_java_library(step, &wasm, class_path),
                Err(why) => LibraryOutcome::NotRun(why.clone()),
            };
            eprintln!("    {step}: {wasmtime:?} / {on_java:?}");
            (step.clone(), wasmtime, on_java)
        })
        .collect()
}
