//! The cache: what taproot has learned, each piece dying at its own TTL.
//!
//! Two tables, each bounded by a byte weigher:
//!
//! - [`store`]: responses in wire form keyed by question, seen through two
//!   views: [`answer`], the hot path, where a hit costs one lookup and a few
//!   byte patches; and [`record`], RRsets with their RFC 2181 §5.4.1 trust
//!   rank, from which the walk reads delegations and answers are assembled.
//!   An RRset is stored once, as the answer to its own question, with its
//!   RRSIGs after it: a client with DO gets the bytes as stored, one
//!   without gets them with the DNSSEC records cut out ([`withheld`]), so
//!   both find the same entry (the key's last byte is CD only). Assembled
//!   answers (negative ones with their proofs, wildcard answers) likewise;
//!   a proof many answers end with (a wildcard's, an NSEC range's) is
//!   kept once and referred to ([`tails`]). Every entry carries its DNSSEC
//!   status, from which a hit sets AD.
//! - [`negative`]: RFC 2308 NXDOMAIN and NODATA entries with their SOA, on
//!   moka with per-entry expiry.
//!
//! The configured `size_mb` is split between them; [`CacheStats`] counts hits,
//! misses, inserts and evictions by kind for the metrics endpoint.

pub mod answer;
mod delegation;
mod expiring;
pub mod failures;
pub mod infra;
pub mod negative;
pub mod parent_side;
pub mod portable;
pub mod record;
mod resolution;
pub mod shared;
pub mod snapshot;
pub mod stats;
mod store;
pub mod tails;
pub mod tier;
pub mod ttl;
pub mod withheld;

use std::sync::{Arc, OnceLock};

use hickory_proto::rr::{Name, RData, Record, RecordType};

pub use answer::{AnswerCache, CachedAnswer};
pub use expiring::Expiring;
pub use negative::{NegativeCache, NegativeKind};
pub use parent_side::ParentSide;
pub use record::{Rank, RecordCache};
pub use resolution::{Resolution, encode, to_wire};
pub use stats::{CacheKind, CacheStats};
pub use store::{Pinned, pin};
pub use tier::{FlushScope, SecondTier};
pub use ttl::TtlPolicy;

use crate::clock::Clock;
use crate::config::CacheConfig;
use crate::dnssec::Security;
use delegation::DelegationMemo;
use negative::NegativeView;
use record::RrsetView;
use store::Store;

/// Removes at once every entry whose key `matches`. moka's own
/// `invalidate_entries_if` would do it lazily and costs every entry of every
/// cache a predicate check (about 32 bytes each, measured); a flush is an
/// admin's rare request, so it pays for a scan instead.
fn invalidate_where<K, V>(cache: &moka::sync::Cache<K, V>, matches: impl Fn(&K) -> bool)
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    let doomed: Vec<Arc<K>> = cache
        .iter()
        .filter(|(k, _)| matches(k))
        .map(|(k, _)| k)
        .collect();
    for key in doomed {
        cache.invalidate(key.as_ref());
    }
}

/// A zone cut known from the cache: where a walk can start instead of the root.
#[derive(Debug, Clone)]
pub struct Delegation {
    /// The zone whose servers these are (the cut's owner name).
    pub zone: Name,
    /// One entry per NS name, with the addresses cached for it (maybe none).
    pub servers: Vec<NameServer>,
}

/// An NS target and what the cache knows of its addresses.
#[derive(Debug, Clone)]
pub struct NameServer {
    pub name: Name,
    pub addrs: Vec<std::net::IpAddr>,
}

impl Delegation {
    /// True when at least one server can be queried without resolving its name.
    pub fn has_addresses(&self) -> bool {
        self.servers.iter().any(|s| !s.addrs.is_empty())
    }

    /// Every server address of the cut, sorted, each once.
    pub fn addresses(&self) -> Vec<std::net::IpAddr> {
        let mut addrs: Vec<std::net::IpAddr> = self
            .servers
            .iter()
            .flat_map(|s| s.addrs.iter().copied())
            .collect();
        addrs.sort();
        addrs.dedup();
        addrs
    }

