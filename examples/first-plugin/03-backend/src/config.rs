//! The plugin configuration: parsed and checked once, in `on_configure`.

use serde::Deserialize;
use std::collections::HashSet;
use std::fmt;

/// The JSON the operator writes in the proxy configuration.
#[derive(Deserialize)]
struct RawConfig {
    header_name: String,
    valid_keys: Vec<String>,
}

/// The checked configuration every request of this VM reads.
#[derive(Debug)]
pub struct AuthConfig {
    /// Lower-cased, as proxies compare header names case-insensitively.
    pub header_name: String,
    pub valid_keys: HashSet<String>,
}

/// Why a configuration was refused.
#[derive(Debug, PartialEq)]
pub enum ConfigError {
    Missing,
    Json(String),
    BadHeaderName,
    NoKeys,
    EmptyKey,
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

        Ok(AuthConfig {
            header_name,
            valid_keys: raw.valid_keys.into_iter().collect(),
        })
    }
}
