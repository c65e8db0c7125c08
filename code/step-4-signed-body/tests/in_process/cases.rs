//! The plugin's cases as data: each request, described by how its sender
//! made it, and what it must get. The in-process tests sign and send them
//! to the module in a host library; through Envoy, the same cases get the
//! same answers. (What only Envoy decides, such as the route without the
//! plugin or header names with `_` in them, is for `check.sh`.)

/// The secrets of the folder's `envoy.yaml`: the current one and the
/// previous one, still accepted during a rotation.
pub const SECRET: &str = "whsec-2026-11-current-7d1f0c9a2b4e";
pub const PREVIOUS_SECRET: &str = "whsec-2026-05-previous-93ab51e07c2d";

/// The body most cases send.
pub const EVENT: &[u8] = br#"{"event":"push","ref":"refs/heads/main"}"#;

/// `max_body_bytes` in `envoy.yaml`.
pub const LIMIT: usize = 65_536;

/// What is sent as the body.
#[derive(Debug, Clone, Copy)]
pub enum Body {
    /// `EVENT`.
    Event,
    /// `EVENT` signed, then another body sent in its place.
    ChangedAfterSigning,
    /// No body at all.
    Empty,
    /// This many bytes of JSON-ish text.
    Sized(usize),
}

/// How the body arrives.
#[derive(Debug, Clone, Copy)]
pub enum Arrival {
    /// With `content-length`, in one piece.
    Whole,
    /// Without a length, in pieces of this many bytes (HTTP/1.1 chunked,
    /// or HTTP/2 frames).
    Pieces(usize),
    /// In one piece, then trailers (HTTP/2, or HTTP/1.1 chunked with
    /// trailers).
    WithTrailers,
}

/// The signature header.
#[derive(Debug, Clone, Copy)]
pub enum Signature {
    /// `sha256=<hex>` with the current secret.
    Current,
    /// The same with the previous secret.
    Previous,
    /// The same with a secret the plugin does not hold.
    Unknown,
    /// Signed with the timestamp of ten minutes ago.
    TenMinutesAgo,
    /// No signature header.
    Missing,
    /// A good digest under the wrong prefix (`sha1=`).
    Malformed,
    /// A good one, and a second header of zeros.
    Twice,
}

/// The timestamp header.
#[derive(Debug, Clone, Copy)]
pub enum Timestamp {
    Now,
    TenMinutesAgo,
    Missing,
    /// Now, and a second header ten minutes ago.
    Twice,
    /// `<now>.0`.
    Malformed,
}

/// What a request must get.
#[derive(Debug, PartialEq)]
pub enum Expected {
    /// The plugin answers itself, with this status and a body containing
    /// this text, and none of the body has gone on.
    Refused(u32, &'static str),
    /// The request goes on with its body unchanged.
    Passed,
}

pub struct Case {
    pub name: &'static str,
    pub body: Body,
    pub arrival: Arrival,
    pub signature: Signature,
    pub timestamp: Timestamp,
    pub expected: Expected,
}

// ANCHOR: cases_shape
/// A signed, timely `EVENT` sent whole: most cases change one thing.
const SIGNED: Case = Case {
    name: "signed body",
    body: Body::Event,
    arrival: Arrival::Whole,
    signature: Signature::Current,
    timestamp: Timestamp::Now,
    expected: Expected::Passed,
};
// ANCHOR_END: cases_shape

pub const CASES: &[Case] = &[
    SIGNED,
    Case {
        name: "signed with the previous secret",
        signature: Signature::Previous,
        ..SIGNED
    },
    Case {
        name: "sent in pieces of 7 bytes",
        arrival: Arrival::Pieces(7),
        ..SIGNED
    },
    Case {
        name: "sent with trailers",
        arrival: Arrival::WithTrailers,
        ..SIGNED
    },
    Case {
        name: "empty body, signed",
        body: Body::Empty,
        ..SIGNED
    },
    Case {
        name: "body changed after signing",
        body: Body::ChangedAfterSigning,
        expected: Expected::Refused(401, "invalid signature"),
        ..SIGNED
    },
    Case {
        name: "body changed after signing, with trailers",
        body: Body::ChangedAfterSigning,
        arrival: Arrival::WithTrailers,
        expected: Expected::Refused(401, "invalid signature"),
        ..SIGNED
    },
    Case {
        name: "signed with an unknown secret",
        signature: Signature::Unknown,
        expected: Expected::Refused(401, "invalid signature"),
        ..SIGNED
    },
    Case {
        name: "no signature",
        signature: Signature::Missing,
        expected: Expected::Refused(401, "missing signature"),
        ..SIGNED
    },
    Case {
        name: "malformed signature",
        signature: Signature::Malformed,
        expected: Expected::Refused(401, "malformed signature"),
        ..SIGNED
    },
    Case {
        name: "timestamp 10 minutes old, signed",
        signature: Signature::TenMinutesAgo,
        timestamp: Timestamp::TenMinutesAgo,
        expected: Expected::Refused(400, "stale timestamp"),
        ..SIGNED
    },
    Case {
        name: "replayed with a fresh timestamp",
        signature: Signature::TenMinutesAgo,
        expected: Expected::Refused(401, "invalid signature"),
        ..SIGNED
    },
    Case {
        name: "no timestamp",
        timestamp: Timestamp::Missing,
        expected: Expected::Refused(400, "missing timestamp"),
        ..SIGNED
    },
    Case {
        name: "timestamp sent twice",
        timestamp: Timestamp::Twice,
        expected: Expected::Refused(400, "timestamp sent more than once"),
        ..SIGNED
    },
    Case {
        name: "malformed timestamp",
        timestamp: Timestamp::Malformed,
        expected: Expected::Refused(400, "malformed timestamp"),
        ..SIGNED
    },
    Case {
        name: "signature sent twice",
        signature: Signature::Twice,
        expected: Expected::Refused(400, "signature sent more than once"),
        ..SIGNED
    },
    Case {
        name: "body of exactly the limit, signed",
        body: Body::Sized(LIMIT),
        ..SIGNED
    },
    Case {
        name: "one byte over, with a length",
        body: Body::Sized(LIMIT + 1),
        expected: Expected::Refused(413, "body too large"),
        ..SIGNED
    },
    Case {
        name: "one byte over, in pieces of 16 KiB",
        body: Body::Sized(LIMIT + 1),
        arrival: Arrival::Pieces(16_384),
        expected: Expected::Refused(413, "body too large"),
        ..SIGNED
    },
];
