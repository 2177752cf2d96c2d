//! The record cache: RRsets keyed by (owner, type, class) with their trust rank.
//!
//! RFC 2181 §5.4.1 ranks data by where it came from; lower-ranked data never
//! replaces higher-ranked data that is still alive, so glue or an authority
//! section stuffed by some server cannot override an authoritative answer.

use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::{DNSClass, Name, Record, RecordType};
use moka::notification::RemovalCause;

use super::stats::{CacheKind, CacheStats};
use super::ttl::{Lifetime, PerEntryExpiry, TtlPolicy, is_fresh, remaining};
use crate::clock::Clock;

/// RFC 2181 §5.4.1 trust, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rank {
    /// Additional-section data: glue and addresses a server volunteered.
    Additional,
    /// Authority-section data of a non-authoritative answer: a referral's NS set.
    Referral,
    /// The answer section of a non-authoritative response.
    NonAuthAnswer,
    /// Authority-section data of an authoritative answer (the child's own NS set).
    AuthAuthority,
    /// The answer section of an authoritative answer.
    AuthAnswer,
}

/// Cache key: lower-cased owner, type, class.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordKey {
    pub name: Name,
    pub rtype: RecordType,
    pub class: DNSClass,
}

/// A cached RRset.
#[derive(Debug)]
pub struct CachedRrset {
    /// The records, TTLs as received (the set's TTL is `ttl`).
    pub records: Vec<Record>,
    /// The set's TTL after the clamps.
    pub ttl: u32,
    pub stored_ms: u64,
    pub rank: Rank,
}

impl Lifetime for CachedRrset {
    fn lifetime(&self) -> Duration {
        Duration::from_secs(u64::from(self.ttl))
    }
}

/// An RRset as read from the cache: TTLs already decremented.
#[derive(Debug, Clone)]
pub struct RrsetView {
    pub records: Vec<Record>,
    pub ttl: u32,
    pub rank: Rank,
}

pub struct RecordCache {
    inner: moka::sync::Cache<RecordKey, Arc<CachedRrset>>,
    policy: TtlPolicy,
    clock: Clock,
    stats: Arc<CacheStats>,
}

fn weigh(key: &RecordKey, value: &CachedRrset) -> u32 {
    let rdata: usize = value
        .records
        .iter()
        .map(|r| std::mem::size_of::<Record>() + r.name.len())
        .sum();
    (key.name.len() + std::mem::size_of::<RecordKey>() + rdata + 200) as u32
}

impl RecordCache {
    pub fn new(
        max_bytes: u64,
        policy: TtlPolicy,
        clock: Clock,
        stats: Arc<CacheStats>,
    ) -> RecordCache {
        let evict_stats = stats.clone();
        let inner = moka::sync::Cache::builder()
            .max_capacity(max_bytes.max(1))
            .weigher(|k: &RecordKey, v: &Arc<CachedRrset>| weigh(k, v))
            .expire_after(PerEntryExpiry)
            .support_invalidation_closures()
            .eviction_listener(move |_k, _v, cause| {
                if cause == RemovalCause::Size {
                    evict_stats.eviction(CacheKind::Record);
                }
            })
            .build();
        RecordCache {
            inner,
            policy,
            clock,
            stats,
        }
    }

    fn key(name: &Name, rtype: RecordType) -> RecordKey {
        RecordKey {
            name: name.to_lowercase(),
            rtype,
            class: DNSClass::IN,
        }
    }

    /// The live RRset for (name, type) with decremented TTLs.
    pub fn get(&self, name: &Name, rtype: RecordType) -> Option<RrsetView> {
        let now = self.clock.now_ms();
        match self.inner.get(&Self::key(name, rtype)) {
            Some(set) if is_fresh(set.ttl, set.stored_ms, now) => {
                self.stats.hit(CacheKind::Record);
                let left = remaining(set.ttl, set.stored_ms, now);
                let records = set
                    .records
                    .iter()
                    .map(|r| {
                        let mut r = r.clone();
                        r.ttl = left;
                        r
                    })
                    .collect();
                Some(RrsetView {
                    records,
                    ttl: left,
                    rank: set.rank,
                })
            }
            _ => {
                self.stats.miss(CacheKind::Record);
                None
            }
        }
    }

    /// Stores one RRset (all records share owner and type). Returns false
    /// when a live set of higher rank is kept instead.
    pub fn insert(&self, records: Vec<Record>, rank: Rank) -> bool {
        let Some(first) = records.first() else {
            return false;
        };
        let key = Self::key(&first.name, first.record_type());
        let now = self.clock.now_ms();
        if let Some(old) = self.inner.get(&key)
            && old.rank > rank
            && is_fresh(old.ttl, old.stored_ms, now)
        {
            return false;
        }
        // RFC 2181 §5.2: an RRset has one TTL; use the smallest seen.
        let ttl = self
            .policy
            .positive(records.iter().map(|r| r.ttl).min().unwrap_or(0));
        if ttl == 0 {
            return false;
        }
        self.inner.insert(
            key,
            Arc::new(CachedRrset {
                records,
                ttl,
                stored_ms: now,
                rank,
            }),
        );
        self.stats.insert(CacheKind::Record);
        true
    }

    pub fn remove(&self, name: &Name, rtype: RecordType) {
        self.inner.invalidate(&Self::key(name, rtype));
    }

    pub fn flush_all(&self) {
        self.inner.invalidate_all();
    }

    pub fn flush_name(&self, name: &Name, subtree: bool) {
        let name = name.clone();
        let _ = self.inner.invalidate_entries_if(move |k, _| {
            if subtree {
                name.zone_of(&k.name)
            } else {
                k.name == name
            }
        });
    }

    pub fn sync(&self) {
        self.inner.run_pending_tasks();
    }
    pub fn entry_count(&self) -> u64 {
        self.inner.entry_count()
    }
    pub fn weighted_size(&self) -> u64 {
        self.inner.weighted_size()
    }
}
