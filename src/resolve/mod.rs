//! Recursive resolution: what happens on a cache miss.
//!
//! [`Resolver::answer`] coalesces identical questions in flight, runs the
//! [`driver`] for the question under its [`Request`], and stores the final
//! response in the answer cache, from which the server renders it exactly as
//! it renders a hit. The driver's steps (init, find_cut, query_targets,
//! on_response, validate, finish) are named after RFC 1034 §5.3.3 and
//! Unbound's iterator states; their pieces are split the way Unbound's
//! iterator is: [`hints`] (where to start), [`transport`] (talking to
//! servers; [`tls`] for DNS over TLS to forwarders), [`infra`] (which server to ask), [`scrub`] (what a server may
//! say), [`classify`] (what it said), [`response`] (what that means for the
//! walk), [`cut`] (one zone cut's servers), [`validate`] (whether to believe
//! it: DNSSEC), [`failures`] (what failed a moment ago, RFC 9520).

pub mod classify;
pub mod cut;
pub mod driver;
pub mod error;
pub mod hints;
pub mod inflight;
pub mod referral;
pub mod request;
pub mod response;
pub mod route;
pub mod scrub;
mod sockets;
pub mod tls;
pub mod traced;
pub mod transport;
pub mod validate;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use tokio::sync::mpsc;

/// Per-server state and remembered failures are caches too, and live with
/// the others in [`crate::cache`]; the paths here stay for their users.
pub use crate::cache::{failures, infra};
pub use error::ResolveError;
pub use request::Request;

use crate::cache::{Cache, CachedAnswer, NegativeKind, Rank, Resolution};
use crate::config::ResolverConfig;
use crate::dnssec::Security;
use crate::metrics::Metrics;
use crate::trace::recent::RecentFailures;
use crate::trace::{Detail, Trace, TraceClock};
use failures::FailureCache;
use hints::RootHint;
use inflight::{Inflight, Role};
use infra::Infra;
use route::Routes;
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
            // The entry a prefetch refreshes serves DO and non-DO clients alike.
            dnssec_ok: false,
            checking_disabled: tail[4] & crate::wire::VARIANT_CD != 0,
            key: key.into(),
        })
    }
}

type AnswerResult = Result<Arc<CachedAnswer>, ResolveError>;

/// How many times one link of a question asks another server after bogus
/// data (Unbound restarts a bogus query up to VAL_MAX_RESTART_COUNT, 5).
pub(super) const MAX_BOGUS_RETRIES: u32 = 3;

/// How long a DNS-over-TLS connection to a forwarder stays open with
/// nothing in flight: below the servers' own idle timeouts (Unbound's
/// `tcp-idle-timeout` is 30 s), so that taproot closes first.
const DOT_IDLE: std::time::Duration = std::time::Duration::from_secs(20);

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
    /// The traces of the last questions that failed (`GET /trace/recent`).
    pub recent_failures: RecentFailures,
    /// `[[forward]]` and `[[stub]]` zones; replaced on reload.
    pub routes: ArcSwap<Routes>,
    /// Open DNS-over-TLS connections to forwarders, shared by every
    /// question. Made here, on the runtime `start` runs on, so that its
    /// connections outlive the UDP workers' own event loops.
    pub dot: tls::DotPool,
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
        keep_failures: usize,
    ) -> Arc<Resolver> {
        let (prefetch_tx, mut prefetch_rx) = mpsc::channel::<Box<[u8]>>(1024);
        let infra = Infra::new(
            cache.clock().clone(),
            config.upstream_timeout(),
            config.infra_max_rtt_ms,
        );
        let failures = FailureCache::new(
            cache.clock().clone(),
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
            recent_failures: RecentFailures::new(keep_failures),
            routes: ArcSwap::default(),
            dot: tls::DotPool::new(DOT_IDLE),
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
                    .stats()
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
        // The fleet's shared cache, before the walk: another instance may
        // have resolved it. A prefetch wants fresh data and skips it.
        if !refresh && let Some(entry) = self.cache.lookup_second_tier(&q.key).await {
            return Ok(entry);
        }
        let running = self.running.fetch_add(1, Ordering::Relaxed);
        let _running = RunningGuard(&self.running);
        if running >= self.max_running {
            return Err(ResolveError::Overloaded);
        }
        let mut req = Request::new(&self.config);
        req.checking_disabled = q.checking_disabled;
        req.dnssec_ok = q.dnssec_ok;
        if self.recent_failures.enabled() {
            req.trace = Some(Trace::with_detail(
                TraceClock::Real(std::time::Instant::now()),
                Detail::Failures,
            ));
        }
        let resolution = match self.resolve_with(&q.name, q.qtype, &mut req, refresh).await {
            Ok(resolution) => resolution,
            Err(e) => {
                self.failures
                    .insert(failure_key, &e, self.config.failure_cache_ttl());
                if let Some(trace) = req.trace.take() {
                    self.recent_failures.keep(traced::report(
                        trace,
                        &q.name,
                        q.qtype,
                        "use",
                        &Err(e.clone()),
                    ));
                }
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
        let mut req = Request::new(&self.config);
        self.resolve_with(qname, qtype, &mut req, refresh).await
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

    /// Caches each RRset in `records` at `rank` with its security status
    /// (see [`crate::cache::RecordCache::insert_all`]).
    pub fn cache_records(&self, records: &[Record], rank: Rank, security: Security) {
        self.cache.store_rrsets(records, rank, security);
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
            .store_negative(name, qtype, kind, soa.clone(), proof, security);
        if let RData::SOA(s) = &soa.data {
            soa.ttl = if ttl > 0 {
                ttl
            } else {
                self.cache.policy().negative(soa.ttl, s.minimum)
            };
        }
        Some(soa)
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
