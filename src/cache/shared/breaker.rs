//! The circuit breaker in front of Redis reads.
//!
//! Every read of a tier that is down or stalled would cost a question its
//! full deadline. After [`TRIP_AFTER`] failures in a row (errors or
//! timeouts) spread over at least [`TRIP_SPAN`] the breaker opens: reads
//! are misses at once, with no request sent, for [`COOL_DOWN`]. Then one
//! read is let through as a probe; if it succeeds the breaker closes, if
//! it fails it opens again for another cool-down. The span is what tells
//! a failing Redis from a blip: a hundred reads in flight all time out
//! together when the machine stalls for a few milliseconds (measured in
//! bench/fleet.sh), and that alone must not stop reads for a second. (The pattern of Nygard's *Release It!*, and of Unbound's
//! infra cache holding a server down before it probes it again.)

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Consecutive failures that open the breaker…
pub const TRIP_AFTER: u32 = 3;

/// …when at least this much time separates the first from the last.
pub const TRIP_SPAN: Duration = Duration::from_millis(50);

/// How long an open breaker refuses reads before it lets a probe through.
pub const COOL_DOWN: Duration = Duration::from_secs(1);

/// Whether a read may go to Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Closed: read.
    Yes,
    /// Open, cool-down over: this read is the one probe.
    Probe,
    /// Open: a miss without asking.
    No,
}

/// Consecutive failures and, once they trip it, until when to refuse.
#[derive(Debug)]
pub struct Breaker {
    epoch: Instant,
    failures: AtomicU32,
    /// Milliseconds since `epoch` of the first of the current failures.
    first_failure_ms: AtomicU64,
    /// Milliseconds since `epoch` until which reads are refused; 0: closed.
    open_until_ms: AtomicU64,
    /// A probe is in flight: other reads are still refused.
    probing: AtomicBool,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            epoch: Instant::now(),
            failures: AtomicU32::new(0),
            first_failure_ms: AtomicU64::new(0),
            open_until_ms: AtomicU64::new(0),
            probing: AtomicBool::new(false),
        }
    }
}

impl Breaker {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether a read may be sent now.
    pub fn admit(&self) -> Admit {
        let until = self.open_until_ms.load(Ordering::Acquire);
        if until == 0 {
            return Admit::Yes;
        }
        if self.now_ms() < until {
            return Admit::No;
        }
        if self
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            Admit::Probe
        } else {
            Admit::No
        }
    }

    /// A read (or probe) that Redis answered: closes the breaker.
    pub fn success(&self) {
        self.failures.store(0, Ordering::Relaxed);
        if self.open_until_ms.load(Ordering::Relaxed) != 0 {
            self.open_until_ms.store(0, Ordering::Release);
            self.probing.store(false, Ordering::Release);
        }
    }

    /// A read that failed or timed out. Returns true when it opened the
    /// breaker (for a log line on the transition, not one per read).
    pub fn failure(&self) -> bool {
        let now = self.now_ms();
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures == 1 {
            self.first_failure_ms.store(now, Ordering::Relaxed);
        }
        let span = now.saturating_sub(self.first_failure_ms.load(Ordering::Relaxed));
        let was_open = self.open_until_ms.load(Ordering::Relaxed) != 0;
        if was_open || (failures >= TRIP_AFTER && span >= TRIP_SPAN.as_millis() as u64) {
            let until = now + COOL_DOWN.as_millis() as u64;
            self.open_until_ms.store(until.max(1), Ordering::Release);
            self.probing.store(false, Ordering::Release);
            return !was_open;
        }
        false
    }

    /// True while reads are refused (the `breaker_open` gauge).
    pub fn is_open(&self) -> bool {
        self.open_until_ms.load(Ordering::Relaxed) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ends the cool-down now (instead of sleeping through it).
    fn cool(b: &Breaker) {
        std::thread::sleep(Duration::from_millis(2));
        b.open_until_ms.store(b.now_ms(), Ordering::Release);
    }

    #[test]
    fn repeated_failures_open_it_and_one_probe_closes_it() {
        let b = Breaker::default();
        assert_eq!(b.admit(), Admit::Yes);
        assert!(!b.failure());
        assert!(!b.failure());
        assert_eq!(b.admit(), Admit::Yes, "two failures are not yet a pattern");
        assert!(!b.failure(), "three at one instant are a blip");
        std::thread::sleep(TRIP_SPAN);
        assert!(b.failure(), "still failing after the span: it opens");
        assert!(b.is_open());
        assert_eq!(b.admit(), Admit::No);
        // Past the cool-down, one probe goes; the others wait for it.
        cool(&b);
        assert_eq!(b.admit(), Admit::Probe);
        assert_eq!(b.admit(), Admit::No);
        b.success();
        assert!(!b.is_open());
        assert_eq!(b.admit(), Admit::Yes);
    }

    #[test]
    fn a_failed_probe_opens_it_again() {
        let b = Breaker::default();
        b.failure();
        std::thread::sleep(TRIP_SPAN);
        for _ in 0..TRIP_AFTER {
            b.failure();
        }
        assert!(b.is_open());
        cool(&b);
        assert_eq!(b.admit(), Admit::Probe);
        assert!(!b.failure(), "already open: no new transition");
        assert_eq!(b.admit(), Admit::No);
    }
}
