//! The walk (RFC 1034 §5.3.3): from the closest known zone cut down to the
//! zone that holds the answer, one referral at a time, with QNAME
//! minimisation (RFC 9156, relaxed) and bounded glueless sub-resolutions.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tracing::{debug, trace};

use super::classify::{Classified, classify};
use super::scrub::scrub;
use super::transport::{self, Question as WireQuestion, TransportError};
use super::{Budget, ResolveError, Resolver};
use crate::cache::{Delegation, NameServer, NegativeKind, Rank};

/// RFC 9156 §2.3: at most this many extra labels are added one at a time.
const MAX_MINIMISE_STEPS: u8 = 10;
/// How deep glueless NS lookups may nest inside each other.
const MAX_GLUELESS_DEPTH: u8 = 4;

/// What the walk found for one name.
#[derive(Debug)]
pub enum Step {
    Answer {
        chain: Vec<Record>,
        rrset: Vec<Record>,
    },
    Cname {
        chain: Vec<Record>,
        target: Name,
    },
    Negative {
        kind: NegativeKind,
        chain: Vec<Record>,
        soa: Option<Record>,
    },
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl Resolver {
    /// Walks from the closest cached delegation to the answer for (qname, qtype).
    pub(super) async fn walk(
        &self,
        qname: &Name,
        qtype: RecordType,
        budget: &mut Budget,
    ) -> Result<Step, ResolveError> {
        let mut cut = self.start_cut(qname, budget).await?;
        let total_labels = qname.num_labels();
        let mut minimise = self.config.qname_minimisation;
        let mut qmin_labels = cut.zone.num_labels() + 1;
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
            let (classified, aa) = self.ask_zone(&cut, &sname, stype, budget).await?;
            match classified {
                Classified::Referral { zone, ns, glue } => {
                    referrals += 1;
                    if referrals > self.config.max_referral_depth {
                        return Err(ResolveError::ReferralDepth(self.config.max_referral_depth));
                    }
                    debug!(qname = %qname, zone = %zone, from = %cut.zone, "referral");
                    self.cache_records(&ns, Rank::Referral);
                    self.cache_records(&glue, Rank::Additional);
                    cut = self.delegation_from(zone, &ns, &glue, budget).await?;
                    qmin_labels = cut.zone.num_labels() + 1;
                    continue;
                }
                _ if minimised => {
                    minimise_steps += 1;
                    match classified {
                        // The name exists and no cut is there: add a label (RFC 9156 §3).
                        Classified::Answer { .. } | Classified::NoData { .. } if aa => {
                            qmin_labels += 1
                        }
                        // Anything else: relaxed mode asks the full name.
                        _ => minimise = false,
                    }
                    continue;
                }
                Classified::Answer {
                    chain,
                    rrset,
                    zone_ns,
                } => {
                    let rank = if aa {
                        Rank::AuthAnswer
                    } else {
                        Rank::NonAuthAnswer
                    };
                    self.cache_chain(&chain, rank);
                    self.cache_records(&rrset, rank);
                    self.cache_records(&zone_ns, Rank::AuthAuthority);
                    return Ok(Step::Answer { chain, rrset });
                }
                Classified::Cname { chain, target } => {
                    self.cache_chain(&chain, Rank::AuthAnswer);
                    return Ok(Step::Cname { chain, target });
                }
                Classified::NxDomain { chain, soa } => {
                    self.cache_chain(&chain, Rank::AuthAnswer);
                    let end = chain_end(qname, &chain);
                    let soa = self.cache_negative(&end, qtype, NegativeKind::NxDomain, soa);
                    return Ok(Step::Negative {
                        kind: NegativeKind::NxDomain,
                        chain,
                        soa,
                    });
                }
                Classified::NoData { chain, soa } => {
                    self.cache_chain(&chain, Rank::AuthAnswer);
                    let end = chain_end(qname, &chain);
                    let soa = self.cache_negative(&end, qtype, NegativeKind::NoData, soa);
                    return Ok(Step::Negative {
                        kind: NegativeKind::NoData,
                        chain,
                        soa,
                    });
                }
                Classified::Lame(_) | Classified::ServerError(_) => {
                    // ask_zone never returns these; treat as unreachable if it did.
                    return Err(ResolveError::NoReachableAuthority(cut.zone.to_string()));
                }
            }
        }
    }

