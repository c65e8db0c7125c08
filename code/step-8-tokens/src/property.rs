//! Setting a property without the SDK's `set_property`, which panics on
//! any status but Ok (proxy-wasm 0.2.5, `hostcalls.rs`): Envoy answers
//! BadArgument when another filter made the property read-only
//! (`Context::setProperty` in `source/extensions/common/wasm/context.cc`),
//! and a panic would take the VM down with it. The import is the one the
//! SDK declares; only the answer is read here.

use proxy_wasm::types::Status;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_set_property(
        path_data: *const u8,
        path_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> Status;
}

/// Sets the property `name` (one segment of a path) to `value`: in Envoy,
/// the filter state `wasm.<name>`, which its access log can print.
pub fn set(name: &str, value: &[u8]) -> Result<(), Status> {
    // SAFETY: both slices outlive the call, which only reads them.
    match unsafe { proxy_set_property(name.as_ptr(), name.len(), value.as_ptr(), value.len()) } {
        Status::Ok => Ok(()),
        status => Err(status),
    }
}
