//! The plugin's cases as data: each request, how its token is made, and
//! what it must get. `check.sh` sends most of them through Envoy, with
//! tokens minted by `mint.sh`. (What only Envoy decides, such as the route
//! a header chooses, is for `check.sh` and the book's harness.)

/// What a request must get.
#[derive(Debug, PartialEq)]
pub enum Expected {
    /// The plugin answers itself, with this status, and this text in its
    /// `WWW-Authenticate` header or its body.
    Refused(u32, &'static str),
    /// The request goes on, to the route of this tenant: `x-tenant` holds
    /// it (once), set before the route is chosen again.
    Passed(&'static str),
}

/// A claim of the token, changed from the good token's.
#[derive(Clone, Copy, Debug)]
pub enum Claim {
    Text(&'static str),
    /// A time, this many seconds from now.
    FromNow(i64),
    Number(i64),
    Audiences(&'static [&'static str]),
    Absent,
}

/// How the token is made. The good token: RS256 with the RSA key
/// (`kid` `rsa-1`), `sub` ada, the configured issuer and audience, `exp`
/// five minutes from now, `tenant` a.
#[derive(Clone, Copy, Debug)]
pub enum Token {
    /// Signed with `alg` (`RS256` or `ES256`, by the key of that type)
    /// and naming `kid`, with these claims changed.
    Signed {
        alg: &'static str,
        kid: Option<&'static str>,
        claims: &'static [(&'static str, Claim)],
    },
    /// `alg: none`, no signature.
    Unsigned,
    /// HS256, keyed with the RSA public key's PEM text: a verifier that
    /// lets the token choose the algorithm would accept it.
    HmacWithThePublicKey,
    /// The good token with one bit of its signature changed.
    BitFlipped,
    /// The good token with a claim long enough to pass the size bound.
    Oversized,
    /// Not a JWT at all.
    Garbage(&'static str),
}

/// How the request carries its token.
#[derive(Clone, Copy, Debug)]
pub enum Carried {
    Bearer(Token),
    /// `bearer` in lower case: the scheme is case-insensitive.
    LowerCaseBearer(Token),
    /// Two Authorization headers.
    Twice(Token),
    /// Two values in one header, joined by `,`, as Envoy joins a repeated
    /// Authorization header.
    Joined(Token),
    /// `?access_token=` in the path.
    Query(Token),
    /// This Authorization value, as it is.
    Header(&'static str),
    /// No credential at all.
    Nothing,
}

pub struct Case {
    pub name: &'static str,
    pub carried: Carried,
    /// More request headers.
    pub headers: &'static [(&'static str, &'static [u8])],
    pub expected: Expected,
}

pub const GOOD: Token = Token::Signed {
    alg: "RS256",
    kid: Some("rsa-1"),
    claims: &[],
};

const fn rs256(claims: &'static [(&'static str, Claim)]) -> Token {
    Token::Signed {
        alg: "RS256",
        kid: Some("rsa-1"),
        claims,
    }
}

const fn case(name: &'static str, carried: Carried, expected: Expected) -> Case {
    Case {
        name,
        carried,
        headers: &[],
        expected,
    }
}

const INVALID_TOKEN: &str = "error=\"invalid_token\"";

