//! The harness's auth service for step 3: `POST /validate` with
//! `{"key": "..."}` answers 200 `{"valid":true}` for a known key and 403
//! `{"valid":false}` otherwise. Unlike the Lua stand-in in step 3's
//! `envoy.yaml`, it can be stopped, slowed down or made to misbehave, so
//! the tests can show what the plugin does when its dependency fails. It
//! reads its keys file for every request, so a test revokes a key by
//! rewriting the file.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use clap::{Parser, ValueEnum};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Step 3's auth service, for the harness (127.0.0.1 only)")]
struct Args {
    /// The port on 127.0.0.1.
    port: u16,
    /// A file with one valid key per line.
    keys_file: std::path::PathBuf,
    /// Answer every request this many milliseconds late.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// How to answer.
    #[arg(long, value_enum, default_value_t = Answer::Honest)]
    answer: Answer,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum Answer {
    /// Check the key.
    Honest,
    /// 500 for everything.
    ServerError,
    /// 200 with a body that is not the expected JSON.
    Garbage,
    /// 200 with `{"valid":true}`, 5,000 spaces and more JSON: longer than
    /// any answer the plugin reads, and a yes only in its first bytes.
    Padded,
}

struct Service {
    keys_file: std::path::PathBuf,
    delay: Duration,
    answer: Answer,
    /// Validation requests received, printed to the log as they come.
    calls: AtomicU64,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(error) = std::fs::read_to_string(&args.keys_file) {
        eprintln!(
            "auth-service: cannot read {}: {error}",
            args.keys_file.display()
        );
        std::process::exit(2);
    }
    let service = Arc::new(Service {
        keys_file: args.keys_file,
        delay: Duration::from_millis(args.delay_ms),
        answer: args.answer,
        calls: AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/validate", post(validate))
        .with_state(service);
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!(
                "auth-service: cannot listen on 127.0.0.1:{}: {error}",
                args.port
            );
            std::process::exit(1);
        }
    };
    eprintln!("auth-service: listening on 127.0.0.1:{}", args.port);
    if let Err(error) = axum::serve(listener, app).await {
        eprintln!("auth-service: {error}");
        std::process::exit(1);
    }
}

const JSON: [(axum::http::header::HeaderName, &str); 1] =
    [(axum::http::header::CONTENT_TYPE, "application/json")];

async fn validate(
    State(service): State<Arc<Service>>,
    body: Bytes,
) -> (
    StatusCode,
    [(axum::http::header::HeaderName, &'static str); 1],
    String,
) {
    let call = service.calls.fetch_add(1, Ordering::Relaxed) + 1;
    eprintln!("auth-service: validation request {call}");
    tokio::time::sleep(service.delay).await;
    match service.answer {
        Answer::ServerError => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                JSON,
                r#"{"error":"internal"}"#.into(),
            )
        }
        Answer::Garbage => return (StatusCode::OK, JSON, "valid, probably".into()),
        Answer::Padded => {
            let padded = format!(r#"{{"valid":true}}{}{{"valid":false}}"#, " ".repeat(5000));
            return (StatusCode::OK, JSON, padded);
        }
        Answer::Honest => {}
    }
    // Parsed as a generic JSON value, as many services do. For an object
    // with the same field twice, serde_json keeps the last one, like many
    // JSON parsers: harmless for well-formed requests, and exactly what lets
    // a key forge a field when a client builds its JSON with format!.
    let key = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|body| body.get("key")?.as_str().map(str::to_owned));
    let keys: HashSet<String> = std::fs::read_to_string(&service.keys_file)
        .unwrap_or_default()
        .lines()
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    match key {
        Some(key) if keys.contains(&key) => (StatusCode::OK, JSON, r#"{"valid":true}"#.into()),
        Some(_) => (StatusCode::FORBIDDEN, JSON, r#"{"valid":false}"#.into()),
        None => (
            StatusCode::BAD_REQUEST,
            JSON,
            r#"{"error":"expected {\"key\": string}"}"#.into(),
        ),
    }
}
