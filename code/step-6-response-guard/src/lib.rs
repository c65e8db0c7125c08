//! Step 6: a guard on the way out. Every JSON response loses the fields
//! the configuration names before it leaves the proxy, response headers
//! are set or removed, and a response the plugin cannot read is not sent
//! at all.

mod config;
mod filter;
mod media;
mod redact;

use config::GuardConfig;
use filter::GuardFilter;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_context_id| -> Box<dyn RootContext> {
        Box::new(GuardRoot { config: None })
    });
}}

/// One per plugin per VM, as in the earlier steps.
struct GuardRoot {
    config: Option<Rc<GuardConfig>>,
}

impl Context for GuardRoot {}

impl RootContext for GuardRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        match GuardConfig::parse(self.get_plugin_configuration().as_deref()) {
            Ok(config) => {
                log::info!(
                    "configured, {} field(s) removed from JSON responses up to {} bytes",
                    config.remove_fields.len(),
                    config.max_body_bytes
                );
                self.config = Some(Rc::new(config));
                true
            }
            Err(error) => {
                log::error!("rejected plugin configuration: {error}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(GuardFilter::new(self.config.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
