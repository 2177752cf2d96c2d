//! The side caches: small bounded maps from a name to what was learned
//! about it, each entry living for its own TTL on taproot's clock. They
//! hold what the answer and record caches do not: the parent side of each
//! cut ([`super::ParentSide`]), the key cache's verdicts
//! ([`crate::dnssec::keys`]) and the DS proofs referrals carried (the
//! validator's, in the resolver: the cache links to nothing above it).
//!
//! moka bounds the count (the least used go first) and drops whatever
//! outlives the longest TTL allowed; it cannot expire an entry by a TTL
//! of its own on a clock that tests move, so each entry carries its
//! deadline and [`Expiring::get`] checks it. Names compare without case
//! (hickory's `Name` equality), so callers need not lower-case to look up.

use std::time::Duration;

use hickory_proto::rr::Name;

use crate::clock::Clock;

/// A value and when it expires, in clock milliseconds.
#[derive(Clone)]
struct Kept<V> {
    value: V,
    until_ms: u64,
}

pub struct Expiring<V> {
    map: moka::sync::Cache<Name, Kept<V>>,
    clock: Clock,
    max_ttl_s: u32,
}

impl<V: Clone + Send + Sync + 'static> Expiring<V> {
    /// At most `capacity` names, none kept longer than `max_ttl_s` seconds.
    pub fn new(clock: Clock, capacity: u64, max_ttl_s: u32) -> Expiring<V> {
        Expiring {
            map: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(Duration::from_secs(u64::from(max_ttl_s)))
                .build(),
            clock,
            max_ttl_s,
        }
    }

    /// Keeps `value` under `name` for `ttl_s` seconds (at most the
    /// longest allowed); a TTL of 0 keeps nothing (RFC 1035 §3.2.1).
    pub fn insert(&self, name: Name, value: V, ttl_s: u32) {
        let ttl_s = ttl_s.min(self.max_ttl_s);
        if ttl_s == 0 {
            return;
        }
        let until_ms = self.clock.now_ms() + u64::from(ttl_s) * 1000;
        self.map.insert(name, Kept { value, until_ms });
    }

    /// What is kept under `name`, while it lives.
    pub fn get(&self, name: &Name) -> Option<V> {
        let kept = self.map.get(name)?;
        (kept.until_ms > self.clock.now_ms()).then_some(kept.value)
    }

    pub fn flush_all(&self) {
        self.map.invalidate_all();
    }

    /// Forgets every name `matches` picks.
    pub fn flush_where(&self, matches: impl Fn(&Name) -> bool) {
        super::invalidate_where(&self.map, matches);
    }

    /// Names kept (moka's estimate, expired entries it has not dropped yet included).
    pub fn len(&self) -> u64 {
        self.map.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).expect("name")
    }

    #[test]
    fn an_entry_lives_for_its_own_ttl_capped_at_the_longest() {
        let clock = Clock::manual();
        let kept = Expiring::new(clock.clone(), 10, 100);
        kept.insert(name("a.lab."), 1, 60);
        kept.insert(name("b.lab."), 2, 1_000);
        kept.insert(name("zero.lab."), 3, 0);
        assert_eq!(
            kept.get(&name("A.Lab.")),
            Some(1),
            "names compare without case"
        );
        assert_eq!(kept.get(&name("zero.lab.")), None, "TTL 0 is not kept");
        clock.advance(60_000);
        assert_eq!(kept.get(&name("a.lab.")), None);
        assert_eq!(kept.get(&name("b.lab.")), Some(2));
        clock.advance(40_000);
        assert_eq!(kept.get(&name("b.lab.")), None, "capped at 100 s");
    }

    #[test]
    fn flush_where_forgets_only_what_it_picks() {
        let kept = Expiring::new(Clock::manual(), 10, 100);
        kept.insert(name("a.lab."), 1, 60);
        kept.insert(name("x.a.lab."), 2, 60);
        kept.insert(name("b.lab."), 3, 60);
        let a = name("a.lab.");
        kept.flush_where(|n| a.zone_of(n));
        assert_eq!(kept.get(&name("a.lab.")), None);
        assert_eq!(kept.get(&name("x.a.lab.")), None);
        assert_eq!(kept.get(&name("b.lab.")), Some(3));
    }
}