    /// The NS name with address `addr` (for a trace: `a.root-servers.net
    /// 198.41.0.4`, not just the address).
    pub fn name_of(&self, addr: std::net::IpAddr) -> Option<Name> {
        self.servers
            .iter()
            .find(|s| s.addrs.contains(&addr))
            .map(|s| s.name.clone())
    }
}

/// What the cache says about one (name, type), in the order a resolver
/// asks (RFC 1034 §4.3.2 step 3: the data, else a CNAME to follow; RFC
/// 2308 §5: else a remembered negative answer).
#[derive(Debug)]
pub enum Cached {
    /// The RRset (with its RRSIGs when asked for and secure).
    Rrset(Vec<Record>, Security),
    /// The CNAME (and its RRSIGs) and its target.
    Cname(Vec<Record>, Name, Security),
    /// NXDOMAIN or NODATA, with its SOA and proof.
    Negative(Box<NegativeView>),
}

/// The stores and what they share: the clock, the TTL policy, the counters.
///
/// Its fields are private: the walk and referral mode read through
/// [`Cache::lookup`], [`Cache::rrset`] and [`Cache::closest_delegation`]
/// and write through [`Cache::store_rrsets`], [`Cache::store_negative`]
/// and [`Cache::store_answer`]; the hot path reads [`Cache::answers`].
pub struct Cache {
    /// Behind both `answers` and `records`.
    store: Arc<Store<CachedAnswer>>,
    answers: AnswerCache,
    records: RecordCache,
    /// Zone cuts assembled from `records`, kept whole while their parts live.
    delegations: DelegationMemo,
    negatives: NegativeCache,
    /// Referrals' cuts as the parent gave them, for when the child's fail.
    parent_side: ParentSide,
    stats: Arc<CacheStats>,
    clock: Clock,
    /// The TTL clamps every store applies; reloadable.
    policy: Arc<TtlPolicy>,
    /// The second tier (`[cache.shared]`), set once at start; empty when
    /// none is configured, so a miss then costs one load of an empty cell.
    tier: OnceLock<Arc<dyn SecondTier>>,
}

impl Cache {
    /// Splits `size_mb` as answers and records 3/4, negatives 1/8, and
    /// leaves 1/8 for what the entries' weights do not see: the allocator's
    /// slack under churn (freed entries, and the working set of the
    /// resolutions in flight, kept in its thread heaps), entries retired
    /// but not yet freed by the epoch collector, the side caches. Measured
    /// (#23): 900,000 cold names through a 16 MiB cache at 200 outstanding
    /// left RSS 1.33x the budget over idle with 7/8 for the store.
    pub fn new(config: &CacheConfig, clock: Clock) -> Cache {
        let bytes = config.size_mb.saturating_mul(1024 * 1024);
        let stats = Arc::new(CacheStats::default());
        let policy = Arc::new(TtlPolicy::from_config(config));
        let stale_window = if config.serve_stale {
            config.stale_window_s
        } else {
            0
        };
        let evictions = stats.clone();
        let store = Arc::new(Store::new(bytes / 4 * 3, move |e: &CachedAnswer| {
            evictions.eviction(e.kind())
        }));
        Cache {
            answers: AnswerCache::new(store.clone(), stale_window, clock.clone(), stats.clone()),
            records: RecordCache::new(store.clone(), policy.clone(), clock.clone(), stats.clone()),
            store,
            // A cut is a few hundred bytes; one per 8 KiB of cache is far
            // more cuts than a resolver's clients reach.
            delegations: DelegationMemo::new((bytes / 8192) as usize),
            negatives: NegativeCache::new(bytes / 8, policy.clone(), clock.clone(), stats.clone()),
            parent_side: ParentSide::new(clock.clone()),
            policy,
            stats,
            clock,
            tier: OnceLock::new(),
        }
    }

    /// The hot path's view: whole answers by question.
    #[inline]
    pub fn answers(&self) -> &AnswerCache {
        &self.answers
    }

    /// Hits, misses, inserts and evictions by kind.
    #[inline]
    pub fn stats(&self) -> &Arc<CacheStats> {
        &self.stats
    }

    /// The clock every store decays TTLs on.
    #[inline]
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The operator's TTL clamps (reloadable in place).
    pub fn policy(&self) -> &TtlPolicy {
        &self.policy
    }

