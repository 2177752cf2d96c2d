//! The miss path, step by step: what taproot does for a question the
//! answer cache could not answer. It follows the seed note's
//! recursive-query diagram arrow by arrow:
//!
//! 1. `Client ->> DNS Resolver : request`: the handler missed the answer
//!    cache; [`Resolver::answer`] leads one resolution per distinct
//!    question, under a [`Request`] (limits, DO/CD, the trace).
//! 2. `alt if data in DNS Resolver Cache`: [`init`](Resolver::init) looks
//!    in the RRset and negative caches (an answer, a CNAME to follow, a
//!    negative answer, or NXDOMAIN proven by a cached NSEC range). The
//!    note's second cache case, a server that knows the answer, is
//!    [`find_cut`](Resolver::find_cut): the closest cached delegation.
//! 3. `DNS Resolver ->> Root DNS : request TLD IP`: with nothing cached,
//!    [`prime`](Resolver::prime) asks a hinted root server for the root's
//!    NS set, then [`query_targets`](Walk::query_targets) asks a root
//!    server, showing it only the TLD's label (RFC 9156).
//! 4. `Root DNS -->> DNS Resolver : return TLD IP`:
//!    [`on_response`](super::response::on_response) reads the referral;
//!    the walk descends: NS set and glue cached, the TLD's servers next.
//! 5. `Top Level DNS`, `Second Level DNS`: steps 3 and 4 again, one cut
//!    at a time, until a server answers the question itself (or says it
//!    does not exist).
//! 6. `Second Level DNS -->> DNS Resolver : return service server IP`:
//!    [`validate`](Resolver::validate_found) checks the answer's signatures
//!    (DS and DNSKEY fetched as nested resolutions), and
//!    [`finish`](Resolver::finish) caches it with its security status, or
//!    restarts at a CNAME's target (back to 2).
//! 7. `DNS Resolver -->> Client : service server IP`: the resolution is
//!    stored in the answer cache, and the handler renders it as it renders
//!    a hit.
//!
//! The steps are named after RFC 1034 §5.3.3 and Unbound's iterator
//! states (`iterator/iterator.h`):
//!
//! | step | does | RFC 1034 §5.3.3 | Unbound state |
//! |---|---|---|---|
//! | [`init`](Resolver::init) | the cache: an RRset, a CNAME to follow, a negative answer, an NXDOMAIN proven from cached NSEC (RFC 8198) | step 1 | INIT_REQUEST_STATE |
//! | [`find_cut`](Resolver::find_cut) | the closest delegation the cache knows, its NS names' addresses found (glueless: a nested resolution) | step 2 | INIT_REQUEST_2_STATE, INIT_REQUEST_3_STATE |
//! | [`prime`](Resolver::prime) | nothing known: the root's NS set from a hinted server (RFC 8109) | step 2 | (priming sub-query) |
//! | [`query_targets`](Walk::query_targets) | the next query (minimised, RFC 9156) to the cut's best server; retries, TCP, parent side ([`super::cut`]) | step 3 | QUERYTARGETS_STATE |
//! | [`on_response`](super::response::on_response) | what the classified reply means: descend, show another label, or the answer | step 4 | QUERY_RESP_STATE |
//! | [`validate`](Resolver::validate_found) | DNSSEC: keys and DS fetched as nested resolutions; bogus data asked of other servers | (RFC 4035 §5) | the validator module |
//! | [`finish`](Resolver::finish) | cache what was proven, then answer, or restart at a CNAME target | steps 4a, 4c | FINISHED_STATE |
//!
//! ```text
//!  client ──► init ──hit──────────────────────────────────────────► answer
//!              │ miss                                     ▲
//!              ▼                                          │ restart (CNAME, DNAME)
//!          find_cut / prime ──► query_targets ──► on_response ──answer──► validate ──► finish
//!                                   ▲                 │
//!                                   └── descend ◄─────┘ (referral, or one more label)
//! ```
//!
//! A [`Request`] carries the question's limits, flags and, when asked, its
//! [`crate::trace::Trace`]: each step records what it did, so
//! `GET /trace/{name}/{type}` draws this walk as the note's diagram.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tracing::debug;

