//! TTL arithmetic: clamps on the way in, decay on the way out.

use crate::config::CacheConfig;

/// The operator's TTL clamps (Unbound's cache-min-ttl, cache-max-ttl,
/// cache-max-negative-ttl).
#[derive(Debug, Clone, Copy)]
pub struct TtlPolicy {
    pub min_ttl: u32,
    pub max_ttl: u32,
    pub negative_max_ttl: u32,
}

impl TtlPolicy {
    pub fn from_config(c: &CacheConfig) -> TtlPolicy {
        TtlPolicy {
            min_ttl: c.min_ttl,
            max_ttl: c.max_ttl,
            negative_max_ttl: c.negative_max_ttl,
        }
    }

    /// A positive RRset's TTL after the clamps.
    pub fn positive(&self, ttl: u32) -> u32 {
        ttl.clamp(self.min_ttl, self.max_ttl.max(self.min_ttl))
    }

    /// RFC 2308 §5: the negative TTL is the lesser of the SOA's TTL and its
    /// MINIMUM field, capped by the operator's negative maximum.
    pub fn negative(&self, soa_ttl: u32, soa_minimum: u32) -> u32 {
        soa_ttl.min(soa_minimum).min(self.negative_max_ttl)
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
        let p = TtlPolicy {
            min_ttl: 60,
            max_ttl: 3600,
            negative_max_ttl: 900,
        };
        assert_eq!(p.positive(5), 60);
        assert_eq!(p.positive(86400), 3600);
        assert_eq!(p.negative(3600, 7200), 900);
        assert_eq!(p.negative(300, 60), 60);
    }

    #[test]
    fn decay_is_whole_seconds() {
        assert_eq!(remaining(300, 1_000, 3_999), 298);
        assert_eq!(remaining(1, 0, 5_000), 0);
        assert!(is_fresh(2, 0, 1_999));
        assert!(!is_fresh(2, 0, 2_000));
    }
}
