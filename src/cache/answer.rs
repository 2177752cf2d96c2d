//! The answer cache: whole responses in wire form, keyed by question.
//!
//! A hit is one moka lookup with a stack-built key and a copy of stored
//! bytes with the ID, the question's spelling, the flags and the TTLs
//! patched in place. The stored TTLs are those of the RRsets at the moment
//! the answer was assembled from the record cache, and both decay with the
//! same clock, so an answer never shows an older (larger) TTL than the
//! RRsets it came from. Entries live on past their TTL for the serve-stale
//! window (RFC 8767); the hot path treats an expired entry as a miss.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hickory_proto::rr::Name;
use moka::notification::RemovalCause;

use super::front;
use super::stats::{CacheKind, CacheStats};
use super::ttl::{Lifetime, PerEntryExpiry, is_fresh, remaining};
use crate::clock::Clock;
use crate::wire::{self, ClientQuery, HEADER_LEN, flags};

/// A response ready to send but for ID, flags, question case and TTLs.
#[derive(Debug)]
pub struct CachedAnswer {
    /// The response with ID 0, the question lower-cased, no OPT record.
    pub wire: Box<[u8]>,
    /// Where each TTL field sits in `wire`.
    pub ttl_offsets: Box<[u16]>,
    pub stored_ms: u64,
    /// The smallest TTL in the message: the entry is fresh this long.
    pub ttl: u32,
    /// Seconds past `ttl` that moka keeps it for serve-stale.
    pub stale_window: u32,
    /// Set by the first hit that asks for a prefetch, so only one is sent.
    pub prefetch_claimed: AtomicBool,
    /// Whether it answers a query with the DO bit (part of the key).
    dnssec_ok: bool,
    /// Set when moka lets go of it, so per-thread tables drop it too.
    superseded: AtomicBool,
}

impl Lifetime for CachedAnswer {
    fn lifetime(&self) -> Duration {
        Duration::from_secs(u64::from(self.ttl) + u64::from(self.stale_window))
    }
}

impl CachedAnswer {
    /// Wraps an encoded response (ID and flags are rewritten on every send).
    /// `None` when the bytes do not walk cleanly (never cache what we cannot patch).
    pub fn from_wire(mut wire: Vec<u8>, stored_ms: u64, stale_window: u32) -> Option<CachedAnswer> {
        let (offsets, min_ttl) = wire::ttl_offsets(&wire)?;
        wire[0] = 0;
        wire[1] = 0;
        let qlen = wire::read_u16(&wire, 4)?;
        if qlen != 1 {
            return None;
        }
        // Lower-case the question so a hit for any spelling patches the same length.
        let mut at = HEADER_LEN;
        while let Some(&len) = wire.get(at) {
            if len == 0 || len > 63 {
                break;
            }
            let end = (at + 1 + len as usize).min(wire.len());
            wire[at + 1..end].make_ascii_lowercase();
            at = end;
        }
        Some(CachedAnswer {
            wire: wire.into_boxed_slice(),
            ttl_offsets: offsets.into_boxed_slice(),
            stored_ms,
            ttl: min_ttl.unwrap_or(0),
            stale_window,
            prefetch_claimed: AtomicBool::new(false),
            dnssec_ok: false,
            superseded: AtomicBool::new(false),
        })
    }

    /// True when this is the answer stored under `key` (see [`wire::answer_key`]):
    /// the same question, lower-cased, and the same DO bit.
    #[inline]
    pub fn answers_key(&self, key: &[u8]) -> bool {
        let Some((&dnssec_ok, question)) = key.split_last() else {
            return false;
        };
        (dnssec_ok == 1) == self.dnssec_ok
            && self.wire.get(HEADER_LEN..HEADER_LEN + question.len()) == Some(question)
    }

    /// True once the answer cache no longer holds it.
    #[inline]
    pub fn is_superseded(&self) -> bool {
        self.superseded.load(Ordering::Relaxed)
    }

