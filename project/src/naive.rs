//! The variants of the steps: each is a step's own sources (or
//! configuration) with a few exact replacements, built by the harness
//! (tests/src/variants.rs). The naive ones fail where the step passes
//! (tests/tests/hardening.rs and others), and the book shows each as the
//! diff from the variant to the step (`listings.rs` writes them), in the
//! Pitfalls chapter; the benchmark's (at the end) measure what a part of
//! part one's step costs, and cheaper candidates.

/// Replace `from` by `to` in `file` (relative to the step folder); `from`
/// must occur exactly once, so a change to the step that a variant no
/// longer fits fails loudly.
#[derive(Clone, Copy)]
pub struct Patch {
    pub file: &'static str,
    pub from: &'static str,
    pub to: &'static str,
}

/// Step 1 reading the key with the SDK's `String` getter, which panics on a
/// value that is not UTF-8.
pub const READ_HEADER_AS_STRING: Patch = Patch {
    file: "src/filter.rs",
    from: "let values = self.header_values(&config.header_name);",
    to: "let values: Vec<Bytes> = self
            .get_http_request_header(&config.header_name)
            .into_iter()
            .map(String::into_bytes)
            .collect();",
};

/// Step 1 logging the key it refused.
pub const LOG_THE_KEY: Patch = Patch {
    file: "src/filter.rs",
    from: r#"log::warn!("request with an unknown API key");"#,
    to: r#"log::warn!("request with an unknown API key: {}",
                    String::from_utf8_lossy(values.concat().as_slice()));"#,
};

/// Step 1's config without the route rule that drops a forged status
/// header on the route where the plugin does not run.
pub const PUBLIC_ROUTE_WITHOUT_RULE: Patch = Patch {
    file: "envoy.yaml",
    from: "                # The plugin does not run here, so it cannot strip a forged
                # status header: the route does it instead.
                request_headers_to_remove: [\"x-auth-status\"]
",
    to: "",
};

/// Step 1 made to copy its key set into every request.
pub const COPY_KEYS_PER_REQUEST: [Patch; 2] = [
    Patch {
        file: "src/config.rs",
        from: "#[derive(Debug)]\npub struct AuthConfig",
        to: "#[derive(Clone, Debug)]\npub struct AuthConfig",
    },
    Patch {
        file: "src/lib.rs",
        from: "AuthFilter::new(self.config.clone())",
        to: "AuthFilter::new(self.config.as_deref().cloned().map(Rc::new))",
    },
];

/// Replaces the host's shared data with a map in the VM's own memory: what
/// a counter in a Rust variable amounts to.
pub const COUNT_PER_VM: Patch = Patch {
    file: "src/limiter.rs",
    from: "use proxy_wasm::hostcalls;",
    to: "// The counts live in this VM's memory: each worker counts on its own.
mod hostcalls {
    use proxy_wasm::types::{Bytes, Status};
    use std::cell::RefCell;
    use std::collections::HashMap;
    pub use proxy_wasm::hostcalls::get_current_time;

    thread_local! {
        static COUNTS: RefCell<HashMap<String, Bytes>> = RefCell::new(HashMap::new());
    }

    pub fn get_shared_data(key: &str) -> Result<(Option<Bytes>, Option<u32>), Status> {
        Ok((COUNTS.with(|c| c.borrow().get(key).cloned()), None))
    }

    pub fn set_shared_data(key: &str, value: Option<&[u8]>, _: Option<u32>) -> Result<(), Status> {
        let value = value.unwrap_or_default().to_vec();
        COUNTS.with(|c| c.borrow_mut().insert(key.to_owned(), value));
        Ok(())
    }
}",
};

/// Step 3 building the auth request's JSON with `format!`.
pub const JSON_WITH_FORMAT: Patch = Patch {
    file: "src/filter.rs",
    from: r#"serde_json::json!({ "key": key }).to_string().into_bytes()"#,
    to: r##"format!(r#"{{"key": "{}"}}"#, key).into_bytes()"##,
};

/// Step 3 letting a request through when the auth call failed.
pub const RESUME_ON_FAILURE: Patch = Patch {
    file: "src/filter.rs",
    from: r#"log::error!("auth service unusable: {reason}; request refused");"#,
    to: r#"log::error!("auth service unusable: {reason}; letting it through");
                self.resume_http_request();
                return;"#,
};

/// Step 4 passing each piece of the body on as soon as it has hashed it,
/// and deciding at the end: by then the upstream has most of a body that
/// may be forged.
pub const PASS_BODY_ON_WHILE_HASHING: Patch = Patch {
    file: "src/filter.rs",
    from: "        if end_of_stream {
            self.finish()
        } else {
            Action::Pause
        }",
    to: "        if end_of_stream {
            self.finish()
        } else {
            Action::Continue
        }",
};

