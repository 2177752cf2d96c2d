//! The answer cache: whole responses in wire form, keyed by question.
//!
//! A hit is one lookup in the shared [`Store`] with a stack-built key and a
//! copy of stored bytes with the ID, the question's spelling, the flags and
//! the TTLs patched in place. A question answered by one RRset is served
//! from that RRset's own entry (see [`super::store`]), so it cannot show an
//! older TTL than the record cache; answers assembled from several RRsets
//! carry the TTLs those RRsets had at assembly, decaying on the same clock.
//! An entry past its TTL is a miss for the hot path; until the serve-stale
//! window (RFC 8767) closes it can still answer when resolution fails.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hickory_proto::rr::Name;

use super::record::Rank;
use super::stats::{CacheKind, CacheStats};
use super::store::{self, Pinned, Store};
use super::tails::{Tail, Tails};
use super::ttl::{is_fresh, remaining};
use super::withheld::{self, Layout, Withheld};
use crate::clock::Clock;
use crate::dnssec::Security;
use crate::wire::{self, ClientQuery, HEADER_LEN, flags};

/// The longest response an entry keeps: its offsets are `u16`s, and a
/// response over UDP or TCP is at most 65,535 bytes (RFC 1035 §4.2.2).
const MAX_WIRE: usize = u16::MAX as usize;

/// A response ready to send but for ID, flags, question case and TTLs.
///
/// Two allocations, each sized to what it holds: this header (64 bytes,
/// 80 with its `Arc` counts, one cache line for what a lookup reads) and
/// its body, the response followed by its TTL offsets. Until #28 the
/// response sat inline in a 120-byte buffer: a signed answer (an RRSIG
/// alone is over 100 bytes) spilled to a second allocation anyway and
/// left the inline bytes unused, 224 + 160 bytes for a signed A record;
/// now 80 + 160, and 80 + 56 for an unsigned one. The hit reads the
/// body as a second dependent load, which [`store::Entry::warm`] starts
/// with the slot's and the header's for a whole batch. An answer that
/// ends with a proof many answers share keeps it as a [`Tail`] (see
/// [`super::tails`]): its body is then the answer up to the proof.
#[derive(Debug)]
#[repr(C)]
pub struct CachedAnswer {
    pub stored_ms: u64,
    /// The smallest TTL in the message: the entry is fresh this long.
    pub ttl: u32,
    /// `Some(rank)`: one RRset stored under its own (owner, type), with its
    /// RFC 2181 trust; `None`: an answer a resolution assembled.
    pub rank: Option<Rank>,
    /// The answer variant it is (CD: the key's last byte).
    variant: u8,
    /// What validation made of it: Secure sets AD for a client that asks.
    pub security: Security,
    /// Set by the first hit that asks for a prefetch, so only one is sent.
    pub prefetch_claimed: AtomicBool,
    /// Set when the store lets go of it, so remembered zone cuts drop it too.
    superseded: AtomicBool,
    /// Set by hits, cleared by the store's eviction hand (CLOCK).
    referenced: AtomicBool,
    /// The DNSSEC records in `wire` that a client without DO is not sent:
    /// one entry answers both (see [`super::withheld`]).
    withheld: Withheld,
    /// How long the response at the start of `body` is.
    wire_len: u16,
    /// The stamp of the policy ([`crate::policy::Policy::stamp`]) that was
    /// found to leave this question alone; 0: not checked yet. A hit whose
    /// stamp matches skips the policy's lookups (written once per policy
    /// version, read by every hit after).
    policy_stamp: AtomicU64,
    /// The response with ID 0, the question lower-cased, no OPT record,
    /// DNSSEC records at the end of each section (without the tail's);
    /// then where each of its TTL fields sits, as native-endian `u16`s.
    body: Box<[u8]>,
    /// The DNSSEC records the response ends with, when other answers end
    /// with the same (a wildcard's proof): the message is `body`'s then these.
    tail: Option<Arc<Tail>>,
}

