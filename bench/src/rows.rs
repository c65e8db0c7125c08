//! Every configuration the benchmark measures, as a list of values: its
//! filter, its request, what it must be seen doing before it is measured,
//! whether it is a key check (and the statuses of its refusals), and the
//! tables it belongs in. Each step's own row comes from its description
//! (project's `step.rs`), so a new step is measured without an edit here;
//! the rest compare steps with their variants (project's `naive.rs`) and
//! with Envoy's own filters.

use crate::configs::{keys, Filter};
use crate::Request;
use harness::{steps, variants};
use project::naive::{
    Patch, COPY_KEYS_PER_REQUEST, DO_NOTHING, NO_REQUEST_LOG, READ_THE_ATTRIBUTE,
    READ_THE_FIRST_VALUE, STOP_AFTER_KEY_CHECK,
};
use project::step::{Acts, BenchFilter, BenchRequest, Cases, Description, Service, Step};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The statuses a key or token check refuses with: a missing, unknown,
/// repeated or invalid credential. A 5xx (or no answer) is an error, never
/// a refusal.
pub const REFUSALS: &[u16] = &[400, 401, 403];

pub struct Config<'a> {
    pub name: String,
    pub filter: Filter<'a>,
    pub request: Request,
    pub acts: Acts,
    /// Whether each request also costs step 5's services (measured beside
    /// Envoy in the CPU table).
    pub services: bool,
    /// A key or token check: what it is sent, and the statuses its
    /// refusals use.
    pub refuses: Option<Refuses>,
    pub tables: Vec<Table>,
}

pub struct Refuses {
    pub inputs: Inputs,
    pub statuses: &'static [u16],
}

/// The bad credentials a check is sent.
pub enum Inputs {
    /// The nine ways a key can arrive (`proof::KEY_INPUTS`).
    Keys,
    /// Tokens, each a heading and the `authorization` values sent
    /// (`harness::tokens::Minter::inputs`).
    Tokens(Vec<(&'static str, Vec<String>)>),
}

impl Inputs {
    /// Which refusal table the row goes in.
    pub fn name(&self) -> &'static str {
        match self {
            Inputs::Keys => "keys",
            Inputs::Tokens(_) => "tokens",
        }
    }
}

fn key_check() -> Option<Refuses> {
    Some(Refuses {
        inputs: Inputs::Keys,
        statuses: REFUSALS,
    })
}

/// The minter of a step whose benchmark requests carry tokens.
fn minter(d: &Description) -> Option<harness::tokens::Minter> {
    let BenchRequest::Bearer {
        private_key,
        public_key,
        kid,
        ..
    } = d.bench.request
    else {
        return None;
    };
    let dir = project::repo_root().join("code").join(d.folder);
    let read = |file: &str| {
        std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{}/{file}: {e}", d.folder))
    };
    Some(harness::tokens::Minter::new(
        &read(private_key),
        &read(public_key),
        kid,
    ))
}

fn token_check(minter: &harness::tokens::Minter) -> Option<Refuses> {
    Some(Refuses {
        inputs: Inputs::Tokens(minter.inputs()),
        statuses: REFUSALS,
    })
}

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Table {
    /// Counted under callgrind.
    Instructions,
    /// Shown in the refusal table: a build that reads keys its own way.
    Refusals,
    /// Part one's step as built: the candidates are compared with it.
    Reference,
    /// A build of part one's step, in the candidate table.
    Candidate,
    /// The do-nothing plugin: the floor of the candidate table.
    Floor,
    /// Envoy's start-up time and memory with it.
    Startup,
    /// The start-up table's baseline (no Wasm at all).
    StartupBaseline,
    /// A row of the per-KiB table: a body-reading step at one body size.
    PerKib,
    /// A row of the floor's breakdown: the do-nothing module without an
    /// SDK, with and without HTTP callbacks.
    FloorParts,
    /// Timed in CPU microseconds, in `group`, on its own Envoy with
    /// `workers`; `share` of the usual request count (the slow naive
    /// variant); on the key chart's line `chart` at x = `keys`.
    Cpu {
        group: &'static str,
        keys: usize,
        workers: u32,
        share: f64,
        chart: Option<&'static str>,
    },
}

impl Config<'_> {
    pub fn is_in(&self, table: Table) -> bool {
        self.tables.contains(&table)
    }

