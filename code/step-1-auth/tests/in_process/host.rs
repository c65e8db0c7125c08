//! A host for the plugin inside `cargo test`: the `proxy-wasm-host` library
//! (wasmtime) loads the release module and plays Envoy's part, one request
//! at a time: the request's headers, and the answer the plugin sends.

use proxy_wasm_host::abi::v0_2_1::types::{Action, LogLevel, MapType, Status};
use proxy_wasm_host::abi::v0_2_1::{
    Access, ContextId, Guest, GuestError, Host, Invocation, LocalResponse, LogContext, LogSink,
    PluginConfig, Started, StreamState, VmServices,
};
use proxy_wasm_host::{Engine, HeaderMap, HeaderMapExt, Limits, Module, VecHeaderMap};
use std::path::{Path, PathBuf};
use std::process::Command;
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

/// One request, as the plugin sees it: its headers, and the answer the
/// plugin sends in place of the upstream's, if it does.
struct Request {
    headers: VecHeaderMap,
    answer: Option<(u32, Vec<u8>)>,
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
        self.answer = Some((response.status_code, response.body.into_owned()));
        Ok(())
    }
}

/// What happened to a request.
#[derive(Debug)]
pub enum Outcome {
    /// The plugin answered it.
    Answered { status: u32, body: String },
    /// It went on to the backend, with these headers.
    Passed { headers: Vec<(Vec<u8>, Vec<u8>)> },
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
    /// Loads `module` and configures it with `configuration`; `Err` when
    /// the plugin refuses it, with the plugin's log.
    pub fn start(configuration: &str) -> Result<Plugin, NotStarted> {
        let failed = |e: GuestError| NotStarted::Failed(e.to_string());
        let (host, module) = compiled();
        let log = Arc::new(Log::default());
        let services = VmServices::new(log.clone());
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
            (_, Some((status, body))) => Outcome::Answered {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            },
            (Action::Continue, None) => Outcome::Passed {
                headers: request.headers.pairs(),
            },
            (_, None) => Outcome::Paused,
        })
    }
}
