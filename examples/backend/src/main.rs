//! The upstream of every example: answers any request with a JSON echo of
//! what it received, so you can see which headers the proxy let through.
//!
//! Usage: backend [PORT]   (default 3000, always on 127.0.0.1)

use mini_http::{Request, Response};
use serde_json::{json, Map, Value};

fn main() {
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    if let Err(error) = mini_http::serve("backend", port, echo) {
        eprintln!("backend: cannot listen on 127.0.0.1:{port}: {error}");
        std::process::exit(1);
    }
}

/// `{"method": ..., "path": ..., "headers": {"name": ["value", ...]}}`; a
/// header sent twice shows both values.
fn echo(request: &Request) -> Response {
    let mut headers = Map::new();
    for (name, value) in &request.headers {
        let values = headers
            .entry(name.clone())
            .or_insert_with(|| Value::Array(vec![]));
        if let Value::Array(values) = values {
            values.push(Value::String(value.clone()));
        }
    }
    let body = json!({
        "method": request.method,
        "path": request.path,
        "headers": headers,
    });
    Response::json(200, body.to_string())
}
