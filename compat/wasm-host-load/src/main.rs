//! `wasm-host-load MODULE.wasm`: prints `loaded` when proxy-wasm-host
//! instantiates the module, or `not loaded: <why>` (exit status 1).

use proxy_wasm_host::abi::v0_2_1::types::LogLevel;
use proxy_wasm_host::abi::v0_2_1::{Guest, Host, LogContext, LogSink, VmServices};
use proxy_wasm_host::{Engine, Limits, Module};
use std::sync::Arc;

struct Discard;

impl LogSink for Discard {
    fn log(&self, _: LogContext<'_>, _: LogLevel, _: &[u8]) {}
}

fn load(path: &str) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let engine = Engine::new().map_err(|e| e.to_string())?;
    let module = Module::new(&engine, &bytes).map_err(|e| e.to_string())?;
    let host = Host::new(&engine).map_err(|e| e.to_string())?;
    let services = VmServices::new(Arc::new(Discard));
    Guest::new(&host, &module, services, &Limits::default()).map_err(|e| chain(&e))?;
    Ok(())
}

/// An error and its causes, outermost first.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: wasm-host-load MODULE.wasm");
        std::process::exit(2);
    };
    match load(&path) {
        Ok(()) => println!("loaded"),
        Err(why) => {
            println!("not loaded: {why}");
            std::process::exit(1);
        }
    }
}
