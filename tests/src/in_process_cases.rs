//! The cases the steps' in-process tests send to the module in a host
//! library (`code/<step>/tests/in_process/cases.rs`), sent through Envoy:
//! the same data, the same answers expected.

use crate::http;
use crate::paths;

/// Step 1's cases; steps 2, 3, 5 and 7 carry a copy of this file.
#[path = "../../code/step-1-auth/tests/in_process/cases.rs"]
pub mod api_key;

/// Fails unless `step`'s copy of the API-key cases is step 1's, byte for
/// byte: the Envoy run of step 1's file is then that step's too.
pub fn assert_step_has_the_api_key_cases(step: &str) {
    let path = |step: &str| {
        paths::repo_root()
            .join("code")
            .join(step)
            .join("tests/in_process/cases.rs")
    };
    let read = |step: &str| {
        std::fs::read(path(step)).unwrap_or_else(|e| panic!("{}: {e}", path(step).display()))
    };
    assert!(
        read(step) == read("step-1-auth"),
        "{step}'s in-process cases differ from step 1's"
    );
}

/// Sends every API-key case to `port` (`/api/users`) and fails on the first
/// answer that is not the one the case expects.
pub fn check_api_key_cases(label: &str, port: u16) {
    use api_key::{Expected, CASES};
    for case in CASES {
        let response = http::get(port, "/api/users", case.headers)
            .unwrap_or_else(|e| panic!("{label}, {}: {e}", case.name));
        match case.expected {
            Expected::Refused(status, text) => {
                assert_eq!(u32::from(response.status), status, "{label}, {}", case.name);
                assert!(response.body.contains(text), "{label}, {}", case.name);
            }
            Expected::Passed => {
                assert_eq!(response.status, 200, "{label}, {}", case.name);
                assert!(
                    response.body.contains(r#""x-auth-status":["valid"]"#),
                    "{label}, {}: {}",
                    case.name,
                    response.body
                );
            }
        }
    }
}
