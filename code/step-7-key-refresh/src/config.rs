//! The plugin configuration: parsed and checked once, in `on_configure`.
//! The same module plays two parts, and the configuration says which: the
//! filter that checks each request's key, and the refresher that asks the
//! key service for the keys in the background.

use crate::keys::KeyedDigest;
use hmac::Mac;
use serde::Deserialize;
use std::fmt;
use std::time::Duration;

/// A day: a key revoked at the service keeps working until the next
/// refresh, and a list refreshed less often than daily is configuration,
/// not a refresh.
pub const MAX_EVERY_SECONDS: u64 = 86_400;

/// Long enough that the secret cannot be guessed: 16 bytes of a random
/// string, as step 3's cache secret.
pub const MIN_SECRET_BYTES: usize = 16;

// ANCHOR: raw_config
/// The JSON the operator writes in the proxy configuration: `filter`,
/// `refresh`, or both (every VM that has `refresh` polls the service).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// The environment variable with the secret of the published list's
    /// digests (`vm_config.environment_variables.host_env_keys`); the
    /// filter and the refresher must read the same one.
    secret_env: String,
    filter: Option<RawFilter>,
    refresh: Option<RawRefresh>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilter {
    header_name: String,
    /// Keys older than this are not used: requests get 503 instead.
    max_key_age_seconds: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRefresh {
    /// The Envoy cluster of the key service, and the request sent to it.
    cluster: String,
    authority: String,
    path: String,
    every_seconds: u64,
    timeout_ms: u64,
}
// ANCHOR_END: raw_config

/// The checked configuration.
pub struct Config {
    pub filter: Option<FilterConfig>,
    pub refresh: Option<RefreshConfig>,
}

pub struct FilterConfig {
    /// Lower-cased, as proxies compare header names case-insensitively.
    pub header_name: String,
    pub max_key_age_ms: u64,
    /// Keyed with the secret: names keys and checks the list's signature.
    pub keyed_digest: KeyedDigest,
}

pub struct RefreshConfig {
    /// Keyed with the secret: names keys and signs the list.
    pub keyed_digest: KeyedDigest,
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub every: Duration,
    pub timeout: Duration,
}

/// Why a configuration was refused.
#[derive(Debug, PartialEq)]
pub enum ConfigError {
    Missing,
    Json(String),
    NothingToDo,
    NoSecret,
    BadHeaderName,
    NoKeyAge,
    BadRefresh(&'static str),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Missing => write!(f, "no plugin configuration was provided"),
            ConfigError::Json(reason) => write!(f, "configuration is not valid: {reason}"),
            ConfigError::NothingToDo => write!(f, "give `filter`, `refresh` or both"),
            ConfigError::NoSecret => write!(
                f,
                "`secret_env` must name an environment variable of the VM holding at least \
                 {MIN_SECRET_BYTES} bytes"
            ),
            ConfigError::BadHeaderName => {
                write!(f, "`header_name` must be letters, digits and -_.")
            }
            ConfigError::NoKeyAge => write!(f, "`max_key_age_seconds` must be at least 1"),
            ConfigError::BadRefresh(why) => write!(f, "`refresh`: {why}"),
        }
    }
}

impl Config {
    /// `environment` looks a variable up (`std::env::var` in the plugin).
    pub fn parse(
        bytes: Option<&[u8]>,
        environment: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let bytes = bytes.ok_or(ConfigError::Missing)?;
        let raw: RawConfig =
            serde_json::from_slice(bytes).map_err(|e| ConfigError::Json(e.to_string()))?;
        if raw.filter.is_none() && raw.refresh.is_none() {
            return Err(ConfigError::NothingToDo);
        }
        let secret = environment(&raw.secret_env)
            .filter(|secret| secret.len() >= MIN_SECRET_BYTES)
            .ok_or(ConfigError::NoSecret)?;
        let keyed_digest =
            KeyedDigest::new_from_slice(secret.as_bytes()).map_err(|_| ConfigError::NoSecret)?;
        Ok(Config {
            filter: raw
                .filter
                .map(|raw| FilterConfig::check(raw, keyed_digest.clone()))
                .transpose()?,
            refresh: raw
                .refresh
                .map(|raw| RefreshConfig::check(raw, keyed_digest))
                .transpose()?,
        })
    }
}

