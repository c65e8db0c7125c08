//! The plugin's cases as data: each request, what the upstream answers,
//! and what the client must get. The in-process tests send them to the
//! module in a host library; `check.sh` sends the same requests through
//! Envoy to the backend of `envoy.yaml`, which answers the same way.

/// The user document the backend serves: a password hash, a social
/// security number in a nested object, notes inside an array.
pub const USER: &[u8] = br#"{"id":7,"name":"Ada","password_hash":"$2b$12$Qm9vWmFyQmF6","profile":{"city":"London","ssn":"078-05-1120"},"sessions":[{"device":"laptop","internal_notes":"flagged 2026-11"}]}"#;

/// What the backend answers.
#[derive(Debug)]
pub enum Upstream {
    /// This status, `content-type` (none when `None`) and body, in pieces
    /// of at most `piece` bytes (the whole body at once when 0), then
    /// these trailers.
    Fixed {
        status: &'static str,
        content_type: Option<&'static [u8]>,
        also: &'static [(&'static str, &'static [u8])],
        body: Body,
        piece: usize,
        trailers: &'static [(&'static str, &'static [u8])],
    },
    /// The user document, or the part a `Range` header asks for (`206`),
    /// as an upstream that honours ranges answers.
    HonoursRange,
}

#[derive(Debug)]
pub enum Body {
    Bytes(&'static [u8]),
    /// A JSON document of exactly this many bytes, with an `ssn`.
    Sized(usize),
}

/// What the client must get.
#[derive(Debug)]
pub enum Expected {
    /// The response, with none of these strings in it, and with these.
    Rewritten {
        lacks: &'static [&'static str],
        has: &'static [&'static str],
    },
    /// The upstream's body, byte for byte.
    Unchanged,
    /// The guard's own answer: this status, a body containing this text.
    Refused(u32, &'static str),
}

pub struct Case {
    pub name: &'static str,
    pub path: &'static str,
    pub request: &'static [(&'static str, &'static [u8])],
    pub upstream: Upstream,
    pub expected: Expected,
}

const JSON: Option<&[u8]> = Some(b"application/json");
const FIELDS: &[&str] = &["password_hash", "ssn", "078-05-1120", "internal_notes"];

const fn json(body: Body) -> Upstream {
    Upstream::Fixed {
        status: "200",
        content_type: JSON,
        also: &[],
        body,
        piece: 0,
        trailers: &[],
    }
}

const fn typed(content_type: Option<&'static [u8]>, body: Body) -> Upstream {
    Upstream::Fixed {
        status: "200",
        content_type,
        also: &[],
        body,
        piece: 0,
        trailers: &[],
    }
}

