//! Step 2: the API-key check of step 1, plus a request limit per key that
//! holds across all of Envoy's worker threads.

mod config;
mod filter;
mod limiter;

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
                    "configured, header `{}`, {} valid keys, {} requests per {} s per key",
                    config.header_name,
                    config.valid_keys.len(),
                    config.limit.requests,
                    config.limit.window_seconds
                );
                for key in &config.valid_keys {
                    if let Err(status) = limiter::ensure_counter(key) {
                        log::warn!("could not create a rate-limit counter: {status:?}");
                    }
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Creating a request's filter must not copy the key set: every filter
    /// holds another reference to the root context's one copy.
    #[test]
    fn filters_share_one_key_set() {
        let json = br#"{"header_name":"x-api-key","valid_keys":["key-abc123"]}"#;
        let Ok(config) = AuthConfig::parse(Some(json)) else {
            panic!("test config refused");
        };
        let config = Rc::new(config);
        let root = AuthRoot {
            config: Some(config.clone()),
        };
        let _filters: Vec<_> = (0..3).map(|_| root.new_filter()).collect();
        // This test's handle, the root's, and one per filter.
        assert_eq!(Rc::strong_count(&config), 5);
    }
}
