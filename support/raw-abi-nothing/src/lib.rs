//! A Proxy-Wasm module with no SDK: the exports the host needs to load a
//! module and create its contexts, and (feature `http-callbacks`) the HTTP
//! callbacks, each doing nothing. Envoy (proxy-wasm-cpp-host) skips a
//! callback the module does not export, without entering the VM.

/// Tells the host which ABI the module speaks.
#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// The host writes into the module's memory through this (configuration,
/// log messages): the one allocator a module must export.
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let mut buffer: Vec<u8> = Vec::with_capacity(size);
    let pointer = buffer.as_mut_ptr();
    std::mem::forget(buffer);
    pointer
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(_context_id: u32, _parent_context_id: u32) {}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_root_context_id: u32, _vm_configuration_size: usize) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(_root_context_id: u32, _configuration_size: usize) -> u32 {
    1
}

/// `Continue` (0) for the headers of either direction.
#[cfg(feature = "http-callbacks")]
#[no_mangle]
pub extern "C" fn proxy_on_request_headers(_id: u32, _headers: usize, _end_of_stream: u32) -> u32 {
    0
}

#[cfg(feature = "http-callbacks")]
#[no_mangle]
pub extern "C" fn proxy_on_response_headers(_id: u32, _headers: usize, _end_of_stream: u32) -> u32 {
    0
}

#[cfg(feature = "http-callbacks")]
#[no_mangle]
pub extern "C" fn proxy_on_log(_context_id: u32) {}

/// True (1): the context is done and may be deleted.
#[cfg(feature = "http-callbacks")]
#[no_mangle]
pub extern "C" fn proxy_on_done(_context_id: u32) -> u32 {
    1
}

#[cfg(feature = "http-callbacks")]
#[no_mangle]
pub extern "C" fn proxy_on_delete(_context_id: u32) {}
