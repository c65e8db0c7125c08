//! The cases the steps' in-process tests send to the module in a host
//! library (`code/<step>/tests/in_process/cases.rs`), sent through Envoy:
//! the same data, the same answers expected.

use crate::http;

/// Step 1's cases; every step whose description names them carries a copy
/// of this file (project's `step` tests compare them).
#[path = "../../code/step-1-auth/tests/in_process/cases.rs"]
pub mod api_key;

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
