//! TTL arithmetic: clamps on the way in, decay on the way out.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::config::CacheConfig;

/// The operator's TTL clamps (Unbound's cache-min-ttl, cache-max-ttl,
/// cache-max-negative-ttl), shared by the caches and the resolver. Atomics,
/// so that a SIGHUP reload changes them in place for data stored from then
/// on, without rebuilding (and emptying) the caches.
#[derive(Debug)]
pub struct TtlPolicy {
    min_ttl: AtomicU32,
    max_ttl: AtomicU32,
    negative_max_ttl: AtomicU32,
}

impl TtlPolicy {
    pub fn from_config(c: &CacheConfig) -> TtlPolicy {
        TtlPolicy {
            min_ttl: AtomicU32::new(c.min_ttl),
            max_ttl: AtomicU32::new(c.max_ttl),
            negative_max_ttl: AtomicU32::new(c.negative_max_ttl),
        }
    }

    /// Applies the clamps of a reloaded config.
    pub fn set(&self, c: &CacheConfig) {
        self.min_ttl.store(c.min_ttl, Ordering::Relaxed);
        self.max_ttl.store(c.max_ttl, Ordering::Relaxed);
        self.negative_max_ttl
            .store(c.negative_max_ttl, Ordering::Relaxed);
    }

    /// A positive RRset's TTL after the clamps.
    pub fn positive(&self, ttl: u32) -> u32 {
        let min = self.min_ttl.load(Ordering::Relaxed);
        let max = self.max_ttl.load(Ordering::Relaxed);
        ttl.clamp(min, max.max(min))
    }

    /// RFC 2308 §5: the negative TTL is the lesser of the SOA's TTL and its
    /// MINIMUM field, capped by the operator's negative maximum.
    pub fn negative(&self, soa_ttl: u32, soa_minimum: u32) -> u32 {
        soa_ttl
            .min(soa_minimum)
            .min(self.negative_max_ttl.load(Ordering::Relaxed))
    }
}

/// Seconds left of `ttl` after `elapsed_ms`; zero once expired.
#[inline]
pub fn remaining(ttl: u32, stored_ms: u64, now_ms: u64) -> u32 {
    let elapsed = (now_ms.saturating_sub(stored_ms) / 1000) as u32;
    ttl.saturating_sub(elapsed)
}

/// True while an entry stored at `stored_ms` with `ttl` is still fresh.
#[inline]
pub fn is_fresh(ttl: u32, stored_ms: u64, now_ms: u64) -> bool {
    now_ms < stored_ms + u64::from(ttl) * 1000
}

/// How long a cached value stays in moka: its TTL, plus the serve-stale window
/// for stores that keep expired data for RFC 8767.
pub trait Lifetime {
    fn lifetime(&self) -> std::time::Duration;
}

/// moka's per-entry expiry driven by each value's own [`Lifetime`], so an
/// entry dies at its own TTL (on insert and on replacement alike).
pub struct PerEntryExpiry;

impl<K, V: Lifetime> moka::Expiry<K, V> for PerEntryExpiry {
    fn expire_after_create(
        &self,
        _key: &K,
        value: &V,
        _created_at: std::time::Instant,
    ) -> Option<std::time::Duration> {
        Some(value.lifetime())
    }

    fn expire_after_update(
        &self,
        _key: &K,
        value: &V,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<std::time::Duration>,
    ) -> Option<std::time::Duration> {
        Some(value.lifetime())
    }
}

impl<T: Lifetime> Lifetime for std::sync::Arc<T> {
    fn lifetime(&self) -> std::time::Duration {
        (**self).lifetime()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps_apply() {
        let mut c = CacheConfig {
            min_ttl: 60,
            max_ttl: 3600,
            negative_max_ttl: 900,
            ..CacheConfig::default()
        };
        let p = TtlPolicy::from_config(&c);
        assert_eq!(p.positive(5), 60);
        assert_eq!(p.positive(86400), 3600);
        assert_eq!(p.negative(3600, 7200), 900);
        assert_eq!(p.negative(300, 60), 60);
        // A reload changes them in place.
        c.max_ttl = 600;
        c.negative_max_ttl = 30;
        p.set(&c);
        assert_eq!(p.positive(86400), 600);
        assert_eq!(p.negative(3600, 7200), 30);
    }

    #[test]
    fn decay_is_whole_seconds() {
        assert_eq!(remaining(300, 1_000, 3_999), 298);
        assert_eq!(remaining(1, 0, 5_000), 0);
        assert!(is_fresh(2, 0, 1_999));
        assert!(!is_fresh(2, 0, 2_000));
    }
}
