//! The one request handler every listener calls.
//!
//! [`Handler::fast`] is synchronous and allocation-free: parse in place,
//! ACL, rate limit, policy (local zones, RPZ; see [`crate::policy`]),
//! answer cache. It answers hits, errors and refusals at
//! once and reports a miss; [`Handler::slow`] then runs on the async runtime
//! (recursion, referral mode, serve-stale) without holding up the listener.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::HINFO;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use tracing::debug;

use super::acl::Acl;
use super::batch::BATCH;
use super::ddr::Designation;
use super::ratelimit::{RateLimiter, Verdict};
use super::transport::Transport;
use crate::cache::withheld::is_withheld;
use crate::cache::{Cache, Pinned, to_wire};
use crate::config::{AclAction, Config, Mode};
use crate::metrics::Metrics;
use crate::policy::{Decision, Policy, PolicyAnswer, Verdict as PolicyVerdict, render};
use crate::resolve::{Question, ResolveError, Resolver, referral};
use crate::wire::{self, ClientQuery, ParsedQuery, Rejection, flags, qtype};

/// Settings that a reload may change without a restart.
pub struct Live {
    pub acl: Acl,
    pub mode: Mode,
    pub ratelimit: Option<RateLimiter>,
    pub prefetch: bool,
    pub serve_stale: bool,
    pub stale_answer_ttl: u32,
    pub client_timeout: Duration,
    /// Local zones and RPZ, consulted before the answer cache.
    pub policy: Arc<Policy>,
    /// The DDR answer (RFC 9462), when `server.tls.name` is set; made
    /// from the bound listeners by [`super::Running`].
    pub designation: Option<Designation>,
}

impl Live {
    /// The live settings of `c`, with the policy built from it.
    pub fn from_config(c: &Config, policy: Arc<Policy>) -> Live {
        Live {
            policy,
            acl: Acl::new(&c.acl),
            mode: c.server.mode,
            ratelimit: RateLimiter::new(&c.ratelimit),
            prefetch: c.cache.prefetch,
            serve_stale: c.cache.serve_stale,
            stale_answer_ttl: c.cache.stale_answer_ttl,
            client_timeout: Duration::from_millis(c.cache.client_timeout_ms),
            designation: None,
        }
    }
}

/// What [`Handler::fast`] reads once for a whole batch of queries instead
/// of once per query: the live settings (an `ArcSwap` load), the time a hit
/// is measured from, and the cache clock. A UDP worker takes one per
/// received batch ([`Handler::moment`]); at 50,000 q/s the three clock
/// reads and the load were about 2% of a hit's CPU (perf, bench/compare.sh
/// PERF=1). TTLs decay by the second, so a batch's few microseconds
/// between its first and last query do not show.
pub struct Moment {
    live: arc_swap::Guard<Arc<Live>>,
    start: Instant,
    now_ms: u64,
}

/// What the synchronous part decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Fast {
    /// `out` holds the response.
    Reply,
    /// Send nothing.
    Drop,
    /// Not in the cache: hand the request to [`Handler::slow`].
    Miss,
}

pub struct Handler {
    pub live: ArcSwap<Live>,
    pub cache: Arc<Cache>,
    pub resolver: Arc<Resolver>,
    pub metrics: Arc<Metrics>,
}

/// RFC 8482 §4.2: the synthesised answer to ANY.
const ANY_HINFO_TTL: u32 = 3789;

/// A query read once for every step that needs it: its parse (detached
/// from the packet), its answer-cache key and the key's fingerprint.
/// [`Handler::prepare`] makes it; [`Handler::warm`] reads the fingerprints
/// of a batch, [`Handler::fast`] answers from it, and a miss carries it
/// into [`Handler::slow`], so no step parses the packet again.
#[derive(Clone)]
pub struct Prepared {
    parsed: Result<ParsedQuery, Rejection>,
    key: [u8; wire::KEY_MAX],
    key_len: usize,
    fingerprint: u64,
}

