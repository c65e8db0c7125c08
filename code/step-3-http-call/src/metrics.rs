//! The plugin's counters, and a histogram of the auth call's duration, in
//! Envoy's statistics. Envoy prefixes every name a plugin defines with
//! `wasmcustom.`, so `/stats` shows `wasmcustom.auth_plugin.allowed`.

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

// ANCHOR: metrics
/// The ids Envoy gave this VM's metrics. Every worker's VM defines the same
/// names, and Envoy keeps one statistic per name: the counts of all
/// workers add up in it.
#[derive(Clone, Copy)]
pub struct Metrics {
    allowed: Option<u32>,
    missing_key: Option<u32>,
    repeated_key: Option<u32>,
    unknown_key: Option<u32>,
    auth_service_failed: Option<u32>,
    cache_hit: Option<u32>,
    cache_miss: Option<u32>,
    auth_call_ms: Option<u32>,
}

/// What a request's counter is, from the verdict in `on_log`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome {
    Allowed,
    MissingKey,
    RepeatedKey,
    UnknownKey,
    AuthServiceFailed,
}

impl Metrics {
    /// Defines the metrics (in `on_configure`). The SDK's `define_metric`
    /// panics on any status but Ok, so its `Err` arm never runs: Envoy
    /// answers Ok for every counter and histogram name (BadArgument only for
    /// a metric type it does not know, which the SDK's enum cannot send).
    pub fn define() -> Metrics {
        let define = |kind, name: &str| match hostcalls::define_metric(kind, name) {
            Ok(id) => Some(id),
            Err(status) => {
                log::warn!("metric `{name}` not defined: {status:?}");
                None
            }
        };
        Metrics {
            allowed: define(MetricType::Counter, "auth_plugin.allowed"),
            missing_key: define(MetricType::Counter, "auth_plugin.refused.missing_key"),
            repeated_key: define(MetricType::Counter, "auth_plugin.refused.repeated_key"),
            unknown_key: define(MetricType::Counter, "auth_plugin.refused.unknown_key"),
            auth_service_failed: define(MetricType::Counter, "auth_plugin.auth_service_failed"),
            cache_hit: define(MetricType::Counter, "auth_plugin.cache.hit"),
            cache_miss: define(MetricType::Counter, "auth_plugin.cache.miss"),
            auth_call_ms: define(MetricType::Histogram, "auth_plugin.auth_call_ms"),
        }
    }

    pub fn count(&self, outcome: Outcome) {
        let id = match outcome {
            Outcome::Allowed => self.allowed,
            Outcome::MissingKey => self.missing_key,
            Outcome::RepeatedKey => self.repeated_key,
            Outcome::UnknownKey => self.unknown_key,
            Outcome::AuthServiceFailed => self.auth_service_failed,
        };
        if let Some(id) = id {
            // A statistic that could not be updated is not a reason to
            // fail the request.
            let _ = hostcalls::increment_metric(id, 1);
        }
    }

    /// Whether a key's answer came from the cache.
    pub fn count_cache(&self, hit: bool) {
        if let Some(id) = if hit { self.cache_hit } else { self.cache_miss } {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }

    /// How long the auth service took to answer (or Envoy to give up).
    pub fn record_auth_call(&self, milliseconds: u64) {
        if let Some(id) = self.auth_call_ms {
            let _ = hostcalls::record_metric(id, milliseconds);
        }
    }
}
// ANCHOR_END: metrics
