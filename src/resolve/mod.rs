//! Recursive resolution: what happens on a cache miss.
//!
//! [`Resolver::answer`] coalesces identical questions in flight, runs the
//! walk ([`walk`]) under a per-question [`Budget`], and stores the final
//! response in the answer cache, from which the server renders it exactly as
//! it renders a hit. The walk is split the way Unbound's iterator is:
//! [`hints`] (where to start), [`transport`] (talking to servers), [`infra`]
//! (which server to ask), [`scrub`] (what a server may say), [`classify`]
//! (what it said), [`cut`] (one zone cut's servers), [`walk`] (from cut to
//! cut, root first), [`validate`] (whether
//! to believe it: DNSSEC), [`failures`] (what failed a moment ago, RFC 9520).
//!
//! The walk returns what it found without caching it; [`Resolver::resolve_with`]
//! has it validated, caches it with its security status, and follows the
//! chain, so an answer is only as secure as its weakest link.

pub mod classify;
pub mod cut;
pub mod error;
pub mod failures;
pub mod hints;
pub mod inflight;
pub mod infra;
pub mod referral;
pub mod scrub;
mod sockets;
pub mod transport;
pub mod validate;
pub mod walk;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use tokio::sync::mpsc;

pub use error::ResolveError;

use crate::cache::negative::NegativeView;
use crate::cache::{Cache, CachedAnswer, NegativeKind, Rank, Resolution};
use crate::config::ResolverConfig;
use crate::dnssec::{Security, covers};
use crate::metrics::Metrics;
use failures::FailureCache;
use hints::RootHint;
use inflight::{Inflight, Role};
use infra::Infra;
pub use validate::Validation;

/// A client question as the resolver sees it.
#[derive(Debug, Clone)]
pub struct Question {
    pub name: Name,
    pub qtype: RecordType,
    pub dnssec_ok: bool,
    /// CD: the client checks signatures itself; bogus data is returned, never AD.
    pub checking_disabled: bool,
    /// The answer-cache key (see [`crate::wire::answer_key`]).
    pub key: Box<[u8]>,
}

impl Question {
    /// Rebuilds a question from its answer-cache key (used by prefetch).
    pub fn from_key(key: &[u8]) -> Option<Question> {
        let mut dec = BinDecoder::new(key);
        let name = Name::read(&mut dec).ok()?;
        let tail = key.get(dec.index()..)?;
        if tail.len() != 5 {
            return None;
        }
        Some(Question {
            name,
            qtype: RecordType::from(u16::from_be_bytes([tail[0], tail[1]])),
            dnssec_ok: tail[4] & crate::wire::VARIANT_DO != 0,
            checking_disabled: tail[4] & crate::wire::VARIANT_CD != 0,
            key: key.into(),
        })
    }
}

/// Limits for one client question (NXNSAttack-style amplification bounds).
#[derive(Debug)]
pub struct Budget {
    pub deadline: tokio::time::Instant,
    pub queries_left: u32,
    /// How deep glueless NS sub-resolutions are nested.
    pub glueless_depth: u8,
    /// Whether this question has primed the root (RFC 8109): once is enough.
    pub primed: bool,
    /// The NS names whose addresses are being looked up, outermost first: a
    /// name that turns up again needs itself (an NS dependency cycle).
    pub ns_lookups: Vec<Name>,
    /// The client set CD: bogus data is returned instead of SERVFAIL.
    pub checking_disabled: bool,
    /// The client set DO: cached RRsets come with their RRSIGs.
    pub dnssec_ok: bool,
    /// How deep the validator's DS/DNSKEY fetches are nested.
    pub fetch_depth: u8,
    /// Servers whose data proved bogus in this question: not asked again.
    pub bogus_from: Vec<IpAddr>,
}

