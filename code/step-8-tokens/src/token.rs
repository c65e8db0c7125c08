//! Checking one token: its size, its header, the key its `kid` names, the
//! signature with that key's one algorithm, then its claims against the
//! configuration and the proxy's clock.

use crate::config::FilterConfig;
use crate::jwks::KeySet;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, decode_header, Validation};
use serde::Deserialize;

/// Why a token was not accepted. Each reason is a fixed text, never a
/// piece of the token.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Refusal {
    TooLong,
    Malformed,
    /// `alg` is not one the configuration allows (`none`, `HS256`, ...).
    AlgorithmNotAllowed,
    NoKeyId,
    /// The key set has no key of this `kid` (yet: the plugin asks for an
    /// early refresh).
    UnknownKey,
    /// The key is bound to another algorithm than the token's `alg`.
    KeyMismatch,
    BadSignature,
    Expired,
    NotYetValid,
    WrongIssuer,
    WrongAudience,
    /// A claim the plugin needs is missing or not of its type.
    BadClaims,
}

impl Refusal {
    /// The `error_description` of the `WWW-Authenticate` answer.
    pub fn description(self) -> &'static str {
        match self {
            Refusal::TooLong => "the token is too long",
            Refusal::Malformed => "the token is not a JWT",
            Refusal::AlgorithmNotAllowed => "the token's algorithm is not accepted",
            Refusal::NoKeyId => "the token names no key",
            Refusal::UnknownKey => "the token names an unknown key",
            Refusal::KeyMismatch => "the token's algorithm is not its key's",
            Refusal::BadSignature => "the token's signature is not valid",
            Refusal::Expired => "the token has expired",
            Refusal::NotYetValid => "the token is not valid yet",
            Refusal::WrongIssuer => "the token's issuer is not accepted",
            Refusal::WrongAudience => "the token is not for this audience",
            Refusal::BadClaims => "the token's claims are not valid",
        }
    }
}

/// The claims this plugin reads; `tenant` is the configured route claim's
/// value, if any.
#[derive(Debug, PartialEq)]
pub struct Accepted {
    pub subject: String,
    pub route: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    nbf: Option<u64>,
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

// ANCHOR: check
/// Checks `token` against `keys`, at `now` (Unix seconds, the proxy's
/// clock).
pub fn check(
    token: &[u8],
    keys: &KeySet,
    config: &FilterConfig,
    now: u64,
) -> Result<Accepted, Refusal> {
    if token.len() > config.max_token_bytes {
        return Err(Refusal::TooLong);
    }
    let header = decode_header(token).map_err(|e| match e.kind() {
        ErrorKind::Json(_) => Refusal::AlgorithmNotAllowed,
        _ => Refusal::Malformed,
    })?;
    if !config.algorithms.contains(&header.alg) {
        return Err(Refusal::AlgorithmNotAllowed);
    }
    let kid = header.kid.ok_or(Refusal::NoKeyId)?;
    let key = keys.get(&kid).ok_or(Refusal::UnknownKey)?;
    if key.algorithm != header.alg {
        return Err(Refusal::KeyMismatch);
    }
    // The signature, issuer and audience by the library; the times below,
    // by the proxy's clock rather than the module's.
    let mut validation = Validation::new(key.algorithm);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    // Without these two named, a token with no `iss` or no `aud` at all
    // would pass the checks of their values.
    validation.set_required_spec_claims(&["iss", "aud"]);
    validation.set_issuer(&[&config.issuer]);
    validation.set_audience(&config.audiences);
    let claims = decode::<Claims>(token, &key.key, &validation)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => Refusal::BadSignature,
            ErrorKind::InvalidIssuer => Refusal::WrongIssuer,
            ErrorKind::InvalidAudience => Refusal::WrongAudience,
            ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => Refusal::WrongIssuer,
            ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => Refusal::WrongAudience,
            ErrorKind::Json(_) | ErrorKind::InvalidClaimFormat(_) => Refusal::BadClaims,
            _ => Refusal::Malformed,
        })?
        .claims;
    let skew = config.clock_skew_seconds;
    if claims.exp.saturating_add(skew) < now {
        return Err(Refusal::Expired);
    }
    if claims.nbf.is_some_and(|nbf| nbf > now.saturating_add(skew)) {
        return Err(Refusal::NotYetValid);
    }
    let route = match &config.route {
        None => None,
        Some(route) => match claims.other.get(&route.claim) {
            Some(serde_json::Value::String(value)) => Some(value.clone()),
            _ => return Err(Refusal::BadClaims),
        },
    };
    Ok(Accepted {
        subject: claims.sub,
        route,
    })
}
// ANCHOR_END: check
