//! A host for the plugin inside `cargo test`: the `proxy-wasm-host` library
//! (wasmtime) loads the release module and plays Envoy's part, one exchange
//! at a time: the request's headers, which the plugin may change before the
//! upstream sees them; the upstream's response, its headers, its body in
//! pieces and its trailers; and what leaves for the client.

use proxy_wasm_host::abi::v0_2_1::types::{Action, BufferType, LogLevel, MapType, Status};
use proxy_wasm_host::abi::v0_2_1::{
    Access, ContextId, Guest, GuestError, Host, Invocation, LocalResponse, LogContext, LogSink,
    PluginConfig, Started, StreamState, VmServices,
};
use proxy_wasm_host::{Buffer, Engine, HeaderMap, HeaderMapExt, Limits, Module, VecHeaderMap};
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

/// The plugin configuration in the folder's `envoy.yaml` (the block under
/// `value: |`): the tests configure the plugin exactly as Envoy does.
pub fn envoy_configuration() -> String {
    let yaml = std::fs::read_to_string(folder().join("envoy.yaml"))
        .unwrap_or_else(|e| panic!("envoy.yaml: {e}"));
    let mut lines = yaml.lines().skip_while(|line| line.trim() != "value: |");
    let Some(start) = lines.next() else {
        panic!("no `value: |` block in envoy.yaml")
    };
    let indent = start.len() - start.trim_start().len();
    lines
        .take_while(|line| line.len() - line.trim_start().len() > indent)
        .collect::<Vec<_>>()
        .join("\n")
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

/// Headers, as name and value bytes.
pub type Headers = Vec<(Vec<u8>, Vec<u8>)>;

/// The upstream's response, as the test writes it.
pub struct Response {
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub pieces: Vec<Vec<u8>>,
    pub trailers: Vec<(Vec<u8>, Vec<u8>)>,
}

/// One exchange, as the plugin sees it: the request's headers, the
/// response's headers, the part of its body Envoy holds (what arrived and
/// has not gone on), its trailers; and what became of it: the body that
/// went on to the client, the answer the plugin sent in its place.
#[derive(Default)]
struct Exchange {
    request: VecHeaderMap,
    response: VecHeaderMap,
    held: Vec<u8>,
    trailers: VecHeaderMap,
    /// The response headers as they left, once they did.
    sent_headers: Option<Vec<(Vec<u8>, Vec<u8>)>>,
    forwarded: Vec<u8>,
    answer: Option<(u32, Vec<u8>)>,
}

// ANCHOR: after
impl Exchange {
    /// What Envoy does with the plugin's answer to a response callback,
    /// with `allow_on_headers_stop_iteration`: `Continue` lets the headers
    /// go, if they have not, and the body held so far; `Pause` keeps
    /// holding them (and buffers what comes next beside it).
    fn after(&mut self, action: Action) {
        if action == Action::Continue && self.answer.is_none() {
            if self.sent_headers.is_none() {
                self.sent_headers = Some(self.response.pairs());
            }
            self.forwarded.append(&mut self.held);
        }
    }
}
// ANCHOR_END: after

impl StreamState for Exchange {
    fn header_map(
        &mut self,
        _: Invocation,
        _: Access,
        map: MapType,
    ) -> Result<&mut dyn HeaderMap, Status> {
        match map {
            MapType::HttpRequestHeaders => Ok(&mut self.request),
            MapType::HttpResponseHeaders => Ok(&mut self.response),
            MapType::HttpResponseTrailers => Ok(&mut self.trailers),
            _ => Err(Status::NotFound),
        }
    }

    fn buffer(
        &mut self,
        _: Invocation,
        _: Access,
        buffer: BufferType,
    ) -> Result<&mut dyn Buffer, Status> {
        match buffer {
            BufferType::HttpResponseBody => Ok(&mut self.held),
            _ => Err(Status::NotFound),
        }
    }

    fn send_local_response(
        &mut self,
        _: Invocation,
        response: LocalResponse<'_>,
    ) -> Result<(), Status> {
        // Envoy can replace a response only while its headers are held.
        if self.sent_headers.is_some() {
            return Err(Status::BadArgument);
        }
        self.answer = Some((response.status_code, response.body.into_owned()));
        Ok(())
    }
}

/// What the client got.
#[derive(Debug)]
pub enum Outcome {
    /// The upstream's response, as the plugin let it go: its headers, and
    /// the body.
    Sent {
        headers: Vec<(Vec<u8>, Vec<u8>)>,
        body: Vec<u8>,
    },
    /// The plugin's own answer, before anything of the upstream's left.
    Refused { status: u32, body: String },
    /// Nothing: the plugin held the response and never let it go.
    Held,
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
    /// Loads the module and configures it with `configuration`.
    pub fn start(configuration: &str) -> Result<Plugin, NotStarted> {
        let (host, module) = compiled();
        let log = Arc::new(Log::default());
        let services = VmServices::new(log.clone());
        let failed = |e: GuestError| NotStarted::Failed(e.to_string());
        let mut guest = Guest::new(host, module, services, &Limits::default()).map_err(failed)?;
        let plugin = PluginConfig::new()
            .with_name("guard")
            .with_root_id("guard")
            .with_configuration(configuration);
        match guest.start(plugin).map_err(failed)? {
            Started::Serving(root) => Ok(Plugin { guest, root, log }),
            Started::Refused { .. } => Err(refusal_reason(&log)),
        }
    }

    /// One exchange, as Envoy runs it: a context; the request's headers
    /// (`GET` of `path`, with `request`), which the plugin may change; the
    /// upstream's answer to the request as the plugin left it; the
    /// response's headers, a body callback per piece (with all of the body
    /// Envoy holds so far), the trailers; then the stream's end, its log
    /// and the context's deletion, in the ABI's order, which the library
    /// enforces (Envoy calls `on_log` before `on_done`). It stops at the
    /// plugin's answer, as Envoy does. Returns the request headers
    /// the upstream saw, and what the client got.
    pub fn exchange(
        &mut self,
        path: &str,
        request: &[(&str, &[u8])],
        upstream: impl FnOnce(&Headers) -> Response,
    ) -> Result<(Headers, Outcome), GuestError> {
        let mut pairs = vec![
            (b":method".to_vec(), b"GET".to_vec()),
            (b":path".to_vec(), path.as_bytes().to_vec()),
        ];
        pairs.extend(
            request
                .iter()
                .map(|(n, v)| (n.as_bytes().to_vec(), v.to_vec())),
        );
        let count = |pairs: &[(Vec<u8>, Vec<u8>)]| u32::try_from(pairs.len()).unwrap_or(u32::MAX);
        let request_count = count(&pairs);
        let state = Exchange {
            request: VecHeaderMap::from(pairs),
            ..Exchange::default()
        };
        let root = self.root;
        let mut seen = Vec::new();
        let (result, state) = self.guest.with(state, |scope| {
            let stream = scope.on_context_create(Some(root))?;
            scope.on_request_headers(stream, request_count, true)?;
            seen = scope.stream().request.pairs();
            let response = upstream(&seen);
            let no_body = response.pieces.is_empty() && response.trailers.is_empty();
            scope.stream_mut().response = VecHeaderMap::from(response.headers.clone());
            scope.stream_mut().trailers = VecHeaderMap::from(response.trailers.clone());
            let action = scope.on_response_headers(stream, count(&response.headers), no_body)?;
            scope.stream_mut().after(action);
            for (n, piece) in response.pieces.iter().enumerate() {
                if scope.stream().answer.is_some() {
                    break;
                }
                scope.stream_mut().held.extend_from_slice(piece);
                let held = u32::try_from(scope.stream().held.len()).unwrap_or(u32::MAX);
                let last = n + 1 == response.pieces.len() && response.trailers.is_empty();
                let action = scope.on_response_body(stream, held, last)?;
                scope.stream_mut().after(action);
            }
            if scope.stream().answer.is_none() && !response.trailers.is_empty() {
                let action = scope.on_response_trailers(stream, count(&response.trailers))?;
                scope.stream_mut().after(action);
            }
            scope.on_done(stream)?;
            scope.on_log(stream)?;
            scope.on_delete(stream)?;
            Ok::<_, GuestError>(())
        });
        result?;
        let outcome = match (state.answer, state.sent_headers) {
            (Some((status, body)), _) => Outcome::Refused {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            },
            (None, Some(headers)) if state.held.is_empty() => Outcome::Sent {
                headers,
                body: state.forwarded,
            },
            (None, _) => Outcome::Held,
        };
        Ok((seen, outcome))
    }
}
