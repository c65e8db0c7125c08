//! Operating a plugin: the key list changed while Envoy serves, through a
//! filter configuration file Envoy watches (code/step-1-auth/reload/), a new
//! module rolled out the same way, and different keys per route
//! (code/step-1-auth/per-route/).

use harness::capture;
use harness::envoy::{Envoy, EnvoyConfig};
use harness::http;
use harness::paths;
use harness::stack::{test_dir, use_free_ports};
use harness::steps;
use harness::variants;
use project::step::Step;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const STEP: &str = "step-1-auth";
const UPDATE_SUCCESS: &str = "extension_config_discovery.http_filter.auth.update_success";
const UPDATE_REJECTED: &str = "extension_config_discovery.http_filter.auth.update_rejected";

/// A kept-alive HTTP/1.1 connection: shows what a client that opened its
/// connection before a change gets after it.
struct KeptAlive(std::net::TcpStream);

impl KeptAlive {
    fn open(port: u16) -> KeptAlive {
        let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("a read timeout");
        KeptAlive(stream)
    }

    fn status(&mut self, key: &str) -> u16 {
        use std::io::{Read, Write};
        let request = format!("GET /api/users HTTP/1.1\r\nhost: x\r\nx-api-key: {key}\r\n\r\n");
        self.0.write_all(request.as_bytes()).expect("send");
        let mut answer = Vec::new();
        let mut buffer = [0u8; 8192];
        loop {
            let read = self.0.read(&mut buffer).expect("read");
            assert!(read > 0, "the connection was closed");
            answer.extend_from_slice(&buffer[..read]);
            let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if body.len() >= length {
                    return head[9..12].parse().unwrap_or(0);
                }
            }
        }
    }
}

fn status(port: u16, key: &str) -> u16 {
    http::get(port, "/api/users", &[("x-api-key", key.as_bytes())]).map_or(0, |r| r.status)
}

fn stat(envoy: &Envoy, name: &str) -> u64 {
    envoy.stat(name).unwrap_or(0)
}

/// Polls until `done` holds or 10 s have passed; returns whether it held.
fn eventually(done: impl FnMut() -> bool) -> bool {
    project::wait::until(Duration::from_secs(10), done)
}

/// Points the book's relative module path at `wasm`.
fn with_wasm(text: &str, wasm: &Path) -> String {
    text.replace(
        "filename: target/wasm32-wasip1/release/step_1_auth.wasm",
        &format!("filename: {}", wasm.display()),
    )
}

/// An Envoy configuration from the step folder (`relative` to it), on
/// free ports; returns it with the plugin's port and the admin port.
fn book_config(relative: &str, wasm: &Path) -> (EnvoyConfig, u16, u16) {
    let path = paths::repo_root().join("code").join(STEP).join(relative);
    let text = std::fs::read_to_string(&path).expect("read the config");
    let mut config = EnvoyConfig::from_text(with_wasm(&text, wasm));
    let step = Step::named(STEP).unwrap_or_else(|why| panic!("{why}"));
    let (port, admin, _echo) = use_free_ports(&mut config, &step);
    (config, port, admin)
}

/// The step's `reload/` folder copied into `dir/reload`, on free ports,
/// loading `wasm`; returns Envoy's bootstrap, the plugin's port and the
/// admin port.
fn reload_setup(dir: &Path, wasm: &Path) -> (EnvoyConfig, u16, u16) {
    let source = paths::repo_root().join("code").join(STEP).join("reload");
    let reload = dir.join("reload");
    std::fs::create_dir_all(&reload).expect("create reload folder");
    let filter = std::fs::read_to_string(source.join("auth-filter.yaml")).expect("read");
    std::fs::write(reload.join("auth-filter.yaml"), with_wasm(&filter, wasm))
        .expect("write auth-filter.yaml");
    std::fs::copy(source.join("set-keys.sh"), reload.join("set-keys.sh")).expect("copy script");
    let (mut config, port, admin) = book_config("reload/envoy.yaml", wasm);
    let watched = reload.join("auth-filter.yaml");
    config.replace_once(
        "path: reload/auth-filter.yaml",
        &format!("path: {}", watched.display()),
    );
    (config, port, admin)
}

