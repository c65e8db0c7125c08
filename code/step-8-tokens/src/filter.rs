//! The per-request part: one `TokenFilter` for each HTTP request.

use crate::config::FilterConfig;
use crate::early::EarlyRefresh;
use crate::keys::{Keys, LocalCopy};
use crate::property;
use crate::token::{self, Refusal};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, Bytes};
use std::rc::Rc;
use std::time::UNIX_EPOCH;

/// What the plugin decided about one request, kept for the log line.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Verdict {
    Pending,
    Allowed,
    NoToken,
    BadRequest(&'static str),
    Refused(Refusal),
    KeysNotLoaded,
    KeysStale,
    CannotRoute,
    NotConfigured,
}

/// How the token came, or why the request is refused before it is read
/// (RFC 6750, sections 2 and 3.1).
enum Credential {
    Token(Bytes),
    /// No bearer token: 401 with only the realm, as for a first request.
    None,
    /// `invalid_request`: 400.
    Invalid(&'static str),
}

pub struct TokenFilter {
    config: Option<Rc<FilterConfig>>,
    keys: Rc<LocalCopy>,
    early: Rc<EarlyRefresh>,
    verdict: Verdict,
}

impl TokenFilter {
    pub fn new(
        config: Option<Rc<FilterConfig>>,
        keys: Rc<LocalCopy>,
        early: Rc<EarlyRefresh>,
    ) -> Self {
        TokenFilter {
            config,
            keys,
            early,
            verdict: Verdict::Pending,
        }
    }

    // ANCHOR: credential
    /// The bearer token, from the one `Authorization` header or, when the
    /// configuration allows it and there is no header, the `access_token`
    /// query parameter; any other arrangement is refused.
    fn credential(&self, config: &FilterConfig) -> Credential {
        let authorization: Vec<Bytes> = self
            .get_http_request_headers_bytes()
            .into_iter()
            .filter(|(name, _)| name == "authorization")
            .map(|(_, value)| value)
            .collect();
        let path = self
            .get_http_request_header_bytes(":path")
            .unwrap_or_default();
        let in_query = query_token(&path);
        match (authorization.as_slice(), in_query) {
            ([], None) => Credential::None,
            ([_, _, ..], _) => Credential::Invalid("more than one Authorization header"),
            ([_], Some(_)) => Credential::Invalid("a token in the header and in the query"),
            ([], Some(_)) if !config.allow_query_token => {
                Credential::Invalid("a token in the query string is not accepted")
            }
            ([], Some(token)) => Credential::Token(token),
            // Envoy joins the values of a repeated Authorization header
            // with `,`, which no token holds (base64url and `.`).
            ([value], None) if value.contains(&b',') => {
                Credential::Invalid("more than one Authorization header")
            }
            ([value], None) => match bearer_token(value) {
                None => Credential::None,
                Some([]) => Credential::Invalid("an empty bearer token"),
                Some(token) => Credential::Token(token.to_vec()),
            },
        }
    }
    // ANCHOR_END: credential

