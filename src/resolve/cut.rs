//! One zone cut and its servers: which to ask, in what order, and what
//! to do when they fail. [`super::walk`] moves from cut to cut.
//!
//! At each cut the servers are asked in this order, each step only when
//! the one before it gave nothing usable (Unbound's iterator does the
//! same): the servers with addresses, fastest first and those lame for the
//! zone last; then the NS names still without an address, looked up one
//! by one (bounded glueless sub-resolutions); then the parent side's NS
//! names and glue, kept from the referral, for a child whose own NS data
//! is broken. A server that timed out is asked again in the same question
//! with its backed-off timeout ([`super::infra`]), so one lost packet costs
//! one RTO, never the answer. NS dependency cycles are stopped as soon as a name is needed
//! to find itself.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tracing::{debug, trace, warn};

use super::classify::{Classified, classify, classify_forwarded};
use super::infra::{Loss, Pick, ZoneFailure};
use super::response::Reply;
use super::route::RouteZone;
use super::scrub::scrub;
use super::transport::{self, Question as WireQuestion, TransportError};
use super::{Request, ResolveError, Resolver};
use crate::cache::{Delegation, NameServer, address};
use crate::trace::{self, EventKind, ExchangeResult, ParentSideKind, SubReason};

/// How deep glueless NS lookups may nest inside each other.
const MAX_GLUELESS_DEPTH: u8 = 4;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What one server did with one query.
enum Outcome {
    Usable(Reply),
    /// Believed only if no other server of the zone answers (see
    /// [`Classified::LastResort`]).
    LastResort(Reply),
    /// No answer in time: worth another try with a longer wait.
    TimedOut,
    /// A lame or error answer, or a network error: not asked again for
    /// this query.
    Failed,
}

/// How hard one question tries a zone's servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Persistence {
    /// The question itself: a server that timed out is asked again, up to
    /// `1 + retries` attempts, and lame or failing servers are marked.
    Full,
    /// A minimised query (RFC 9156): one attempt per server and no marks,
    /// since its failures may be minimisation's doing and the walk asks
    /// the full name next.
    Minimised,
    /// One attempt per server, marks kept: priming, whose fallback is the
    /// same servers from the hints.
    Once,
}

/// A server that timed out in the current question, and how often.
struct Retries {
    addr: IpAddr,
    timeouts: u32,
}

/// A zone cut being queried, and what this walk has done with it so far.
pub(super) struct Cut {
    pub(super) delegation: Delegation,
    /// Addresses already asked the current question.
    asked: Vec<IpAddr>,
    /// NS names whose addresses were looked up (or ruled out).
    looked_up: Vec<Name>,
    /// Whether the parent-side servers were added (Unbound's last resort).
    parent_side_added: bool,
    /// Whether the NS names' own parent-side glue was added.
    parent_glue_added: bool,
    /// The `[[forward]]`/`[[stub]]` zone this cut comes from, if any.
    pub(super) route: Option<Arc<RouteZone>>,
}

impl Cut {
    pub(super) fn new(delegation: Delegation) -> Cut {
        Cut {
            delegation,
            asked: Vec::new(),
            looked_up: Vec::new(),
            parent_side_added: false,
            parent_glue_added: false,
            route: None,
        }
    }

    /// The cut of a configured zone: its servers as the operator listed them.
    pub(super) fn routed(route: Arc<RouteZone>) -> Cut {
        Cut {
            route: Some(route.clone()),
            ..Cut::new(route.delegation())
        }
    }

    pub(super) fn zone(&self) -> &Name {
        &self.delegation.zone
    }

    /// Addresses of the cut not yet asked the current question.
    fn fresh_addresses(&self) -> Vec<IpAddr> {
        let mut addrs = self.delegation.addresses();
        addrs.retain(|a| !self.asked.contains(a));
        addrs
    }

    /// Starts a new question at the same cut: every server may be asked again.
    pub(super) fn next_question(&mut self) {
        self.asked.clear();
    }
}

impl Resolver {
    /// The root servers from the hints, before priming.
    pub fn hints_delegation(&self) -> Delegation {
        self.with_usable_addresses(Delegation {
            zone: Name::root(),
            servers: self
                .hints
                .iter()
                .map(|h| NameServer {
                    name: h.name.clone(),
                    addrs: h.addrs.clone(),
                })
                .collect(),
        })
    }

