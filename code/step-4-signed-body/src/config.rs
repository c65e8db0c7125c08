//! The plugin configuration: parsed and checked once, in `on_configure`.
//! It holds shared secrets, so no message, log line or `Debug` output made
//! from it ever contains one.

use crate::scheme::Scheme;
use crate::signature::Secret;
use serde::Deserialize;
use std::fmt;

// ANCHOR: raw_config
/// The JSON the operator writes in the proxy configuration.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// Whose signatures: `github`, `stripe`, `slack`, `standard-webhooks`,
    /// or `custom` (the book's own, with the header names below).
    scheme: String,
    /// Every secret currently accepted: during a rotation, the old and the
    /// new one.
    secrets: Vec<String>,
    /// The largest body accepted; a longer one is refused with 413.
    max_body_bytes: u64,
    /// How far the signed time may be from the proxy's clock; a replay
    /// works only within it. Each sender's own recommendation by default.
    #[serde(default)]
    timestamp_tolerance_seconds: Option<u64>,
    /// `custom` only: the header carrying `sha256=<64 hex digits>`.
    #[serde(default)]
    signature_header: Option<String>,
    /// `custom` only: when set, the sender also signs the time it sent the
    /// request (Unix seconds in this header) as `<timestamp>.<body>`.
    #[serde(default)]
    timestamp_header: Option<String>,
}
// ANCHOR_END: raw_config

/// No secret shorter than this is accepted, whatever the scheme: NIST's
/// first HMAC standard required a key of at least half the hash's output
/// (FIPS 198, section 3: L/2, 16 bytes for SHA-256). From this up to the
/// scheme's recommended length (`Scheme::recommended_secret_bytes`), a
/// secret is accepted with a warning.
pub const MIN_SECRET_BYTES: usize = 16;

/// Envoy holds the whole body in memory while the plugin decides, once per
/// concurrent request: this caps what one request can make it hold.
pub const MAX_BODY_BYTES: u64 = 8 * 1024 * 1024;

/// The tolerance when the configuration gives none: five minutes, what
/// Stripe's libraries default to and Slack's documentation asks for.
pub const DEFAULT_TOLERANCE_SECONDS: u64 = 300;
pub const MAX_TOLERANCE_SECONDS: u64 = 3600;

/// The checked configuration every request of this VM reads.
pub struct SignatureConfig {
    pub scheme: Scheme,
    pub secrets: Vec<Secret>,
    pub max_body_bytes: usize,
    /// For the schemes that sign a time.
    pub tolerance_seconds: Option<u64>,
    /// The positions (from 1) of secrets shorter than the scheme
    /// recommends: logged once, as a warning, when the plugin starts.
    pub short_secrets: Vec<usize>,
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
    UnknownScheme,
    /// `signature_header` or `timestamp_header` with a scheme that names
    /// its own headers.
    NotForScheme(&'static str),
    NoSignatureHeader,
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
    ToleranceWithoutTimestamp,
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
            ConfigError::UnknownScheme => write!(
                f,
                "`scheme` must be one of custom, github, stripe, slack, standard-webhooks"
            ),
            ConfigError::NotForScheme(field) => write!(
                f,
                "`{field}` is for the custom scheme only: the others name their own headers"
            ),
            ConfigError::NoSignatureHeader => {
                write!(f, "the custom scheme needs `signature_header`")
            }
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
                "secret number {position} in `secrets` is not a usable key for this scheme \
                 (standard-webhooks secrets are `whsec_` and base64)"
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
            ConfigError::ToleranceWithoutTimestamp => write!(
                f,
                "`timestamp_tolerance_seconds` needs a signed timestamp \
                 (`timestamp_header` for custom; github signs none)"
            ),
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

        let scheme = scheme(&raw)?;
        let (secrets, short_secrets) = secrets(&scheme, &raw.secrets)?;
        if raw.max_body_bytes == 0 || raw.max_body_bytes > MAX_BODY_BYTES {
            return Err(ConfigError::BodyLimit);
        }
        let tolerance_seconds = match (scheme.signs_a_timestamp(), raw.timestamp_tolerance_seconds)
        {
            (false, None) => None,
            (false, Some(_)) => return Err(ConfigError::ToleranceWithoutTimestamp),
            (true, tolerance) => {
                let tolerance = tolerance.unwrap_or(DEFAULT_TOLERANCE_SECONDS);
                if tolerance == 0 || tolerance > MAX_TOLERANCE_SECONDS {
                    return Err(ConfigError::Tolerance);
                }
                Some(tolerance)
            }
        };

        Ok(SignatureConfig {
            scheme,
            secrets,
            // At most MAX_BODY_BYTES, so it fits in a usize even on wasm32.
            max_body_bytes: raw.max_body_bytes as usize,
            tolerance_seconds,
            short_secrets,
        })
    }
}

