//! A host for the plugin inside `cargo test`: the `proxy-wasm-host` library
//! (wasmtime) loads the release module and plays Envoy's part, one request
//! at a time: the request's headers, and the answer the plugin sends; the
//! shared data of the VMs (Envoy's, one store for every worker) and a
//! clock the test sets.

use proxy_wasm_host::abi::v0_2_1::types::{Action, LogLevel, MapType, Status};
use proxy_wasm_host::abi::v0_2_1::{
    Access, Clock, ContextId, Guest, GuestError, Host, InMemoryStore, Invocation, LocalResponse,
    LogContext, LogSink, PluginConfig, Started, StreamState, VmServices,
};
use proxy_wasm_host::{Engine, HeaderMap, HeaderMapExt, Limits, Module, VecHeaderMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// The step's folder.
fn folder() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Builds the release module as the README says (Cargo rebuilds only what
/// changed) and returns its bytes: the tests load exactly what Envoy
/// would.
pub fn release_module() -> &'static [u8] {
    static MODULE: OnceLock<Vec<u8>> = OnceLock::new();
    MODULE.get_or_init(build_release_module)
}

fn build_release_module() -> Vec<u8> {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--locked", "--release"])
        .args(["--target", "wasm32-wasip1"])
        .current_dir(folder())
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo: {e}"));
    assert!(status.success(), "building the module failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| folder().join("target"));
    let crate_name = env!("CARGO_PKG_NAME").replace('-', "_");
    let wasm = target.join(format!("wasm32-wasip1/release/{crate_name}.wasm"));
    std::fs::read(&wasm).unwrap_or_else(|e| panic!("{}: {e}", wasm.display()))
}

/// The host functions and the module, compiled once for all the tests (a
/// VM of its own for each test is cheap; compiling is not).
fn compiled() -> &'static (Host, Module) {
    static COMPILED: OnceLock<(Host, Module)> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let engine = Engine::new().unwrap_or_else(|e| panic!("wasmtime: {e}"));
        let module = Module::new(&engine, release_module())
            .unwrap_or_else(|e| panic!("the module does not compile: {e}"));
        let host = Host::new(&engine).unwrap_or_else(|e| panic!("the host functions: {e}"));
        (host, module)
    })
}

/// The plugin configuration in the folder's `envoy.yaml`: the tests
/// configure the plugin exactly as Envoy does.
pub fn envoy_configuration() -> String {
    let yaml = std::fs::read_to_string(folder().join("envoy.yaml"))
        .unwrap_or_else(|e| panic!("envoy.yaml: {e}"));
    let line = yaml
        .lines()
        .find_map(|line| line.trim().strip_prefix("value: "))
        .unwrap_or_else(|| panic!("no `value:` line in envoy.yaml"));
    line.trim_matches('\'').to_owned()
}

/// The plugin's log lines, as `LEVEL message`.
#[derive(Default)]
pub struct Log(Mutex<Vec<String>>);

impl Log {
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().map(|lines| lines.clone()).unwrap_or_default()
    }
}

impl LogSink for Log {
    fn log(&self, _: LogContext<'_>, level: LogLevel, message: &[u8]) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(format!("{level:?} {}", String::from_utf8_lossy(message)));
        }
    }
}

/// The time the plugin reads, set by the test: a window of the limit is
/// whole minutes, and a test must not depend on when it runs.
#[derive(Default)]
pub struct TestClock(AtomicU64);

impl TestClock {
    /// A clock at `seconds` after the Unix epoch.
    pub fn at(seconds: u64) -> Arc<TestClock> {
        let clock = Arc::new(TestClock::default());
        clock.set(seconds);
        clock
    }

