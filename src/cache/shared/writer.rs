//! Writes to the tier, off the answer path.
//!
//! A resolution hands its stored entry to [`Writer::queue`], which never
//! waits: the entry goes into a bounded queue, or is dropped and counted
//! when the queue is full (Redis slower than the resolutions that feed it).
//! One task drains the queue in batches, encodes and seals each entry, and
//! sends the batch as one pipeline, with a deadline of its own. The read
//! breaker does not stop writes: reads time out at a few milliseconds
//! under a burst of misses, where a write, which no client waits for, would
//! still land; a Redis that is down fails each batch at once, and one that
//! stalls holds the task, so the queue fills and the overflow is dropped.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::debug;

use super::Shared;
use crate::cache::answer::CachedAnswer;
use crate::cache::portable::Now;

/// Entries waiting to be written at most; past it, writes are dropped.
pub const QUEUE: usize = 4096;

/// Entries sent in one pipeline at most.
const BATCH: usize = 256;

/// How long one batch may take before it counts as failed.
const BATCH_DEADLINE: Duration = Duration::from_secs(1);

/// One entry to write, as the resolution left it.
pub struct Pending {
    pub key: Box<[u8]>,
    pub entry: Arc<CachedAnswer>,
    pub now: Now,
}

/// The sending side of the queue.
pub struct Writer {
    tx: mpsc::Sender<Pending>,
}

impl Writer {
    /// The queue, and its draining task on the current runtime.
    pub fn start(shared: std::sync::Weak<Shared>) -> Writer {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(drain(shared, rx));
        Writer { tx }
    }

    /// Queues `pending`; false when the queue was full (or closed).
    pub fn queue(&self, pending: Pending) -> bool {
        self.tx.try_send(pending).is_ok()
    }
}

async fn drain(shared: std::sync::Weak<Shared>, mut rx: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = rx.recv().await {
        batch.clear();
        batch.push(first);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.generation().is_none() {
            let _ = tokio::time::timeout(BATCH_DEADLINE, shared.current_generation()).await;
        }
        let writes: Vec<(String, Vec<u8>, u64)> =
            batch.iter().filter_map(|p| shared.prepare(p)).collect();
        let skipped = (batch.len() - writes.len()) as u64;
        if skipped > 0 {
            shared.stats.writes("skipped", skipped);
        }
        if writes.is_empty() {
            continue;
        }
        match tokio::time::timeout(BATCH_DEADLINE, shared.redis.set_many(&writes)).await {
            Ok(Ok(())) => shared.stats.writes("written", writes.len() as u64),
            Ok(Err(e)) => {
                debug!(error = %e, entries = writes.len(), "shared cache write failed");
                shared.stats.writes("failed", writes.len() as u64);
            }
            Err(_) => {
                debug!(entries = writes.len(), "shared cache write timed out");
                shared.stats.writes("failed", writes.len() as u64);
            }
        }
    }
}
