//! Services that break at the socket, for the call failure tests: one that
//! accepts connections and never answers, one that closes each connection
//! as soon as it accepts it, one that closes it in the middle of its answer,
//! and a gRPC server whose every answer is an error with a message that is
//! not UTF-8; and an upstream that only records what reaches it, for the
//! body tests. They are raw TCP on purpose: no HTTP server would behave
//! this badly. Each runs on threads of the test and stops when dropped.

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// Accept, then hold the connection without reading or writing.
    NeverAnswers,
    /// Accept, then close the connection at once.
    ClosesAtOnce,
    /// Read an HTTP/1.1 request, send the status line, the headers and
    /// part of the promised body, then close: the call's stream is reset
    /// after its answer began.
    ClosesMidAnswer,
    /// Speak just enough HTTP/2 to answer every request with a gRPC error
    /// (`grpc-status: 14`) whose `grpc-message` is the bytes 0xFF 0xFE.
    GrpcErrorNotUtf8,
}

pub struct BrokenService {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BrokenService {
    pub fn start(behaviour: Behaviour) -> BrokenService {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("its address").port();
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            while !stopped.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => match behaviour {
                        Behaviour::NeverAnswers => held.push(stream),
                        Behaviour::ClosesAtOnce => drop(stream),
                        Behaviour::ClosesMidAnswer => {
                            std::thread::spawn(move || close_mid_answer(stream));
                        }
                        Behaviour::GrpcErrorNotUtf8 => {
                            let stopped = stopped.clone();
                            std::thread::spawn(move || grpc_errors(stream, &stopped));
                        }
                    },
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        BrokenService {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for BrokenService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request's head, answers `200` with a `content-length` of 100
/// and sends 14 bytes of that body, then closes the connection.
fn close_mid_answer(mut stream: TcpStream) {
    use std::io::{Read, Write};
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(read) => request.extend_from_slice(&buffer[..read]),
        }
    }
    let _ = stream.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"valid\":true}",
    );
    let _ = stream.flush();
    std::thread::sleep(Duration::from_millis(50));
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// HTTP/2 frame types and flags (RFC 9113, section 6).
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).unwrap_or(0).to_be_bytes();
    let mut frame = vec![length[1], length[2], length[3], kind, flags];
    frame.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// A trailers-only gRPC answer as an HPACK block: `:status: 200` (static
/// table entry 8), then literal fields without indexing (RFC 7541, 6.2.2),
/// none longer than 126 bytes.
fn grpc_error_headers() -> Vec<u8> {
    let mut block = vec![0x88];
    for (name, value) in [
        (&b"content-type"[..], &b"application/grpc"[..]),
        (b"grpc-status", b"14"),
        (b"grpc-message", b"\xff\xfe"),
    ] {
        block.push(0x00);
        block.push(name.len() as u8);
        block.extend_from_slice(name);
        block.push(value.len() as u8);
        block.extend_from_slice(value);
    }
    block
}

/// Answers each HTTP/2 stream, once its request has ended, with the gRPC
/// error above; acknowledges SETTINGS and PING; ignores everything else.
fn grpc_errors(mut stream: TcpStream, stopped: &AtomicBool) {
    use std::io::{Read, Write};
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let mut preface = [0u8; 24];
    if stream.read_exact(&mut preface).is_err() || !preface.starts_with(b"PRI * HTTP/2.0") {
        return;
    }
    if stream.write_all(&frame(SETTINGS, 0, 0, &[])).is_err() {
        return;
    }
    let mut header = [0u8; 9];
    while !stopped.load(Ordering::SeqCst) {
        match stream.read_exact(&mut header) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return,
        }
        let length = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let (kind, flags) = (header[3], header[4]);
        let id = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; length];
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        if stream.read_exact(&mut payload).is_err() {
            return;
        }
        let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
        let reply = match kind {
            SETTINGS if flags & ACK == 0 => frame(SETTINGS, ACK, 0, &[]),
            PING if flags & ACK == 0 => frame(PING, ACK, 0, &payload),
            HEADERS | DATA if flags & END_STREAM != 0 => {
                frame(HEADERS, END_STREAM | END_HEADERS, id, &grpc_error_headers())
            }
            GOAWAY => return,
            _ => continue,
        };
        if stream.write_all(&reply).is_err() {
            return;
        }
    }
}

/// An upstream that records every byte it receives and never answers: a
/// test can see whether any part of a request reached the upstream.
pub struct RecordingUpstream {
    pub port: u16,
    received: Arc<std::sync::Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RecordingUpstream {
    pub fn start() -> RecordingUpstream {
        use std::io::Read;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("its address").port();
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let received = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (record, stopped) = (received.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut connections: Vec<TcpStream> = Vec::new();
            let mut buffer = [0u8; 16 * 1024];
            while !stopped.load(Ordering::SeqCst) {
                if let Ok((stream, _)) = listener.accept() {
                    let _ = stream.set_nonblocking(true);
                    connections.push(stream);
                }
                for stream in &mut connections {
                    while let Ok(read) = stream.read(&mut buffer) {
                        if read == 0 {
                            break;
                        }
                        if let Ok(mut record) = record.lock() {
                            record.extend_from_slice(&buffer[..read]);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        RecordingUpstream {
            port,
            received,
            stop,
            thread: Some(thread),
        }
    }

    /// Everything received so far, on all connections.
    pub fn received(&self) -> Vec<u8> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for RecordingUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
