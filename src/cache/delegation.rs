//! Zone cuts as the walk reads them, remembered whole.
//!
//! Assembling a cut from the record cache costs a lookup and a decode for
//! the NS set and for each server's A and AAAA sets: about 3.4 µs for a cut
//! with two servers among 1M cached entries, paid at every step of every
//! walk. A cut whose every server has an address is kept here as it was
//! assembled, together with the entries it was built from; it is used only
//! while none of them has been replaced, evicted or flushed (the store
//! marks those) and all are fresh, so it can never say more than the
//! record cache does. Cuts with servers lacking addresses are not kept:
//! the walk is about to resolve those names and must see the result.

use std::hash::BuildHasher;
use std::sync::Arc;

use super::Delegation;
use super::answer::CachedAnswer;

/// A cut, the entries it came from, and when the first of them expires.
struct Memo {
    /// The cut's owner name, lower-cased wire form.
    zone: Box<[u8]>,
    delegation: Delegation,
    parts: Box<[Arc<CachedAnswer>]>,
    fresh_until_ms: u64,
}

pub struct DelegationMemo {
    table: quick_cache::sync::Cache<u64, Arc<Memo>>,
    hasher: foldhash::fast::RandomState,
}

impl DelegationMemo {
    /// Room for `cuts` zone cuts; the least used go first.
    pub fn new(cuts: usize) -> DelegationMemo {
        DelegationMemo {
            table: quick_cache::sync::Cache::new(cuts.max(64)),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// The cut owned by `zone` (lower-cased wire form), while every entry it
    /// came from is still the store's and fresh at `now_ms`.
    pub fn get(&self, zone: &[u8], now_ms: u64) -> Option<Delegation> {
        let memo = self.table.get(&self.hasher.hash_one(zone))?;
        let valid = now_ms < memo.fresh_until_ms
            && *memo.zone == *zone
            && memo.parts.iter().all(|p| !p.is_superseded());
        valid.then(|| memo.delegation.clone())
    }

    /// Keeps `delegation`, built from `parts`, for the cut owned by `zone`.
    pub fn insert(&self, zone: &[u8], delegation: &Delegation, parts: Vec<Arc<CachedAnswer>>) {
        let Some(fresh_until_ms) = parts
            .iter()
            .map(|p| p.stored_ms + u64::from(p.ttl) * 1000)
            .min()
        else {
            return;
        };
        let memo = Memo {
            zone: zone.into(),
            delegation: delegation.clone(),
            parts: parts.into_boxed_slice(),
            fresh_until_ms,
        };
        self.table
            .insert(self.hasher.hash_one(zone), Arc::new(memo));
    }

    pub fn clear(&self) {
        self.table.clear();
    }
}
