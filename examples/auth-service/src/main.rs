//! The auth service of step 3: `POST /validate` with `{"key": "..."}` answers
//! 200 `{"valid": true}` for a known key and 403 `{"valid": false}` otherwise.
//!
//! Usage: auth-service PORT KEYS_FILE [--delay-ms N] [--answer valid|500|garbage]
//!
//! KEYS_FILE holds one key per line. `--delay-ms` makes every answer late and
//! `--answer` makes the service misbehave, so the tests can show what the
//! plugin does when its dependency is slow or broken.

use mini_http::{Request, Response};
use std::collections::HashSet;
use std::time::Duration;

#[derive(Clone, Copy, PartialEq)]
enum Answer {
    Honest,
    ServerError,
    Garbage,
}

struct Settings {
    port: u16,
    keys: HashSet<String>,
    delay: Duration,
    answer: Answer,
}

fn parse_args(args: &[String]) -> Result<Settings, String> {
    let [port, keys_file, options @ ..] = args else {
        return Err(
            "usage: auth-service PORT KEYS_FILE [--delay-ms N] [--answer valid|500|garbage]".into(),
        );
    };
    let port = port.parse().map_err(|_| format!("bad port `{port}`"))?;
    let keys = std::fs::read_to_string(keys_file)
        .map_err(|e| format!("cannot read {keys_file}: {e}"))?
        .lines()
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    let mut settings = Settings {
        port,
        keys,
        delay: Duration::ZERO,
        answer: Answer::Honest,
    };
    let mut options = options.iter();
    while let Some(option) = options.next() {
        let value = options.next().ok_or(format!("{option} needs a value"))?;
        match (option.as_str(), value.as_str()) {
            ("--delay-ms", ms) => {
                settings.delay =
                    Duration::from_millis(ms.parse().map_err(|_| format!("bad delay `{ms}`"))?)
            }
            ("--answer", "valid") => settings.answer = Answer::Honest,
            ("--answer", "500") => settings.answer = Answer::ServerError,
            ("--answer", "garbage") => settings.answer = Answer::Garbage,
            _ => return Err(format!("unknown option {option} {value}")),
        }
    }
    Ok(settings)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let settings = parse_args(&args).unwrap_or_else(|error| {
        eprintln!("auth-service: {error}");
        std::process::exit(2);
    });
    let port = settings.port;
    if let Err(error) = mini_http::serve("auth-service", port, move |request| {
        answer(&settings, request)
    }) {
        eprintln!("auth-service: cannot listen on 127.0.0.1:{port}: {error}");
        std::process::exit(1);
    }
}

fn answer(settings: &Settings, request: &Request) -> Response {
    std::thread::sleep(settings.delay);
    match settings.answer {
        Answer::ServerError => return Response::json(500, r#"{"error":"internal"}"#.into()),
        Answer::Garbage => return Response::json(200, "valid, probably".into()),
        Answer::Honest => {}
    }
    if request.method != "POST" || request.path != "/validate" {
        return Response::json(404, r#"{"error":"not found"}"#.into());
    }
    // Parsed as a generic JSON value, as many services do. For an object
    // with the same field twice, serde_json keeps the last one, like many
    // JSON parsers: harmless for well-formed requests, and exactly what lets
    // a key forge a field when a client builds its JSON with format!.
    let key = serde_json::from_slice::<serde_json::Value>(&request.body)
        .ok()
        .and_then(|body| body.get("key")?.as_str().map(str::to_owned));
    match key {
        Some(key) if settings.keys.contains(&key) => {
            Response::json(200, r#"{"valid":true}"#.into())
        }
        Some(_) => Response::json(403, r#"{"valid":false}"#.into()),
        None => Response::json(400, r#"{"error":"expected {\"key\": string}"}"#.into()),
    }
}
