//! The plugin configuration: parsed and checked once, in `on_configure`.

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
    #[serde(default = "default_requests_per_window")]
    requests_per_window: u64,
    #[serde(default = "default_window_seconds")]
    window_seconds: u64,
}

/// Used when the configuration leaves the limit out: 100 requests per key
/// per minute.
fn default_requests_per_window() -> u64 {
    100
}

fn default_window_seconds() -> u64 {
    60
}

/// A day: longer windows are better served by a quota system than by a
/// counter in the proxy's memory.
pub const MAX_WINDOW_SECONDS: u64 = 86_400;

/// The checked configuration every request of this VM reads.
#[derive(Debug)]
pub struct AuthConfig {
    /// Lower-cased, as proxies compare header names case-insensitively.
    pub header_name: String,
    pub valid_keys: HashSet<String>,
    pub limit: RateLimit,
}

/// At most `requests` requests per key in each window of `window_seconds`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub requests: u64,
    pub window_seconds: u64,
}

/// Why a configuration was refused. The messages never contain a key.
#[derive(Debug, PartialEq)]
pub enum ConfigError {
    Missing,
    Json(String),
    BadHeaderName,
    NoKeys,
    EmptyKey,
    ZeroRequests,
    BadWindow,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Missing => write!(f, "no plugin configuration was provided"),
            ConfigError::Json(reason) => write!(f, "configuration is not valid: {reason}"),
            ConfigError::BadHeaderName => {
                write!(f, "`header_name` must be letters, digits and -_.")
            }
            ConfigError::NoKeys => write!(f, "`valid_keys` must list at least one key"),
            ConfigError::EmptyKey => write!(f, "`valid_keys` must not contain an empty key"),
            ConfigError::ZeroRequests => write!(f, "`requests_per_window` must be at least 1"),
            ConfigError::BadWindow => write!(
                f,
                "`window_seconds` must be between 1 and {MAX_WINDOW_SECONDS}"
            ),
        }
    }
}

impl AuthConfig {
    pub fn parse(bytes: Option<&[u8]>) -> Result<Self, ConfigError> {
        let bytes = bytes.ok_or(ConfigError::Missing)?;
        let raw: RawConfig =
            serde_json::from_slice(bytes).map_err(|e| ConfigError::Json(e.to_string()))?;

        let header_name = raw.header_name.trim().to_ascii_lowercase();
        let letters = |b: u8| b.is_ascii_alphanumeric() || b"-_.".contains(&b);
        if header_name.is_empty() || !header_name.bytes().all(letters) {
            return Err(ConfigError::BadHeaderName);
        }
        if raw.valid_keys.is_empty() {
            return Err(ConfigError::NoKeys);
        }
        if raw.valid_keys.iter().any(String::is_empty) {
            return Err(ConfigError::EmptyKey);
        }
        if raw.requests_per_window == 0 {
            return Err(ConfigError::ZeroRequests);
        }
        if !(1..=MAX_WINDOW_SECONDS).contains(&raw.window_seconds) {
            return Err(ConfigError::BadWindow);
        }

        Ok(AuthConfig {
            header_name,
            valid_keys: raw.valid_keys.into_iter().collect(),
            limit: RateLimit {
                requests: raw.requests_per_window,
                window_seconds: raw.window_seconds,
            },
        })
    }
}

/// serde's own type errors quote the offending value, which for
/// `valid_keys` would be a key. Replace them with a message that quotes nothing.
fn list_of_strings<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    serde_json::from_value(value)
        .map_err(|_| serde::de::Error::custom("`valid_keys` must be a list of strings"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<AuthConfig, ConfigError> {
        AuthConfig::parse(Some(json.as_bytes()))
    }

    #[test]
    fn accepts_a_good_config_and_lowercases_the_header() {
        let Ok(config) = parse(r#"{"header_name":"X-API-Key","valid_keys":["a","b","a"]}"#) else {
            panic!("a good configuration was refused");
        };
        assert_eq!(config.header_name, "x-api-key");
        assert_eq!(config.valid_keys.len(), 2);
        let defaults = RateLimit {
            requests: 100,
            window_seconds: 60,
        };
        assert_eq!(config.limit, defaults);
    }

    #[test]
    fn refuses_every_bad_config() {
        assert_eq!(AuthConfig::parse(None).err(), Some(ConfigError::Missing));
        for json in [
            "{not json",
            r#"{"valid_keys":["a"]}"#,
            r#"{"header_name":"x","valid_keys":["a"],"extra":1}"#,
            r#"{"header_name":5,"valid_keys":["a"]}"#,
            r#"{"header_name":"x","valid_keys":["a"],"requests_per_window":-1}"#,
            r#"{"header_name":"x","valid_keys":["a"],"window_seconds":"60"}"#,
        ] {
            assert!(
                matches!(parse(json).err(), Some(ConfigError::Json(_))),
                "{json}"
            );
        }
        let cases = [
            (
                r#"{"header_name":" ","valid_keys":["a"]}"#,
                ConfigError::BadHeaderName,
            ),
            (
                r#"{"header_name":"x y","valid_keys":["a"]}"#,
                ConfigError::BadHeaderName,
            ),
            (
                r#"{"header_name":"x","valid_keys":[]}"#,
                ConfigError::NoKeys,
            ),
            (
                r#"{"header_name":"x","valid_keys":["a",""]}"#,
                ConfigError::EmptyKey,
            ),
        ];
        for (json, expected) in cases {
            assert_eq!(parse(json).err(), Some(expected), "{json}");
        }
    }

    #[test]
    fn type_errors_never_quote_a_key() {
        for json in [
            r#"{"header_name":"x","valid_keys":"secret-key"}"#,
            r#"{"header_name":"x","valid_keys":["ok", 5, "secret-key"]}"#,
        ] {
            let message = parse(json).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(!message.contains("secret-key"), "{message}");
            assert!(
                message.contains("`valid_keys` must be a list of strings"),
                "{message}"
            );
        }
    }
}