fn scheme(raw: &RawConfig) -> Result<Scheme, ConfigError> {
    if raw.scheme == "custom" {
        let name = raw
            .signature_header
            .as_deref()
            .ok_or(ConfigError::NoSignatureHeader)?;
        return Ok(Scheme::Custom {
            signature_header: header_name(name, "signature_header")?,
            timestamp_header: match &raw.timestamp_header {
                Some(name) => Some(header_name(name, "timestamp_header")?),
                None => None,
            },
        });
    }
    let scheme = Scheme::named(&raw.scheme).ok_or(ConfigError::UnknownScheme)?;
    if raw.signature_header.is_some() {
        return Err(ConfigError::NotForScheme("signature_header"));
    }
    if raw.timestamp_header.is_some() {
        return Err(ConfigError::NotForScheme("timestamp_header"));
    }
    Ok(scheme)
}

// ANCHOR: secrets
/// Each secret keyed once. Returns the keys, and the positions of those
/// shorter than the scheme recommends (accepted, with a warning).
fn secrets(scheme: &Scheme, texts: &[String]) -> Result<(Vec<Secret>, Vec<usize>), ConfigError> {
    if texts.is_empty() {
        return Err(ConfigError::NoSecrets);
    }
    let (mut secrets, mut short) = (Vec::with_capacity(texts.len()), Vec::new());
    for (index, text) in texts.iter().enumerate() {
        let position = index + 1;
        if texts[..index].contains(text) {
            return Err(ConfigError::RepeatedSecret { position });
        }
        let key = scheme
            .key_of(text)
            .ok_or(ConfigError::UnusableSecret { position })?;
        if key.len() < MIN_SECRET_BYTES {
            return Err(ConfigError::ShortSecret { position });
        }
        if key.len() < scheme.recommended_secret_bytes() {
            short.push(position);
        }
        secrets.push(Secret::new(&key).ok_or(ConfigError::UnusableSecret { position })?);
    }
    Ok((secrets, short))
}
// ANCHOR_END: secrets

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
    fn accepts_a_custom_config() {
        let json = format!(
            r#"{{"scheme":"custom","signature_header":"X-Signature-256","secrets":["{SECRET}"],
                "max_body_bytes":1024,"timestamp_header":"X-Signature-Timestamp"}}"#
        );
        let Ok(config) = parse(&json) else {
            panic!("a good configuration was refused");
        };
        let Scheme::Custom {
            signature_header,
            timestamp_header,
        } = &config.scheme
        else {
            panic!("not the custom scheme");
        };
        assert_eq!(signature_header, "x-signature-256");
        assert_eq!(timestamp_header.as_deref(), Some("x-signature-timestamp"));
        assert_eq!(config.max_body_bytes, 1024);
        assert_eq!(config.tolerance_seconds, Some(DEFAULT_TOLERANCE_SECONDS));
        assert!(config.short_secrets.is_empty());
    }

    #[test]
    fn accepts_each_sender_and_warns_about_short_secrets() {
        for (scheme, secret, tolerance, short) in [
            ("github", "It's a Secret to Everybody", None, true),
            ("github", SECRET, None, false),
            (
                "stripe",
                "whsec_0123456789abcdef0123456789abcdef",
                Some(300),
                false,
            ),
            (
                "slack",
                "8f742231b10e8888abcd99yyyzzz85a5",
                Some(300),
                false,
            ),
            (
                "standard-webhooks",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                Some(300),
                false,
            ),
            (
                "standard-webhooks",
                "whsec_MDEyMzQ1Njc4OWFiY2RlZg==",
                Some(300),
                true,
            ),
        ] {
            let json =
                format!(r#"{{"scheme":"{scheme}","secrets":["{secret}"],"max_body_bytes":10}}"#);
            let Ok(config) = parse(&json) else {
                panic!("refused: {json}");
            };
            assert_eq!(config.tolerance_seconds, tolerance, "{scheme}");
            assert_eq!(!config.short_secrets.is_empty(), short, "{scheme} {secret}");
        }
    }

    #[test]
    fn refuses_every_bad_config() {
        assert_eq!(
            SignatureConfig::parse(None).err(),
            Some(ConfigError::Missing)
        );
        let h = r#""scheme":"custom","signature_header":"x-sig""#;
        let s = format!(r#""secrets":["{SECRET}"]"#);
        let m = r#""max_body_bytes":10"#;
        for (json, expected) in [
            (
                format!(r#"{{"scheme":"gitlab",{s},{m}}}"#),
                ConfigError::UnknownScheme,
            ),
            (
                format!(r#"{{"scheme":"custom",{s},{m}}}"#),
                ConfigError::NoSignatureHeader,
            ),
            (
                format!(r#"{{"scheme":"github","signature_header":"x",{s},{m}}}"#),
                ConfigError::NotForScheme("signature_header"),
            ),
            (
                format!(r#"{{"scheme":"slack","timestamp_header":"x",{s},{m}}}"#),
                ConfigError::NotForScheme("timestamp_header"),
            ),
            (
                format!(r#"{{"scheme":"custom","signature_header":"bad header",{s},{m}}}"#),
                ConfigError::BadHeaderName("signature_header"),
            ),
            (
                format!(r#"{{{h},"secrets":[],{m}}}"#),
                ConfigError::NoSecrets,
            ),
            (
                format!(r#"{{{h},"secrets":["0123456789abc"],{m}}}"#),
                ConfigError::ShortSecret { position: 1 },
            ),
            (
                format!(r#"{{"scheme":"standard-webhooks","secrets":["{SECRET}"],{m}}}"#),
                ConfigError::UnusableSecret { position: 1 },
            ),
            (
                format!(
                    r#"{{"scheme":"standard-webhooks","secrets":["whsec_MDEyMzQ1Njc4OWFi"],{m}}}"#
                ),
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
                ConfigError::ToleranceWithoutTimestamp,
            ),
            (
                format!(r#"{{"scheme":"github",{s},{m},"timestamp_tolerance_seconds":5}}"#),
                ConfigError::ToleranceWithoutTimestamp,
            ),
            (
                format!(r#"{{"scheme":"stripe",{s},{m},"timestamp_tolerance_seconds":0}}"#),
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
        let h = r#""scheme":"custom","signature_header":"x-sig""#;
        for json in [
            format!(r#"{{{h},"secrets":"{SECRET}","max_body_bytes":10}}"#),
            format!(r#"{{{h},"secrets":[{{"s":"{SECRET}"}}],"max_body_bytes":10}}"#),
            format!(r#"{{{h},"secrets":["{SECRET}", 5],"max_body_bytes":10}}"#),
            format!(r#"{{{h},"secrets":["{SECRET}"],"max_body_bytes":"{SECRET}"}}"#),
            format!(r#"{{{h},"secrets":["{SECRET}"],"max_body_bytes":10,"{SECRET}":1}}"#),
            format!(r#"{{"scheme":"{SECRET}","secrets":["{SECRET}"],"max_body_bytes":10}}"#),
            format!(
                r#"{{{h},"secrets":["{}"],"max_body_bytes":10}}"#,
                &SECRET[..10]
            ),
        ] {
            let Err(error) = parse(&json) else {
                panic!("accepted: {json}");
            };
            let message = error.to_string();
            assert!(!message.contains(&SECRET[..10]), "{message}");
        }
    }
}
