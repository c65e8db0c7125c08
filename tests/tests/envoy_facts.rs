//! What the book says about Envoy itself, shown on a running Envoy 1.40:
//! the order of a stream's last callbacks, which VMs filters share, and
//! what Lua scripts can reach. The plugin is the harness's probe
//! (`support/probe`), which answers every request itself.

use harness::envoy::{Envoy, EnvoyConfig};
use harness::http;
use harness::stack::{free_port, test_dir};
use std::path::Path;
use std::time::Duration;

/// A listener on `port` whose one filter is `filter` (YAML, indented as an
/// item of `http_filters`), in front of a route Envoy answers itself.
fn listener(name: &str, port: u16, filter: &str) -> String {
    project::envoy::listener_yaml(
        name,
        port,
        r#"              - match: { prefix: "/" }
                direct_response: { status: 200, body: { inline_string: "upstream\n" } }"#,
        filter,
    )
}

/// The probe as a filter, in VMs of `vm_id`, with `PROBE` set to `value`
/// in its VM's environment.
fn probe(wasm: &Path, vm_id: &str, value: &str) -> String {
    format!(
        r#"          - name: probe
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: probe
                vm_config:
                  vm_id: {vm_id}
                  runtime: envoy.wasm.runtime.v8
                  environment_variables: {{ key_values: {{ PROBE: "{value}" }} }}
                  code: {{ local: {{ filename: "{}" }} }}"#,
        wasm.display()
    )
}

/// Envoy with these listeners (the first one's port is the stack's).
fn start(test_name: &str, listeners: &[String]) -> Envoy {
    let admin = free_port();
    let config = EnvoyConfig::from_text(format!(
        "admin:\n  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}\n\
         static_resources:\n  listeners:\n{}",
        listeners.concat()
    ));
    Envoy::start(&config, 0, admin, 1, &test_dir(test_name)).unwrap_or_else(|log| panic!("{log}"))
}

fn probe_wasm() -> std::path::PathBuf {
    harness::steps::workspace_wasm("probe")
}

/// The value of `x-probe-env` the probe on `port` answers with.
fn probe_env(port: u16) -> String {
    let response = http::get(port, "/", &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status, 200, "{response:?}");
    response
        .header("x-probe-env")
        .unwrap_or_else(|| panic!("no x-probe-env: {response:?}"))
        .to_owned()
}

/// Envoy calls `proxy_on_log` before `proxy_on_done` and `proxy_on_delete`
/// (envoy#13174: the access log runs before the filters are destroyed),
/// not in the order of the Proxy-Wasm ABI's description.
#[test]
fn a_streams_last_callbacks_come_log_then_done_then_delete() {
    let port = free_port();
    let envoy = start(
        "facts-callback-order",
        &[listener("probe", port, &probe(&probe_wasm(), "order", "x"))],
    );
    probe_env(port);
    let order = || -> Vec<String> {
        envoy
            .log()
            .lines()
            .filter_map(|line| line.split_once("probe: ").map(|(_, what)| what.to_owned()))
            .collect()
    };
    project::wait::until(Duration::from_secs(2), || order().len() >= 3);
    assert_eq!(order(), ["on_log", "on_done", "deleted"]);
}

/// The VMs two filters with the same `vm_id` and code share, and the
/// environment each filter's VMs see. Envoy's `makeVmKey` (wasm.cc, with
/// proxy-wasm-cpp-host) hashes the `vm_id`, the VM configuration and the
/// code; measured on 1.40, filters that differ only in
/// `environment_variables` get VMs of their own all the same, each with
/// its own environment. (Shared data belongs to the `vm_id`: they still
/// share that.)
#[test]
fn filters_that_differ_in_their_environment_get_vms_of_their_own() {
    let wasm = probe_wasm();
    let vms = |envoy: &Envoy| envoy.stat("wasm.envoy.wasm.runtime.v8.active");
    let mut seen = Vec::new();
    for (name, second_value) in [("same-environment", "first"), ("own-environment", "second")] {
        let (first, second) = (free_port(), free_port());
        let envoy = start(
            &format!("facts-{name}"),
            &[
                listener("first", first, &probe(&wasm, "same", "first")),
                listener("second", second, &probe(&wasm, "same", second_value)),
            ],
        );
        seen.push((probe_env(first), probe_env(second), vms(&envoy)));
    }
    let (shared, own) = (&seen[0], &seen[1]);
    assert_eq!((shared.0.as_str(), shared.1.as_str()), ("first", "first"));
    assert_eq!((own.0.as_str(), own.1.as_str()), ("first", "second"));
    let (Some(shared_vms), Some(own_vms)) = (shared.2, own.2) else {
        panic!("no VM count: {seen:?}");
    };
    assert_eq!(own_vms, 2 * shared_vms, "{seen:?}");
}

/// Envoy opens LuaJIT's standard libraries for its Lua filter
/// (`luaL_openlibs`): a script can reach `io`, `os`, `debug`, and `ffi`
/// through `require`. Lua in Envoy is not a sandbox.
#[test]
fn a_lua_script_reaches_io_os_debug_and_ffi() {
    let port = free_port();
    let lua = r#"          - name: envoy.filters.http.lua
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
              default_source_code:
                inline_string: |
                  function envoy_on_request(request)
                    local reached = {}
                    for _, name in ipairs({"io", "os", "debug"}) do
                      if type(_G[name]) == "table" then table.insert(reached, name) end
                    end
                    if pcall(require, "ffi") then table.insert(reached, "ffi") end
                    request:respond({[":status"] = "200"}, table.concat(reached, " "))
                  end"#;
    let _envoy = start("facts-lua-libraries", &[listener("lua", port, lua)]);
    let response = http::get(port, "/", &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (response.status, response.body.as_str()),
        (200, "io os debug ffi")
    );
}
