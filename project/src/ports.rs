//! The ports in the book's configurations. Readers type them; the harness
//! moves every one of them to a free port, except in the tests that replay
//! the book as a reader would.

/// The plugin's listener: what `curl http://127.0.0.1:8080/...` reaches.
pub const LISTENER: u16 = 8080;
/// Envoy's admin interface (`/ready`, `/stats`).
pub const ADMIN: u16 = 9091;
/// The echo backend, a listener in each step's own `envoy.yaml`.
pub const ECHO_BACKEND: u16 = 3000;
/// Step 3's auth service, also a listener in its `envoy.yaml`.
pub const AUTH_SERVICE: u16 = 3001;

/// Every port a step's configuration may use.
pub const ALL: [u16; 4] = [LISTENER, ADMIN, ECHO_BACKEND, AUTH_SERVICE];
