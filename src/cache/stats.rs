//! Cache counters; the metrics endpoint reads them at scrape time.
//!
//! Hits and misses are counted on every query, by every worker thread. A
//! shared atomic add would bounce one cache line between the cores and, as
//! a locked instruction, stop the CPU from overlapping a lookup's memory
//! reads with the next one's; so each thread counts in a stripe of its own
//! with a plain load and store, and a scrape sums the stripes. Threads past
//! the first [`OWNED_STRIPES`] share one more stripe with atomic adds.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

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

/// Stripes owned by one thread each; the worker threads start first.
const OWNED_STRIPES: usize = 31;

/// Hits and misses by kind, on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe {
    hits: [AtomicU64; 4],
    misses: [AtomicU64; 4],
}

thread_local! {
    /// This thread's stripe: `Some(i < OWNED_STRIPES)` if it owns one.
    static STRIPE: Cell<Option<usize>> = const { Cell::new(None) };
}

/// This thread's stripe index, handed out on first use.
#[inline]
fn stripe_index() -> usize {
    STRIPE.with(|s| match s.get() {
        Some(i) => i,
        None => {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let i = NEXT.fetch_add(1, Relaxed).min(OWNED_STRIPES);
            s.set(Some(i));
            i
        }
    })
}

/// Adds one in this thread's stripe: a plain store if the thread owns it.
#[inline]
fn bump(counters: &[Stripe], pick: impl Fn(&Stripe) -> &AtomicU64) {
    let i = stripe_index();
    let counter = pick(&counters[i]);
    if i < OWNED_STRIPES {
        counter.store(counter.load(Relaxed) + 1, Relaxed);
    } else {
        counter.fetch_add(1, Relaxed);
    }
}

#[derive(Debug, Default)]
struct KindCounters {
    inserts: AtomicU64,
    evictions: AtomicU64,
}

/// Counters by kind plus the cache-wide prefetch and stale counts.
#[derive(Debug)]
pub struct CacheStats {
    /// `OWNED_STRIPES` owned by one thread each, then the shared one.
    stripes: Box<[Stripe]>,
    kinds: [KindCounters; 4],
    pub prefetches: AtomicU64,
    pub stale_answers: AtomicU64,
}

impl Default for CacheStats {
    fn default() -> CacheStats {
        CacheStats {
            stripes: (0..=OWNED_STRIPES).map(|_| Stripe::default()).collect(),
            kinds: Default::default(),
            prefetches: AtomicU64::new(0),
            stale_answers: AtomicU64::new(0),
        }
    }
}

impl CacheStats {
    fn of(&self, kind: CacheKind) -> &KindCounters {
        &self.kinds[kind as usize]
    }
    #[inline]
    pub fn hit(&self, kind: CacheKind) {
        bump(&self.stripes, |s| &s.hits[kind as usize]);
    }
    #[inline]
    pub fn miss(&self, kind: CacheKind) {
        bump(&self.stripes, |s| &s.misses[kind as usize]);
    }
    pub fn insert(&self, kind: CacheKind) {
        self.of(kind).inserts.fetch_add(1, Relaxed);
    }
    pub fn eviction(&self, kind: CacheKind) {
        self.of(kind).evictions.fetch_add(1, Relaxed);
    }
    pub fn hits(&self, kind: CacheKind) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.hits[kind as usize].load(Relaxed))
            .sum()
    }
    pub fn misses(&self, kind: CacheKind) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.misses[kind as usize].load(Relaxed))
            .sum()
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
