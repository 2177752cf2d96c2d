//! The walk (RFC 1034 §5.3.3): one question's descent from the closest
//! known zone cut to the zone that holds the answer, root → TLD → second
//! level → the zone, one referral at a time.
//!
//! [`Resolver::walk`] starts at the deepest cached cut that can be asked,
//! or primes the root (RFC 8109) when nothing is known. [`Walk::run`] then
//! asks the cut's servers ([`super::cut`]) one question at a time: a
//! referral moves it one cut down ([`Walk::descend`]); with QNAME
//! minimisation (RFC 9156, relaxed) a name that exists without a cut adds
//! a label, and anything unexpected asks the full name; the first answer to
//! the full question ends the walk ([`Walk::finish`]).
//!
//! What bounds a question: `max_upstream_queries` (32, Unbound's
//! max-sent-count) and the time budget, spent in [`Budget`];
//! `max_referral_depth` referrals; priming at most once; at most
//! [`MAX_MINIMISE_STEPS`] labels added one by one.

use std::net::IpAddr;

use hickory_proto::rr::{Name, RData, Record, RecordType};
use tracing::debug;

use super::classify::Classified;
use super::cut::{Cut, Persistence, Reply};
use super::{Budget, ResolveError, Resolver};
use crate::cache::{Delegation, NameServer, NegativeKind, Rank, address};
use crate::dnssec::Security;

/// RFC 9156 §2.3: at most this many extra labels are added one at a time.
const MAX_MINIMISE_STEPS: u8 = 10;

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
    /// The server that gave the answer.
    pub server: IpAddr,
}

/// One question's descent: where it is, what it may still spend, and how
/// much of the name its next query shows.
struct Walk<'a> {
    resolver: &'a Resolver,
    qname: &'a Name,
    qtype: RecordType,
    budget: &'a mut Budget,
    /// The cut whose servers are asked next.
    cut: Cut,
    qmin: Minimisation,
    /// Referrals followed so far (bounded by `max_referral_depth`).
    referrals: u32,
}

/// RFC 9156 state: the next query asks `labels` labels of the name, as A,
/// until the full name is reached or minimisation is given up.
struct Minimisation {
    /// Off by config, or given up for this question (relaxed mode).
    on: bool,
    labels: u8,
    /// Labels added below a cut, for [`MAX_MINIMISE_STEPS`].
    steps: u8,
}

/// The query a walk sends next.
struct Ask {
    name: Name,
    rtype: RecordType,
    /// A minimised query: its failure is minimisation's to answer for.
    minimised: bool,
}

impl Minimisation {
    fn new(on: bool, cut: &Name) -> Minimisation {
        Minimisation {
            on,
            labels: cut.num_labels() + 1,
            steps: 0,
        }
    }

    /// At a new cut the name is shown one label below it.
    fn enter(&mut self, cut: &Name) {
        self.labels = cut.num_labels() + 1;
    }

    fn next(&self, qname: &Name, qtype: RecordType) -> Ask {
        let minimised =
            self.on && self.labels < qname.num_labels() && self.steps < MAX_MINIMISE_STEPS;
        if minimised {
            Ask {
                name: qname.trim_to(self.labels as usize),
                rtype: RecordType::A,
                minimised,
            }
        } else {
            Ask {
                name: qname.clone(),
                rtype: qtype,
                minimised,
            }
        }
    }

