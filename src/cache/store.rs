//! The one table behind the answer and record caches.
//!
//! Every entry is a response ready to send for one question: either an
//! RRset stored under its own (owner, type) with its RFC 2181 trust rank,
//! or a whole answer a resolution assembled (a CNAME chain, a negative
//! answer, a DO-bit answer). A client asking for (owner, type) in class IN
//! without DO has the same key as the RRset, so the common answer, one
//! RRset, is held once and serves both the walk and the hot path; the
//! answer cache and the record cache cannot disagree about it.
//!
//! Why not moka here: moka's bookkeeping measures 305 bytes an entry (353
//! with per-entry expiry), RSS over 1M entries, and a lookup spread over
//! 1M entries costs about 1.2 µs; the memory budget for a cached name is
//! 350 bytes in all. quick_cache (S3-FIFO, byte-weighted, sharded) costs
//! about 80 bytes an entry and about 400 ns for the same lookup. It has no
//! per-entry expiry: an expired entry is a miss for every reader (the TTL
//! is checked on each read) and stays until the size bound evicts it or a
//! newer answer replaces it, as in Unbound. moka still backs the smaller
//! stores (negative answers, server statistics, rate-limit buckets).
//!
//! Keys are 64-bit fingerprints of the key bytes; an entry always carries
//! its own question, so a read confirms the match and a fingerprint
//! collision is a miss, never a wrong answer.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use quick_cache::sync::{EntryAction, EntryResult};
use quick_cache::{Lifecycle, Weighter};

use super::answer::CachedAnswer;
use super::stats::{CacheKind, CacheStats};

/// quick_cache's own cost per entry beyond the value (its table slot and
/// queue links), measured as RSS over 1M entries; the weigher adds it so
/// that `cache.size_mb` bounds what the process holds.
const TABLE_OVERHEAD: usize = 80;

/// How long an insert waits for a concurrent insert of the same key.
const INSERT_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// A mimalloc block's rounding and the `Arc` counts, per allocation.
const ALLOC_OVERHEAD: usize = 24;

/// What an entry costs: its allocations and its share of the table.
pub fn weight(entry: &CachedAnswer) -> u64 {
    (std::mem::size_of::<CachedAnswer>()
        + entry.wire.len()
        + entry.ttl_offsets.len() * 2
        + 3 * ALLOC_OVERHEAD
        + TABLE_OVERHEAD) as u64
}

#[derive(Clone)]
struct Weigh;

impl Weighter<u64, Arc<CachedAnswer>> for Weigh {
    fn weight(&self, _key: &u64, value: &Arc<CachedAnswer>) -> u64 {
        weight(value)
    }
}

/// The keys are fingerprints already: hashing them again would only cost.
#[derive(Clone, Default)]
struct Fingerprinted;

impl BuildHasher for Fingerprinted {
    type Hasher = Passthrough;
    fn build_hasher(&self) -> Passthrough {
        Passthrough(0)
    }
}

struct Passthrough(u64);

impl Hasher for Passthrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed; fold anything else in regardless.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Marks what the size bound evicts, so per-thread tables drop it too, and counts it.
#[derive(Clone)]
struct OnEvict(Arc<CacheStats>);

impl Lifecycle<u64, Arc<CachedAnswer>> for OnEvict {
    type RequestState = ();
    fn on_evict(&self, _state: &mut (), _key: u64, value: Arc<CachedAnswer>) {
        value.supersede();
        self.0.eviction(value.kind());
    }
}

pub struct Store {
    inner: quick_cache::sync::Cache<u64, Arc<CachedAnswer>, Weigh, Fingerprinted, OnEvict>,
    hasher: foldhash::fast::RandomState,
    /// Tells this store's entries from another's in the per-thread tables
    /// (tests run several caches in one process).
    id: u64,
}

impl Store {
    pub fn new(max_bytes: u64, stats: Arc<CacheStats>) -> Store {
        let max_bytes = max_bytes.max(1);
        // Room to grow into, without reserving a table for the whole budget up front.
        let estimated = (max_bytes / 256).clamp(1024, 1 << 16) as usize;
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Store {
            inner: quick_cache::sync::Cache::with(
                estimated,
                max_bytes,
                Weigh,
                Fingerprinted,
                OnEvict(stats),
            ),
            hasher: foldhash::fast::RandomState::default(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// The fingerprint `key` is stored under (keyed per process, so a
    /// remote party cannot aim collisions at one slot).
    #[inline]
    pub fn fingerprint(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The entry for `key` (fingerprinted as `hash`), fresh or not.
    #[inline]
    pub fn get(&self, hash: u64, key: &[u8]) -> Option<Arc<CachedAnswer>> {
        self.inner.get(&hash).filter(|e| e.answers_key(key))
    }

    /// Stores `entry` under `hash`; whatever it replaces is marked superseded.
    ///
    /// The swap happens under the shard's lock, so an entry replaced by a
    /// concurrent insert is always marked (a per-thread table could
    /// otherwise keep serving it after a flush).
    pub fn insert(&self, hash: u64, entry: Arc<CachedAnswer>) {
        let mut new = Some(entry);
        let result = self.inner.entry(&hash, Some(INSERT_WAIT), |_, old| {
            if let Some(new) = new.take() {
                std::mem::replace(old, new).supersede();
            }
            EntryAction::Retain(())
        });
        match result {
            EntryResult::Vacant(slot) | EntryResult::Replaced(slot, _) => {
                if let Some(new) = new.take() {
                    let _ = slot.insert(new);
                }
            }
            EntryResult::Retained(()) | EntryResult::Removed(..) => {}
            EntryResult::Timeout => {
                if let Some(new) = new.take() {
                    self.inner.insert(hash, new);
                }
            }
        }
    }

    /// Keeps the entries `keep` says yes to; the others go at once.
    pub fn retain(&self, keep: impl Fn(&CachedAnswer) -> bool) {
        self.inner.retain(|_, e| {
            let kept = keep(e);
            if !kept {
                e.supersede();
            }
            kept
        });
    }

    pub fn len(&self) -> usize {
        self.inner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    pub fn weight(&self) -> u64 {
        self.inner.weight()
    }

    /// How many entries are whole answers and how many RRsets. A scan (about
    /// 10 ms per million entries): only the metrics scrape asks.
    pub fn count_by_kind(&self) -> (u64, u64) {
        let mut answers = 0;
        let mut records = 0;
        for (_, e) in self.inner.iter() {
            match e.kind() {
                CacheKind::Answer => answers += 1,
                _ => records += 1,
            }
        }
        (answers, records)
    }
}
