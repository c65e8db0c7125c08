//! Step 4: only requests whose body carries a valid HMAC-SHA256 signature
//! reach the upstream: signed the book's own way, or as GitHub, Stripe,
//! Slack or a Standard Webhooks sender signs its deliveries.

mod config;
mod filter;
mod scheme;
mod signature;

use config::SignatureConfig;
use filter::SignatureFilter;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_context_id| -> Box<dyn RootContext> {
        Box::new(SignatureRoot { config: None })
    });
}}

/// One per plugin per VM, as in the earlier steps.
struct SignatureRoot {
    config: Option<Rc<SignatureConfig>>,
}

impl Context for SignatureRoot {}

impl RootContext for SignatureRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        match SignatureConfig::parse(self.get_plugin_configuration().as_deref()) {
            Ok(config) => {
                // How many secrets, never which: a log line is not the
                // place for a shared secret, not even its first letters.
                log::info!(
                    "configured, {}, {} secret(s), bodies up to {} bytes{}",
                    config.scheme.describe(),
                    config.secrets.len(),
                    config.max_body_bytes,
                    match config.tolerance_seconds {
                        Some(seconds) => format!(", timestamp within {seconds} s"),
                        None => String::new(),
                    }
                );
                for position in &config.short_secrets {
                    log::warn!(
                        "secret number {position} in `secrets` is shorter than the {} bytes \
                         this scheme recommends: accepted, but replace it with a longer \
                         random one",
                        config.scheme.recommended_secret_bytes()
                    );
                }
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
        Some(Box::new(SignatureFilter::new(self.config.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
