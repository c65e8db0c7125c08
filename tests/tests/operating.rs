//! Operating a plugin: the key list changed while Envoy serves, through a
//! listener file Envoy watches (code/step-1-auth/reload/).

use harness::capture;
use harness::envoy::{Envoy, EnvoyConfig};
use harness::http;
use harness::paths;
use harness::stack::{free_port, test_dir};
use harness::steps;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const STEP: &str = "step-1-auth";

fn status(port: u16, key: &str) -> u16 {
    http::get(port, "/api/users", &[("x-api-key", key.as_bytes())]).map_or(0, |r| r.status)
}

fn stat(envoy: &Envoy, name: &str) -> u64 {
    envoy
        .admin(&format!("/stats?filter=^{name}$"))
        .split(": ")
        .nth(1)
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Polls until `done` holds or 10 s have passed; returns whether it held.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The step's `reload/` folder copied into `dir/reload`, on free ports,
/// loading `wasm`; returns Envoy's bootstrap and the listener's port.
fn reload_setup(dir: &Path, wasm: &Path) -> (EnvoyConfig, u16, u16) {
    let source = paths::repo_root().join("code").join(STEP).join("reload");
    let reload = dir.join("reload");
    std::fs::create_dir_all(&reload).expect("create reload folder");
    let (port, admin, echo) = (free_port(), free_port(), free_port());
    let on_free_ports = |text: String| {
        text.replace("port_value: 8080 ", &format!("port_value: {port} "))
            .replace("port_value: 9091 ", &format!("port_value: {admin} "))
            .replace("port_value: 3000 ", &format!("port_value: {echo} "))
    };
    let read = |name: &str| std::fs::read_to_string(source.join(name)).expect("read reload file");
    let listeners = on_free_ports(read("listeners.yaml")).replace(
        "filename: target/wasm32-wasip1/release/step_1_auth.wasm",
        &format!("filename: {}", wasm.display()),
    );
    std::fs::write(reload.join("listeners.yaml"), listeners).expect("write listeners.yaml");
    std::fs::copy(source.join("set-keys.sh"), reload.join("set-keys.sh")).expect("copy script");
    let bootstrap = on_free_ports(read("envoy.yaml")).replace(
        "path: reload/listeners.yaml",
        &format!("path: {}", reload.join("listeners.yaml").display()),
    );
    (EnvoyConfig::from_text(bootstrap), port, admin)
}

fn set_keys(dir: &Path, keys: &[&str]) {
    let status = Command::new("bash")
        .arg(dir.join("reload/set-keys.sh"))
        .args(keys)
        .status()
        .expect("run set-keys.sh");
    assert!(status.success(), "set-keys.sh failed");
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
    let loaded = stat(&envoy, "listener_manager.lds.update_success");

    let stop = Arc::new(AtomicBool::new(false));
    let stream = steady_stream(port, "key-abc123", stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    set_keys(&dir, &["key-abc123", "key-new456"]);
    assert!(
        eventually(|| stat(&envoy, "listener_manager.lds.update_success") > loaded),
        "the new listener file was not applied"
    );
    // Each worker switches to the new listener's filter chain on its own.
    assert!(
        eventually(|| status(port, "key-new456") == 200),
        "the new key was never accepted"
    );
    assert!(
        eventually(|| status(port, "key-def456") == 403),
        "the removed key still works"
    );

    // A configuration the plugin refuses: no keys at all.
    let listeners = dir.join("reload/listeners.yaml");
    let text = std::fs::read_to_string(&listeners).expect("read listeners.yaml");
    let broken = text.replace(
        r#""valid_keys": ["key-abc123", "key-new456"]"#,
        r#""valid_keys": []"#,
    );
    assert_ne!(broken, text, "the key list was not found");
    std::fs::write(dir.join("reload/broken.yaml"), broken).expect("write");
    std::fs::rename(dir.join("reload/broken.yaml"), &listeners).expect("rename");
    assert!(
        eventually(|| stat(&envoy, "listener_manager.lds.update_rejected") == 1),
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

    capture::check_or_update_stats(
        "operating/reload.txt",
        &format!(
            "$ bash reload/set-keys.sh key-abc123 key-new456\n\
             valid_keys: [\"key-abc123\", \"key-new456\"]\n\
             key-new456: {}, key-def456: {}\n\
             after a listener file with \"valid_keys\": []:\n\
             listener_manager.lds.update_rejected: {}\n\
             key-new456: {}\n\
             valid requests with key-abc123 sent during both changes: none failed\n",
            status(port, "key-new456"),
            status(port, "key-def456"),
            stat(&envoy, "listener_manager.lds.update_rejected"),
            status(port, "key-new456"),
        ),
    );
}
