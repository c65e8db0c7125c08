//! What a response's `content-type` says it is, read the way the guard
//! must: anything it cannot name for certain is refused, never passed.

// ANCHOR: kind
/// What the guard does with a response of a given `content-type`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// A JSON document: held, read, rewritten.
    Json,
    /// A type the configuration lets pass unread (`pass_unread`).
    PassUnread,
    /// Anything else: no `content-type`, one the guard cannot parse, two
    /// of them, or a type nobody allowed. Not sent.
    Refused,
}

/// `value` is the response's `content-type`, as Envoy hands it over: one
/// value, or a header sent twice joined with a comma (Envoy joins
/// `content-type`), which is refused: a client may read either one.
pub fn classify(value: Option<&[u8]>, pass_unread: &[String]) -> Kind {
    let Some(media) = value.and_then(media_type) else {
        return Kind::Refused;
    };
    if is_json(&media) {
        Kind::Json
    } else if pass_unread.iter().any(|allowed| matches(allowed, &media)) {
        Kind::PassUnread
    } else {
        Kind::Refused
    }
}

/// `application/json`, `text/json`, or any `+json` type such as
/// `application/problem+json`. Not newline-delimited JSON
/// (`application/x-ndjson`): that is many documents, which the guard does
/// not read.
pub fn is_json(media: &str) -> bool {
    media == "application/json" || media == "text/json" || media.ends_with("+json")
}
// ANCHOR_END: kind

/// The lower-cased `type/subtype` of a `content-type` value, without its
/// parameters; `None` when it is not one (a comma: two values joined).
fn media_type(value: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(value).ok()?;
    if text.contains(',') {
        return None;
    }
    let media = text.split(';').next()?.trim().to_ascii_lowercase();
    let (kind, subtype) = media.split_once('/')?;
    let token = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    (token(kind) && token(subtype)).then_some(media)
}

/// `allowed` is `type/subtype` or `type/*`.
fn matches(allowed: &str, media: &str) -> bool {
    match allowed.strip_suffix("/*") {
        Some(kind) => media.split_once('/').is_some_and(|(k, _)| k == kind),
        None => allowed == media,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_read_and_only_named_types_pass() {
        let pass = ["image/*".to_owned(), "text/csv".to_owned()];
        for (value, kind) in [
            (&b"application/json"[..], Kind::Json),
            (b"Application/JSON; charset=utf-8", Kind::Json),
            (b"text/json", Kind::Json),
            (b"application/problem+json", Kind::Json),
            (b"image/png", Kind::PassUnread),
            (b"text/csv", Kind::PassUnread),
            (b"text/plain", Kind::Refused),
            (b"application/x-ndjson", Kind::Refused),
            (b"multipart/byteranges; boundary=x", Kind::Refused),
            (b"text/plain,application/json", Kind::Refused),
            (b"application/json, application/json", Kind::Refused),
            (b"json", Kind::Refused),
            (b"", Kind::Refused),
            (b"\xff/json", Kind::Refused),
        ] {
            assert_eq!(
                classify(Some(value), &pass),
                kind,
                "{}",
                String::from_utf8_lossy(value)
            );
        }
        assert_eq!(classify(None, &pass), Kind::Refused, "no content-type");
    }
}