use super::classify::Classified;
use super::cut::{Cut, Persistence};
use super::response::{Found, Minimisation, Next, Position, Reply, Step, chain_end, on_response};
use super::{MAX_BOGUS_RETRIES, Request, ResolveError, Resolver, validate};
use crate::cache::{Cached, Delegation, NegativeKind, Rank, Resolution};
use crate::dnssec::{Security, covers};
use crate::trace::{CacheOutcome, EventKind, RestartKind, StartSource, SubReason, Verdict};

/// What [`Resolver::init`] found in the cache for one name.
enum Init {
    /// The answer (or the end of the chain), from the cache.
    Done(Resolution),
    /// A cached CNAME: continue at its target.
    Restart(Name),
    /// Nothing: walk.
    Walk,
    /// A cached CNAME leads back into the chain.
    Fail(ResolveError),
}

/// What [`Resolver::finish`] makes of a validated link.
enum Finished {
    Done(Resolution),
    Restart(Name),
}

/// The chain a question has followed so far (RFC 1034 §5.3.3 step 4c).
struct Chase {
    records: Vec<Record>,
    security: Security,
}

impl Resolver {
    /// Resolves (qname, qtype) to records, following CNAMEs across zones:
    /// [`init`](Self::init) at every link, the walk when the cache has
    /// nothing, then [`finish`](Self::finish); the answer is only as secure
    /// as its weakest link. `refresh` ignores a cached RRset for the
    /// question itself (prefetch).
    pub async fn resolve_with(
        &self,
        qname: &Name,
        qtype: RecordType,
        req: &mut Request,
        refresh: bool,
    ) -> Result<Resolution, ResolveError> {
        let mut restarts = Vec::new();
        let result = self
            .follow_chain(qname, qtype, req, refresh, &mut restarts)
            .await;
        // Each link after a restart is drawn nested under it; close them.
        // (Every miss carries a trace for the failure ring: nothing is
        // formatted unless a restart opened one.)
        if !restarts.is_empty() && req.tracing() {
            let outcome = match &result {
                Ok(r) => format!(
                    "{}, {} records",
                    crate::wire::rcode_mnemonic(r.rcode.into()),
                    r.answers.len()
                ),
                Err(e) => e.to_string(),
            };
            for (reason, target) in restarts.iter().rev() {
                req.end(*reason, target, qtype, &outcome);
            }
        }
        result
    }

    /// The links of [`resolve_with`](Self::resolve_with); `restarts`
    /// collects where the trace opened a nested resolution.
    async fn follow_chain(
        &self,
        qname: &Name,
        qtype: RecordType,
        req: &mut Request,
        refresh: bool,
        restarts: &mut Vec<(SubReason, Name)>,
    ) -> Result<Resolution, ResolveError> {
        let mut chase = Chase {
            records: Vec::new(),
            security: if self.validation.enabled {
                Security::Secure
            } else {
                Security::Indeterminate
            },
        };
        let mut name = qname.to_lowercase();
        let max = self.config.max_cname_chain;
        for link in 0..=max {
            let skip_cache = req.bypasses_cache() || (refresh && link == 0);
            let next = match self.init(&name, qtype, req, &mut chase, skip_cache) {
                Init::Done(resolution) => return Ok(resolution),
                Init::Fail(e) => return Err(e),
                Init::Restart(target) => target,
                Init::Walk => {
                    let (found, verdict) = self.validate_found(&name, qtype, req).await?;
                    match self.finish(&name, qtype, found, verdict, req, &mut chase)? {
                        Finished::Done(resolution) => return Ok(resolution),
                        Finished::Restart(target) => target,
                    }
                }
            };
            if req.tracing() {
                let dname = chase
                    .records
                    .iter()
                    .any(|r| r.record_type() == RecordType::DNAME);
                let (kind, reason) = if dname {
                    (RestartKind::Dname, SubReason::Dname)
                } else {
                    (RestartKind::Cname, SubReason::Cname)
                };
                req.record_failure(|| EventKind::Restart {
                    kind,
                    from: name.clone(),
                    to: next.clone(),
                });
                req.begin(reason, &next, qtype);
                restarts.push((reason, next.clone()));
            }
            name = next;
            let links = chase
                .records
                .iter()
                .filter(|r| r.record_type() == RecordType::CNAME)
                .count();
            if links as u32 > max {
                return Err(ResolveError::CnameChainTooLong(max));
            }
        }
        Err(ResolveError::CnameChainTooLong(max))
    }

