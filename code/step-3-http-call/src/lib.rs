//! Step 3: the API key checked by an external auth service, failing closed.

mod cache;
mod config;
mod filter;
mod metrics;

use config::AuthConfig;
use filter::AuthFilter;
use metrics::Metrics;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_context_id| -> Box<dyn RootContext> {
        Box::new(AuthRoot { config: None, metrics: None })
    });
}}

/// The plugin in one VM. Envoy runs a VM per worker thread, so each worker
/// has its own root context, configured from the same JSON.
struct AuthRoot {
    /// `Rc` because every request's filter shares this one copy of the
    /// configuration: creating a filter costs a reference count, not a copy.
    config: Option<Rc<AuthConfig>>,
    /// Defined once per VM, with the configuration.
    metrics: Option<Metrics>,
}

impl Context for AuthRoot {}

impl RootContext for AuthRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        match AuthConfig::parse(self.get_plugin_configuration().as_deref(), |name| {
            std::env::var(name).ok()
        }) {
            Ok(config) => {
                log::info!(
                    "configured, header `{}`, auth service cluster `{}`, timeout {:?}, \
                     answers cached {} s (yes) and {} s (no) in {} slots",
                    config.header_name,
                    config.auth_cluster,
                    config.timeout,
                    config.cache.valid_seconds,
                    config.cache.invalid_seconds,
                    config.cache.slots
                );
                self.config = Some(Rc::new(config));
                if self.metrics.is_none() {
                    self.metrics = Some(Metrics::define());
                }
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
        Some(Box::new(AuthFilter::new(self.config.clone(), self.metrics)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