pub const CASES: &[Case] = &[
    case(
        "RS256 token, tenant a",
        Carried::Bearer(GOOD),
        Expected::Passed("a"),
    ),
    case(
        "ES256 token, tenant b",
        Carried::Bearer(Token::Signed {
            alg: "ES256",
            kid: Some("ec-1"),
            claims: &[("tenant", Claim::Text("b"))],
        }),
        Expected::Passed("b"),
    ),
    case(
        "audience in a list",
        Carried::Bearer(rs256(&[("aud", Claim::Audiences(&["other", "api"]))])),
        Expected::Passed("a"),
    ),
    case(
        "scheme in lower case",
        Carried::LowerCaseBearer(GOOD),
        Expected::Passed("a"),
    ),
    Case {
        name: "forged x-tenant is replaced",
        carried: Carried::Bearer(GOOD),
        headers: &[("x-tenant", b"b")],
        expected: Expected::Passed("a"),
    },
    case(
        "no token",
        Carried::Nothing,
        Expected::Refused(401, "Bearer realm=\"api\""),
    ),
    case(
        "Basic credentials",
        Carried::Header("Basic YWRhOnB3"),
        Expected::Refused(401, "Bearer realm=\"api\""),
    ),
    case(
        "empty bearer token",
        Carried::Header("Bearer "),
        Expected::Refused(400, "an empty bearer token"),
    ),
    case(
        "two Authorization headers",
        Carried::Twice(GOOD),
        Expected::Refused(400, "more than one Authorization header"),
    ),
    case(
        "two tokens joined in one header",
        Carried::Joined(GOOD),
        Expected::Refused(400, "more than one Authorization header"),
    ),
    case(
        "token in the query string",
        Carried::Query(GOOD),
        Expected::Refused(400, "a token in the query string is not accepted"),
    ),
    case(
        "not a JWT",
        Carried::Bearer(Token::Garbage("abc")),
        Expected::Refused(401, "the token is not a JWT"),
    ),
    case(
        "alg none",
        Carried::Bearer(Token::Unsigned),
        Expected::Refused(401, "the token's algorithm is not accepted"),
    ),
    case(
        "HS256 keyed with the RSA public key",
        Carried::Bearer(Token::HmacWithThePublicKey),
        Expected::Refused(401, "the token's algorithm is not accepted"),
    ),
    case(
        "unknown kid",
        Carried::Bearer(Token::Signed {
            alg: "RS256",
            kid: Some("rsa-9"),
            claims: &[],
        }),
        Expected::Refused(401, "the token names an unknown key"),
    ),
    case(
        "no kid",
        Carried::Bearer(Token::Signed {
            alg: "RS256",
            kid: None,
            claims: &[],
        }),
        Expected::Refused(401, "the token names no key"),
    ),
    case(
        "ES256 token naming the RSA key",
        Carried::Bearer(Token::Signed {
            alg: "ES256",
            kid: Some("rsa-1"),
            claims: &[],
        }),
        Expected::Refused(401, "the token's algorithm is not its key's"),
    ),
    case(
        "signature with a bit changed",
        Carried::Bearer(Token::BitFlipped),
        Expected::Refused(401, "the token's signature is not valid"),
    ),
    case(
        "oversized token",
        Carried::Bearer(Token::Oversized),
        Expected::Refused(401, "the token is too long"),
    ),
    case(
        "expired",
        Carried::Bearer(rs256(&[("exp", Claim::FromNow(-60))])),
        Expected::Refused(401, "the token has expired"),
    ),
    case(
        "expired, within the clock skew",
        Carried::Bearer(rs256(&[("exp", Claim::FromNow(-10))])),
        Expected::Passed("a"),
    ),
    case(
        "not yet valid",
        Carried::Bearer(rs256(&[("nbf", Claim::FromNow(120))])),
        Expected::Refused(401, "the token is not valid yet"),
    ),
    case(
        "not yet valid, within the clock skew",
        Carried::Bearer(rs256(&[("nbf", Claim::FromNow(10))])),
        Expected::Passed("a"),
    ),
    case(
        "wrong audience",
        Carried::Bearer(rs256(&[("aud", Claim::Text("other"))])),
        Expected::Refused(401, "the token is not for this audience"),
    ),
    case(
        "no audience",
        Carried::Bearer(rs256(&[("aud", Claim::Absent)])),
        Expected::Refused(401, "the token is not for this audience"),
    ),
    case(
        "wrong issuer",
        Carried::Bearer(rs256(&[("iss", Claim::Text("https://evil.example"))])),
        Expected::Refused(401, "the token's issuer is not accepted"),
    ),
    case(
        "no issuer",
        Carried::Bearer(rs256(&[("iss", Claim::Absent)])),
        Expected::Refused(401, "the token's issuer is not accepted"),
    ),
    case(
        "no expiry",
        Carried::Bearer(rs256(&[("exp", Claim::Absent)])),
        Expected::Refused(401, INVALID_TOKEN),
    ),
    case(
        "expiry as text",
        Carried::Bearer(rs256(&[("exp", Claim::Text("tomorrow"))])),
        Expected::Refused(401, INVALID_TOKEN),
    ),
    case(
        "no subject",
        Carried::Bearer(rs256(&[("sub", Claim::Absent)])),
        Expected::Refused(401, "the token's claims are not valid"),
    ),
    case(
        "no tenant",
        Carried::Bearer(rs256(&[("tenant", Claim::Absent)])),
        Expected::Refused(401, "the token's claims are not valid"),
    ),
    case(
        "tenant that is not a header value",
        Carried::Bearer(rs256(&[("tenant", Claim::Text("a\r\nx-admin: 1"))])),
        Expected::Refused(401, "the token's claims are not valid"),
    ),
    case(
        "tenant as a number",
        Carried::Bearer(rs256(&[("tenant", Claim::Number(7))])),
        Expected::Refused(401, "the token's claims are not valid"),
    ),
];
