//! A host for the plugin inside `cargo test`: the `proxy-wasm-host` library
//! (wasmtime) loads the release module and plays Envoy's part, one request
//! at a time: the request's headers, and the answer the plugin sends; and
//! the rate limit service the plugin calls over gRPC, answered by the test.

use proxy_wasm_host::abi::v0_2_1::types::{Action, LogLevel, MapType, Status, StreamType};
use proxy_wasm_host::abi::v0_2_1::{
    Access, CalloutId, Callouts, ContextId, GrpcCall, GrpcOpenRefusal, GrpcStatus, Guest,
    GuestError, Host, Invocation, LocalResponse, LogContext, LogSink, PluginConfig, Started,
    StreamState, VmServices,
};
use proxy_wasm_host::{Engine, HeaderMap, HeaderMapExt, Limits, Module, VecHeaderMap};
use std::borrow::Cow;
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

/// How the rate limit service answers one call: a message (gRPC status
/// 0), or a status without one (Envoy reports a refused connection and the
/// call's timeout as 14, UNAVAILABLE).
#[derive(Clone)]
pub enum Reply {
    Message(Vec<u8>),
    Status(u32, String),
}

/// One call the plugin made, waiting for its answer: the cluster, the
/// service and method it names, and its message.
pub struct Call {
    callout: CalloutId,
    pub upstream: Vec<u8>,
    pub service: Vec<u8>,
    pub method: Vec<u8>,
    pub message: Vec<u8>,
}

/// The plugin's calls: the host library hands each one here, and `send`
/// answers it with the test's `Reply`.
#[derive(Default)]
pub struct RateLimitService {
    waiting: Mutex<Vec<Call>>,
    made: AtomicU64,
}

impl RateLimitService {
    /// How many calls the plugin has made.
    pub fn calls(&self) -> u64 {
        self.made.load(Ordering::SeqCst)
    }

    fn next(&self) -> Option<Call> {
        self.waiting.lock().ok()?.pop()
    }
}

impl Callouts for RateLimitService {
    fn grpc_call(
        &self,
        _: Invocation,
        callout: CalloutId,
        request: GrpcCall<'_>,
    ) -> Result<(), GrpcOpenRefusal> {
        self.made.fetch_add(1, Ordering::SeqCst);
        let call = Call {
            callout,
            upstream: request.upstream.to_vec(),
            service: request.service.to_vec(),
            method: request.method.to_vec(),
            message: request.message.to_vec(),
        };
        let mut waiting = self.waiting.lock().map_err(|_| GrpcOpenRefusal::Failed)?;
        waiting.push(call);
        Ok(())
    }
}

/// Header pairs, name and value as bytes.
pub type Headers = Vec<(Vec<u8>, Vec<u8>)>;

/// One request, as the plugin sees it: its headers, and the answer the
/// plugin sends in place of the upstream's, if it does.
struct Request {
    headers: VecHeaderMap,
    answer: Option<(u32, Vec<u8>, Headers)>,
    resumed: bool,
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

    /// `resume_http_request`: the paused request goes on.
    fn continue_stream(&mut self, _: Invocation, stream: StreamType) -> Result<(), Status> {
        match stream {
            StreamType::HttpRequest => {
                self.resumed = true;
                Ok(())
            }
            _ => Err(Status::BadArgument),
        }
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
    service: Arc<RateLimitService>,
    pub log: Arc<Log>,
}

impl Plugin {
    /// Loads the module and configures it with `configuration`, its calls
    /// going to `service`; `Err` when the plugin refuses the
    /// configuration, with the plugin's log.
    pub fn start(
        configuration: &str,
        service: Arc<RateLimitService>,
    ) -> Result<Plugin, NotStarted> {
        let failed = |e: GuestError| NotStarted::Failed(e.to_string());
        let (host, module) = compiled();
        let log = Arc::new(Log::default());
        let services = VmServices::new(log.clone()).with_callouts(service.clone());
        let mut guest = Guest::new(host, module, services, &Limits::default()).map_err(failed)?;
        let plugin = PluginConfig::new()
            .with_name("auth")
            .with_root_id("auth")
            .with_configuration(configuration);
        match guest.start(plugin).map_err(failed)? {
            Started::Serving(root) => Ok(Plugin {
                guest,
                root,
                service,
                log,
            }),
            Started::Refused { .. } => Err(refusal_reason(&log)),
        }
    }

    /// Sends one request with `headers` (`:path` and `:method` are added)
    /// as Envoy does: a context, the header callback; if the plugin called
    /// the rate limit service, `answer`'s reply to the call delivered to
    /// the paused request; then the end of the request, its log, the
    /// context's deletion.
    pub fn send(
        &mut self,
        headers: &[(&str, &[u8])],
        mut answer: impl FnMut(&Call) -> Reply,
    ) -> Result<Outcome, GuestError> {
        let mut pairs = vec![
            (b":method".to_vec(), b"GET".to_vec()),
            (b":path".to_vec(), b"/api/users".to_vec()),
        ];
        pairs.extend(
            headers
                .iter()
                .map(|(n, v)| (n.as_bytes().to_vec(), v.to_vec())),
        );
        let count = u32::try_from(pairs.len()).unwrap_or(u32::MAX);
        let request = Request {
            headers: VecHeaderMap::from(pairs),
            answer: None,
            resumed: false,
        };
        let root = self.root;
        let service = self.service.clone();
        let (action, request) = self.guest.with(request, |scope| {
            let stream = scope.on_context_create(Some(root))?;
            let action = scope.on_request_headers(stream, count, true)?;
            // ANCHOR: grpc_delivery
            if let Some(call) = service.next() {
                match answer(&call) {
                    Reply::Message(message) => {
                        scope.on_grpc_receive(stream, call.callout, Cow::Owned(message))?
                    }
                    Reply::Status(code, message) => {
                        scope.on_grpc_close(stream, call.callout, GrpcStatus::new(code, message))?
                    }
                }
            }
            // ANCHOR_END: grpc_delivery
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
            (_, None) if request.resumed => Outcome::Passed {
                headers: request.headers.pairs(),
            },
            (_, None) => Outcome::Paused,
        })
    }
}