    /// The cut a referral points to: glue from the message, then cached
    /// addresses. NS names without either are resolved when the cut is
    /// asked ([`Resolver::ask_cut`]). The referral's own view (its NS names
    /// and glue) is also kept apart as the parent side of the cut.
    pub(super) fn cut_from_referral(&self, zone: Name, ns: &[Record], glue: &[Record]) -> Cut {
        let parent: Vec<(Name, Vec<IpAddr>)> = ns
            .iter()
            .filter_map(|r| match &r.data {
                RData::NS(n) => Some(n.0.to_lowercase()),
                _ => None,
            })
            .map(|name| {
                let addrs: Vec<IpAddr> = glue
                    .iter()
                    .filter(|g| g.name.to_lowercase() == name)
                    .filter_map(|g| address(&g.data))
                    .collect();
                (name, addrs)
            })
            .collect();
        if let Some(ttl) = ns.iter().map(|r| r.ttl).min() {
            self.cache
                .parent_side()
                .insert(&zone, &parent, self.cache.policy().positive(ttl));
        }
        let servers = parent
            .into_iter()
            .map(|(name, mut addrs)| {
                if addrs.is_empty() {
                    addrs = self.cache.addresses_of(&name);
                }
                NameServer { name, addrs }
            })
            .collect();
        Cut::new(self.with_usable_addresses(Delegation { zone, servers }))
    }

    pub(super) fn with_usable_addresses(&self, mut cut: Delegation) -> Delegation {
        for s in &mut cut.servers {
            s.addrs.retain(|a| self.usable(a));
        }
        cut
    }

    /// Adds to `cut` the addresses the parent side gave for its NS names
    /// themselves: `ns.example.net`'s glue from the `net.` referral, when
    /// the `example.net` zone says something else or nothing usable
    /// (Unbound's `iter_lookup_parent_glue_from_cache` in
    /// `processLastResort`). Returns whether an address not in the cut
    /// was added.
    fn add_parent_glue(&self, cut: &mut Cut) -> bool {
        let mut added = false;
        for server in &mut cut.delegation.servers {
            for addr in self.cache.parent_side().glue_for(&server.name) {
                if self.usable(&addr) && !server.addrs.contains(&addr) {
                    server.addrs.push(addr);
                    added = true;
                }
            }
        }
        added
    }

