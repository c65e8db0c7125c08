//! The auth service speaks HTTP/1.1 the way Envoy's connection pool expects:
//! a HEAD answer carries no body, chunked request bodies are read, and one
//! kept-alive connection serves request after request, also under load.
//! (Its predecessor, a hand-written server, wrote a body after HEAD and
//! poisoned Envoy's pooled connections.) The client here writes raw bytes on
//! purpose: the test is about what crosses the socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The service on a free port, stopped by its PID when dropped.
struct Service {
    child: Child,
    port: u16,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Service {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    // Cargo's scratch folder for integration tests (under target/), so no
    // file is left behind in the system's temporary folder.
    let keys =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("auth-service-keys-{port}"));
    std::fs::write(&keys, "key-abc123\n").expect("write keys");
    let child = Command::new(env!("CARGO_BIN_EXE_auth-service"))
        .arg(port.to_string())
        .arg(&keys)
        .spawn()
        .expect("start the auth service");
    let service = Service { child, port };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the auth service did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    service
}

/// Reads one response; a HEAD response has headers only.
fn read_response(reader: &mut BufReader<TcpStream>, head: bool) -> (u16, String) {
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("status line");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a status line: {status_line:?}"));
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header line");
        if line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().expect("a content-length");
        }
    }
    let mut body = vec![0; if head { 0 } else { length }];
    reader.read_exact(&mut body).expect("body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn validate_request(key: &str) -> String {
    let body = format!(r#"{{"key":"{key}"}}"#);
    format!(
        "POST /validate HTTP/1.1\r\nhost: auth\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn connect(service: &Service) -> (TcpStream, BufReader<TcpStream>) {
    let stream = TcpStream::connect(("127.0.0.1", service.port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let reader = BufReader::new(stream.try_clone().expect("clone"));
    (stream, reader)
}

#[test]
fn a_head_answer_has_no_body_and_the_connection_stays_usable() {
    let service = start();
    let (mut stream, mut reader) = connect(&service);
    for _ in 0..20 {
        stream
            .write_all(b"HEAD /validate HTTP/1.1\r\nhost: auth\r\n\r\n")
            .expect("send HEAD");
        let (status, _) = read_response(&mut reader, true);
        assert_eq!(status, 405, "HEAD on a POST-only route");
        // Were a body written after the HEAD answer, these bytes would be
        // read as the next response's status line.
        stream
            .write_all(validate_request("key-abc123").as_bytes())
            .expect("send POST");
        let (status, body) = read_response(&mut reader, false);
        assert_eq!((status, body.as_str()), (200, r#"{"valid":true}"#));
    }
}

#[test]
fn a_chunked_body_is_read_whole() {
    let service = start();
    let (mut stream, mut reader) = connect(&service);
    stream
        .write_all(
            b"POST /validate HTTP/1.1\r\nhost: auth\r\ntransfer-encoding: chunked\r\n\r\n\
              4\r\n{\"ke\r\n5\r\ny\":\"k\r\n0b\r\ney-abc123\"}\r\n0\r\n\r\n",
        )
        .expect("send");
    let (status, body) = read_response(&mut reader, false);
    assert_eq!((status, body.as_str()), (200, r#"{"valid":true}"#));
}

#[test]
fn kept_alive_connections_serve_many_requests_under_load() {
    let service = start();
    let threads: Vec<_> = (0..8)
        .map(|thread| {
            let (mut stream, mut reader) = connect(&service);
            std::thread::spawn(move || {
                let mut answered = 0;
                for n in 0..100 {
                    let key = if (thread + n) % 2 == 0 {
                        "key-abc123"
                    } else {
                        "nope"
                    };
                    stream
                        .write_all(validate_request(key).as_bytes())
                        .expect("send");
                    let (status, _) = read_response(&mut reader, false);
                    assert_eq!(status, if key == "nope" { 403 } else { 200 });
                    answered += 1;
                }
                answered
            })
        })
        .collect();
    let answered: usize = threads
        .into_iter()
        .map(|t| t.join().expect("a client"))
        .sum();
    assert_eq!(answered, 800);
}