    /// Step 1: what the cache says about (name, qtype), the note's "alt"
    /// branch. `skip` looks nothing up (prefetch of the question itself,
    /// or a trace that bypasses the cache).
    fn init(
        &self,
        name: &Name,
        qtype: RecordType,
        req: &mut Request,
        chase: &mut Chase,
        skip: bool,
    ) -> Init {
        if skip {
            return Init::Walk;
        }
        // Secure RRsets come with their RRSIGs whatever the client asked:
        // the answer is stored once for clients with and without DO, and
        // only a DO client is shown them.
        let cached = self.cache.lookup(name, qtype, true);
        req.record(|| {
            let (outcome, detail) = match &cached {
                Some(Cached::Rrset(..)) => (CacheOutcome::Answer, None),
                Some(Cached::Cname(_, target, _)) => (CacheOutcome::Cname, Some(target.clone())),
                Some(Cached::Negative(n)) => (
                    match n.kind {
                        NegativeKind::NxDomain => CacheOutcome::Nxdomain,
                        NegativeKind::NoData => CacheOutcome::Nodata,
                    },
                    None,
                ),
                None => (CacheOutcome::Miss, None),
            };
            EventKind::Cache {
                name: name.clone(),
                qtype,
                outcome,
                detail,
            }
        });
        match cached {
            Some(Cached::Rrset(records, sec)) => {
                chase.records.extend(records);
                let records = std::mem::take(&mut chase.records);
                Init::Done(positive(records, Vec::new(), chase.security.and(sec)))
            }
            Some(Cached::Cname(records, target, sec)) => {
                chase.records.extend(records);
                chase.security = chase.security.and(sec);
                match check_loop(&chase.records, &target) {
                    Ok(()) => Init::Restart(target),
                    Err(e) => Init::Fail(e),
                }
            }
            Some(Cached::Negative(n)) => {
                let n = *n;
                let mut authorities = vec![n.soa];
                authorities.extend(n.proof);
                let records = std::mem::take(&mut chase.records);
                Init::Done(negative(
                    n.kind,
                    records,
                    authorities,
                    chase.security.and(n.security),
                ))
            }
            None => match self.aggressive_nxdomain(name, req) {
                Some(denied) => {
                    req.record(|| EventKind::Cache {
                        name: name.clone(),
                        qtype,
                        outcome: CacheOutcome::AggressiveNxdomain,
                        detail: None,
                    });
                    let records = std::mem::take(&mut chase.records);
                    Init::Done(negative(
                        NegativeKind::NxDomain,
                        records,
                        denied,
                        chase.security,
                    ))
                }
                None => Init::Walk,
            },
        }
    }

    /// Walks for (name, qtype) and validates what the walk found. Data that
    /// proves bogus is asked again of the zone's other servers, leaving out
    /// the one that sent it for the rest of the question (Unbound and Knot
    /// do the same: one broken or spoofed server must not make a zone
    /// bogus while another serves it right), at most
    /// [`MAX_BOGUS_RETRIES`] times. When no other server is left, the first
    /// bogus verdict stands. A CD client gets the first answer as it is.
    async fn validate_found(
        &self,
        name: &Name,
        qtype: RecordType,
        req: &mut Request,
    ) -> Result<(Found, validate::Verdict), ResolveError> {
        let mut first_bogus = None;
        let mut retries = 0;
        loop {
            let mut found = match self.walk(name, qtype, req).await {
                Ok(found) => found,
                Err(e) => {
                    debug!(%name, %qtype, error = %e, "no other server gave an answer");
                    return first_bogus.ok_or(e);
                }
            };
            let verdict = self.validate(name, qtype, &mut found, req).await?;
            if self.validation.enabled && req.wants(verdict.is_err()) {
                req.record_failure(|| EventKind::Validation {
                    zone: found.zone.clone(),
                    name: name.clone(),
                    qtype,
                    verdict: match &verdict {
                        Ok(Security::Secure) => Verdict::Secure,
                        Ok(Security::Insecure) => Verdict::Insecure,
                        Ok(_) => Verdict::Indeterminate,
                        Err(_) => Verdict::Bogus,
                    },
                    reason: verdict.as_ref().err().map(|b| b.to_string()),
                });
            }
            if verdict.is_ok() {
                return Ok((found, verdict));
            }
            if req.checking_disabled || retries >= MAX_BOGUS_RETRIES {
                return Ok(first_bogus.unwrap_or((found, verdict)));
            }
            debug!(%name, %qtype, server = %found.server, "bogus data; asking the zone's other servers");
            retries += 1;
            req.bogus_from.push(found.server);
            first_bogus.get_or_insert((found, verdict));
        }
    }

