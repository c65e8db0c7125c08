//! `cargo xtask bench`: what a plugin costs. Writes results.json, markdown
//! tables and an SVG chart to src/captured/bench/ (the book includes them),
//! or, with `--quick`, runs every configuration with a few requests (each
//! first proven to do its job, proof.rs) and writes to target/bench-quick/
//! so the benchmark cannot rot.

mod body_cost;
mod body_memory;
mod configs;
mod dynamic_module;
mod instructions;
mod measure;
mod proof;
mod raw_abi;
mod report;
mod rows;
mod sizes;
mod startup;

use configs::Filter;
use harness::envoy::Envoy;
use harness::paths;
use harness::rate_limit::{RateLimitService, Redis};
use harness::stack::test_dir;
use project::step::BenchRequest;
use rows::{Config, Table};
use serde_json::json;
use std::path::PathBuf;

/// One CPU configuration on an Envoy process of its own.
struct Setup<'a> {
    config: &'a Config<'a>,
    envoy: Envoy,
    /// The processes a request also costs (step 5's rate limit service
    /// and Redis), measured beside Envoy.
    services: Vec<u32>,
}

impl Setup<'_> {
    fn target(&self) -> proof::Target<'_> {
        self.config
            .request
            .target(&self.config.name, self.envoy.port, self.envoy.admin_port)
    }
}

/// What each request is: a GET to `/checked` and `/unchecked` (under a
/// prefix), or a signed POST to `/body/checked` and `/body/unchecked`.
#[derive(Clone)]
enum Request {
    Get,
    /// A GET through the sink cluster (`/body/checked`, `/body/unchecked`):
    /// for Envoy's rate limit filter, which skips `direct_response` routes.
    GetToCluster,
    /// A GET through the sink cluster's `/json/`, which answers
    /// `configs::USER_JSON`: the response step 6 rewrites.
    GetJson,
    /// A GET through the sink cluster's `/json/` with `x-json-size: <n>`,
    /// which answers `configs::sized_json(n)`: step 6's per-KiB rows.
    GetJsonSized(usize),
    /// A signed POST: the body, the file h2load sends it from, and its
    /// signature header's value.
    SignedPost {
        body: Vec<u8>,
        file: PathBuf,
        signature: String,
    },
    /// A GET with this `authorization` value (a bearer token).
    Bearer(String),
}

impl Request {
    fn path_prefix(&self) -> &'static str {
        match self {
            Request::Get | Request::Bearer(_) => "",
            Request::GetToCluster | Request::SignedPost { .. } => "/body",
            Request::GetJson | Request::GetJsonSized(_) => "/json",
        }
    }

    /// What body_cost.rs runs natively over the same body.
    fn native_work(&self) -> Option<&'static str> {
        match self {
            Request::SignedPost { .. } => Some("verify"),
            Request::GetJsonSized(_) => Some("redact"),
            _ => None,
        }
    }

    /// The bytes of the body the filter reads (request or response), if
    /// it reads one.
    fn body_bytes(&self) -> Option<usize> {
        match self {
            Request::SignedPost { body, .. } => Some(body.len()),
            Request::GetJsonSized(size) => Some(configs::sized_json(*size).len()),
            _ => None,
        }
    }

    /// h2load's arguments for the body and its signature (the key header
    /// every request carries is measure.rs's).
    fn h2load_args(&self) -> Vec<String> {
        match self {
            Request::SignedPost {
                file, signature, ..
            } => vec![
                "-d".into(),
                file.display().to_string(),
                "-H".into(),
                format!("x-signature-256: {signature}"),
            ],
            Request::Bearer(value) => vec!["-H".into(), format!("authorization: {value}")],
            Request::GetJsonSized(size) => vec!["-H".into(), format!("x-json-size: {size}")],
            Request::Get | Request::GetToCluster | Request::GetJson => Vec::new(),
        }
    }

    /// The same requests as a proof sends them (proof.rs).
    fn target<'a>(&'a self, name: &'a str, port: u16, admin_port: u16) -> proof::Target<'a> {
        let mut passing = vec![(
            "x-api-key".to_owned(),
            configs::REQUEST_KEY.as_bytes().to_vec(),
        )];
        let post = match self {
            Request::SignedPost {
                body, signature, ..
            } => {
                passing.push(("x-signature-256".into(), signature.clone().into_bytes()));
                Some(body.as_slice())
            }
            Request::Bearer(value) => {
                passing.push(("authorization".into(), value.clone().into_bytes()));
                None
            }
            Request::GetJsonSized(size) => {
                passing.push(("x-json-size".into(), size.to_string().into_bytes()));
                None
            }
            _ => None,
        };
        proof::Target {
            name,
            port,
            admin_port,
            prefix: self.path_prefix(),
            post,
            passing,
        }
    }
}

