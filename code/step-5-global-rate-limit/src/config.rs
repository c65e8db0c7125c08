//! The plugin configuration: parsed and checked once, in `on_configure`.

use crate::descriptor::DescriptorKey;
use hmac::Mac;
use serde::{Deserialize, Deserializer};
use std::collections::HashSet;
use std::fmt;

/// The JSON the operator writes in the proxy configuration.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    header_name: String,
    #[serde(deserialize_with = "list_of_strings")]
    valid_keys: Vec<String>,
    rate_limit: RawRateLimit,
}

/// How requests are counted: by the plugin asking the rate limit service
/// itself (`service`), or by Envoy's own rate limit filter, which reads
/// the descriptor from a header the plugin sets (`descriptor_header`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    /// The descriptor's key; the rate limit service's configuration lists
    /// the same key with its limit.
    #[serde(default = "default_descriptor_key")]
    descriptor_key: String,
    /// The HMAC key for the descriptor value; the same on every proxy of
    /// the fleet, so one API key is one counter everywhere.
    #[serde(deserialize_with = "secret")]
    descriptor_secret: String,
    service: Option<RawService>,
    descriptor_header: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    /// The Envoy cluster of the rate limit service (HTTP/2, for gRPC).
    cluster: String,
    /// The service's configuration domain.
    domain: String,
    /// How long a request may wait for the service's answer.
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    /// What happens when the service cannot answer: refuse (503, the
    /// default) or let the request through uncounted.
    #[serde(default)]
    fail_open: bool,
}

fn default_descriptor_key() -> String {
    "api_key_hash".to_owned()
}

/// The service answers on loopback in about a millisecond, and in a few
/// milliseconds across a data centre; a quarter of a second means it is in
/// trouble.
fn default_timeout_ms() -> u64 {
    250
}

const MAX_TIMEOUT_MS: u64 = 10_000;
/// An HMAC key shorter than this is easy to guess; 32 random bytes in
/// hex or base64 are what `openssl rand -hex 32` prints.
const MIN_SECRET_BYTES: usize = 16;

/// The checked configuration every request of this VM reads.
#[derive(Debug)]
pub struct AuthConfig {
    /// Lower-cased, as proxies compare header names case-insensitively.
    pub header_name: String,
    pub valid_keys: HashSet<String>,
    pub descriptor_key: String,
    pub descriptor_secret: DescriptorKey,
    pub counter: Counter,
}

/// Who counts the requests.
#[derive(Debug, PartialEq)]
pub enum Counter {
    /// The plugin asks the rate limit service with a gRPC call.
    Service(ServiceConfig),
    /// Envoy's rate limit filter, after the plugin, asks the service; the
    /// plugin only puts the descriptor value in this request header.
    EnvoyFilter { header: String },
}

#[derive(Debug, PartialEq)]
pub struct ServiceConfig {
    pub cluster: String,
    pub domain: String,
    pub timeout: std::time::Duration,
    pub fail_open: bool,
}

/// Why a configuration was refused. The messages never contain a key or
/// the descriptor secret.
#[derive(Debug, PartialEq)]
pub enum ConfigError {
    Missing,
    Json(String),
    BadHeaderName(&'static str),
    NoKeys,
    EmptyKey,
    ShortSecret,
    EmptyField(&'static str),
    NotOneCounter,
    BadTimeout,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Missing => write!(f, "no plugin configuration was provided"),
            ConfigError::Json(reason) => write!(f, "configuration is not valid: {reason}"),
            ConfigError::BadHeaderName(field) => write!(
                f,
                "`{field}` must be a header name: letters, digits and -_. only"
            ),
            ConfigError::NoKeys => write!(f, "`valid_keys` must list at least one key"),
            ConfigError::EmptyKey => write!(f, "`valid_keys` must not contain an empty key"),
            ConfigError::ShortSecret => write!(
                f,
                "`rate_limit.descriptor_secret` must be at least {MIN_SECRET_BYTES} bytes"
            ),
            ConfigError::EmptyField(field) => write!(f, "`{field}` must not be empty"),
            ConfigError::NotOneCounter => write!(
                f,
                "`rate_limit` needs exactly one of `service` and `descriptor_header`"
            ),
            ConfigError::BadTimeout => write!(
                f,
                "`rate_limit.service.timeout_ms` must be between 1 and {MAX_TIMEOUT_MS}"
            ),
        }
    }
}

