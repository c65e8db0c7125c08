//! A bearer-token check: each request's JWT verified against the keys of
//! a JWK set, which a key service serves and one VM refreshes in the
//! background (step 7's refresher); a claim of the token chooses the
//! route, and what the token says reaches Envoy's access log.

mod config;
mod early;
mod filter;
mod jwks;
mod keys;
mod property;
mod refresh;
mod token;

use config::{Config, FilterConfig};
use early::EarlyRefresh;
use filter::TokenFilter;
use keys::LocalCopy;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};
use refresh::Refresher;
use std::rc::Rc;
use std::time::UNIX_EPOCH;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_context_id| -> Box<dyn RootContext> {
        Box::new(TokensRoot {
            filter: None,
            refresher: None,
            keys: Rc::default(),
            early: Rc::default(),
        })
    });
}}

/// The plugin in one VM: a filter's (one per worker thread), a refresher's,
/// or both, as its configuration says.
struct TokensRoot {
    filter: Option<Rc<FilterConfig>>,
    refresher: Option<(Refresher, u32)>,
    /// This VM's copy of the published keys, shared by its requests.
    keys: Rc<LocalCopy>,
    /// The way this VM's requests ask for an early refresh.
    early: Rc<EarlyRefresh>,
}

impl TokensRoot {
    /// Unix time in milliseconds, from the proxy's clock.
    fn now_ms(&self) -> u64 {
        self.get_current_time()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

impl Context for TokensRoot {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, _: usize) {
        let now_ms = self.now_ms();
        if let Some((refresher, _)) = self.refresher.as_mut() {
            refresher.on_answer(token, headers, body, now_ms);
        }
    }
}

impl RootContext for TokensRoot {
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
            log::info!(
                "configured as a filter: issuer `{}`, {} audience(s)",
                filter.issuer,
                filter.audiences.len()
            );
            self.filter = Some(Rc::new(filter));
        }
        if let Some(refresh) = config.refresh {
            // ANCHOR: register_queue
            // The queue filters ask for an early refresh on; Envoy calls
            // `on_queue_ready` here when one does.
            let queue = match hostcalls::register_shared_queue(refresh::EARLY_REFRESH_QUEUE) {
                Ok(queue) => queue,
                Err(status) => {
                    log::error!("could not register the early-refresh queue: {status:?}");
                    return false;
                }
            };
            // ANCHOR_END: register_queue
            let mut refresher = Refresher::new(refresh);
            log::info!(
                "configured to refresh the keys every {:?}",
                refresher.every()
            );
            // The first call now, the next ones on the timer.
            self.set_tick_period(refresh::TICK);
            refresher.tick(self.now_ms());
            self.refresher = Some((refresher, queue));
        }
        true
    }

    fn on_tick(&mut self) {
        let now_ms = self.now_ms();
        if let Some((refresher, _)) = self.refresher.as_mut() {
            refresher.tick(now_ms);
        }
    }

    // ANCHOR: on_queue_ready
    fn on_queue_ready(&mut self, queue_id: u32) {
        let now_ms = self.now_ms();
        let Some((refresher, queue)) = self.refresher.as_mut() else {
            return;
        };
        if queue_id != *queue {
            return;
        }
        // Every request in the queue is one ask; one refresh answers all.
        let mut asked = false;
        while let Ok(Some(_)) = hostcalls::dequeue_shared_queue(*queue) {
            asked = true;
        }
        if asked && refresher.early(now_ms) {
            log::info!("a token named an unknown key: refreshing early");
            refresher.tick(now_ms);
        }
    }
    // ANCHOR_END: on_queue_ready

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(TokenFilter::new(
            self.filter.clone(),
            self.keys.clone(),
            self.early.clone(),
        )))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
