//! A host for the plugin inside `cargo test`: the `proxy-wasm-host` library
//! (wasmtime) loads the release module and plays Envoy's part, one request
//! at a time: the request's headers, and the answer the plugin sends; the
//! auth service the plugin calls, answered by the test; the shared data of
//! the VMs (one store for every worker, as in Envoy), their environment,
//! and a clock the test sets.

use proxy_wasm_host::abi::v0_2_1::types::{Action, LogLevel, MapType, Status, StreamType};
use proxy_wasm_host::abi::v0_2_1::{
    Access, CalloutId, Callouts, Clock, ContextId, Guest, GuestError, Host, HttpCall,
    HttpCallRefusal, HttpCallResponse, InMemoryStore, Invocation, LocalResponse, LogContext,
    LogSink, PluginConfig, Started, StreamState, VmServices,
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

/// How the auth service's answer to one call reaches the plugin, as
/// Envoy delivers it.
#[derive(Clone)]
pub enum Reply {
    /// A response: this status, with this body.
    Answer(u32, Vec<u8>),
    /// The call's timeout passed: Envoy's router answers the call itself,
    /// `504` with headers and the body `upstream request timeout`.
    TimedOut,
    /// The stream was reset after the response began, or the response was
    /// over Envoy's buffer limit: the plugin is called back with no
    /// headers at all.
    Reset,
}

/// The auth service of the folder's `envoy.yaml`, on its cluster
/// `auth-service`: to `POST /validate`, `200 {"valid":true}` for the body
/// `{"key":"<a valid key>"}` and `403 {"valid":false}` otherwise; `404`
/// to anything else.
pub fn book_auth_service(call: &Call) -> Reply {
    let header = |name: &[u8]| {
        call.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| value.as_slice())
    };
    let asks = call.upstream == b"auth-service"
        && header(b":method") == Some(b"POST")
        && header(b":path") == Some(b"/validate");
    if !asks {
        return Reply::Answer(404, br#"{"error":"not found"}"#.to_vec());
    }
    let valid = ["key-abc123", "key-def456", "key-ghi789"]
        .iter()
        .any(|key| call.body == format!(r#"{{"key":"{key}"}}"#).as_bytes());
    if valid {
        Reply::Answer(200, br#"{"valid":true}"#.to_vec())
    } else {
        Reply::Answer(403, br#"{"valid":false}"#.to_vec())
    }
}

/// One call the plugin made, waiting for its answer: the cluster it
/// names, its headers and its body.
pub struct Call {
    callout: CalloutId,
    pub upstream: Vec<u8>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// The plugin's calls: the host library hands each one here, and `send`
/// answers it with the test's `Reply`.
#[derive(Default)]
pub struct AuthService {
    waiting: Mutex<Vec<Call>>,
    made: AtomicU64,
}

impl AuthService {
    /// How many calls the plugin has made.
    pub fn calls(&self) -> u64 {
        self.made.load(Ordering::SeqCst)
    }

    fn next(&self) -> Option<Call> {
        self.waiting.lock().ok()?.pop()
    }
}

// ANCHOR: callouts
impl Callouts for AuthService {
    fn http_call(
        &self,
        _: Invocation,
        callout: CalloutId,
        request: HttpCall<'_>,
    ) -> Result<(), HttpCallRefusal> {
        self.made.fetch_add(1, Ordering::SeqCst);
        let call = Call {
            callout,
            upstream: request.upstream.to_vec(),
            headers: request
                .headers
                .iter()
                .map(|(name, value)| (name.to_vec(), value.to_vec()))
                .collect(),
            body: request.body.to_vec(),
        };
        let mut waiting = self.waiting.lock().map_err(|_| HttpCallRefusal::Failed)?;
        waiting.push(call);
        Ok(())
    }
}
// ANCHOR_END: callouts

/// A secret for the cache, as Envoy passes `AUTH_CACHE_SECRET` from its
/// environment to the plugin.
pub const CACHE_SECRET: &[u8] = b"in-process-cache-secret-0123456789";

/// What the VMs of one proxy share: the shared data (one store for all,
/// as Envoy has one for every worker), the auth service, and the clock.
#[derive(Clone)]
pub struct Proxy {
    pub store: Arc<InMemoryStore>,
    pub clock: Arc<TestClock>,
    pub auth: Arc<AuthService>,
    pub environment: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Proxy {
    /// A proxy whose clock reads `seconds` after the Unix epoch, with
    /// `AUTH_CACHE_SECRET` in its environment.
    pub fn at(seconds: u64) -> Proxy {
        Proxy {
            store: Arc::new(InMemoryStore::new()),
            clock: TestClock::at(seconds),
            auth: Arc::new(AuthService::default()),
            environment: vec![(b"AUTH_CACHE_SECRET".to_vec(), CACHE_SECRET.to_vec())],
        }
    }
}

/// One request, as the plugin sees it: its headers, and the answer the
/// plugin sends in place of the upstream's, if it does.
struct Request {
    headers: VecHeaderMap,
    answer: Option<(u32, Vec<u8>)>,
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
        self.answer = Some((response.status_code, response.body.into_owned()));
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
    Answered { status: u32, body: String },
    /// It went on to the backend, with these headers.
    Passed { headers: Vec<(Vec<u8>, Vec<u8>)> },
    /// The plugin paused it without an answer.
    Paused,
}

/// The HTTP call's response, built from the test's `Reply`.
fn response(reply: &Reply) -> HttpCallResponse<'_> {
    match reply {
        Reply::Answer(status, body) => {
            let status = status.to_string().into_bytes();
            HttpCallResponse::received(vec![
                (Cow::Borrowed(&b":status"[..]), Cow::Owned(status)),
                (
                    Cow::Borrowed(&b"content-type"[..]),
                    Cow::Borrowed(&b"application/json"[..]),
                ),
            ])
            .with_body(body.as_slice())
        }
        Reply::TimedOut => HttpCallResponse::received(vec![
            (Cow::Borrowed(&b":status"[..]), Cow::Borrowed(&b"504"[..])),
            (
                Cow::Borrowed(&b"content-type"[..]),
                Cow::Borrowed(&b"text/plain"[..]),
            ),
        ])
        .with_body(&b"upstream request timeout"[..]),
        Reply::Reset => HttpCallResponse::failed(),
    }
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
    auth: Arc<AuthService>,
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
            .with_vm_id("auth-service-cache")
            .with_shared(proxy.store.clone())
            .with_callouts(proxy.auth.clone())
            .with_environment(proxy.environment.clone())
            .with_clock(proxy.clock.clone());
        let mut guest = Guest::new(host, module, services, &Limits::default()).map_err(failed)?;
        let plugin = PluginConfig::new()
            .with_name("auth")
            .with_root_id("auth")
            .with_configuration(configuration);
        match guest.start(plugin).map_err(failed)? {
            Started::Serving(root) => Ok(Plugin {
                guest,
                root,
                auth: proxy.auth.clone(),
                log,
            }),
            Started::Refused { .. } => Err(refusal_reason(&log)),
        }
    }

    /// Sends one request with `headers` (`:path` and `:method` are added)
    /// through the plugin, with the folder's auth service answering its
    /// call, if it makes one.
    pub fn send(&mut self, headers: &[(&str, &[u8])]) -> Result<Outcome, GuestError> {
        self.send_answered(headers, book_auth_service)
    }

    /// Sends one request as Envoy does: a context, the header callback; if
    /// the plugin called the auth service, `answer`'s reply to the call
    /// delivered to the paused request; then the end of the request, its
    /// log, the context's deletion.
    pub fn send_answered(
        &mut self,
        headers: &[(&str, &[u8])],
        answer: impl FnMut(&Call) -> Reply,
    ) -> Result<Outcome, GuestError> {
        let headers: Vec<(&[u8], &[u8])> =
            headers.iter().map(|(n, v)| (n.as_bytes(), *v)).collect();
        self.send_raw(&headers, answer)
    }

    /// `send_answered` with header names as bytes: names no HTTP client
    /// would send, but nothing here stops them.
    pub fn send_raw(
        &mut self,
        headers: &[(&[u8], &[u8])],
        mut answer: impl FnMut(&Call) -> Reply,
    ) -> Result<Outcome, GuestError> {
        let mut pairs = vec![
            (b":method".to_vec(), b"GET".to_vec()),
            (b":path".to_vec(), b"/api/users".to_vec()),
        ];
        pairs.extend(headers.iter().map(|(n, v)| (n.to_vec(), v.to_vec())));
        let count = u32::try_from(pairs.len()).unwrap_or(u32::MAX);
        let request = Request {
            headers: VecHeaderMap::from(pairs),
            answer: None,
            resumed: false,
        };
        let root = self.root;
        let auth = self.auth.clone();
        let (action, request) = self.guest.with(request, |scope| {
            let stream = scope.on_context_create(Some(root))?;
            let action = scope.on_request_headers(stream, count, true)?;
            // ANCHOR: deliver
            if let Some(call) = auth.next() {
                let reply = answer(&call);
                scope.on_http_call_response(stream, call.callout, response(&reply))?;
            }
            // ANCHOR_END: deliver
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
            (_, None) if request.resumed => Outcome::Passed {
                headers: request.headers.pairs(),
            },
            (_, None) => Outcome::Paused,
        })
    }
}
