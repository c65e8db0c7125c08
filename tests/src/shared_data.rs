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
    let filter = format!(
        r#"          - name: writer
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: writer
                vm_config:
                  vm_id: {vm_id}
                  runtime: envoy.wasm.runtime.v8
                  code: {{ local: {{ filename: {} }} }}"#,
        wasm.display()
    );
    let listener = format!(
        "  listeners:\n{}",
        project::envoy::listener_yaml(
            "shared_data_writer",
            port,
            r#"              - match: { prefix: "/" }
                direct_response: { status: 404 }"#,
            &filter,
        )
    );
    config.replace_once("  listeners:\n", &listener);
    port
}

/// Writes `value` under `key` through the writer on `port`, and returns
/// the CAS number Envoy gave the write.
pub fn write(port: u16, key: &str, value: &[u8]) -> u32 {
    let response = crate::http::get(
        port,
        "/",
        &[
            ("x-shared-data-key", key.as_bytes()),
            ("x-shared-data-value", to_hex(value).as_bytes()),
        ],
    )
    .expect("an answer from the shared-data writer");
    assert_eq!(
        (response.status, response.body.as_str()),
        (200, "written\n"),
        "writing `{key}`"
    );
    response
        .header("x-shared-data-cas")
        .and_then(|cas| cas.parse().ok())
        .unwrap_or_else(|| panic!("no CAS number for `{key}`: {response:?}"))
}

/// The bytes of the entry `key`, read through the writer on `port`.
pub fn read(port: u16, key: &str) -> Vec<u8> {
    let response = crate::http::get(port, "/", &[("x-shared-data-key", key.as_bytes())])
        .expect("an answer from the shared-data writer");
    assert_eq!(response.status, 200, "reading `{key}`: {response:?}");
    let hex = response.body.trim().as_bytes();
    let digit = |d: u8| (d as char).to_digit(16).map(|v| v as u8);
    hex.chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect::<Option<Vec<u8>>>()
        .unwrap_or_else(|| panic!("`{key}` is not hex: {response:?}"))
}

fn to_hex(value: &[u8]) -> String {
    value.iter().map(|byte| format!("{byte:02x}")).collect()
}