    /// Referrals' cuts as the parent gave them.
    pub fn parent_side(&self) -> &ParentSide {
        &self.parent_side
    }

    /// What the cache knows of (name, qtype) for a resolver: a servable
    /// RRset, else a CNAME at the name, else a negative answer. With
    /// `dnssec_ok`, secure RRsets come with their RRSIGs.
    pub fn lookup(&self, name: &Name, qtype: RecordType, dnssec_ok: bool) -> Option<Cached> {
        if let Some(set) = self.records.get(name, qtype)
            && set.rank >= Rank::NonAuthAnswer
        {
            let mut records = set.records;
            if dnssec_ok && set.security == Security::Secure {
                records.extend(self.records.signatures(name, qtype));
            }
            return Some(Cached::Rrset(records, set.security));
        }
        if qtype != RecordType::CNAME
            && let Some(set) = self.records.get(name, RecordType::CNAME)
            && let Some(RData::CNAME(target)) = set.records.first().map(|r| &r.data)
        {
            let target = target.0.to_lowercase();
            let mut records = set.records;
            if dnssec_ok && set.security == Security::Secure {
                records.extend(self.records.signatures(name, RecordType::CNAME));
            }
            return Some(Cached::Cname(records, target, set.security));
        }
        self.negatives
            .get(name, qtype)
            .map(|n| Cached::Negative(Box::new(n)))
    }

    /// The live RRset (name, type) whatever its rank (glue and referral
    /// NS sets included), TTLs decremented: for referral mode, which hands
    /// out delegations, not answers.
    pub fn rrset(&self, name: &Name, rtype: RecordType) -> Option<RrsetView> {
        self.records.get(name, rtype)
    }

    /// Caches each RRset in `records` at `rank` with `security` (see
    /// [`RecordCache::insert_all`]).
    pub fn store_rrsets(&self, records: &[Record], rank: Rank, security: Security) {
        self.records.insert_all(records, rank, security);
    }

    /// Caches one unvalidated RRset; false when a live set of higher rank
    /// is kept instead (RFC 2181 §5.4.1).
    pub fn store_rrset(&self, records: Vec<Record>, rank: Rank) -> bool {
        self.records.insert(records, rank)
    }

    /// Caches a negative answer (RFC 2308 §5); returns the TTL it got (0:
    /// not cached).
    pub fn store_negative(
        &self,
        name: &Name,
        qtype: RecordType,
        kind: NegativeKind,
        soa: Record,
        proof: Vec<Record>,
        security: Security,
    ) -> u32 {
        self.negatives
            .insert(name, qtype, kind, soa, proof, security)
    }

    /// Puts `tier` behind this cache (once; a second call is ignored).
    pub fn set_second_tier(&self, tier: Arc<dyn SecondTier>) {
        let _ = self.tier.set(tier);
    }

    /// The second tier, when one is configured.
    pub fn second_tier(&self) -> Option<&Arc<dyn SecondTier>> {
        self.tier.get()
    }

    /// Reads the answer to `key` from the second tier after a first-tier
    /// miss, and keeps it in the first tier. Call it from a resolution's
    /// leader only (one read per question in flight).
    pub async fn lookup_second_tier(&self, key: &[u8]) -> Option<Arc<CachedAnswer>> {
        let entry = self.tier.get()?.read(key).await?;
        Some(self.adopt(key, entry))
    }

    /// Keeps an entry that was made elsewhere (read from the second tier
    /// through [`portable`]) under `key`, as the walk would have stored
    /// it. The caller checks that it answers `key`.
    pub fn adopt(&self, key: &[u8], mut entry: CachedAnswer) -> Arc<CachedAnswer> {
        self.answers.share_tail(&mut entry);
        let entry = Arc::new(entry);
        self.store
            .insert(self.store.fingerprint(key), entry.clone());
        self.stats.insert(entry.kind());
        entry
    }

