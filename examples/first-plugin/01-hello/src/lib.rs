//! A first Proxy-Wasm plugin: it refuses every request that has no API key.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(AuthRoot) });
}}

/// The plugin in one VM: Envoy asks it for a filter for each request.
struct AuthRoot;

impl Context for AuthRoot {}

impl RootContext for AuthRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        log::info!("started: requests without an `x-api-key` header get 401");
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(AuthFilter))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One request.
struct AuthFilter;

impl Context for AuthFilter {}

impl HttpContext for AuthFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.get_http_request_header_bytes("x-api-key").is_some() {
            return Action::Continue;
        }
        self.send_http_response(
            401,
            vec![("content-type", "application/json")],
            Some(br#"{"error":"missing API key"}"#),
        );
        Action::Pause
    }
}
