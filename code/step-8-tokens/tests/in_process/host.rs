//! A host for the plugin inside `cargo test`: the `proxy-wasm-host` library
//! (wasmtime) loads the release module and plays Envoy's part: the VMs of
//! one proxy (the refresher's and the workers'), the shared data and
//! queues they all use, the key service the refresher calls, answered by
//! the test, their environment, a clock the test sets, and for each request
//! the properties Envoy would give and the route it would choose again.
//! The test plays the timer (`tick`), the queue's notice to the refresher
//! (`queue_ready`), and another plugin of the same `vm_id` (`co_tenant`).

use proxy_wasm_host::abi::v0_2_1::types::{Action, LogLevel, MapType, Status};
use proxy_wasm_host::abi::v0_2_1::{
    Access, CalloutId, Callouts, Clock, ContextId, ForeignCall, Guest, GuestError, GuestId, Host,
    HttpCall, HttpCallRefusal, HttpCallResponse, InMemoryStore, Invocation, LocalResponse,
    LogContext, LogSink, PluginConfig, QueueId, SharedServices, Started, StreamState, VmServices,
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

/// A plugin configuration in the folder's `envoy.yaml`: the `value:` line
/// that holds `part` (`"refresh"`, the singleton's, or `"filter"`, the
/// workers'). The tests configure the plugin exactly as Envoy does.
pub fn envoy_configuration(part: &str) -> String {
    let yaml = std::fs::read_to_string(folder().join("envoy.yaml"))
        .unwrap_or_else(|e| panic!("envoy.yaml: {e}"));
    let line = yaml
        .lines()
        .filter_map(|line| line.trim().strip_prefix("value: "))
        .find(|value| value.contains(&format!("\"{part}\"")))
        .unwrap_or_else(|| panic!("no `value:` line with {part} in envoy.yaml"));
    line.trim_matches('\'').to_owned()
}

/// The plugin's log lines, as `LEVEL message`.
#[derive(Default)]
pub struct Log(Mutex<Vec<String>>);

impl Log {
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().map(|lines| lines.clone()).unwrap_or_default()
    }

    /// How many lines contain `text`.
    pub fn count(&self, text: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(text)).count()
    }
}

impl LogSink for Log {
    fn log(&self, _: LogContext<'_>, level: LogLevel, message: &[u8]) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(format!("{level:?} {}", String::from_utf8_lossy(message)));
        }
    }
}

/// The time every VM reads, set by the test.
#[derive(Default)]
pub struct TestClock(AtomicU64);

impl TestClock {
    pub fn set_ms(&self, ms: u64) {
        self.0.store(ms * 1_000_000, Ordering::SeqCst);
    }

