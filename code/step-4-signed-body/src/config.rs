//! The plugin configuration: parsed and checked once, in `on_configure`.
//! It holds shared secrets, so no message, log line or `Debug` output made
//! from it ever contains one.

use crate::signature::Secret;
use serde::Deserialize;
use std::fmt;

// ANCHOR: raw_config
/// The JSON the operator writes in the proxy configuration.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// For example `X-Signature-256`, carrying `sha256=<64 hex digits>`.
    signature_header: String,
    /// Every secret currently accepted: during a rotation, the old and the
    /// new one.
    secrets: Vec<String>,
    /// The largest body accepted; a longer one is refused with 413.
    max_body_bytes: u64,
    /// When set, the sender also signs the time it sent the request (Unix
    /// seconds in this header): a request older than the tolerance is
    /// refused, so a replay works only within it.
    #[serde(default)]
    timestamp_header: Option<String>,
    #[serde(default)]
    timestamp_tolerance_seconds: Option<u64>,
}
// ANCHOR_END: raw_config

// ANCHOR: limits
/// A secret shorter than SHA-256's output would be the weakest part of the
/// scheme (RFC 2104 section 3 recommends at least the hash length).
pub const MIN_SECRET_BYTES: usize = 32;

/// Envoy holds the whole body in memory while the plugin decides, once per
/// concurrent request: this caps what one request can make it hold.
pub const MAX_BODY_BYTES: u64 = 8 * 1024 * 1024;

/// Used when `timestamp_header` is set without a tolerance: five minutes,
/// as Stripe's libraries default to.
pub const DEFAULT_TOLERANCE_SECONDS: u64 = 300;
pub const MAX_TOLERANCE_SECONDS: u64 = 3600;
// ANCHOR_END: limits

/// The checked configuration every request of this VM reads.
pub struct SignatureConfig {
    /// Lower-cased, as Envoy hands plugins lower-case header names.
    pub signature_header: String,
    pub secrets: Vec<Secret>,
    pub max_body_bytes: usize,
    pub timestamp: Option<TimestampRule>,
}

pub struct TimestampRule {
    pub header: String,
    pub tolerance_seconds: u64,
}

/// Why a configuration was refused. A secret is named by its position in
/// the list, never quoted.
#[derive(Debug, PartialEq)]
pub enum ConfigError {
    Missing,
    /// Where the JSON went wrong, never what it said there: serde's own
    /// messages quote values and unknown field names, and an operator who
    /// pasted a secret into the wrong field would find it in the log.
    Json {
        line: usize,
        column: usize,
        problem: &'static str,
    },
    BadHeaderName(&'static str),
    NoSecrets,
    ShortSecret {
        position: usize,
    },
    UnusableSecret {
        position: usize,
    },
    RepeatedSecret {
        position: usize,
    },
    BodyLimit,
    ToleranceWithoutHeader,
    Tolerance,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Missing => write!(f, "no plugin configuration was provided"),
            ConfigError::Json {
                line,
                column,
                problem,
            } => write!(
                f,
                "configuration is not valid: {problem} (line {line}, column {column})"
            ),
            ConfigError::BadHeaderName(field) => {
                write!(
                    f,
                    "`{field}` must be a header name: letters, digits and -_."
                )
            }
            ConfigError::NoSecrets => write!(f, "`secrets` must list at least one secret"),
            ConfigError::ShortSecret { position } => write!(
                f,
                "secret number {position} in `secrets` is shorter than {MIN_SECRET_BYTES} bytes"
            ),
            ConfigError::UnusableSecret { position } => write!(
                f,
                "secret number {position} in `secrets` is not a usable HMAC key"
            ),
            ConfigError::RepeatedSecret { position } => {
                write!(
                    f,
                    "secret number {position} in `secrets` repeats an earlier one"
                )
            }
            ConfigError::BodyLimit => {
                write!(f, "`max_body_bytes` must be between 1 and {MAX_BODY_BYTES}")
            }
            ConfigError::ToleranceWithoutHeader => {
                write!(f, "`timestamp_tolerance_seconds` needs `timestamp_header`")
            }
            ConfigError::Tolerance => write!(
                f,
                "`timestamp_tolerance_seconds` must be between 1 and {MAX_TOLERANCE_SECONDS}"
            ),
        }
    }
}

impl SignatureConfig {
    pub fn parse(bytes: Option<&[u8]>) -> Result<Self, ConfigError> {
        let bytes = bytes.ok_or(ConfigError::Missing)?;
        let raw: RawConfig = serde_json::from_slice(bytes).map_err(json_error)?;

        let signature_header = header_name(&raw.signature_header, "signature_header")?;
        if raw.secrets.is_empty() {
            return Err(ConfigError::NoSecrets);
        }
        let mut secrets: Vec<Secret> = Vec::with_capacity(raw.secrets.len());
        for (index, text) in raw.secrets.iter().enumerate() {
            let position = index + 1;
            if text.len() < MIN_SECRET_BYTES {
                return Err(ConfigError::ShortSecret { position });
            }
            if raw.secrets[..index].contains(text) {
                return Err(ConfigError::RepeatedSecret { position });
            }
            secrets.push(
                Secret::new(text.as_bytes()).ok_or(ConfigError::UnusableSecret { position })?,
            );
        }
        if raw.max_body_bytes == 0 || raw.max_body_bytes > MAX_BODY_BYTES {
            return Err(ConfigError::BodyLimit);
        }
        let timestamp = match (raw.timestamp_header, raw.timestamp_tolerance_seconds) {
            (None, None) => None,
            (None, Some(_)) => return Err(ConfigError::ToleranceWithoutHeader),
            (Some(name), tolerance) => {
                let tolerance_seconds = tolerance.unwrap_or(DEFAULT_TOLERANCE_SECONDS);
                if tolerance_seconds == 0 || tolerance_seconds > MAX_TOLERANCE_SECONDS {
                    return Err(ConfigError::Tolerance);
                }
                Some(TimestampRule {
                    header: header_name(&name, "timestamp_header")?,
                    tolerance_seconds,
                })
            }
        };

        Ok(SignatureConfig {
            signature_header,
            secrets,
            // At most MAX_BODY_BYTES, so it fits in a usize even on wasm32.
            max_body_bytes: raw.max_body_bytes as usize,
            timestamp,
        })
    }
}

