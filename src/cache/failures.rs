//! Failed resolutions, remembered for a few seconds (RFC 9520).
//!
//! A name whose servers are all dead or broken costs a full walk to fail:
//! timeouts, retries, every server tried. Without a memory of that, a
//! client retrying (or a flood of clients asking) repeats the walk each time
//! and multiplies the load on servers that are already failing. RFC 9520
//! §3.2 asks resolvers to cache a failure for at least 1 s and at most 5 min;
//! Unbound keeps a SERVFAIL for 5 s, and so does taproot by default
//! (`resolver.failure_cache_ttl_s`, at most
//! [`crate::config::MAX_FAILURE_CACHE_TTL_S`]).
//!
//! The key is the question's name and type, without the DO bit: a failed
//! walk fails the same way for every client.

use std::time::Duration;

use crate::clock::Clock;
use crate::resolve::ResolveError;

/// The most failures remembered at once.
const MAX_ENTRIES: u64 = 100_000;

/// Why the resolution failed, and until when that stands.
#[derive(Clone)]
struct Failure {
    error: ResolveError,
    until_ms: u64,
}

pub struct FailureCache {
    failures: moka::sync::Cache<Box<[u8]>, Failure>,
    clock: Clock,
}

impl FailureCache {
    /// The longest a failure may be kept bounds moka's own expiry; each
    /// entry's time is checked against the shared clock on read.
    pub fn new(clock: Clock, max_ttl: Duration) -> FailureCache {
        FailureCache {
            failures: moka::sync::Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_live(max_ttl.max(Duration::from_secs(1)))
                .build(),
            clock,
        }
    }

    /// The failure stored for `key` (a question's name and type), while it stands.
    pub fn get(&self, key: &[u8]) -> Option<ResolveError> {
        let f = self.failures.get(key)?;
        (f.until_ms > self.clock.now_ms()).then_some(f.error)
    }

    /// Remembers that resolving `key` failed with `error` for `ttl`.
    /// Failures that say nothing about the name are not kept: overload, an
    /// internal error, and a question that ran out of time before every
    /// server was tried (queued behind a slow or rate-limiting server: the
    /// next question may well get through). RFC 9520 §3.2 caches a failure
    /// once the zone's servers have all been tried, which
    /// [`ResolveError::NoReachableAuthority`] says.
    pub fn insert(&self, key: &[u8], error: &ResolveError, ttl: Duration) {
        if ttl.is_zero()
            || matches!(
                error,
                ResolveError::Overloaded | ResolveError::Internal | ResolveError::BudgetTime
            )
        {
            return;
        }
        let until_ms = self.clock.now_ms() + ttl.as_millis() as u64;
        self.failures.insert(
            key.into(),
            Failure {
                error: error.clone(),
                until_ms,
            },
        );
    }

    pub fn flush_all(&self) {
        self.failures.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_stands_for_its_ttl_then_is_forgotten() {
        let clock = Clock::manual();
        let f = FailureCache::new(clock.clone(), Duration::from_secs(30));
        let err = ResolveError::NoReachableAuthority("dead.lab.".into());
        f.insert(b"key", &err, Duration::from_secs(5));
        assert_eq!(f.get(b"key"), Some(err));
        clock.advance(5_000);
        assert_eq!(f.get(b"key"), None);
        f.insert(b"busy", &ResolveError::Overloaded, Duration::from_secs(5));
        assert_eq!(f.get(b"busy"), None, "overload says nothing of the name");
        f.insert(b"slow", &ResolveError::BudgetTime, Duration::from_secs(5));
        assert_eq!(f.get(b"slow"), None, "nor does running out of time");
    }
}
