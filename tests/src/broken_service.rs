//! Services that break at the socket, for the auth-call failure tests: one
//! that accepts connections and never answers, one that closes each
//! connection as soon as it accepts it. They are raw TCP on purpose: no
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
