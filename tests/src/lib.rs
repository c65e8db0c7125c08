//! The test harness: starts the example servers and Envoy on free loopback
//! ports, talks to them, and stops every process it started by PID.

pub mod book;
pub mod broken_service;
pub mod capture;
pub mod checks;
pub mod envoy;
pub mod file_server;
pub mod http;
pub mod http2;
pub mod in_process_cases;
pub mod key_service;
pub mod load;
pub mod loom;
pub mod paths;
pub mod process;
pub mod rate_limit;
pub mod shared_data;
pub mod stack;
pub mod steps;
pub mod tokens;
pub mod variants;
pub mod webhook;
