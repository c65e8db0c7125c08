//! The plugin configuration, parsed and checked once in `on_configure`.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

// ANCHOR: raw_config
/// The JSON the operator writes in the proxy configuration.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// JSON members removed from every JSON response, at any depth.
    remove_fields: Vec<String>,
    /// The largest JSON response the plugin holds and rewrites; a longer
    /// one is not sent at all (502).
    max_body_bytes: u64,
    /// Response headers removed, whatever the response.
    #[serde(default)]
    remove_headers: Vec<String>,
    /// Response headers set (replacing any the upstream sent).
    #[serde(default)]
    set_headers: BTreeMap<String, String>,
}
// ANCHOR_END: raw_config

/// Envoy holds a whole JSON response while the plugin rewrites it, once per
/// concurrent response: this caps what one response can make it hold.
pub const MAX_BODY_BYTES: u64 = 8 * 1024 * 1024;

pub struct GuardConfig {
    pub remove_fields: BTreeSet<String>,
    pub max_body_bytes: usize,
    /// Lower-cased, as Envoy hands plugins header names.
    pub remove_headers: Vec<String>,
    pub set_headers: Vec<(String, String)>,
}

#[derive(Debug, PartialEq)]
pub enum ConfigError {
    Missing,
    Json {
        line: usize,
        column: usize,
    },
    NoFields,
    BodyLimit,
    BadHeaderName(String),
    BadHeaderValue(String),
    /// Headers Envoy or the plugin itself manages.
    ReservedHeader(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Missing => write!(f, "no plugin configuration was provided"),
            ConfigError::Json { line, column } => {
                write!(f, "configuration is not valid JSON of the expected shape (line {line}, column {column})")
            }
            ConfigError::NoFields => write!(f, "`remove_fields` must name at least one field"),
            ConfigError::BodyLimit => {
                write!(f, "`max_body_bytes` must be between 1 and {MAX_BODY_BYTES}")
            }
            ConfigError::BadHeaderName(name) => write!(f, "`{name}` is not a header name"),
            ConfigError::BadHeaderValue(name) => {
                write!(f, "the value for `{name}` is not a valid header value")
            }
            ConfigError::ReservedHeader(name) => write!(
                f,
                "`{name}` is set by Envoy or by the plugin itself and cannot be configured"
            ),
        }
    }
}

/// Pseudo-headers, and the framing headers the plugin manages itself.
const RESERVED: [&str; 3] = ["content-length", "content-encoding", "transfer-encoding"];

fn header_name(name: &str) -> Result<String, ConfigError> {
    let lower = name.trim().to_ascii_lowercase();
    let valid = !lower.is_empty()
        && lower
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !valid {
        return Err(ConfigError::BadHeaderName(name.to_owned()));
    }
    if RESERVED.contains(&lower.as_str()) {
        return Err(ConfigError::ReservedHeader(lower));
    }
    Ok(lower)
}

impl GuardConfig {
    pub fn parse(bytes: Option<&[u8]>) -> Result<Self, ConfigError> {
        let bytes = bytes.ok_or(ConfigError::Missing)?;
        let raw: RawConfig = serde_json::from_slice(bytes).map_err(|e| ConfigError::Json {
            line: e.line(),
            column: e.column(),
        })?;
        if raw.remove_fields.is_empty() {
            return Err(ConfigError::NoFields);
        }
        if raw.max_body_bytes == 0 || raw.max_body_bytes > MAX_BODY_BYTES {
            return Err(ConfigError::BodyLimit);
        }
        let remove_headers = raw
            .remove_headers
            .iter()
            .map(|name| header_name(name))
            .collect::<Result<Vec<_>, _>>()?;
        let mut set_headers = Vec::new();
        for (name, value) in &raw.set_headers {
            let name = header_name(name)?;
            // Visible ASCII and spaces: nothing that could end the header.
            if !value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
                return Err(ConfigError::BadHeaderValue(name));
            }
            set_headers.push((name, value.clone()));
        }
        Ok(GuardConfig {
            remove_fields: raw.remove_fields.into_iter().collect(),
            // At most MAX_BODY_BYTES, so it fits in a usize even on wasm32.
            max_body_bytes: raw.max_body_bytes as usize,
            remove_headers,
            set_headers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<GuardConfig, ConfigError> {
        GuardConfig::parse(Some(json.as_bytes()))
    }

    #[test]
    fn accepts_a_good_config() {
        let Ok(config) = parse(
            r#"{"remove_fields":["ssn"],"max_body_bytes":100,
                "remove_headers":["Server"],"set_headers":{"X-Content-Type-Options":"nosniff"}}"#,
        ) else {
            panic!("refused");
        };
        assert!(config.remove_fields.contains("ssn"));
        assert_eq!(config.remove_headers, ["server"]);
        assert_eq!(
            config.set_headers,
            [("x-content-type-options".to_owned(), "nosniff".to_owned())]
        );
    }

    #[test]
    fn refuses_bad_configs() {
        assert_eq!(GuardConfig::parse(None).err(), Some(ConfigError::Missing));
        for (json, expected) in [
            (
                r#"{"remove_fields":[],"max_body_bytes":1}"#,
                ConfigError::NoFields,
            ),
            (
                r#"{"remove_fields":["a"],"max_body_bytes":0}"#,
                ConfigError::BodyLimit,
            ),
            (
                r#"{"remove_fields":["a"],"max_body_bytes":1,"remove_headers":["a b"]}"#,
                ConfigError::BadHeaderName("a b".into()),
            ),
            (
                r#"{"remove_fields":["a"],"max_body_bytes":1,"remove_headers":["Content-Length"]}"#,
                ConfigError::ReservedHeader("content-length".into()),
            ),
            (
                r#"{"remove_fields":["a"],"max_body_bytes":1,"set_headers":{"x":"a\r\nb: c"}}"#,
                ConfigError::BadHeaderValue("x".into()),
            ),
        ] {
            assert_eq!(parse(json).err(), Some(expected), "{json}");
        }
    }
}
