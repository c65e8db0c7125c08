//! The plugin configuration: parsed and checked once, in `on_configure`.
//! The same module plays two parts, and the configuration says which: the
//! filter that checks each request's token, and the refresher that asks the
//! key service for the key set in the background.

use crate::jwks::ALGORITHMS;
use crate::keys::KeyedDigest;
use hmac::Mac;
use jsonwebtoken::Algorithm;
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
    /// The `iss` a token must carry, and one of the `aud` it must carry.
    issuer: String,
    audiences: Vec<String>,
    /// Of `RS256` and `ES256`: the algorithms a token may be signed with.
    algorithms: Vec<String>,
    /// How far the token's issuer's clock may be from the proxy's.
    clock_skew_seconds: u64,
    /// Keys older than this are not used: requests get 503 instead.
    max_key_age_seconds: u64,
    /// The `realm` of the `WWW-Authenticate` answers.
    realm: String,
    /// A claim that becomes a request header the routes match.
    route: Option<RawRoute>,
    #[serde(default = "default_max_token_bytes")]
    max_token_bytes: usize,
    /// Whether a token may come as `?access_token=` instead of a header
    /// (RFC 6750 says a server should not need it: URLs are logged).
    #[serde(default)]
    allow_query_token: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    claim: String,
    header: String,
}

fn default_max_token_bytes() -> usize {
    DEFAULT_MAX_TOKEN_BYTES
}

/// Longer than any token an identity provider issues for an API; a longer
/// one is refused before it is decoded.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 4096;

/// A clock this far off is a broken clock, not skew.
pub const MAX_CLOCK_SKEW_SECONDS: u64 = 300;

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

/// The checked configuration.
pub struct Config {
    pub filter: Option<FilterConfig>,
    pub refresh: Option<RefreshConfig>,
}

pub struct FilterConfig {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub algorithms: Vec<Algorithm>,
    pub clock_skew_seconds: u64,
    pub max_key_age_ms: u64,
    pub realm: String,
    pub route: Option<Route>,
    pub max_token_bytes: usize,
    pub allow_query_token: bool,
    /// Keyed with the secret: checks the published key set's signature.
    pub keyed_digest: KeyedDigest,
}

