//! `cargo xtask compat` runs this: every step against each Envoy release,
//! the Proxy-Wasm imports each module needs against what each host binary
//! holds, step 1 on Loom, and the steps on two host libraries without a
//! proxy; written as the host-compatibility page.
//!
//! Usage: compat --out PAGE --commit SHA --date DATE
//!               --envoy VERSION=PATH ... (oldest first)
//!               (--loom PATH --loom-patched PATH | --no-loom WHY)
//!        compat --check   (the page against this run; see check.rs)

use compat::libraries::LibraryOutcome;
use compat::Measured;
use std::path::PathBuf;

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--check") {
        if let Err(why) = compat::check::run() {
            eprintln!("compat --check: {why}");
            std::process::exit(1);
        }
        eprintln!("compat --check: the host-compatibility page matches this run");
        return;
    }
    if std::env::args().nth(1).as_deref() == Some("--libraries") {
        // The host-library measurements alone, printed (nothing written).
        for (step, wasmtime, java) in libraries() {
            println!("{step}: {wasmtime:?} / {java:?}");
        }
        return;
    }
    let mut args = std::env::args().skip(1);
    let (mut out, mut commit, mut date) = (None, String::new(), String::new());
    let mut releases: Vec<(String, PathBuf)> = Vec::new();
    let mut loom: Result<PathBuf, String> = Err("not given".into());
    let mut loom_patched: Option<PathBuf> = None;
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--out" => out = Some(PathBuf::from(value)),
            "--commit" => commit = value,
            "--date" => date = value,
            "--envoy" => {
                let (version, path) = value.split_once('=').expect("--envoy VERSION=PATH");
                releases.push((version.to_owned(), PathBuf::from(path)));
            }
            "--loom" => loom = Ok(PathBuf::from(value)),
            "--loom-patched" => loom_patched = Some(PathBuf::from(value)),
            "--no-loom" => loom = Err(value),
            _ => panic!("unknown option {flag}"),
        }
    }
    let out = out.expect("--out PAGE");
    let previous = std::fs::read_to_string(&out).unwrap_or_default();

    let imports = compat::step_imports();
    let all: Vec<String> = imports
        .iter()
        .flat_map(|(_, names)| names.clone())
        .collect();
    let mut measured = Measured {
        commit,
        date,
        imports,
        ..Measured::default()
    };
    for (version, envoy) in &releases {
        eprintln!("==> Envoy {version}: every step's check script");
        measured
            .envoy
            .push(compat::run_steps_on_envoy(version, envoy));
        measured.hosts.push((
            format!("Envoy {version}"),
            compat::names_in_binary(envoy, &all),
        ));
    }
    match (&loom, &loom_patched) {
        (Ok(binary), Some(patched)) => {
            eprintln!(
                "==> Loom, as it is and with the book's patches: every step with a loom.yaml"
            );
            measured
                .hosts
                .push(("Loom".into(), compat::names_in_binary(binary, &all)));
            measured.loom = vec![
                compat::run_steps_on_loom(binary, "Loom 0e09cd2"),
                compat::run_steps_on_loom(patched, "Loom 0e09cd2 + the book's patches"),
            ];
        }
        (Err(why), _) => eprintln!("==> Loom not run: {why}"),
        (Ok(_), None) => panic!("--loom needs --loom-patched"),
    }
    eprintln!("==> the steps on two host libraries, without a proxy");
    measured.libraries = libraries();
    let page = compat::page(&measured, &previous, loom.as_ref().err());
    std::fs::write(&out, page).expect("write the page");
    let summary_path = out.with_file_name("host-compatibility-summary.md");
    std::fs::write(&summary_path, compat::summary(&measured)).expect("write the summary");
    eprintln!("==> wrote {} and {}", out.display(), summary_path.display());
}

/// Every step on proxy-wasm-host and on proxy-wasm-java-host.
fn libraries() -> Vec<(String, LibraryOutcome, LibraryOutcome)> {
    let java = compat::libraries::java_driver();
    harness::steps::all_steps()
        .into_iter()
        .map(|step| {
            let wasm = harness::steps::build(&step);
            let wasmtime = compat::libraries::on_wasmtime_library(&step, &wasm);
            let on_java = match &java {
                Ok(class_path) => compat::libraries::on_java_library(&step, &wasm, class_path),
                Err(why) => LibraryOutcome::NotRun(why.clone()),
            };
            eprintln!("    {step}: {wasmtime:?} / {on_java:?}");
            (step, wasmtime, on_java)
        })
        .collect()
}
