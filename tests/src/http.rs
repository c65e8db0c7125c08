//! A deliberately small HTTP/1.1 client over a raw TCP socket: it can send
//! header values that are not UTF-8, which typed clients refuse to build.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request on a new connection (`Connection: close`) and reads the
/// whole answer. Errors (refused, reset, timeout) come back as `Err`.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut raw =
        format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n")
            .into_bytes();
    write_headers(&mut raw, headers);
    raw.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    raw.extend_from_slice(body);
    stream.write_all(&raw)?;

    let answer = read_response(&mut stream)?;
    parse(&answer).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "not an HTTP response: {:?}",
                String::from_utf8_lossy(&answer)
            ),
        )
    })
}

/// `name: value` lines, values as raw bytes.
fn write_headers(raw: &mut Vec<u8>, headers: &[(&str, &[u8])]) {
    for (name, value) in headers {
        raw.extend_from_slice(name.as_bytes());
        raw.extend_from_slice(b": ");
        raw.extend_from_slice(value);
        raw.extend_from_slice(b"\r\n");
    }
}

pub fn get(port: u16, path: &str, headers: &[(&str, &[u8])]) -> std::io::Result<Response> {
    request(port, "GET", path, headers, b"")
}

/// Reads until the response is complete: by its content-length, the end of
/// its chunked body, or the end of the connection. Not waiting for the close
/// matters: after a local reply Envoy waits up to a second for the client to
/// close first (its `delayed_close_timeout`).
fn read_response(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut answer = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let read = stream.read(&mut buffer)?;
        if read == 0 {
            return Ok(answer);
        }
        answer.extend_from_slice(&buffer[..read]);
        if is_complete(&answer) {
            return Ok(answer);
        }
    }
}

fn is_complete(raw: &[u8]) -> bool {
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let body = &raw[split + 4..];
    let content_length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse::<usize>().ok());
    match content_length {
        Some(length) => body.len() >= length,
        None if head.contains("transfer-encoding: chunked") => body.ends_with(b"0\r\n\r\n"),
        None => false,
    }
}

/// Parses a `Connection: close` response; handles chunked bodies because
/// Envoy re-chunks upstream answers that have no content-length.
fn parse(raw: &[u8]) -> Option<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = dechunk(&body)?;
    }
    Some(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

/// An HTTP/1.1 request whose body goes out with `transfer-encoding:
/// chunked`, one write per chunk, so a test decides how the body arrives
/// and can look at the upstream between two chunks.
pub struct ChunkedRequest {
    stream: TcpStream,
}

impl ChunkedRequest {
    /// Sends the request line and headers (without the body).
    pub fn start(port: u16, path: &str, headers: &[(&str, &[u8])]) -> std::io::Result<Self> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_nodelay(true)?;
        let mut raw = format!(
            "POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n\
             transfer-encoding: chunked\r\n"
        )
        .into_bytes();
        write_headers(&mut raw, headers);
        raw.extend_from_slice(b"\r\n");
        stream.write_all(&raw)?;
        Ok(ChunkedRequest { stream })
    }

    pub fn send_chunk(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        let mut raw = format!("{:x}\r\n", chunk.len()).into_bytes();
        raw.extend_from_slice(chunk);
        raw.extend_from_slice(b"\r\n");
        self.stream.write_all(&raw)?;
        self.stream.flush()
    }

    /// Ends the body (with `trailers`, if any) and reads the answer.
    pub fn finish(mut self, trailers: &[(&str, &str)]) -> std::io::Result<Response> {
        let mut raw = b"0\r\n".to_vec();
        for (name, value) in trailers {
            raw.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        self.stream.write_all(&raw)?;
        let answer = read_response(&mut self.stream)?;
        parse(&answer).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response")
        })
    }
}
