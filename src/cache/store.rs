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
//! Why a table of our own: a cache hit over a million entries is paid in
//! DRAM misses (about 160 ns each on the reference VM), and in anything
//! that stops the CPU from overlapping one lookup's misses with the next
//! one's: a lock, a reference-count increment, a shared counter. moka took
//! about 1.2 µs a lookup and 305 bytes of bookkeeping an entry; quick_cache
//! took about 570 ns (a shard lock, a hash table of indices into an entry
//! array, an `Arc` clone), which is four dependent misses and two locked
//! instructions. Here a read is an open-addressing probe of 16-byte slots
//! (fingerprint, pointer) and one load of the entry, whose wire form is
//! inline (see `CachedAnswer`): two dependent misses, no lock and no
//! write shared with other readers. Readers are protected by epochs
//! (crossbeam-epoch): a removed entry is freed only once every thread that
//! could still hold it has left its pinned section, so a hit needs no
//! reference count. Writers take the shard's mutex. The two misses of one
//! lookup are dependent, but those of different lookups are not: a UDP
//! worker prefetches the slots and then the entries of a whole received
//! batch ([`Store::warm`]), so the batch pays about two misses in all.
//!
//! Eviction is CLOCK over each shard's slots, weighted in bytes: a hit sets
//! the entry's referenced bit (a plain store, once), and the hand spares an
//! entry whose bit is set once, clearing it. An expired entry is a miss for
//! every reader (the TTL is checked on each read) and stays until the hand
//! reaches it or a newer answer replaces it, as in Unbound.
//!
//! Keys are 64-bit keyed fingerprints of the key bytes; an entry always
//! carries its own question, so a read confirms the match and a
//! fingerprint collision is a miss, never a wrong answer.
//!
//! The module is self-contained (std, crossbeam-epoch, foldhash) and
//! generic over its [`Entry`], so that `loom/` can compile this very file
//! against loom's atomics and model-check its readers against its writers
//! (`--cfg taproot_loom`; see `loom/README.md`).

use std::hash::BuildHasher;
use std::sync::{Arc, PoisonError};

use crossbeam_epoch::Guard;

#[cfg(taproot_loom)]
use loom::sync::{
    Mutex, MutexGuard,
    atomic::{AtomicPtr, AtomicU64, Ordering},
};
#[cfg(not(taproot_loom))]
use std::sync::{
    Mutex, MutexGuard,
    atomic::{AtomicPtr, AtomicU64, Ordering},
};

/// Keyed per process, so a remote party cannot aim collisions at one
/// slot; under loom, fixed, since a model must run the same way each time.
#[cfg(not(taproot_loom))]
type Keyed = foldhash::fast::RandomState;
#[cfg(taproot_loom)]
type Keyed = foldhash::fast::FixedState;

/// What the store needs of what it holds.
pub trait Entry: Send + Sync + 'static {
    /// True when this entry is the one stored under `key`: fingerprints
    /// collide, keys do not.
    fn answers_key(&self, key: &[u8]) -> bool;
    /// Records a hit for the eviction hand (CLOCK's referenced bit).
    fn touch(&self);
    /// Clears the referenced bit, saying whether it was set.
    fn take_reference(&self) -> bool;
    /// Told once, when the store lets go of it.
    fn supersede(&self);
    /// What it costs against the budget, in bytes (see [`TABLE_OVERHEAD`]).
    fn weight(&self) -> u64;
    /// Whole answers and RRsets are counted apart ([`Store::count_by_kind`]).
    fn is_answer(&self) -> bool;
    /// Starts loading what a hit reads beyond the entry itself (a
    /// prefetch hint; [`Store::warm`] calls it once the entry's own lines
    /// are on their way).
    #[inline(always)]
    fn warm(&self) {}
}

/// Shards, each with its own writer lock and table; a power of two. One
/// under loom, so that a model's few keys meet in one table; two under
/// miri, whose runs of the tests below are a hundredth of the size.
const SHARDS: usize = if cfg!(taproot_loom) {
    1
} else if cfg!(miri) {
    2
} else {
    64
};

/// Slots a shard's table starts with; a power of two. Four under loom and
/// miri, so that a few keys already rebuild the table.
const MIN_SLOTS: usize = if cfg!(any(taproot_loom, miri)) { 4 } else { 64 };

