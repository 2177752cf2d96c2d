//! DNSSEC records that many cached answers end with, stored once.
//!
//! Every name a signed wildcard answers gets the same RRSIG over its
//! expansion (it signs the wildcard owner, RFC 4035 §5.3.4) and the same
//! NSEC proving that no closer name exists; every NXDOMAIN for a name in one
//! NSEC range gets the same proof. Kept inside each answer they were most
//! of its bytes (#28: 644 bytes of RSS per wildcard name, 141 without
//! validation; Unbound keeps the NSEC once in its RRset cache).
//!
//! When an answer's withheld records ([`super::withheld`]) run to the end
//! of the message — its authority section holds nothing else and its
//! additional section is empty — and include a proof, they are cut off
//! into a [`Tail`]: the same records made position-independent (owner
//! names uncompressed, or a pointer to the question name, which every
//! answer has at offset 12), looked up by content in [`Tails`] and shared
//! by every answer that ends with them. A client with DO is sent the
//! answer's own bytes and then the tail's; one without DO only the
//! answer's own bytes, with the counts lowered, as before.
//!
//! Sharing identical bytes is sound because a tail holds no pointer but
//! to offset 12: the same bytes mean "this answer's question name" in each
//! answer, which is what they meant in the answer they were cut from.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use super::answer::{append_offsets, offsets_after};
use crate::wire::{self, HEADER_LEN};

/// RFC 4034 §3, §4 and RFC 5155 §3: the only types a tail holds.
const RRSIG: u16 = 46;
const NSEC: u16 = 47;
const NSEC3: u16 = 50;

/// Shards of the table, so resolutions on several threads seldom wait.
const SHARDS: usize = 16;

/// The trailing DNSSEC records of answers, shared by those that end with them.
#[derive(Debug)]
pub struct Tail {
    /// The records, then where each of their TTL fields sits (relative to
    /// the records' start) as native-endian `u16`s.
    body: Box<[u8]>,
    /// How long the records are.
    len: u16,
    /// The bytes all live tails hold, which this one leaves when dropped.
    tally: Arc<AtomicUsize>,
}

impl Drop for Tail {
    fn drop(&mut self) {
        self.tally.fetch_sub(self.heap_bytes(), Ordering::Relaxed);
    }
}

impl Tail {
    /// The records: uncompressed names, or a pointer to the question name.
    #[inline]
    pub fn records(&self) -> &[u8] {
        self.body.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// Where each TTL field of [`Tail::records`] sits, from its start.
    #[inline]
    pub fn ttl_offsets(&self) -> impl Iterator<Item = usize> + '_ {
        offsets_after(&self.body, self.len)
    }

    /// Its allocations: its `Arc` and its body.
    pub fn heap_bytes(&self) -> usize {
        self.body.len() + std::mem::size_of::<Tail>() + 16
    }
}

/// The records of `wire` from `start` to its end as a [`Tail`]'s body, or
/// `None` when they are not all RRSIG, NSEC or NSEC3 records whose RDATA
/// names are uncompressed (RFC 4034 §3.1.7, §4.1.1 forbid compressing them),
/// or are not exactly the records the header counts up to the end.
fn position_independent(wire: &[u8], start: usize) -> Option<(Box<[u8]>, u16)> {
    let qname_end = wire::skip_name(wire, HEADER_LEN)?;
    let qname = wire.get(HEADER_LEN..qname_end)?;
    let mut records = Vec::with_capacity(wire.len() - start + 32);
    let mut offsets: Vec<u16> = Vec::new();
    let mut owner = Vec::with_capacity(wire::MAX_NAME_LEN);
    let mut at = start;
    while at < wire.len() {
        let rr = wire::read_rr(wire, at)?;
        let rdata = rr.ttl_at + 6;
        match rr.rtype {
            RRSIG => {
                wire::scan_plain_name(wire, rdata + 18)?;
            }
            NSEC => {
                wire::scan_plain_name(wire, rdata)?;
            }
            NSEC3 => {}
            _ => return None,
        }
        owner.clear();
        wire::expand_name(wire, at, &mut owner)?;
        if owner == qname {
            records.extend_from_slice(&[0xc0, HEADER_LEN as u8]);
        } else {
            records.extend_from_slice(&owner);
        }
        // Type and class, then the TTL.
        offsets.push(u16::try_from(records.len() + 4).ok()?);
        records.extend_from_slice(wire.get(rr.ttl_at - 4..rr.end)?);
        at = rr.end;
    }
    let len = u16::try_from(records.len()).ok()?;
    append_offsets(&mut records, &offsets);
    Some((records.into_boxed_slice(), len))
}

/// Tails by content: a new answer whose tail is already held by another
/// refers to that one.
///
/// An answer's weight in the store's budget does not count its tail (a
/// weight never changes while the entry is stored, and the tail's share
/// does); the tails' bytes are counted here, in the cache's reported
/// size, beside the store. Each tail lives only as long as an answer in
/// the store refers to it, so they add at most one tail per answer.
pub struct Tails {
    shards: Box<[Mutex<Shard>]>,
    hasher: foldhash::fast::RandomState,
    tally: Arc<AtomicUsize>,
}

#[derive(Default)]
struct Shard {
    /// By hash of the records; a hash collision only means the newer tail
    /// is not shared.
    by_hash: HashMap<u64, Weak<Tail>>,
    /// How many were held after the last sweep of dead ones.
    swept_at: usize,
}

impl Default for Tails {
    fn default() -> Tails {
        Tails {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: foldhash::fast::RandomState::default(),
            tally: Arc::default(),
        }
    }
}

impl Tails {
    /// The shared tail of `wire` from `start` (see the module doc), or
    /// `None` when those records cannot be made position-independent.
    pub fn share(&self, wire: &[u8], start: usize) -> Option<Arc<Tail>> {
        let (body, len) = position_independent(wire, start)?;
        let hash = self.hasher.hash_one(&body[..usize::from(len)]);
        let shard = self.shards.get(hash as usize % SHARDS)?;
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = shard.by_hash.get(&hash).and_then(Weak::upgrade)
            && held.body == body
        {
            return Some(held);
        }
        let tail = Arc::new(Tail {
            body,
            len,
            tally: self.tally.clone(),
        });
        self.tally.fetch_add(tail.heap_bytes(), Ordering::Relaxed);
        shard.by_hash.insert(hash, Arc::downgrade(&tail));
        // A dead tail's slot (and its `Arc`'s allocation, which a `Weak`
        // keeps) goes at the next sweep: whenever the shard has doubled.
        if shard.by_hash.len() > 2 * shard.swept_at + 64 {
            shard.by_hash.retain(|_, w| w.strong_count() > 0);
            shard.swept_at = shard.by_hash.len();
        }
        Some(tail)
    }

    /// Bytes the live tails hold.
    pub fn bytes(&self) -> usize {
        self.tally.load(Ordering::Relaxed)
    }

    /// Tails some answer still refers to.
    pub fn live(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let shard = s.lock().unwrap_or_else(PoisonError::into_inner);
                shard
                    .by_hash
                    .values()
                    .filter(|w| w.strong_count() > 0)
                    .count()
            })
            .sum()
    }
}