    pub fn cpu(&self) -> Option<Table> {
        self.tables
            .iter()
            .copied()
            .find(|t| matches!(t, Table::Cpu { .. }))
    }
}

/// The variants of part one's step the benchmark builds: what each part
/// of its work costs, and cheaper candidates. (name, build folder,
/// replacements, in the refusal table too.)
const CANDIDATES: [(&str, &str, &[Patch], bool); 7] = [
    (
        "step 1, key check only (no header set, no log)",
        "bench-key-check-only",
        &[STOP_AFTER_KEY_CHECK, NO_REQUEST_LOG],
        false,
    ),
    (
        "step 1 without its request log line",
        "bench-no-request-log",
        &[NO_REQUEST_LOG],
        false,
    ),
    (
        "step 1 reading the request.headers attribute",
        "bench-read-the-attribute",
        &[READ_THE_ATTRIBUTE],
        true,
    ),
    (
        "step 1 reading the attribute, without its log line",
        "bench-read-the-attribute-no-log",
        &[READ_THE_ATTRIBUTE, NO_REQUEST_LOG],
        false,
    ),
    (
        "step 1 reading the attribute, key check only (no header set, no log)",
        "bench-read-the-attribute-key-check-only",
        &[READ_THE_ATTRIBUTE, STOP_AFTER_KEY_CHECK, NO_REQUEST_LOG],
        false,
    ),
    (
        "step 1 reading only the first value (blind to a repeated key)",
        "bench-read-the-first-value",
        &[READ_THE_FIRST_VALUE],
        true,
    ),
    (
        "step 1 reading only the first value, key check only",
        "bench-read-the-first-value-key-check-only",
        &[READ_THE_FIRST_VALUE, STOP_AFTER_KEY_CHECK, NO_REQUEST_LOG],
        false,
    ),
];

pub const DOES_NOTHING: &str = "Wasm plugin doing nothing";

/// Every module the configurations load: each step's, and the variants'.
pub struct Modules {
    steps: BTreeMap<String, PathBuf>,
    variants: BTreeMap<&'static str, PathBuf>,
    /// Step 1's key check as a dynamic module (dynamic_module.rs).
    pub dynamic_module: Option<PathBuf>,
    /// The do-nothing module without an SDK: with its HTTP callbacks, and
    /// without (raw_abi.rs).
    raw: Option<(PathBuf, PathBuf)>,
    /// The three keys of the native filters' configurations.
    three: Vec<String>,
}

impl Modules {
    pub fn build() -> Modules {
        let steps = Step::all()
            .into_iter()
            .map(|step| {
                let wasm = steps::build(&step.name);
                (step.name, wasm)
            })
            .collect();
        let part_one = Step::part_one().name;
        let mut variants: BTreeMap<&'static str, PathBuf> = CANDIDATES
            .iter()
            .map(|(_, folder, patches, _)| (*folder, variants::build(&part_one, folder, patches)))
            .collect();
        for (folder, patches) in [
            ("bench-do-nothing", &[DO_NOTHING, NO_REQUEST_LOG][..]),
            ("bench-copy-keys", &COPY_KEYS_PER_REQUEST[..]),
        ] {
            variants.insert(folder, variants::build(&part_one, folder, patches));
        }
        Modules {
            steps,
            variants,
            dynamic_module: Some(crate::dynamic_module::build()),
            raw: Some((crate::raw_abi::build(true), crate::raw_abi::build(false))),
            three: keys(3),
        }
    }

    /// Only `step`'s module (`bench --quick --step`).
    pub fn only(step: &Step) -> Modules {
        Modules {
            steps: BTreeMap::from([(step.name.clone(), steps::build(&step.name))]),
            variants: BTreeMap::new(),
            dynamic_module: None,
            raw: None,
            three: keys(3),
        }
    }