impl CachedAnswer {
    /// Wraps an encoded response (ID and flags are rewritten on every send),
    /// DNSSEC records included: a client without DO is answered from the
    /// same entry without them. A response whose DNSSEC records are not at
    /// the end of their sections is re-encoded so that they are (see
    /// [`super::withheld::arrange`]). `None` when the bytes do not walk
    /// cleanly (never cache what we cannot patch).
    pub fn from_wire(wire: Vec<u8>, stored_ms: u64) -> Option<CachedAnswer> {
        let (mut wire, withheld) = match withheld::locate(&wire)? {
            Layout::Ready(withheld) => (wire, withheld),
            Layout::Unordered => {
                let arranged = withheld::arrange(&wire)?;
                match withheld::locate(&arranged)? {
                    Layout::Ready(withheld) => (arranged, withheld),
                    Layout::Unordered => return None,
                }
            }
        };
        let (offsets, min_ttl) = wire::ttl_offsets(&wire)?;
        if wire.len() > MAX_WIRE {
            return None;
        }
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
        let wire_len = wire.len() as u16;
        append_offsets(&mut wire, &offsets);
        Some(CachedAnswer {
            wire_len,
            body: wire.into_boxed_slice(),
            stored_ms,
            ttl: min_ttl.unwrap_or(0),
            rank: None,
            prefetch_claimed: AtomicBool::new(false),
            variant: 0,
            security: Security::Indeterminate,
            superseded: AtomicBool::new(false),
            referenced: AtomicBool::new(false),
            withheld,
            policy_stamp: AtomicU64::new(0),
            tail: None,
        })
    }

    /// Cuts the DNSSEC records this answer ends with off into a tail
    /// shared with the other answers that end with them (see
    /// [`super::tails`]), when they include a proof (authority-section
    /// records: a signed answer's own RRSIG is its alone) and run to the
    /// end of the message. Otherwise it stays as it is.
    pub fn share_tail(&mut self, tails: &Tails) {
        let Some(start) = self.withheld.tail_start(self.head()) else {
            return;
        };
        let Some(tail) = tails.share(self.head(), start) else {
            return;
        };
        // Uncompressed names make the tail longer than the records it
        // replaces: the whole response must still fit a TCP frame.
        let Ok(start16) = u16::try_from(start) else {
            return;
        };
        if start + tail.records().len() > MAX_WIRE {
            return;
        }
        let mut body = Vec::with_capacity(self.body.len());
        body.extend_from_slice(self.head().get(..start).unwrap_or(&[]));
        let kept: Vec<u16> = self
            .ttl_offsets()
            .filter(|&off| off < start)
            .map(|off| off as u16)
            .collect();
        append_offsets(&mut body, &kept);
        self.body = body.into_boxed_slice();
        self.wire_len = start16;
        self.tail = Some(tail);
    }

    /// The response's bytes this entry holds itself: the whole response
    /// (ID 0, the question lower-cased, no OPT record, the DNSSEC records
    /// at the end of each section, see [`super::withheld`]) but for a
    /// shared tail.
    #[inline]
    pub fn head(&self) -> &[u8] {
        self.body.get(..usize::from(self.wire_len)).unwrap_or(&[])
    }

