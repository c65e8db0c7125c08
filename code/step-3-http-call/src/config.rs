//! The plugin configuration: parsed and checked once, in `on_configure`.

use crate::cache::{Answer, KeyedDigest};
use hmac::Mac;
use serde::Deserialize;
use std::fmt;
use std::time::Duration;

/// The JSON the operator writes in the proxy configuration. The keys are no
/// longer here: the auth service knows them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    header_name: String,
    /// The proxy's name for the auth service: an Envoy cluster.
    auth_cluster: String,
    /// The `:authority` (Host) sent to the auth service.
    auth_authority: String,
    #[serde(default = "default_auth_path")]
    auth_path: String,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    /// How long a yes from the auth service is reused (0: never cached).
    #[serde(default = "default_cache_valid_seconds")]
    cache_valid_seconds: u64,
    /// How long a no is reused: shorter, so a key just created works soon.
    #[serde(default = "default_cache_invalid_seconds")]
    cache_invalid_seconds: u64,
    /// The most answers the cache holds (see `cache.rs`).
    #[serde(default = "default_cache_slots")]
    cache_slots: u32,
    /// The environment variable that holds the HMAC key naming an API key
    /// in the cache, needed when answers are cached. The secret itself is in
    /// no configuration: Envoy passes the variable into the VM
    /// (`vm_config.environment_variables.host_env_keys`).
    #[serde(default)]
    cache_secret_env: Option<String>,
}

fn default_auth_path() -> String {
    "/validate".to_owned()
}

/// Long enough for a service on the same network, short enough that a hung
/// service does not hold requests for long.
fn default_timeout_ms() -> u64 {
    500
}

pub const MAX_TIMEOUT_MS: u64 = 10_000;

/// A revoked key keeps working for at most this long.
fn default_cache_valid_seconds() -> u64 {
    30
}

fn default_cache_invalid_seconds() -> u64 {
    5
}

/// Each slot holds one answer of 41 bytes plus its name; 10,000 slots are
/// well under a megabyte of shared data, and never more.
fn default_cache_slots() -> u32 {
    10_000
}

pub const MAX_CACHE_SECONDS: u64 = 3600;
pub const MAX_CACHE_SLOTS: u32 = 1_000_000;

/// Long enough that the secret cannot be guessed: 16 bytes of a random
/// string (RFC 2104 recommends at least the hash length, 32, for a random
/// key; 16 is the floor this plugin accepts).
pub const MIN_CACHE_SECRET_BYTES: usize = 16;

/// The checked configuration every request of this VM reads.
#[derive(Debug)]
pub struct AuthConfig {
    /// Lower-cased, as proxies compare header names case-insensitively.
    pub header_name: String,
    pub auth_cluster: String,
    pub auth_authority: String,
    pub auth_path: String,
    pub timeout: Duration,
    pub cache: CacheSettings,
}

#[derive(Debug, Clone)]
pub struct CacheSettings {
    pub valid_seconds: u64,
    pub invalid_seconds: u64,
    pub slots: u32,
    /// Keyed with `cache_secret`; `None` when nothing is cached.
    pub keyed_digest: Option<KeyedDigest>,
}

