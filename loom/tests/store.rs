//! Loom models of the cache table: one reader racing a writer that
//! replaces, grows, flushes or evicts, with the epoch collector free to
//! run in between. Each model checks, in every interleaving loom explores:
//! a reader is only ever handed an entry stored under its own key, and
//! that entry's memory is not dropped while the reader is pinned (the
//! drop writes a cell the reader reads, so loom reports the race if the
//! two are not ordered), nor read before it was made (likewise); and the
//! books balance when the threads are done.

use std::sync::Arc;

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;
use taproot_loom::store::{self, Entry, Store};

const ALIVE: u64 = 0x600d;
const DROPPED: u64 = 0xdead;

/// What a probe weighs: a store of `2 * WEIGHT - 1` bytes holds one.
const WEIGHT: u64 = 100;

/// Written only by `Drop` (which has the probe to itself) and read by
/// readers, so sharing it is sound; loom checks the two are ordered.
struct Life(UnsafeCell<u64>);

// SAFETY: see `Life`: the only write is in `Drop`, through `&mut`.
unsafe impl Sync for Life {}

struct Probe {
    key: &'static [u8],
    version: u8,
    life: Life,
    referenced: AtomicBool,
}

impl Probe {
    fn new(key: &'static [u8], version: u8) -> Arc<Probe> {
        let probe = Probe {
            key,
            version,
            life: Life(UnsafeCell::new(0)),
            referenced: AtomicBool::new(false),
        };
        // A write loom tracks (it does not track `new`), so that a reader
        // the entry was not published to with a happens-before edge, one
        // that could see it half made, is reported too.
        // SAFETY: the probe is not shared yet.
        probe.life.0.with_mut(|p| unsafe { *p = ALIVE });
        Arc::new(probe)
    }

    /// Fails the model if the probe was dropped, or is being dropped
    /// without a happens-before edge to this read.
    fn assert_alive(&self) {
        // SAFETY: a read; loom tracks it against the write in `Drop`.
        let life = self.life.0.with(|p| unsafe { *p });
        assert_eq!(life, ALIVE, "an entry was read after it was dropped");
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no other reference is left.
        self.life.0.with_mut(|p| unsafe { *p = DROPPED });
    }
}

impl Entry for Probe {
    fn answers_key(&self, key: &[u8]) -> bool {
        self.key == key
    }
    fn touch(&self) {
        self.referenced.store(true, Ordering::Relaxed);
    }
    fn take_reference(&self) -> bool {
        self.referenced.swap(false, Ordering::Relaxed)
    }
    fn supersede(&self) {}
    fn weight(&self) -> u64 {
        WEIGHT
    }
    fn is_answer(&self) -> bool {
        true
    }
    /// The cache's entries read their body pointer here: so does the probe.
    fn warm(&self) {
        self.assert_alive();
    }
}

fn put(s: &Store<Probe>, key: &'static [u8], version: u8) {
    s.insert(s.fingerprint(key), Probe::new(key, version));
}

/// Looks `key` up pinned, as a UDP worker does, and checks what it finds;
/// returns the version found.
fn read(s: &Store<Probe>, key: &'static [u8]) -> Option<u8> {
    let guard = store::pin();
    let found = s.find(s.fingerprint(key), key, &guard)?;
    assert!(found.answers_key(key), "handed another key's entry");
    found.assert_alive();
    Some(found.version)
}

/// Gives the epoch collector the chance to free what was retired: each
/// flush may advance the epoch once, and a bag is freed two epochs on.
fn collect() {
    for _ in 0..3 {
        crossbeam_epoch::pin().flush();
    }
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    // LOOM_MAX_PREEMPTIONS overrides (loom/run sets 4: about 80,000
    // interleavings in all, in seconds; loom's authors find 2 or 3 catch
    // most bugs in practice).
    builder.preemption_bound.get_or_insert(4);
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    builder.check(move || {
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f()
    });
    eprintln!(
        "interleavings: {}",
        RUNS.swap(0, std::sync::atomic::Ordering::Relaxed)
    );
}