impl Budget {
    pub fn new(config: &ResolverConfig) -> Budget {
        Budget {
            deadline: tokio::time::Instant::now() + config.query_budget(),
            queries_left: config.max_upstream_queries,
            glueless_depth: 0,
            primed: false,
            ns_lookups: Vec::new(),
            checking_disabled: false,
            dnssec_ok: false,
            fetch_depth: 0,
            bogus_from: Vec::new(),
        }
    }

    /// A budget of its own for a validator's DS or DNSKEY fetch (Unbound
    /// counts a sub-query's sends apart), inside this one's time.
    pub fn for_subquery(&self, config: &ResolverConfig) -> Budget {
        Budget {
            deadline: self.deadline,
            glueless_depth: self.glueless_depth,
            primed: self.primed,
            ns_lookups: self.ns_lookups.clone(),
            checking_disabled: self.checking_disabled,
            fetch_depth: self.fetch_depth + 1,
            bogus_from: self.bogus_from.clone(),
            ..Budget::new(config)
        }
    }

    /// Takes one upstream query from the budget.
    pub fn spend(&mut self) -> Result<(), ResolveError> {
        if tokio::time::Instant::now() >= self.deadline {
            return Err(ResolveError::BudgetTime);
        }
        if self.queries_left == 0 {
            return Err(ResolveError::BudgetQueries);
        }
        self.queries_left -= 1;
        Ok(())
    }

    pub fn remaining_time(&self) -> std::time::Duration {
        self.deadline
            .saturating_duration_since(tokio::time::Instant::now())
    }
}

type AnswerResult = Result<Arc<CachedAnswer>, ResolveError>;

/// How many times one link of a question asks another server after bogus
/// data (Unbound restarts a bogus query up to VAL_MAX_RESTART_COUNT, 5).
pub(super) const MAX_BOGUS_RETRIES: u32 = 3;

/// The recursive resolver shared by every listener.
pub struct Resolver {
    pub config: ResolverConfig,
    pub cache: Arc<Cache>,
    pub infra: Infra,
    pub hints: Vec<RootHint>,
    pub metrics: Arc<Metrics>,
    /// Questions whose resolution failed a moment ago (RFC 9520).
    pub failures: FailureCache,
    /// DNSSEC: trust anchors, proven keys, NSEC ranges.
    pub validation: Validation,
    inflight: Inflight<AnswerResult>,
    running: AtomicUsize,
    max_running: usize,
    prefetch_tx: mpsc::Sender<Box<[u8]>>,
}

