//! `cargo xtask bench`: what a plugin costs. Writes results.json, markdown
//! tables and an SVG chart to src/captured/bench/ (the book includes them),
//! or, with `--quick`, runs every configuration with a few requests (each
//! first proven to do its job, proof.rs) and writes to target/bench-quick/
//! so the benchmark cannot rot.

mod body_memory;
mod configs;
mod instructions;
mod measure;
mod proof;
mod report;
mod sizes;
mod startup;

use configs::{keys, Filter};
use harness::envoy::Envoy;
use harness::rate_limit::{RateLimitService, Redis};
use harness::stack::test_dir;
use harness::{paths, steps, variants};
use proof::Acts;
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
    /// The processes a request also costs (step 5's rate limit service
    /// and Redis), measured beside Envoy.
    services: Vec<u32>,
    /// What the filter must be seen doing before it is measured.
    acts: Acts,
}

impl Setup {
    fn target(&self) -> proof::Target<'_> {
        self.request
            .target(&self.name, self.envoy.port, self.envoy.admin_port)
    }
}

#[derive(Clone)]
enum Request {
    Get,
    /// A GET through the sink cluster (`/body/checked`, `/body/unchecked`):
    /// for Envoy's rate limit filter, which skips `direct_response` routes.
    GetToCluster,
    /// A GET through the sink cluster's `/json/`, which answers
    /// `configs::USER_JSON`: the response step 6 rewrites.
    GetJson,
    /// A signed POST: the body, the file h2load sends it from, and its
    /// signature header's value.
    SignedPost {
        body: Vec<u8>,
        file: PathBuf,
        signature: String,
    },
}

impl Request {
    fn path_prefix(&self) -> &'static str {
        match self {
            Request::Get => "",
            Request::GetToCluster | Request::SignedPost { .. } => "/body",
            Request::GetJson => "/json",
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

/// Step 1 stopping right after the key check: what reading the request's
/// headers and deciding costs, without setting `x-auth-status` or logging.
const STOP_AFTER_KEY_CHECK: [variants::Patch; 2] = [
    variants::Patch {
        file: "src/filter.rs",
        from: "        self.verdict = check_key(&config, &values);\n",
        to: "        self.verdict = check_key(&config, &values);\n        if self.verdict == Verdict::Allowed {\n            return Action::Continue;\n        }\n",
    },
    variants::Patch {
        file: "src/filter.rs",
        from: r#"log::info!("request completed, verdict {:?}", self.verdict);"#,
        to: "",
    },
];

/// Step 1's read of every request header (`get_http_request_headers_bytes`
/// and the filter over them), for the candidates below to replace.
const READ_EVERY_HEADER: &str = "        self.get_http_request_headers_bytes()
            .into_iter()
            .filter(|(header, _)| header == name)
            .map(|(_, value)| value)
            .collect()";

/// Candidate: the `request.headers` attribute, which Envoy answers with
/// every value of the header joined by `,` (a key never holds one, so a
/// comma means the header came more than once).
const READ_THE_ATTRIBUTE: [variants::Patch; 1] = [variants::Patch {
    file: "src/filter.rs",
    from: READ_EVERY_HEADER,
    to: "        match self.get_property(vec![\"request\", \"headers\", name]) {
            Some(value) if value.contains(&b',') => vec![Vec::new(), value],
            Some(value) => vec![value],
            None => Vec::new(),
        }",
}];

/// Reference, not a candidate: the single-header read, which returns only
/// the first value and so cannot see a repeated key.
const READ_THE_FIRST_VALUE: [variants::Patch; 1] = [variants::Patch {
    file: "src/filter.rs",
    from: READ_EVERY_HEADER,
    to: "        self.get_http_request_header_bytes(name).into_iter().collect()",
}];

/// Step 1 without its `on_log` line, which Envoy at `warn` drops after the
/// plugin has formatted and sent it.
const NO_REQUEST_LOG: [variants::Patch; 1] = [variants::Patch {
    file: "src/filter.rs",
    from: r#"log::info!("request completed, verdict {:?}", self.verdict);"#,
    to: "",
}];

/// Step 4's configuration for the benchmark: no timestamp (a run lasts
/// longer than any sensible tolerance), bodies up to 1 MiB.
const BODY_SECRET: &str = "bench-secret-0123456789abcdef0123456789";

fn signed_body_json() -> String {
    json!({
        "scheme": "custom",
        "signature_header": "x-signature-256",
        "secrets": [BODY_SECRET],
        "max_body_bytes": 1_048_576,
    })
    .to_string()
}

/// A body of `size` bytes, in a file for h2load, with its signature.
fn signed_post(size: usize) -> Request {
    let body = harness::webhook::body_of(size);
    let file = test_dir(&format!("bench-body-{size}")).join("body");
    std::fs::write(&file, &body).expect("write a benchmark body");
    let signature = harness::webhook::signature(BODY_SECRET, &[&body]);
    Request::SignedPost {
        body,
        file,
        signature,
    }
}

const DOES_NOTHING: &str = "Wasm plugin doing nothing";

/// Step 1 as the book builds it, the row its candidates are compared with.
const STEP_1: &str = "step 1, 3 keys";

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
    name: &str,
    request: &Request,
    acts: Acts,
    redis: &Redis,
    quick: bool,
) -> serde_json::Value {
    eprintln!("    {name}");
    let (batch, rounds) = if quick { (20, 1) } else { (1000, 3) };
    envoy.wait_until_ready();
    let target = request.target(name, port, envoy.admin_port);
    proof::check(&target, acts, redis);
    // What each key check does with the ways a key can arrive.
    let refusals = (acts == Acts::Refuses && matches!(request, Request::Get))
        .then(|| proof::refusals(&target, configs::REQUEST_KEY));
    let path = |route: &str| format!("{}{route}", request.path_prefix());
    // The first requests compile and warm what the rest reuse.
    if !quick {
        envoy.per_request(port, &path("/checked"), 200, &[]);
        envoy.per_request(port, &path("/unchecked"), 200, &[]);
    }
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        on.extend(envoy.per_request(port, &path("/checked"), batch, &[]));
        off.extend(envoy.per_request(port, &path("/unchecked"), batch, &[]));
    }
    if on.is_empty() {
        return json!({
            "name": name, "requests_per_sample": batch, "counted": false, "refusals": refusals,
        });
    }
    let added: Vec<f64> = on.iter().zip(&off).map(|(on, off)| on - off).collect();
    let (added_median, added_min, added_max) = measure::summary(&added);
    json!({
        "name": name, "requests_per_sample": batch, "counted": true,
        "checked": measure::summary(&on).0, "unchecked": measure::summary(&off).0,
        "added": added_median, "added_min": added_min, "added_max": added_max,
        "refusals": refusals,
    })
}