    /// Resolves the addresses of NS names of `cut` that came without glue
    /// and were not looked up yet, until one of them yields an address: at
    /// most `max_glueless_per_delegation` names per cut, nested at most
    /// [`MAX_GLUELESS_DEPTH`] deep, all inside the question's req.
    /// Returns whether an address was added.
    ///
    /// A name already being resolved further up this question's lookups is
    /// an NS dependency cycle (`a.lab` served only by `ns.b.lab`, `b.lab`
    /// only by `ns.a.lab`): it is skipped at once, and when nothing else
    /// is left the cut fails with [`ResolveError::NsCycle`], which stops
    /// the lookups that led here as well.
    pub(super) fn fill_addresses<'a>(
        &'a self,
        cut: &'a mut Cut,
        req: &'a mut Request,
    ) -> BoxFuture<'a, Result<bool, ResolveError>> {
        Box::pin(async move {
            if req.glueless_depth >= MAX_GLUELESS_DEPTH {
                return Ok(false);
            }
            req.glueless_depth += 1;
            let result = self.fill_some(cut, req).await;
            req.glueless_depth -= 1;
            result
        })
    }

    async fn fill_some(&self, cut: &mut Cut, req: &mut Request) -> Result<bool, ResolveError> {
        let mut cycle = false;
        for i in 0..cut.delegation.servers.len() {
            if cut.looked_up.len() >= self.config.max_glueless_per_delegation as usize {
                break;
            }
            let host = cut.delegation.servers[i].name.clone();
            if !cut.delegation.servers[i].addrs.is_empty() || cut.looked_up.contains(&host) {
                continue;
            }
            cut.looked_up.push(host.clone());
            // An NS name inside the zone it serves, without glue, cannot be reached.
            if cut.zone().zone_of(&host) && !cut.zone().is_root() {
                continue;
            }
            if req.ns_lookups.contains(&host) {
                debug!(zone = %cut.zone(), host = %host, "NS dependency cycle");
                cycle = true;
                continue;
            }
            req.ns_lookups.push(host.clone());
            req.begin(SubReason::Glueless, &host, RecordType::A);
            let found = self.addresses_by_lookup(&host, req).await;
            if req.tracing() {
                let outcome = match &found {
                    Ok(addrs) if addrs.is_empty() => "no usable address".to_string(),
                    Ok(addrs) => format!("{addrs:?}"),
                    Err(e) => e.to_string(),
                };
                req.end(SubReason::Glueless, &host, RecordType::A, &outcome);
            }
            req.ns_lookups.pop();
            match found {
                Ok(addrs) if !addrs.is_empty() => {
                    cut.delegation.servers[i].addrs = addrs;
                    // One reachable server is enough to go on; the others
                    // are resolved if it fails.
                    return Ok(true);
                }
                Ok(_) => {}
                Err(ResolveError::NsCycle(_)) => cycle = true,
                Err(e) => return Err(e),
            }
        }
        if cycle {
            return Err(ResolveError::NsCycle(cut.zone().to_string()));
        }
        Ok(false)
    }

    /// The usable A, then AAAA, addresses of `host`, resolved inside the
    /// question's req. Request exhaustion and cycles are errors; any
    /// other failure is just no address.
    async fn addresses_by_lookup(
        &self,
        host: &Name,
        req: &mut Request,
    ) -> Result<Vec<IpAddr>, ResolveError> {
        for rtype in [RecordType::A, RecordType::AAAA] {
            match self.resolve_with(host, rtype, req, false).await {
                Ok(res) => {
                    let addrs: Vec<IpAddr> = res
                        .answers
                        .iter()
                        .filter_map(|r| address(&r.data))
                        .filter(|a| self.usable(a))
                        .collect();
                    if !addrs.is_empty() {
                        return Ok(addrs);
                    }
                }
                Err(
                    e @ (ResolveError::BudgetTime
                    | ResolveError::BudgetQueries
                    | ResolveError::NsCycle(_)),
                ) => return Err(e),
                Err(_) => {}
            }
        }
        Ok(Vec::new())
    }

    /// Asks the servers of `cut` until one gives a usable answer: first
    /// those with addresses; when all of those failed, the NS names not yet
    /// resolved; last, the parent side's servers and glue (Unbound's
    /// `processLastResort`), for a child whose own NS data is broken.
    pub(super) async fn ask_cut(
        &self,
        cut: &mut Cut,
        sname: &Name,
        stype: RecordType,
        req: &mut Request,
        minimised: bool,
    ) -> Result<Reply, ResolveError> {
        let persistence = if minimised {
            Persistence::Minimised
        } else {
            Persistence::Full
        };
        let mut cycle = None;
        loop {
            let fresh = cut.fresh_addresses();
            if !fresh.is_empty() {
                cut.asked.extend(&fresh);
                match self
                    .ask_servers(cut, &fresh, sname, stype, req, persistence)
                    .await
                {
                    // The walk asks the full name next; the cut's other
                    // servers are for that question.
                    Err(e @ ResolveError::NoReachableAuthority(_)) if minimised => return Err(e),
                    Err(ResolveError::NoReachableAuthority(_)) => {}
                    done => return done,
                }
            }
            if cut.route.is_some() {
                // The operator's servers are all there is: no NS names to
                // look up, no parent side to fall back on.
                return Err(ResolveError::NoReachableAuthority(cut.zone().to_string()));
            }
            match self.fill_addresses(cut, req).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e @ ResolveError::NsCycle(_)) => cycle = Some(e),
                Err(e) => return Err(e),
            }
            if !cut.parent_side_added {
                cut.parent_side_added = true;
                if let Some(parent) = self.cache.parent_side().get(cut.zone()) {
                    let parent = self.with_usable_addresses(parent);
                    debug!(zone = %cut.zone(), "child-side servers failed; trying the parent side");
                    req.record_failure(|| EventKind::ParentSide {
                        zone: cut.zone().clone(),
                        what: ParentSideKind::ParentNs,
                    });
                    cut.delegation.servers.extend(parent.servers);
                    continue;
                }
            }
            if !cut.parent_glue_added {
                cut.parent_glue_added = true;
                if self.add_parent_glue(cut) {
                    debug!(zone = %cut.zone(), "trying the parent-side glue of the NS names");
                    req.record_failure(|| EventKind::ParentSide {
                        zone: cut.zone().clone(),
                        what: ParentSideKind::ParentGlue,
                    });
                    continue;
                }
            }
            return Err(
                cycle.unwrap_or_else(|| ResolveError::NoReachableAuthority(cut.zone().to_string()))
            );
        }
    }

    /// Asks `addrs`, servers of `zone`, one at a time in infra order
    /// ([`Infra::pick`](super::infra::Infra::pick)) until one gives a usable
    /// answer. A server that timed out is asked again later in the same
    /// question with its backed-off RTO, up to `1 + retries` attempts
    /// (Unbound's `outbound-msg-retry`), and the zone's other servers,
    /// ordered by RTO, come in between. Once a server's RTO has grown to
    /// `upstream_timeout_ms` it gets one last attempt that waits that long:
    /// a server that keeps answering others (a rate limiter, a lossy path)
    /// keeps a low RTO and many cheap retries, and a dead one costs a
    /// question a few backed-off timeouts, then (down) none but a probe. A lame, error or malformed answer or a
    /// network error rules a server out for this question. A down server
    /// gets one attempt, the probe. A [`Outcome::LastResort`] answer is
    /// returned only when no server gave a better one, and once there is
    /// one, timed-out servers are not waited for again.
    ///
    /// `persistence` says how many attempts a server gets and whether
    /// lameness is marked.
    ///
    /// [`ResolveError::NoReachableAuthority`] means every server was tried
    /// (or is down and being probed by another question), which is what
    /// RFC 9520 asks before a failure is cached.
    pub(super) async fn ask_servers(
        &self,
        cut: &Cut,
        addrs: &[IpAddr],
        sname: &Name,
        stype: RecordType,
        req: &mut Request,
        persistence: Persistence,
    ) -> Result<Reply, ResolveError> {
        let max_attempts = match persistence {
            Persistence::Full => 1 + self.config.retries,
            Persistence::Minimised | Persistence::Once => 1,
        };
        let zone = cut.zone();
        let minimised = persistence == Persistence::Minimised;
        let max_wait = self.infra.max_wait();
        // Servers that timed out in this question.
        let mut timed_out: Vec<Retries> = Vec::new();
        let mut ruled_out: Vec<IpAddr> = Vec::new();
        let mut fallback = None;
        loop {
            let eligible: Vec<IpAddr> = addrs
                .iter()
                .copied()
                .filter(|a| !ruled_out.contains(a) && !req.bogus_from.contains(a))
                .filter(|a| fallback.is_none() || !timed_out.iter().any(|t| t.addr == *a))
                .collect();
            if eligible.is_empty() {
                break;
            }
            let Some(mut pick) = self.infra.pick(&eligible, zone) else {
                // Only down servers are left, each probed by another question.
                self.metrics.upstream_server_event("skipped_down");
                break;
            };
            if pick.probe {
                self.metrics.upstream_server_event("probe");
            }
            let tried = timed_out
                .iter()
                .find(|t| t.addr == pick.addr)
                .map_or(0, |t| t.timeouts);
            // The last chance: the attempts are spent, or the server's RTO
            // has backed off to the longest wait (it answers no one, not
            // just a lost packet of ours). It waits the longest, so a server
            // that slowed down all at once is still heard. Not a minimised
            // query's one attempt: when it is lost the walk asks the full
            // name, which has its own retries and last chance. Waiting the
            // longest there cost every name whose minimised query a rate
            // limiter dropped the whole `upstream_timeout_ms` (1.5 s):
            // names under one wildcard behind NSD's default RRL resolved
            // at 260 a second, Unbound's 2,200.
            let spent = tried + 1 >= max_attempts;
            let last_chance = pick.probe
                || (spent && !minimised)
                || u128::from(pick.rto_ms) >= max_wait.as_millis();
            if last_chance {
                pick.wait = max_wait;
            }
            // A server that truncated answers lately rate-limits us (RRL
            // with slip): its lost UDP answer was most likely the limiter's
            // drop, and TCP is not limited, so the retry goes over TCP.
            pick.tcp = tried > 0 && self.infra.truncates_lately(pick.addr);
            let attempt = Attempt {
                pick,
                number: tried + 1,
                minimised,
            };
            match self.ask_server(attempt, cut, sname, stype, req).await? {
                Outcome::Usable(reply) => return Ok(reply),
                Outcome::LastResort(reply) => {
                    fallback.get_or_insert(reply);
                    ruled_out.push(pick.addr);
                }
                Outcome::TimedOut if last_chance || spent => ruled_out.push(pick.addr),
                Outcome::TimedOut => match timed_out.iter_mut().find(|t| t.addr == pick.addr) {
                    Some(t) => t.timeouts += 1,
                    None => timed_out.push(Retries {
                        addr: pick.addr,
                        timeouts: 1,
                    }),
                },
                Outcome::Failed => ruled_out.push(pick.addr),
            }
        }
        fallback.ok_or_else(|| ResolveError::NoReachableAuthority(zone.to_string()))
    }

    /// One server, one question: EDNS and 0x20 fallbacks included, the
    /// reply scrubbed and classified, the server's record updated, and
    /// each exchange recorded in the trace when there is one.
    async fn ask_server(
        &self,
        attempt: Attempt,
        cut: &Cut,
        sname: &Name,
        stype: RecordType,
        req: &mut Request,
    ) -> Result<Outcome, ResolveError> {
        let Attempt {
            pick, minimised, ..
        } = attempt;
        let servers = &cut.delegation;
        let route = cut.route.as_deref();
        let forwarding = route.is_some_and(RouteZone::forwards);
        let zone = &servers.zone;
        let addr = pick.addr;
        let known = self.infra.stats(addr);
        let mut edns = !known.no_edns;
        let mut use_0x20 = self.config.use_0x20 && !known.no_0x20;
        loop {
            req.spend()?;
            let timeout = pick.wait.min(req.remaining_time());
            let mut sent_name = sname.clone();
            if use_0x20 {
                sent_name.randomize_label_case();
            }
            let question = WireQuestion {
                name: &sent_name,
                rtype: stype,
                edns_payload: edns.then_some(self.config.edns_buffer_size),
                dnssec_ok: self.validation.enabled,
                use_0x20,
                recursion_desired: forwarding,
                checking_disabled: forwarding && self.validation.enabled,
            };
            let port = route
                .and_then(|r| r.port_of(addr))
                .unwrap_or(self.config.upstream_port);
            let server = SocketAddr::new(addr, port);
            let count = |transport: &str, result: &str| {
                self.metrics.upstream_query(transport, result);
                if forwarding {
                    self.metrics.forward_query(server, result);
                }
            };
            let started = req.trace_now();
            let tls = route.and_then(|r| r.tls.as_ref());
            let sent = if let Some(tls) = tls {
                self.dot.exchange(server, tls, &question, timeout).await
            } else if pick.tcp {
                transport::exchange_over_tcp(server, &question, timeout).await
            } else {
                transport::exchange(server, &question, timeout).await
            };
            let sent_over = if tls.is_some() {
                "tls"
            } else if pick.tcp {
                "tcp"
            } else {
                "udp"
            };
            // What the trace keeps of this exchange, built only when the
            // trace wants it (see `record_exchange`).
            let sent_as = Sent {
                servers,
                addr,
                name: &sent_name,
                rtype: stype,
                tcp: pick.tcp,
                tls: tls.is_some(),
                minimised,
                attempt: attempt.number,
                timeout,
                started,
            };
            let exchange = match sent {
                Ok(x) => x,
                Err(TransportError::CaseNotEchoed) if use_0x20 => {
                    // Fall back for this server, as Unbound's use-caps-for-id does.
                    sent_as.record(req, None, ExchangeResult::NoCaseEcho);
                    self.infra.set_no_0x20(addr);
                    use_0x20 = false;
                    continue;
                }
                Err(TransportError::Malformed) => {
                    // The server answered, brokenly: like a FORMERR, it has
                    // failed this question and the next server is asked at
                    // once. It is not held down (it is reachable), only
                    // tried after the others for this zone.
                    sent_as.record(req, None, ExchangeResult::Malformed);
                    count(sent_over, "malformed");
                    debug!(server = %addr, qname = %sname, "undecodable reply");
                    if !minimised {
                        self.infra
                            .mark_zone_failure(addr, zone, ZoneFailure::ErrorRcode);
                    }
                    return Ok(Outcome::Failed);
                }
                Err(TransportError::Tls(e)) => {
                    // A certificate that does not check out is no lost
                    // packet: the server is reachable and must not be
                    // believed. It fails this question, and comes last
                    // for the zone until the mark expires.
                    sent_as.record(req, None, ExchangeResult::NetworkError);
                    count(sent_over, "tls_error");
                    warn!(server = %server, zone = %zone, error = %e, "DNS over TLS handshake failed");
                    self.infra
                        .mark_zone_failure(addr, zone, ZoneFailure::ErrorRcode);
                    return Ok(Outcome::Failed);
                }
                Err(e) => {
                    let timed_out = matches!(e, TransportError::Timeout(_));
                    sent_as.record(
                        req,
                        None,
                        if timed_out {
                            ExchangeResult::Timeout
                        } else {
                            ExchangeResult::NetworkError
                        },
                    );
                    count(sent_over, if timed_out { "timeout" } else { "error" });
                    debug!(server = %addr, qname = %sname, error = %e, rto_ms = pick.rto_ms, "upstream failed");
                    // A network error (ICMP unreachable) is a loss too;
                    // only a timeout is worth another try in this question.
                    match self.infra.record_timeout(addr, pick.rto_ms) {
                        Loss::BackedOff => self.metrics.upstream_server_event("backoff"),
                        Loss::Down => self.metrics.upstream_server_event("down"),
                        Loss::AlreadyCounted => {}
                    }
                    return Ok(if timed_out {
                        Outcome::TimedOut
                    } else {
                        Outcome::Failed
                    });
                }
            };
            let transport = if tls.is_some() {
                "tls"
            } else if exchange.tcp {
                "tcp"
            } else {
                "udp"
            };
            if exchange.tcp && !pick.tcp {
                self.infra.record_truncated(addr);
            }
            self.metrics.upstream_rtt(exchange.rtt);
            if exchange.rejected > 0 {
                self.metrics.spoof_rejected(exchange.rejected);
            }
            let mut msg = exchange.message;
            let replied = Replied {
                tcp: exchange.tcp,
                truncated: exchange.tcp && !pick.tcp,
                size: exchange.size,
            };
            if msg.metadata.response_code == ResponseCode::FormErr && edns && msg.edns.is_none() {
                // RFC 6891 §7: a server that does not know EDNS; ask again without.
                sent_as.record(req, Some((&msg, replied)), ExchangeResult::NoEdns);
                count(transport, "formerr");
                self.infra.set_no_edns(addr);
                edns = false;
                continue;
            }
            self.infra.record_rtt(addr, exchange.rtt);
            let removed = scrub(&mut msg, sname, zone).removed;
            if removed > 0 {
                trace!(server = %addr, removed, "scrubbed records");
            }
            let aa = msg.metadata.authoritative;
            let mark = |how| {
                if !minimised {
                    self.infra.mark_zone_failure(addr, zone, how);
                }
            };
            let classified = if forwarding {
                classify_forwarded(&msg, sname, stype, zone)
            } else {
                classify(&msg, sname, stype, zone)
            };
            if req.wants(!clean(&classified)) {
                let referral_to = match &classified {
                    Classified::Referral { zone, .. } => Some(zone.clone()),
                    _ => None,
                };
                sent_as.record_with(
                    req,
                    Some((&msg, replied)),
                    result_of(&classified),
                    referral_to,
                );
            }
            return Ok(match classified {
                Classified::Lame(why) => {
                    count(transport, "lame");
                    debug!(server = %addr, zone = %zone, why, "lame server");
                    mark(ZoneFailure::Lame);
                    Outcome::Failed
                }
                Classified::ServerError(rc) => {
                    count(transport, "error_rcode");
                    debug!(server = %addr, zone = %zone, rcode = %rc, "error from server");
                    mark(ZoneFailure::ErrorRcode);
                    Outcome::Failed
                }
                Classified::LastResort { answer, why } => {
                    count(transport, "last_resort");
                    debug!(server = %addr, zone = %zone, why, "answer kept as a last resort");
                    mark(ZoneFailure::RecursiveLame);
                    Outcome::LastResort(Reply {
                        classified: *answer,
                        aa,
                        server: addr,
                        additionals: std::mem::take(&mut msg.additionals),
                    })
                }
                classified => {
                    count(transport, "ok");
                    Outcome::Usable(Reply {
                        classified,
                        aa,
                        server: addr,
                        additionals: std::mem::take(&mut msg.additionals),
                    })
                }
            });
        }
    }
}

