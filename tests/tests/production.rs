//! Delivering the module in production: step 1 fetched over HTTP as
//! `remote` code (code/step-1-auth/remote/envoy.yaml), loaded only when its
//! SHA-256 is the one configured.

use harness::capture;
use harness::envoy::{self, Envoy, EnvoyConfig};
use harness::file_server::FileServer;
use harness::http;
use harness::paths;
use harness::stack::{test_dir, use_free_ports};
use harness::steps;
use project::step::Step;

const STEP: &str = "step-1-auth";
/// The module server's port in remote/envoy.yaml.
const MODULE_PORT: u16 = 8000;

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Envoy from the book's remote/envoy.yaml, on free ports, fetching the
/// module from `server`, expecting `sha256`.
fn start(test_name: &str, server: &FileServer, sha256: &str) -> Envoy {
    let path = paths::repo_root()
        .join("code")
        .join(STEP)
        .join("remote/envoy.yaml");
    let text = std::fs::read_to_string(&path).expect("read remote/envoy.yaml");
    let mut config = EnvoyConfig::from_text(text);
    config.replace_once("sha256: SHA256_OF_THE_MODULE", &format!("sha256: {sha256}"));
    config.replace_once(
        &format!("uri: http://127.0.0.1:{MODULE_PORT}/"),
        &format!("uri: http://127.0.0.1:{}/", server.port),
    );
    config.replace_port(MODULE_PORT, server.port);
    let step = Step::named(STEP).unwrap_or_else(|why| panic!("{why}"));
    let (port, admin, _echo) = use_free_ports(&mut config, &step);
    Envoy::start(&config, port, admin, 2, &test_dir(test_name))
        .unwrap_or_else(|log| panic!("{log}"))
}

fn status(envoy: &Envoy, path: &str, key: Option<&str>) -> u16 {
    let headers: Vec<(&str, &[u8])> = key
        .map(|k| ("x-api-key", k.as_bytes()))
        .into_iter()
        .collect();
    http::get(envoy.port, path, &headers).map_or(0, |r| r.status)
}

#[test]
fn remote_code_loads_only_with_its_sha256() {
    let module = std::fs::read(steps::build(STEP)).expect("read the module");
    let server = FileServer::start(module.clone());
    let right = start("production-remote-right-sha", &server, &sha256_hex(&module));
    let fetched = server.requests();
    assert!(fetched >= 1, "Envoy never fetched the module");
    let right_statuses = [
        status(&right, "/api/users", None),
        status(&right, "/api/users", Some("key-abc123")),
        status(&right, "/public/info", None),
    ];
    assert_eq!(right_statuses, [401, 200, 200]);
    assert_eq!(server.requests(), fetched, "fetched again for a request");
    drop(right);

    // The same bytes, announced with another digest: Envoy is up, but the
    // plugin never loads, and the route it guards fails closed.
    let server = FileServer::start(module);
    let wrong = start("production-remote-wrong-sha", &server, &"f".repeat(64));
    let failed_to_load = project::wait::until(std::time::Duration::from_secs(20), || {
        wrong.log().contains("Plugin auth failed to load")
    });
    assert!(failed_to_load, "{}", wrong.log());
    let wrong_statuses = [
        status(&wrong, "/api/users", None),
        status(&wrong, "/api/users", Some("key-abc123")),
        status(&wrong, "/public/info", None),
    ];
    assert_eq!(wrong_statuses, [503, 503, 200]);
    assert!(!wrong.log().contains("wasm log auth: configured"));
    let lines = envoy::log_lines(&wrong.log(), "wasm", &["critical", "warning"])
        + &envoy::log_lines(&wrong.log(), "config", &["warning"]);
    capture::check_or_update(
        "production/remote-code.txt",
        &format!(
            "sha256 of the module served: /api/ without a key {}, with key-abc123 {}, /public/ {}\n\
             any other sha256:             /api/ without a key {}, with key-abc123 {}, /public/ {}\n\
             Envoy's log with the wrong sha256:\n{}",
            right_statuses[0], right_statuses[1], right_statuses[2],
            wrong_statuses[0], wrong_statuses[1], wrong_statuses[2],
            lines
        ),
    );
}

/// The value after `key: ` on the one line of `text` that has it.
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix(key))
        .collect();
    assert_eq!(lines.len(), 1, "`{key}` on {} lines", lines.len());
    lines[0].trim()
}

/// Istio is not run here: the manifest is checked against step 1, so that
/// it configures the plugin exactly as the tested envoy.yaml does.
#[test]
fn the_istio_manifest_configures_the_plugin_as_step_1_does() {
    let folder = paths::repo_root().join("code").join(STEP);
    let read = |name: &str| std::fs::read_to_string(folder.join(name)).expect("read");
    let (manifest, envoy_yaml) = (read("istio/wasm-plugin.yaml"), read("envoy.yaml"));
    let json = |text: &str| -> serde_json::Value {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
    };
    let step_1 = field(&envoy_yaml, "value: ");
    assert_eq!(
        json(field(&manifest, "pluginConfig: ")),
        json(step_1.trim_matches('\'')),
        "pluginConfig differs from step 1's configuration"
    );
    assert_eq!(field(&envoy_yaml, "failure_policy: "), "FAIL_RELOAD");
    assert_eq!(field(&manifest, "failStrategy: "), "FAIL_RELOAD");
    let url = field(&manifest, "url: ");
    assert!(
        url.starts_with("oci://") && url.contains("@sha256:"),
        "not pinned by digest: {url}"
    );
}
