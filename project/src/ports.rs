//! The ports in the book's configurations. Readers type them; the harness
//! moves every one of them to a free port, except in the tests that replay
//! the book as a reader would.

/// The plugin's listener: what `curl http://127.0.0.1:8080/...` reaches.
pub const LISTENER: u16 = 8080;
/// Envoy's admin interface (`/ready`, `/stats`).
pub const ADMIN: u16 = 9091;
/// The echo backend, a listener in each step's own `envoy.yaml`.
pub const ECHO_BACKEND: u16 = 3000;
/// Step 3's auth service (and step 7's key service), also a listener in
/// its `envoy.yaml`.
pub const AUTH_SERVICE: u16 = 3001;

/// Step 5's rate limit service: gRPC (what Envoy calls), HTTP
/// (`/healthcheck`) and debug (`/rlconfig`) ports.
pub const RATE_LIMIT_SERVICE: u16 = 8081;
pub const RATE_LIMIT_SERVICE_HTTP: u16 = 8082;
pub const RATE_LIMIT_SERVICE_DEBUG: u16 = 6070;
/// The Redis the rate limit service counts in.
pub const REDIS: u16 = 6379;

/// Every port a step may use.
pub const ALL: [u16; 8] = [
    LISTENER,
    ADMIN,
    ECHO_BACKEND,
    AUTH_SERVICE,
    RATE_LIMIT_SERVICE,
    RATE_LIMIT_SERVICE_HTTP,
    RATE_LIMIT_SERVICE_DEBUG,
    REDIS,
];