/// Slot tags: no entry ever, and an entry removed (probes go on past it).
const EMPTY: u64 = 0;
const TOMBSTONE: u64 = 1;

/// A table slot and its share of the room left free for short probes, at
/// the worst: live slots are between 3/8 and 3/4 of the table (16 bytes a
/// slot, so up to 43 an entry), and while a shard grows, its old table
/// (half the size) waits for the epoch collector. [`Entry::weight`] counts
/// it in.
pub const TABLE_OVERHEAD: usize = 64;

/// A pinned section of the global epoch collector: while it lives, entries
/// read from the store stay alive. It is the only guard the store takes, so
/// a guard of some other `crossbeam_epoch::Collector`, which would protect
/// nothing here, cannot be passed in (crossbeam-skiplist checks the same at
/// run time in `check_guard`).
pub struct Pinned(Guard);

/// Marks the start of a section in which entries read from the store stay
/// alive. A UDP worker pins once for each batch of datagrams; a pin taken
/// while another is held costs a thread-local increment.
#[inline]
pub fn pin() -> Pinned {
    Pinned(crossbeam_epoch::pin())
}

/// The most entries one [`Store::warm`] follows to what they point to.
const WARM_MAX: usize = 64;

/// Slots in one 64-byte cache line.
const SLOTS_PER_LINE: usize = 64 / std::mem::size_of::<Slot<u8>>();