impl AuthConfig {
    pub fn parse(bytes: Option<&[u8]>) -> Result<Self, ConfigError> {
        let bytes = bytes.ok_or(ConfigError::Missing)?;
        let raw: RawConfig =
            serde_json::from_slice(bytes).map_err(|e| ConfigError::Json(e.to_string()))?;

        let header_name = header_name(&raw.header_name, "header_name")?;
        if raw.valid_keys.is_empty() {
            return Err(ConfigError::NoKeys);
        }
        if raw.valid_keys.iter().any(String::is_empty) {
            return Err(ConfigError::EmptyKey);
        }
        let limit = raw.rate_limit;
        if limit.descriptor_secret.len() < MIN_SECRET_BYTES {
            return Err(ConfigError::ShortSecret);
        }
        if limit.descriptor_key.is_empty() {
            return Err(ConfigError::EmptyField("rate_limit.descriptor_key"));
        }
        let counter = match (limit.service, limit.descriptor_header) {
            (Some(service), None) => Counter::Service(service_config(service)?),
            (None, Some(header)) => {
                let header = self::header_name(&header, "rate_limit.descriptor_header")?;
                // The plugin overwrites this header; if it were the key
                // header, the upstream would never see the key.
                if header == header_name {
                    return Err(ConfigError::BadHeaderName("rate_limit.descriptor_header"));
                }
                Counter::EnvoyFilter { header }
            }
            _ => return Err(ConfigError::NotOneCounter),
        };

        // HMAC takes keys of any length, so this never fails; were it to,
        // the configuration is refused, never a request.
        let descriptor_secret = DescriptorKey::new_from_slice(limit.descriptor_secret.as_bytes())
            .map_err(|_| ConfigError::ShortSecret)?;

        Ok(AuthConfig {
            header_name,
            valid_keys: raw.valid_keys.into_iter().collect(),
            descriptor_key: limit.descriptor_key,
            descriptor_secret,
            counter,
        })
    }
}

fn service_config(raw: RawService) -> Result<ServiceConfig, ConfigError> {
    if raw.cluster.is_empty() {
        return Err(ConfigError::EmptyField("rate_limit.service.cluster"));
    }
    if raw.domain.is_empty() {
        return Err(ConfigError::EmptyField("rate_limit.service.domain"));
    }
    if !(1..=MAX_TIMEOUT_MS).contains(&raw.timeout_ms) {
        return Err(ConfigError::BadTimeout);
    }
    Ok(ServiceConfig {
        cluster: raw.cluster,
        domain: raw.domain,
        timeout: std::time::Duration::from_millis(raw.timeout_ms),
        fail_open: raw.fail_open,
    })
}

/// Lower-cased and checked: Envoy keeps header names in lower case.
fn header_name(name: &str, field: &'static str) -> Result<String, ConfigError> {
    let name = name.trim().to_ascii_lowercase();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(ConfigError::BadHeaderName(field));
    }
    Ok(name)
}

/// serde's own type errors quote the offending value, which for
/// `valid_keys` would be a key. Replace them with a message that quotes nothing.
fn list_of_strings<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    serde_json::from_value(value)
        .map_err(|_| serde::de::Error::custom("`valid_keys` must be a list of strings"))
}