/// One configuration's CPU microseconds per request, one entry per round.
#[derive(Default)]
struct Sample {
    /// Envoy, filter on.
    checked: Vec<f64>,
    /// Envoy, filter off.
    unchecked: Vec<f64>,
    /// The services the filter calls, filter on.
    services: Vec<f64>,
}

fn start(name: &str, filter: &Filter, concurrency: u32, rate_limit_port: u16) -> Envoy {
    let dir = test_dir(&format!("bench-{name}"));
    let (config, port, admin) = configs::on_free_ports(filter, rate_limit_port);
    Envoy::start_quiet(&config, port, admin, concurrency, &dir)
        .unwrap_or_else(|log| panic!("{name}: {log}"))
}

/// One configuration's row of the instruction table: proven to act, then
/// counted (`"counted": false` when its Envoy runs without callgrind).
fn count_one(
    envoy: &mut instructions::Counted,
    port: u16,
    config: &Config,
    redis: &Redis,
    quick: bool,
) -> serde_json::Value {
    let (name, request) = (config.name.as_str(), &config.request);
    eprintln!("    {name}");
    // The counts do not vary between requests; large bodies take long
    // under valgrind, so they get fewer.
    let large = request.body_bytes().is_some_and(|bytes| bytes > 4096);
    let (batch, rounds) = match (quick, large) {
        (true, _) => (20, 1),
        (false, true) => (30, 3),
        (false, false) => (1000, 3),
    };
    envoy.wait_until_ready();
    let target = request.target(name, port, envoy.admin_port);
    proof::check(&target, config.acts, redis);
    // What each key or token check does with the ways a credential can
    // arrive.
    let refusals = config
        .refuses
        .as_ref()
        .map(|refuses| match &refuses.inputs {
            rows::Inputs::Keys => proof::refusals(&target, configs::REQUEST_KEY),
            rows::Inputs::Tokens(inputs) => proof::token_refusals(&target, inputs),
        });
    let tables: Vec<String> = config.tables.iter().map(|t| format!("{t:?}")).collect();
    let path = |route: &str| format!("{}{route}", request.path_prefix());
    let extra = request.h2load_args();
    // The first requests compile and warm what the rest reuse.
    if !quick {
        envoy.per_request(port, &path("/checked"), batch / 5, &extra);
        envoy.per_request(port, &path("/unchecked"), batch / 5, &extra);
    }
    let (mut on, mut off) = (Vec::new(), Vec::new());
    let (mut on_objects, mut off_objects) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        if let Some((count, objects)) = envoy.per_request(port, &path("/checked"), batch, &extra) {
            on.push(count);
            on_objects.push(objects);
        }
        if let Some((count, objects)) = envoy.per_request(port, &path("/unchecked"), batch, &extra)
        {
            off.push(count);
            off_objects.push(objects);
        }
    }
    let mut row = json!({
        "name": name, "requests_per_sample": batch, "counted": !on.is_empty(),
        "refusals": refusals, "tables": tables,
        "refusal_inputs": config.refuses.as_ref().map(|r| r.inputs.name()),
        "refuses_with": config.refuses.as_ref().map(|r| r.statuses),
        "body_bytes": request.body_bytes(),
        "native_work": request.native_work(),
    });
    if !on.is_empty() {
        // Where the added instructions ran (instructions.rs's by_object),
        // the median over rounds.
        let objects: std::collections::BTreeSet<&str> = on_objects
            .iter()
            .chain(&off_objects)
            .flat_map(|m| m.keys().copied())
            .collect();
        let added_by_object: serde_json::Map<String, serde_json::Value> = objects
            .into_iter()
            .map(|object| {
                let added: Vec<f64> = on_objects
                    .iter()
                    .zip(&off_objects)
                    .map(|(on, off)| {
                        on.get(object).copied().unwrap_or(0.0)
                            - off.get(object).copied().unwrap_or(0.0)
                    })
                    .collect();
                (object.to_owned(), json!(measure::summary(&added).0))
            })
            .collect();
        row["added_by_object"] = json!(added_by_object);
        let added: Vec<f64> = on.iter().zip(&off).map(|(on, off)| on - off).collect();
        let (added_median, added_min, added_max) = measure::summary(&added);
        row["checked"] = json!(measure::summary(&on).0);
        row["unchecked"] = json!(measure::summary(&off).0);
        row["added"] = json!(added_median);
        row["added_min"] = json!(added_min);
        row["added_max"] = json!(added_max);
    }
    row
}

