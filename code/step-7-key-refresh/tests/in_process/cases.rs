//! The plugin's cases as data: each request and what it must get. The
//! in-process tests send them to the module in a host library; through
//! Envoy, the same cases get the same answers. (What only Envoy decides,
//! such as the route without the plugin or header names it refuses, is
//! for `check.sh`.)

/// What a request must get.
#[derive(Debug, PartialEq)]
pub enum Expected {
    /// The plugin answers itself, with this status and a body containing
    /// this text.
    Refused(u32, &'static str),
    /// The request goes on to the backend, which sees `x-auth-status: valid`
    /// (once).
    Passed,
}

pub struct Case {
    pub name: &'static str,
    pub headers: &'static [(&'static str, &'static [u8])],
    pub expected: Expected,
}

pub const CASES: &[Case] = &[
    Case {
        name: "no key",
        headers: &[],
        expected: Expected::Refused(401, "missing API key"),
    },
    Case {
        name: "empty key",
        headers: &[("x-api-key", b"")],
        expected: Expected::Refused(401, "missing API key"),
    },
    Case {
        name: "unknown key",
        headers: &[("x-api-key", b"invalid")],
        expected: Expected::Refused(403, "invalid API key"),
    },
    Case {
        name: "valid key",
        headers: &[("x-api-key", b"key-abc123")],
        expected: Expected::Passed,
    },
    Case {
        name: "forged x-auth-status, sent twice, is replaced",
        headers: &[
            ("x-api-key", b"key-def456"),
            ("x-auth-status", b"one"),
            ("x-auth-status", b"two"),
        ],
        expected: Expected::Passed,
    },
    Case {
        name: "key sent twice",
        headers: &[("x-api-key", b"key-abc123"), ("x-api-key", b"attacker")],
        expected: Expected::Refused(400, "API key sent more than once"),
    },
    Case {
        name: "key sent twice, the valid one last",
        headers: &[("x-api-key", b"attacker"), ("x-api-key", b"key-abc123")],
        expected: Expected::Refused(400, "API key sent more than once"),
    },
    Case {
        name: "key that is not UTF-8",
        headers: &[("x-api-key", b"\xff\xfe")],
        expected: Expected::Refused(403, "invalid API key"),
    },
    Case {
        name: "a valid key still works afterwards",
        headers: &[("x-api-key", b"key-ghi789")],
        expected: Expected::Passed,
    },
];