impl CacheSettings {
    /// How long this answer is cached (0: not at all).
    pub fn seconds_for(&self, answer: Answer) -> u64 {
        match answer {
            Answer::Valid => self.valid_seconds,
            Answer::Invalid => self.invalid_seconds,
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, PartialEq)]
pub enum ConfigError {
    Missing,
    Json(String),
    BadHeaderName,
    Empty(&'static str),
    BadPath,
    BadTimeout,
    BadCacheSeconds,
    BadCacheSlots,
    ShortCacheSecret(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Missing => write!(f, "no plugin configuration was provided"),
            ConfigError::Json(reason) => write!(f, "configuration is not valid: {reason}"),
            ConfigError::BadHeaderName => {
                write!(f, "`header_name` must be letters, digits and -_.")
            }
            ConfigError::Empty(field) => write!(f, "`{field}` must not be empty"),
            ConfigError::BadPath => write!(f, "`auth_path` must start with `/`"),
            ConfigError::BadTimeout => {
                write!(f, "`timeout_ms` must be between 1 and {MAX_TIMEOUT_MS}")
            }
            ConfigError::BadCacheSeconds => write!(
                f,
                "`cache_valid_seconds` and `cache_invalid_seconds` must be at most {MAX_CACHE_SECONDS}"
            ),
            ConfigError::BadCacheSlots => {
                write!(f, "`cache_slots` must be between 1 and {MAX_CACHE_SLOTS}")
            }
            ConfigError::ShortCacheSecret(variable) => write!(
                f,
                "answers are cached, so `cache_secret_env` must name an environment \
                 variable that holds at least {MIN_CACHE_SECRET_BYTES} bytes (now: `{variable}`)"
            ),
        }
    }
}

impl AuthConfig {
    /// `environment` reads a variable of the VM's environment (`std::env::var`
    /// in the plugin).
    pub fn parse(
        bytes: Option<&[u8]>,
        environment: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let bytes = bytes.ok_or(ConfigError::Missing)?;
        let raw: RawConfig =
            serde_json::from_slice(bytes).map_err(|e| ConfigError::Json(e.to_string()))?;

        let header_name = raw.header_name.trim().to_ascii_lowercase();
        let letters = |b: u8| b.is_ascii_alphanumeric() || b"-_.".contains(&b);
        if header_name.is_empty() || !header_name.bytes().all(letters) {
            return Err(ConfigError::BadHeaderName);
        }
        for (field, value) in [
            ("auth_cluster", &raw.auth_cluster),
            ("auth_authority", &raw.auth_authority),
        ] {
            if value.trim().is_empty() {
                return Err(ConfigError::Empty(field));
            }
        }
        if !raw.auth_path.starts_with('/') {
            return Err(ConfigError::BadPath);
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&raw.timeout_ms) {
            return Err(ConfigError::BadTimeout);
        }
        if raw.cache_valid_seconds > MAX_CACHE_SECONDS
            || raw.cache_invalid_seconds > MAX_CACHE_SECONDS
        {
            return Err(ConfigError::BadCacheSeconds);
        }
        if !(1..=MAX_CACHE_SLOTS).contains(&raw.cache_slots) {
            return Err(ConfigError::BadCacheSlots);
        }
        let caches = raw.cache_valid_seconds > 0 || raw.cache_invalid_seconds > 0;
        let keyed_digest = match (caches, raw.cache_secret_env) {
            (false, _) => None,
            (true, Some(variable)) => {
                let refused = || ConfigError::ShortCacheSecret(variable.clone());
                let secret = environment(&variable)
                    .filter(|secret| secret.len() >= MIN_CACHE_SECRET_BYTES)
                    .ok_or_else(refused)?;
                // HMAC takes keys of any length, so this never fails; were
                // it to, the configuration is refused, never a request.
                Some(KeyedDigest::new_from_slice(secret.as_bytes()).map_err(|_| refused())?)
            }
            (true, None) => return Err(ConfigError::ShortCacheSecret("not set".into())),
        };

        Ok(AuthConfig {
            header_name,
            auth_cluster: raw.auth_cluster,
            auth_authority: raw.auth_authority,
            auth_path: raw.auth_path,
            timeout: Duration::from_millis(raw.timeout_ms),
            cache: CacheSettings {
                valid_seconds: raw.cache_valid_seconds,
                invalid_seconds: raw.cache_invalid_seconds,
                slots: raw.cache_slots,
                keyed_digest,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<AuthConfig, ConfigError> {
        let environment =
            |name: &str| (name == "CACHE_SECRET").then(|| "cache-secret-0123456789".to_owned());
        AuthConfig::parse(Some(json.as_bytes()), environment)
    }

    #[test]
    fn accepts_a_good_config_with_defaults() {
        let json = r#"{"header_name":"X-API-Key","auth_cluster":"auth","auth_authority":"auth",
            "cache_secret_env":"CACHE_SECRET"}"#;
        let Ok(config) = parse(json) else {
            panic!("a good configuration was refused");
        };
        assert_eq!(config.header_name, "x-api-key");
        assert_eq!(config.auth_path, "/validate");
        assert_eq!(config.timeout, Duration::from_millis(500));
        let cache = &config.cache;
        assert_eq!(
            (cache.valid_seconds, cache.invalid_seconds, cache.slots),
            (30, 5, 10_000)
        );
        assert!(cache.keyed_digest.is_some());
    }

    #[test]
    fn a_cache_needs_a_secret_and_no_cache_needs_none() {
        let base = r#""header_name":"x","auth_cluster":"a","auth_authority":"a""#;
        for (json, variable) in [
            (
                format!(r#"{{{base},"cache_secret_env":"NOT_SET"}}"#),
                "NOT_SET",
            ),
            (format!("{{{base}}}"), "not set"),
        ] {
            assert_eq!(
                parse(&json).err(),
                Some(ConfigError::ShortCacheSecret(variable.into())),
                "{json}"
            );
        }
        let off = format!(r#"{{{base},"cache_valid_seconds":0,"cache_invalid_seconds":0}}"#);
        assert!(parse(&off).is_ok_and(|config| config.cache.keyed_digest.is_none()));
        let message = parse(&format!(r#"{{{base},"cache_secret_env":"CACHE_SECRET"}}"#))
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(message.is_empty(), "{message}");
    }

    #[test]
    fn refuses_every_bad_config() {
        assert_eq!(
            AuthConfig::parse(None, |_| None).err(),
            Some(ConfigError::Missing)
        );
        for json in [
            "{not json",
            r#"{"header_name":"x","auth_cluster":"a"}"#,
            r#"{"header_name":"x","auth_cluster":"a","auth_authority":"a","extra":1}"#,
            r#"{"header_name":"x","auth_cluster":"a","auth_authority":"a","timeout_ms":"5"}"#,
        ] {
            assert!(
                matches!(parse(json).err(), Some(ConfigError::Json(_))),
                "{json}"
            );
        }
        let cases = [
            (
                r#"{"header_name":"","auth_cluster":"a","auth_authority":"a"}"#,
                ConfigError::BadHeaderName,
            ),
            (
                r#"{"header_name":"x:","auth_cluster":"a","auth_authority":"a"}"#,
                ConfigError::BadHeaderName,
            ),
            (
                r#"{"header_name":"x","auth_cluster":" ","auth_authority":"a"}"#,
                ConfigError::Empty("auth_cluster"),
            ),
            (
                r#"{"header_name":"x","auth_cluster":"a","auth_authority":""}"#,
                ConfigError::Empty("auth_authority"),
            ),
            (
                r#"{"header_name":"x","auth_cluster":"a","auth_authority":"a","auth_path":"v"}"#,
                ConfigError::BadPath,
            ),
            (
                r#"{"header_name":"x","auth_cluster":"a","auth_authority":"a","timeout_ms":0}"#,
                ConfigError::BadTimeout,
            ),
            (
                r#"{"header_name":"x","auth_cluster":"a","auth_authority":"a","timeout_ms":10001}"#,
                ConfigError::BadTimeout,
            ),
            (
                r#"{"header_name":"x","auth_cluster":"a","auth_authority":"a","cache_valid_seconds":3601}"#,
                ConfigError::BadCacheSeconds,
            ),
            (
                r#"{"header_name":"x","auth_cluster":"a","auth_authority":"a","cache_slots":0}"#,
                ConfigError::BadCacheSlots,
            ),
        ];
        for (json, expected) in cases {
            assert_eq!(parse(json).err(), Some(expected), "{json}");
        }
    }
}
