//! `cargo xtask bench`: what a plugin costs. Writes results.json, markdown
//! tables and an SVG chart to src/captured/bench/ (the book includes them),
//! or, with `--quick`, runs every configuration with a few requests and
//! writes to target/bench-quick/ so the benchmark cannot rot.

mod body_memory;
mod configs;
mod measure;
mod report;
mod sizes;

use configs::{keys, Filter};
use harness::envoy::{Envoy, EnvoyConfig};
use harness::stack::{free_port, test_dir};
use harness::{paths, steps, variants};
use serde_json::json;
use std::path::PathBuf;

/// One Envoy process with one filter configuration.
struct Setup {
    name: String,
    /// Which comparison it belongs to, for the report.
    group: &'static str,
    keys: usize,
    concurrency: u32,
    /// Fraction of the usual request count: the naive variant with many
    /// keys costs milliseconds per request.
    request_share: f64,
    /// What each request is: a GET to `/checked` and `/unchecked`, or a
    /// signed POST to `/body/checked` and `/body/unchecked`.
    request: Request,
    envoy: Envoy,
}

#[derive(Clone)]
enum Request {
    Get,
    /// h2load arguments for the body and its signature.
    SignedPost(Vec<String>),
}

impl Request {
    fn path_prefix(&self) -> &'static str {
        match self {
            Request::Get => "",
            Request::SignedPost(_) => "/body",
        }
    }

    fn h2load_args(&self) -> &[String] {
        match self {
            Request::Get => &[],
            Request::SignedPost(args) => args,
        }
    }
}

/// Step 4's configuration for the benchmark: no timestamp (a run lasts
/// longer than any sensible tolerance), bodies up to 1 MiB.
const BODY_SECRET: &str = "bench-secret-0123456789abcdef0123456789";

fn signed_body_json() -> String {
    json!({
        "signature_header": "x-signature-256",
        "secrets": [BODY_SECRET],
        "max_body_bytes": 1_048_576,
    })
    .to_string()
}

/// A body of `size` bytes in a file, and h2load's arguments to POST it
/// with its signature.
fn signed_post(size: usize) -> Request {
    let body = harness::webhook::body_of(size);
    let file = test_dir(&format!("bench-body-{size}")).join("body");
    std::fs::write(&file, &body).expect("write a benchmark body");
    let signature = harness::webhook::signature(BODY_SECRET, &[&body]);
    Request::SignedPost(vec![
        "-d".into(),
        file.display().to_string(),
        "-H".into(),
        format!("x-signature-256: {signature}"),
    ])
}

/// Step 1 doing nothing: every request is let through at once, nothing is
/// logged. What it costs is the price of running any Wasm plugin at all.
const DO_NOTHING: [variants::Patch; 2] = [
    variants::Patch {
        file: "src/filter.rs",
        from: "fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {",
        to: "fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {\n        if true {\n            return Action::Continue;\n        }",
    },
    variants::Patch {
        file: "src/filter.rs",
        from: r#"log::info!("request completed, verdict {:?}", self.verdict);"#,
        to: "",
    },
];

/// The plugin's configuration: these keys, plus the `extra` fields (a
/// JSON object) for step 2's limit. serde_json escapes every key.
fn plugin_json(keys: &[String], extra: serde_json::Value) -> String {
    let mut config = json!({ "header_name": "x-api-key", "valid_keys": keys });
    if let (Some(config), serde_json::Value::Object(extra)) = (config.as_object_mut(), extra) {
        config.extend(extra);
    }
    config.to_string()
}