impl Resolver {
    /// Builds the resolver and starts its prefetch worker on the current runtime.
    pub fn start(
        config: ResolverConfig,
        cache: Arc<Cache>,
        hints: Vec<RootHint>,
        metrics: Arc<Metrics>,
        validation: Validation,
        max_running: usize,
    ) -> Arc<Resolver> {
        let (prefetch_tx, mut prefetch_rx) = mpsc::channel::<Box<[u8]>>(1024);
        let infra = Infra::new(
            cache.clock.clone(),
            config.upstream_timeout(),
            config.infra_max_rtt_ms,
        );
        let failures = FailureCache::new(
            cache.clock.clone(),
            std::time::Duration::from_secs(u64::from(crate::config::MAX_FAILURE_CACHE_TTL_S)),
        );
        let resolver = Arc::new(Resolver {
            config,
            cache,
            infra,
            hints,
            metrics,
            failures,
            validation,
            inflight: Inflight::default(),
            running: AtomicUsize::new(0),
            max_running,
            prefetch_tx,
        });
        let weak = Arc::downgrade(&resolver);
        tokio::spawn(async move {
            while let Some(key) = prefetch_rx.recv().await {
                let Some(resolver) = weak.upgrade() else {
                    break;
                };
                let Some(q) = Question::from_key(&key) else {
                    continue;
                };
                resolver
                    .cache
                    .stats
                    .prefetches
                    .fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let _ = resolver.answer(&q, true).await;
                });
            }
        });
        resolver
    }

    /// Asks for a background refresh of an answer near its expiry. Never
    /// blocks: when the queue is full the prefetch is skipped.
    pub fn prefetch(&self, key: &[u8]) {
        let _ = self.prefetch_tx.try_send(key.into());
    }

    /// Forgets what resolutions derived besides the cache: remembered
    /// failures, proven keys, validated NSEC ranges (an admin's flush).
    pub fn forget_derived(&self) {
        self.failures.flush_all();
        self.validation.flush();
    }

    /// Resolutions in flight now (the `taproot_resolutions_inflight` gauge).
    pub fn inflight(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    /// Resolves `q` and stores the encoded response in the answer cache.
    /// Concurrent identical questions share one resolution. `refresh`
    /// ignores a cached RRset for the question itself (prefetch).
    ///
    /// Call it from a spawned task: the leader's result is what every
    /// follower waits for.
    pub async fn answer(self: &Arc<Self>, q: &Question, refresh: bool) -> AnswerResult {
        match self.inflight.join(&q.key) {
            Role::Follower(rx) => rx.await.unwrap_or(Err(ResolveError::Internal)),
            Role::Leader => {
                let guard = LeaderGuard {
                    resolver: self,
                    key: &q.key,
                    done: false,
                };
                let result = self.lead(q, refresh).await;
                guard.finish(&result);
                result
            }
        }
    }

    async fn lead(&self, q: &Question, refresh: bool) -> AnswerResult {
        // (name, type, class) and CD: a bogus answer fails only without CD.
        let mut buf = [0u8; crate::wire::KEY_MAX];
        let len = q.key.len().min(buf.len());
        buf[..len].copy_from_slice(&q.key[..len]);
        if let Some(variant) = buf[..len].last_mut() {
            *variant &= crate::wire::VARIANT_CD;
        }
        let failure_key = &buf[..len];
        if let Some(failed) = self.failures.get(failure_key) {
            self.metrics.failure_cached();
            return Err(failed);
        }
        let running = self.running.fetch_add(1, Ordering::Relaxed);
        let _running = RunningGuard(&self.running);
        if running >= self.max_running {
            return Err(ResolveError::Overloaded);
        }
        let mut budget = Budget::new(&self.config);
        budget.checking_disabled = q.checking_disabled;
        budget.dnssec_ok = q.dnssec_ok;
        let resolution = match self
            .resolve_with(&q.name, q.qtype, &mut budget, refresh)
            .await
        {
            Ok(resolution) => resolution,
            Err(e) => {
                self.failures
                    .insert(failure_key, &e, self.config.failure_cache_ttl());
                return Err(e);
            }
        };
        self.cache
            .store_answer(&q.key, &q.name, q.qtype, &resolution)
            .ok_or(ResolveError::Internal)
    }

    /// Resolves (name, type) to records, following CNAMEs across zones.
    pub async fn resolve(
        &self,
        qname: &Name,
        qtype: RecordType,
        refresh: bool,
    ) -> Result<Resolution, ResolveError> {
        let mut budget = Budget::new(&self.config);
        self.resolve_with(qname, qtype, &mut budget, refresh).await
    }

    /// The CNAME-chasing loop (RFC 1034 §5.3.3 step 4c), cache first at
    /// every link; each link the walk finds is validated before it is
    /// cached, and the answer is only as secure as its weakest link.
    pub async fn resolve_with(
        &self,
        qname: &Name,
        qtype: RecordType,
        budget: &mut Budget,
        refresh: bool,
    ) -> Result<Resolution, ResolveError> {
        let mut chain: Vec<Record> = Vec::new();
        let mut security = if self.validation.enabled {
            Security::Secure
        } else {
            Security::Indeterminate
        };
        let mut name = qname.to_lowercase();
        let max = self.config.max_cname_chain;
        for link in 0..=max {
            if !(refresh && link == 0) {
                match self.cached(&name, qtype, budget.dnssec_ok) {
                    Some(Cached::Rrset(records, sec)) => {
                        chain.extend(records);
                        return Ok(positive(chain, Vec::new(), security.and(sec)));
                    }
                    Some(Cached::Cname(records, target, sec)) => {
                        chain.extend(records);
                        security = security.and(sec);
                        check_loop(&chain, &target)?;
                        name = target;
                        continue;
                    }
                    Some(Cached::Negative(n)) => {
                        let n = *n;
                        let mut authorities = vec![n.soa];
                        authorities.extend(n.proof);
                        return Ok(negative(
                            n.kind,
                            chain,
                            authorities,
                            security.and(n.security),
                        ));
                    }
                    None => {}
                }
                if let Some(denied) = self.aggressive_nxdomain(&name, budget) {
                    return Ok(negative(NegativeKind::NxDomain, chain, denied, security));
                }
            }
            let (found, verdict) = self.walk_and_validate(&name, qtype, budget).await?;
            let sec = self.judge(&name, qtype, verdict, budget)?;
            let cacheable = sec.is_some();
            let sec = sec.unwrap_or(Security::Indeterminate);
            security = security.and(sec);
            match found.step {
                walk::Step::Answer {
                    chain: c,
                    rrset,
                    proof,
                } => {
                    if cacheable {
                        self.cache_chain(&c, found.rank, sec);
                        // A CNAME synthesised from a DNAME (a CNAME question
                        // at a rewritten name) is not cached on its own:
                        // the DNAME is (see `cache_chain`).
                        let synthesised = qtype == RecordType::CNAME
                            && c.iter().any(|r| r.record_type() == RecordType::DNAME);
                        // A wildcard expansion is only proven with its
                        // NSEC/NSEC3 (RFC 4035 §5.3.4); the RRset cache
                        // keeps no proof, so it stays in the answer cache
                        // alone, whose entry carries the proof and lives
                        // no longer than it.
                        if !synthesised && !wildcard_expanded(&rrset) {
                            self.cache_records(&rrset, found.rank, sec);
                        }
                    }
                    chain.extend(c);
                    chain.extend(rrset);
                    if chain_has_loop(&chain) {
                        return Err(ResolveError::CnameLoop(name.to_string()));
                    }
                    return Ok(positive(self.clamped(chain), proof, security));
                }
                walk::Step::Cname { chain: c, target } => {
                    if cacheable {
                        self.cache_chain(&c, found.rank, sec);
                    }
                    chain.extend(c);
                    check_loop(&chain, &target)?;
                    name = target.to_lowercase();
                }
                walk::Step::Negative {
                    kind,
                    chain: c,
                    soa,
                    proof,
                } => {
                    let end = walk::chain_end(&name, &c);
                    let soa = if cacheable {
                        self.cache_chain(&c, found.rank, sec);
                        self.cache_negative(&end, qtype, kind, soa, proof.clone(), sec)
                    } else {
                        soa
                    };
                    if cacheable && sec == Security::Secure && kind == NegativeKind::NxDomain {
                        self.keep_nsec_range(soa.as_ref(), &proof);
                    }
                    chain.extend(c);
                    if chain_has_loop(&chain) {
                        return Err(ResolveError::CnameLoop(name.to_string()));
                    }
                    let mut authorities: Vec<Record> = soa.into_iter().collect();
                    authorities.extend(proof);
                    return Ok(negative(kind, self.clamped(chain), authorities, security));
                }
            }
            let links = chain
                .iter()
                .filter(|r| r.record_type() == RecordType::CNAME)
                .count();
            if links as u32 > max {
                return Err(ResolveError::CnameChainTooLong(max));
            }
        }
        Err(ResolveError::CnameChainTooLong(max))
    }

    /// Walks for (name, qtype) and validates what the walk found. Data that
    /// proves bogus is asked again of the zone's other servers, leaving out
    /// the one that sent it for the rest of the question (Unbound and Knot
    /// do the same: one broken or spoofed server must not make a zone
    /// bogus while another serves it right), at most
    /// [`MAX_BOGUS_RETRIES`] times. When no other server is left, the first
    /// bogus verdict stands. A CD client gets the first answer as it is.
    async fn walk_and_validate(
        &self,
        name: &Name,
        qtype: RecordType,
        budget: &mut Budget,
    ) -> Result<(walk::Found, validate::Verdict), ResolveError> {
        let mut first_bogus = None;
        let mut retries = 0;
        loop {
            let mut found = match self.walk(name, qtype, budget).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::debug!(%name, %qtype, error = %e, "no other server gave an answer");
                    return first_bogus.ok_or(e);
                }
            };
            let verdict = self.validate(name, qtype, &mut found, budget).await?;
            if verdict.is_ok() {
                return Ok((found, verdict));
            }
            if budget.checking_disabled || retries >= MAX_BOGUS_RETRIES {
                return Ok(first_bogus.unwrap_or((found, verdict)));
            }
            tracing::debug!(%name, %qtype, server = %found.server, "bogus data; asking the zone's other servers");
            retries += 1;
            budget.bogus_from.push(found.server);
            first_bogus.get_or_insert((found, verdict));
        }
    }

    fn clamped(&self, mut records: Vec<Record>) -> Vec<Record> {
        for r in &mut records {
            r.ttl = self.cache.policy.positive(r.ttl);
        }
        records
    }

    /// What the cache already says about (name, type). With `dnssec_ok`,
    /// secure RRsets come with their RRSIGs (only a DO client is shown them).
    fn cached(&self, name: &Name, qtype: RecordType, dnssec_ok: bool) -> Option<Cached> {
        if let Some(set) = self.cache.records.get(name, qtype)
            && set.rank >= Rank::NonAuthAnswer
        {
            let mut records = set.records;
            if dnssec_ok && set.security == Security::Secure {
                records.extend(self.cache.records.signatures(name, qtype));
            }
            return Some(Cached::Rrset(records, set.security));
        }
        if qtype != RecordType::CNAME
            && let Some(set) = self.cache.records.get(name, RecordType::CNAME)
            && let Some(RData::CNAME(target)) = set.records.first().map(|r| &r.data)
        {
            let target = target.0.to_lowercase();
            let mut records = set.records;
            if dnssec_ok && set.security == Security::Secure {
                records.extend(self.cache.records.signatures(name, RecordType::CNAME));
            }
            return Some(Cached::Cname(records, target, set.security));
        }
        self.cache
            .negatives
            .get(name, qtype)
            .map(|n| Cached::Negative(Box::new(n)))
    }

    /// Drops addresses the config forbids as upstreams (Unbound's
    /// do-not-query-localhost, extended to private ranges).
    pub fn usable(&self, addr: &IpAddr) -> bool {
        if self.config.allow_loopback_upstreams {
            return !addr.is_unspecified() && !addr.is_multicast();
        }
        match addr {
            IpAddr::V4(v4) => {
                !(v4.is_loopback()
                    || v4.is_private()
                    || v4.is_link_local()
                    || v4.is_unspecified()
                    || v4.is_broadcast()
                    || v4.is_multicast())
            }
            IpAddr::V6(v6) => {
                let seg = v6.segments()[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (seg & 0xfe00) == 0xfc00
                    || (seg & 0xffc0) == 0xfe80)
            }
        }
    }

    /// Caches chain links, except CNAMEs synthesised from a DNAME (the DNAME is cached).
    fn cache_chain(&self, chain: &[Record], rank: Rank, security: Security) {
        let has_dname = chain.iter().any(|r| r.record_type() == RecordType::DNAME);
        if has_dname {
            let keep: Vec<Record> = chain
                .iter()
                .filter(|r| r.record_type() != RecordType::CNAME && !covers(r, RecordType::CNAME))
                .cloned()
                .collect();
            self.cache_records(&keep, rank, security);
        } else {
            self.cache_records(chain, rank, security);
        }
    }

    /// Caches each RRset in `records` at `rank` with its security status
    /// (see [`crate::cache::RecordCache::insert_all`]).
    pub fn cache_records(&self, records: &[Record], rank: Rank, security: Security) {
        self.cache.records.insert_all(records, rank, security);
    }

    /// Caches a negative answer for `name` with its proof; returns the SOA
    /// with its TTL set.
    pub fn cache_negative(
        &self,
        name: &Name,
        qtype: RecordType,
        kind: NegativeKind,
        soa: Option<Record>,
        proof: Vec<Record>,
        security: Security,
    ) -> Option<Record> {
        let mut soa = soa?;
        let ttl = self
            .cache
            .negatives
            .insert(name, qtype, kind, soa.clone(), proof, security);
        if let RData::SOA(s) = &soa.data {
            soa.ttl = if ttl > 0 {
                ttl
            } else {
                self.cache.policy.negative(soa.ttl, s.minimum)
            };
        }
        Some(soa)
    }
}