impl Prepared {
    /// The query over `raw`, the packet it was prepared from.
    fn query<'r>(&self, raw: &'r [u8]) -> Result<ClientQuery<'r>, Rejection> {
        let parsed = self.parsed?;
        parsed
            .attach(raw)
            .ok_or(Rejection::Drop(wire::DropReason::TooShort))
    }

    fn key(&self) -> &[u8] {
        &self.key[..self.key_len]
    }

    /// The query's EDNS, for the options a stream transport answers
    /// (keepalive, padding) after the handler has made the response.
    pub fn edns(&self) -> Option<wire::ClientEdns> {
        self.parsed.ok().and_then(|p| p.edns())
    }

    /// The packet is not a DNS query that can be answered at all (too
    /// short, a response, or a question that does not parse): DNS over
    /// HTTPS says so with status 400 instead of a DNS error (RFC 8484 §4.2.1).
    pub fn unparsable(&self) -> bool {
        matches!(
            self.parsed,
            Err(Rejection::Drop(_))
                | Err(Rejection::Error {
                    rcode: wire::rcode::FORMERR,
                    ..
                })
        )
    }
}

impl Default for Prepared {
    /// A slot no packet has been prepared into: it answers nothing.
    fn default() -> Prepared {
        Prepared {
            parsed: Err(Rejection::Drop(wire::DropReason::TooShort)),
            key: [0; wire::KEY_MAX],
            key_len: 0,
            fingerprint: 0,
        }
    }
}

impl Handler {
    /// Replaces the rules of the `[[rpz]]` named `zone` in the running
    /// policy, without a reload, and updates `taproot_policy_rules`;
    /// `false` when no such zone is configured.
    ///
    /// For the zone transfer (`src/policy/transfer.rs`): build `rules`
    /// with [`crate::policy::rpz::Rules::from_records`]. The next query
    /// sees them, cached names included.
    pub fn replace_rpz_rules(&self, zone: &str, rules: crate::policy::rpz::Rules) -> bool {
        let live = self.live.load();
        let Some(z) = live.policy.rpz_zone(zone) else {
            return false;
        };
        z.replace_rules(rules);
        self.metrics
            .policy_rules(live.policy.rpz.iter().map(|z| (&*z.name, z.rules().len())));
        true
    }

    /// Parses a request and computes its cache key and fingerprint, once.
    #[inline]
    pub fn prepare(&self, raw: &[u8]) -> Prepared {
        let mut p = Prepared::default();
        self.prepare_into(raw, &mut p);
        p
    }

    /// [`Handler::prepare`] into a slot the caller reuses (a batch's).
    #[inline]
    pub fn prepare_into(&self, raw: &[u8], p: &mut Prepared) {
        p.parsed = wire::parse_query(raw).map(|q| {
            let key = wire::answer_key(q.qname, q.qtype, q.qclass, q.variant(), &mut p.key);
            p.key_len = key.len();
            p.fingerprint = self.cache.answers().fingerprint(key);
            q.detach()
        });
    }

