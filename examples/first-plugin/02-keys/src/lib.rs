//! An API-key check in front of every request of a route.

mod config;
mod filter;

use config::AuthConfig;
use filter::AuthFilter;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_context_id| -> Box<dyn RootContext> {
        Box::new(AuthRoot { config: None })
    });
}}

/// The plugin in one VM. Envoy runs a VM per worker thread, so each worker
/// has its own root context, configured from the same JSON.
struct AuthRoot {
    /// `Rc` because every request's filter shares this one copy of the key
    /// set: creating a filter costs a reference count, not a copy.
    config: Option<Rc<AuthConfig>>,
}

impl Context for AuthRoot {}

impl AuthRoot {
    /// The filter for one request, with a new reference to the configuration.
    fn new_filter(&self) -> AuthFilter {
        AuthFilter::new(self.config.clone())
    }
}

impl RootContext for AuthRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        match AuthConfig::parse(self.get_plugin_configuration().as_deref()) {
            Ok(config) => {
                log::info!(
                    "configured, header `{}`, {} valid keys",
                    config.header_name,
                    config.valid_keys.len()
                );
                self.config = Some(Rc::new(config));
                true
            }
            Err(error) => {
                // Returning false makes the proxy refuse the plugin, so the
                // route is never served without the check.
                log::error!("rejected plugin configuration: {error}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(self.new_filter()))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
