//! A small per-thread table in front of the shared store.
//!
//! A store lookup takes a shard lock, probes a hash table, follows the
//! entry's pointer and records the access for eviction; with moka in its
//! place that was about 13% of a cache-hit query's CPU under dnsperf (perf,
//! 5,000 hot names). The questions a resolver hears repeat
//! heavily, so each thread that answers queries keeps the answers it served
//! last in a direct-mapped table of [`SLOTS`] slots: one hash, one slot, one
//! comparison against the question the answer itself carries.
//!
//! Coherence: a slot holds the same `Arc<CachedAnswer>` the store holds.
//! When the store lets go of an entry (replaced by a newer answer, flushed,
//! evicted) it marks the answer superseded, and a slot whose answer is
//! superseded or no longer fresh is a miss. Every [`TOUCH_EVERY`]th hit on
//! a slot goes to the store anyway, so that its eviction still sees which
//! answers are popular.

use std::cell::RefCell;
use std::sync::Arc;

use super::answer::CachedAnswer;

/// Slots per thread (32 bytes each, 512 KiB a thread): room for the few
/// thousand names that carry most of a resolver's traffic. With 1,024 slots
/// a dnsperf run cycling through 5,000 names hit the table almost never.
const SLOTS: usize = 16 * 1024;

/// Every this many hits on a slot, the lookup is sent to the store instead.
const TOUCH_EVERY: u32 = 64;

#[derive(Default)]
struct Slot {
    /// Which answer cache filled it (tests run several in one process).
    owner: u64,
    hash: u64,
    hits: u32,
    answer: Option<Arc<CachedAnswer>>,
}

thread_local! {
    static FRONT: RefCell<Vec<Slot>> = RefCell::new((0..SLOTS).map(|_| Slot::default()).collect());
}

/// The answer for `key` (fingerprint `hash`) from store `owner`: from this
/// thread's table when the slot holds it, still the store's and fresh at
/// `now_ms`; otherwise from `fetch` (the store lookup), remembered in the
/// slot for next time.
#[inline]
pub fn get_or_fetch(
    owner: u64,
    hash: u64,
    key: &[u8],
    now_ms: u64,
    fetch: impl FnOnce() -> Option<Arc<CachedAnswer>>,
) -> Option<Arc<CachedAnswer>> {
    FRONT.with(|f| {
        let mut slots = f.borrow_mut();
        let slot = &mut slots[hash as usize % SLOTS];
        if slot.owner == owner
            && slot.hash == hash
            && let Some(answer) = &slot.answer
        {
            if answer.is_superseded() || !answer.is_fresh(now_ms) || !answer.answers_key(key) {
                slot.answer = None;
            } else {
                slot.hits = slot.hits.wrapping_add(1);
                if slot.hits % TOUCH_EVERY != 0 {
                    return Some(answer.clone());
                }
            }
        }
        let answer = fetch()?;
        let same = slot
            .answer
            .as_ref()
            .is_some_and(|a| Arc::ptr_eq(a, &answer));
        if !same {
            *slot = Slot {
                owner,
                hash,
                hits: 0,
                answer: Some(answer.clone()),
            };
        }
        Some(answer)
    })
}
