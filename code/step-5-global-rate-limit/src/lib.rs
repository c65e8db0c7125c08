//! Step 5: the API-key check of step 2, with the request limit counted by
//! Envoy's rate limit service (shared by every proxy of a fleet, backed by
//! Redis) instead of in one proxy's shared data.

mod config;
mod descriptor;
mod filter;
mod rls;

use config::{AuthConfig, Counter};
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

/// One per plugin per VM; every request's filter shares its configuration.
struct AuthRoot {
    config: Option<Rc<AuthConfig>>,
}

impl Context for AuthRoot {}

impl RootContext for AuthRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        match AuthConfig::parse(self.get_plugin_configuration().as_deref()) {
            Ok(config) => {
                let counter = match &config.counter {
                    Counter::Service(service) => format!(
                        "the rate limit service (cluster `{}`, domain `{}`, fail {})",
                        service.cluster,
                        service.domain,
                        if service.fail_open { "open" } else { "closed" }
                    ),
                    Counter::EnvoyFilter { header } => {
                        format!("Envoy's rate limit filter (descriptor in `{header}`)")
                    }
                };
                log::info!(
                    "configured, header `{}`, {} valid keys, counted by {counter}",
                    config.header_name,
                    config.valid_keys.len(),
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
        Some(Box::new(AuthFilter::new(self.config.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