    /// Starts loading the answer-cache memory that [`Handler::fast`] will
    /// read for each of a batch of queries, so that their cache misses
    /// overlap instead of coming one after another (see
    /// [`crate::cache::AnswerCache::warm`]).
    pub fn warm<'p>(&self, prepared: impl Iterator<Item = &'p Prepared>, guard: &Pinned) {
        let mut hashes = [0u64; BATCH];
        let mut n = 0;
        for p in prepared.filter(|p| p.parsed.is_ok()).take(BATCH) {
            hashes[n] = p.fingerprint;
            n += 1;
        }
        // One lookup has nothing to overlap with.
        if n > 1 {
            self.cache.answers().warm(&hashes[..n], guard);
        }
    }

    /// The settings and the time for the queries about to be answered.
    #[inline]
    pub fn moment(&self) -> Moment {
        Moment {
            live: self.live.load(),
            start: Instant::now(),
            now_ms: self.cache.clock().now_ms(),
        }
    }

    /// Answers what can be answered without waiting. `prepared` is `raw`
    /// prepared by [`Handler::prepare`]; `out` is the caller's reusable
    /// buffer, which on [`Fast::Reply`] holds the response.
    #[inline]
    pub fn fast(
        &self,
        raw: &[u8],
        prepared: &Prepared,
        src: SocketAddr,
        proto: Transport,
        out: &mut Vec<u8>,
    ) -> Fast {
        self.fast_at(&self.moment(), raw, prepared, src, proto, out)
    }

    /// [`Handler::fast`] at `moment`, which a batch of queries shares.
    #[inline]
    pub fn fast_at(
        &self,
        moment: &Moment,
        raw: &[u8],
        prepared: &Prepared,
        src: SocketAddr,
        proto: Transport,
        out: &mut Vec<u8>,
    ) -> Fast {
        let start = moment.start;
        let live = &moment.live;
        let q = match prepared.query(raw) {
            Ok(q) => q,
            Err(Rejection::Drop(reason)) => {
                self.metrics.dropped(reason.as_str());
                return Fast::Drop;
            }
            Err(Rejection::Error {
                id,
                flags: f,
                rcode,
            }) => {
                // Echo the question when it parsed; never for FORMERR on a broken one.
                *out = wire::error_response(id, f, None, rcode, false, 0, None);
                if rcode == wire::rcode::FORMERR {
                    self.metrics.dropped("formerr");
                }
                self.metrics.query(proto, 0, rcode, true, start.elapsed());
                return Fast::Reply;
            }
        };
        let action = live.acl.check(src.ip());
        match action {
            AclAction::Drop => {
                self.metrics.dropped(wire::DropReason::Acl.as_str());
                return Fast::Drop;
            }
            AclAction::Refuse => {
                self.metrics.refused();
                return self.error(&q, raw, wire::rcode::REFUSED, proto, start, out);
            }
            AclAction::Allow | AclAction::AllowReferral => {}
        }
        if proto.is_datagram()
            && let Some(rl) = &live.ratelimit
        {
            match rl.check(src.ip()) {
                Verdict::Pass => {}
                Verdict::Drop => {
                    self.metrics.dropped(wire::DropReason::RateLimit.as_str());
                    return Fast::Drop;
                }
                Verdict::Slip => {
                    *out = wire::error_response(
                        q.id,
                        q.flags,
                        Some((raw, &q)),
                        0,
                        true,
                        flags::TC,
                        None,
                    );
                    return Fast::Reply;
                }
            }
        }
        if q.qclass != u16::from(DNSClass::IN) {
            self.metrics.refused();
            return self.error(&q, raw, wire::rcode::REFUSED, proto, start, out);
        }
        match q.qtype {
            // Zone transfers are for authoritative servers.
            qtype::IXFR | qtype::AXFR => {
                self.metrics.refused();
                return self.error(&q, raw, wire::rcode::REFUSED, proto, start, out);
            }
            // Meta types that cannot be asked for (RFC 6895 §3.1).
            qtype::OPT | qtype::TKEY | qtype::TSIG | qtype::MAILB | qtype::MAILA => {
                return self.error(&q, raw, wire::rcode::FORMERR, proto, start, out);
            }
            qtype::SVCB if Designation::asks(q.qname) && live.designation.is_some() => {
                return self.designation(&q, raw, proto, start, out, live, action);
            }
            _ => {}
        }
        // TCP-only (RPZ) is met by any stream transport.
        let tcp = !proto.is_datagram();
        if q.qtype == qtype::ANY {
            let decision = live.policy.decide(q.qname, q.qtype, tcp);
            if let Some(fast) =
                self.apply_policy(&q, raw, decision, live, action, proto, start, out)
            {
                return fast;
            }
            return self.any(&q, raw, proto, start, out, live.mode);
        }
        let key = prepared.key();
        let now = moment.now_ms;
        let guard = crate::cache::pin();
        // Read before deciding (see Policy::stamp).
        let stamp = live.policy.stamp();
        let found = self
            .cache
            .answers()
            .find_fresh(key, prepared.fingerprint, now, &guard);
        // The policy decides before a cached answer is used, so a changed
        // policy applies to cached names at once (see crate::policy). A
        // cached question this very policy already left alone skips the
        // lookups: its entry carries the policy's stamp.
        if found.is_none_or(|a| a.policy_stamp() != stamp) {
            let decision = live.policy.decide(q.qname, q.qtype, tcp);
            let untouched = decision.hit.is_none();
            if let Some(fast) =
                self.apply_policy(&q, raw, decision, live, action, proto, start, out)
            {
                return fast;
            }
            if untouched && let Some(answer) = found {
                answer.set_policy_stamp(stamp);
            }
        }
        let Some(answer) = found else {
            return Fast::Miss;
        };
        let recursion = recursion_offered(live.mode, action);
        let limit = proto.max_response(|| q.udp_limit());
        answer.render(&q, now, recursion, None, limit, out);
        if live.prefetch && answer.wants_prefetch(now) && answer.claim_prefetch() {
            self.resolver.prefetch(key);
        }
        self.metrics.query(
            proto,
            q.qtype,
            u16::from(answer.rcode()),
            true,
            start.elapsed(),
        );
        Fast::Reply
    }

    /// Carries out a policy decision; `None` when the query goes on to
    /// the cache (no policy, PASSTHRU, a transparent zone's other names,
    /// TCP-only over TCP). A CNAME to follow is a miss: [`Handler::slow`]
    /// decides again and resolves the target.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn apply_policy(
        &self,
        q: &ClientQuery<'_>,
        raw: &[u8],
        decision: Decision,
        live: &Live,
        action: AclAction,
        proto: Transport,
        start: Instant,
        out: &mut Vec<u8>,
    ) -> Option<Fast> {
        let Decision { verdict, hit } = decision;
        let hit = hit?;
        self.metrics.policy_hit(&hit.zone, hit.action);
        debug!(
            qname = %wire::name_to_string(q.qname),
            qtype = q.qtype,
            zone = %hit.zone,
            action = hit.action,
            "policy"
        );
        let recursion = recursion_offered(live.mode, action);
        let limit = proto.max_response(|| q.udp_limit());
        match verdict {
            PolicyVerdict::Resolve => None,
            PolicyVerdict::Follow(..) => Some(Fast::Miss),
            PolicyVerdict::Drop => {
                self.metrics.dropped("policy");
                Some(Fast::Drop)
            }
            PolicyVerdict::TruncateOverUdp => {
                *out = wire::error_response(
                    q.id,
                    q.flags,
                    Some((raw, q)),
                    0,
                    recursion,
                    flags::TC,
                    None,
                );
                self.metrics.query(proto, q.qtype, 0, true, start.elapsed());
                Some(Fast::Reply)
            }
            PolicyVerdict::Answer(answer) => {
                render::render(q, raw, &answer, true, recursion, limit, out);
                self.metrics.query(
                    proto,
                    q.qtype,
                    u16::from(answer.rcode),
                    true,
                    start.elapsed(),
                );
                Some(Fast::Reply)
            }
        }
    }

    /// An RPZ CNAME rewrite (the policy's `Follow`): the CNAME, then what
    /// the resolver finds for its target (RFC 1034 §3.6.2), as BIND and
    /// Unbound answer it. In referral mode the CNAME alone.
    #[allow(clippy::too_many_arguments)]
    async fn follow(
        &self,
        q: &ClientQuery<'_>,
        raw: &[u8],
        mut answer: PolicyAnswer,
        target: Name,
        resolve: bool,
        recursion: bool,
        limit: usize,
    ) -> Vec<u8> {
        let mut aa = true;
        if resolve {
            let mut key = [0u8; wire::KEY_MAX];
            let target_wire = crate::policy::rpz::lower_wire(&target);
            let key = wire::answer_key(&target_wire, q.qtype, q.qclass, q.variant(), &mut key);
            let question = Question {
                name: target,
                qtype: RecordType::from(q.qtype),
                dnssec_ok: q.dnssec_ok(),
                checking_disabled: q.cd(),
                key: key.into(),
            };
            match self.resolver.answer(&question, false).await {
                Ok(found) => {
                    if let Ok(msg) = Message::from_vec(&found.wire()) {
                        aa = false;
                        answer.rcode = msg.metadata.response_code.low();
                        // The entry holds the DNSSEC records for DO
                        // clients too (see cache::withheld).
                        let dnssec_ok = q.dnssec_ok();
                        let shown = |r: &Record, asked: u16| {
                            dnssec_ok || !is_withheld(u16::from(r.record_type()), asked)
                        };
                        answer
                            .answers
                            .extend(msg.answers.into_iter().filter(|r| shown(r, q.qtype)));
                        answer.authority = msg
                            .authorities
                            .into_iter()
                            .filter(|r| shown(r, 0))
                            .collect();
                    }
                }
                Err(e) => {
                    debug!(error = %e, "the RPZ CNAME target did not resolve");
                    answer.rcode = wire::rcode::SERVFAIL as u8;
                }
            }
        }
        let mut out = Vec::with_capacity(512);
        render::render(q, raw, &answer, aa, recursion, limit, &mut out);
        out
    }

    fn error(
        &self,
        q: &ClientQuery<'_>,
        raw: &[u8],
        rcode: u16,
        proto: Transport,
        start: Instant,
        out: &mut Vec<u8>,
    ) -> Fast {
        *out = wire::error_response(q.id, q.flags, Some((raw, q)), rcode, true, 0, None);
        self.metrics
            .query(proto, q.qtype, rcode, true, start.elapsed());
        Fast::Reply
    }

    /// RFC 9462 §4: `_dns.resolver.arpa. SVCB` names the encrypted listeners.
    #[allow(clippy::too_many_arguments)]
    fn designation(
        &self,
        q: &ClientQuery<'_>,
        raw: &[u8],
        proto: Transport,
        start: Instant,
        out: &mut Vec<u8>,
        live: &Live,
        action: AclAction,
    ) -> Fast {
        let Some(d) = &live.designation else {
            return Fast::Miss;
        };
        *out = d.answer(q, raw, recursion_offered(live.mode, action));
        self.metrics
            .query(proto, q.qtype, wire::rcode::NOERROR, true, start.elapsed());
        Fast::Reply
    }

    /// RFC 8482 §4.2: ANY gets one synthesised HINFO record, never every RRset.
    fn any(
        &self,
        q: &ClientQuery<'_>,
        raw: &[u8],
        proto: Transport,
        start: Instant,
        out: &mut Vec<u8>,
        mode: Mode,
    ) -> Fast {
        let Ok(name) = Name::read(&mut BinDecoder::new(q.qname)) else {
            return self.error(q, raw, wire::rcode::FORMERR, proto, start, out);
        };
        let mut msg = Message::new(q.id, MessageType::Response, OpCode::Query);
        msg.metadata.recursion_desired = q.rd();
        msg.metadata.recursion_available = mode == Mode::Recursive;
        msg.add_query(Query::query(name.clone(), RecordType::ANY));
        msg.add_answer(Record::from_rdata(
            name,
            ANY_HINFO_TTL,
            RData::HINFO(HINFO::new("RFC8482".into(), String::new())),
        ));
        match to_wire(&msg) {
            Some(mut v) => {
                append_opt_if(q, &mut v, None);
                *out = v;
                self.metrics
                    .query(proto, q.qtype, wire::rcode::NOERROR, true, start.elapsed());
                Fast::Reply
            }
            None => self.error(q, raw, wire::rcode::SERVFAIL, proto, start, out),
        }
    }

    /// The miss path: recursion, referral mode and serve-stale, for the
    /// query [`Handler::fast`] reported a miss for, as it prepared it.
    pub async fn slow(
        self: Arc<Self>,
        raw: Vec<u8>,
        prepared: Prepared,
        src: SocketAddr,
        proto: Transport,
    ) -> Option<Vec<u8>> {
        let start = Instant::now();
        let q = prepared.query(&raw).ok()?;
        let live = self.live.load_full();
        let action = live.acl.check(src.ip());
        let Ok(name) = Name::read(&mut BinDecoder::new(q.qname)) else {
            return Some(wire::error_response(
                q.id,
                q.flags,
                Some((&raw, &q)),
                1,
                true,
                0,
                None,
            ));
        };
        let limit = proto.max_response(|| q.udp_limit());
        let recursion = recursion_offered(live.mode, action);
        if let PolicyVerdict::Follow(answer, target) = live
            .policy
            .decide(q.qname, q.qtype, !proto.is_datagram())
            .verdict
        {
            let out = self
                .follow(
                    &q,
                    &raw,
                    answer,
                    target,
                    recursion && q.rd(),
                    recursion,
                    limit,
                )
                .await;
            self.metrics.query(
                proto,
                q.qtype,
                u16::from(out.get(3).copied().unwrap_or(0) & 0x0f),
                false,
                start.elapsed(),
            );
            return Some(out);
        }
        if !recursion || !q.rd() {
            let resp = referral::answer(&self.resolver, &q, &name, recursion).await;
            let Some(mut resp) = resp else {
                self.metrics.servfail(ResolveError::Internal.reason());
                return Some(wire::error_response(
                    q.id,
                    q.flags,
                    Some((&raw, &q)),
                    wire::rcode::SERVFAIL,
                    recursion,
                    0,
                    None,
                ));
            };
            append_opt_if(&q, &mut resp, None);
            if resp.len() > limit {
                resp = wire::error_response(
                    q.id,
                    q.flags,
                    Some((&raw, &q)),
                    0,
                    recursion,
                    flags::TC,
                    None,
                );
            }
            self.metrics.referral();
            debug!(qname = %name, qtype = q.qtype, "referral answer");
            let rcode = u16::from(resp.get(3).copied().unwrap_or(0) & 0x0f);
            self.metrics
                .query(proto, q.qtype, rcode, false, start.elapsed());
            return Some(resp);
        }
        let key = prepared.key();
        let question = Question {
            name,
            qtype: RecordType::from(q.qtype),
            dnssec_ok: q.dnssec_ok(),
            checking_disabled: q.flags & flags::CD != 0,
            key: key.into(),
        };
        // Polled here: both callers run `slow` in a task of its own, which
        // is what `Resolver::answer` needs of its leader. Only when it is
        // left behind for a stale answer does it get a task of its own.
        let resolver = self.resolver.clone();
        let mut resolution = Box::pin(async move { resolver.answer(&question, false).await });
        let result = match tokio::time::timeout(live.client_timeout, &mut resolution).await {
            Ok(result) => result,
            Err(_) => {
                // RFC 8767 §5: the client-response timer fired; answer stale if we can,
                // while the resolution goes on and refreshes the cache.
                if let Some(resp) = self.stale(&q, key, &live, limit, proto, start) {
                    drop(tokio::spawn(resolution));
                    return Some(resp);
                }
                resolution.await
            }
        };
        let mut out = Vec::with_capacity(512);
        let rcode = match result {
            Ok(answer) => {
                let now = self.cache.clock().now_ms();
                answer.render(&q, now, true, None, limit, &mut out);
                u16::from(answer.rcode())
            }
            Err(e) => {
                if let Some(resp) = self.stale(&q, key, &live, limit, proto, start) {
                    return Some(resp);
                }
                debug!(qname = %wire::name_to_string(q.qname), error = %e, "SERVFAIL");
                self.metrics.servfail(e.reason());
                let text = e.to_string();
                out = wire::error_response(
                    q.id,
                    q.flags,
                    Some((&raw, &q)),
                    wire::rcode::SERVFAIL,
                    true,
                    0,
                    Some((e.ede_code(), &text)),
                );
                wire::rcode::SERVFAIL
            }
        };
        self.metrics
            .query(proto, q.qtype, rcode, false, start.elapsed());
        Some(out)
    }

    /// An expired answer still inside the serve-stale window, with the
    /// stale TTL, counted as the answer to the query.
    fn stale(
        &self,
        q: &ClientQuery<'_>,
        key: &[u8],
        live: &Live,
        limit: usize,
        proto: Transport,
        start: Instant,
    ) -> Option<Vec<u8>> {
        if !live.serve_stale {
            return None;
        }
        let entry = self.cache.answers().get(key)?;
        let mut out = Vec::with_capacity(entry.wire_len() + 16);
        entry.render(
            q,
            self.cache.clock().now_ms(),
            true,
            Some(live.stale_answer_ttl),
            limit,
            &mut out,
        );
        self.cache
            .stats()
            .stale_answers
            .fetch_add(1, Ordering::Relaxed);
        self.metrics
            .query(proto, q.qtype, wire::rcode::NOERROR, false, start.elapsed());
        Some(out)
    }
}

/// Whether this client gets recursion (RA=1): recursive mode and an ACL that allows it.
fn recursion_offered(mode: Mode, action: AclAction) -> bool {
    mode == Mode::Recursive && action == AclAction::Allow
}

/// Adds an OPT record when the client sent one (RFC 6891 §7).
fn append_opt_if(q: &ClientQuery<'_>, resp: &mut Vec<u8>, ede: Option<(u16, &str)>) {
    if let Some(e) = q.edns
        && let Some(ar) = wire::read_u16(resp, 10)
    {
        resp[10..12].copy_from_slice(&ar.saturating_add(1).to_be_bytes());
        wire::push_opt(resp, e.dnssec_ok, 0, ede);
    }
}

/// Response code of an encoded response.
pub fn rcode_of(resp: &[u8]) -> ResponseCode {
    ResponseCode::from(0, resp.get(3).copied().unwrap_or(0) & 0x0f)
}