/// Step 4 without `on_http_request_trailers`: the SDK's default answer,
/// `Continue`, sends a body followed by trailers on unverified.
pub const NO_TRAILERS_CALLBACK: Patch = Patch {
    file: "src/filter.rs",
    from: "    /// A body followed by trailers ends here, not with `end_of_stream` in
    /// `on_http_request_body`. Without this callback the request would go
    /// on unverified: the default answer is `Continue`.
    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.check.is_some() {
            self.finish()
        } else {
            match self.verdict {
                Verdict::Verified => Action::Continue,
                _ => Action::Pause,
            }
        }
    }
",
    to: "",
};

/// Step 4's body-rewriting example keeping the client's `content-length`.
pub const KEEP_CONTENT_LENGTH: Patch = Patch {
    file: "examples/redact-body.rs",
    from: "        if !end_of_stream {
            // The body this plugin passes on may be shorter than the one
            // the client announced. Removing `content-length` now, while
            // the headers can still change, makes Envoy send the body with
            // `transfer-encoding: chunked` (HTTP/1.1) or plain DATA frames
            // (HTTP/2), whose length is whatever the body turns out to be.
            self.set_http_request_header(\"content-length\", None);
        }
",
    to: "",
};

/// Step 3's one-call-per-key example doing nothing when the request that
/// made a call leaves: Envoy cancels that call, no answer comes, and the
/// key stays "in flight" for good, so every later request for it waits.
pub const FORGET_THE_WAITING: Patch = Patch {
    file: "examples/one-call-per-key.rs",
    from: "        if let Some((_, key)) = self.asking.take() {
            let waiting = self.in_flight.borrow_mut().finish(&key);
            if !waiting.is_empty() {
                log::warn!(
                    \"the request asking left: {} waiting requests refused\",
                    waiting.len()
                );
            }
            decide_for(&waiting, Decision::Unavailable);
        }
",
    to: "",
};

/// Step 4 letting the request's headers go on at once, as plugins had to
/// before Envoy 1.35: the router opens the upstream request with the
/// headers of a request whose body is still unverified.
pub const LET_REQUEST_HEADERS_GO: Patch = Patch {
    file: "src/filter.rs",
    from: "// plugin as well, and the request waits forever.
                    Action::Pause",
    to: "// plugin as well, and the request waits forever.
                    Action::Continue",
};

/// Step 4's configuration without `allow_on_headers_stop_iteration`: its
/// `Pause` at the headers becomes "stop all iteration", Envoy holds the
/// body back from the plugin too, and the request waits for a body
/// callback that never comes.
pub const NO_STOP_ITERATION_ALLOWED: Patch = Patch {
    file: "envoy.yaml",
    from: "                allow_on_headers_stop_iteration: true\n",
    to: "",
};

/// Step 3 reading the answer's `:status` even when the call came back
/// without headers (its stream was reset): the SDK panics on the
/// `BadArgument` Envoy answers.
pub const READ_STATUS_WITHOUT_HEADERS: Patch = Patch {
    file: "src/filter.rs",
    from: "        if num_headers == 0 {
            return AuthAnswer::Unavailable(\"the call was reset: no response headers\".into());
        }
",
    to: "",
};

