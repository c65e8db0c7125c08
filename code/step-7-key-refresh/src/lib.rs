//! An API-key check whose keys come from a key service, fetched in the
//! background instead of for each request.

mod config;
mod filter;
mod keys;
mod refresh;

use config::{Config, FilterConfig};
use filter::AuthFilter;
use keys::LocalCopy;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};
use refresh::Refresher;
use std::rc::Rc;
use std::time::UNIX_EPOCH;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_context_id| -> Box<dyn RootContext> {
        Box::new(KeysRoot { filter: None, refresher: None, keys: Rc::default() })
    });
}}

/// The plugin in one VM: a filter's (one per worker thread), a refresher's,
/// or both, as its configuration says.
struct KeysRoot {
    filter: Option<Rc<FilterConfig>>,
    refresher: Option<Refresher>,
    /// This VM's copy of the published keys, shared by its requests.
    keys: Rc<LocalCopy>,
}

impl KeysRoot {
    /// Unix time in milliseconds, from the proxy's clock.
    fn now_ms(&self) -> u64 {
        self.get_current_time()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

// ANCHOR: root_context
impl Context for KeysRoot {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, _: usize) {
        let now_ms = self.now_ms();
        if let Some(refresher) = self.refresher.as_mut() {
            refresher.on_answer(token, headers, body, now_ms);
        }
    }
}

impl RootContext for KeysRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let configuration = self.get_plugin_configuration();
        let environment = |name: &str| std::env::var(name).ok();
        let config = match Config::parse(configuration.as_deref(), environment) {
            Ok(config) => config,
            Err(error) => {
                // Returning false makes the proxy refuse the plugin, so the
                // route is never served without the check.
                log::error!("rejected plugin configuration: {error}");
                return false;
            }
        };
        if let Some(filter) = config.filter {
            log::info!("configured as a filter, header `{}`", filter.header_name);
            self.filter = Some(Rc::new(filter));
        }
        if let Some(refresh) = config.refresh {
            let mut refresher = Refresher::new(refresh);
            log::info!(
                "configured to refresh the keys every {:?}",
                refresher.every()
            );
            // The first call now, the next ones on the timer.
            self.set_tick_period(refresh::TICK);
            refresher.tick(self.now_ms());
            self.refresher = Some(refresher);
        }
        true
    }

    fn on_tick(&mut self) {
        let now_ms = self.now_ms();
        if let Some(refresher) = self.refresher.as_mut() {
            refresher.tick(now_ms);
        }
    }
    // ANCHOR_END: root_context

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(AuthFilter::new(
            self.filter.clone(),
            self.keys.clone(),
        )))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
