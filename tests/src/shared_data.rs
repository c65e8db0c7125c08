//! The other plugin in a `vm_id`: `support/shared-data-writer`, on a
//! listener of its own in a step's Envoy, writes whatever shared-data entry
//! a test asks for, as any plugin configured with the step's `vm_id` could.

use crate::envoy::EnvoyConfig;
use crate::stack::free_port;
use std::path::PathBuf;

/// Builds the writer plugin (once per test process; a no-op when up to
/// date) and returns its `.wasm`.
pub fn writer_wasm() -> PathBuf {
    crate::steps::workspace_wasm("shared-data-writer")
}

/// Adds a listener on a free port whose only plugin is the writer, with
/// VMs of `vm_id`; returns the port.
pub fn add_writer(config: &mut EnvoyConfig, vm_id: &str) -> u16 {
    let port = free_port();
    let wasm = writer_wasm();
    let listener = format!(
        r#"  listeners:
  - name: shared-data-writer
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: shared_data_writer
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                direct_response: {{ status: 404 }}
          http_filters:
          - name: writer
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: writer
                vm_config:
                  vm_id: {vm_id}
                  runtime: envoy.wasm.runtime.v8
                  code: {{ local: {{ filename: {} }} }}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#,
        wasm.display()
    );
    config.replace_once("  listeners:\n", &listener);
    port
}

/// Writes `value` under `key` through the writer on `port`.
pub fn write(port: u16, key: &str, value: &[u8]) {
    let hex: String = value.iter().map(|byte| format!("{byte:02x}")).collect();
    let response = crate::http::get(
        port,
        "/",
        &[
            ("x-shared-data-key", key.as_bytes()),
            ("x-shared-data-value", hex.as_bytes()),
        ],
    )
    .expect("an answer from the shared-data writer");
    assert_eq!(
        (response.status, response.body.as_str()),
        (200, "written\n"),
        "writing `{key}`"
    );
}