fn set_keys(dir: &Path, keys: &[&str]) {
    let output = Command::new("bash")
        .arg(dir.join("reload/set-keys.sh"))
        .args(keys)
        .output()
        .expect("run set-keys.sh");
    assert!(
        output.status.success(),
        "set-keys.sh failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Valid requests, one after another on new connections, until stopped:
/// returns how many were sent and the statuses that were not 200.
fn steady_stream(
    port: u16,
    key: &'static str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, Vec<u16>)> {
    std::thread::spawn(move || {
        let (mut sent, mut failed) = (0, Vec::new());
        while !stop.load(Ordering::SeqCst) {
            let status = status(port, key);
            sent += 1;
            if status != 200 {
                failed.push(status);
            }
        }
        (sent, failed)
    })
}

#[test]
fn keys_change_without_a_restart_and_no_valid_request_fails() {
    let wasm = steps::build(STEP);
    let dir = test_dir("operating-reload");
    let (config, port, admin) = reload_setup(&dir, &wasm);
    let envoy = Envoy::start(&config, port, admin, 2, &dir).unwrap_or_else(|log| panic!("{log}"));
    assert_eq!(status(port, "key-abc123"), 200);
    assert_eq!(status(port, "key-new456"), 403);
    let loaded = stat(&envoy, UPDATE_SUCCESS);
    let mut kept_alive = KeptAlive::open(port);
    assert_eq!(kept_alive.status("key-def456"), 200);

    let stop = Arc::new(AtomicBool::new(false));
    let stream = steady_stream(port, "key-abc123", stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    set_keys(&dir, &["key-abc123", "key-new456"]);
    assert!(
        eventually(|| stat(&envoy, UPDATE_SUCCESS) > loaded),
        "the new filter configuration was not applied"
    );
    // Each worker applies the new configuration on its own.
    assert!(
        eventually(|| status(port, "key-new456") == 200),
        "the new key was never accepted"
    );
    assert!(
        eventually(|| status(port, "key-def456") == 403),
        "the removed key still works"
    );
    // Also on a connection opened before the change: the new configuration
    // applies to the next request, not to the next connection.
    let on_old_connection = kept_alive.status("key-def456");
    assert_eq!(
        on_old_connection, 403,
        "the removed key on an old connection"
    );

    // A configuration the plugin refuses: no keys at all.
    let listeners = dir.join("reload/auth-filter.yaml");
    let text = std::fs::read_to_string(&listeners).expect("read auth-filter.yaml");
    let broken = text.replace(
        r#""valid_keys": ["key-abc123", "key-new456"]"#,
        r#""valid_keys": []"#,
    );
    assert_ne!(broken, text, "the key list was not found");
    std::fs::write(dir.join("reload/broken.yaml"), broken).expect("write");
    std::fs::rename(dir.join("reload/broken.yaml"), &listeners).expect("rename");
    assert!(
        eventually(|| stat(&envoy, UPDATE_REJECTED) == 1),
        "the broken configuration was not rejected"
    );
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let (sent, failed) = stream.join().expect("the request stream");
    assert!(sent >= 20, "only {sent} requests in the stream");
    assert!(
        failed.is_empty(),
        "{} of {sent} valid requests failed: {failed:?}",
        failed.len()
    );
    assert_eq!(status(port, "key-new456"), 200, "after the rejected update");
    assert!(envoy
        .log()
        .contains("rejected plugin configuration: `valid_keys` must list at least one key"));

    capture::check_or_update(
        "operating/reload.txt",
        &format!(
            "$ bash reload/set-keys.sh key-abc123 key-new456\n\
             valid_keys: [\"key-abc123\", \"key-new456\"]\n\
             key-new456: {}, key-def456: {} (also on a connection opened before the change: {})\n\
             after a file with \"valid_keys\": []:\n\
             extension_config_discovery.http_filter.auth.update_rejected: {}\n\
             key-new456: {}\n\
             valid requests with key-abc123 sent during both changes: none failed\n",
            status(port, "key-new456"),
            status(port, "key-def456"),
            on_old_connection,
            stat(&envoy, UPDATE_REJECTED),
            status(port, "key-new456"),
        ),
    );
}

/// Points the watched filter file at another module, by writing a new
/// version and renaming it over the old one, as `set-keys.sh` does.
fn use_module(dir: &Path, from: &Path, to: &Path) {
    let watched = dir.join("reload/auth-filter.yaml");
    let text = std::fs::read_to_string(&watched).expect("read auth-filter.yaml");
    let from = format!("filename: {}", from.display());
    assert!(text.contains(&from), "the filter file does not load {from}");
    let next = dir.join("reload/next.yaml");
    std::fs::write(
        &next,
        text.replace(&from, &format!("filename: {}", to.display())),
    )
    .expect("write the next filter file");
    std::fs::rename(&next, &watched).expect("rename it over the old one");
}

/// A new version of the module goes out like a new key list: the filter
/// file names the new `.wasm`, and Envoy builds the new plugin, configures
/// it, and swaps it in, while requests keep flowing. A module Envoy cannot
/// load is rejected and the running version keeps serving.
#[test]
fn a_new_module_rolls_out_and_a_broken_one_is_rejected_without_a_failed_request() {
    const V2: variants::Patch = variants::Patch {
        file: "src/lib.rs",
        from: "\"configured, header `{}`, {} valid keys\"",
        to: "\"v2 configured, header `{}`, {} valid keys\"",
    };
    let v1 = steps::build(STEP);
    let v2 = variants::build(STEP, "rollout-v2", &[V2]);
    let dir = test_dir("operating-rollout");
    let (config, port, admin) = reload_setup(&dir, &v1);
    let envoy = Envoy::start(&config, port, admin, 2, &dir).unwrap_or_else(|log| panic!("{log}"));
    assert!(!envoy.log().contains("v2 configured"));
    let loaded = stat(&envoy, UPDATE_SUCCESS);

    let stop = Arc::new(AtomicBool::new(false));
    let stream = steady_stream(port, "key-abc123", stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    use_module(&dir, &v1, &v2);
    assert!(
        eventually(|| stat(&envoy, UPDATE_SUCCESS) > loaded),
        "the new module was not applied"
    );
    assert!(
        eventually(|| envoy.log().contains("v2 configured")),
        "the new module never configured"
    );

    // Not a Wasm module at all: Envoy cannot load it.
    let broken = dir.join("broken.wasm");
    std::fs::write(&broken, b"this is not a wasm module").expect("write broken.wasm");
    use_module(&dir, &v2, &broken);
    assert!(
        eventually(|| stat(&envoy, UPDATE_REJECTED) == 1),
        "the broken module was not rejected"
    );
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let (sent, failed) = stream.join().expect("the request stream");
    assert!(sent >= 20, "only {sent} requests in the stream");
    assert!(
        failed.is_empty(),
        "{} of {sent} valid requests failed: {failed:?}",
        failed.len()
    );
    assert_eq!(status(port, "key-abc123"), 200, "after the rejected module");
    assert_eq!(status(port, "key-new456"), 403);
    capture::check_or_update(
        "operating/rollout.txt",
        &format!(
            "filter file now names the v2 module:\n\
             {UPDATE_SUCCESS}: {}\n\
             wasm log auth: v2 configured, header `x-api-key`, 3 valid keys\n\
             filter file now names a file that is not a Wasm module:\n\
             {UPDATE_REJECTED}: {}\n\
             key-abc123: {} (v2 still serving)\n\
             valid requests sent during both changes: none failed\n",
            stat(&envoy, UPDATE_SUCCESS) - loaded,
            stat(&envoy, UPDATE_REJECTED),
            status(port, "key-abc123"),
        ),
    );
}

/// A whole Envoy configuration from the step folder, on free ports, loading
/// `wasm`; returns the running Envoy.
fn start_file(test_name: &str, relative: &str, wasm: &Path) -> Envoy {
    let (config, port, admin) = book_config(relative, wasm);
    Envoy::start(&config, port, admin, 2, &test_dir(test_name))
        .unwrap_or_else(|log| panic!("{log}"))
}

/// Two instances of the same plugin with different key lists, each turned
/// off on the routes that are not its own: the admin route takes only the
/// admin key, the rest of /api/ only the usual keys. The second instance
/// shares the first one's VMs (same vm_config): no extra VM per worker.
#[test]
fn different_keys_per_route_with_a_second_instance() {
    let wasm = steps::build(STEP);
    let envoy = start_file("operating-per-route", "per-route/envoy.yaml", &wasm);
    let port = envoy.port;
    let get = |path: &str, key: Option<&str>| {
        let headers: Vec<(&str, &[u8])> = key
            .map(|k| ("x-api-key", k.as_bytes()))
            .into_iter()
            .collect();
        http::get(port, path, &headers).map_or(0, |r| r.status)
    };
    let mut table = String::from("path               key             status\n");
    for (path, key, expected) in [
        ("/api/users", Some("key-abc123"), 200),
        ("/api/users", Some("admin-key-7f3a"), 403),
        ("/api/admin/users", Some("key-abc123"), 403),
        ("/api/admin/users", Some("admin-key-7f3a"), 200),
        ("/api/admin/users", None, 401),
        ("/public/info", None, 200),
    ] {
        let status = get(path, key);
        assert_eq!(status, expected, "{path} with {key:?}");
        table.push_str(&format!(
            "{path:<18} {:<15} {status}\n",
            key.unwrap_or("(none)")
        ));
    }
    // Live VMs: every release of the matrix has this statistic.
    let vms = |envoy: &Envoy| {
        envoy
            .stat("wasm.envoy.wasm.runtime.v8.active")
            .unwrap_or_else(|| panic!("no VM count:\n{}", envoy.admin("/stats?filter=wasm")))
    };
    let with_two = vms(&envoy);
    let one = start_file("operating-per-route-one-instance", "envoy.yaml", &wasm);
    assert_eq!(with_two, vms(&one), "the second instance added VMs");
    capture::check_or_update(
        "operating/per-route.txt",
        &format!("{table}\nVMs with one instance of the plugin: {}\nVMs with two:                      {with_two}\n", vms(&one)),
    );
}