    /// Steps 4a and 4c: caches what the walk found, with the security the
    /// validator gave it, and either answers or continues at a CNAME target.
    fn finish(
        &self,
        name: &Name,
        qtype: RecordType,
        found: Found,
        verdict: validate::Verdict,
        req: &Request,
        chase: &mut Chase,
    ) -> Result<Finished, ResolveError> {
        let sec = self.judge(name, qtype, verdict, req)?;
        let cacheable = sec.is_some();
        let sec = sec.unwrap_or(Security::Indeterminate);
        chase.security = chase.security.and(sec);
        match found.step {
            Step::Answer {
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
                let mut chain = std::mem::take(&mut chase.records);
                chain.extend(c);
                chain.extend(rrset);
                if chain_has_loop(&chain) {
                    return Err(ResolveError::CnameLoop(name.to_string()));
                }
                Ok(Finished::Done(positive(
                    self.clamped(chain),
                    proof,
                    chase.security,
                )))
            }
            Step::Cname { chain: c, target } => {
                if cacheable {
                    self.cache_chain(&c, found.rank, sec);
                }
                chase.records.extend(c);
                check_loop(&chase.records, &target)?;
                Ok(Finished::Restart(target.to_lowercase()))
            }
            Step::Negative {
                kind,
                chain: c,
                soa,
                proof,
            } => {
                let end = chain_end(name, &c);
                let soa = if cacheable {
                    self.cache_chain(&c, found.rank, sec);
                    self.cache_negative(&end, qtype, kind, soa, proof.clone(), sec)
                } else {
                    soa
                };
                if cacheable && sec == Security::Secure && kind == NegativeKind::NxDomain {
                    self.keep_nsec_range(soa.as_ref(), &proof);
                }
                let mut chain = std::mem::take(&mut chase.records);
                chain.extend(c);
                if chain_has_loop(&chain) {
                    return Err(ResolveError::CnameLoop(name.to_string()));
                }
                let mut authorities: Vec<Record> = soa.into_iter().collect();
                authorities.extend(proof);
                Ok(Finished::Done(negative(
                    kind,
                    self.clamped(chain),
                    authorities,
                    chase.security,
                )))
            }
        }
    }

    /// Steps 2 to 4 for one name: from the closest known cut down to the
    /// zone that answers. Referrals are cached on the way; the answer is
    /// returned for the validator and [`finish`](Self::finish).
    pub(super) async fn walk(
        &self,
        qname: &Name,
        qtype: RecordType,
        req: &mut Request,
    ) -> Result<Found, ResolveError> {
        // RFC 4035 §3.1.4.1: a DS RRset is the parent's data; start above
        // the child's own cut even when that cut is cached.
        let start = if qtype == RecordType::DS && !qname.is_root() {
            qname.base_name()
        } else {
            qname.clone()
        };
        let cut = self.find_cut(&start, req).await?;
        Walk {
            resolver: self,
            qname,
            qtype,
            req,
            // A forwarder is asked the whole question: it recurses, and
            // minimising towards it would hide nothing from anyone.
            qmin: Minimisation::new(
                self.config.qname_minimisation && !cut.route.as_ref().is_some_and(|r| r.forwards()),
                cut.zone(),
            ),
            cut,
            referrals: 0,
        }
        .run()
        .await
    }

