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
    /// Media types that are not JSON and may pass unread, such as
    /// `image/png` or `image/*`. A response of any other type is refused.
    #[serde(default)]
    pass_unread: Vec<String>,
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
    /// Lower-cased `type/subtype` or `type/*`.
    pub pass_unread: Vec<String>,
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
    /// Not a `type/subtype` or `type/*` the plugin can compare.
    BadMediaType(String),
    /// A JSON type, or every type: reading it is the guard's job.
    JsonPassesUnread(String),
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
                "`{name}` is set by Envoy or read by the plugin itself and cannot be configured"
            ),
            ConfigError::BadMediaType(media) => {
                write!(
                    f,
                    "`{media}` in `pass_unread` is not a type/subtype or type/*"
                )
            }
            ConfigError::JsonPassesUnread(media) => write!(
                f,
                "`{media}` in `pass_unread` would let JSON responses pass unread"
            ),
        }
    }
}

/// The headers the plugin reads to decide, and the framing headers it
/// manages itself: a configuration that changed them could turn the guard
/// off (`content-type`) or break every response (`content-length`).
const RESERVED: [&str; 5] = [
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "content-range",
];

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

/// A media type of `pass_unread`, lower-cased: `type/subtype` or `type/*`
/// (never `*/*`: name what may pass), and not a JSON type.
fn pass_unread_type(media: &str) -> Result<String, ConfigError> {
    let lower = media.trim().to_ascii_lowercase();
    let Some((kind, subtype)) = lower.split_once('/') else {
        return Err(ConfigError::BadMediaType(media.to_owned()));
    };
    let token = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    if !token(kind) || !(subtype == "*" || token(subtype)) {
        return Err(ConfigError::BadMediaType(media.to_owned()));
    }
    // JSON is read whatever this list says (`text/*` still leaves
    // `text/json` to the guard): naming a JSON type here is a mistake.
    if crate::media::is_json(&lower) {
        return Err(ConfigError::JsonPassesUnread(lower));
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
        let pass_unread = raw
            .pass_unread
            .iter()
            .map(|media| pass_unread_type(media))
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
            pass_unread,
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
            r#"{"remove_fields":["ssn"],"max_body_bytes":100,"pass_unread":["Image/*"],
                "remove_headers":["Server"],"set_headers":{"X-Content-Type-Options":"nosniff"}}"#,
        ) else {
            panic!("refused");
        };
        assert!(config.remove_fields.contains("ssn"));
        assert_eq!(config.remove_headers, ["server"]);
        assert_eq!(config.pass_unread, ["image/*"]);
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
            (
                r#"{"remove_fields":["a"],"max_body_bytes":1,"remove_headers":["Content-Type"]}"#,
                ConfigError::ReservedHeader("content-type".into()),
            ),
            (
                r#"{"remove_fields":["a"],"max_body_bytes":1,"set_headers":{"content-type":"text/plain"}}"#,
                ConfigError::ReservedHeader("content-type".into()),
            ),
            (
                r#"{"remove_fields":["a"],"max_body_bytes":1,"pass_unread":["image"]}"#,
                ConfigError::BadMediaType("image".into()),
            ),
            (
                r#"{"remove_fields":["a"],"max_body_bytes":1,"pass_unread":["*/*"]}"#,
                ConfigError::BadMediaType("*/*".into()),
            ),
            (
                r#"{"remove_fields":["a"],"max_body_bytes":1,"pass_unread":["Text/JSON"]}"#,
                ConfigError::JsonPassesUnread("text/json".into()),
            ),
            (
                r#"{"remove_fields":["a"],"max_body_bytes":1,"pass_unread":["application/problem+json"]}"#,
                ConfigError::JsonPassesUnread("application/problem+json".into()),
            ),
        ] {
            assert_eq!(parse(json).err(), Some(expected), "{json}");
        }
    }
}
