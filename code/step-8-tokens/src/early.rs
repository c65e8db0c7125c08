//! How a worker's VM asks the refresher for an early refresh: one message
//! on the refresher's shared queue, at most once a second from each VM
//! (the refresher itself makes at most one early refresh per period).

use proxy_wasm::hostcalls;
use std::cell::Cell;

/// The least time between two asks from one VM.
const ASK_EVERY_MS: u64 = 1000;

#[derive(Default)]
pub struct EarlyRefresh {
    /// The refresher's queue, once found.
    queue: Cell<Option<u32>>,
    last_ms: Cell<Option<u64>>,
}

impl EarlyRefresh {
    /// Asks for an early refresh, unless this VM asked less than a second
    /// ago. `vm_id` names the refresher's VM (the queue belongs to it).
    pub fn ask(&self, vm_id: &str, now_ms: u64) {
        if self
            .last_ms
            .get()
            .is_some_and(|last| now_ms.saturating_sub(last) < ASK_EVERY_MS)
        {
            return;
        }
        self.last_ms.set(Some(now_ms));
        let queue = match self.queue.get() {
            Some(queue) => queue,
            None => {
                match hostcalls::resolve_shared_queue(vm_id, crate::refresh::EARLY_REFRESH_QUEUE) {
                    Ok(Some(queue)) => {
                        self.queue.set(Some(queue));
                        queue
                    }
                    // No refresher in this vm_id (yet): nothing to ask.
                    _ => return,
                }
            }
        };
        if let Err(status) = hostcalls::enqueue_shared_queue(queue, Some(b"unknown kid")) {
            log::warn!("could not ask for an early refresh: {status:?}");
        }
    }
}