    /// Caches chain links, except CNAMEs synthesised from a DNAME (the DNAME is cached).
    fn cache_chain(&self, chain: &[Record], rank: Rank) {
        let has_dname = chain.iter().any(|r| r.record_type() == RecordType::DNAME);
        if has_dname {
            let keep: Vec<Record> = chain
                .iter()
                .filter(|r| r.record_type() == RecordType::DNAME)
                .cloned()
                .collect();
            self.cache_records(&keep, rank);
        } else {
            self.cache_records(chain, rank);
        }
    }

    /// The deepest cached cut that can be queried, resolving glueless NS
    /// names where needed; the root (primed) when nothing else is known.
    async fn start_cut(
        &self,
        qname: &Name,
        budget: &mut Budget,
    ) -> Result<Delegation, ResolveError> {
        let mut name = qname.clone();
        while let Some(cut) = self.cache.closest_delegation(&name, false) {
            let cut = self.with_usable_addresses(cut);
            if cut.has_addresses() {
                return Ok(cut);
            }
            let filled = self.fill_addresses(cut.clone(), budget).await;
            if filled.has_addresses() {
                return Ok(filled);
            }
            if cut.zone.is_root() {
                break;
            }
            name = cut.zone.base_name();
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
    async fn prime(&self, budget: &mut Budget) -> Result<Delegation, ResolveError> {
        let hints = self.hints_delegation();
        if !hints.has_addresses() {
            return Err(ResolveError::ForbiddenUpstream(".".into()));
        }
        let root = Name::root();
        match self
            .ask_zone_full(&hints, &root, RecordType::NS, budget)
            .await
        {
            Ok((Classified::Answer { rrset, .. }, _, glue)) => {
                debug!(servers = rrset.len(), "primed the root");
                self.cache_records(&rrset, Rank::AuthAnswer);
                self.cache_records(&glue, Rank::Additional);
                Ok(self
                    .cache
                    .closest_delegation(&root, true)
                    .map(|d| self.with_usable_addresses(d))
                    .filter(Delegation::has_addresses)
                    .unwrap_or(hints))
            }
            Ok(_) | Err(ResolveError::NoReachableAuthority(_)) => Ok(hints),
            Err(e) => Err(e),
        }
    }

    /// Builds the delegation a referral points to: glue from the message,
    /// then cached addresses, then glueless lookups.
    async fn delegation_from(
        &self,
        zone: Name,
        ns: &[Record],
        glue: &[Record],
        budget: &mut Budget,
    ) -> Result<Delegation, ResolveError> {
        let servers = ns
            .iter()
            .filter_map(|r| match &r.data {
                RData::NS(n) => Some(n.0.to_lowercase()),
                _ => None,
            })
            .map(|name| {
                let mut addrs: Vec<IpAddr> = glue
                    .iter()
                    .filter(|g| g.name.to_lowercase() == name)
                    .filter_map(|g| match &g.data {
                        RData::A(a) => Some(IpAddr::V4(a.0)),
                        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                        _ => None,
                    })
                    .collect();
                if addrs.is_empty() {
                    addrs = self.cache.addresses_of(&name);
                }
                NameServer { name, addrs }
            })
            .collect();
        let cut = self.with_usable_addresses(Delegation { zone, servers });
        if cut.has_addresses() {
            return Ok(cut);
        }
        let filled = self.fill_addresses(cut, budget).await;
        if filled.has_addresses() {
            Ok(filled)
        } else {
            Err(ResolveError::NoReachableAuthority(filled.zone.to_string()))
        }
    }

    fn with_usable_addresses(&self, mut cut: Delegation) -> Delegation {
        for s in &mut cut.servers {
            s.addrs.retain(|a| self.usable(a));
        }
        cut
    }

    /// Resolves the addresses of NS names that came without glue, at most
    /// `max_glueless_per_delegation` of them, nested at most
    /// [`MAX_GLUELESS_DEPTH`] deep, all inside the question's budget.
    fn fill_addresses<'a>(
        &'a self,
        mut cut: Delegation,
        budget: &'a mut Budget,
    ) -> BoxFuture<'a, Delegation> {
        Box::pin(async move {
            if budget.glueless_depth >= MAX_GLUELESS_DEPTH {
                return cut;
            }
            budget.glueless_depth += 1;
            let mut tried = 0;
            for i in 0..cut.servers.len() {
                if tried >= self.config.max_glueless_per_delegation {
                    break;
                }
                let host = cut.servers[i].name.clone();
                // An NS name inside the zone it serves, without glue, cannot be reached.
                if cut.zone.zone_of(&host) && !cut.zone.is_root() {
                    continue;
                }
                tried += 1;
                for rtype in [RecordType::A, RecordType::AAAA] {
                    let found = match self.resolve_with(&host, rtype, budget, false).await {
                        Ok(res) => res
                            .answers
                            .iter()
                            .filter_map(|r| match &r.data {
                                RData::A(a) => Some(IpAddr::V4(a.0)),
                                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                                _ => None,
                            })
                            .filter(|a| self.usable(a))
                            .collect::<Vec<_>>(),
                        Err(ResolveError::BudgetTime) | Err(ResolveError::BudgetQueries) => break,
                        Err(_) => Vec::new(),
                    };
                    cut.servers[i].addrs.extend(found);
                    if !cut.servers[i].addrs.is_empty() {
                        break;
                    }
                }
                if cut.servers[i].addrs.iter().any(|_| true) {
                    // One reachable server is enough to go on; the others are
                    // resolved when a later query needs them.
                    break;
                }
            }
            budget.glueless_depth -= 1;
            cut
        })
    }