impl FilterConfig {
    fn check(raw: RawFilter, keyed_digest: KeyedDigest) -> Result<Self, ConfigError> {
        let header_name = raw.header_name.trim().to_ascii_lowercase();
        let letters = |b: u8| b.is_ascii_alphanumeric() || b"-_.".contains(&b);
        if header_name.is_empty() || !header_name.bytes().all(letters) {
            return Err(ConfigError::BadHeaderName);
        }
        if raw.max_key_age_seconds == 0 {
            return Err(ConfigError::NoKeyAge);
        }
        Ok(FilterConfig {
            header_name,
            max_key_age_ms: raw.max_key_age_seconds.saturating_mul(1000),
            keyed_digest,
        })
    }
}

impl RefreshConfig {
    fn check(raw: RawRefresh, keyed_digest: KeyedDigest) -> Result<Self, ConfigError> {
        if raw.cluster.is_empty() || raw.authority.is_empty() {
            return Err(ConfigError::BadRefresh(
                "`cluster` and `authority` are needed",
            ));
        }
        if !raw.path.starts_with('/') {
            return Err(ConfigError::BadRefresh("`path` must start with /"));
        }
        if raw.every_seconds == 0 || raw.every_seconds > MAX_EVERY_SECONDS {
            return Err(ConfigError::BadRefresh(
                "`every_seconds` must be between 1 and 86400",
            ));
        }
        // One call at a time: a call must be over before the next tick.
        if raw.timeout_ms == 0 || raw.timeout_ms >= raw.every_seconds.saturating_mul(1000) {
            return Err(ConfigError::BadRefresh(
                "`timeout_ms` must be more than 0 and less than `every_seconds`",
            ));
        }
        Ok(RefreshConfig {
            keyed_digest,
            cluster: raw.cluster,
            authority: raw.authority,
            path: raw.path,
            every: Duration::from_secs(raw.every_seconds),
            timeout: Duration::from_millis(raw.timeout_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFRESH: &str = r#""refresh": {"cluster": "keys", "authority": "keys",
        "path": "/keys", "every_seconds": 5, "timeout_ms": 2000}"#;

    fn parse(json: &str) -> Result<Config, ConfigError> {
        let json = json.replacen('{', r#"{"secret_env": "SECRET", "#, 1);
        Config::parse(Some(json.as_bytes()), |name| {
            (name == "SECRET").then(|| "secret-0123456789".to_owned())
        })
    }

    #[test]
    fn either_part_or_both() {
        let filter = r#""filter": {"header_name": "X-API-Key", "max_key_age_seconds": 30}"#;
        let Ok(config) = parse(&format!("{{{filter}}}")) else {
            panic!("filter refused");
        };
        assert!(config.refresh.is_none());
        assert_eq!(
            config.filter.map(|f| (f.header_name, f.max_key_age_ms)),
            Some(("x-api-key".to_owned(), 30_000))
        );
        assert!(parse(&format!("{{{REFRESH}}}")).is_ok_and(|c| c.filter.is_none()));
        assert!(parse(&format!("{{{filter}, {REFRESH}}}")).is_ok());
        let neither = Config::parse(Some(br#"{"secret_env": "SECRET"}"#), |_| None);
        assert_eq!(neither.err(), Some(ConfigError::NothingToDo));
    }

    #[test]
    fn a_secret_is_needed() {
        let json = format!(r#"{{"secret_env": "UNSET", {REFRESH}}}"#);
        let short = |_: &str| Some("too-short".to_owned());
        assert_eq!(
            Config::parse(Some(json.as_bytes()), |_| None).err(),
            Some(ConfigError::NoSecret)
        );
        assert_eq!(
            Config::parse(Some(json.as_bytes()), short).err(),
            Some(ConfigError::NoSecret)
        );
    }

    #[test]
    fn a_call_must_end_before_the_next_one() {
        let slow = REFRESH.replace("2000", "5000");
        assert!(matches!(
            parse(&format!("{{{slow}}}")).err(),
            Some(ConfigError::BadRefresh(_))
        ));
        for every in ["0", "86401", "18446744073709551615"] {
            let bad = REFRESH.replace(
                "\"every_seconds\": 5",
                &format!("\"every_seconds\": {every}"),
            );
            assert_eq!(
                parse(&format!("{{{bad}}}")).err(),
                Some(ConfigError::BadRefresh(
                    "`every_seconds` must be between 1 and 86400"
                )),
                "{every}"
            );
        }
    }
}
