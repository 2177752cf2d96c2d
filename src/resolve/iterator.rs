//! The walk (RFC 1034 §5.3.3): from the closest known zone cut down to the
//! zone that holds the answer, one referral at a time, with QNAME
//! minimisation (RFC 9156, relaxed) and bounded glueless sub-resolutions.
//!
//! At each cut the servers are asked in this order, each step only when
//! the one before it gave nothing usable (Unbound's iterator does the
//! same): the servers with addresses, fastest first and those lame for the
//! zone last; then the NS names still without an address, looked up one
//! by one; then the parent side's NS names and glue, kept from the
//! referral, for a child whose own NS data is broken. A timed-out server
//! gets a second round with the full timeout. A minimised query that fails
//! is asked again with the full name instead.
//!
//! What bounds a question: `max_upstream_queries` (32, Unbound's
//! max-sent-count) and the time budget; priming at most once; NS
//! dependency cycles stopped as soon as a name is needed to find itself.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tracing::{debug, trace};

use super::classify::{Classified, classify};
use super::infra::ZoneFailure;
use super::scrub::scrub;
use super::transport::{self, Question as WireQuestion, TransportError};
use super::{Budget, ResolveError, Resolver};
use crate::cache::{Delegation, NameServer, NegativeKind, Rank, address};
use crate::dnssec::{Security, covers};

/// RFC 9156 §2.3: at most this many extra labels are added one at a time.
const MAX_MINIMISE_STEPS: u8 = 10;
/// How deep glueless NS lookups may nest inside each other.
const MAX_GLUELESS_DEPTH: u8 = 4;

/// What the walk found for one name.
// One Step is returned per walk and consumed at once; boxing the SOA (a
// Record is ~300 bytes since hickory's DNSSEC types joined RData) would
// cost an allocation on every negative answer to save a memcpy.
// Records carry the RRSIGs over them, so a validator can check them and a
// DO client can be given them.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Step {
    Answer {
        chain: Vec<Record>,
        rrset: Vec<Record>,
        /// NSEC/NSEC3 proof that a wildcard answer is the closest match.
        proof: Vec<Record>,
    },
    Cname {
        chain: Vec<Record>,
        target: Name,
    },
    Negative {
        kind: NegativeKind,
        chain: Vec<Record>,
        soa: Option<Record>,
        /// NSEC/NSEC3 records and the RRSIGs over them and the SOA.
        proof: Vec<Record>,
    },
}

/// What the walk found and where: not yet validated, not yet cached.
#[derive(Debug)]
pub struct Found {
    pub step: Step,
    /// The zone whose servers answered.
    pub zone: Name,
    /// The trust the answer earns once validated (RFC 2181 §5.4.1).
    pub rank: Rank,
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A usable reply from one of a zone's servers.
pub(super) struct Reply {
    pub(super) classified: Classified,
    aa: bool,
    /// The scrubbed additional section (priming keeps the root servers'
    /// addresses from it).
    additionals: Vec<Record>,
}

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

/// A zone cut being queried, and what this walk has done with it so far.
struct Cut {
    delegation: Delegation,
    /// Addresses already asked the current question.
    asked: Vec<IpAddr>,
    /// NS names whose addresses were looked up (or ruled out).
    looked_up: Vec<Name>,
    /// Whether the parent-side servers were added (Unbound's last resort).
    parent_side_added: bool,
}

impl Cut {
    fn new(delegation: Delegation) -> Cut {
        Cut {
            delegation,
            asked: Vec::new(),
            looked_up: Vec::new(),
            parent_side_added: false,
        }
    }

    fn zone(&self) -> &Name {
        &self.delegation.zone
    }

    /// Addresses of the cut not yet asked the current question.
    fn fresh_addresses(&self) -> Vec<IpAddr> {
        let mut addrs = self.delegation.addresses();
        addrs.retain(|a| !self.asked.contains(a));
        addrs
    }