    pub fn advance_ms(&self, ms: u64) {
        self.0.fetch_add(ms * 1_000_000, Ordering::SeqCst);
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

/// How the key service's answer reaches the refresher, as Envoy delivers
/// it.
#[derive(Clone)]
pub enum Reply {
    /// A response: this status, with this body.
    Answer(u32, Vec<u8>),
    /// The call's timeout passed: Envoy's router answers it itself, `504`
    /// with headers and the body `upstream request timeout`.
    TimedOut,
    /// The stream was reset after the response began, or the response was
    /// over Envoy's buffer limit: no headers at all.
    Reset,
}

/// The JWK set of `keys/jwks.json` (the one `envoy.yaml` serves), with
/// only the keys named in `kids`.
pub fn jwks(kids: &[&str]) -> Reply {
    let path = folder().join("keys/jwks.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut set: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if let Some(keys) = set["keys"].as_array_mut() {
        keys.retain(|key| kids.iter().any(|kid| key["kid"] == *kid));
    }
    Reply::Answer(200, set.to_string().into_bytes())
}

/// One call the refresher made, waiting for its answer.
struct Call {
    callout: CalloutId,
    upstream: Vec<u8>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The refresher's calls: the host library hands each one here, and
/// `Plugin::answer` delivers the test's `Reply`.
#[derive(Default)]
pub struct KeyService {
    waiting: Mutex<Vec<Call>>,
    made: AtomicU64,
}

impl KeyService {
    /// How many calls the refresher has made.
    pub fn calls(&self) -> u64 {
        self.made.load(Ordering::SeqCst)
    }

    /// The calls waiting for an answer, as `cluster METHOD path`.
    pub fn waiting(&self) -> Vec<String> {
        let waiting = self.waiting.lock().map(|w| {
            w.iter()
                .map(|call| {
                    let header = |name: &[u8]| {
                        call.headers
                            .iter()
                            .find(|(n, _)| n == name)
                            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                            .unwrap_or_default()
                    };
                    format!(
                        "{} {} {}",
                        String::from_utf8_lossy(&call.upstream),
                        header(b":method"),
                        header(b":path")
                    )
                })
                .collect()
        });
        waiting.unwrap_or_default()
    }

    fn next(&self) -> Option<Call> {
        let mut waiting = self.waiting.lock().ok()?;
        (!waiting.is_empty()).then(|| waiting.remove(0))
    }
}

impl Callouts for KeyService {
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
        };
        let mut waiting = self.waiting.lock().map_err(|_| HttpCallRefusal::Failed)?;
        waiting.push(call);
        Ok(())
    }
}

/// The secret both parts read from `KEY_SET_SECRET`.
pub const SECRET: &[u8] = b"in-process-key-set-secret-0123456789";

/// The `vm_id` of `envoy.yaml`: its shared data and queues are the
/// plugin's.
pub const VM_ID: &[u8] = b"tokens";

/// What the VMs of one proxy share: the shared data (one store for all,
/// as Envoy has one for every VM), the key service, the clock.
#[derive(Clone)]
pub struct Proxy {
    pub store: Arc<InMemoryStore>,
    pub clock: Arc<TestClock>,
    pub service: Arc<KeyService>,
    pub environment: Vec<(Vec<u8>, Vec<u8>)>,
    /// Each item a queue got, not yet told to the refresher.
    queued: Arc<Mutex<Vec<QueueId>>>,
}

impl Proxy {
    /// A proxy whose clock reads `ms` after the Unix epoch, with
    /// `KEY_SET_SECRET` in its environment.
    pub fn at_ms(ms: u64) -> Proxy {
        let clock = Arc::new(TestClock::default());
        clock.set_ms(ms);
        let queued: Arc<Mutex<Vec<QueueId>>> = Arc::default();
        let sink = queued.clone();
        let store = InMemoryStore::new().with_enqueue_observer(Arc::new(move |item| {
            if let Ok(mut queued) = sink.lock() {
                queued.push(item.queue);
            }
        }));
        Proxy {
            store: Arc::new(store),
            clock,
            service: Arc::new(KeyService::default()),
            environment: vec![(b"KEY_SET_SECRET".to_vec(), SECRET.to_vec())],
            queued,
        }
    }

    /// How many items the queues got that no refresher has been told of.
    pub fn queued(&self) -> usize {
        self.queued.lock().map_or(0, |q| q.len())
    }

    /// Another plugin configured with the same `vm_id`: it reads and
    /// writes the same entries.
    pub fn co_tenant(&self) -> CoTenant {
        CoTenant(self.store.clone())
    }
}

/// Another plugin of the same `vm_id`.
pub struct CoTenant(Arc<InMemoryStore>);

impl CoTenant {
    fn call() -> Invocation {
        let context = ContextId::try_from(1).unwrap_or_else(|e| panic!("{e}"));
        Invocation::new(GuestId::next(), context)
    }

    pub fn read(&self, key: &str) -> Vec<u8> {
        match self.0.get_shared_data(Self::call(), VM_ID, key.as_bytes()) {
            Ok(value) => value.bytes,
            Err(status) => panic!("reading {key}: {status:?}"),
        }
    }