/// Says which part of the benchmark starts, and when (seconds since the
/// start), so a slow part shows in the log.
fn phase(what: &str) {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(std::time::Instant::now);
    eprintln!("==> {what} (at {:.0} s)", start.elapsed().as_secs_f64());
}

/// A body of `size` bytes, in a file for h2load, signed with `secret`.
fn signed_post(size: usize, secret: &str) -> Request {
    let body = harness::webhook::body_of(size);
    let file = test_dir(&format!("bench-body-{size}")).join("body");
    std::fs::write(&file, &body).expect("write a benchmark body");
    let signature = harness::webhook::signature(secret, &[&body]);
    Request::SignedPost {
        body,
        file,
        signature,
    }
}

fn main() {
    // `--report-only`: the tables again from the last full run's
    // results.json, without measuring anything.
    if std::env::args().any(|a| a == "--report-only") {
        let out = paths::repo_root().join("src/captured/bench");
        let text = std::fs::read_to_string(out.join("results.json")).expect("results.json");
        let results: serde_json::Value = serde_json::from_str(&text).expect("results.json");
        report::write(&out, &results);
        return;
    }
    phase("start");
    let quick = std::env::args().any(|a| a == "--quick");
    let out: PathBuf = if quick {
        paths::repo_root().join("target/bench-quick")
    } else {
        paths::repo_root().join("src/captured/bench")
    };
    std::fs::create_dir_all(&out).expect("create output directory");
    paths::require_tool("h2load", "apt-get install nghttp2-client");

    if let Some(step) = argument("--step") {
        let step = project::step::Step::named(&step).unwrap_or_else(|why| panic!("{why}"));
        one_step(&step, &out);
        return;
    }

    phase("module sizes");
    let step_sizes = sizes::steps();
    let profile_sizes = sizes::profile_variants(quick);

    phase("building the plugins; the rate limit service and Redis");
    let modules = rows::Modules::build();
    let configs = rows::all(&modules);
    // Step 5's services, with a limit no run reaches.
    let services_dir = test_dir("bench-rate-limit-services");
    let redis = Redis::start(&services_dir);
    let rate_limit = RateLimitService::start_with_limits(&services_dir, redis.port, LIMITS);
    let counted: Vec<&Config> = configs
        .iter()
        .filter(|c| c.is_in(Table::Instructions) || c.is_in(Table::PerKib))
        .collect();
    if let Some(probe) = argument("--probe") {
        probe_instructions(&counted, &probe, &rate_limit, &redis);
        return;
    }
    // Quick mode counts the first under valgrind, whose slow start runs
    // beside the CPU part (nobody reads quick figures); the others get the
    // same requests in one plain Envoy. A full run starts each under
    // valgrind after the CPU part, so that valgrind cannot disturb it.
    let quick_envoys = quick.then(|| {
        let rest: Vec<&Filter> = counted[1..].iter().map(|c| &c.filter).collect();
        (
            instructions::Counted::launch(
                "quick-counted",
                &[&counted[0].filter],
                rate_limit.grpc_port,
                true,
            ),
            instructions::Counted::launch("quick-plain", &rest, rate_limit.grpc_port, false),
        )
    });

    phase("CPU per request, every configuration on an Envoy of its own");
    let service_pids = [rate_limit.server.pid(), redis.server.pid()];
    let cpu = cpu_per_request(&configs, &service_pids, &rate_limit, &redis, quick);

    phase("instructions per request (Envoy under callgrind, one worker)");
    let instruction_rows =
        instructions_per_request(&counted, quick_envoys, &rate_limit, &redis, quick);

    // A full run only: it compares no configuration (clippy in the lint
    // stage builds the program), and its build is a fresh machine's
    // longest part of quick mode.
    let body_cost_native = if quick {
        Vec::new()
    } else {
        phase("the same body work natively (step 4's verifier, step 6's redaction)");
        body_cost::native(&redacted_fields())
    };

    phase("start-up: Envoy's time to ready and memory per VM");
    let started: Vec<(&str, &Filter)> = configs
        .iter()
        .filter(|c| c.is_in(Table::StartupBaseline))
        .chain(configs.iter().filter(|c| c.is_in(Table::Startup)))
        .map(|c| (c.name.as_str(), &c.filter))
        .collect();
    let startup = startup::measure(&started, rate_limit.grpc_port, if quick { 1 } else { 5 });
    // Then the services the step-5 configurations called.
    drop(rate_limit);
    drop(redis);

    phase("Envoy's memory with concurrent request bodies, then responses, held");
    let (bodies, responses) = (
        rows::holding(|r| matches!(r, BenchRequest::SignedPost { .. })),
        rows::holding(|r| r == BenchRequest::GetJson),
    );
    let memory = body_memory::measure(bodies, modules.step(bodies), quick);
    let response_memory = body_memory::measure_responses(responses, modules.step(responses), quick);

    // Which Envoy releases load the dynamic module (a full run: xtask
    // passes every release of the compatibility matrix).
    let releases = envoy_releases();
    let dynamic_module_releases = match &modules.dynamic_module {
        Some(library) if !releases.is_empty() => {
            phase("the dynamic module on each Envoy release");
            dynamic_module::across_releases(library, &releases)
        }
        _ => Vec::new(),
    };

    let results = json!({
        "quick": quick,
        "body_cost_native": body_cost_native,
        "dynamic_module_releases": dynamic_module_releases,
        "rounds": if quick { 1 } else { ROUNDS },
        "machine": report::machine(),
        "sizes": step_sizes,
        "profile_variants": profile_sizes,
        "cpu": cpu,
        "instructions": instruction_rows,
        "body_memory": memory,
        "response_memory": response_memory,
        "startup": startup,
    });
    report::write(&out, &results);
    if quick {
        // Statuses do not vary between runs: a quick run must find what
        // the last full run wrote for the book.
        let committed = paths::repo_root().join("src/captured/bench");
        for table in ["refusals.md", "token-refusals.md"] {
            let read = |dir: &std::path::Path| {
                std::fs::read_to_string(dir.join(table)).unwrap_or_default()
            };
            assert_eq!(
                read(&out),
                read(&committed),
                "the checks answered differently from src/captured/bench/{table} \
                 (a full `cargo xtask bench` writes it)"
            );
        }
    }
    eprintln!("==> results in {}", out.display());
}