    /// The deepest cached zone cut at or above `qname` (RFC 1034 §5.3.3 step 2).
    ///
    /// Walks up from `qname` to the root and returns the first name with a
    /// live NS RRset, together with the addresses cached for its servers.
    /// A cut whose servers have no cached addresses is still returned, so the
    /// walk can resolve the names; `skip_without_addresses` asks for the
    /// deepest cut that can be queried right away instead.
    pub fn closest_delegation(
        &self,
        qname: &Name,
        skip_without_addresses: bool,
    ) -> Option<Delegation> {
        let now = self.clock.now_ms();
        let wire = answer::name_wire_lower(qname);
        // One epoch pin for the whole walk up: the store lookups below then
        // pin without a fence of their own, and their misses can overlap.
        let _pinned = store::pin();
        let mut at = 0;
        loop {
            let owner = wire.get(at..).unwrap_or(&[0]);
            if let Some(known) = self.delegations.get(owner, now) {
                self.stats.hit(CacheKind::Delegation);
                return Some(known);
            }
            if let Some(ns) = self.records.entry(owner, RecordType::NS, now) {
                let delegation = self.delegation_from(owner, ns, now);
                if !skip_without_addresses || delegation.has_addresses() {
                    self.stats.hit(CacheKind::Delegation);
                    return Some(delegation);
                }
            }
            match wire.get(at) {
                Some(&len) if len > 0 => at += 1 + len as usize,
                _ => {
                    self.stats.miss(CacheKind::Delegation);
                    return None;
                }
            }
        }
    }

    /// The cut owned by `zone` from its NS entry and its servers' address
    /// entries; remembered when every server has an address.
    fn delegation_from(&self, zone: &[u8], ns: Arc<CachedAnswer>, now: u64) -> Delegation {
        let records = record::records_of(&ns).unwrap_or_default();
        let zone_name = records
            .first()
            .map_or_else(Name::root, |r| r.name.to_lowercase());
        let mut parts = vec![ns];
        let servers: Vec<NameServer> = records
            .iter()
            .filter_map(|r| match &r.data {
                RData::NS(ns) => Some(ns.0.to_lowercase()),
                _ => None,
            })
            .map(|target| {
                let target_wire = answer::name_wire_lower(&target);
                let mut addrs = Vec::new();
                for rtype in [RecordType::A, RecordType::AAAA] {
                    if let Some(set) = self.records.entry(&target_wire, rtype, now) {
                        addrs.extend(
                            record::records_of(&set)
                                .unwrap_or_default()
                                .iter()
                                .filter_map(|r| address(&r.data)),
                        );
                        parts.push(set);
                    }
                }
                NameServer {
                    name: target,
                    addrs,
                }
            })
            .collect();
        let delegation = Delegation {
            zone: zone_name,
            servers,
        };
        if !delegation.servers.is_empty() && delegation.servers.iter().all(|s| !s.addrs.is_empty())
        {
            self.delegations.insert(zone, &delegation, parts);
        }
        delegation
    }

    /// Cached A and AAAA addresses of a host name.
    pub fn addresses_of(&self, host: &Name) -> Vec<std::net::IpAddr> {
        let mut out = Vec::new();
        for rtype in [RecordType::A, RecordType::AAAA] {
            if let Some(set) = self.records.get(host, rtype) {
                out.extend(set.records.iter().filter_map(|r| address(&r.data)));
            }
        }
        out
    }

    /// Keeps the answer to the question `key` asks (see [`crate::wire::answer_key`]);
    /// returns the entry to send, or `None` when it cannot be encoded.
    ///
    /// One RRset answering the question as asked is already stored, as the
    /// answer to its own question, by the walk: that entry is the answer,
    /// and nothing is stored twice. Anything else (a CNAME chain, a
    /// negative answer, a wildcard answer with its proof) is encoded and
    /// stored whole, DNSSEC records included: clients with and without DO
    /// share it.
    pub fn store_answer(
        &self,
        key: &[u8],
        qname: &Name,
        qtype: RecordType,
        resolution: &Resolution,
    ) -> Option<Arc<CachedAnswer>> {
        let entry = if resolution.is_one_rrset(qname, qtype)
            && let Some(entry) = self.answers.stored_rrset(key)
            && entry.security == resolution.security
            && (entry.withheld().counts()[0] > 0
                || !resolution
                    .answers
                    .iter()
                    .any(|r| r.record_type() == RecordType::RRSIG))
        {
            entry
        } else {
            self.answers.insert(
                key,
                encode(qname, qtype, resolution, true)?,
                resolution.security,
            )?
        };
        if let Some(tier) = self.tier.get()
            && entry.ttl > 0
        {
            tier.write(key, &entry);
        }
        Some(entry)
    }