    pub fn step(&self, folder: &str) -> &PathBuf {
        &self.steps[folder]
    }

    fn variant(&self, folder: &str) -> &PathBuf {
        &self.variants[folder]
    }
}

/// A step's row, as its description says.
pub fn step_row<'a>(modules: &'a Modules, d: &Description) -> Config<'a> {
    let wasm = modules.step(d.folder);
    let filter = match d.bench.filter {
        BenchFilter::Plugin { json } => Filter::Wasm {
            wasm,
            json: json.to_owned(),
        },
        BenchFilter::HoldingHeaders { json } => Filter::HoldingHeaders {
            wasm,
            json: json.to_owned(),
        },
        BenchFilter::WithSingleton {
            json,
            singleton_json,
        } => Filter::KeyRefresh {
            wasm,
            filter_json: json.to_owned(),
            refresher_json: singleton_json.to_owned(),
        },
    };
    let minter = minter(d);
    let refuses = match (&minter, d.cases) {
        (_, Cases::ApiKeys) => key_check(),
        (Some(minter), _) => token_check(minter),
        _ => None,
    };
    let mut tables = vec![Table::Instructions, Table::Startup];
    if refuses.is_some() {
        tables.push(Table::Refusals);
    }
    if d.part_one {
        tables.extend([Table::Reference, Table::Candidate]);
    }
    Config {
        name: d.bench.name.to_owned(),
        filter,
        request: match &minter {
            Some(minter) => Request::Bearer(format!("Bearer {}", minter.good())),
            None => request(d.bench.request, 1024),
        },
        acts: d.bench.acts,
        services: d.services.contains(&Service::RateLimit),
        refuses,
        tables,
    }
}

fn request(kind: BenchRequest, body_size: usize) -> Request {
    match kind {
        BenchRequest::Get => Request::Get,
        BenchRequest::GetToCluster => Request::GetToCluster,
        BenchRequest::GetJson => Request::GetJson,
        BenchRequest::SignedPost { secret } => crate::signed_post(body_size, secret),
        // Made by `step_row`, which has the step's keys.
        BenchRequest::Bearer { .. } => Request::Get,
    }
}

pub fn described(folder: &str) -> &'static Description {
    project::step::DESCRIPTIONS
        .iter()
        .find(|d| d.folder == folder)
        .unwrap_or_else(|| panic!("no step {folder}"))
}

/// The step whose description holds the headers (reads a body) for this
/// kind of request: step 4's request bodies, step 6's responses.
pub fn holding(request: impl Fn(BenchRequest) -> bool) -> &'static str {
    project::step::DESCRIPTIONS
        .iter()
        .find(|d| {
            matches!(d.bench.filter, BenchFilter::HoldingHeaders { .. }) && request(d.bench.request)
        })
        .map(|d| d.folder)
        .expect("a step holds such bodies")
}

/// The JSON of a described step's plugin in the benchmark.
pub fn json_of(folder: &str) -> &'static str {
    match described(folder).bench.filter {
        BenchFilter::Plugin { json } | BenchFilter::HoldingHeaders { json } => json,
        BenchFilter::WithSingleton { json, .. } => json,
    }
}

/// Step 1's configuration with `count` keys.
fn keys_json(count: usize) -> String {
    serde_json::json!({ "header_name": "x-api-key", "valid_keys": keys(count) }).to_string()
}

fn wasm_filter<'a>(wasm: &'a std::path::Path, json: &str) -> Filter<'a> {
    Filter::Wasm {
        wasm,
        json: json.to_owned(),
    }
}

/// A GET to a configuration of no service.
fn plain<'a>(
    name: &str,
    filter: Filter<'a>,
    acts: Acts,
    refuses: Option<Refuses>,
    tables: &[Table],
) -> Config<'a> {
    Config {
        name: name.to_owned(),
        filter,
        request: Request::Get,
        acts,
        services: false,
        refuses,
        tables: tables.to_vec(),
    }
}