pub const CASES: &[Case] = &[
    Case {
        name: "a user loses every configured field",
        path: "/users/7",
        request: &[],
        upstream: json(Body::Bytes(USER)),
        expected: Expected::Rewritten {
            lacks: FIELDS,
            has: &[
                r#"{"id":7,"name":"Ada","profile":{"city":"London"},"sessions":[{"device":"laptop"}]}"#,
                "content-length: 82",
                "x-content-type-options: nosniff",
            ],
        },
    },
    Case {
        name: "a user arriving in pieces of 10 bytes",
        path: "/users/7",
        request: &[],
        upstream: Upstream::Fixed {
            status: "200",
            content_type: JSON,
            also: &[],
            body: Body::Bytes(USER),
            piece: 10,
            trailers: &[],
        },
        expected: Expected::Rewritten {
            lacks: FIELDS,
            has: &["content-length: 82"],
        },
    },
    Case {
        name: "a body that ends in trailers",
        path: "/users/7",
        request: &[],
        upstream: Upstream::Fixed {
            status: "200",
            content_type: JSON,
            also: &[],
            body: Body::Bytes(USER),
            piece: 0,
            trailers: &[("x-checksum", b"1234")],
        },
        expected: Expected::Rewritten {
            lacks: FIELDS,
            has: &[r#""name":"Ada""#],
        },
    },
    Case {
        name: "the upstream's server and x-powered-by are removed",
        path: "/users/7",
        request: &[],
        upstream: Upstream::Fixed {
            status: "200",
            content_type: JSON,
            also: &[("server", b"backend/1.0"), ("x-powered-by", b"lua")],
            body: Body::Bytes(USER),
            piece: 0,
            trailers: &[],
        },
        expected: Expected::Rewritten {
            lacks: &["backend/1.0", "x-powered-by"],
            has: &[],
        },
    },
    Case {
        name: "a Range for the ssn's bytes gets the whole user, rewritten",
        path: "/users/7",
        request: &[("range", b"bytes=92-104")],
        upstream: Upstream::HonoursRange,
        expected: Expected::Rewritten {
            lacks: FIELDS,
            has: &[r#""name":"Ada""#],
        },
    },
    Case {
        name: "a Range of two parts gets the whole user, rewritten",
        path: "/users/7",
        request: &[("range", b"bytes=0-9,40-200"), ("if-range", b"\"v1\"")],
        upstream: Upstream::HonoursRange,
        expected: Expected::Rewritten {
            lacks: FIELDS,
            has: &[r#""name":"Ada""#],
        },
    },
    Case {
        name: "a 206 the upstream sends anyway",
        path: "/users/7",
        request: &[],
        upstream: Upstream::Fixed {
            status: "206",
            content_type: JSON,
            also: &[("content-range", b"bytes 92-104/175")],
            body: Body::Bytes(br#""078-05-1120""#),
            piece: 0,
            trailers: &[],
        },
        expected: Expected::Refused(502, "partial response"),
    },
    Case {
        name: "multipart/byteranges the upstream sends anyway",
        path: "/users/7",
        request: &[],
        upstream: Upstream::Fixed {
            status: "206",
            content_type: Some(b"multipart/byteranges; boundary=SEP"),
            also: &[],
            body: Body::Bytes(b"--SEP\r\n\r\n\"ssn\":\"078-05-1120\"\r\n--SEP--\r\n"),
            piece: 0,
            trailers: &[],
        },
        expected: Expected::Refused(502, "response type not allowed"),
    },
    Case {
        name: "JSON labelled text/json is read too",
        path: "/users/7",
        request: &[],
        upstream: typed(Some(b"text/json"), Body::Bytes(USER)),
        expected: Expected::Rewritten {
            lacks: FIELDS,
            has: &[r#""name":"Ada""#],
        },
    },
    Case {
        name: "application/problem+json is read too",
        path: "/users/7",
        request: &[],
        upstream: typed(
            Some(b"application/problem+json; charset=utf-8"),
            Body::Bytes(USER),
        ),
        expected: Expected::Rewritten {
            lacks: FIELDS,
            has: &[r#""name":"Ada""#],
        },
    },
    Case {
        name: "a response without content-type",
        path: "/users/7",
        request: &[],
        upstream: typed(None, Body::Bytes(USER)),
        expected: Expected::Refused(502, "response type not allowed"),
    },
    Case {
        name: "content-type sent twice, joined by Envoy",
        path: "/users/7",
        request: &[],
        upstream: typed(Some(b"text/plain,application/json"), Body::Bytes(USER)),
        expected: Expected::Refused(502, "response type not allowed"),
    },
    Case {
        name: "JSON labelled text/plain",
        path: "/users/7",
        request: &[],
        upstream: typed(Some(b"text/plain"), Body::Bytes(USER)),
        expected: Expected::Refused(502, "response type not allowed"),
    },
    Case {
        name: "newline-delimited JSON",
        path: "/users/7/events",
        request: &[],
        upstream: typed(
            Some(b"application/x-ndjson"),
            Body::Bytes(b"{\"ssn\":\"078-05-1120\"}\n{\"ssn\":\"078-05-1120\"}\n"),
        ),
        expected: Expected::Refused(502, "response type not allowed"),
    },
    Case {
        name: "an image passes unread (pass_unread: image/*)",
        path: "/users/7/avatar.png",
        request: &[],
        upstream: typed(Some(b"image/png"), Body::Bytes(b"\x89PNG\r\n\x1a\n")),
        expected: Expected::Unchanged,
    },
    Case {
        name: "a compressed JSON response",
        path: "/users/7",
        request: &[("accept-encoding", b"gzip")],
        upstream: Upstream::Fixed {
            status: "200",
            content_type: JSON,
            also: &[("content-encoding", b"gzip")],
            body: Body::Bytes(b"\x1f\x8b\x08\0\0\0\0\0"),
            piece: 0,
            trailers: &[],
        },
        expected: Expected::Refused(502, "response is compressed"),
    },
    Case {
        name: "a truncated JSON response",
        path: "/users/7",
        request: &[],
        upstream: json(Body::Bytes(br#"{"id":7,"password_hash":"$2b$12$Qm9v"#)),
        expected: Expected::Refused(502, "response is not valid JSON"),
    },
    Case {
        name: "JSON that is not UTF-8",
        path: "/users/7",
        request: &[],
        upstream: json(Body::Bytes(b"{\"id\":7,\"ssn\":\"\xff\"}")),
        expected: Expected::Refused(502, "response is not valid JSON"),
    },
    Case {
        name: "two JSON documents in one body",
        path: "/users/7",
        request: &[],
        upstream: json(Body::Bytes(br#"{"id":7} {"ssn":"078-05-1120"}"#)),
        expected: Expected::Refused(502, "response is not valid JSON"),
    },
    Case {
        name: "a document of exactly max_body_bytes",
        path: "/sized/65536",
        request: &[],
        upstream: json(Body::Sized(65536)),
        expected: Expected::Rewritten {
            lacks: &["ssn"],
            has: &["content-length: 65516"],
        },
    },
    Case {
        name: "one byte over, declared in content-length",
        path: "/sized/65537",
        request: &[],
        upstream: Upstream::Fixed {
            status: "200",
            content_type: JSON,
            also: &[("content-length", b"65537")],
            body: Body::Sized(65537),
            piece: 0,
            trailers: &[],
        },
        expected: Expected::Refused(502, "response too large"),
    },
    Case {
        name: "one byte over, in pieces without a length",
        path: "/sized/65537",
        request: &[],
        upstream: Upstream::Fixed {
            status: "200",
            content_type: JSON,
            also: &[],
            body: Body::Sized(65537),
            piece: 4096,
            trailers: &[],
        },
        expected: Expected::Refused(502, "response too large"),
    },
    Case {
        name: "what is left keeps its order and its numbers",
        path: "/numbers",
        request: &[],
        upstream: json(Body::Bytes(
            br#"{"zeta":1,"ssn":"1","big":18446744073709551616123,"price":0.10}"#,
        )),
        expected: Expected::Rewritten {
            lacks: &["ssn"],
            has: &[r#"{"zeta":1,"big":18446744073709551616123,"price":0.10}"#],
        },
    },
];