/// Says which part of the benchmark starts, and when (seconds since the
/// start), so a slow part shows in the log.
fn phase(what: &str) {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(std::time::Instant::now);
    eprintln!("==> {what} (at {:.0} s)", start.elapsed().as_secs_f64());
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
    let (requests, rounds): (u64, usize) = if quick { (200, 1) } else { (100_000, 7) };
    let out: PathBuf = if quick {
        paths::repo_root().join("target/bench-quick")
    } else {
        paths::repo_root().join("src/captured/bench")
    };
    std::fs::create_dir_all(&out).expect("create output directory");
    paths::require_tool("h2load", "apt-get install nghttp2-client");

    phase("module sizes");
    let step_sizes = sizes::steps();
    let profile_sizes = sizes::profile_variants();

    phase("building the plugins and starting one Envoy per configuration");
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
    let step_5 = steps::build(harness::rate_limit::STEP);
    let step_6 = steps::build("step-6-response-guard");
    let step_7 = steps::build("step-7-key-refresh");
    // Step 5's services, with a limit no run reaches.
    let services_dir = test_dir("bench-rate-limit-services");
    let redis = Redis::start(&services_dir);
    let rate_limit = RateLimitService::start_with_limits(
        &services_dir,
        redis.port,
        "domain: proxy-wasm-book\ndescriptors:\n  - key: api_key_hash\n    rate_limit:\n      unit: hour\n      requests_per_unit: 1000000000\n",
    );
    let three = keys(3);
    let step_2_json = plugin_json(
        &three,
        json!({ "requests_per_window": 1_000_000_000, "window_seconds": 60 }),
    );
    // The plugin's configuration with `counter`: "service" (the plugin
    // asks) or "descriptor_header" (Envoy's filter asks).
    let fleet_json = |counter: &str, value: serde_json::Value| {
        let mut rate_limit = json!({ "descriptor_secret": "bench-descriptor-secret-0123456789" });
        rate_limit[counter] = value;
        plugin_json(&three, json!({ "rate_limit": rate_limit }))
    };
    let step_5_json = fleet_json(
        "service",
        // As long as the plugin allows: everything is slower under valgrind.
        json!({ "cluster": "rate_limit_service", "domain": "proxy-wasm-book", "timeout_ms": 10_000 }),
    );
    let step_5_native_json = fleet_json("descriptor_header", json!("x-api-key-hash"));

    // The configurations counted under callgrind (see instructions.rs).
    let key_check_only =
        variants::build("step-1-auth", "bench-key-check-only", &STOP_AFTER_KEY_CHECK);
    let no_request_log = variants::build("step-1-auth", "bench-no-request-log", &NO_REQUEST_LOG);
    let step_1_json = plugin_json(&three, json!({}));
    let by_attribute = variants::build(
        "step-1-auth",
        "bench-read-the-attribute",
        &READ_THE_ATTRIBUTE,
    );
    let by_attribute_no_log = variants::build(
        "step-1-auth",
        "bench-read-the-attribute-no-log",
        &[READ_THE_ATTRIBUTE[0], NO_REQUEST_LOG[0]],
    );
    let by_attribute_check_only = variants::build(
        "step-1-auth",
        "bench-read-the-attribute-key-check-only",
        &[
            READ_THE_ATTRIBUTE[0],
            STOP_AFTER_KEY_CHECK[0],
            STOP_AFTER_KEY_CHECK[1],
        ],
    );
    let first_value_check_only = variants::build(
        "step-1-auth",
        "bench-read-the-first-value-key-check-only",
        &[
            READ_THE_FIRST_VALUE[0],
            STOP_AFTER_KEY_CHECK[0],
            STOP_AFTER_KEY_CHECK[1],
        ],
    );
    let first_value = variants::build(
        "step-1-auth",
        "bench-read-the-first-value",
        &READ_THE_FIRST_VALUE,
    );
    let step_3_warm = json!({
        "header_name": "x-api-key", "auth_cluster": "sink", "auth_authority": "sink",
        // Everything is about fifty times slower under valgrind.
        "auth_path": "/validate", "timeout_ms": 10000,
        "cache_valid_seconds": 3600, "cache_invalid_seconds": 3600,
        "cache_secret_env": "AUTH_CACHE_SECRET",
    })
    .to_string();
    let step_6_filter = Filter::HoldingHeaders {
        wasm: &step_6,
        json: json!({
            "remove_fields": ["password_hash", "ssn", "internal_notes"],
            "max_body_bytes": 65536,
            "remove_headers": ["server", "x-powered-by"],
            "set_headers": { "x-content-type-options": "nosniff" },
        })
        .to_string(),
    };
    // The refresher asks the sink's `/keys` once an hour: no refresh
    // falls inside a measurement, and the list stays fresh for a day.
    let step_7_filter = || Filter::KeyRefresh {
        wasm: &step_7,
        filter_json: json!({
            "secret_env": "KEY_LIST_SECRET",
            "filter": { "header_name": "x-api-key", "max_key_age_seconds": 86_400 },
        })
        .to_string(),
        refresher_json: json!({
            "secret_env": "KEY_LIST_SECRET",
            "refresh": {
                "cluster": "sink", "authority": "sink", "path": "/keys",
                "every_seconds": 3600, "timeout_ms": 10_000,
            },
        })
        .to_string(),
    };
    fn wasm<'a>(wasm: &'a std::path::Path, json: &str) -> Filter<'a> {
        Filter::Wasm {
            wasm,
            json: json.to_owned(),
        }
    }
    // Every configuration, in quick mode too (with a batch of 20).
    let counted: Vec<(&str, Filter, Request, Acts)> = vec![
        (
            STEP_1,
            wasm(&step_1, &step_1_json),
            Request::Get,
            Acts::Refuses,
        ),
        (
            DOES_NOTHING,
            wasm(&empty, &step_1_json),
            Request::Get,
            Acts::Nothing,
        ),
        (
            "step 1, key check only (no header set, no log)",
            wasm(&key_check_only, &step_1_json),
            Request::Get,
            Acts::Refuses,
        ),
        (
            "step 1 without its request log line",
            wasm(&no_request_log, &step_1_json),
            Request::Get,
            Acts::Refuses,
        ),
        (
            "step 1, 100000 keys",
            wasm(&step_1, &plugin_json(&keys(100_000), json!({}))),
            Request::Get,
            Acts::Refuses,
        ),
        (
            "step 1 reading the request.headers attribute",
            wasm(&by_attribute, &step_1_json),
            Request::Get,
            Acts::Refuses,
        ),
        (
            "step 1 reading the attribute, without its log line",
            wasm(&by_attribute_no_log, &step_1_json),
            Request::Get,
            Acts::Refuses,
        ),
        (
            "step 1 reading the attribute, key check only (no header set, no log)",
            wasm(&by_attribute_check_only, &step_1_json),
            Request::Get,
            Acts::Refuses,
        ),
        (
            "step 1 reading only the first value (blind to a repeated key)",
            wasm(&first_value, &step_1_json),
            Request::Get,
            Acts::Refuses,
        ),
        (
            "step 1 reading only the first value, key check only",
            wasm(&first_value_check_only, &step_1_json),
            Request::Get,
            Acts::Refuses,
        ),
        (
            "step 2",
            wasm(&step_2, &step_2_json),
            Request::Get,
            Acts::CountsInSharedData,
        ),
        (
            "step 3, warm cache",
            wasm(&step_3, &step_3_warm),
            Request::Get,
            Acts::AnswersFromItsCache,
        ),
        (
            "step 5",
            wasm(&step_5, &step_5_json),
            Request::GetToCluster,
            Acts::CountsInRedis,
        ),
        (
            "step 5 with Envoy's rate limit filter",
            Filter::WasmThenRateLimit {
                wasm: &step_5,
                json: step_5_native_json.clone(),
            },
            Request::GetToCluster,
            Acts::CountsInRedis,
        ),
        (
            "Envoy's api_key_auth filter, 3 keys",
            Filter::ApiKeyAuth { keys: &three },
            Request::Get,
            Acts::Refuses,
        ),
        (
            "RBAC header match, 3 keys",
            Filter::Rbac { keys: &three },
            Request::Get,
            Acts::Refuses,
        ),
        (
            "Lua filter, 3 keys",
            Filter::Lua { keys: &three },
            Request::Get,
            Acts::Refuses,
        ),
        (
            "local_ratelimit",
            Filter::LocalRateLimit,
            Request::Get,
            Acts::EmptiesItsBucket,
        ),
        (
            "Envoy's ext_authz filter asking an HTTP service",
            Filter::ExtAuthz,
            Request::Get,
            Acts::Refuses,
        ),
        (
            "step 6, a 0.3 KiB JSON response",
            step_6_filter,
            Request::GetJson,
            Acts::RemovesFields,
        ),
        (
            "step 7",
            step_7_filter(),
            Request::Get,
            Acts::RefusesOnceRefreshed,
        ),
    ];
    // `--probe TEXT`: only the configurations above whose name contains
    // TEXT, each under callgrind, printed and not written: for trying a
    // change before a full run.
    let args: Vec<String> = std::env::args().collect();
    if let Some(probe) = args
        .iter()
        .position(|a| a == "--probe")
        .and_then(|i| args.get(i + 1))
    {
        for (name, filter, request, acts) in counted
            .iter()
            .filter(|(name, ..)| name.contains(probe.as_str()))
        {
            let file_name = format!("probe-{}", name.replace([' ', ',', '(', ')', '\''], "-"));
            let mut envoy =
                instructions::Counted::launch(&file_name, &[filter], rate_limit.grpc_port, true);
            let port = envoy.ports[0];
            let row = count_one(&mut envoy, port, name, request, *acts, &redis, false);
            println!("{row}");
        }
        return;
    }
    // Quick mode counts the first under valgrind, whose slow start runs
    // beside the CPU part (nobody reads quick figures); the others get the
    // same requests in one plain Envoy. A full run starts each under
    // valgrind after the CPU part, so that valgrind cannot disturb it.
    let mut quick_envoys = quick.then(|| {
        let rest: Vec<&Filter> = counted[1..]
            .iter()
            .map(|(_, filter, _, _)| filter)
            .collect();
        (
            instructions::Counted::launch(
                "quick-counted",
                &[&counted[0].1],
                rate_limit.grpc_port,
                true,
            ),
            instructions::Counted::launch("quick-plain", &rest, rate_limit.grpc_port, false),
        )
    });

    // Which processes the next configurations' requests also cost.
    let services = std::cell::RefCell::new(Vec::new());
    let mut setups = Vec::new();
    // Which request the next configurations are measured with.
    let request = std::cell::RefCell::new(Request::Get);
    // What the next configurations must be seen doing (proof.rs).
    let acts = std::cell::RefCell::new(Acts::Refuses);
    let mut add = |name: String, group, key_count, concurrency, request_share, filter: Filter| {
        eprintln!("    {name}");
        let envoy = start(
            &name.replace([' ', ',', '(', ')'], "-"),
            &filter,
            concurrency,
            rate_limit.grpc_port,
        );
        setups.push(Setup {
            name,
            group,
            keys: key_count,
            concurrency,
            request_share,
            request: request.borrow().clone(),
            envoy,
            services: services.borrow().clone(),
            acts: *acts.borrow(),
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
            format!("keys copied per request, {count} keys"),
            "keys",
            count,
            1,
            share,
            Filter::Wasm { wasm: &naive, json },
        );
    }
    let json = plugin_json(&three, json!({}));
    *acts.borrow_mut() = Acts::Nothing;
    add(
        DOES_NOTHING.into(),
        "reference",
        3,
        1,
        1.0,
        Filter::Wasm { wasm: &empty, json },
    );
    let json = plugin_json(&three, json!({}));
    *acts.borrow_mut() = Acts::Refuses;
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
    let json = step_2_json.clone();
    *acts.borrow_mut() = Acts::CountsInSharedData;
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
    *acts.borrow_mut() = Acts::EmptiesItsBucket;
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
            "cache_secret_env": "AUTH_CACHE_SECRET",
        })
        .to_string();
        *acts.borrow_mut() = if seconds == 0 {
            Acts::AsksTheAuthService
        } else {
            Acts::AnswersFromItsCache
        };
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
    // Step 5 against step 2 above: the count in the rate limit service
    // (one gRPC round trip on loopback, one Redis update) instead of
    // shared data; the plugin asking, then Envoy's own filter asking.
    *request.borrow_mut() = Request::GetToCluster;
    *services.borrow_mut() = vec![rate_limit.server.pid(), redis.server.pid()];
    let json = step_5_json.clone();
    *acts.borrow_mut() = Acts::CountsInRedis;
    add(
        "step 5, 2 workers".into(),
        "fleet",
        3,
        2,
        0.5,
        Filter::Wasm {
            wasm: &step_5,
            json,
        },
    );
    let json = step_5_native_json.clone();
    add(
        "step 5 with Envoy's rate limit filter, 2 workers".into(),
        "fleet",
        3,
        2,
        0.5,
        Filter::WasmThenRateLimit {
            wasm: &step_5,
            json,
        },
    );
    services.borrow_mut().clear();
    *acts.borrow_mut() = Acts::Refuses;

    for (size, label) in [(1024, "1 KiB"), (65_536, "64 KiB")] {
        *request.borrow_mut() = signed_post(size);
        add(
            format!("step 4, {label} body"),
            "bodies",
            0,
            1,
            0.2,
            Filter::HoldingHeaders {
                wasm: &step_4,
                json: signed_body_json(),
            },
        );
    }

    // samples[setup] = (checked, unchecked, services on checked) per
    // round, interleaved so that drift on the machine touches every
    // configuration alike.
    let mut samples: Vec<Sample> = setups.iter().map(|_| Sample::default()).collect();
    for setup in &setups {
        proof::check(&setup.target(), setup.acts, &redis);
    }
    // Round 0 warms up (V8's compiled code, Envoy's connection pools and
    // caches) and is not counted.
    for round in 0..=rounds {
        eprintln!(
            "==> round {round} of {rounds}{}",
            if round == 0 { " (warm-up)" } else { "" }
        );
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
            let pids: Vec<u32> = std::iter::once(setup.envoy.server.pid())
                .chain(setup.services.iter().copied())
                .collect();
            let extra = &setup.request.h2load_args();
            let n = if round == 0 { (n / 10).max(20) } else { n };
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

    let mut cpu: Vec<serde_json::Value> = Vec::new();
    for (setup, sample) in setups.iter().zip(&samples) {
        let added: Vec<f64> = sample
            .checked
            .iter()
            .zip(&sample.unchecked)
            .map(|(c, u)| c - u)
            .collect();
        let (added_median, added_min, added_max) = measure::summary(&added);
        let requests_per_sample =
            ((requests as f64 * setup.request_share) as u64).max(if quick { 20 } else { 50 });
        cpu.push(json!({
            "name": setup.name, "group": setup.group, "keys": setup.keys,
            "concurrency": setup.concurrency,
            "requests_per_sample": requests_per_sample,
            "checked_us": measure::summary(&sample.checked).0,
            "unchecked_us": measure::summary(&sample.unchecked).0,
            "added_us": added_median, "added_min_us": added_min, "added_max_us": added_max,
        }));
        if !setup.services.is_empty() {
            // The services' CPU on the unchecked route is zero: nothing
            // calls them there.
            let (median, min, max) = measure::summary(&sample.services);
            cpu.push(json!({
                "name": format!("{}: rate limit service + Redis", setup.name),
                "group": "fleet-services", "keys": setup.keys,
                "concurrency": setup.concurrency,
                "requests_per_sample": requests_per_sample,
                "checked_us": median, "unchecked_us": 0.0,
                "added_us": median, "added_min_us": min, "added_max_us": max,
            }));
        }
    }

    // Envoys are stopped by PID when `setups` is dropped.
    drop(setups);

    phase("instructions per request (Envoy under callgrind, one worker)");
    let mut instruction_rows = Vec::new();
    match quick_envoys.take() {
        Some((mut counted_one, mut plain)) => {
            let (name, _, request, acts) = &counted[0];
            let port = counted_one.ports[0];
            instruction_rows.push(count_one(
                &mut counted_one,
                port,
                name,
                request,
                *acts,
                &redis,
                quick,
            ));
            for ((name, _, request, acts), port) in counted[1..].iter().zip(plain.ports.clone()) {
                instruction_rows.push(count_one(
                    &mut plain, port, name, request, *acts, &redis, quick,
                ));
            }
        }
        None => {
            // One Envoy under valgrind at a time.
            for (name, filter, request, acts) in &counted {
                let file_name = name.replace([' ', ',', '(', ')', '\''], "-");
                let mut envoy = instructions::Counted::launch(
                    &file_name,
                    &[filter],
                    rate_limit.grpc_port,
                    true,
                );
                let port = envoy.ports[0];
                instruction_rows.push(count_one(
                    &mut envoy, port, name, request, *acts, &redis, quick,
                ));
            }
        }
    }
    phase("start-up: Envoy's time to ready and memory per VM");
    let step_4_json = signed_body_json();
    let started: Vec<(&str, Filter)> = vec![
        (
            "no Wasm filter (RBAC, 3 keys)",
            Filter::Rbac { keys: &three },
        ),
        ("step 1, 3 keys", wasm(&step_1, &step_1_json)),
        (
            "step 1, 100000 keys",
            wasm(&step_1, &plugin_json(&keys(100_000), json!({}))),
        ),
        ("step 1 in Go", wasm(&go, &step_1_json)),
        ("step 2", wasm(&step_2, &step_2_json)),
        ("step 3", wasm(&step_3, &step_3_warm)),
        ("step 4", wasm(&step_4, &step_4_json)),
        ("step 5", wasm(&step_5, &step_5_json)),
        ("step 7 (the refresher's VM too)", step_7_filter()),
    ];
    let startup = startup::measure(&started, rate_limit.grpc_port, if quick { 1 } else { 5 });

    // Then the services the step-5 configurations called.
    drop(rate_limit);
    drop(redis);

    phase("Envoy's memory with concurrent 1 MB bodies held by step 4");
    let memory = body_memory::measure(&step_4, quick);
    phase("Envoy's memory with concurrent 500 KB JSON responses held by step 6");
    let response_memory = body_memory::measure_responses(&step_6, quick);

    let results = json!({
        "quick": quick,
        "rounds": rounds,
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
        let read = |dir: &std::path::Path| {
            std::fs::read_to_string(dir.join("refusals.md")).unwrap_or_default()
        };
        let committed = paths::repo_root().join("src/captured/bench");
        assert_eq!(
            read(&out),
            read(&committed),
            "the key checks answered differently from src/captured/bench/refusals.md \
             (a full `cargo xtask bench` writes it)"
        );
    }
    eprintln!("==> results in {}", out.display());
}