/// The claim that routes a request, and the header it becomes (lower
/// case, as proxies compare header names case-insensitively).
pub struct Route {
    pub claim: String,
    pub header: String,
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
    BadFilter(&'static str),
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
            ConfigError::BadFilter(why) => write!(f, "`filter`: {why}"),
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
        let bad = |why| Err(ConfigError::BadFilter(why));
        if raw.issuer.is_empty()
            || raw.audiences.is_empty()
            || raw.audiences.iter().any(String::is_empty)
        {
            return bad("`issuer` and `audiences` must be given, none empty");
        }
        let mut algorithms = Vec::new();
        for name in &raw.algorithms {
            match ALGORITHMS.iter().find(|a| format!("{a:?}") == *name) {
                Some(algorithm) => algorithms.push(*algorithm),
                None => return bad("`algorithms` may hold RS256 and ES256 only"),
            }
        }
        if algorithms.is_empty() {
            return bad("`algorithms` must name at least one of RS256 and ES256");
        }
        if raw.clock_skew_seconds > MAX_CLOCK_SKEW_SECONDS {
            return bad("`clock_skew_seconds` must be at most 300");
        }
        if raw.max_key_age_seconds == 0 {
            return bad("`max_key_age_seconds` must be at least 1");
        }
        // The realm is quoted in a header: letters, digits and a few marks.
        let plain = |b: u8| b.is_ascii_alphanumeric() || b"-_. ".contains(&b);
        if raw.realm.is_empty() || !raw.realm.bytes().all(plain) {
            return bad("`realm` must be letters, digits, spaces and -_.");
        }
        if !(256..=65_536).contains(&raw.max_token_bytes) {
            return bad("`max_token_bytes` must be between 256 and 65536");
        }
        let route = match raw.route {
            None => None,
            Some(route) => {
                let header = route.header.trim().to_ascii_lowercase();
                let letters = |b: u8| b.is_ascii_alphanumeric() || b"-_.".contains(&b);
                if route.claim.is_empty() || header.is_empty() || !header.bytes().all(letters) {
                    return bad(
                        "`route` needs a `claim` and a `header` of letters, digits and -_.",
                    );
                }
                Some(Route {
                    claim: route.claim,
                    header,
                })
            }
        };
        Ok(FilterConfig {
            issuer: raw.issuer,
            audiences: raw.audiences,
            algorithms,
            clock_skew_seconds: raw.clock_skew_seconds,
            max_key_age_ms: raw.max_key_age_seconds.saturating_mul(1000),
            realm: raw.realm,
            route,
            max_token_bytes: raw.max_token_bytes,
            allow_query_token: raw.allow_query_token,
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
        "path": "/jwks", "every_seconds": 5, "timeout_ms": 2000}"#;

    const FILTER: &str = r#""filter": {"issuer": "https://issuer.example", "audiences": ["api"],
        "algorithms": ["RS256", "ES256"], "clock_skew_seconds": 30, "max_key_age_seconds": 30,
        "realm": "api", "route": {"claim": "tenant", "header": "X-Tenant"}}"#;

    fn parse(json: &str) -> Result<Config, ConfigError> {
        let json = json.replacen('{', r#"{"secret_env": "SECRET", "#, 1);
        Config::parse(Some(json.as_bytes()), |name| {
            (name == "SECRET").then(|| "secret-0123456789".to_owned())
        })
    }

    #[test]
    fn either_part_or_both() {
        let Ok(config) = parse(&format!("{{{FILTER}}}")) else {
            panic!("filter refused");
        };
        assert!(config.refresh.is_none());
        let Some(filter) = config.filter else {
            panic!("no filter");
        };
        assert_eq!(filter.algorithms, [Algorithm::RS256, Algorithm::ES256]);
        assert_eq!(filter.max_token_bytes, DEFAULT_MAX_TOKEN_BYTES);
        assert!(!filter.allow_query_token);
        assert_eq!(
            filter.route.map(|r| (r.claim, r.header)),
            Some(("tenant".into(), "x-tenant".into()))
        );
        assert!(parse(&format!("{{{REFRESH}}}")).is_ok_and(|c| c.filter.is_none()));
        assert!(parse(&format!("{{{FILTER}, {REFRESH}}}")).is_ok());
        let neither = Config::parse(Some(br#"{"secret_env": "SECRET"}"#), |_| None);
        assert_eq!(neither.err(), Some(ConfigError::NothingToDo));
    }

    #[test]
    fn a_filter_that_would_accept_too_much_is_refused() {
        for (from, to) in [
            (r#"["RS256", "ES256"]"#, r#"["HS256"]"#),
            (r#"["RS256", "ES256"]"#, r#"["none"]"#),
            (r#"["RS256", "ES256"]"#, "[]"),
            (r#"["api"]"#, "[]"),
            (r#"["api"]"#, r#"[""]"#),
            (r#""https://issuer.example""#, r#""""#),
            (
                r#""clock_skew_seconds": 30"#,
                r#""clock_skew_seconds": 301"#,
            ),
            (
                r#""max_key_age_seconds": 30"#,
                r#""max_key_age_seconds": 0"#,
            ),
            (r#""realm": "api""#, r#""realm": "a<b""#),
            (r#""X-Tenant""#, r#""X Tenant""#),
        ] {
            let bad = FILTER.replace(from, to);
            assert!(
                matches!(
                    parse(&format!("{{{bad}}}")).err(),
                    Some(ConfigError::BadFilter(_))
                ),
                "{to}"
            );
        }
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
    }
}
