//! Step 7's key service, for the tests: it answers every HTTP/1.1 request
//! with the answer the test set last (the key list, or something hostile),
//! counts the requests, and can go down (close every connection at once).
//! Raw TCP on threads of the test, like `broken_service`; stops when
//! dropped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Clone)]
pub enum Answer {
    /// This status and body (`content-length` set).
    Reply { status: u16, body: Vec<u8> },
    /// Close each connection as soon as it is accepted.
    Down,
}

impl Answer {
    /// 200 with `{"keys": [...]}`.
    pub fn keys(keys: &[&str]) -> Answer {
        Answer::Reply {
            status: 200,
            body: serde_json::json!({ "keys": keys }).to_string().into_bytes(),
        }
    }
}

struct Shared {
    answer: Mutex<Answer>,
    requests: AtomicU64,
    stop: AtomicBool,
}

pub struct KeyService {
    pub port: u16,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl KeyService {
    pub fn start(answer: Answer) -> KeyService {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("its address").port();
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let shared = Arc::new(Shared {
            answer: Mutex::new(answer),
            requests: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let state = shared.clone();
        let thread = std::thread::spawn(move || {
            while !state.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let down = matches!(*lock(&state.answer), Answer::Down);
                        if down {
                            drop(stream);
                        } else {
                            let state = state.clone();
                            std::thread::spawn(move || serve(stream, &state));
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        KeyService {
            port,
            shared,
            thread: Some(thread),
        }
    }

    /// What every request from now on gets.
    pub fn set(&self, answer: Answer) {
        *lock(&self.shared.answer) = answer;
    }

    /// Requests answered so far (a closed connection counts none).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }
}

impl Drop for KeyService {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock(answer: &Mutex<Answer>) -> std::sync::MutexGuard<'_, Answer> {
    answer
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Answers the requests of one kept-alive connection (requests without a
/// body, as the refresher's `GET` is) until the client closes it, the
/// service goes down or the test ends.
fn serve(mut stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut pending = Vec::new();
    let mut buffer = [0u8; 4096];
    while !shared.stop.load(Ordering::SeqCst) {
        if let Some(end) = find(&pending, b"\r\n\r\n") {
            pending.drain(..end + 4);
            let answer = lock(&shared.answer).clone();
            let Answer::Reply { status, body } = answer else {
                return;
            };
            shared.requests.fetch_add(1, Ordering::SeqCst);
            let head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            if stream.write_all(head.as_bytes()).is_err() || stream.write_all(&body).is_err() {
                return;
            }
            continue;
        }
        match stream.read(&mut buffer) {
            Ok(0) => return,
            Ok(read) => pending.extend_from_slice(&buffer[..read]),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
