//! Services that break at the socket, for the auth-call failure tests: one
//! that accepts connections and never answers, one that closes each
//! connection as soon as it accepts it; and an upstream that only records
//! what reaches it, for the body tests. They are raw TCP on purpose: no
//! HTTP server would behave this badly. Each runs on a thread of the test
//! and stops when dropped.

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
