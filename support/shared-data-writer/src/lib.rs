//! A plugin for the harness: it writes the shared-data entry a request
//! names, with the value it gives, and answers `200 written`. Configured
//! with a step's `vm_id`, it is the other plugin that shares the step's
//! entries: the tests use it to show what a step does with entries it did
//! not write.
//!
//! Request headers: `x-shared-data-key` (the entry's name) and
//! `x-shared-data-value` (its bytes, in hex).

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(WriterRoot) });
}}

struct WriterRoot;

impl Context for WriterRoot {}

impl RootContext for WriterRoot {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Writer))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Writer;

impl Context for Writer {}

fn from_hex(text: &[u8]) -> Option<Vec<u8>> {
    let digit = |d: u8| (d as char).to_digit(16).map(|v| v as u8);
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

impl HttpContext for Writer {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let key = self
            .get_http_request_header_bytes("x-shared-data-key")
            .and_then(|key| String::from_utf8(key).ok());
        let value = self
            .get_http_request_header_bytes("x-shared-data-value")
            .and_then(|value| from_hex(&value));
        let (status, body): (u32, &[u8]) = match (key, value) {
            (Some(key), Some(value)) => {
                match hostcalls::set_shared_data(&key, Some(&value), None) {
                    Ok(()) => (200, b"written\n"),
                    Err(_) => (500, b"not written\n"),
                }
            }
            _ => (
                400,
                b"needs x-shared-data-key and a hex x-shared-data-value\n",
            ),
        };
        self.send_http_response(status, vec![], Some(body));
        Action::Pause
    }
}