    #[inline]
    pub fn is_fresh(&self, now_ms: u64) -> bool {
        is_fresh(self.ttl, self.stored_ms, now_ms)
    }

    /// True in the last tenth of the entry's TTL: time to refresh it in the background.
    #[inline]
    pub fn wants_prefetch(&self, now_ms: u64) -> bool {
        self.ttl >= 10 && now_ms.saturating_sub(self.stored_ms) * 10 >= u64::from(self.ttl) * 9000
    }

    /// True once, for the hit that should trigger the prefetch.
    pub fn claim_prefetch(&self) -> bool {
        !self.prefetch_claimed.swap(true, Ordering::Relaxed)
    }

    pub fn rcode(&self) -> u8 {
        self.wire.get(3).map_or(0, |b| b & 0x0f)
    }

    /// Writes the response for `query` into `out` (cleared first).
    ///
    /// `stale_ttl`: when set, every TTL is this value (RFC 8767 §4) instead
    /// of the decayed one. `limit`: the client's UDP size; a response that
    /// does not fit is cut to header + question with TC=1 (RFC 1035 §4.2.1).
    /// Returns true when the full answer was written.
    pub fn render(
        &self,
        query: &ClientQuery<'_>,
        now_ms: u64,
        ra: bool,
        stale_ttl: Option<u32>,
        limit: usize,
        out: &mut Vec<u8>,
    ) -> bool {
        out.clear();
        out.extend_from_slice(&self.wire);
        out[0..2].copy_from_slice(&query.id.to_be_bytes());
        let stored_flags = u16::from_be_bytes([out[2], out[3]]);
        let mut f = flags::QR
            | (stored_flags & (flags::RCODE_MASK | flags::AA))
            | (query.flags & (flags::RD | flags::CD));
        if ra {
            f |= flags::RA;
        }
        out[2..4].copy_from_slice(&f.to_be_bytes());
        let qn = query.qname.len();
        if let Some(dst) = out.get_mut(HEADER_LEN..HEADER_LEN + qn) {
            dst.copy_from_slice(query.qname);
        }
        for &off in self.ttl_offsets.iter() {
            let at = off as usize;
            if let Some(field) = out.get_mut(at..at + 4) {
                let stored = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
                let ttl = stale_ttl.unwrap_or_else(|| remaining(stored, self.stored_ms, now_ms));
                field.copy_from_slice(&ttl.to_be_bytes());
            }
        }
        if let Some(edns) = query.edns {
            let ar = wire::read_u16(out, 10).unwrap_or(0).saturating_add(1);
            out[10..12].copy_from_slice(&ar.to_be_bytes());
            wire::push_opt(out, edns.dnssec_ok, 0, None);
        }
        if out.len() <= limit {
            return true;
        }
        // Truncate: header + question (+ OPT), TC=1, so the client retries over TCP.
        let question_end = HEADER_LEN + qn + 4;
        out.truncate(question_end);
        let f = u16::from_be_bytes([out[2], out[3]]) | flags::TC;
        out[2..4].copy_from_slice(&f.to_be_bytes());
        out[4..12].copy_from_slice(&[0, 1, 0, 0, 0, 0, 0, query.edns.is_some() as u8]);
        if let Some(edns) = query.edns {
            wire::push_opt(out, edns.dnssec_ok, 0, None);
        }
        false
    }
}

/// Whole answers by question.
pub struct AnswerCache {
    inner: moka::sync::Cache<Box<[u8]>, Arc<CachedAnswer>>,
    /// Tells this cache's answers from another's in the per-thread tables.
    id: u64,
    stale_window: u32,
    clock: Clock,
    stats: Arc<CacheStats>,
}

/// Approximate bytes an entry holds, for the weigher: key, value, and
/// moka's own bookkeeping, which measures about 350 bytes an entry (RSS
/// over 200k entries), so that `cache.size_mb` bounds what the process holds.
fn weigh(key: &[u8], value: &CachedAnswer) -> u32 {
    (key.len()
        + value.wire.len()
        + value.ttl_offsets.len() * 2
        + std::mem::size_of::<CachedAnswer>()
        + 350) as u32
}

