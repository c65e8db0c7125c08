//! A plugin for the harness: it answers every request itself (`200`, with
//! `x-probe-env` set to the environment variable `PROBE` as its VM read it
//! when it started), and logs each of a stream's last callbacks as it
//! runs: `probe: on_log`, `probe: on_done`, `probe: deleted` (the SDK has
//! no callback for `proxy_on_delete`: it drops the context then).

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        // Read once, when the VM starts: the environment a VM was created
        // with is the one every filter sharing it sees.
        let env = std::env::var("PROBE").unwrap_or_else(|_| "unset".into());
        Box::new(ProbeRoot { env: Rc::from(env) })
    });
}}

struct ProbeRoot {
    env: Rc<str>,
}

impl Context for ProbeRoot {}

impl RootContext for ProbeRoot {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Probe {
            env: self.env.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Probe {
    env: Rc<str>,
}

impl Context for Probe {
    fn on_done(&mut self) -> bool {
        log::info!("probe: on_done");
        true
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        log::info!("probe: deleted");
    }
}

impl HttpContext for Probe {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.send_http_response(200, vec![("x-probe-env", &self.env)], Some(b"probe\n"));
        Action::Pause
    }

    fn on_log(&mut self) {
        log::info!("probe: on_log");
    }
}
