//! Time as the cache sees it: milliseconds on a monotonic clock.
//!
//! TTL decay, prefetch and serve-stale all compare "now" with the time an
//! entry was stored. Tests inject a manual clock so decay can be checked
//! without sleeping; the daemon uses the system's monotonic clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A monotonic millisecond clock, shared by every cache.
#[derive(Clone, Debug)]
pub struct Clock {
    inner: ClockInner,
}

#[derive(Clone, Debug)]
enum ClockInner {
    System(Instant),
    Manual(Arc<AtomicU64>),
}

impl Clock {
    /// The real monotonic clock; zero is the moment it was made.
    pub fn system() -> Clock {
        Clock {
            inner: ClockInner::System(Instant::now()),
        }
    }

    /// A clock that moves only when [`Clock::advance`] is called.
    pub fn manual() -> Clock {
        Clock {
            // Start away from zero so "stored at 0" is never special.
            inner: ClockInner::Manual(Arc::new(AtomicU64::new(1_000_000))),
        }
    }

    /// Milliseconds since the clock's epoch.
    #[inline]
    pub fn now_ms(&self) -> u64 {
        match &self.inner {
            ClockInner::System(start) => start.elapsed().as_millis() as u64,
            ClockInner::Manual(ms) => ms.load(Ordering::Relaxed),
        }
    }

    /// Moves a manual clock forward; a no-op on the system clock.
    pub fn advance(&self, ms: u64) {
        if let ClockInner::Manual(now) = &self.inner {
            now.fetch_add(ms, Ordering::Relaxed);
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}
