//! Recursive resolution: what happens on a cache miss.
//!
//! [`Resolver::answer`] coalesces identical questions in flight, runs the
//! walk ([`iterator`]) under a per-question [`Budget`], and stores the final
//! response in the answer cache, from which the server renders it exactly as
//! it renders a hit. The walk is split the way Unbound's iterator is:
//! [`hints`] (where to start), [`transport`] (talking to servers), [`infra`]
//! (which server to ask), [`scrub`] (what a server may say), [`classify`]
//! (what it said), [`iterator`] (the state machine), [`failures`] (what
//! failed a moment ago, RFC 9520).

pub mod classify;
pub mod error;
pub mod failures;
pub mod hints;
pub mod inflight;
pub mod infra;
pub mod iterator;
pub mod scrub;
mod sockets;
pub mod transport;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use tokio::sync::mpsc;
use tracing::debug;

pub use error::ResolveError;

use crate::cache::{Cache, CachedAnswer, NegativeKind, Rank};
use crate::config::ResolverConfig;
use crate::metrics::Metrics;
use failures::FailureCache;
use hints::RootHint;
use inflight::{Inflight, Role};
use infra::Infra;

/// A client question as the resolver sees it.
#[derive(Debug, Clone)]
pub struct Question {
    pub name: Name,
    pub qtype: RecordType,
    pub dnssec_ok: bool,
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
            dnssec_ok: tail[4] != 0,
            key: key.into(),
        })
    }
}

/// The outcome of a resolution before it is encoded.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub rcode: ResponseCode,
    /// The CNAME/DNAME chain and the final RRset.
    pub answers: Vec<Record>,
    /// The SOA of a negative answer.
    pub authorities: Vec<Record>,
}