    /// Empties every store.
    pub fn flush_all(&self) {
        self.store.retain(|_| false);
        self.delegations.clear();
        self.negatives.flush_all();
        self.parent_side.flush_all();
    }

    /// Removes `name`, and with `subtree` everything below it, from every store.
    pub fn flush_name(&self, name: &Name, subtree: bool) {
        let name = name.to_lowercase();
        let target = answer::name_wire_lower(&name);
        self.store.retain(|e| {
            let qname = e.qname();
            !if subtree {
                answer::wire_name_at_or_below(qname, &target)
            } else {
                qname == target.as_slice()
            }
        });
        self.negatives.flush_name(&name, subtree);
        self.parent_side.flush_name(&name, subtree);
    }

    /// Drops `scope` from this instance's stores (the first tier only).
    pub fn flush(&self, scope: &FlushScope) {
        match scope {
            FlushScope::All => self.flush_all(),
            FlushScope::Name(name) => self.flush_name(name, false),
            FlushScope::Subtree(name) => self.flush_name(name, true),
        }
    }

    /// Drops `scope` from this instance's stores and, with a second tier,
    /// from the tier and every instance that shares it. The first tier is
    /// flushed whatever the tier says; its error is returned for the
    /// operator to see.
    pub async fn flush_fleet(&self, scope: &FlushScope) -> Result<(), tier::FlushError> {
        self.flush(scope);
        match self.tier.get() {
            Some(tier) => tier.flush(scope).await,
            None => Ok(()),
        }
    }

    /// Runs moka's pending maintenance so counts and sizes are current.
    pub fn sync(&self) {
        self.negatives.sync();
    }

    /// Entries and weighted bytes across the stores.
    pub fn usage(&self) -> CacheUsage {
        let (answer_entries, record_entries) = self.store.count_by_kind();
        CacheUsage {
            answer_entries,
            record_entries,
            negative_entries: self.negatives.entry_count(),
            parent_side_entries: self.parent_side.len(),
            shared_tails: self.answers.shared_tails() as u64,
            bytes: self.store.weight()
                + self.negatives.weighted_size()
                + self.answers.shared_tail_bytes() as u64,
        }
    }
}

/// The address an A or AAAA record holds.
pub fn address(data: &RData) -> Option<std::net::IpAddr> {
    match data {
        RData::A(a) => Some(std::net::IpAddr::V4(a.0)),
        RData::AAAA(a) => Some(std::net::IpAddr::V6(a.0)),
        _ => None,
    }
}

/// A snapshot of how full the cache is.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct CacheUsage {
    pub answer_entries: u64,
    pub record_entries: u64,
    pub negative_entries: u64,
    /// Referrals' cuts kept for the last resort (not counted in `bytes`).
    pub parent_side_entries: u64,
    /// Proofs shared by answers that end with them (see [`tails`]).
    pub shared_tails: u64,
    pub bytes: u64,
}