    async fn ask_zone(
        &self,
        cut: &Delegation,
        sname: &Name,
        stype: RecordType,
        budget: &mut Budget,
    ) -> Result<(Classified, bool), ResolveError> {
        self.ask_zone_full(cut, sname, stype, budget)
            .await
            .map(|(c, aa, _)| (c, aa))
    }

    /// Asks the servers of `cut` in infra order until one gives a usable
    /// answer; timeouts, error RCODEs and lame answers move on to the next
    /// server and hold the failing one down. Returns the classification, the
    /// AA bit and the scrubbed additional section.
    async fn ask_zone_full(
        &self,
        cut: &Delegation,
        sname: &Name,
        stype: RecordType,
        budget: &mut Budget,
    ) -> Result<(Classified, bool, Vec<Record>), ResolveError> {
        let mut addrs: Vec<IpAddr> = cut
            .servers
            .iter()
            .flat_map(|s| s.addrs.iter().copied())
            .collect();
        addrs.sort();
        addrs.dedup();
        if addrs.is_empty() {
            return Err(ResolveError::NoReachableAuthority(cut.zone.to_string()));
        }
        let order = self.infra.order(&addrs);
        for round in 0..=self.config.retries {
            for &addr in &order {
                if round > 0 && self.infra.is_held_down(addr) && order.len() > 1 {
                    continue;
                }
                let known = self.infra.stats(addr);
                let mut edns = !known.no_edns;
                let mut use_0x20 = self.config.use_0x20 && !known.no_0x20;
                loop {
                    budget.spend()?;
                    let timeout = self.infra.timeout_for(addr).min(budget.remaining_time());
                    let question = WireQuestion {
                        name: sname,
                        rtype: stype,
                        edns_payload: edns.then_some(self.config.edns_buffer_size),
                        use_0x20,
                    };
                    let server = SocketAddr::new(addr, self.config.upstream_port);
                    let result = transport::exchange(server, &question, timeout).await;
                    let exchange = match result {
                        Ok(x) => x,
                        Err(TransportError::CaseNotEchoed) if use_0x20 => {
                            // Fall back for this server, as Unbound's use-caps-for-id does.
                            self.infra.set_no_0x20(addr);
                            use_0x20 = false;
                            continue;
                        }
                        Err(e) => {
                            let result = match e {
                                TransportError::Timeout(_) => "timeout",
                                _ => "error",
                            };
                            self.metrics.upstream_query("udp", result);
                            debug!(server = %addr, qname = %sname, error = %e, "upstream failed");
                            self.infra.record_failure(addr);
                            break;
                        }
                    };
                    let transport = if exchange.tcp { "tcp" } else { "udp" };
                    self.metrics.upstream_rtt(exchange.rtt);
                    if exchange.rejected > 0 {
                        self.metrics.spoof_rejected(exchange.rejected);
                    }
                    let mut msg = exchange.message;
                    let rcode = msg.metadata.response_code;
                    if rcode == ResponseCode::FormErr && edns && msg.edns.is_none() {
                        // RFC 6891 §7: a server that does not know EDNS; ask again without.
                        self.metrics.upstream_query(transport, "formerr");
                        self.infra.set_no_edns(addr);
                        edns = false;
                        continue;
                    }
                    self.infra.record_rtt(addr, exchange.rtt);
                    let removed = scrub(&mut msg, sname, &cut.zone).removed;
                    if removed > 0 {
                        trace!(server = %addr, removed, "scrubbed records");
                    }
                    let classified = classify(&msg, sname, stype, &cut.zone);
                    match classified {
                        Classified::Lame(why) => {
                            self.metrics.upstream_query(transport, "lame");
                            debug!(server = %addr, zone = %cut.zone, why, "lame server");
                            self.infra.record_failure(addr);
                        }
                        Classified::ServerError(rc) => {
                            self.metrics.upstream_query(transport, "error_rcode");
                            debug!(server = %addr, rcode = %rc, "error from server");
                            self.infra.record_failure(addr);
                        }
                        other => {
                            self.metrics.upstream_query(transport, "ok");
                            let aa = msg.metadata.authoritative;
                            return Ok((other, aa, std::mem::take(&mut msg.additionals)));
                        }
                    }
                    break;
                }
            }
        }
        Err(ResolveError::NoReachableAuthority(cut.zone.to_string()))
    }
}

