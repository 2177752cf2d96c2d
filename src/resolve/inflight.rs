//! Coalescing: concurrent identical questions share one resolution.
//!
//! The first asker becomes the leader and resolves; later askers register a
//! oneshot and wait for the leader's result. Keys are answer-cache keys
//! (lower-cased question + type + class + DO bit).

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

/// Waiters per question in flight.
type Waiters<T> = HashMap<Box<[u8]>, Vec<oneshot::Sender<T>>>;

pub struct Inflight<T: Clone> {
    waiting: Mutex<Waiters<T>>,
}

/// What a caller of [`Inflight::join`] is to do.
pub enum Role<T> {
    /// Resolve, then call [`Inflight::finish`].
    Leader,
    /// Wait for the leader's result.
    Follower(oneshot::Receiver<T>),
}

impl<T: Clone> Default for Inflight<T> {
    fn default() -> Self {
        Inflight {
            waiting: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Clone> Inflight<T> {
    pub fn join(&self, key: &[u8]) -> Role<T> {
        let mut map = match self.waiting.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        match map.get_mut(key) {
            Some(waiters) => {
                let (tx, rx) = oneshot::channel();
                waiters.push(tx);
                Role::Follower(rx)
            }
            None => {
                map.insert(key.into(), Vec::new());
                Role::Leader
            }
        }
    }

    /// Hands the leader's result to every follower.
    pub fn finish(&self, key: &[u8], result: &T) {
        let waiters = {
            let mut map = match self.waiting.lock() {
                Ok(m) => m,
                Err(poisoned) => poisoned.into_inner(),
            };
            map.remove(key).unwrap_or_default()
        };
        for w in waiters {
            let _ = w.send(result.clone());
        }
    }

    /// Questions being resolved now.
    pub fn len(&self) -> usize {
        self.waiting.lock().map_or(0, |m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