/// Every configuration, in the order of the tables.
pub fn all(modules: &Modules) -> Vec<Config<'_>> {
    let part_one = Step::part_one();
    let part_one_wasm = modules.step(&part_one.name);
    let three = &modules.three;
    let cpu = |group, keys, workers, share| Table::Cpu {
        group,
        keys,
        workers,
        share,
        chart: None,
    };
    let mut all = Vec::new();

    // Part one's step, the floor, and the candidates.
    let descriptions = project::step::DESCRIPTIONS;
    let (first, others): (Vec<&Description>, Vec<&Description>) =
        descriptions.iter().partition(|d| d.part_one);
    all.extend(first.iter().map(|d| step_row(modules, d)));
    all.push(plain(
        DOES_NOTHING,
        Filter::Wasm {
            wasm: modules.variant("bench-do-nothing"),
            json: keys_json(3),
        },
        Acts::Nothing,
        None,
        &[Table::Instructions, Table::Floor],
    ));
    for (name, folder, _, refusals) in CANDIDATES {
        let mut tables = vec![Table::Instructions, Table::Candidate];
        if refusals {
            tables.push(Table::Refusals);
        }
        all.push(plain(
            name,
            Filter::Wasm {
                wasm: modules.variant(folder),
                json: keys_json(3),
            },
            Acts::Refuses,
            key_check(),
            &tables,
        ));
    }
    all.push(plain(
        "step 1, 100000 keys",
        Filter::Wasm {
            wasm: part_one_wasm,
            json: keys_json(100_000),
        },
        Acts::Refuses,
        None,
        &[Table::Instructions, Table::Startup],
    ));

    // Every other step, as described.
    all.extend(others.iter().map(|d| step_row(modules, d)));
    let step_5 = "step-5-global-rate-limit";
    all.push(Config {
        name: "step 5 with Envoy's rate limit filter".into(),
        filter: Filter::WasmThenRateLimit {
            wasm: modules.step(step_5),
            json: STEP_5_NATIVE_JSON.into(),
        },
        request: Request::GetToCluster,
        acts: Acts::CountsInRedis,
        services: true,
        refuses: None,
        tables: vec![Table::Instructions],
    });

    // Envoy's own filters.
    let refusal_rows = &[Table::Instructions, Table::Refusals][..];
    all.extend([
        plain(
            "Envoy's api_key_auth filter, 3 keys",
            Filter::ApiKeyAuth { keys: three },
            Acts::Refuses,
            key_check(),
            refusal_rows,
        ),
        plain(
            "RBAC header match, 3 keys",
            Filter::Rbac { keys: three },
            Acts::Refuses,
            key_check(),
            &[Table::Instructions, Table::Refusals, Table::StartupBaseline],
        ),
        plain(
            "Lua filter, 3 keys",
            Filter::Lua { keys: three },
            Acts::Refuses,
            key_check(),
            refusal_rows,
        ),
        plain(
            "local_ratelimit",
            Filter::LocalRateLimit,
            Acts::EmptiesItsBucket,
            None,
            &[Table::Instructions],
        ),
        plain(
            "Envoy's ext_authz filter asking an HTTP service",
            Filter::ExtAuthz,
            Acts::Refuses,
            key_check(),
            refusal_rows,
        ),
    ]);

    // Step 1's key check as Envoy's other way to run your own code: a
    // dynamic module (native code in Envoy's process, Envoy's Go SDK).
    if let Some(library) = &modules.dynamic_module {
        all.push(plain(
            DYNAMIC_MODULE,
            Filter::DynamicModule {
                library,
                json: keys_json(3),
            },
            Acts::Refuses,
            key_check(),
            &[Table::Instructions, Table::Refusals, Table::Startup],
        ));
    }

    // Envoy's jwt_authn filter beside the step whose requests carry tokens.
    if let Some(minter) = project::step::DESCRIPTIONS.iter().find_map(minter) {
        all.push(Config {
            request: Request::Bearer(format!("Bearer {}", minter.good())),
            ..plain(
                "Envoy's jwt_authn filter",
                Filter::JwtAuthn {
                    jwks: crate::configs::jwks_json(),
                },
                Acts::Refuses,
                token_check(&minter),
                &[Table::Instructions, Table::Refusals],
            )
        });
    }

    // The CPU table's comparisons, each on an Envoy of its own: step 1's
    // cost against the key count, beside a copy of the keys per request.
    for (count, share) in [(3, 1.0), (1_000, 0.1), (100_000, 0.002)] {
        for (name, wasm, share, chart) in [
            ("step 1", part_one_wasm, 1.0, "step 1 (shared key set)"),
            (
                "keys copied per request",
                modules.variant("bench-copy-keys"),
                share,
                "a copy of the keys per request",
            ),
        ] {
            let table = Table::Cpu {
                group: "keys",
                keys: count,
                workers: 1,
                share,
                chart: Some(chart),
            };
            let filter = wasm_filter(wasm, &keys_json(count));
            let name = format!("{name}, {count} keys");
            all.push(plain(&name, filter, Acts::Refuses, None, &[table]));
        }
    }
    let (step_2, step_3, step_4) = (
        "step-2-rate-limit",
        "step-3-http-call",
        "step-4-signed-body",
    );
    let step_3_json = |seconds: u32| {
        serde_json::json!({
            "header_name": "x-api-key", "auth_cluster": "auth_service", "auth_authority": "auth_service",
            "auth_path": "/validate", "timeout_ms": 1000,
            "cache_valid_seconds": seconds, "cache_invalid_seconds": seconds,
            "cache_secret_env": "AUTH_CACHE_SECRET",
        })
        .to_string()
    };
    let step_1 = wasm_filter(part_one_wasm, &keys_json(3));
    let nothing = wasm_filter(modules.variant("bench-do-nothing"), &keys_json(3));
    let go = wasm_filter(modules.step("go-auth"), &keys_json(3));
    let comparisons = [
        (
            DOES_NOTHING,
            nothing,
            Acts::Nothing,
            cpu("reference", 3, 1, 1.0),
        ),
        (
            "step 1 in Go",
            go,
            Acts::Refuses,
            cpu("reference", 3, 1, 1.0),
        ),
        (
            "Lua filter, 3 keys",
            Filter::Lua { keys: three },
            Acts::Refuses,
            cpu("reference", 3, 1, 1.0),
        ),
        (
            "RBAC header match, 3 keys",
            Filter::Rbac { keys: three },
            Acts::Refuses,
            cpu("reference", 3, 1, 1.0),
        ),
        (
            "step 1, 2 workers",
            step_1,
            Acts::Refuses,
            cpu("rate-limit", 3, 2, 1.0),
        ),
        (
            "step 2, 2 workers",
            wasm_filter(modules.step(step_2), json_of(step_2)),
            Acts::CountsInSharedData,
            cpu("rate-limit", 3, 2, 1.0),
        ),
        (
            "local_ratelimit, 2 workers",
            Filter::LocalRateLimit,
            Acts::EmptiesItsBucket,
            cpu("rate-limit", 3, 2, 1.0),
        ),
        (
            "step 3, cache off",
            wasm_filter(modules.step(step_3), &step_3_json(0)),
            Acts::AsksTheAuthService,
            cpu("auth-service", 1, 1, 0.5),
        ),
        (
            "step 3, warm cache",
            wasm_filter(modules.step(step_3), &step_3_json(3600)),
            Acts::AnswersFromItsCache,
            cpu("auth-service", 1, 1, 0.5),
        ),
    ];
    for (name, filter, acts, table) in comparisons {
        all.push(plain(name, filter, acts, None, &[table]));
    }
    // Step 5 against step 2 above: the count in the rate limit service
    // (one gRPC round trip on loopback, one Redis update) instead of
    // shared data; the plugin asking, then Envoy's own filter asking.
    let step_5_wasm = modules.step(step_5);
    for (name, filter) in [
        (
            "step 5, 2 workers",
            wasm_filter(step_5_wasm, json_of(step_5)),
        ),
        (
            "step 5 with Envoy's rate limit filter, 2 workers",
            Filter::WasmThenRateLimit {
                wasm: step_5_wasm,
                json: STEP_5_NATIVE_JSON.into(),
            },
        ),
    ] {
        all.push(Config {
            request: Request::GetToCluster,
            services: true,
            ..plain(
                name,
                filter,
                Acts::CountsInRedis,
                None,
                &[cpu("fleet", 3, 2, 0.5)],
            )
        });
    }
    all.extend(floor_parts(modules));
    all.extend(per_kib_rows(modules));
    for (size, label) in [(1024, "1 KiB"), (65_536, "64 KiB")] {
        let filter = Filter::HoldingHeaders {
            wasm: modules.step(step_4),
            json: json_of(step_4).into(),
        };
        all.push(Config {
            request: request(described(step_4).bench.request, size),
            ..plain(
                &format!("step 4, {label} body"),
                filter,
                Acts::Refuses,
                None,
                &[cpu("bodies", 0, 1, 0.2)],
            )
        });
    }
    all
}

