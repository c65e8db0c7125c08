//! The naive variants of the steps that the Hardening chapter shows: each is
//! a step's own sources (or configuration) with a few exact replacements,
//! and tests/tests/hardening.rs proves each one fails where the step passes.
//! The book includes these definitions, so they live here, apart from the
//! harness code that applies them (tests/src/variants.rs).

/// Replace `from` by `to` in `file` (relative to the step folder); `from`
/// must occur exactly once, so a change to the step that a variant no
/// longer fits fails loudly.
pub struct Patch {
    pub file: &'static str,
    pub from: &'static str,
    pub to: &'static str,
}

/// Step 1 reading the key with the SDK's `String` getter, which panics on a
/// value that is not UTF-8.
// ANCHOR: naive_non_utf8
pub const READ_HEADER_AS_STRING: Patch = Patch {
    file: "src/filter.rs",
    from: "let values = self.header_values(&config.header_name);",
    to: "let values: Vec<Bytes> = self
            .get_http_request_header(&config.header_name)
            .into_iter()
            .map(String::into_bytes)
            .collect();",
};
// ANCHOR_END: naive_non_utf8

/// Step 1 logging the key it refused.
// ANCHOR: naive_logging
pub const LOG_THE_KEY: Patch = Patch {
    file: "src/filter.rs",
    from: r#"log::warn!("request with an unknown API key");"#,
    to: r#"log::warn!("request with an unknown API key: {}",
                    String::from_utf8_lossy(values.concat().as_slice()));"#,
};
// ANCHOR_END: naive_logging

// ANCHOR: naive_public_route
/// Step 1's config without the route rule that drops a forged status
/// header on the route where the plugin does not run.
pub const PUBLIC_ROUTE_WITHOUT_RULE: (&str, &str) =
    ("request_headers_to_remove: [\"x-auth-status\"]", "");
// ANCHOR_END: naive_public_route

/// Step 1 made to copy its key set into every request, as the tutorial this
/// book started from did.
// ANCHOR: naive_copy
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
// ANCHOR_END: naive_copy

// ANCHOR: naive_per_vm_counter
/// Replaces the host's shared data with a map in the VM's own memory: what
/// a counter in a Rust variable amounts to.
pub const COUNT_PER_VM: Patch = Patch {
    file: "src/limiter.rs",
    from: "use proxy_wasm::hostcalls;",
    to: "mod hostcalls {
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
// ANCHOR_END: naive_per_vm_counter

/// Step 3 building the auth request's JSON with `format!`.
// ANCHOR: naive_format_json
pub const JSON_WITH_FORMAT: Patch = Patch {
    file: "src/filter.rs",
    from: r#"serde_json::json!({ "key": key }).to_string().into_bytes()"#,
    to: r##"format!(r#"{{"key": "{}"}}"#, key).into_bytes()"##,
};
// ANCHOR_END: naive_format_json

/// Step 3 letting a request through when the auth call failed.
// ANCHOR: naive_resume
pub const RESUME_ON_FAILURE: Patch = Patch {
    file: "src/filter.rs",
    from: r#"log::error!("auth service unusable: {reason}; request refused");"#,
    to: r#"log::error!("auth service unusable: {reason}; letting it through");
                self.resume_http_request();
                return;"#,
};
// ANCHOR_END: naive_resume

/// Step 4 passing each piece of the body on as soon as it has hashed it,
/// and deciding at the end: by then the upstream has most of a body that
/// may be forged.
// ANCHOR: naive_pass_body_on
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
// ANCHOR_END: naive_pass_body_on

/// Step 4 without `on_http_request_trailers`: the SDK's default answer,
/// `Continue`, sends a body followed by trailers on unverified.
// ANCHOR: naive_no_trailers
pub const NO_TRAILERS_CALLBACK: Patch = Patch {
    file: "src/filter.rs",
    from: "fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {",
    to: "fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        #[allow(unreachable_code)]
        return Action::Continue; // what the SDK does when this method is left out",
};
// ANCHOR_END: naive_no_trailers

/// Step 4's body-rewriting example keeping the client's `content-length`.
// ANCHOR: naive_keep_content_length
pub const KEEP_CONTENT_LENGTH: Patch = Patch {
    file: "examples/redact-body.rs",
    from: "self.set_http_request_header(\"content-length\", None);",
    to: "// (content-length left as the client sent it)",
};
// ANCHOR_END: naive_keep_content_length

/// Step 4 pausing in `on_http_request_headers` to hold the request until
/// the body is verified: Envoy then holds the body back from the plugin
/// too, and the request waits for a body callback that never comes.
// ANCHOR: naive_pause_headers
pub const PAUSE_AT_HEADERS: Patch = Patch {
    file: "src/filter.rs",
    from: "// so the request would wait forever.
                    Action::Continue",
    to: "// so the request would wait forever.
                    Action::Pause",
};
// ANCHOR_END: naive_pause_headers