enum Cached {
    Rrset(Vec<Record>, Security),
    /// The CNAME (and its RRSIGs) and its target.
    Cname(Vec<Record>, Name, Security),
    Negative(Box<NegativeView>),
}

fn positive(answers: Vec<Record>, authorities: Vec<Record>, security: Security) -> Resolution {
    Resolution {
        rcode: ResponseCode::NoError,
        answers,
        authorities,
        security,
    }
}

fn negative(
    kind: NegativeKind,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    security: Security,
) -> Resolution {
    Resolution {
        rcode: match kind {
            NegativeKind::NxDomain => ResponseCode::NXDomain,
            NegativeKind::NoData => ResponseCode::NoError,
        },
        answers,
        authorities,
        security,
    }
}

/// True when an RRSIG in `rrset` counts fewer labels than its owner has:
/// the RRset was expanded from a wildcard (RFC 4035 §5.3.2).
fn wildcard_expanded(rrset: &[Record]) -> bool {
    rrset.iter().any(|r| {
        crate::dnssec::rrsig(r).is_some_and(|sig| sig.input().num_labels < r.name.num_labels())
    })
}

/// A chain loops when an owner repeats or the last target is an earlier owner.
fn chain_has_loop(chain: &[Record]) -> bool {
    let owners: Vec<Name> = chain
        .iter()
        .filter(|r| r.record_type() == RecordType::CNAME)
        .map(|r| r.name.to_lowercase())
        .collect();
    for (i, o) in owners.iter().enumerate() {
        if owners[..i].contains(o) {
            return true;
        }
    }
    if let Some(RData::CNAME(t)) = chain
        .iter()
        .rev()
        .find(|r| r.record_type() == RecordType::CNAME)
        .map(|r| &r.data)
    {
        return owners.contains(&t.0.to_lowercase());
    }
    false
}

fn check_loop(chain: &[Record], target: &Name) -> Result<(), ResolveError> {
    let target = target.to_lowercase();
    if chain_has_loop(chain)
        || chain
            .iter()
            .any(|r| r.record_type() == RecordType::CNAME && r.name.to_lowercase() == target)
    {
        return Err(ResolveError::CnameLoop(target.to_string()));
    }
    Ok(())
}

/// Releases followers even when the leader's future is dropped mid-way.
struct LeaderGuard<'a> {
    resolver: &'a Resolver,
    key: &'a [u8],
    done: bool,
}

impl LeaderGuard<'_> {
    fn finish(mut self, result: &AnswerResult) {
        self.resolver.inflight.finish(self.key, result);
        self.done = true;
    }
}

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.resolver
                .inflight
                .finish(self.key, &Err(ResolveError::Internal));
        }
    }
}

struct RunningGuard<'a>(&'a AtomicUsize);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