fn json_error(error: serde_json::Error) -> ConfigError {
    use serde_json::error::Category;
    let problem = match error.classify() {
        Category::Syntax | Category::Io => "not JSON",
        Category::Eof => "the JSON ends too early",
        Category::Data => "a field is missing, unknown, repeated or of the wrong type",
    };
    ConfigError::Json {
        line: error.line(),
        column: error.column(),
        problem,
    }
}

fn header_name(name: &str, field: &'static str) -> Result<String, ConfigError> {
    let name = name.trim().to_ascii_lowercase();
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if valid {
        Ok(name)
    } else {
        Err(ConfigError::BadHeaderName(field))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn parse(json: &str) -> Result<SignatureConfig, ConfigError> {
        SignatureConfig::parse(Some(json.as_bytes()))
    }

    #[test]
    fn accepts_a_good_config() {
        let json = format!(
            r#"{{"signature_header":"X-Signature-256","secrets":["{SECRET}"],"max_body_bytes":1024,
                "timestamp_header":"X-Signature-Timestamp"}}"#
        );
        let Ok(config) = parse(&json) else {
            panic!("a good configuration was refused");
        };
        assert_eq!(config.signature_header, "x-signature-256");
        assert_eq!(config.max_body_bytes, 1024);
        let Some(rule) = config.timestamp else {
            panic!("timestamp rule missing");
        };
        assert_eq!(rule.header, "x-signature-timestamp");
        assert_eq!(rule.tolerance_seconds, DEFAULT_TOLERANCE_SECONDS);
    }

    #[test]
    fn refuses_every_bad_config() {
        assert_eq!(
            SignatureConfig::parse(None).err(),
            Some(ConfigError::Missing)
        );
        let h = r#""signature_header":"x-sig""#;
        let s = format!(r#""secrets":["{SECRET}"]"#);
        let m = r#""max_body_bytes":10"#;
        for (json, expected) in [
            (
                format!(r#"{{"signature_header":"bad header",{s},{m}}}"#),
                ConfigError::BadHeaderName("signature_header"),
            ),
            (
                format!(r#"{{{h},"secrets":[],{m}}}"#),
                ConfigError::NoSecrets,
            ),
            (
                format!(r#"{{{h},"secrets":["short"],{m}}}"#),
                ConfigError::ShortSecret { position: 1 },
            ),
            (
                format!(r#"{{{h},"secrets":["{SECRET}","{SECRET}"],{m}}}"#),
                ConfigError::RepeatedSecret { position: 2 },
            ),
            (
                format!(r#"{{{h},{s},"max_body_bytes":0}}"#),
                ConfigError::BodyLimit,
            ),
            (
                format!(r#"{{{h},{s},"max_body_bytes":9999999999}}"#),
                ConfigError::BodyLimit,
            ),
            (
                format!(r#"{{{h},{s},{m},"timestamp_tolerance_seconds":5}}"#),
                ConfigError::ToleranceWithoutHeader,
            ),
            (
                format!(
                    r#"{{{h},{s},{m},"timestamp_header":"t","timestamp_tolerance_seconds":0}}"#
                ),
                ConfigError::Tolerance,
            ),
        ] {
            assert_eq!(parse(&json).err(), Some(expected), "{json}");
        }
    }

    /// A secret in the wrong place or of the wrong type must not end up in
    /// the error message, which Envoy logs.
    #[test]
    fn errors_never_quote_a_secret() {
        let h = r#""signature_header":"x-sig""#;
        for json in [
            format!(r#"{{{h},"secrets":"{SECRET}","max_body_bytes":10}}"#),
            format!(r#"{{{h},"secrets":[{{"s":"{SECRET}"}}],"max_body_bytes":10}}"#),
            format!(r#"{{{h},"secrets":["{SECRET}", 5],"max_body_bytes":10}}"#),
            format!(r#"{{{h},"secrets":["{SECRET}"],"max_body_bytes":"{SECRET}"}}"#),
            format!(r#"{{{h},"secrets":["{SECRET}"],"max_body_bytes":10,"{SECRET}":1}}"#),
            format!(
                r#"{{{h},"secrets":["{}"],"max_body_bytes":10}}"#,
                &SECRET[..20]
            ),
        ] {
            let Err(error) = parse(&json) else {
                panic!("accepted: {json}");
            };
            let message = error.to_string();
            assert!(!message.contains(&SECRET[..20]), "{message}");
        }
    }
}