/// One attempt at one server: which, how long to wait, and which try it is.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    pick: Pick,
    /// 1 for the first query to this server in this question.
    number: u32,
    /// A minimised query: no lameness marks (see [`Persistence::Minimised`]).
    minimised: bool,
}

/// One query as sent, for the trace.
struct Sent<'a> {
    servers: &'a Delegation,
    addr: IpAddr,
    /// After minimisation and 0x20.
    name: &'a Name,
    rtype: RecordType,
    tcp: bool,
    /// DNS over TLS to a forwarder.
    tls: bool,
    minimised: bool,
    attempt: u32,
    timeout: std::time::Duration,
    /// The trace clock when it was sent.
    started: u64,
}

/// What came back, for the trace.
#[derive(Clone, Copy)]
struct Replied {
    tcp: bool,
    /// A truncated UDP reply made the exchange go on over TCP.
    truncated: bool,
    size: usize,
}

impl Sent<'_> {
    /// Records the exchange when the trace wants it: a failed one always,
    /// an answer or referral only in a full trace.
    fn record(
        &self,
        req: &mut Request,
        reply: Option<(&Message, Replied)>,
        result: ExchangeResult,
    ) {
        let failed = !matches!(
            result,
            ExchangeResult::Answer
                | ExchangeResult::Cname
                | ExchangeResult::Referral
                | ExchangeResult::Nxdomain
                | ExchangeResult::Nodata
        );
        if req.wants(failed) {
            self.record_with(req, reply, result, None);
        }
    }

    fn record_with(
        &self,
        req: &mut Request,
        reply: Option<(&Message, Replied)>,
        result: ExchangeResult,
        referral_to: Option<Name>,
    ) {
        let Some(trace) = req.trace.as_mut() else {
            return;
        };
        let rtt_us = trace.now_us().saturating_sub(self.started);
        let (rcode, aa, answers, replied) = match reply {
            Some((msg, replied)) => (
                Some(crate::wire::rcode_mnemonic(
                    msg.metadata.response_code.into(),
                )),
                msg.metadata.authoritative,
                msg.answers.len(),
                Some(replied),
            ),
            None => (None, false, 0, None),
        };
        let tcp = self.tcp || replied.is_some_and(|r| r.tcp);
        trace.push_at(
            self.started,
            EventKind::Exchange(trace::Exchange {
                server: self.addr,
                server_name: self.servers.name_of(self.addr),
                zone: self.servers.zone.clone(),
                qname: self.name.clone(),
                qtype: self.rtype,
                transport: if self.tls {
                    trace::Transport::Tls
                } else if tcp {
                    trace::Transport::Tcp
                } else {
                    trace::Transport::Udp
                },
                minimised: self.minimised,
                attempt: self.attempt,
                timeout_ms: self.timeout.as_millis() as u64,
                rcode,
                aa,
                tc: replied.is_some_and(|r| r.truncated),
                answers,
                size: replied.map_or(0, |r| r.size),
                rtt_us,
                result,
                referral_to,
            }),
        );
    }
}

/// Whether a reply is one the walk goes on with (not a failure's evidence).
fn clean(classified: &Classified) -> bool {
    matches!(
        classified,
        Classified::Answer { .. }
            | Classified::Cname { .. }
            | Classified::Referral { .. }
            | Classified::NxDomain { .. }
            | Classified::NoData { .. }
    )
}

/// What a classified reply is, in a trace.
fn result_of(classified: &Classified) -> ExchangeResult {
    match classified {
        Classified::Answer { .. } => ExchangeResult::Answer,
        Classified::Cname { .. } => ExchangeResult::Cname,
        Classified::Referral { .. } => ExchangeResult::Referral,
        Classified::NxDomain { .. } => ExchangeResult::Nxdomain,
        Classified::NoData { .. } => ExchangeResult::Nodata,
        Classified::LastResort { .. } => ExchangeResult::LastResort,
        Classified::Lame(_) => ExchangeResult::Lame,
        Classified::ServerError(_) => ExchangeResult::ServerError,
    }
}