    /// Starts a new question at the same cut: every server may be asked again.
    fn next_question(&mut self) {
        self.asked.clear();
    }
}

impl Resolver {
    /// Walks from the closest cached delegation to the answer for
    /// (qname, qtype). Referrals are cached on the way; the answer is
    /// returned for the caller to validate and cache.
    pub(super) async fn walk(
        &self,
        qname: &Name,
        qtype: RecordType,
        budget: &mut Budget,
    ) -> Result<Found, ResolveError> {
        // RFC 4035 §3.1.4.1: a DS RRset is the parent's data; start above
        // the child's own cut even when that cut is cached.
        let start = if qtype == RecordType::DS && !qname.is_root() {
            qname.base_name()
        } else {
            qname.clone()
        };
        let mut cut = self.start_cut(&start, budget).await?;
        let total_labels = qname.num_labels();
        let mut minimise = self.config.qname_minimisation;
        let mut qmin_labels = cut.zone().num_labels() + 1;
        let mut minimise_steps = 0u8;
        let mut referrals = 0u32;
        loop {
            let minimised =
                minimise && qmin_labels < total_labels && minimise_steps < MAX_MINIMISE_STEPS;
            let (sname, stype) = if minimised {
                (qname.trim_to(qmin_labels as usize), RecordType::A)
            } else {
                (qname.clone(), qtype)
            };
            cut.next_question();
            let reply = match self
                .ask_cut(&mut cut, &sname, stype, budget, minimised)
                .await
            {
                Ok(reply) => reply,
                Err(ResolveError::NoReachableAuthority(_)) if minimised => {
                    // RFC 9156 §2.3, relaxed: some servers fail on the names
                    // minimisation makes up (empty non-terminals, A at a
                    // cut). Ask the full name once instead.
                    debug!(qname = %qname, sname = %sname, zone = %cut.zone(), "minimised query failed; asking the full name");
                    minimise = false;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let Reply { classified, aa, .. } = reply;
            let rank = if aa {
                Rank::AuthAnswer
            } else {
                Rank::NonAuthAnswer
            };
            let step = match classified {
                Classified::Referral {
                    zone,
                    ns,
                    glue,
                    proof,
                } => {
                    referrals += 1;
                    if referrals > self.config.max_referral_depth {
                        return Err(ResolveError::ReferralDepth(self.config.max_referral_depth));
                    }
                    debug!(qname = %qname, zone = %zone, from = %cut.zone(), "referral");
                    self.cache_records(&ns, Rank::Referral, Security::Indeterminate);
                    self.cache_records(&glue, Rank::Additional, Security::Indeterminate);
                    self.validation.keep_referral(&zone, proof);
                    cut = self.cut_from_referral(zone, &ns, &glue);
                    qmin_labels = cut.zone().num_labels() + 1;
                    continue;
                }
                _ if minimised => {
                    minimise_steps += 1;
                    match classified {
                        // The name exists and no cut is there: add a label (RFC 9156 §3).
                        Classified::Answer { .. } | Classified::NoData { .. } => qmin_labels += 1,
                        // Anything else: relaxed mode asks the full name.
                        _ => minimise = false,
                    }
                    continue;
                }
                Classified::Answer {
                    chain,
                    rrset,
                    zone_ns,
                    proof,
                } => {
                    // The child's NS set from an authority section is not
                    // validated: with validation on it only guides the walk.
                    let ns_rank = if aa && !self.validation.enabled {
                        Rank::AuthAuthority
                    } else {
                        Rank::Referral
                    };
                    self.cache_records(&zone_ns, ns_rank, Security::Indeterminate);
                    Step::Answer {
                        chain,
                        rrset,
                        proof,
                    }
                }
                Classified::Cname { chain, target } => Step::Cname { chain, target },
                Classified::NxDomain { chain, soa, proof } => Step::Negative {
                    kind: NegativeKind::NxDomain,
                    chain,
                    soa,
                    proof,
                },
                Classified::NoData { chain, soa, proof } => Step::Negative {
                    kind: NegativeKind::NoData,
                    chain,
                    soa,
                    proof,
                },
                Classified::LastResort { .. }
                | Classified::Lame(_)
                | Classified::ServerError(_) => {
                    // ask_cut unwraps or rejects these; treat as unreachable if it did not.
                    return Err(ResolveError::NoReachableAuthority(cut.zone().to_string()));
                }
            };
            return Ok(Found {
                step,
                zone: cut.zone().clone(),
                rank,
            });
        }
    }

    /// Caches chain links, except CNAMEs synthesised from a DNAME (the DNAME is cached).
    pub(super) fn cache_chain(&self, chain: &[Record], rank: Rank, security: Security) {
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

    /// The deepest cached cut that can be queried, resolving glueless NS
    /// names where needed; the root (primed) when nothing else is known.
    async fn start_cut(&self, qname: &Name, budget: &mut Budget) -> Result<Cut, ResolveError> {
        let mut name = qname.clone();
        while let Some(found) = self.cache.closest_delegation(&name, false) {
            let mut cut = Cut::new(self.with_usable_addresses(found));
            if cut.delegation.has_addresses() {
                return Ok(cut);
            }
            match self.fill_addresses(&mut cut, budget).await {
                Ok(true) => return Ok(cut),
                // A cycle through this cut: a referral from above may carry glue.
                Ok(false) | Err(ResolveError::NsCycle(_)) => {}
                Err(e) => return Err(e),
            }
            if cut.zone().is_root() {
                break;
            }
            name = cut.zone().base_name();
        }
        self.prime(budget).await
    }

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

    /// RFC 8109 priming: ask a hinted root server for `. NS` and cache the
    /// answer and its glue; falls back to the hints when priming fails.
    /// At most once per client question: a glueless lookup that finds no
    /// cached root starts from the hints instead of priming again. When
    /// every hinted server has just failed, the question fails at once.
    async fn prime(&self, budget: &mut Budget) -> Result<Cut, ResolveError> {
        let hints = self.hints_delegation();
        if !hints.has_addresses() {
            return Err(ResolveError::ForbiddenUpstream(".".into()));
        }
        if budget.primed {
            return Ok(Cut::new(hints));
        }
        budget.primed = true;
        let root = Name::root();
        let addrs = hints.addresses();
        match self
            .ask_servers(&root, &addrs, &root, RecordType::NS, budget, false)
            .await
        {
            Ok(Reply {
                classified: Classified::Answer { rrset, .. },
                additionals,
                ..
            }) => {
                debug!(servers = rrset.len(), "primed the root");
                // Unvalidated, so not for clients when validation is on.
                let rank = if self.validation.enabled {
                    Rank::Referral
                } else {
                    Rank::AuthAnswer
                };
                self.cache_records(&rrset, rank, Security::Indeterminate);
                self.cache_records(&additionals, Rank::Additional, Security::Indeterminate);
                Ok(Cut::new(
                    self.cache
                        .closest_delegation(&root, true)
                        .map(|d| self.with_usable_addresses(d))
                        .filter(Delegation::has_addresses)
                        .unwrap_or(hints),
                ))
            }
            Ok(_) => Ok(Cut::new(hints)),
            Err(ResolveError::NoReachableAuthority(_)) => {
                if addrs.iter().all(|a| self.infra.is_held_down(*a)) {
                    Err(ResolveError::NoReachableAuthority(".".into()))
                } else {
                    Ok(Cut::new(hints))
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The cut a referral points to: glue from the message, then cached
    /// addresses. NS names without either are resolved when the cut is
    /// asked ([`Resolver::ask_cut`]). The referral's own view (its NS names
    /// and glue) is also kept apart as the parent side of the cut.
    fn cut_from_referral(&self, zone: Name, ns: &[Record], glue: &[Record]) -> Cut {
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
                .parent_side
                .insert(&zone, &parent, self.cache.policy.positive(ttl));
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

    /// Resolves the addresses of NS names of `cut` that came without glue
    /// and were not looked up yet, until one of them yields an address: at
    /// most `max_glueless_per_delegation` names per cut, nested at most
    /// [`MAX_GLUELESS_DEPTH`] deep, all inside the question's budget.
    /// Returns whether an address was added.
    ///
    /// A name already being resolved further up this question's lookups is
    /// an NS dependency cycle (`a.lab` served only by `ns.b.lab`, `b.lab`
    /// only by `ns.a.lab`): it is skipped at once, and when nothing else
    /// is left the cut fails with [`ResolveError::NsCycle`], which stops
    /// the lookups that led here as well.
    fn fill_addresses<'a>(
        &'a self,
        cut: &'a mut Cut,
        budget: &'a mut Budget,
    ) -> BoxFuture<'a, Result<bool, ResolveError>> {
        Box::pin(async move {
            if budget.glueless_depth >= MAX_GLUELESS_DEPTH {
                return Ok(false);
            }
            budget.glueless_depth += 1;
            let result = self.fill_some(cut, budget).await;
            budget.glueless_depth -= 1;
            result
        })
    }

    async fn fill_some(&self, cut: &mut Cut, budget: &mut Budget) -> Result<bool, ResolveError> {
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
            if budget.ns_lookups.contains(&host) {
                debug!(zone = %cut.zone(), host = %host, "NS dependency cycle");
                cycle = true;
                continue;
            }
            budget.ns_lookups.push(host.clone());
            let found = self.addresses_by_lookup(&host, budget).await;
            budget.ns_lookups.pop();
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
    /// question's budget. Budget exhaustion and cycles are errors; any
    /// other failure is just no address.
    async fn addresses_by_lookup(
        &self,
        host: &Name,
        budget: &mut Budget,
    ) -> Result<Vec<IpAddr>, ResolveError> {
        for rtype in [RecordType::A, RecordType::AAAA] {
            match self.resolve_with(host, rtype, budget, false).await {
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
    async fn ask_cut(
        &self,
        cut: &mut Cut,
        sname: &Name,
        stype: RecordType,
        budget: &mut Budget,
        minimised: bool,
    ) -> Result<Reply, ResolveError> {
        let mut cycle = None;
        loop {
            let fresh = cut.fresh_addresses();
            if !fresh.is_empty() {
                cut.asked.extend(&fresh);
                let zone = cut.zone().clone();
                match self
                    .ask_servers(&zone, &fresh, sname, stype, budget, minimised)
                    .await
                {
                    // The walk asks the full name next; the cut's other
                    // servers are for that question.
                    Err(e @ ResolveError::NoReachableAuthority(_)) if minimised => return Err(e),
                    Err(ResolveError::NoReachableAuthority(_)) => {}
                    done => return done,
                }
            }
            match self.fill_addresses(cut, budget).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e @ ResolveError::NsCycle(_)) => cycle = Some(e),
                Err(e) => return Err(e),
            }
            if !cut.parent_side_added {
                cut.parent_side_added = true;
                if let Some(parent) = self.cache.parent_side.get(cut.zone()) {
                    let parent = self.with_usable_addresses(parent);
                    debug!(zone = %cut.zone(), "child-side servers failed; trying the parent side");
                    cut.delegation.servers.extend(parent.servers);
                    continue;
                }
            }
            return Err(
                cycle.unwrap_or_else(|| ResolveError::NoReachableAuthority(cut.zone().to_string()))
            );
        }
    }

    /// Asks `addrs`, servers of `zone`, in infra order. Timeouts are
    /// retried for `retries` more rounds, each waiting the full
    /// `upstream_timeout_ms`; lame and error answers are not retried. A
    /// [`Outcome::LastResort`] answer is returned only when no server gave
    /// a better one.
    ///
    /// A minimised query (`minimised`) gets one round and marks no server:
    /// its failures may be minimisation's doing, and the walk asks the
    /// full name next.
    pub(super) async fn ask_servers(
        &self,
        zone: &Name,
        addrs: &[IpAddr],
        sname: &Name,
        stype: RecordType,
        budget: &mut Budget,
        minimised: bool,
    ) -> Result<Reply, ResolveError> {
        if addrs.is_empty() {
            return Err(ResolveError::NoReachableAuthority(zone.to_string()));
        }
        let rounds = if minimised { 0 } else { self.config.retries };
        let mut pending = self.infra.order(addrs, zone);
        let mut fallback = None;
        for round in 0..=rounds {
            let mut timed_out = Vec::new();
            for addr in pending {
                let outcome = self
                    .ask_server(addr, zone, sname, stype, budget, round > 0, minimised)
                    .await?;
                match outcome {
                    Outcome::Usable(reply) => return Ok(reply),
                    Outcome::LastResort(reply) => {
                        fallback.get_or_insert(reply);
                    }
                    Outcome::TimedOut => timed_out.push(addr),
                    Outcome::Failed => {}
                }
            }
            if fallback.is_some() || timed_out.is_empty() {
                break;
            }
            pending = timed_out;
        }
        fallback.ok_or_else(|| ResolveError::NoReachableAuthority(zone.to_string()))
    }

    /// One server, one question: EDNS and 0x20 fallbacks included, the
    /// reply scrubbed and classified, the server's record updated.
    #[allow(clippy::too_many_arguments)]
    async fn ask_server(
        &self,
        addr: IpAddr,
        zone: &Name,
        sname: &Name,
        stype: RecordType,
        budget: &mut Budget,
        retry: bool,
        minimised: bool,
    ) -> Result<Outcome, ResolveError> {
        let known = self.infra.stats(addr);
        let mut edns = !known.no_edns;
        let mut use_0x20 = self.config.use_0x20 && !known.no_0x20;
        loop {
            budget.spend()?;
            let wait = if retry {
                self.infra.max_timeout()
            } else {
                self.infra.timeout_for(addr)
            };
            let timeout = wait.min(budget.remaining_time());
            let question = WireQuestion {
                name: sname,
                rtype: stype,
                edns_payload: edns.then_some(self.config.edns_buffer_size),
                dnssec_ok: self.validation.enabled,
                use_0x20,
            };
            let server = SocketAddr::new(addr, self.config.upstream_port);
            let exchange = match transport::exchange(server, &question, timeout).await {
                Ok(x) => x,
                Err(TransportError::CaseNotEchoed) if use_0x20 => {
                    // Fall back for this server, as Unbound's use-caps-for-id does.
                    self.infra.set_no_0x20(addr);
                    use_0x20 = false;
                    continue;
                }
                Err(e) => {
                    let timed_out = matches!(e, TransportError::Timeout(_));
                    self.metrics
                        .upstream_query("udp", if timed_out { "timeout" } else { "error" });
                    debug!(server = %addr, qname = %sname, error = %e, "upstream failed");
                    if !minimised {
                        self.infra.record_failure(addr);
                    }
                    return Ok(if timed_out {
                        Outcome::TimedOut
                    } else {
                        Outcome::Failed
                    });
                }
            };
            let transport = if exchange.tcp { "tcp" } else { "udp" };
            self.metrics.upstream_rtt(exchange.rtt);
            if exchange.rejected > 0 {
                self.metrics.spoof_rejected(exchange.rejected);
            }
            let mut msg = exchange.message;
            if msg.metadata.response_code == ResponseCode::FormErr && edns && msg.edns.is_none() {
                // RFC 6891 §7: a server that does not know EDNS; ask again without.
                self.metrics.upstream_query(transport, "formerr");
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
            return Ok(match classify(&msg, sname, stype, zone) {
                Classified::Lame(why) => {
                    self.metrics.upstream_query(transport, "lame");
                    debug!(server = %addr, zone = %zone, why, "lame server");
                    mark(ZoneFailure::Lame);
                    Outcome::Failed
                }
                Classified::ServerError(rc) => {
                    self.metrics.upstream_query(transport, "error_rcode");
                    debug!(server = %addr, zone = %zone, rcode = %rc, "error from server");
                    mark(ZoneFailure::ErrorRcode);
                    Outcome::Failed
                }
                Classified::LastResort { answer, why } => {
                    self.metrics.upstream_query(transport, "last_resort");
                    debug!(server = %addr, zone = %zone, why, "answer kept as a last resort");
                    mark(ZoneFailure::RecursiveLame);
                    Outcome::LastResort(Reply {
                        classified: *answer,
                        aa,
                        additionals: std::mem::take(&mut msg.additionals),
                    })
                }
                classified => {
                    self.metrics.upstream_query(transport, "ok");
                    Outcome::Usable(Reply {
                        classified,
                        aa,
                        additionals: std::mem::take(&mut msg.additionals),
                    })
                }
            });
        }
    }
}

/// The name a negative answer is about: the last CNAME target, or the question.
pub(super) fn chain_end(qname: &Name, chain: &[Record]) -> Name {
    chain
        .iter()
        .rev()
        .find_map(|r| match &r.data {
            RData::CNAME(t) => Some(t.0.to_lowercase()),
            _ => None,
        })
        .unwrap_or_else(|| qname.to_lowercase())
}
