//! Step 4: only requests whose body carries a valid HMAC-SHA256 signature
//! reach the upstream, the way GitHub and Stripe sign webhook deliveries.

mod config;
mod filter;
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
                    "configured, header `{}`, {} secret(s), bodies up to {} bytes{}",
                    config.signature_header,
                    config.secrets.len(),
                    config.max_body_bytes,
                    match &config.timestamp {
                        Some(t) => format!(
                            ", timestamp `{}` within {} s",
                            t.header, t.tolerance_seconds
                        ),
                        None => String::new(),
                    }
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
        Some(Box::new(SignatureFilter::new(self.config.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
