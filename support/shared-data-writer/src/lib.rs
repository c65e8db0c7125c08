//! A plugin for the harness: it writes the shared-data entry a request
//! names, with the value it gives, and answers `200 written` with the CAS
//! number Envoy gave the write (`x-shared-data-cas`); or it reads one and
//! answers with its bytes in hex. Configured with a step's `vm_id`, it is
//! the other plugin that shares the step's entries: the tests use it to
//! show what a step does with entries it did not write.
//!
//! Request headers: `x-shared-data-key` (the entry's name), and either
//! `x-shared-data-value` (its bytes, in hex: a write) or nothing more (a
//! read).

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

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

impl HttpContext for Writer {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let key = self
            .get_http_request_header_bytes("x-shared-data-key")
            .and_then(|key| String::from_utf8(key).ok());
        let value = self.get_http_request_header_bytes("x-shared-data-value");
        let (status, headers, body): (u32, Vec<(String, String)>, Vec<u8>) = match (key, value) {
            (Some(key), Some(value)) => match from_hex(&value) {
                Some(value) => match hostcalls::set_shared_data(&key, Some(&value), None) {
                    Ok(()) => {
                        let cas = hostcalls::get_shared_data(&key)
                            .ok()
                            .and_then(|(_, cas)| cas)
                            .unwrap_or_default();
                        let cas = vec![("x-shared-data-cas".to_owned(), cas.to_string())];
                        (200, cas, b"written\n".to_vec())
                    }
                    Err(_) => (500, vec![], b"not written\n".to_vec()),
                },
                None => (400, vec![], b"x-shared-data-value is not hex\n".to_vec()),
            },
            (Some(key), None) => match hostcalls::get_shared_data(&key) {
                Ok((Some(value), _)) => (200, vec![], to_hex(&value).into_bytes()),
                _ => (404, vec![], b"no such entry\n".to_vec()),
            },
            _ => (400, vec![], b"needs x-shared-data-key\n".to_vec()),
        };
        let headers = headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        self.send_http_response(status, headers, Some(&body));
        Action::Pause
    }
}