    /// The whole response: [`CachedAnswer::head`] and the tail, if any
    /// (joined into a new buffer then, off the hit path).
    pub fn wire(&self) -> Cow<'_, [u8]> {
        match &self.tail {
            None => Cow::Borrowed(self.head()),
            Some(tail) => {
                let mut whole = Vec::with_capacity(self.wire_len());
                whole.extend_from_slice(self.head());
                whole.extend_from_slice(tail.records());
                Cow::Owned(whole)
            }
        }
    }

    /// How long the whole response is.
    pub fn wire_len(&self) -> usize {
        usize::from(self.wire_len) + self.tail.as_ref().map_or(0, |t| t.records().len())
    }

    /// Whether the DNSSEC records it ends with are shared with other answers.
    pub fn has_shared_tail(&self) -> bool {
        self.tail.is_some()
    }

    /// Where each TTL field of [`CachedAnswer::head`] sits.
    #[inline]
    pub fn ttl_offsets(&self) -> impl Iterator<Item = usize> + '_ {
        offsets_after(&self.body, self.wire_len)
    }

    /// The stamp of the policy last found to leave this question alone.
    #[inline]
    pub fn policy_stamp(&self) -> u64 {
        self.policy_stamp.load(Ordering::Relaxed)
    }

    /// Remembers that the policy of `stamp` leaves this question alone.
    #[inline]
    pub fn set_policy_stamp(&self, stamp: u64) {
        self.policy_stamp.store(stamp, Ordering::Relaxed);
    }

    /// The question's name as stored: lower-cased, uncompressed.
    pub fn qname(&self) -> &[u8] {
        let wire = self.head();
        let mut at = HEADER_LEN;
        while let Some(&len) = wire.get(at) {
            if len == 0 || len > 63 {
                break;
            }
            at += 1 + len as usize;
        }
        wire.get(HEADER_LEN..=at).unwrap_or(&[])
    }

    /// Whether a client may be answered with it: any assembled answer, and
    /// RRsets from answer sections, but never glue or a referral's NS set
    /// (RFC 2181 §5.4.1).
    #[inline]
    pub fn servable(&self) -> bool {
        self.rank.is_none_or(|r| r >= Rank::NonAuthAnswer)
    }

    /// Which counters it belongs to.
    pub fn kind(&self) -> CacheKind {
        if self.rank.is_some() {
            CacheKind::Record
        } else {
            CacheKind::Answer
        }
    }

    /// Bytes held outside the entry's header: the response and its TTL
    /// offsets. A shared tail is counted by [`Tails`], once.
    pub fn heap_bytes(&self) -> usize {
        self.body.len()
    }

    /// True while it may still be served stale (RFC 8767): past its TTL,
    /// less than `window` seconds.
    #[inline]
    pub fn is_within_stale_window(&self, now_ms: u64, window: u32) -> bool {
        is_fresh(self.ttl.saturating_add(window), self.stored_ms, now_ms)
    }

    /// The answer variant it is (CD: the last byte of its key, see
    /// [`wire::answer_key`]).
    #[inline]
    pub fn variant(&self) -> u8 {
        self.variant
    }

    /// Whether a hit touched it since the eviction hand last passed: a
    /// snapshot writes these first, the hottest part of the cache.
    pub fn recently_hit(&self) -> bool {
        self.referenced.load(Ordering::Relaxed)
    }

    /// Sets the variant it answers (see [`wire::VARIANT_CD`]).
    pub(super) fn set_variant(&mut self, variant: u8) {
        self.variant = variant;
    }

    /// The DNSSEC records a client without DO is not sent.
    pub fn withheld(&self) -> &Withheld {
        &self.withheld
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
        self.body.get(3).map_or(0, |b| b & 0x0f)
    }

    /// Writes the response for `query` into `out` (cleared first): for a
    /// client without DO, without the DNSSEC records (RFC 4035 §3.2.1).
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
        let cut = !query.dnssec_ok() && !self.withheld.is_empty();
        // With a shared tail the withheld records are all in it: the head
        // alone is the answer without them, no offset in it moves.
        let tail = self.tail.as_deref();
        match (tail, cut) {
            (None, false) => out.extend_from_slice(self.head()),
            (None, true) => self.withheld.copy_without(self.head(), out),
            (Some(_), true) => {
                out.extend_from_slice(self.head());
                self.withheld.lower_counts(out, 0);
            }
            (Some(tail), false) => {
                out.extend_from_slice(self.head());
                out.extend_from_slice(tail.records());
            }
        }
        if out.len() < HEADER_LEN {
            return false;
        }
        out[0..2].copy_from_slice(&query.id.to_be_bytes());
        let stored_flags = u16::from_be_bytes([out[2], out[3]]);
        let mut f = flags::QR
            | (stored_flags & (flags::RCODE_MASK | flags::AA))
            | (query.flags & (flags::RD | flags::CD));
        if ra {
            f |= flags::RA;
        }
        // RFC 6840 §5.7–5.8: AD for a client that sets DO or AD, never with CD.
        if self.security == Security::Secure
            && query.flags & flags::CD == 0
            && (query.flags & flags::AD != 0 || query.dnssec_ok())
        {
            f |= flags::AD;
        }
        out[2..4].copy_from_slice(&f.to_be_bytes());
        let qn = query.qname.len();
        if let Some(dst) = out.get_mut(HEADER_LEN..HEADER_LEN + qn) {
            dst.copy_from_slice(query.qname);
        }
        let moves = cut && tail.is_none();
        let patch = |out: &mut Vec<u8>, at: usize| {
            if let Some(field) = out.get_mut(at..at + 4) {
                let stored = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
                let ttl = stale_ttl.unwrap_or_else(|| remaining(stored, self.stored_ms, now_ms));
                field.copy_from_slice(&ttl.to_be_bytes());
            }
        };
        for off in self.ttl_offsets() {
            let at = if moves {
                match self.withheld.moved(off) {
                    Some(at) => at,
                    None => continue,
                }
            } else {
                off
            };
            patch(out, at);
        }
        if let Some(tail) = tail
            && !cut
        {
            let base = usize::from(self.wire_len);
            for off in tail.ttl_offsets() {
                patch(out, base + off);
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

/// Appends where each TTL field sits to a body that holds the message:
/// the layout of an entry's and a shared tail's one allocation, read back
/// by [`offsets_after`].
pub(super) fn append_offsets(body: &mut Vec<u8>, offsets: &[u16]) {
    body.reserve_exact(2 * offsets.len());
    for off in offsets {
        body.extend_from_slice(&off.to_ne_bytes());
    }
}

/// The TTL offsets [`append_offsets`] put after the first `len` bytes.
#[inline]
pub(super) fn offsets_after(body: &[u8], len: u16) -> impl Iterator<Item = usize> + '_ {
    body.get(usize::from(len)..)
        .unwrap_or(&[])
        .chunks_exact(2)
        .map(|b| usize::from(u16::from_ne_bytes([b[0], b[1]])))
}

/// The `Arc` counts (16 bytes) and the allocator's share of two
/// allocations: size-class rounding and page bookkeeping (mimalloc, the
/// daemon's allocator).
const ALLOC_OVERHEAD: usize = 48;

impl store::Entry for CachedAnswer {
    /// True when this is the answer stored under `key` (see [`wire::answer_key`]):
    /// the same question, lower-cased, and the same variant.
    #[inline]
    fn answers_key(&self, key: &[u8]) -> bool {
        let Some((&variant, question)) = key.split_last() else {
            return false;
        };
        variant == self.variant
            && self.body.get(HEADER_LEN..HEADER_LEN + question.len()) == Some(question)
    }

    /// A plain store, and only when the bit is clear, so hits on a popular
    /// entry do not keep dirtying its line.
    #[inline]
    fn touch(&self) {
        if !self.referenced.load(Ordering::Relaxed) {
            self.referenced.store(true, Ordering::Relaxed);
        }
    }

    fn take_reference(&self) -> bool {
        self.referenced.swap(false, Ordering::Relaxed)
    }

    fn supersede(&self) {
        self.superseded.store(true, Ordering::Relaxed);
    }

    /// Its allocations and its share of the table.
    fn weight(&self) -> u64 {
        (std::mem::size_of::<CachedAnswer>()
            + self.heap_bytes()
            + ALLOC_OVERHEAD
            + store::TABLE_OVERHEAD) as u64
    }

    fn is_answer(&self) -> bool {
        self.kind() == CacheKind::Answer
    }

    /// The body: the response a hit checks the question in and copies.
    #[inline(always)]
    fn warm(&self) {
        store::load_bytes(&self.body);
    }
}

/// Whole answers by question: the hot path's view of the shared [`Store`].
pub struct AnswerCache {
    store: Arc<Store<CachedAnswer>>,
    stale_window: u32,
    clock: Clock,
    stats: Arc<CacheStats>,
    tails: Tails,
}

impl AnswerCache {
    pub fn new(
        store: Arc<Store<CachedAnswer>>,
        stale_window: u32,
        clock: Clock,
        stats: Arc<CacheStats>,
    ) -> AnswerCache {
        AnswerCache {
            store,
            stale_window,
            clock,
            stats,
            tails: Tails::default(),
        }
    }

    /// Seconds past its TTL an entry may still be served stale (RFC 8767).
    pub fn stale_window(&self) -> u32 {
        self.stale_window
    }

    /// Lets `entry` share the proof it ends with (see [`super::tails`]).
    pub fn share_tail(&self, entry: &mut CachedAnswer) {
        entry.share_tail(&self.tails);
    }

    /// Shared tails some entry still refers to.
    pub fn shared_tails(&self) -> usize {
        self.tails.live()
    }

    /// Bytes the shared tails hold.
    pub fn shared_tail_bytes(&self) -> usize {
        self.tails.bytes()
    }

    /// The servable entry for a key built with [`wire::answer_key`], fresh
    /// or inside its serve-stale window.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<Arc<CachedAnswer>> {
        let now = self.clock.now_ms();
        self.store
            .get(self.store.fingerprint(key), key)
            .filter(|a| a.servable() && a.is_within_stale_window(now, self.stale_window))
    }

    /// A fresh servable entry for `key` (whose [`AnswerCache::fingerprint`]
    /// is `hash`: the caller has it already), counting the hit or the
    /// miss, alive as long as `guard`: no reference count is taken, so a
    /// hit writes nothing another thread reads (see [`super::store`]).
    #[inline]
    pub fn find_fresh<'g>(
        &'g self,
        key: &[u8],
        hash: u64,
        now_ms: u64,
        guard: &'g Pinned,
    ) -> Option<&'g CachedAnswer> {
        let found = self
            .store
            .find(hash, key, guard)
            .filter(|a| a.servable() && a.is_fresh(now_ms));
        match found {
            Some(_) => self.stats.hit(CacheKind::Answer),
            None => self.stats.miss(CacheKind::Answer),
        }
        found
    }

    /// The fingerprint a lookup of `key` uses, for [`AnswerCache::warm`].
    #[inline]
    pub fn fingerprint(&self, key: &[u8]) -> u64 {
        self.store.fingerprint(key)
    }

    /// Starts loading what lookups of a batch of keys (by fingerprint) will
    /// read, so their memory misses overlap (see [`Store::warm`]).
    #[inline]
    pub fn warm(&self, hashes: &[u64], guard: &Pinned) {
        self.store.warm(hashes, guard);
    }

    /// [`AnswerCache::find_fresh`], as an owned reference.
    pub fn lookup_fresh(&self, key: &[u8], now_ms: u64) -> Option<Arc<CachedAnswer>> {
        let guard = store::pin();
        // SAFETY: `find_fresh` returns what `Store::find` found, and
        // `guard` is still pinned.
        self.find_fresh(key, self.fingerprint(key), now_ms, &guard)
            .map(|entry| unsafe { Store::owned(entry) })
    }

    /// The fresh RRset stored under `key` as the answer to its own question, if any.
    pub fn stored_rrset(&self, key: &[u8]) -> Option<Arc<CachedAnswer>> {
        let now = self.clock.now_ms();
        self.store
            .get(self.store.fingerprint(key), key)
            .filter(|a| a.rank.is_some() && a.servable() && a.is_fresh(now))
    }

    /// Stores an encoded response under `key`; returns the entry (or `None`
    /// when the bytes could not be walked, in which case nothing is cached).
    pub fn insert(
        &self,
        key: &[u8],
        response: Vec<u8>,
        security: Security,
    ) -> Option<Arc<CachedAnswer>> {
        let mut entry = CachedAnswer::from_wire(response, self.clock.now_ms())?;
        entry.variant = key.last().copied().unwrap_or(0);
        entry.security = security;
        entry.share_tail(&self.tails);
        let entry = Arc::new(entry);
        if entry.ttl == 0 {
            return Some(entry); // TTL 0 answers are used once, never stored (RFC 1035 §3.2.1)
        }
        self.store
            .insert(self.store.fingerprint(key), entry.clone());
        self.stats.insert(CacheKind::Answer);
        Some(entry)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_header_with_its_arc_counts_fits_an_80_byte_allocator_class() {
        assert!(
            std::mem::size_of::<CachedAnswer>() + 16 <= 80,
            "{} bytes",
            std::mem::size_of::<CachedAnswer>(),
        );
    }
}
