//! The upstream of every example: answers any request with a JSON echo of
//! what it received, so you can see which headers the proxy let through.
//!
//! Usage: backend [PORT]   (default 3000, always on 127.0.0.1)

use serde_json::{json, Map, Value};
use std::thread;

fn main() {
    let port = std::env::args().nth(1).unwrap_or_else(|| "3000".into());
    let server = match tiny_http::Server::http(format!("127.0.0.1:{port}")) {
        Ok(server) => server,
        Err(error) => {
            eprintln!("backend: cannot listen on 127.0.0.1:{port}: {error}");
            std::process::exit(1);
        }
    };
    eprintln!("backend: listening on 127.0.0.1:{port}");

    // A few threads, so a slow client cannot hold up the rest.
    let server = std::sync::Arc::new(server);
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let server = server.clone();
            thread::spawn(move || {
                for request in server.incoming_requests() {
                    let body = echo(&request).to_string();
                    let header = tiny_http::Header::from_bytes("content-type", "application/json")
                        .expect("static header is valid");
                    let response = tiny_http::Response::from_string(body).with_header(header);
                    if let Err(error) = request.respond(response) {
                        eprintln!("backend: could not answer: {error}");
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.join();
    }
}

/// `{"method": ..., "path": ..., "headers": {"name": ["value", ...]}}`, names
/// lower-cased; a header sent twice shows both values.
fn echo(request: &tiny_http::Request) -> Value {
    let mut headers = Map::new();
    for header in request.headers() {
        let name = header.field.as_str().as_str().to_ascii_lowercase();
        let values = headers.entry(name).or_insert_with(|| Value::Array(vec![]));
        if let Value::Array(values) = values {
            values.push(Value::String(header.value.as_str().to_owned()));
        }
    }
    json!({
        "method": request.method().as_str(),
        "path": request.url(),
        "headers": headers,
    })
}