/// Asks the CPU to bring the line holding `at` into its caches. A hint:
/// it never faults, so a pointer the table has just let go of is harmless.
#[inline(always)]
fn load_line<T>(at: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch instruction reads nothing the program sees and
    // cannot fault.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(at.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

/// Starts loading the lines `bytes` spans.
#[inline(always)]
pub fn load_bytes(bytes: &[u8]) {
    for offset in (0..bytes.len()).step_by(64) {
        load_line(bytes.as_ptr().wrapping_add(offset));
    }
}

/// Prefetches the lines of an entry a hit reads: its header, the question
/// it is checked against and the answer it renders (the cache keeps them
/// inline).
#[inline(always)]
fn load_entry<E>(entry: *const E) {
    let base = entry.cast::<u8>();
    for offset in (0..std::mem::size_of::<E>()).step_by(64) {
        load_line(base.wrapping_add(offset));
    }
}

struct Slot<E> {
    /// [`EMPTY`], [`TOMBSTONE`] or the entry's fingerprint (see [`tag_of`]).
    tag: AtomicU64,
    /// An `Arc<E>` turned into a raw pointer: the table's own count.
    entry: AtomicPtr<E>,
}

struct Table<E> {
    /// A power of two long.
    slots: Box<[Slot<E>]>,
}

impl<E> Table<E> {
    fn with_slots(n: usize) -> Table<E> {
        Table {
            slots: (0..n)
                .map(|_| Slot {
                    tag: AtomicU64::new(EMPTY),
                    entry: AtomicPtr::new(std::ptr::null_mut()),
                })
                .collect(),
        }
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }
}

/// The writer's books for one shard.
#[derive(Default)]
struct Books {
    live: usize,
    tombstones: usize,
    weight: u64,
    /// Live entries that are assembled answers (the rest are RRsets).
    answers: usize,
    /// The CLOCK hand.
    hand: usize,
}

struct Shard<E> {
    /// Read without a lock; replaced (and the old one retired) when it grows.
    table: AtomicPtr<Table<E>>,
    books: Mutex<Books>,
}

/// A pointer handed to the epoch collector to drop later.
struct Retired<T>(*mut T);

// SAFETY: the pointee may move to the thread that runs the deferred drop
// (`T: Send`: an `Entry` is, a `Table` holds atomics only), and the
// collector is its only owner once retired.
unsafe impl<T: Send> Send for Retired<T> {}

impl<T> Retired<T> {
    /// Taken whole, so a closure captures the `Send` wrapper, not its field.
    fn into_ptr(self) -> *mut T {
        self.0
    }
}

/// The slot tag for a fingerprint: never [`EMPTY`] or [`TOMBSTONE`].
#[inline]
fn tag_of(hash: u64) -> u64 {
    hash.max(2)
}

pub struct Store<E: Entry> {
    shards: Box<[Shard<E>]>,
    /// Each shard's byte budget.
    shard_bytes: u64,
    hasher: Keyed,
    /// Told of each entry the hand evicts (the cache counts them by kind).
    on_evict: Box<dyn Fn(&E) + Send + Sync>,
}

impl<E: Entry> Store<E> {
    pub fn new(max_bytes: u64, on_evict: impl Fn(&E) + Send + Sync + 'static) -> Store<E> {
        Store {
            shards: (0..SHARDS)
                .map(|_| Shard {
                    table: AtomicPtr::new(Box::into_raw(Box::new(Table::with_slots(MIN_SLOTS)))),
                    books: Mutex::new(Books::default()),
                })
                .collect(),
            shard_bytes: (max_bytes / SHARDS as u64).max(1),
            hasher: Keyed::default(),
            on_evict: Box::new(on_evict),
        }
    }

    /// The fingerprint `key` is stored under (keyed per process, so a
    /// remote party cannot aim collisions at one slot).
    #[inline]
    pub fn fingerprint(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    fn shard(&self, hash: u64) -> &Shard<E> {
        // The top bits pick the shard (with 64 shards, `hash >> 58`); the
        // low bits the slot.
        &self.shards[(((hash >> 32) * SHARDS as u64) >> 32) as usize]
    }

    /// The entry for `key` (fingerprinted as `hash`), fresh or not, alive
    /// as long as `guard`.
    #[inline]
    pub fn find<'g>(&'g self, hash: u64, key: &[u8], _guard: &'g Pinned) -> Option<&'g E> {
        let tag = tag_of(hash);
        // SAFETY: tables are freed through the epoch collector only, and
        // `_guard` keeps this thread pinned.
        let table = unsafe { &*self.shard(hash).table.load(Ordering::Acquire) };
        let mask = table.mask();
        let mut i = hash as usize & mask;
        for _ in 0..=mask {
            let slot = &table.slots[i];
            let t = slot.tag.load(Ordering::Acquire);
            if t == EMPTY {
                return None;
            }
            if t == tag {
                // SAFETY: as for the table; a slot reused for another key
                // since the tag was read is caught by `answers_key`.
                let entry = unsafe { slot.entry.load(Ordering::Acquire).as_ref() };
                if let Some(entry) = entry
                    && entry.answers_key(key)
                {
                    entry.touch();
                    return Some(entry);
                }
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// Starts loading, without waiting for them, the table slots and then
    /// the entries that lookups of `hashes` will read.
    ///
    /// A lookup over a large cache is two dependent DRAM misses (the slot,
    /// then the entry it points to), and a lone lookup waits for both in
    /// turn. A UDP worker receives its queries in batches, so it can ask for
    /// every slot of the batch at once, then for every entry, then for what
    /// each entry points to ([`Entry::warm`]), and pay about three misses
    /// for the whole batch instead of three for each query.
    pub fn warm(&self, hashes: &[u64], _guard: &Pinned) {
        let mut found = [std::ptr::null::<E>(); WARM_MAX];
        let mut n = 0;
        for &hash in hashes {
            // SAFETY: as in `find`: tables are freed through the collector.
            let table = unsafe { &*self.shard(hash).table.load(Ordering::Acquire) };
            load_line(&table.slots[hash as usize & table.mask()]);
        }
        for &hash in hashes {
            let tag = tag_of(hash);
            // SAFETY: as above.
            let table = unsafe { &*self.shard(hash).table.load(Ordering::Acquire) };
            // Only the home slot's line: an entry displaced further along
            // is found by the lookup itself.
            let mut i = hash as usize & table.mask();
            for _ in 0..SLOTS_PER_LINE {
                let slot = &table.slots[i];
                match slot.tag.load(Ordering::Relaxed) {
                    EMPTY => break,
                    t if t == tag => {
                        // Acquire: `Entry::warm` below reads the entry.
                        let entry = slot.entry.load(Ordering::Acquire);
                        if !entry.is_null() {
                            load_entry(entry);
                            if let Some(at) = found.get_mut(n) {
                                *at = entry;
                                n += 1;
                            }
                        }
                        break;
                    }
                    _ => i = (i + 1) & table.mask(),
                }
            }
        }
        for &entry in &found[..n] {
            // SAFETY: read from a live slot while `_guard` is pinned: the
            // entry is freed through the collector only. A slot reused
            // since then holds another live entry, as harmless to warm.
            unsafe { &*entry }.warm();
        }
    }

    /// The entry for `key` (fingerprinted as `hash`), fresh or not, as an
    /// owned reference (a reference-count increment; the hot path uses [`Store::find`]).
    pub fn get(&self, hash: u64, key: &[u8]) -> Option<Arc<E>> {
        let guard = pin();
        // SAFETY: `find` returned it, and `guard` is still pinned.
        self.find(hash, key, &guard)
            .map(|entry| unsafe { Store::owned(entry) })
    }

    /// An owned reference to an entry.
    ///
    /// # Safety
    ///
    /// `entry` must be one [`Store::find`] returned, under a guard that is
    /// still pinned: its memory is then an `Arc` the store made with
    /// `Arc::into_raw` and has not released, whose count this raises. Any
    /// other `&E` (one on the stack, in another `Arc`) would have its
    /// count forged.
    pub unsafe fn owned(entry: &E) -> Arc<E> {
        let ptr: *const E = entry;
        // SAFETY: the caller's promise: `ptr` came from `Arc::into_raw`,
        // and the table's count keeps it alive while the guard is pinned.
        unsafe {
            Arc::increment_strong_count(ptr);
            Arc::from_raw(ptr)
        }
    }

    fn lock(shard: &Shard<E>) -> MutexGuard<'_, Books> {
        shard.books.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores `entry` under `hash`; whatever it replaces is marked
    /// superseded. An entry heavier than a shard's budget is not kept.
    pub fn insert(&self, hash: u64, entry: Arc<E>) {
        let w = entry.weight();
        if w > self.shard_bytes {
            return;
        }
        let tag = tag_of(hash);
        let guard = pin();
        let shard = self.shard(hash);
        let mut books = Self::lock(shard);
        let is_answer = entry.is_answer();
        let new = Arc::into_raw(entry).cast_mut();

        // SAFETY: only this shard's writer, whose lock we hold, replaces or
        // retires its table (the same holds for every table dereference below).
        let mut table = unsafe { &*shard.table.load(Ordering::Acquire) };
        let mut free = None;
        let mut i = hash as usize & table.mask();
        for _ in 0..=table.mask() {
            let slot = &table.slots[i];
            match slot.tag.load(Ordering::Relaxed) {
                EMPTY => break,
                TOMBSTONE => {
                    free.get_or_insert(i);
                }
                t if t == tag => {
                    let old = slot.entry.swap(new, Ordering::AcqRel);
                    // SAFETY: a live slot's pointer is the table's count.
                    let old_ref = unsafe { &*old };
                    books.weight = books.weight - old_ref.weight() + w;
                    books.answers =
                        books.answers + usize::from(is_answer) - usize::from(old_ref.is_answer());
                    Self::retire(old, &guard);
                    self.evict(shard, &mut books, &guard);
                    return;
                }
                _ => {}
            }
            i = (i + 1) & table.mask();
        }

        if (books.live + books.tombstones + 1) * 4 > table.slots.len() * 3 {
            table = Self::rebuild(shard, &books, &guard);
            books.tombstones = 0;
            free = None;
        }
        let i = match free {
            Some(i) => {
                books.tombstones -= 1;
                i
            }
            None => Self::empty_slot(table, hash),
        };
        let slot = &table.slots[i];
        slot.entry.store(new, Ordering::Release);
        slot.tag.store(tag, Ordering::Release);
        books.live += 1;
        books.answers += usize::from(is_answer);
        books.weight += w;
        self.evict(shard, &mut books, &guard);
    }

    /// The first empty slot on `hash`'s probe path (the table has one:
    /// it is never more than 3/4 full).
    fn empty_slot(table: &Table<E>, hash: u64) -> usize {
        let mut i = hash as usize & table.mask();
        while table.slots[i].tag.load(Ordering::Relaxed) != EMPTY {
            i = (i + 1) & table.mask();
        }
        i
    }

    /// Replaces the shard's table with one sized for its live entries at
    /// half load, without tombstones; the old one goes to the collector.
    fn rebuild<'t>(shard: &Shard<E>, books: &Books, guard: &Pinned) -> &'t Table<E> {
        let old_ptr = shard.table.load(Ordering::Acquire);
        // SAFETY: see `insert`; the caller holds the shard's lock.
        let old = unsafe { &*old_ptr };
        let slots = ((books.live + 1) * 2).next_power_of_two().max(MIN_SLOTS);
        let table = Table::with_slots(slots);
        for slot in old.slots.iter() {
            let tag = slot.tag.load(Ordering::Relaxed);
            if tag > TOMBSTONE {
                let i = Self::empty_slot(&table, tag);
                table.slots[i]
                    .entry
                    .store(slot.entry.load(Ordering::Relaxed), Ordering::Relaxed);
                table.slots[i].tag.store(tag, Ordering::Relaxed);
            }
        }
        let new_ptr = Box::into_raw(Box::new(table));
        shard.table.store(new_ptr, Ordering::Release);
        let retired = Retired(old_ptr);
        // SAFETY: readers reach the old table only while pinned; it owns
        // no entries (its pointers moved to the new table).
        guard
            .0
            .defer(move || drop(unsafe { Box::from_raw(retired.into_ptr()) }));
        // SAFETY: freed only by a later rebuild, under the same lock, through the collector.
        unsafe { &*new_ptr }
    }

    /// Marks a removed entry superseded and drops the table's count once no
    /// reader can hold it.
    fn retire(entry: *mut E, guard: &Pinned) {
        // SAFETY: the caller took it out of a live slot: the table's count.
        unsafe { &*entry }.supersede();
        let retired = Retired(entry);
        // SAFETY: the pointer came from `Arc::into_raw`; no slot holds it now.
        guard
            .0
            .defer(move || drop(unsafe { Arc::from_raw(retired.into_ptr().cast_const()) }));
    }

    /// Empties slot `i` of `table`, settling the books; the entry is
    /// readable until `guard` unpins.
    fn remove<'g>(table: &Table<E>, i: usize, books: &mut Books, guard: &'g Pinned) -> &'g E {
        let slot = &table.slots[i];
        slot.tag.store(TOMBSTONE, Ordering::Release);
        let old = slot.entry.swap(std::ptr::null_mut(), Ordering::AcqRel);
        // SAFETY: a live slot's pointer is the table's count.
        // and `guard`, pinned before the retirement, keeps it after it.
        let old_ref = unsafe { &*old };
        books.live -= 1;
        books.tombstones += 1;
        books.weight -= old_ref.weight();
        books.answers -= usize::from(old_ref.is_answer());
        Self::retire(old, guard);
        old_ref
    }

    /// Moves the CLOCK hand until the shard is within its budget.
    fn evict(&self, shard: &Shard<E>, books: &mut Books, guard: &Pinned) {
        if books.weight <= self.shard_bytes {
            return;
        }
        // SAFETY: see `insert`.
        let table = unsafe { &*shard.table.load(Ordering::Acquire) };
        // Two sweeps clear every referenced bit, so this always ends.
        for _ in 0..2 * table.slots.len() + 1 {
            if books.weight <= self.shard_bytes {
                break;
            }
            let i = books.hand & table.mask();
            books.hand = books.hand.wrapping_add(1);
            if table.slots[i].tag.load(Ordering::Relaxed) <= TOMBSTONE {
                continue;
            }
            // SAFETY: a live slot's pointer is the table's count.
            let entry = unsafe { &*table.slots[i].entry.load(Ordering::Relaxed) };
            if entry.take_reference() {
                continue;
            }
            (self.on_evict)(Self::remove(table, i, books, guard));
        }
    }

    /// Calls `visit` with every entry, under one epoch pin and no lock:
    /// what a reader sees, for a warm-restart snapshot. An entry inserted
    /// or removed meanwhile may or may not be visited.
    pub fn for_each(&self, mut visit: impl FnMut(&E)) {
        let _guard = pin();
        for shard in self.shards.iter() {
            // SAFETY: as in `find`: the table and the entries its live slots
            // point to stay alive while the guard is pinned.
            let table = unsafe { &*shard.table.load(Ordering::Acquire) };
            for slot in table.slots.iter() {
                if slot.tag.load(Ordering::Acquire) <= TOMBSTONE {
                    continue;
                }
                let entry = slot.entry.load(Ordering::Acquire);
                if !entry.is_null() {
                    // SAFETY: see above.
                    visit(unsafe { &*entry });
                }
            }
        }
    }

    /// Keeps the entries `keep` says yes to; the others go at once.
    pub fn retain(&self, keep: impl Fn(&E) -> bool) {
        let guard = pin();
        for shard in self.shards.iter() {
            let mut books = Self::lock(shard);
            // SAFETY: see `insert`.
            let table = unsafe { &*shard.table.load(Ordering::Acquire) };
            for (i, slot) in table.slots.iter().enumerate() {
                if slot.tag.load(Ordering::Relaxed) <= TOMBSTONE {
                    continue;
                }
                // SAFETY: a live slot's pointer is the table's count.
                if !keep(unsafe { &*slot.entry.load(Ordering::Relaxed) }) {
                    Self::remove(table, i, &mut books, &guard);
                }
            }
            // Probes for absent keys run to an empty slot: do not leave a
            // table of tombstones behind a flush.
            if books.tombstones > 0 {
                Self::rebuild(shard, &books, &guard);
                books.tombstones = 0;
            }
        }
    }

    fn sum(&self, f: impl Fn(&Books) -> u64) -> u64 {
        self.shards.iter().map(|s| f(&Self::lock(s))).sum()
    }

    pub fn len(&self) -> usize {
        self.sum(|b| b.live as u64) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn weight(&self) -> u64 {
        self.sum(|b| b.weight)
    }

    /// How many entries are whole answers and how many RRsets, both read
    /// from one look at each shard, so a flush between them cannot make
    /// the difference negative.
    pub fn count_by_kind(&self) -> (u64, u64) {
        self.shards
            .iter()
            .fold((0, 0), |(answers, records), shard| {
                let books = Self::lock(shard);
                let a = books.answers as u64;
                (answers + a, records + (books.live as u64).saturating_sub(a))
            })
    }
}

impl<E: Entry> Drop for Store<E> {
    fn drop(&mut self) {
        for shard in self.shards.iter() {
            let table_ptr = shard.table.load(Ordering::Acquire);
            // SAFETY: `&mut self`: no reader or writer is left, and the
            // table and its entries are the store's own.
            let table = unsafe { Box::from_raw(table_ptr) };
            for slot in table.slots.iter() {
                if slot.tag.load(Ordering::Relaxed) > TOMBSTONE {
                    let entry = slot.entry.load(Ordering::Relaxed);
                    // SAFETY: as above; entries retired earlier are the collector's.
                    unsafe { &*entry }.supersede();
                    // SAFETY: the table's own count, from `Arc::into_raw`,
                    // released once here.
                    drop(unsafe { Arc::from_raw(entry.cast_const()) });
                }
            }
        }
    }
}

#[cfg(all(test, not(taproot_loom)))]
mod tests {
    use std::sync::atomic::AtomicBool;

    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    use super::*;
    use crate::cache::answer::{CachedAnswer, name_wire_lower};
    use crate::cache::stats::{CacheKind, CacheStats};
    use crate::cache::{Resolution, encode};

    /// The key and a one-record answer for `h<i>.store.lab.` A, its address
    /// ending in `last`.
    fn entry(i: usize, last: u8) -> (Vec<u8>, Arc<CachedAnswer>) {
        let qname = Name::from_ascii(format!("h{i}.store.lab.")).expect("name");
        let res = Resolution {
            rcode: ResponseCode::NoError,
            answers: vec![Record::from_rdata(
                qname.clone(),
                300,
                RData::A(A::new(127, 0, 0, last)),
            )],
            authorities: Vec::new(),
            security: crate::dnssec::Security::Indeterminate,
        };
        let wire = encode(&qname, RecordType::A, &res, false).expect("encodes");
        let mut key = name_wire_lower(&qname);
        key.extend_from_slice(&[0, 1, 0, 1, 0]);
        let answer = CachedAnswer::from_wire(wire, 0).expect("walks");
        (key, Arc::new(answer))
    }

    fn store(max_bytes: u64) -> (Store<CachedAnswer>, Arc<CacheStats>) {
        let stats = Arc::new(CacheStats::default());
        let counts = stats.clone();
        let store = Store::new(max_bytes, move |e: &CachedAnswer| counts.eviction(e.kind()));
        (store, stats)
    }

    /// A test's count of entries or rounds: `native` normally, `miri` under
    /// miri, which runs each operation thousands of times slower (SHARDS and
    /// MIN_SLOTS shrink with it, so the same rebuilds and evictions happen).
    fn sized(native: usize, miri: usize) -> usize {
        if cfg!(miri) { miri } else { native }
    }

    /// The last octet of the address in the entry found for `key`.
    fn found(s: &Store<CachedAnswer>, key: &[u8]) -> Option<u8> {
        s.get(s.fingerprint(key), key)
            .map(|e| *e.wire().last().expect("an address"))
    }

    #[test]
    fn entries_are_found_by_key_through_growth_and_replacement() {
        let (s, _) = store(1 << 30);
        // Far past the first table's slots in every shard: many rebuilds.
        let n = sized(20_000, 200);
        assert!(n > 4 * SHARDS * MIN_SLOTS);
        for i in 0..n {
            let (key, e) = entry(i, 1);
            s.insert(s.fingerprint(&key), e);
        }
        assert_eq!(s.len(), n);
        let (key, _) = entry(7, 0);
        let old = s.get(s.fingerprint(&key), &key).expect("cached");
        let (_, newer) = entry(7, 2);
        s.insert(s.fingerprint(&key), newer);
        assert!(old.is_superseded(), "a replaced entry is marked");
        assert_eq!(found(&s, &key), Some(2));
        assert_eq!(s.len(), n, "a replacement is not a new entry");
        for i in (0..n).step_by(7) {
            let (key, _) = entry(i, 0);
            assert!(found(&s, &key).is_some(), "h{i} lost");
        }
        let (absent, _) = entry(n + 1, 0);
        assert_eq!(found(&s, &absent), None);
    }

    #[test]
    fn counting_by_kind_never_underflows_while_a_flush_runs() {
        // The two counts must come from one look at each shard: summed one
        // after the other, a flush in between made "records" negative (a
        // panic in debug builds, a wrapped number on /metrics in release).
        let s = Arc::new(store(1 << 30).0);
        let n = sized(256, 16);
        let entries: Vec<_> = (0..n).map(|i| entry(i, 1)).collect();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (s, stop) = (s.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for (key, e) in &entries {
                        s.insert(s.fingerprint(key), e.clone());
                    }
                    s.retain(|_| false);
                }
            })
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let mut looks = 0u32;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            while std::time::Instant::now() < deadline && looks < sized(200_000, 200) as u32 {
                let (answers, records) = s.count_by_kind();
                assert!(answers + records <= n as u64, "{answers} + {records}");
                looks += 1;
            }
        }));
        stop.store(true, Ordering::Relaxed);
        writer.join().expect("the writer finishes");
        assert!(
            outcome.is_ok(),
            "count_by_kind underflowed after {looks} looks"
        );
    }

    /// Miri's leak check is off (tests/miri.sh: the collector's garbage
    /// outlives the process), so the release of what a store still holds
    /// when it drops is checked here, under miri too.
    #[test]
    fn dropping_the_store_releases_every_entry_it_holds() {
        let (s, _) = store(1 << 30);
        let n = sized(1_000, 40);
        let held: Vec<Arc<CachedAnswer>> = (0..n)
            .map(|i| {
                let (key, e) = entry(i, 1);
                s.insert(s.fingerprint(&key), e.clone());
                e
            })
            .collect();
        assert!(held.iter().all(|e| Arc::strong_count(e) == 2));
        drop(s);
        for e in &held {
            assert_eq!(Arc::strong_count(e), 1, "the table's count is released");
            assert!(
                e.is_superseded(),
                "a dropped store's entries are superseded"
            );
        }
    }

    #[test]
    fn a_fingerprint_collision_is_a_miss_not_a_wrong_answer() {
        let (s, _) = store(1 << 20);
        let (key_a, a) = entry(1, 1);
        let (key_b, _) = entry(2, 2);
        // Stored under b's fingerprint: a lookup of b lands on a's entry.
        s.insert(s.fingerprint(&key_b), a);
        assert_eq!(s.get(s.fingerprint(&key_b), &key_b).map(|_| ()), None);
        assert!(s.get(s.fingerprint(&key_b), &key_a).is_some());
    }

    #[test]
    fn retain_removes_what_it_is_told_and_probes_still_work() {
        let (s, _) = store(1 << 30);
        let n = sized(5_000, 100);
        for i in 0..n {
            let (key, e) = entry(i, (i % 2) as u8);
            s.insert(s.fingerprint(&key), e);
        }
        s.retain(|e| e.wire().last() == Some(&1));
        assert_eq!(s.len(), n / 2);
        for i in 0..n {
            let (key, _) = entry(i, 0);
            assert_eq!(found(&s, &key).is_some(), i % 2 == 1, "h{i}");
        }
        // Removed keys can be stored again (tombstones are reused or rebuilt away).
        for i in (0..n).step_by(2) {
            let (key, e) = entry(i, 3);
            s.insert(s.fingerprint(&key), e);
        }
        assert_eq!(s.len(), n);
        assert_eq!(
            s.count_by_kind(),
            (n as u64, 0),
            "all are assembled answers"
        );
    }

    #[test]
    fn eviction_keeps_each_shard_in_budget_and_spares_a_referenced_entry() {
        // About a dozen entries a shard.
        let budget = SHARDS as u64 * 4096;
        let n = sized(50_000, 400);
        let (s, stats) = store(budget);
        let (hot_key, hot) = entry(0, 9);
        s.insert(s.fingerprint(&hot_key), hot);
        for i in 1..n {
            // The hot entry is read between inserts, as a popular name is.
            assert_eq!(found(&s, &hot_key), Some(9), "evicted after {i} inserts");
            let (key, e) = entry(i, 1);
            s.insert(s.fingerprint(&key), e);
        }
        assert!(s.weight() <= budget, "{} > {budget}", s.weight());
        assert!(s.len() < n);
        assert!(stats.evictions(CacheKind::Answer) > 0);
    }

    #[test]
    fn an_entry_heavier_than_a_shard_is_not_kept() {
        let (s, _) = store(SHARDS as u64 * 100);
        let (key, e) = entry(1, 1);
        s.insert(s.fingerprint(&key), e);
        assert!(s.is_empty());
    }

    /// Readers race writers that insert, replace, evict and flush: every
    /// entry a reader finds answers the key it asked for, and nothing it
    /// holds is freed under it (the bytes it reads stay intact).
    #[test]
    fn concurrent_readers_only_ever_see_their_own_key() {
        let keys = sized(4_096, 64);
        let budget = SHARDS as u64 * 8 * 1024; // small: the hand keeps evicting
        let s = Arc::new(store(budget).0);
        let entries: Arc<Vec<(Vec<u8>, Arc<CachedAnswer>)>> =
            Arc::new((0..keys).map(|i| entry(i, (i % 250) as u8)).collect());
        let (writes, flush_every, reads) = (
            sized(200_000, 600),
            sized(20_000, 100),
            sized(400_000, 1_200),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for w in 0..2 {
            let (s, entries, stop) = (s.clone(), entries.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                let mut n = w;
                for round in 0..writes {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    n = (n * 7 + 13) % keys;
                    let (key, _) = &entries[n];
                    let fresh = entry(n, (n % 250) as u8).1;
                    s.insert(s.fingerprint(key), fresh);
                    if round % flush_every == 0 {
                        s.retain(|e| e.wire().len() % 3 != 0 || round % (2 * flush_every) != 0);
                    }
                }
            }));
        }
        let mut readers = Vec::new();
        for r in 0..2 {
            let (s, entries) = (s.clone(), entries.clone());
            readers.push(std::thread::spawn(move || {
                let mut hits = 0u64;
                let mut n = r;
                for _ in 0..reads {
                    n = (n * 31 + 7) % keys;
                    let (key, _) = &entries[n];
                    let guard = pin();
                    if let Some(e) = s.find(s.fingerprint(key), key, &guard) {
                        assert!(e.answers_key(key), "a wrong entry for h{n}");
                        assert_eq!(e.wire().last(), Some(&((n % 250) as u8)));
                        hits += 1;
                    }
                }
                hits
            }));
        }
        let hits: u64 = readers.into_iter().map(|t| t.join().expect("reader")).sum();
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().expect("writer");
        }
        assert!(hits > 0, "readers found nothing");
        assert!(s.weight() <= budget);
    }
}