/// True when `name` equals `zone` or lies below it; both lower-cased.
pub fn is_at_or_below(name: &Name, zone: &Name) -> bool {
    zone.zone_of(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CacheConfig;
    use hickory_proto::rr::rdata::{A, NS};
    use hickory_proto::rr::{RData, Record};

    fn n(s: &str) -> Name {
        Name::from_ascii(s).expect("name")
    }

    fn a(owner: &str, ttl: u32, last: u8) -> Record {
        Record::from_rdata(n(owner), ttl, RData::A(A::new(127, 0, 0, last)))
    }

    fn ns(zone: &str, target: &str) -> Record {
        Record::from_rdata(n(zone), 3600, RData::NS(NS(n(target))))
    }

    fn cache() -> Cache {
        Cache::new(&CacheConfig::default(), Clock::manual())
    }

    #[test]
    fn glue_never_overrides_an_authoritative_answer() {
        let c = cache();
        assert!(
            c.records
                .insert(vec![a("www.example.kr.", 300, 1)], Rank::AuthAnswer)
        );
        assert!(
            !c.records
                .insert(vec![a("www.example.kr.", 300, 66)], Rank::Additional)
        );
        let got = c
            .records
            .get(&n("www.example.kr."), RecordType::A)
            .expect("cached");
        assert_eq!(got.records[0].data, RData::A(A::new(127, 0, 0, 1)));
        // A higher rank does replace a lower one.
        assert!(
            c.records
                .insert(vec![a("ns.example.kr.", 300, 2)], Rank::Additional)
        );
        assert!(
            c.records
                .insert(vec![a("ns.example.kr.", 300, 3)], Rank::AuthAnswer)
        );
    }

    #[test]
    fn an_equal_rrset_seen_again_is_kept_until_its_last_tenth_then_renewed() {
        let c = cache();
        let ttl_now = |c: &Cache| {
            c.records
                .get(&n("ns.example.kr."), RecordType::A)
                .expect("cached")
                .ttl
        };
        c.records
            .insert(vec![a("ns.example.kr.", 100, 1)], Rank::Additional);
        c.clock.advance(5_000);
        // The same glue again (every referral repeats it): left as stored.
        assert!(
            c.records
                .insert(vec![a("ns.example.kr.", 100, 1)], Rank::Additional)
        );
        assert_eq!(ttl_now(&c), 95);
        // In its last tenth, the same data renews the TTL (a prefetch).
        c.clock.advance(87_000);
        assert!(
            c.records
                .insert(vec![a("ns.example.kr.", 100, 1)], Rank::Additional)
        );
        assert_eq!(ttl_now(&c), 100);
        // Other data at the same rank replaces it at once.
        assert!(
            c.records
                .insert(vec![a("ns.example.kr.", 100, 2)], Rank::Additional)
        );
        let got = c
            .records
            .get(&n("ns.example.kr."), RecordType::A)
            .expect("cached");
        assert_eq!(got.records[0].data, RData::A(A::new(127, 0, 0, 2)));
    }

    #[test]
    fn ttls_decay_and_entries_expire_at_their_ttl() {
        let c = cache();
        c.records
            .insert(vec![a("www.example.kr.", 10, 1)], Rank::AuthAnswer);
        c.clock.advance(2_000);
        let got = c
            .records
            .get(&n("www.example.kr."), RecordType::A)
            .expect("cached");
        assert_eq!(got.ttl, 8);
        assert_eq!(got.records[0].ttl, 8);
        c.clock.advance(8_000);
        assert!(
            c.records
                .get(&n("www.example.kr."), RecordType::A)
                .is_none()
        );
    }

    #[test]
    fn clamps_apply_on_insert() {
        let config = CacheConfig {
            min_ttl: 60,
            max_ttl: 120,
            ..CacheConfig::default()
        };
        let c = Cache::new(&config, Clock::manual());
        c.records
            .insert(vec![a("short.kr.", 5, 1)], Rank::AuthAnswer);
        c.records
            .insert(vec![a("long.kr.", 86_400, 1)], Rank::AuthAnswer);
        assert_eq!(
            c.records.get(&n("short.kr."), RecordType::A).map(|s| s.ttl),
            Some(60)
        );
        assert_eq!(
            c.records.get(&n("long.kr."), RecordType::A).map(|s| s.ttl),
            Some(120)
        );
    }

    #[test]
    fn closest_delegation_is_the_deepest_cut_with_addresses() {
        let c = cache();
        c.records.insert(vec![ns(".", "a.root.")], Rank::AuthAnswer);
        c.records
            .insert(vec![a("a.root.", 3600, 1)], Rank::Additional);
        c.records.insert(vec![ns("kr.", "ns.kr.")], Rank::Referral);
        c.records
            .insert(vec![a("ns.kr.", 3600, 2)], Rank::Additional);
        c.records
            .insert(vec![ns("co.kr.", "ns.elsewhere.lab.")], Rank::Referral);
        let deepest = c
            .closest_delegation(&n("www.example.co.kr."), false)
            .expect("a cut");
        assert_eq!(deepest.zone, n("co.kr."));
        assert!(
            !deepest.has_addresses(),
            "glueless: the walk must resolve the NS name"
        );
        let usable = c
            .closest_delegation(&n("www.example.co.kr."), true)
            .expect("a cut");
        assert_eq!(usable.zone, n("kr."));
        assert_eq!(usable.servers[0].addrs.len(), 1);
        assert_eq!(
            c.closest_delegation(&n("www.lab."), true).map(|d| d.zone),
            Some(Name::root())
        );
    }

    #[test]
    fn a_remembered_cut_follows_its_records() {
        let c = cache();
        c.records.insert(vec![ns("kr.", "ns.kr.")], Rank::Referral);
        c.records
            .insert(vec![a("ns.kr.", 3600, 2)], Rank::Additional);
        let addrs = |c: &Cache| {
            c.closest_delegation(&n("www.example.kr."), true)
                .map(|d| d.servers[0].addrs.clone())
        };
        let first = addrs(&c);
        assert_eq!(first, Some(vec!["127.0.0.2".parse().expect("literal")]));
        assert_eq!(addrs(&c), first, "served again, now remembered");
        // New glue replaces the old entry: the remembered cut is not used.
        c.records
            .insert(vec![a("ns.kr.", 3600, 9)], Rank::AuthAnswer);
        assert_eq!(addrs(&c), Some(vec!["127.0.0.9".parse().expect("literal")]));
        // Past the NS set's TTL, neither the record nor the cut is there.
        c.clock.advance(3_600_000);
        assert_eq!(addrs(&c), None);
        // Flushed records take their cut with them.
        c.records.insert(vec![ns("kr.", "ns.kr.")], Rank::Referral);
        c.records
            .insert(vec![a("ns.kr.", 3600, 3)], Rank::Additional);
        assert!(addrs(&c).is_some());
        c.flush_name(&n("ns.kr."), false);
        assert_eq!(
            c.closest_delegation(&n("www.example.kr."), false)
                .map(|d| d.servers[0].addrs.is_empty()),
            Some(true)
        );
    }

    #[test]
    fn the_weigher_keeps_the_store_under_its_size() {
        let config = CacheConfig {
            size_mb: 1,
            ..CacheConfig::default()
        };
        let c = Cache::new(&config, Clock::manual());
        let cap = 1024 * 1024 / 4 * 3;
        for i in 0..40_000u32 {
            let name = format!("h{i}.bench.lab.");
            let qname = Name::from_ascii(&name).expect("name");
            let res = Resolution {
                rcode: hickory_proto::op::ResponseCode::NoError,
                answers: vec![a(&name, 300, 1)],
                authorities: Vec::new(),
                security: crate::dnssec::Security::Indeterminate,
            };
            let wire = encode(&qname, RecordType::A, &res, false).expect("encodes");
            let mut key = answer::name_wire_lower(&qname);
            key.extend_from_slice(&[0, 1, 0, 1, 1]);
            c.answers
                .insert(&key, wire, crate::dnssec::Security::Indeterminate);
            c.records.insert(vec![a(&name, 300, 1)], Rank::AuthAnswer);
        }
        assert!(c.store.weight() <= cap, "{} > {cap}", c.store.weight());
        assert!(c.stats.evictions(CacheKind::Answer) > 0);
        assert!(c.stats.evictions(CacheKind::Record) > 0);
    }

    #[test]
    fn one_rrset_is_stored_once_and_serves_the_hot_path() {
        let c = cache();
        c.records
            .insert(vec![a("www.example.kr.", 300, 7)], Rank::AuthAnswer);
        c.records
            .insert(vec![a("glue.example.kr.", 300, 8)], Rank::Additional);
        let key = |s: &str| {
            let mut k = answer::name_wire_lower(&n(s));
            k.extend_from_slice(&[0, 1, 0, 1, 0]);
            k
        };
        let now = c.clock.now_ms();
        let hit = c
            .answers
            .lookup_fresh(&key("WWW.example.kr."), now)
            .expect("the RRset answers its own question");
        assert_eq!(hit.rank, Some(Rank::AuthAnswer));
        assert_eq!(c.usage().record_entries, 2);
        assert_eq!(c.usage().answer_entries, 0);
        // Glue is for the walk, never for a client (RFC 2181 §5.4.1).
        assert!(
            c.answers
                .lookup_fresh(&key("glue.example.kr."), now)
                .is_none()
        );
        // With CD the key differs (unchecked data, RFC 4035 §3.2.2): the
        // RRset entry does not answer it.
        let mut with_cd = key("www.example.kr.");
        *with_cd.last_mut().expect("a key") = crate::wire::VARIANT_CD;
        assert!(c.answers.lookup_fresh(&with_cd, now).is_none());
    }

    #[test]
    fn a_signed_rrset_is_one_entry_answering_clients_with_and_without_do() {
        use hickory_proto::dnssec::Algorithm;
        use hickory_proto::dnssec::rdata::{DNSSECRData, RRSIG, SigInput};
        use hickory_proto::rr::SerialNumber;

        let c = cache();
        let sig = Record::from_rdata(
            n("www.example.kr."),
            300,
            RData::DNSSEC(DNSSECRData::RRSIG(RRSIG::from_sig(
                SigInput {
                    type_covered: RecordType::A,
                    algorithm: Algorithm::ECDSAP256SHA256,
                    num_labels: 3,
                    original_ttl: 300,
                    sig_expiration: SerialNumber::new(2_000_000_000),
                    sig_inception: SerialNumber::new(1_700_000_000),
                    key_tag: 42,
                    signer_name: n("example.kr."),
                },
                vec![9; 64],
            ))),
        );
        assert!(c.records.insert_signed(
            vec![a("www.example.kr.", 300, 7)],
            vec![sig],
            Rank::AuthAnswer,
            crate::dnssec::Security::Secure,
        ));
        assert_eq!(c.usage().record_entries, 1, "one entry, RRSIG included");
        let got = c
            .records
            .get(&n("www.example.kr."), RecordType::A)
            .expect("cached");
        assert_eq!(got.records.len(), 1, "the RRset alone: {got:?}");
        assert_eq!(
            c.records
                .signatures(&n("www.example.kr."), RecordType::A)
                .len(),
            1
        );
        let mut key = answer::name_wire_lower(&n("www.example.kr."));
        key.extend_from_slice(&[0, 1, 0, 1, 0]);
        let entry = c
            .answers
            .lookup_fresh(&key, c.clock.now_ms())
            .expect("the hot path finds it");
        for (dnssec_ok, want) in [
            (false, vec![RecordType::A]),
            (true, vec![RecordType::A, RecordType::RRSIG]),
        ] {
            let mut raw = vec![0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1];
            raw.extend_from_slice(&key[..key.len() - 5]);
            raw.extend_from_slice(&[0, 1, 0, 1]);
            raw.extend_from_slice(&[
                0,
                0,
                41,
                4,
                0xd0,
                0,
                0,
                if dnssec_ok { 0x80 } else { 0 },
                0,
                0,
                0,
            ]);
            let q = crate::wire::parse_query(&raw).expect("a query");
            let mut out = Vec::new();
            assert!(entry.render(&q, c.clock.now_ms(), true, None, 4096, &mut out));
            let msg = hickory_proto::op::Message::from_vec(&out).expect("decodes");
            let types: Vec<RecordType> = msg.answers.iter().map(|r| r.record_type()).collect();
            assert_eq!(types, want, "DO={dnssec_ok}");
            assert_eq!(
                msg.metadata.authentic_data, dnssec_ok,
                "AD for DO only (no AD asked)"
            );
        }
    }

    #[test]
    fn flush_of_a_subtree_leaves_the_rest() {
        let c = cache();
        c.records
            .insert(vec![a("www.example.kr.", 300, 1)], Rank::AuthAnswer);
        c.records
            .insert(vec![a("deep.www.example.kr.", 300, 1)], Rank::AuthAnswer);
        c.records
            .insert(vec![a("www.other.kr.", 300, 1)], Rank::AuthAnswer);
        c.flush_name(&n("example.kr."), true);
        c.sync();
        assert!(
            c.records
                .get(&n("www.example.kr."), RecordType::A)
                .is_none()
        );
        assert!(
            c.records
                .get(&n("deep.www.example.kr."), RecordType::A)
                .is_none()
        );
        assert!(c.records.get(&n("www.other.kr."), RecordType::A).is_some());
    }
}