    /// What a minimised query's answer (other than a referral) tells it.
    fn learn(&mut self, classified: &Classified) {
        self.steps += 1;
        match classified {
            // The name exists and no cut is there: add a label (RFC 9156 §3).
            Classified::Answer { .. } | Classified::NoData { .. } => self.labels += 1,
            // Anything else: relaxed mode asks the full name.
            _ => self.on = false,
        }
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
        let cut = self.start_cut(&start, budget).await?;
        Walk {
            resolver: self,
            qname,
            qtype,
            budget,
            qmin: Minimisation::new(self.config.qname_minimisation, cut.zone()),
            cut,
            referrals: 0,
        }
        .run()
        .await
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
            .ask_servers(
                &root,
                &addrs,
                &root,
                RecordType::NS,
                budget,
                Persistence::Once,
            )
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
                if addrs.iter().all(|a| self.infra.is_down(*a)) {
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
}

impl Walk<'_> {
    /// Asks cut after cut until a server answers the full question.
    async fn run(mut self) -> Result<Found, ResolveError> {
        loop {
            let ask = self.qmin.next(self.qname, self.qtype);
            self.cut.next_question();
            let reply = self
                .resolver
                .ask_cut(
                    &mut self.cut,
                    &ask.name,
                    ask.rtype,
                    self.budget,
                    ask.minimised,
                )
                .await;
            let reply = match reply {
                Ok(reply) => reply,
                Err(ResolveError::NoReachableAuthority(_)) if ask.minimised => {
                    // RFC 9156 §2.3, relaxed: some servers fail on the names
                    // minimisation makes up (empty non-terminals, A at a
                    // cut). Ask the full name once instead.
                    debug!(qname = %self.qname, sname = %ask.name, zone = %self.cut.zone(), "minimised query failed; asking the full name");
                    self.qmin.on = false;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match reply.classified {
                Classified::Referral {
                    zone,
                    ns,
                    glue,
                    proof,
                } => self.descend(zone, &ns, &glue, proof)?,
                classified if ask.minimised => self.qmin.learn(&classified),
                classified => return self.finish(classified, reply.aa, reply.server),
            }
        }
    }

    /// Follows a referral one cut down: its NS set and glue are cached and
    /// its DS (or DS denial) kept for the validator.
    fn descend(
        &mut self,
        zone: Name,
        ns: &[Record],
        glue: &[Record],
        proof: Vec<Record>,
    ) -> Result<(), ResolveError> {
        let resolver = self.resolver;
        self.referrals += 1;
        if self.referrals > resolver.config.max_referral_depth {
            return Err(ResolveError::ReferralDepth(
                resolver.config.max_referral_depth,
            ));
        }
        debug!(qname = %self.qname, zone = %zone, from = %self.cut.zone(), "referral");
        resolver.cache_records(ns, Rank::Referral, Security::Indeterminate);
        resolver.cache_records(glue, Rank::Additional, Security::Indeterminate);
        resolver.validation.keep_referral(&zone, proof);
        self.cut = resolver.cut_from_referral(zone, ns, glue);
        self.qmin.enter(self.cut.zone());
        Ok(())
    }

    /// The answer to the full question, as the walk hands it on.
    fn finish(
        self,
        classified: Classified,
        aa: bool,
        server: IpAddr,
    ) -> Result<Found, ResolveError> {
        let rank = if aa {
            Rank::AuthAnswer
        } else {
            Rank::NonAuthAnswer
        };
        let step = match classified {
            // The NS set in an answer's authority section is not cached.
            // Stored at a referral's rank or above, it replaced the
            // delegation the referral gave, so one answer from one server,
            // AA or not, could hand the whole zone (or a cut made up below
            // it) to any server it named. A delegation comes from the
            // parent's referral, the zone's own NS set from an answer to an
            // NS question: RFC 2181 §5.4.1 trusts the answer to the
            // question asked above anything a reply adds beside it.
            Classified::Answer {
                chain,
                rrset,
                proof,
            } => Step::Answer {
                chain,
                rrset,
                proof,
            },
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
            Classified::Referral { .. }
            | Classified::LastResort { .. }
            | Classified::Lame(_)
            | Classified::ServerError(_) => {
                // ask_cut unwraps or rejects these; treat as unreachable if it did not.
                return Err(ResolveError::NoReachableAuthority(
                    self.cut.zone().to_string(),
                ));
            }
        };
        Ok(Found {
            step,
            zone: self.cut.zone().clone(),
            rank,
            server,
        })
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