    pub fn write(&self, key: &str, value: &[u8]) {
        if let Err(status) =
            self.0
                .set_shared_data(Self::call(), VM_ID, key.as_bytes(), value, None)
        {
            panic!("writing {key}: {status:?}");
        }
    }
}

/// One request, as the plugin sees it: its headers and the properties
/// Envoy gives, and what the plugin did: its answer in place of the
/// upstream's, the properties it set, the route header when it had the
/// route chosen again.
struct Request {
    headers: VecHeaderMap,
    answer: Option<(u32, Vec<u8>)>,
    challenge: Option<String>,
    properties: Vec<(Vec<u8>, Vec<u8>)>,
    route_chosen_with: Option<Vec<Vec<u8>>>,
}

/// What Envoy answers for the properties the plugin reads.
const PROPERTIES: &[(&[&[u8]], &[u8])] = &[
    (&[b"request", b"id"], b"in-process-request"),
    (&[b"source", b"address"], b"127.0.0.1:40000"),
    (&[b"xds", b"route_name"], b"tenant-a"),
];

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
        self.challenge = response
            .headers
            .iter()
            .find(|(name, _)| name.as_ref() == b"www-authenticate")
            .map(|(_, value)| String::from_utf8_lossy(value).into_owned());
        self.answer = Some((response.status_code, response.body.into_owned()));
        Ok(())
    }

    fn property(&mut self, _: Invocation, path: &[&[u8]], out: &mut Vec<u8>) -> Result<(), Status> {
        let (_, value) = PROPERTIES
            .iter()
            .find(|(known, _)| *known == path)
            .ok_or(Status::NotFound)?;
        out.extend_from_slice(value);
        Ok(())
    }

    fn set_property(&mut self, _: Invocation, path: &[&[u8]], value: &[u8]) -> Result<(), Status> {
        self.properties.push((path.join(&b'.'), value.to_vec()));
        Ok(())
    }

    /// Envoy's `clear_route_cache`: the route is chosen again, now, from
    /// the headers as they are.
    fn call_foreign_function(
        &mut self,
        _: Invocation,
        request: ForeignCall<'_>,
        _: &mut Vec<u8>,
    ) -> Result<(), Status> {
        if request.name.as_ref() != b"clear_route_cache" {
            return Err(Status::NotFound);
        }
        let tenant = self
            .headers
            .pairs()
            .into_iter()
            .filter(|(name, _)| name == b"x-tenant")
            .map(|(_, value)| value)
            .collect();
        self.route_chosen_with = Some(tenant);
        Ok(())
    }
}

/// What happened to a request.
#[derive(Debug)]
pub enum Outcome {
    /// The plugin answered it, with this `WWW-Authenticate` header if any.
    Answered {
        status: u32,
        challenge: Option<String>,
        body: String,
    },
    /// It went on to the backend.
    Passed(Passed),
    /// The plugin paused it without an answer.
    Paused,
}

