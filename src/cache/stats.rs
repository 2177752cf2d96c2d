//! Cache counters, kept as relaxed atomics so the hot path pays one
//! uncontended add; the metrics endpoint reads them at scrape time.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Which store a counter belongs to (the `kind` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheKind {
    Answer,
    Record,
    Negative,
    Delegation,
}

impl CacheKind {
    pub const ALL: [CacheKind; 4] = [
        CacheKind::Answer,
        CacheKind::Record,
        CacheKind::Negative,
        CacheKind::Delegation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CacheKind::Answer => "answer",
            CacheKind::Record => "record",
            CacheKind::Negative => "negative",
            CacheKind::Delegation => "delegation",
        }
    }
}

#[derive(Debug, Default)]
struct KindCounters {
    hits: AtomicU64,
    misses: AtomicU64,
    inserts: AtomicU64,
    evictions: AtomicU64,
}

/// Counters by kind plus the cache-wide prefetch and stale counts.
#[derive(Debug, Default)]
pub struct CacheStats {
    kinds: [KindCounters; 4],
    pub prefetches: AtomicU64,
    pub stale_answers: AtomicU64,
}

impl CacheStats {
    fn of(&self, kind: CacheKind) -> &KindCounters {
        &self.kinds[kind as usize]
    }
    #[inline]
    pub fn hit(&self, kind: CacheKind) {
        self.of(kind).hits.fetch_add(1, Relaxed);
    }
    #[inline]
    pub fn miss(&self, kind: CacheKind) {
        self.of(kind).misses.fetch_add(1, Relaxed);
    }
    pub fn insert(&self, kind: CacheKind) {
        self.of(kind).inserts.fetch_add(1, Relaxed);
    }
    pub fn eviction(&self, kind: CacheKind) {
        self.of(kind).evictions.fetch_add(1, Relaxed);
    }
    pub fn hits(&self, kind: CacheKind) -> u64 {
        self.of(kind).hits.load(Relaxed)
    }
    pub fn misses(&self, kind: CacheKind) -> u64 {
        self.of(kind).misses.load(Relaxed)
    }
    pub fn inserts(&self, kind: CacheKind) -> u64 {
        self.of(kind).inserts.load(Relaxed)
    }
    pub fn evictions(&self, kind: CacheKind) -> u64 {
        self.of(kind).evictions.load(Relaxed)
    }
    pub fn total_evictions(&self) -> u64 {
        CacheKind::ALL.iter().map(|k| self.evictions(*k)).sum()
    }
}