/// Step 3's cache believing any entry in the key's slot, with any expiry:
/// another plugin with the same `vm_id` can then write a yes for a key of
/// its choosing, or turn a cached no into a yes.
pub const UNTAGGED_CACHE_ENTRY: [Patch; 2] = [
    Patch {
        file: "src/cache.rs",
        from: "    // A constant-time comparison: how long a wrong tag takes says nothing.
    slot.tag(entry[0], expires_ms)
        .verify_slice(&entry[9..])
        .ok()?;
",
        to: "",
    },
    Patch {
        file: "src/cache.rs",
        from: "    let fresh = now_ms < expires_ms && expires_ms <= now_ms.saturating_add(longest_ms(answer));",
        to: "    let fresh = now_ms < expires_ms;",
    },
];

/// Step 5 reading the gRPC status message for its log line: the SDK's
/// `get_grpc_status` unwraps it as UTF-8.
pub const READ_GRPC_MESSAGE: Patch = Patch {
    file: "src/filter.rs",
    from: "            let reason = format!(
                \"gRPC status {status_code} ({})\",
                grpc_code_name(status_code)
            );",
    to: "            let (_, message) = self.get_grpc_status();
            let reason = format!(\"gRPC status {status_code}: {}\", message.unwrap_or_default());",
};

