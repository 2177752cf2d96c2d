//! The record cache: RRsets keyed by (owner, type) with their trust rank.
//!
//! RFC 2181 §5.4.1 ranks data by where it came from; lower-ranked data never
//! replaces higher-ranked data that is still alive, so glue or an authority
//! section stuffed by some server cannot override an authoritative answer.
//!
//! Only class IN is resolved, so the key is that of the class-IN question
//! without CD for (owner, type), and an RRset is stored as the response to
//! that question (see [`super::store`]), its RRSIGs after it: one
//! compressed buffer that the hot path sends as it is to a client with DO,
//! cuts the RRSIGs from for one without (see [`super::withheld`]), and the
//! walk decodes again when it reads it.

use std::collections::HashMap;
use std::sync::Arc;

use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tracing::debug;

use super::answer::CachedAnswer;
use super::resolution::{Resolution, encode};
use super::stats::{CacheKind, CacheStats};
use super::store::Store;
use super::ttl::{TtlPolicy, is_fresh, remaining};
use crate::clock::Clock;
use crate::dnssec::Security;
use crate::wire::{self, KEY_MAX, MAX_NAME_LEN};

/// RFC 2181 §5.4.1 trust, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rank {
    /// Additional-section data: glue and addresses a server volunteered.
    Additional,
    /// Authority-section data of a non-authoritative answer: a referral's NS set.
    Referral,
    /// The answer section of a non-authoritative response.
    NonAuthAnswer,
    /// Authority-section data of an authoritative answer. The walk stores
    /// none: an answer's authority NS set is not a delegation and is not
    /// cached (see `resolve::driver`).
    AuthAuthority,
    /// The answer section of an authoritative answer.
    AuthAnswer,
}

/// An RRset as read from the cache: TTLs already decremented.
#[derive(Debug, Clone)]
pub struct RrsetView {
    pub records: Vec<Record>,
    pub ttl: u32,
    pub rank: Rank,
    pub security: Security,
}

pub struct RecordCache {
    store: Arc<Store<CachedAnswer>>,
    policy: Arc<TtlPolicy>,
    clock: Clock,
    stats: Arc<CacheStats>,
}

/// The records of a stored RRset again, TTLs as stored, without the
/// RRSIGs kept with it. `None` only if the bytes do not decode, which
/// [`RecordCache::insert`] rules out first.
pub(super) fn records_of(entry: &CachedAnswer) -> Option<Vec<Record>> {
    Message::from_vec(&entry.wire()).ok().map(|m| {
        m.answers
            .into_iter()
            .filter(|r| r.record_type() != RecordType::RRSIG)
            .collect()
    })
}

impl RecordCache {
    pub fn new(
        store: Arc<Store<CachedAnswer>>,
        policy: Arc<TtlPolicy>,
        clock: Clock,
        stats: Arc<CacheStats>,
    ) -> RecordCache {
        RecordCache {
            store,
            policy,
            clock,
            stats,
        }
    }