    /// Step 2: the deepest cached cut that can be queried, resolving
    /// glueless NS names where needed; the root (primed) when nothing else
    /// is known, or when the question bypasses the cache.
    async fn find_cut(&self, qname: &Name, req: &mut Request) -> Result<Cut, ResolveError> {
        // A configured zone comes before the cache (Unbound's
        // `forwards_lookup` and stub lookup in INIT_REQUEST_2): a forward
        // zone's servers answer everything below it, a stub zone's servers
        // stand in for the referral to it.
        let route = self.routes.load().lookup(qname).cloned();
        if let Some(forward) = route.as_ref().filter(|r| r.forwards()) {
            let cut = Cut::routed(forward.clone());
            record_start(req, &cut.delegation, StartSource::Forward);
            return Ok(cut);
        }
        let mut name = qname.clone();
        while !req.bypasses_cache()
            && let Some(found) = self.cache.closest_delegation(&name, false)
        {
            // Only a cut below a stub zone is news: at or above it, the
            // configured servers are the operator's word.
            if route
                .as_ref()
                .is_some_and(|stub| !stub.zone.zone_of(&found.zone) || stub.zone == found.zone)
            {
                break;
            }
            req.record(|| EventKind::Cache {
                name: name.clone(),
                qtype: RecordType::NS,
                outcome: CacheOutcome::Delegation,
                detail: Some(found.zone.clone()),
            });
            let mut cut = Cut::new(self.with_usable_addresses(found));
            if cut.delegation.has_addresses() {
                record_start(req, &cut.delegation, StartSource::Cache);
                return Ok(cut);
            }
            match self.fill_addresses(&mut cut, req).await {
                Ok(true) => {
                    record_start(req, &cut.delegation, StartSource::Cache);
                    return Ok(cut);
                }
                // A cycle through this cut: a referral from above may carry glue.
                Ok(false) | Err(ResolveError::NsCycle(_)) => {}
                Err(e) => return Err(e),
            }
            if cut.zone().is_root() {
                break;
            }
            name = cut.zone().base_name();
        }
        if let Some(stub) = route {
            let cut = Cut::routed(stub);
            record_start(req, &cut.delegation, StartSource::Stub);
            return Ok(cut);
        }
        self.prime(req).await
    }

    /// RFC 8109 priming: ask a hinted root server for `. NS` and cache the
    /// answer and its glue; falls back to the hints when priming fails.
    /// At most once per client question: a glueless lookup that finds no
    /// cached root starts from the hints instead of priming again. When
    /// every hinted server has just failed, the question fails at once.
    async fn prime(&self, req: &mut Request) -> Result<Cut, ResolveError> {
        let hints = self.hints_delegation();
        if !hints.has_addresses() {
            return Err(ResolveError::ForbiddenUpstream(".".into()));
        }
        let source = if req.bypasses_cache() {
            StartSource::Bypass
        } else {
            StartSource::Hints
        };
        if req.primed {
            record_start(req, &hints, source);
            return Ok(Cut::new(hints));
        }
        req.primed = true;
        let root = Name::root();
        let addrs = hints.addresses();
        let hints = Cut::new(hints);
        let primed = self
            .ask_servers(
                &hints,
                &addrs,
                &root,
                RecordType::NS,
                req,
                Persistence::Once,
            )
            .await;
        let cut = match primed {
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
                match self
                    .cache
                    .closest_delegation(&root, true)
                    .map(|d| self.with_usable_addresses(d))
                    .filter(Delegation::has_addresses)
                {
                    Some(primed) => {
                        record_start(req, &primed, StartSource::Primed);
                        return Ok(Cut::new(primed));
                    }
                    None => hints,
                }
            }
            Ok(_) => hints,
            Err(ResolveError::NoReachableAuthority(_)) => {
                if addrs.iter().all(|a| self.infra.is_down(*a)) {
                    return Err(ResolveError::NoReachableAuthority(".".into()));
                }
                hints
            }
            Err(e) => return Err(e),
        };
        record_start(req, &cut.delegation, source);
        Ok(cut)
    }

    fn clamped(&self, mut records: Vec<Record>) -> Vec<Record> {
        for r in &mut records {
            r.ttl = self.cache.policy().positive(r.ttl);
        }
        records
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
}

