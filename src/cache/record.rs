//! The record cache: RRsets keyed by (owner, type) with their trust rank.
//!
//! RFC 2181 §5.4.1 ranks data by where it came from; lower-ranked data never
//! replaces higher-ranked data that is still alive, so glue or an authority
//! section stuffed by some server cannot override an authoritative answer.
//!
//! Only class IN is resolved, so the class is not part of the key. An RRset
//! is kept in wire form (one buffer, names compressed within it) rather than
//! as hickory `Record`s: a `Record` is 272 bytes before its RDATA, the wire
//! form of an A record about 30. Reads decode it again; they happen on the
//! walk, never on a cache hit (the answer cache serves those).

use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::{Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};
use moka::notification::RemovalCause;
use tracing::debug;

use super::answer::{name_wire_lower, wire_name_at_or_below};
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

/// Cache key: the lower-cased owner in uncompressed wire form, then the type.
type RecordKey = Box<[u8]>;

/// The longest key: a 255-octet name and two octets of type.
const KEY_MAX: usize = 257;

/// A cached RRset.
#[derive(Debug)]
pub struct CachedRrset {
    /// The records in wire form, TTLs as received (the set's TTL is `ttl`).
    wire: Box<[u8]>,
    /// The set's TTL after the clamps.
    pub ttl: u32,
    pub stored_ms: u64,
    pub rank: Rank,
}

impl CachedRrset {
    /// The records again. `None` only if the stored bytes do not decode,
    /// which [`RecordCache::insert`] rules out by decoding them once first.
    fn records(&self) -> Option<Vec<Record>> {
        let mut decoder = BinDecoder::new(&self.wire);
        let mut records = Vec::with_capacity(1);
        while !decoder.is_empty() {
            records.push(Record::read(&mut decoder).ok()?);
        }
        Some(records)
    }
}

impl Lifetime for CachedRrset {
    fn lifetime(&self) -> Duration {
        Duration::from_secs(u64::from(self.ttl))
    }
}

/// The wire form of an RRset, or `None` if hickory cannot encode it.
fn encode_rrset(records: &[Record]) -> Option<Box<[u8]>> {
    let mut buf = Vec::with_capacity(64);
    let mut encoder = BinEncoder::new(&mut buf);
    for r in records {
        r.emit(&mut encoder).ok()?;
    }
    Some(buf.into_boxed_slice())
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
    policy: Arc<TtlPolicy>,
    clock: Clock,
    stats: Arc<CacheStats>,
}

/// Approximate bytes an entry holds: key, value, and moka's bookkeeping
/// (about 350 bytes an entry, measured).
#[allow(clippy::borrowed_box)]
fn weigh(key: &RecordKey, value: &Arc<CachedRrset>) -> u32 {
    (key.len() + value.wire.len() + std::mem::size_of::<CachedRrset>() + 350) as u32
}

impl RecordCache {
    pub fn new(
        max_bytes: u64,
        policy: Arc<TtlPolicy>,
        clock: Clock,
        stats: Arc<CacheStats>,
    ) -> RecordCache {
        let evict_stats = stats.clone();
        let inner = moka::sync::Cache::builder()
            .max_capacity(max_bytes.max(1))
            .weigher(weigh)
            .expire_after(PerEntryExpiry)
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
        let mut buf = [0u8; KEY_MAX];
        Self::key_in(name, rtype, &mut buf).into()
    }

    /// The key written into `buf`, for lookups: no allocation.
    fn key_in<'b>(name: &Name, rtype: RecordType, buf: &'b mut [u8; KEY_MAX]) -> &'b [u8] {
        let mut at = 0;
        for label in name.iter() {
            let end = at + 1 + label.len();
            if end + 3 > KEY_MAX {
                break; // a Name never exceeds 255 octets; stay in bounds regardless
            }
            buf[at] = label.len() as u8;
            for (o, b) in buf[at + 1..end].iter_mut().zip(label) {
                *o = b.to_ascii_lowercase();
            }
            at = end;
        }
        buf[at] = 0;
        buf[at + 1..at + 3].copy_from_slice(&u16::from(rtype).to_be_bytes());
        &buf[..at + 3]
    }

    /// The live RRset for (name, type) with decremented TTLs.
    pub fn get(&self, name: &Name, rtype: RecordType) -> Option<RrsetView> {
        let now = self.clock.now_ms();
        let mut buf = [0u8; KEY_MAX];
        match self.inner.get(Self::key_in(name, rtype, &mut buf)) {
            Some(set) if is_fresh(set.ttl, set.stored_ms, now) => {
                self.stats.hit(CacheKind::Record);
                let left = remaining(set.ttl, set.stored_ms, now);
                let mut records = set.records()?;
                for r in &mut records {
                    r.ttl = left;
                }
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
        let live = self
            .inner
            .get(&key)
            .filter(|old| is_fresh(old.ttl, old.stored_ms, now));
        if live.as_ref().is_some_and(|old| old.rank > rank) {
            return false;
        }
        // RFC 2181 §5.2: an RRset has one TTL; use the smallest seen.
        let ttl = self
            .policy
            .positive(records.iter().map(|r| r.ttl).min().unwrap_or(0));
        if ttl == 0 {
            return false;
        }
        let Some(wire) = encode_rrset(&records) else {
            debug!(owner = %first.name, "an RRset hickory cannot encode is not cached");
            return false;
        };
        // The same data at the same rank, stored so recently that it still
        // has 90% of the new TTL: keep the entry as it is. Every answer
        // repeats its zone's NS set and glue in the authority and additional
        // sections; storing them again each time cost two moka inserts per
        // cold name. Older copies are replaced, so a refresh (prefetch)
        // renews the TTL.
        if live.is_some_and(|old| {
            old.rank == rank
                && old.wire == wire
                && u64::from(remaining(old.ttl, old.stored_ms, now)) * 10 >= u64::from(ttl) * 9
        }) {
            return true;
        }
        let set = CachedRrset {
            wire,
            ttl,
            stored_ms: now,
            rank,
        };
        if set.records().is_none_or(|back| back.len() != records.len()) {
            debug!(owner = %first.name, "an RRset that does not decode back is not cached");
            return false;
        }
        self.inner.insert(key, Arc::new(set));
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
        let target = name_wire_lower(name);
        super::invalidate_where(&self.inner, |k| {
            let owner = &k[..k.len().saturating_sub(2)];
            if subtree {
                wire_name_at_or_below(owner, &target)
            } else {
                owner == target.as_slice()
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