fn store(max_bytes: u64) -> Arc<Store<Probe>> {
    Arc::new(Store::new(max_bytes, |_: &Probe| {}))
}

#[test]
fn an_insert_and_a_replacement_racing_a_reader() {
    model(|| {
        let s = store(1 << 20);
        put(&s, b"a", 1);
        let writer = {
            let s = s.clone();
            thread::spawn(move || {
                put(&s, b"b", 1);
                put(&s, b"a", 2);
                collect();
            })
        };
        let b = read(&s, b"b");
        assert!(matches!(b, None | Some(1)), "{b:?}");
        let a = read(&s, b"a");
        assert!(matches!(a, Some(1 | 2)), "{a:?}");
        writer.join().expect("writer");
        assert_eq!((read(&s, b"a"), read(&s, b"b")), (Some(2), Some(1)));
        assert_eq!(s.len(), 2);
    });
}

#[test]
fn a_batch_warm_up_racing_a_replacement_reads_only_live_entries() {
    model(|| {
        let s = store(1 << 20);
        put(&s, b"a", 1);
        put(&s, b"b", 1);
        let writer = {
            let s = s.clone();
            thread::spawn(move || {
                put(&s, b"a", 2);
                collect();
            })
        };
        let guard = store::pin();
        s.warm(&[s.fingerprint(b"a"), s.fingerprint(b"b")], &guard);
        drop(guard);
        writer.join().expect("writer");
        assert_eq!((read(&s, b"a"), read(&s, b"b")), (Some(2), Some(1)));
    });
}

#[test]
fn growth_racing_a_reader() {
    model(|| {
        let s = store(1 << 20);
        // Three live entries fill a four-slot table to 3/4: the next
        // insert rebuilds it into a larger one.
        put(&s, b"a", 1);
        put(&s, b"b", 1);
        put(&s, b"c", 1);
        let writer = {
            let s = s.clone();
            thread::spawn(move || {
                put(&s, b"d", 1);
                collect();
            })
        };
        assert_eq!(read(&s, b"a"), Some(1), "lost while the table grew");
        let d = read(&s, b"d");
        assert!(matches!(d, None | Some(1)), "{d:?}");
        writer.join().expect("writer");
        for key in [b"a", b"b", b"c", b"d"] {
            assert_eq!(read(&s, key), Some(1));
        }
        assert_eq!(s.count_by_kind(), (4, 0));
    });
}

#[test]
fn a_flush_racing_a_reader() {
    model(|| {
        let s = store(1 << 20);
        put(&s, b"a", 1);
        put(&s, b"b", 1);
        let writer = {
            let s = s.clone();
            thread::spawn(move || {
                // Removes both, then rebuilds the table without tombstones.
                s.retain(|p| p.key == b"zz");
                collect();
            })
        };
        let seen = read(&s, b"a");
        assert!(matches!(seen, None | Some(1)), "{seen:?}");
        writer.join().expect("writer");
        assert_eq!(read(&s, b"a"), None);
        assert_eq!((s.len(), s.weight()), (0, 0));
    });
}

#[test]
fn an_eviction_racing_a_reader() {
    model(|| {
        let evicted = Arc::new(AtomicUsize::new(0));
        let s = {
            let evicted = evicted.clone();
            Arc::new(Store::new(2 * WEIGHT - 1, move |_: &Probe| {
                evicted.fetch_add(1, Ordering::Relaxed);
            }))
        };
        put(&s, b"a", 1);
        let writer = {
            let s = s.clone();
            thread::spawn(move || {
                // Over budget: the hand evicts one of the two.
                put(&s, b"b", 1);
                collect();
            })
        };
        let seen = read(&s, b"a");
        assert!(matches!(seen, None | Some(1)), "{seen:?}");
        writer.join().expect("writer");
        assert_eq!(evicted.load(Ordering::Relaxed), 1);
        assert_eq!((s.len(), s.weight()), (1, WEIGHT));
    });
}