/// One question's descent, steps 3 and 4 in a loop: where it is, what it
/// may still spend, and how much of the name its next query shows.
struct Walk<'a> {
    resolver: &'a Resolver,
    qname: &'a Name,
    qtype: RecordType,
    req: &'a mut Request,
    /// The cut whose servers are asked next.
    cut: Cut,
    qmin: Minimisation,
    /// Referrals followed so far (bounded by `max_referral_depth`).
    referrals: u32,
}

impl Walk<'_> {
    /// Asks cut after cut until a server answers the full question.
    async fn run(mut self) -> Result<Found, ResolveError> {
        loop {
            let ask = self.qmin.next(self.qname, self.qtype);
            let reply = match self
                .query_targets(&ask.name, ask.rtype, ask.minimised)
                .await
            {
                Ok(reply) => reply,
                Err(ResolveError::NoReachableAuthority(_)) if ask.minimised => {
                    // RFC 9156 §2.3, relaxed: some servers fail on the names
                    // minimisation makes up (empty non-terminals, A at a
                    // cut). Ask the full name once instead.
                    debug!(qname = %self.qname, sname = %ask.name, zone = %self.cut.zone(), "minimised query failed; asking the full name");
                    self.minimise(crate::trace::MinimiseAction::FullName);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let at = Position {
                zone: self.cut.zone().clone(),
                referrals: self.referrals,
                max_referrals: self.resolver.config.max_referral_depth,
                minimised: ask.minimised,
            };
            match on_response(reply, &at) {
                Next::Descend {
                    zone,
                    ns,
                    glue,
                    proof,
                } => self.descend(zone, &ns, &glue, proof),
                Next::Minimise(action) => self.minimise(action),
                Next::Finish(found) => return Ok(found),
                Next::Fail(e) => return Err(e),
            }
        }
    }

    /// Step 3: the cut's servers, asked until one gives a usable reply
    /// ([`Resolver::ask_cut`]: infra order, retries, glueless names,
    /// the parent side).
    async fn query_targets(
        &mut self,
        sname: &Name,
        stype: RecordType,
        minimised: bool,
    ) -> Result<Reply, ResolveError> {
        self.cut.next_question();
        self.resolver
            .ask_cut(&mut self.cut, sname, stype, self.req, minimised)
            .await
    }

    fn minimise(&mut self, action: crate::trace::MinimiseAction) {
        // Giving up on minimisation follows a failure; adding a label does not.
        if self
            .req
            .wants(action == crate::trace::MinimiseAction::FullName)
        {
            self.req.record_failure(|| EventKind::Minimisation {
                zone: self.cut.zone().clone(),
                action,
            });
        }
        self.qmin.learn(action);
    }

    /// Step 4b: follows a referral one cut down: its NS set and glue are
    /// cached and its DS (or DS denial) kept for the validator.
    fn descend(&mut self, zone: Name, ns: &[Record], glue: &[Record], proof: Vec<Record>) {
        let resolver = self.resolver;
        self.referrals += 1;
        debug!(qname = %self.qname, zone = %zone, from = %self.cut.zone(), "referral");
        resolver.cache_records(ns, Rank::Referral, Security::Indeterminate);
        resolver.cache_records(glue, Rank::Additional, Security::Indeterminate);
        let ds = !proof.is_empty();
        resolver.validation.keep_referral(&zone, proof);
        let from = self.cut.zone().clone();
        self.cut = resolver.cut_from_referral(zone, ns, glue);
        self.req.record_failure(|| {
            let servers = &self.cut.delegation.servers;
            EventKind::Referral {
                from,
                zone: self.cut.zone().clone(),
                ns: servers.iter().map(|s| s.name.clone()).collect(),
                glue: servers
                    .iter()
                    .filter(|s| {
                        glue.iter()
                            .any(|g| g.name.to_lowercase() == s.name.to_lowercase())
                    })
                    .map(|s| s.name.clone())
                    .collect(),
                ds,
            }
        });
        self.qmin.enter(self.cut.zone());
    }
}

fn record_start(req: &mut Request, cut: &Delegation, source: StartSource) {
    req.record(|| EventKind::Start {
        zone: cut.zone.clone(),
        source,
        servers: cut.servers.iter().map(|s| s.name.clone()).collect(),
    });
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