/// The name a negative answer is about: the last CNAME target, or the question.
fn chain_end(qname: &Name, chain: &[Record]) -> Name {
    chain
        .iter()
        .rev()
        .find_map(|r| match &r.data {
            RData::CNAME(t) => Some(t.0.to_lowercase()),
            _ => None,
        })
        .unwrap_or_else(|| qname.to_lowercase())
}

impl Resolver {
    /// Iterative referral mode's single upstream step: ask a root server
    /// once about `name` and cache the referral (or NXDOMAIN) it gives.
    /// Uses the hints when the root NS set is not cached, so no priming
    /// query is spent.
    pub async fn refer_from_root(&self, name: &Name) -> Result<(), ResolveError> {
        let mut budget = Budget::new(&self.config);
        budget.queries_left = 1 + self.config.retries;
        let root = self
            .cache
            .closest_delegation(&Name::root(), true)
            .map(|d| self.with_usable_addresses(d))
            .filter(Delegation::has_addresses)
            .unwrap_or_else(|| self.hints_delegation());
        let (sname, stype) = if self.config.qname_minimisation && name.num_labels() > 1 {
            (name.trim_to(1), RecordType::A)
        } else {
            (name.clone(), RecordType::NS)
        };
        match self.ask_zone(&root, &sname, stype, &mut budget).await? {
            (Classified::Referral { ns, glue, .. }, _) => {
                self.cache_records(&ns, Rank::Referral);
                self.cache_records(&glue, Rank::Additional);
            }
            (Classified::NxDomain { soa, .. }, _) => {
                // RFC 8020: nothing exists below a name that does not exist.
                self.cache_negative(name, RecordType::A, NegativeKind::NxDomain, soa);
            }
            _ => {}
        }
        Ok(())
    }
}
