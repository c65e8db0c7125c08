//! A host for the plugin inside `cargo test`: the `proxy-wasm-host` library
//! (wasmtime) loads the release module and plays Envoy's part, one request
//! at a time: its headers, its body in the pieces the test chooses, its
//! trailers, and the answer the plugin sends; and a clock the test sets.

use proxy_wasm_host::abi::v0_2_1::types::{Action, BufferType, LogLevel, MapType, Status};
use proxy_wasm_host::abi::v0_2_1::{
    Access, Clock, ContextId, Guest, GuestError, Host, Invocation, LocalResponse, LogContext,
    LogSink, PluginConfig, Started, StreamState, VmServices,
};
use proxy_wasm_host::{Buffer, Engine, HeaderMap, Limits, Module, VecHeaderMap};
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

/// The plugin configuration in the folder's `envoy.yaml` (the block
/// under `value: |`): the tests configure the plugin exactly as Envoy does.
pub fn envoy_configuration() -> String {
    configuration_in("envoy.yaml", None)
}

/// The configuration of the plugin instance `filter` (its `name:`) in
/// `senders/envoy.yaml`, one sender's scheme.
pub fn sender_configuration(filter: &str) -> String {
    configuration_in("senders/envoy.yaml", Some(filter))
}

/// The first `value: |` block in `file`, after the line `name: <filter>`
/// when a filter is named.
fn configuration_in(file: &str, filter: Option<&str>) -> String {
    let yaml =
        std::fs::read_to_string(folder().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let mut lines = yaml.lines();
    if let Some(filter) = filter {
        let name = format!("- name: {filter}");
        if !lines.any(|line| line.trim() == name) {
            panic!("no filter `{filter}` in {file}");
        }
    }
    let mut lines = lines.skip_while(|line| line.trim() != "value: |");
    let Some(start) = lines.next() else {
        panic!("no `value: |` block in {file}")
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

/// The time the plugin reads, set by the test: the signed timestamps are
/// checked against it.
#[derive(Default)]
pub struct TestClock(AtomicU64);

impl TestClock {
    /// A clock at `seconds` after the Unix epoch.
    pub fn at(seconds: u64) -> Arc<TestClock> {
        let clock = Arc::new(TestClock::default());
        clock.0.store(seconds * 1_000_000_000, Ordering::SeqCst);
        clock
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

/// One request, as the plugin sees it: its headers, the part of its body
/// Envoy holds (what arrived and has not gone on), its trailers; and what
/// became of it: the body that went on to the upstream, the answer the
/// plugin sent in its place.
#[derive(Default)]
struct Request {
    headers: VecHeaderMap,
    held: Vec<u8>,
    trailers: VecHeaderMap,
    /// The headers went on to the upstream.
    headers_forwarded: bool,
    forwarded: Vec<u8>,
    answer: Option<(u32, Vec<u8>)>,
}

// ANCHOR: after
impl Request {
    /// What Envoy does with the plugin's answer to a callback, with
    /// `allow_on_headers_stop_iteration`: `Continue` passes on the headers,
    /// if they are still held, and the body it holds; `Pause` keeps holding
    /// them (and buffers what comes next beside it), and the body
    /// callbacks still come.
    fn after(&mut self, action: Action) {
        if action == Action::Continue && self.answer.is_none() {
            self.headers_forwarded = true;
            self.forwarded.append(&mut self.held);
        }
    }
}
// ANCHOR_END: after

impl StreamState for Request {
    fn header_map(
        &mut self,
        _: Invocation,
        _: Access,
        map: MapType,
    ) -> Result<&mut dyn HeaderMap, Status> {
        match map {
            MapType::HttpRequestHeaders => Ok(&mut self.headers),
            MapType::HttpRequestTrailers => Ok(&mut self.trailers),
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
            BufferType::HttpRequestBody => Ok(&mut self.held),
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

/// A request to send: headers, the body in pieces as they arrive, and
/// trailers (none: the body ends the request).
pub struct Send<'a> {
    pub headers: Vec<(String, Vec<u8>)>,
    pub pieces: Vec<&'a [u8]>,
    pub trailers: Vec<(String, Vec<u8>)>,
}

/// What happened to a request.
#[derive(Debug)]
pub enum Outcome {
    /// The plugin answered it, after the headers had gone on or not, and
    /// this much of the body.
    Answered {
        status: u32,
        body: String,
        headers_forwarded: bool,
        forwarded: usize,
    },
    /// It went on to the upstream, with this body.
    Passed { body: Vec<u8> },
    /// The plugin held it without an answer.
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
    /// Loads the module and configures it with `configuration`, its clock
    /// at `now` (seconds after the Unix epoch); `Err` when the plugin
    /// refuses the configuration, with the plugin's log.
    pub fn start(configuration: &str, now: u64) -> Result<Plugin, NotStarted> {
        let failed = |e: GuestError| NotStarted::Failed(e.to_string());
        let (host, module) = compiled();
        let log = Arc::new(Log::default());
        let services = VmServices::new(log.clone()).with_clock(TestClock::at(now));
        let mut guest = Guest::new(host, module, services, &Limits::default()).map_err(failed)?;
        let plugin = PluginConfig::new()
            .with_name("signature")
            .with_root_id("signature")
            .with_configuration(configuration);
        match guest.start(plugin).map_err(failed)? {
            Started::Serving(root) => Ok(Plugin { guest, root, log }),
            Started::Refused { .. } => Err(refusal_reason(&log)),
        }
    }

    /// Sends one `POST /webhooks/github` as Envoy does: a context, the
    /// header callback, a body callback per piece (with all of the body
    /// Envoy holds so far), the trailers callback, then the end of the
    /// request, its log, the context's deletion. It stops at the plugin's
    /// answer, as Envoy does.
    pub fn send(&mut self, request: &Send<'_>) -> Result<Outcome, GuestError> {
        let mut headers = vec![
            (b":method".to_vec(), b"POST".to_vec()),
            (b":path".to_vec(), b"/webhooks/github".to_vec()),
        ];
        headers.extend(
            request
                .headers
                .iter()
                .map(|(name, value)| (name.as_bytes().to_vec(), value.clone())),
        );
        let trailers: Vec<(Vec<u8>, Vec<u8>)> = request
            .trailers
            .iter()
            .map(|(name, value)| (name.as_bytes().to_vec(), value.clone()))
            .collect();
        let count = |pairs: &[(Vec<u8>, Vec<u8>)]| u32::try_from(pairs.len()).unwrap_or(u32::MAX);
        let (header_count, trailer_count) = (count(&headers), count(&trailers));
        let state = Request {
            headers: VecHeaderMap::from(headers),
            trailers: VecHeaderMap::from(trailers),
            ..Request::default()
        };
        let root = self.root;
        let no_trailers = request.trailers.is_empty();
        let (result, state) = self.guest.with(state, |scope| {
            let stream = scope.on_context_create(Some(root))?;
            let body_ends = request.pieces.is_empty() && no_trailers;
            let action = scope.on_request_headers(stream, header_count, body_ends)?;
            scope.stream_mut().after(action);
            let mut going = scope.stream().answer.is_none();
            // ANCHOR: pieces
            for (n, piece) in request.pieces.iter().enumerate() {
                if !going {
                    break;
                }
                scope.stream_mut().held.extend_from_slice(piece);
                let held = u32::try_from(scope.stream().held.len()).unwrap_or(u32::MAX);
                let last = n + 1 == request.pieces.len() && no_trailers;
                let action = scope.on_request_body(stream, held, last)?;
                scope.stream_mut().after(action);
                going = scope.stream().answer.is_none();
            }
            // ANCHOR_END: pieces
            if going && !no_trailers {
                let action = scope.on_request_trailers(stream, trailer_count)?;
                scope.stream_mut().after(action);
            }
            // The ABI's order, which the library enforces; Envoy calls
            // `on_log` before `on_done`.
            scope.on_done(stream)?;
            scope.on_log(stream)?;
            scope.on_delete(stream)?;
            Ok::<_, GuestError>(going)
        });
        let finished = result?;
        Ok(match state.answer {
            Some((status, body)) => Outcome::Answered {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
                headers_forwarded: state.headers_forwarded,
                forwarded: state.forwarded.len(),
            },
            None if finished && state.headers_forwarded && state.held.is_empty() => {
                Outcome::Passed {
                    body: state.forwarded,
                }
            }
            None => Outcome::Held,
        })
    }
}