#[derive(Debug)]
pub struct Passed {
    /// The headers it went on with.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The `x-tenant` values when the plugin had the route chosen again,
    /// or `None` if it did not.
    pub route_chosen_with: Option<Vec<Vec<u8>>>,
    /// The properties the plugin set, as `name` and value.
    pub properties: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The call's response, as Envoy delivers the test's `Reply`.
fn response(reply: &Reply) -> HttpCallResponse<'_> {
    let received = |status: u32, content_type: &'static [u8], body: &'static [u8]| {
        (status, content_type, body)
    };
    let (status, content_type, body) = match reply {
        Reply::Answer(status, body) => (*status, &b"application/json"[..], body.as_slice()),
        Reply::TimedOut => received(504, b"text/plain", b"upstream request timeout"),
        Reply::Reset => return HttpCallResponse::failed(),
    };
    HttpCallResponse::received(vec![
        (
            Cow::Borrowed(&b":status"[..]),
            Cow::Owned(status.to_string().into_bytes()),
        ),
        (
            Cow::Borrowed(&b"content-type"[..]),
            Cow::Borrowed(content_type),
        ),
    ])
    .with_body(body)
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

/// The plugin in a VM of its own, in a proxy: the refresher, a worker, or
/// both, as its configuration says.
pub struct Plugin {
    guest: Guest,
    root: ContextId,
    service: Arc<KeyService>,
    pub log: Arc<Log>,
}

impl Plugin {
    /// Loads the module in a VM of `proxy` and configures it with
    /// `configuration`.
    pub fn start(proxy: &Proxy, configuration: &str) -> Result<Plugin, NotStarted> {
        let (host, module) = compiled();
        let log = Arc::new(Log::default());
        let services = VmServices::new(log.clone())
            .with_vm_id(VM_ID)
            .with_shared(proxy.store.clone())
            .with_callouts(proxy.service.clone())
            .with_environment(proxy.environment.clone())
            .with_clock(proxy.clock.clone());
        let failed = |e: GuestError| NotStarted::Failed(e.to_string());
        let mut guest = Guest::new(host, module, services, &Limits::default()).map_err(failed)?;
        let plugin = PluginConfig::new()
            .with_name("auth")
            .with_root_id("auth")
            .with_configuration(configuration);
        match guest.start(plugin).map_err(failed)? {
            Started::Serving(root) => Ok(Plugin {
                guest,
                root,
                service: proxy.service.clone(),
                log,
            }),
            Started::Refused { .. } => Err(refusal_reason(&log)),
        }
    }

    /// The timer fires: `on_tick` on the root context.
    pub fn tick(&mut self) -> Result<(), GuestError> {
        let root = self.root;
        let (result, _) = self
            .guest
            .with(proxy_wasm_host::abi::v0_2_1::NoStream, |scope| {
                scope.on_tick(root)
            });
        result
    }

    /// Tells this VM's root of each item its queues got (`on_queue_ready`),
    /// as Envoy does on the refresher's thread.
    pub fn queue_ready(&mut self, proxy: &Proxy) -> Result<(), GuestError> {
        let items: Vec<QueueId> = proxy
            .queued
            .lock()
            .map(|mut queued| queued.drain(..).collect())
            .unwrap_or_default();
        let root = self.root;
        for queue in items {
            let (result, _) = self
                .guest
                .with(proxy_wasm_host::abi::v0_2_1::NoStream, |scope| {
                    scope.on_queue_ready(root, queue)
                });
            result?;
        }
        Ok(())
    }

    /// Delivers `reply` to the oldest call still waiting for its answer;
    /// `false` when no call waits.
    pub fn answer(&mut self, reply: &Reply) -> Result<bool, GuestError> {
        let Some(call) = self.service.next() else {
            return Ok(false);
        };
        let root = self.root;
        let (result, _) = self
            .guest
            .with(proxy_wasm_host::abi::v0_2_1::NoStream, |scope| {
                scope.on_http_call_response(root, call.callout, response(reply))
            });
        result.map(|()| true)
    }

    /// Sends one request to `path` with `headers` (`:method` is added)
    /// through the plugin, as Envoy does: a context, the header callback,
    /// then the end of the request, its log (Envoy calls `on_log` before
    /// `on_done`; the library keeps the ABI's order), the context's
    /// deletion.
    pub fn send(&mut self, path: &str, headers: &[(&str, &[u8])]) -> Result<Outcome, GuestError> {
        let mut pairs = vec![
            (b":method".to_vec(), b"GET".to_vec()),
            (b":path".to_vec(), path.as_bytes().to_vec()),
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
            challenge: None,
            properties: Vec::new(),
            route_chosen_with: None,
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
                challenge: request.challenge,
                body: String::from_utf8_lossy(&body).into_owned(),
            },
            (Action::Continue, None) => Outcome::Passed(Passed {
                headers: request.headers.pairs(),
                route_chosen_with: request.route_chosen_with,
                properties: request.properties,
            }),
            (_, None) => Outcome::Paused,
        })
    }
}