fn start(name: &str, filter: &Filter, concurrency: u32) -> Envoy {
    let dir = test_dir(&format!("bench-{name}"));
    let (port, admin, sink) = (free_port(), free_port(), free_port());
    let config = EnvoyConfig::from_text(configs::envoy_yaml(filter, port, admin, sink));
    Envoy::start_quiet(&config, port, admin, concurrency, &dir)
        .unwrap_or_else(|log| panic!("{name}: {log}"))
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (requests, rounds): (u64, usize) = if quick { (200, 1) } else { (100_000, 7) };
    let out: PathBuf = if quick {
        paths::repo_root().join("target/bench-quick")
    } else {
        paths::repo_root().join("src/captured/bench")
    };
    std::fs::create_dir_all(&out).expect("create output directory");
    paths::require_tool("h2load", "apt-get install nghttp2-client");

    eprintln!("==> module sizes");
    let step_sizes = sizes::steps();
    let profile_sizes = if quick {
        json!([])
    } else {
        sizes::profile_variants()
    };

    eprintln!("==> building the plugins and starting one Envoy per configuration");
    let step_1 = steps::build("step-1-auth");
    let step_2 = steps::build("step-2-rate-limit");
    let naive = variants::build(
        "step-1-auth",
        "bench-copy-keys",
        &variants::naive::COPY_KEYS_PER_REQUEST,
    );
    let empty = variants::build("step-1-auth", "bench-do-nothing", &DO_NOTHING);
    let go = steps::build("go-auth");
    let step_3 = steps::build("step-3-http-call");
    let step_4 = steps::build("step-4-signed-body");
    let mut setups = Vec::new();
    // Which request the next configurations are measured with.
    let request = std::cell::RefCell::new(Request::Get);
    let mut add = |name: String, group, key_count, concurrency, request_share, filter: Filter| {
        eprintln!("    {name}");
        let envoy = start(
            &name.replace([' ', ',', '(', ')'], "-"),
            &filter,
            concurrency,
        );
        setups.push(Setup {
            name,
            group,
            keys: key_count,
            concurrency,
            request_share,
            request: request.borrow().clone(),
            envoy,
        });
    };
    for count in [3, 1_000, 100_000] {
        let json = plugin_json(&keys(count), json!({}));
        add(
            format!("step 1, {count} keys"),
            "keys",
            count,
            1,
            1.0,
            Filter::Wasm {
                wasm: &step_1,
                json: json.clone(),
            },
        );
        let share = match count {
            3 => 1.0,
            1_000 => 0.1,
            _ => 0.002,
        };
        add(
            format!("naive copy, {count} keys"),
            "keys",
            count,
            1,
            share,
            Filter::Wasm { wasm: &naive, json },
        );
    }
    let three = keys(3);
    let json = plugin_json(&three, json!({}));
    add(
        "Wasm plugin doing nothing".into(),
        "reference",
        3,
        1,
        1.0,
        Filter::Wasm { wasm: &empty, json },
    );
    let json = plugin_json(&three, json!({}));
    add(
        "step 1 in Go".into(),
        "reference",
        3,
        1,
        1.0,
        Filter::Wasm { wasm: &go, json },
    );
    add(
        "Lua filter, 3 keys".into(),
        "reference",
        3,
        1,
        1.0,
        Filter::Lua { keys: &three },
    );
    add(
        "RBAC header match, 3 keys".into(),
        "reference",
        3,
        1,
        1.0,
        Filter::Rbac { keys: &three },
    );
    let json = plugin_json(&three, json!({}));
    add(
        "step 1, 2 workers".into(),
        "rate-limit",
        3,
        2,
        1.0,
        Filter::Wasm {
            wasm: &step_1,
            json,
        },
    );
    let json = plugin_json(
        &three,
        json!({ "requests_per_window": 1_000_000_000, "window_seconds": 60 }),
    );
    add(
        "step 2, 2 workers".into(),
        "rate-limit",
        3,
        2,
        1.0,
        Filter::Wasm {
            wasm: &step_2,
            json,
        },
    );
    add(
        "local_ratelimit, 2 workers".into(),
        "rate-limit",
        3,
        2,
        1.0,
        Filter::LocalRateLimit,
    );
    for (label, seconds) in [("cache off", 0), ("warm cache", 3600)] {
        let json = json!({
            "header_name": "x-api-key", "auth_cluster": "sink", "auth_authority": "sink",
            "auth_path": "/validate", "timeout_ms": 1000,
            "cache_valid_seconds": seconds, "cache_invalid_seconds": seconds,
        })
        .to_string();
        add(
            format!("step 3, {label}"),
            "auth-service",
            1,
            1,
            0.5,
            Filter::Wasm {
                wasm: &step_3,
                json,
            },
        );
    }
    for (size, label) in [(1024, "1 KiB"), (65_536, "64 KiB")] {
        *request.borrow_mut() = signed_post(size);
        add(
            format!("step 4, {label} body"),
            "bodies",
            0,
            1,
            0.2,
            Filter::Wasm {
                wasm: &step_4,
                json: signed_body_json(),
            },
        );
    }

    // samples[setup] = (checked, unchecked) per round, interleaved so that
    // drift on the machine touches every configuration alike.
    let mut samples: Vec<(Vec<f64>, Vec<f64>)> = setups.iter().map(|_| (vec![], vec![])).collect();
    for round in 1..=rounds {
        eprintln!("==> round {round} of {rounds}");
        for (setup, sample) in setups.iter().zip(samples.iter_mut()) {
            let n =
                ((requests as f64 * setup.request_share) as u64).max(if quick { 20 } else { 50 });
            let url = |path: &str| {
                format!(
                    "http://127.0.0.1:{}{}{path}",
                    setup.envoy.port,
                    setup.request.path_prefix()
                )
            };
            let pid = setup.envoy.server.pid();
            let extra = setup.request.h2load_args();
            sample
                .0
                .push(measure::cpu_us_per_request(pid, &url("/checked"), n, extra));
            sample.1.push(measure::cpu_us_per_request(
                pid,
                &url("/unchecked"),
                n,
                extra,
            ));
        }
    }

    let cpu: Vec<serde_json::Value> = setups
        .iter()
        .zip(&samples)
        .map(|(setup, (checked, unchecked))| {
            let added: Vec<f64> = checked.iter().zip(unchecked).map(|(c, u)| c - u).collect();
            let (added_median, added_min, added_max) = measure::summary(&added);
            json!({
                "name": setup.name, "group": setup.group, "keys": setup.keys,
                "concurrency": setup.concurrency,
                "requests_per_sample": ((requests as f64 * setup.request_share) as u64).max(if quick { 20 } else { 50 }),
                "checked_us": measure::summary(checked).0,
                "unchecked_us": measure::summary(unchecked).0,
                "added_us": added_median, "added_min_us": added_min, "added_max_us": added_max,
            })
        })
        .collect();

    // Envoys are stopped by PID when `setups` is dropped.
    drop(setups);

    eprintln!("==> Envoy's memory with concurrent 1 MB bodies held by step 4");
    let memory = body_memory::measure(&step_4, quick);

    let results = json!({
        "quick": quick,
        "rounds": rounds,
        "machine": report::machine(),
        "sizes": step_sizes,
        "profile_variants": profile_sizes,
        "cpu": cpu,
        "body_memory": memory,
    });
    report::write(&out, &results);
    eprintln!("==> results in {}", out.display());
}