/// The same for the descriptor secret.
fn secret<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    serde_json::from_value(value)
        .map_err(|_| serde::de::Error::custom("`rate_limit.descriptor_secret` must be a string"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "secret-4f1c2a9e7b30d5";

    fn parse(json: &str) -> Result<AuthConfig, ConfigError> {
        AuthConfig::parse(Some(json.as_bytes()))
    }

    fn with_rate_limit(rate_limit: &str) -> String {
        format!(r#"{{"header_name":"X-API-Key","valid_keys":["a"],"rate_limit":{rate_limit}}}"#)
    }

    #[test]
    fn accepts_both_counters_with_defaults() {
        let json = with_rate_limit(&format!(
            r#"{{"descriptor_secret":"{SECRET}","service":{{"cluster":"rls","domain":"d"}}}}"#
        ));
        let Ok(config) = parse(&json) else {
            panic!("a good configuration was refused");
        };
        assert_eq!(config.header_name, "x-api-key");
        assert_eq!(config.descriptor_key, "api_key_hash");
        let expected = ServiceConfig {
            cluster: "rls".into(),
            domain: "d".into(),
            timeout: std::time::Duration::from_millis(250),
            fail_open: false,
        };
        assert_eq!(config.counter, Counter::Service(expected));

        let json = with_rate_limit(&format!(
            r#"{{"descriptor_secret":"{SECRET}","descriptor_header":"X-Key-Hash"}}"#
        ));
        let counter = parse(&json).map(|config| config.counter);
        let expected = Counter::EnvoyFilter {
            header: "x-key-hash".into(),
        };
        assert_eq!(counter, Ok(expected));
    }

    #[test]
    fn refuses_every_bad_config() {
        let service = r#""service":{"cluster":"rls","domain":"d"}"#;
        let cases = [
            (
                format!(r#"{{"descriptor_secret":"short",{service}}}"#),
                ConfigError::ShortSecret,
            ),
            (
                format!(r#"{{"descriptor_secret":"{SECRET}"}}"#),
                ConfigError::NotOneCounter,
            ),
            (
                format!(r#"{{"descriptor_secret":"{SECRET}",{service},"descriptor_header":"h"}}"#),
                ConfigError::NotOneCounter,
            ),
            (
                format!(r#"{{"descriptor_secret":"{SECRET}","descriptor_header":"x-api-key"}}"#),
                ConfigError::BadHeaderName("rate_limit.descriptor_header"),
            ),
            (
                format!(
                    r#"{{"descriptor_secret":"{SECRET}","service":{{"cluster":"","domain":"d"}}}}"#
                ),
                ConfigError::EmptyField("rate_limit.service.cluster"),
            ),
            (
                format!(
                    r#"{{"descriptor_secret":"{SECRET}","service":{{"cluster":"c","domain":"d","timeout_ms":0}}}}"#
                ),
                ConfigError::BadTimeout,
            ),
            (
                format!(r#"{{"descriptor_secret":"{SECRET}","descriptor_key":"",{service}}}"#),
                ConfigError::EmptyField("rate_limit.descriptor_key"),
            ),
        ];
        for (rate_limit, expected) in cases {
            let json = with_rate_limit(&rate_limit);
            assert_eq!(parse(&json).err(), Some(expected), "{json}");
        }
        assert!(matches!(
            parse(r#"{"header_name":"x","valid_keys":["a"]}"#).err(),
            Some(ConfigError::Json(_))
        ));
    }

    #[test]
    fn errors_never_quote_a_key_or_the_secret() {
        for json in [
            r#"{"header_name":"x","valid_keys":"secret-key","rate_limit":{}}"#,
            r#"{"header_name":"x","valid_keys":["a"],"rate_limit":{"descriptor_secret":["secret-key"]}}"#,
            r#"{"header_name":"x","valid_keys":["a"],"rate_limit":{"descriptor_secret":"secret-key"}}"#,
        ] {
            let message = parse(json).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(!message.is_empty(), "{json} was accepted");
            assert!(!message.contains("secret-key"), "{message}");
        }
    }
}