/// moka hands the weigher the key as stored (`&Box<[u8]>`).
#[allow(clippy::borrowed_box)]
fn weigh_entry(key: &Box<[u8]>, value: &Arc<CachedAnswer>) -> u32 {
    weigh(key, value)
}

impl AnswerCache {
    pub fn new(
        max_bytes: u64,
        stale_window: u32,
        clock: Clock,
        stats: Arc<CacheStats>,
    ) -> AnswerCache {
        let evict_stats = stats.clone();
        let inner = moka::sync::Cache::builder()
            .max_capacity(max_bytes.max(1))
            .weigher(weigh_entry)
            .expire_after(PerEntryExpiry)
            .eviction_listener(move |_k, v: Arc<CachedAnswer>, cause| {
                v.superseded.store(true, Ordering::Relaxed);
                if cause == RemovalCause::Size {
                    evict_stats.eviction(CacheKind::Answer);
                }
            })
            .build();
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        AnswerCache {
            inner,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            stale_window,
            clock,
            stats,
        }
    }

    /// The entry for a key built with [`wire::answer_key`], fresh or stale.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<Arc<CachedAnswer>> {
        self.inner.get(key)
    }

    /// A fresh entry for `key`, counting the hit or the miss. Served from
    /// this thread's table of recent answers when it can be (see [`front`]).
    #[inline]
    pub fn lookup_fresh(&self, key: &[u8], now_ms: u64) -> Option<Arc<CachedAnswer>> {
        let found = front::get_or_fetch(self.id, key, now_ms, || {
            self.inner.get(key).filter(|a| a.is_fresh(now_ms))
        });
        match found {
            Some(a) => {
                self.stats.hit(CacheKind::Answer);
                Some(a)
            }
            _ => {
                self.stats.miss(CacheKind::Answer);
                None
            }
        }
    }

    /// Stores an encoded response under `key`; returns the entry (or `None`
    /// when the bytes could not be walked, in which case nothing is cached).
    pub fn insert(&self, key: &[u8], response: Vec<u8>) -> Option<Arc<CachedAnswer>> {
        let mut entry = CachedAnswer::from_wire(response, self.clock.now_ms(), self.stale_window)?;
        entry.dnssec_ok = key.last() == Some(&1);
        let entry = Arc::new(entry);
        if entry.ttl == 0 {
            return Some(entry); // TTL 0 answers are used once, never stored (RFC 1035 §3.2.1)
        }
        self.inner.insert(key.into(), entry.clone());
        self.stats.insert(CacheKind::Answer);
        Some(entry)
    }

    pub fn remove(&self, key: &[u8]) {
        self.inner.invalidate(key);
    }

    pub fn flush_all(&self) {
        self.inner.invalidate_all();
    }

    /// Drops answers whose question is `name` (or below it, with `subtree`).
    pub fn flush_name(&self, name: &Name, subtree: bool) {
        let target = name_wire_lower(name);
        super::invalidate_where(&self.inner, |k| {
            let qname_len = k.len().saturating_sub(5);
            let qname = &k[..qname_len];
            if subtree {
                wire_name_at_or_below(qname, &target)
            } else {
                qname == target.as_slice()
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

/// A name's lower-cased uncompressed wire form.
pub fn name_wire_lower(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend(label.iter().map(|b| b.to_ascii_lowercase()));
    }
    out.push(0);
    out
}

/// True when wire name `name` equals `zone` or ends with it at a label boundary.
pub fn wire_name_at_or_below(name: &[u8], zone: &[u8]) -> bool {
    let mut at = 0;
    loop {
        if name.get(at..) == Some(zone) {
            return true;
        }
        match name.get(at) {
            Some(0) | None => return false,
            Some(&len) => at += 1 + len as usize,
        }
    }
}