    /// The key of (name, type) written into `buf`: the class-IN question
    /// without CD, which clients with and without DO share.
    fn key_in<'b>(name: &Name, rtype: RecordType, buf: &'b mut [u8; KEY_MAX]) -> &'b [u8] {
        let mut owner = [0u8; MAX_NAME_LEN];
        let mut at = 0;
        for label in name.iter() {
            let end = at + 1 + label.len();
            if end + 1 > MAX_NAME_LEN {
                break; // a Name never exceeds 255 octets; stay in bounds regardless
            }
            owner[at] = label.len() as u8;
            owner[at + 1..end].copy_from_slice(label);
            at = end;
        }
        owner[at] = 0;
        wire::answer_key(&owner[..at + 1], u16::from(rtype), 1, 0, buf)
    }

    /// The live stored RRset for (name, type), glue and referral data included.
    fn live(&self, key: &[u8], now: u64) -> Option<Arc<CachedAnswer>> {
        self.store
            .get(self.store.fingerprint(key), key)
            .filter(|e| e.rank.is_some() && e.is_fresh(now))
    }

    /// The live stored RRset of type `rtype` owned by `owner` (lower-cased
    /// wire form), as stored: glue and referral data included.
    pub(super) fn entry(
        &self,
        owner: &[u8],
        rtype: RecordType,
        now: u64,
    ) -> Option<Arc<CachedAnswer>> {
        let mut buf = [0u8; KEY_MAX];
        let key = wire::answer_key(owner, u16::from(rtype), 1, 0, &mut buf);
        let found = self.live(key, now);
        match found {
            Some(_) => self.stats.hit(CacheKind::Record),
            None => self.stats.miss(CacheKind::Record),
        }
        found
    }

    /// The live RRset for (name, type) with decremented TTLs.
    pub fn get(&self, name: &Name, rtype: RecordType) -> Option<RrsetView> {
        let now = self.clock.now_ms();
        let mut buf = [0u8; KEY_MAX];
        let key = Self::key_in(name, rtype, &mut buf);
        let Some((set, rank)) = self.live(key, now).and_then(|e| e.rank.map(|r| (e, r))) else {
            self.stats.miss(CacheKind::Record);
            return None;
        };
        self.stats.hit(CacheKind::Record);
        let left = remaining(set.ttl, set.stored_ms, now);
        let mut records = records_of(&set)?;
        for r in &mut records {
            r.ttl = left;
        }
        Some(RrsetView {
            records,
            ttl: left,
            rank,
            security: set.security,
        })
    }

    /// The live RRSIGs kept with the RRset (name, type), TTLs decremented;
    /// empty for an unsigned or unvalidated set.
    pub fn signatures(&self, name: &Name, rtype: RecordType) -> Vec<Record> {
        let now = self.clock.now_ms();
        let mut buf = [0u8; KEY_MAX];
        let key = Self::key_in(name, rtype, &mut buf);
        let Some(set) = self.live(key, now).filter(|s| !s.withheld().is_empty()) else {
            return Vec::new();
        };
        let left = remaining(set.ttl, set.stored_ms, now);
        let mut sigs: Vec<Record> = Message::from_vec(&set.wire())
            .map(|m| m.answers)
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.record_type() == RecordType::RRSIG)
            .collect();
        for r in &mut sigs {
            r.ttl = left;
        }
        sigs
    }

    /// Groups `records` by (owner, type), each RRSIG with the RRset it
    /// covers, and stores each RRset at `rank` with `security`.
    pub fn insert_all(&self, records: &[Record], rank: Rank, security: Security) {
        let mut sets: HashMap<(Name, RecordType), (Vec<Record>, Vec<Record>)> = HashMap::new();
        for r in records {
            let rtype = match &r.data {
                RData::DNSSEC(DNSSECRData::RRSIG(sig)) => sig.input().type_covered,
                _ => r.record_type(),
            };
            let (set, sigs) = sets.entry((r.name.to_lowercase(), rtype)).or_default();
            if r.record_type() == RecordType::RRSIG {
                sigs.push(r.clone());
            } else {
                set.push(r.clone());
            }
        }
        for (_, (set, sigs)) in sets {
            if !set.is_empty() {
                self.insert_signed(set, sigs, rank, security);
            }
        }
    }

    /// Stores one RRset (all records share owner and type), not validated.
    /// Returns false when a live set of higher rank is kept instead.
    pub fn insert(&self, records: Vec<Record>, rank: Rank) -> bool {
        self.insert_signed(records, Vec::new(), rank, Security::Indeterminate)
    }

    /// Stores one RRset with the RRSIGs over it and what validation made of
    /// it, in one entry: the RRSIGs come last, and a query without DO is
    /// answered without them (see [`super::withheld`]).
    pub fn insert_signed(
        &self,
        mut records: Vec<Record>,
        sigs: Vec<Record>,
        rank: Rank,
        security: Security,
    ) -> bool {
        let Some(first) = records.first() else {
            return false;
        };
        let owner = first.name.to_lowercase();
        let rtype = first.record_type();
        let mut buf = [0u8; KEY_MAX];
        let key = Self::key_in(&owner, rtype, &mut buf);
        let now = self.clock.now_ms();
        let hash = self.store.fingerprint(key);
        // An assembled answer stored under the same question ranks as an
        // authoritative answer: only data as trusted replaces it.
        let live = self
            .store
            .get(hash, key)
            .filter(|old| is_fresh(old.ttl, old.stored_ms, now));
        if live
            .as_ref()
            .is_some_and(|old| old.rank.unwrap_or(Rank::AuthAnswer) > rank)
        {
            return false;
        }
        // RFC 2181 §5.2: an RRset has one TTL; use the smallest seen, clamped.
        let ttl = self
            .policy
            .positive(records.iter().map(|r| r.ttl).min().unwrap_or(0));
        if ttl == 0 {
            return false;
        }
        let count = records.len();
        records.extend(sigs);
        for r in &mut records {
            r.ttl = ttl;
        }
        let resolution = Resolution {
            rcode: ResponseCode::NoError,
            answers: records,
            authorities: Vec::new(),
            security,
        };
        let Some(mut set) = self.entry_for(&owner, rtype, &resolution, now) else {
            return false;
        };
        set.rank = Some(rank);
        set.security = security;
        // The same data at the same rank, stored so recently that it still
        // has 90% of the new TTL: keep the entry as it is. Every answer
        // repeats its zone's NS set and glue in the authority and additional
        // sections; storing them again each time cost two inserts per cold
        // name. Older copies are replaced, so a refresh (prefetch) renews
        // the TTL.
        if live.is_some_and(|old| {
            old.rank == Some(rank)
                && old.security == security
                && old.wire() == set.wire()
                && u64::from(remaining(old.ttl, old.stored_ms, now)) * 10 >= u64::from(ttl) * 9
        }) {
            return true;
        }
        if records_of(&set).is_none_or(|back| back.len() != count) {
            debug!(%owner, "an RRset that does not decode back is not cached");
            return false;
        }
        self.store.insert(hash, Arc::new(set));
        self.stats.insert(CacheKind::Record);
        true
    }

    fn entry_for(
        &self,
        owner: &Name,
        rtype: RecordType,
        resolution: &Resolution,
        now: u64,
    ) -> Option<CachedAnswer> {
        let entry = encode(owner, rtype, resolution, true)
            .and_then(|wire| CachedAnswer::from_wire(wire, now));
        if entry.is_none() {
            debug!(%owner, "an RRset hickory cannot encode is not cached");
        }
        entry
    }
}