/// Step 6 letting a JSON response's headers go at once (the length
/// removed, since the body will change) and deciding at the end of the
/// body: too late to answer anything but what the headers said.
pub const LET_RESPONSE_HEADERS_GO: Patch = Patch {
    file: "src/filter.rs",
    from: "        self.holding = true;
        Action::Pause",
    to: "        self.holding = true;
        self.set_http_response_header(\"content-length\", None);
        Action::Continue",
};

/// ... and so not setting the new length at the end either (the headers
/// are gone: Envoy refuses the change, and the SDK panics on that).
pub const NO_LENGTH_AFTER_THE_HEADERS: Patch = Patch {
    file: "src/filter.rs",
    from: "                // The headers are still held, so they can say the new length.
                let length = rewritten.len().to_string();
                self.set_http_response_header(\"content-length\", Some(&length));
",
    to: "",
};

/// Step 6 without its response-trailers callback: the SDK's default,
/// `Continue`, sends a held body on unredacted when trailers follow it.
pub const NO_RESPONSE_TRAILERS_CALLBACK: Patch = Patch {
    file: "src/filter.rs",
    from: "    /// A body followed by trailers ends here, not with `end_of_stream` in
    /// `on_http_response_body`.
    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.holding {
            self.finish()
        } else {
            Action::Continue
        }
    }
",
    to: "",
};

/// Step 8 setting the tenant header without asking Envoy to choose the
/// route again (`clear_route_cache`): not a pitfall on Envoy 1.40, which
/// chooses again by itself for a module of ABI 0.2.1, as the harness shows.
pub const WITHOUT_CLEAR_ROUTE_CACHE: Patch = Patch {
    file: "src/filter.rs",
    from: r#"hostcalls::call_foreign_function("clear_route_cache", None)"#,
    to: "Ok::<Option<Bytes>, proxy_wasm::types::Status>(None)",
};

/// Each pitfall the book shows: its name (the diff's file name), the step,
/// and the variant's replacements.
pub const PITFALLS: [(&str, &str, &[Patch]); 19] = [
    (
        "read-header-as-string",
        "step-1-auth",
        &[READ_HEADER_AS_STRING],
    ),
    ("log-the-key", "step-1-auth", &[LOG_THE_KEY]),
    (
        "public-route-without-rule",
        "step-1-auth",
        &[PUBLIC_ROUTE_WITHOUT_RULE],
    ),
    (
        "copy-keys-per-request",
        "step-1-auth",
        &COPY_KEYS_PER_REQUEST,
    ),
    ("count-per-vm", "step-2-rate-limit", &[COUNT_PER_VM]),
    ("json-with-format", "step-3-http-call", &[JSON_WITH_FORMAT]),
    (
        "resume-on-failure",
        "step-3-http-call",
        &[RESUME_ON_FAILURE],
    ),
    (
        "read-status-without-headers",
        "step-3-http-call",
        &[READ_STATUS_WITHOUT_HEADERS],
    ),
    (
        "pass-body-on-while-hashing",
        "step-4-signed-body",
        &[PASS_BODY_ON_WHILE_HASHING],
    ),
    (
        "no-trailers-callback",
        "step-4-signed-body",
        &[NO_TRAILERS_CALLBACK],
    ),
    (
        "keep-content-length",
        "step-4-signed-body",
        &[KEEP_CONTENT_LENGTH],
    ),
    (
        "let-request-headers-go",
        "step-4-signed-body",
        &[LET_REQUEST_HEADERS_GO],
    ),
    (
        "pause-without-allow",
        "step-4-signed-body",
        &[NO_STOP_ITERATION_ALLOWED],
    ),
    (
        "forget-the-waiting",
        "step-3-http-call",
        &[FORGET_THE_WAITING],
    ),
    (
        "untagged-cache-entry",
        "step-3-http-call",
        &UNTAGGED_CACHE_ENTRY,
    ),
    (
        "grpc-status-message",
        "step-5-global-rate-limit",
        &[READ_GRPC_MESSAGE],
    ),
    (
        "decide-after-the-headers",
        "step-6-response-guard",
        &[LET_RESPONSE_HEADERS_GO, NO_LENGTH_AFTER_THE_HEADERS],
    ),
    (
        "header-after-the-headers",
        "step-6-response-guard",
        &[LET_RESPONSE_HEADERS_GO],
    ),
    (
        "no-response-trailers-callback",
        "step-6-response-guard",
        &[NO_RESPONSE_TRAILERS_CALLBACK],
    ),
];

/// Part one's step without its `on_log` line, which Envoy at `warn` drops
/// after the plugin has formatted and sent it.
pub const NO_REQUEST_LOG: Patch = Patch {
    file: "src/filter.rs",
    from: r#"log::info!("request completed, verdict {:?}", self.verdict);"#,
    to: "",
};

/// Part one's step returning right after the key check when it allows:
/// what reading the request's headers and deciding costs, without setting
/// `x-auth-status` (with `NO_REQUEST_LOG`, without logging).
pub const STOP_AFTER_KEY_CHECK: Patch = Patch {
    file: "src/filter.rs",
    from: "        self.verdict = check_key(&config, &values);\n",
    to: "        self.verdict = check_key(&config, &values);\n        if self.verdict == Verdict::Allowed {\n            return Action::Continue;\n        }\n",
};

/// Part one's step's read of every request header
/// (`get_http_request_headers_bytes` and the filter over them), for the
/// candidates below to replace.
const READ_EVERY_HEADER: &str = "        self.get_http_request_headers_bytes()
            .into_iter()
            .filter(|(header, _)| header == name)
            .map(|(_, value)| value)
            .collect()";

/// Candidate: the `request.headers` attribute, which Envoy answers with
/// every value of the header joined by `,` (a key never holds one, so a
/// comma means the header came more than once).
pub const READ_THE_ATTRIBUTE: Patch = Patch {
    file: "src/filter.rs",
    from: READ_EVERY_HEADER,
    to: "        match self.get_property(vec![\"request\", \"headers\", name]) {
            Some(value) if value.contains(&b',') => vec![Vec::new(), value],
            Some(value) => vec![value],
            None => Vec::new(),
        }",
};

/// Reference, not a candidate: the single-header read, which returns only
/// the first value and so cannot see a repeated key.
pub const READ_THE_FIRST_VALUE: Patch = Patch {
    file: "src/filter.rs",
    from: READ_EVERY_HEADER,
    to: "        self.get_http_request_header_bytes(name).into_iter().collect()",
};

/// Part one's step doing nothing (with `NO_REQUEST_LOG`): every request is
/// let through at once. What it costs is the price of any Wasm plugin.
pub const DO_NOTHING: Patch = Patch {
    file: "src/filter.rs",
    from: "fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {",
    to: "fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {\n        if true {\n            return Action::Continue;\n        }",
};