pub const DYNAMIC_MODULE: &str = "step 1 as an Envoy dynamic module (Go SDK), 3 keys";

/// The floor taken apart: the do-nothing module without an SDK, with the
/// header, log, done and delete callbacks (each returns at once) and without any.
fn floor_parts(modules: &Modules) -> Vec<Config<'_>> {
    let Some((with, without)) = &modules.raw else {
        return Vec::new();
    };
    [(RAW_NOTHING, with), (RAW_NO_CALLBACKS, without)]
        .into_iter()
        .map(|(name, wasm)| {
            plain(
                name,
                wasm_filter(wasm, "{}"),
                Acts::Nothing,
                None,
                &[Table::Instructions, Table::FloorParts],
            )
        })
        .collect()
}

pub const RAW_NOTHING: &str = "Wasm module doing nothing, no SDK";
pub const RAW_NO_CALLBACKS: &str = "Wasm module exporting no HTTP callback, no SDK";

/// The steps that read bodies (step 4's requests, step 6's responses) at
/// each of `BODY_SIZES`, each step's sizes one after another (in a full
/// run they share an Envoy: the filter is the same).
fn per_kib_rows(modules: &Modules) -> Vec<Config<'_>> {
    let mut rows = Vec::new();
    let bodies = described(holding(|r| matches!(r, BenchRequest::SignedPost { .. })));
    let responses = described(holding(|r| r == BenchRequest::GetJson));
    for (d, acts) in [(bodies, Acts::Refuses), (responses, Acts::RemovesFields)] {
        let step = d.bench.name.split(',').next().unwrap_or(d.bench.name);
        // Room for the largest body (the benchmark's usual JSON keeps a
        // step's own limit).
        let mut json: serde_json::Value =
            serde_json::from_str(json_of(d.folder)).expect("a step's benchmark JSON");
        json["max_body_bytes"] = serde_json::json!(1 << 20);
        for size in crate::configs::BODY_SIZES {
            let request = match d.bench.request {
                BenchRequest::GetJson => Request::GetJsonSized(size),
                other => request(other, size),
            };
            rows.push(Config {
                request,
                ..plain(
                    &format!("{step}, {} KiB", size / 1024),
                    Filter::HoldingHeaders {
                        wasm: modules.step(d.folder),
                        json: json.to_string(),
                    },
                    acts,
                    None,
                    &[Table::PerKib],
                )
            });
        }
    }
    rows
}

/// Step 5 with Envoy's rate limit filter asking: the plugin only sets the
/// descriptor header.
const STEP_5_NATIVE_JSON: &str = r#"{"header_name":"x-api-key","valid_keys":["key-000000","key-000001","key-000002"],"rate_limit":{"descriptor_secret":"bench-descriptor-secret-0123456789","descriptor_header":"x-api-key-hash"}}"#;