    pub fn set(&self, seconds: u64) {
        self.0.store(seconds * 1_000_000_000, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn realtime_nanos(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    fn monotonic_nanos(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

// ANCHOR: proxy
/// What the VMs of one proxy share: the shared data (one store for all,
/// as Envoy has one for every worker) and the clock.
#[derive(Clone)]
pub struct Proxy {
    pub store: Arc<InMemoryStore>,
    pub clock: Arc<TestClock>,
}

impl Proxy {
    /// A proxy whose clock reads `seconds` after the Unix epoch.
    pub fn at(seconds: u64) -> Proxy {
        Proxy {
            store: Arc::new(InMemoryStore::new()),
            clock: TestClock::at(seconds),
        }
    }
}
// ANCHOR_END: proxy

/// Header pairs, name and value as bytes.
pub type Headers = Vec<(Vec<u8>, Vec<u8>)>;

/// One request, as the plugin sees it: its headers, and the answer the
/// plugin sends in place of the upstream's, if it does.
struct Request {
    headers: VecHeaderMap,
    answer: Option<(u32, Vec<u8>, Headers)>,
}

impl StreamState for Request {
    fn header_map(
        &mut self,
        _: Invocation,
        _: Access,
        map: MapType,
    ) -> Result<&mut dyn HeaderMap, Status> {
        match map {
            MapType::HttpRequestHeaders => Ok(&mut self.headers),
            _ => Err(Status::NotFound),
        }
    }

    fn send_local_response(
        &mut self,
        _: Invocation,
        response: LocalResponse<'_>,
    ) -> Result<(), Status> {
        let headers = response
            .headers
            .iter()
            .map(|(name, value)| (name.to_vec(), value.to_vec()))
            .collect();
        self.answer = Some((response.status_code, response.body.into_owned(), headers));
        Ok(())
    }
}

/// What happened to a request.
#[derive(Debug)]
pub enum Outcome {
    /// The plugin answered it.
    Answered {
        status: u32,
        body: String,
        headers: Headers,
    },
    /// It went on to the backend, with these headers.
    Passed { headers: Headers },
    /// The plugin paused it without an answer.
    Paused,
}

/// Why the plugin did not start.
#[derive(Debug)]
pub enum NotStarted {
    /// It refused its configuration, and logged this reason.
    Refused(String),
    /// The VM failed (a trap, a panic), or refused without a reason: not
    /// the refusal a test of a configuration expects.
    Failed(String),
}

impl std::fmt::Display for NotStarted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotStarted::Refused(reason) => write!(f, "refused: {reason}"),
            NotStarted::Failed(error) => write!(f, "failed: {error}"),
        }
    }
}

/// The reason the plugin logged for refusing its configuration, from its
/// `rejected plugin configuration: ...` line.
fn refusal_reason(log: &Log) -> NotStarted {
    let lines = log.lines();
    let reason = lines
        .iter()
        .find_map(|l| l.split_once("rejected plugin configuration: "))
        .map(|(_, reason)| reason.to_owned());
    reason.map_or(
        NotStarted::Failed(format!("{lines:?}")),
        NotStarted::Refused,
    )
}

/// The plugin, started in a VM of its own.
pub struct Plugin {
    guest: Guest,
    root: ContextId,
    pub log: Arc<Log>,
}

impl Plugin {
    /// Loads the module in a VM of `proxy` and configures it with
    /// `configuration`; `Err` when the plugin refuses it, with the
    /// plugin's log. Every VM started in one `proxy` is a worker of it.
    pub fn start(proxy: &Proxy, configuration: &str) -> Result<Plugin, NotStarted> {
        let failed = |e: GuestError| NotStarted::Failed(e.to_string());
        let (host, module) = compiled();
        let log = Arc::new(Log::default());
        let services = VmServices::new(log.clone())
            .with_vm_id("rate-limit")
            .with_shared(proxy.store.clone())
            .with_clock(proxy.clock.clone());
        let mut guest = Guest::new(host, module, services, &Limits::default()).map_err(failed)?;
        let plugin = PluginConfig::new()
            .with_name("auth")
            .with_root_id("auth")
            .with_configuration(configuration);
        match guest.start(plugin).map_err(failed)? {
            Started::Serving(root) => Ok(Plugin { guest, root, log }),
            Started::Refused { .. } => Err(refusal_reason(&log)),
        }
    }

    /// Sends one request with `headers` (`:path` and `:method` are added)
    /// through the plugin, as Envoy does: a context, the header callback,
    /// the end of the request, its log, the context's deletion.
    pub fn send(&mut self, headers: &[(&str, &[u8])]) -> Result<Outcome, GuestError> {
        let headers: Vec<(&[u8], &[u8])> =
            headers.iter().map(|(n, v)| (n.as_bytes(), *v)).collect();
        self.send_raw(&headers)
    }

    /// `send` with header names as bytes: names no HTTP client would
    /// send, but nothing here stops them.
    pub fn send_raw(&mut self, headers: &[(&[u8], &[u8])]) -> Result<Outcome, GuestError> {
        let mut pairs = vec![
            (b":method".to_vec(), b"GET".to_vec()),
            (b":path".to_vec(), b"/api/users".to_vec()),
        ];
        pairs.extend(headers.iter().map(|(n, v)| (n.to_vec(), v.to_vec())));
        let count = u32::try_from(pairs.len()).unwrap_or(u32::MAX);
        let request = Request {
            headers: VecHeaderMap::from(pairs),
            answer: None,
        };
        let root = self.root;
        let (action, request) = self.guest.with(request, |scope| {
            let stream = scope.on_context_create(Some(root))?;
            let action = scope.on_request_headers(stream, count, true)?;
            scope.on_done(stream)?;
            scope.on_log(stream)?;
            scope.on_delete(stream)?;
            Ok::<_, GuestError>(action)
        });
        Ok(match (action?, request.answer) {
            (_, Some((status, body, headers))) => Outcome::Answered {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
                headers,
            },
            (Action::Continue, None) => Outcome::Passed {
                headers: request.headers.pairs(),
            },
            (_, None) => Outcome::Paused,
        })
    }
}