    /// Answers the client directly with `status`, a `WWW-Authenticate`
    /// header when it is an authentication failure, and a JSON body.
    fn refuse(&self, config: &FilterConfig, status: u32, error: Option<(&str, &str)>) -> Action {
        let realm = format!("Bearer realm=\"{}\"", config.realm);
        let (challenge, body) = match error {
            None => (realm, r#"{"error":"a bearer token is needed"}"#.to_owned()),
            Some((code, description)) => (
                format!("{realm}, error=\"{code}\", error_description=\"{description}\""),
                serde_json::json!({ "error": code, "error_description": description }).to_string(),
            ),
        };
        let mut headers = vec![("content-type", "application/json")];
        if status == 401 || status == 400 {
            headers.push(("www-authenticate", challenge.as_str()));
        }
        self.send_http_response(status, headers, Some(body.as_bytes()));
        Action::Pause
    }

    fn now_ms(&self) -> u64 {
        self.get_current_time()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    /// A property of the request, as text: `None` when Envoy has none (the
    /// SDK's `get_property` panics on a status other than Ok or NotFound).
    fn property(&self, path: &[&str]) -> Option<String> {
        let value = hostcalls::get_property(path.to_vec()).ok().flatten()?;
        Some(String::from_utf8_lossy(&value).into_owned())
    }
}

/// The value of `access_token` in the query of `path`, if there is one.
fn query_token(path: &[u8]) -> Option<Bytes> {
    let query = &path[path.iter().position(|b| *b == b'?')? + 1..];
    query
        .split(|b| *b == b'&')
        .find_map(|pair| pair.strip_prefix(b"access_token="))
        .map(<[u8]>::to_vec)
}

/// The token of an `Authorization: Bearer <token>` value (the scheme is
/// case-insensitive, RFC 7235); `None` for another scheme.
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at(value.iter().position(|b| *b == b' ')?);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| rest.trim_ascii())
}

/// A route value a header may carry: letters, digits, `-` and `_`.
fn routable(value: &str) -> bool {
    (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Context for TokenFilter {}

impl HttpContext for TokenFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(config) = self.config.clone() else {
            self.verdict = Verdict::NotConfigured;
            self.send_http_response(503, vec![], Some(b"auth plugin is not configured"));
            return Action::Pause;
        };
        // ANCHOR: remove_route_header
        // The routes trust this header: a client's own never reaches them.
        if let Some(route) = &config.route {
            self.set_http_request_header(&route.header, None);
        }
        // ANCHOR_END: remove_route_header
        let token = match self.credential(&config) {
            Credential::Token(token) => token,
            Credential::None => {
                self.verdict = Verdict::NoToken;
                return self.refuse(&config, 401, None);
            }
            Credential::Invalid(why) => {
                self.verdict = Verdict::BadRequest(why);
                return self.refuse(&config, 400, Some(("invalid_request", why)));
            }
        };
        // Fail closed: no keys, or keys older than the bound, let nobody in.
        let now_ms = self.now_ms();
        let keys = match self
            .keys
            .current(&config.keyed_digest, now_ms, config.max_key_age_ms)
        {
            Keys::Fresh(keys) => keys,
            Keys::NotLoaded => {
                self.verdict = Verdict::KeysNotLoaded;
                return self.refuse(
                    &config,
                    503,
                    Some(("temporarily_unavailable", "keys not loaded yet")),
                );
            }
            Keys::Stale { age_ms } => {
                self.verdict = Verdict::KeysStale;
                log::warn!("the key set is {} s old: request refused", age_ms / 1000);
                return self.refuse(
                    &config,
                    503,
                    Some(("temporarily_unavailable", "keys are out of date")),
                );
            }
        };
        let accepted = match token::check(&token, &keys.keys, &config, now_ms / 1000) {
            Ok(accepted) => accepted,
            Err(refusal) => {
                if refusal == Refusal::UnknownKey {
                    let vm_id = self.property(&["plugin_vm_id"]).unwrap_or_default();
                    self.early.ask(&vm_id, now_ms);
                }
                self.verdict = Verdict::Refused(refusal);
                return self.refuse(&config, 401, Some(("invalid_token", refusal.description())));
            }
        };
        // ANCHOR: route
        if let Some(route) = &config.route {
            match accepted.route.as_deref() {
                Some(value) if routable(value) => {
                    self.set_http_request_header(&route.header, Some(value));
                    // Envoy chose the route before this filter ran, from
                    // the client's headers: choose again, with this one
                    // (a foreign function of Envoy's; the SDK has no call
                    // for it). Without it, a client's own header would
                    // have chosen the route.
                    if let Err(status) = hostcalls::call_foreign_function("clear_route_cache", None)
                    {
                        log::error!("cannot choose the route again: {status:?}");
                        self.verdict = Verdict::CannotRoute;
                        return self.refuse(
                            &config,
                            503,
                            Some(("temporarily_unavailable", "cannot route")),
                        );
                    }
                }
                _ => {
                    self.verdict = Verdict::Refused(Refusal::BadClaims);
                    let why = Refusal::BadClaims.description();
                    return self.refuse(&config, 401, Some(("invalid_token", why)));
                }
            }
        }
        // ANCHOR_END: route
        // ANCHOR: set_property
        // For Envoy's access log: filter state `wasm.token_subject` and
        // `wasm.token_route` (`%FILTER_STATE(wasm.token_subject:PLAIN)%`).
        let subject = property::set("token_subject", accepted.subject.as_bytes());
        let route = accepted.route.as_ref().map_or(Ok(()), |route| {
            property::set("token_route", route.as_bytes())
        });
        if let Err(status) = subject.and(route) {
            log::warn!("the access log will miss the token's claims: {status:?}");
        }
        // ANCHOR_END: set_property
        self.verdict = Verdict::Allowed;
        Action::Continue
    }

    // ANCHOR: on_log
    fn on_log(&mut self) {
        let request = self.property(&["request", "id"]).unwrap_or_default();
        let source = self.property(&["source", "address"]).unwrap_or_default();
        let route = self.property(&["xds", "route_name"]).unwrap_or_default();
        log::info!(
            "request {request} from {source}, route `{route}`: verdict {:?}",
            self.verdict
        );
    }
    // ANCHOR_END: on_log
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bearer_scheme_gives_a_token() {
        assert_eq!(
            bearer_token(b"Bearer abc.def.ghi"),
            Some(&b"abc.def.ghi"[..])
        );
        assert_eq!(bearer_token(b"bearer  abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"Bearer "), Some(&b""[..]));
        assert_eq!(bearer_token(b"Basic dXNlcjpwYXNz"), None);
        assert_eq!(bearer_token(b"Bearer"), None);
    }

    #[test]
    fn the_query_token_is_found_wherever_it_is() {
        assert_eq!(query_token(b"/api?access_token=t"), Some(b"t".to_vec()));
        assert_eq!(
            query_token(b"/api?a=1&access_token=t&b=2"),
            Some(b"t".to_vec())
        );
        assert_eq!(query_token(b"/api?xaccess_token=t"), None);
        assert_eq!(query_token(b"/api"), None);
    }

    #[test]
    fn a_route_value_is_plain() {
        assert!(routable("tenant-a"));
        for value in ["", "a b", "a\r\nx-admin: 1", "ä", &"a".repeat(65)] {
            assert!(!routable(value), "{value:?}");
        }
    }
}