/// The fields step 6's benchmark configuration removes.
fn redacted_fields() -> Vec<String> {
    let responses = rows::holding(|r| r == BenchRequest::GetJson);
    let json: serde_json::Value =
        serde_json::from_str(rows::json_of(responses)).expect("a step's benchmark JSON");
    json["remove_fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_owned))
        .collect()
}

/// `--envoy RELEASE=BINARY`, each time given: the releases the dynamic
/// module is tried on.
fn envoy_releases() -> Vec<(String, PathBuf)> {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2)
        .filter(|pair| pair[0] == "--envoy")
        .filter_map(|pair| {
            pair[1]
                .split_once('=')
                .map(|(release, binary)| (release.to_owned(), PathBuf::from(binary)))
        })
        .collect()
}

/// Rounds of the CPU measurement in a full run (plus one to warm up).
const ROUNDS: usize = 7;

/// The value after `flag`, if given.
fn argument(flag: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// `--quick --step NAME`: only the step's own row, as its description
/// says (proven to act, the nine key requests for a key check, a few
/// requests on a plain Envoy), printed and written to
/// `<out>/step-NAME.json`: a new step's row before a full run.
fn one_step(step: &project::step::Step, out: &std::path::Path) {
    let description = step
        .description()
        .unwrap_or_else(|| panic!("{} has no description", step.name));
    let modules = rows::Modules::only(step);
    let config = rows::step_row(&modules, description);
    let dir = test_dir("bench-step-services");
    let redis = Redis::start(&dir);
    let rate_limit = RateLimitService::start_with_limits(&dir, redis.port, LIMITS);
    let mut envoy =
        instructions::Counted::launch(&step.name, &[&config.filter], rate_limit.grpc_port, false);
    let port = envoy.ports[0];
    let row = count_one(&mut envoy, port, &config, &redis, true);
    println!("{row}");
    let path = out.join(format!("step-{}.json", step.name));
    std::fs::write(&path, format!("{row}\n")).expect("write the row");
}

/// The rate limit service's limits here: none a run reaches.
const LIMITS: &str = "domain: proxy-wasm-book\ndescriptors:\n  - key: api_key_hash\n    rate_limit:\n      unit: hour\n      requests_per_unit: 1000000000\n";

/// `--probe TEXT`: only the counted configurations whose name contains
/// TEXT, each under callgrind, printed and not written: for trying a
/// change before a full run.
fn probe_instructions(
    counted: &[&Config],
    probe: &str,
    rate_limit: &RateLimitService,
    redis: &Redis,
) {
    for config in counted.iter().filter(|c| c.name.contains(probe)) {
        let file_name = format!("probe-{}", file_name(&config.name));
        let mut envoy = instructions::Counted::launch(
            &file_name,
            &[&config.filter],
            rate_limit.grpc_port,
            true,
        );
        let port = envoy.ports[0];
        println!("{}", count_one(&mut envoy, port, config, redis, false));
    }
}

fn file_name(name: &str) -> String {
    name.replace([' ', ',', '(', ')', '\''], "-")
}

/// CPU microseconds per request of each configuration in the CPU table,
/// with its filter and without, in interleaved rounds.
fn cpu_per_request(
    configs: &[Config],
    service_pids: &[u32],
    rate_limit: &RateLimitService,
    redis: &Redis,
    quick: bool,
) -> Vec<serde_json::Value> {
    let (requests, rounds): (u64, usize) = if quick { (200, 1) } else { (100_000, ROUNDS) };
    let setups: Vec<Setup> = configs
        .iter()
        .filter(|c| c.cpu().is_some())
        .map(|config| {
            eprintln!("    {}", config.name);
            let Some(Table::Cpu { workers, .. }) = config.cpu() else {
                unreachable!("filtered above")
            };
            Setup {
                config,
                envoy: start(
                    &file_name(&config.name),
                    &config.filter,
                    workers,
                    rate_limit.grpc_port,
                ),
                services: if config.services {
                    service_pids.to_vec()
                } else {
                    Vec::new()
                },
            }
        })
        .collect();
    for setup in &setups {
        proof::check(&setup.target(), setup.config.acts, redis);
    }
    let share = |setup: &Setup| match setup.config.cpu() {
        Some(Table::Cpu { share, .. }) => share,
        _ => 1.0,
    };
    let count =
        |setup: &Setup| ((requests as f64 * share(setup)) as u64).max(if quick { 20 } else { 50 });
    // samples[setup] = (checked, unchecked, services on checked) per
    // round, interleaved so that drift on the machine touches every
    // configuration alike.
    let mut samples: Vec<Sample> = setups.iter().map(|_| Sample::default()).collect();
    // Round 0 warms up (V8's compiled code, Envoy's connection pools and
    // caches) and is not counted.
    for round in 0..=rounds {
        eprintln!(
            "==> round {round} of {rounds}{}",
            if round == 0 { " (warm-up)" } else { "" }
        );
        for (setup, sample) in setups.iter().zip(samples.iter_mut()) {
            let request = &setup.config.request;
            let url = |path: &str| {
                format!(
                    "http://127.0.0.1:{}{}{path}",
                    setup.envoy.port,
                    request.path_prefix()
                )
            };
            let pids: Vec<u32> = std::iter::once(setup.envoy.server.pid())
                .chain(setup.services.iter().copied())
                .collect();
            let extra = &request.h2load_args();
            let n = if round == 0 {
                (count(setup) / 10).max(20)
            } else {
                count(setup)
            };
            // Which route goes first alternates, so that neither always
            // runs on a cache the other has just warmed.
            let (checked, unchecked) = if round % 2 == 1 {
                let checked = measure::cpu_us_per_request(&pids, &url("/checked"), n, extra);
                let unchecked = measure::cpu_us_per_request(&pids, &url("/unchecked"), n, extra);
                (checked, unchecked)
            } else {
                let unchecked = measure::cpu_us_per_request(&pids, &url("/unchecked"), n, extra);
                let checked = measure::cpu_us_per_request(&pids, &url("/checked"), n, extra);
                (checked, unchecked)
            };
            if round == 0 {
                continue;
            }
            sample.checked.push(checked[0]);
            sample.unchecked.push(unchecked[0]);
            sample.services.push(checked[1..].iter().sum());
        }
    }
    let mut cpu = Vec::new();
    for (setup, sample) in setups.iter().zip(&samples) {
        let Some(Table::Cpu {
            group,
            keys,
            workers,
            chart,
            ..
        }) = setup.config.cpu()
        else {
            continue;
        };
        let added: Vec<f64> = sample
            .checked
            .iter()
            .zip(&sample.unchecked)
            .map(|(c, u)| c - u)
            .collect();
        let (added_median, added_min, added_max) = measure::summary(&added);
        cpu.push(json!({
            "name": setup.config.name, "group": group, "keys": keys, "chart": chart,
            "concurrency": workers, "requests_per_sample": count(setup),
            "checked_us": measure::summary(&sample.checked).0,
            "unchecked_us": measure::summary(&sample.unchecked).0,
            "added_us": added_median, "added_min_us": added_min, "added_max_us": added_max,
        }));
        if !setup.services.is_empty() {
            // The services' CPU on the unchecked route is zero: nothing
            // calls them there.
            let (median, min, max) = measure::summary(&sample.services);
            cpu.push(json!({
                "name": format!("{}: rate limit service + Redis", setup.config.name),
                "group": "fleet-services", "keys": keys,
                "concurrency": workers, "requests_per_sample": count(setup),
                "checked_us": median, "unchecked_us": 0.0,
                "added_us": median, "added_min_us": min, "added_max_us": max,
            }));
        }
    }
    // Envoys are stopped by PID when `setups` is dropped.
    cpu
}

/// Each counted configuration's row of the instruction table.
fn instructions_per_request(
    counted: &[&Config],
    quick_envoys: Option<(instructions::Counted, instructions::Counted)>,
    rate_limit: &RateLimitService,
    redis: &Redis,
    quick: bool,
) -> Vec<serde_json::Value> {
    let mut rows = Vec::new();
    match quick_envoys {
        Some((mut counted_one, mut plain)) => {
            let port = counted_one.ports[0];
            rows.push(count_one(&mut counted_one, port, counted[0], redis, quick));
            for (config, port) in counted[1..].iter().zip(plain.ports.clone()) {
                rows.push(count_one(&mut plain, port, config, redis, quick));
            }
        }
        None => {
            // One Envoy under valgrind at a time; configurations one after
            // another with the same filter (a step at several body sizes)
            // share one.
            let mut running: Option<(String, instructions::Counted)> = None;
            for config in counted {
                let filter = configs::filter_yaml(&config.filter);
                if running.as_ref().map(|(f, _)| f) != Some(&filter) {
                    // The last one stops first: two under valgrind at once
                    // would not fit in memory.
                    drop(running.take());
                    let envoy = instructions::Counted::launch(
                        &file_name(&config.name),
                        &[&config.filter],
                        rate_limit.grpc_port,
                        true,
                    );
                    running = Some((filter, envoy));
                }
                let Some((_, envoy)) = running.as_mut() else {
                    unreachable!("launched above")
                };
                let port = envoy.ports[0];
                rows.push(count_one(envoy, port, config, redis, quick));
            }
        }
    }
    rows
}