impl Resolution {
    /// True for a plain positive answer: records of `qtype` owned by `qname`, nothing else.
    pub fn is_one_rrset(&self, qname: &Name, qtype: RecordType) -> bool {
        self.rcode == ResponseCode::NoError
            && self.authorities.is_empty()
            && !self.answers.is_empty()
            && self
                .answers
                .iter()
                .all(|r| r.record_type() == qtype && r.name == *qname)
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
}

impl Budget {
    pub fn new(config: &ResolverConfig) -> Budget {
        Budget {
            deadline: tokio::time::Instant::now() + config.query_budget(),
            queries_left: config.max_upstream_queries,
            glueless_depth: 0,
            primed: false,
            ns_lookups: Vec::new(),
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

/// The recursive resolver shared by every listener.
pub struct Resolver {
    pub config: ResolverConfig,
    pub cache: Arc<Cache>,
    pub infra: Infra,
    pub hints: Vec<RootHint>,
    pub metrics: Arc<Metrics>,
    /// Questions whose resolution failed a moment ago (RFC 9520).
    pub failures: FailureCache,
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
        max_running: usize,
    ) -> Arc<Resolver> {
        let (prefetch_tx, mut prefetch_rx) = mpsc::channel::<Box<[u8]>>(1024);
        let infra = Infra::new(cache.clock.clone(), config.upstream_timeout());
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
        // The key without its DO byte: (name, type, class).
        let failure_key = &q.key[..q.key.len().saturating_sub(1)];
        if let Some(failed) = self.failures.get(failure_key) {
            self.metrics.failure_cached();
            return Err(failed);
        }
        let running = self.running.fetch_add(1, Ordering::Relaxed);
        let _running = RunningGuard(&self.running);
        if running >= self.max_running {
            return Err(ResolveError::Overloaded);
        }
        let resolution = match self.resolve(&q.name, q.qtype, refresh).await {
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

    /// The CNAME-chasing loop (RFC 1034 §5.3.3 step 4c), cache first at every link.
    pub async fn resolve_with(
        &self,
        qname: &Name,
        qtype: RecordType,
        budget: &mut Budget,
        refresh: bool,
    ) -> Result<Resolution, ResolveError> {
        let mut chain: Vec<Record> = Vec::new();
        let mut name = qname.to_lowercase();
        let max = self.config.max_cname_chain;
        for link in 0..=max {
            if !(refresh && link == 0) {
                match self.cached(&name, qtype) {
                    Some(Cached::Rrset(records)) => {
                        chain.extend(records);
                        return Ok(positive(chain));
                    }
                    Some(Cached::Cname(record, target)) => {
                        chain.push(record);
                        check_loop(&chain, &target)?;
                        name = target;
                        continue;
                    }
                    Some(Cached::Negative(kind, soa)) => {
                        return Ok(negative(kind, chain, Some(soa)));
                    }
                    None => {}
                }
            }
            match self.walk(&name, qtype, budget).await? {
                iterator::Step::Answer { chain: c, rrset } => {
                    chain.extend(c);
                    chain.extend(rrset);
                    if chain_has_loop(&chain) {
                        return Err(ResolveError::CnameLoop(name.to_string()));
                    }
                    return Ok(positive(self.clamped(chain)));
                }
                iterator::Step::Cname { chain: c, target } => {
                    chain.extend(c);
                    check_loop(&chain, &target)?;
                    name = target.to_lowercase();
                }
                iterator::Step::Negative {
                    kind,
                    chain: c,
                    soa,
                } => {
                    chain.extend(c);
                    if chain_has_loop(&chain) {
                        return Err(ResolveError::CnameLoop(name.to_string()));
                    }
                    return Ok(negative(kind, self.clamped(chain), soa));
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

    fn clamped(&self, mut records: Vec<Record>) -> Vec<Record> {
        for r in &mut records {
            r.ttl = self.cache.policy.positive(r.ttl);
        }
        records
    }

    /// What the cache already says about (name, type).
    fn cached(&self, name: &Name, qtype: RecordType) -> Option<Cached> {
        if let Some(set) = self.cache.records.get(name, qtype)
            && set.rank >= Rank::NonAuthAnswer
        {
            return Some(Cached::Rrset(set.records));
        }
        if qtype != RecordType::CNAME
            && let Some(set) = self.cache.records.get(name, RecordType::CNAME)
            && let Some(record) = set.records.into_iter().next()
            && let RData::CNAME(target) = &record.data
        {
            let target = target.0.to_lowercase();
            return Some(Cached::Cname(record, target));
        }
        self.cache
            .negatives
            .get(name, qtype)
            .map(|n| Cached::Negative(n.kind, n.soa))
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

    /// Groups records by (owner, type) and caches each RRset at `rank`.
    pub fn cache_records(&self, records: &[Record], rank: Rank) {
        let mut sets: HashMap<(Name, RecordType), Vec<Record>> = HashMap::new();
        for r in records {
            // Synthesised CNAMEs from a DNAME are not cached: the DNAME is.
            sets.entry((r.name.to_lowercase(), r.record_type()))
                .or_default()
                .push(r.clone());
        }
        for (_, set) in sets {
            self.cache.records.insert(set, rank);
        }
    }

    /// Caches a negative answer for `name`; returns the SOA with its TTL set.
    pub fn cache_negative(
        &self,
        name: &Name,
        qtype: RecordType,
        kind: NegativeKind,
        soa: Option<Record>,
    ) -> Option<Record> {
        let mut soa = soa?;
        let ttl = self.cache.negatives.insert(name, qtype, kind, soa.clone());
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
    Rrset(Vec<Record>),
    Cname(Record, Name),
    Negative(NegativeKind, Record),
}

fn positive(answers: Vec<Record>) -> Resolution {
    Resolution {
        rcode: ResponseCode::NoError,
        answers,
        authorities: Vec::new(),
    }
}

fn negative(kind: NegativeKind, answers: Vec<Record>, soa: Option<Record>) -> Resolution {
    Resolution {
        rcode: match kind {
            NegativeKind::NxDomain => ResponseCode::NXDomain,
            NegativeKind::NoData => ResponseCode::NoError,
        },
        answers,
        authorities: soa.into_iter().collect(),
    }
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

/// Encodes a resolution as a response (ID 0; flags and ID are patched per client).
pub fn encode(qname: &Name, qtype: RecordType, res: &Resolution) -> Option<Vec<u8>> {
    let mut msg = Message::new(0, MessageType::Response, OpCode::Query);
    msg.metadata.recursion_available = true;
    msg.metadata.response_code = res.rcode;
    let mut query = Query::query(qname.to_lowercase(), qtype);
    query.set_query_class(DNSClass::IN);
    msg.add_query(query);
    msg.answers = res.answers.clone();
    msg.authorities = res.authorities.clone();
    match msg.to_vec() {
        Ok(v) => Some(v),
        Err(e) => {
            debug!(error = %e, "cannot encode resolution");
            None
        }
    }
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
