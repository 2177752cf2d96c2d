//! The validator (RFC 4035 §5): what the walk found is checked here before
//! it is cached, as Unbound's validator module checks its iterator's
//! answers.
//!
//! Each RRset is checked against the keys of the zone that signed it. Those
//! keys come from the chain of trust, built top-down from the closest trust
//! anchor one name at a time: the DS set of each name is asked of its
//! parent's servers and checked with the parent's keys; a DS set leads to
//! the child's DNSKEY RRset, proven by it; a proven absence of DS at a
//! delegation makes everything below insecure; a proven absence at a name
//! that is no delegation keeps the parent's keys. Each verdict is kept in
//! the [`KeyCache`] for the DNSKEY (or denial) TTL, so a zone's keys are
//! proven once, not once per answer.
//!
//! Fetching a DS or DNSKEY set is a sub-query with a query budget of its own
//! inside the client question's time, as in Unbound; a fetch that fails
//! (a timeout, a dead server) fails the question with SERVFAIL but is not
//! taken as bogus.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::dnssec::rdata::{DNSSECRData, DS, RRSIG};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tracing::debug;

use super::response::{Found, Step, chain_end};
use super::{MAX_BOGUS_RETRIES, Request, ResolveError, Resolver};
use crate::cache::Expiring;
use crate::cache::{NegativeKind, Rank};
use crate::clock::Clock;
use crate::config::DnssecConfig;
use crate::dnssec::aggressive::AggressiveNsec;
use crate::dnssec::keys::{BOGUS_TTL_S, KeyCache, Trust, key_cache};
use crate::dnssec::rrsig;
use crate::dnssec::{
    AnchorError, Bogus, Denied, KeySet, Link, Proof, Security, TrustAnchors, covers, is_delegation,
    nsec_proof, nsec3_proof, verify_dnskeys, verify_rrset, wildcard_expansion_proof,
};
use crate::trace::{self, EventKind, SubReason};

/// How deep DS/DNSKEY fetches may nest (a fetch whose servers' addresses
/// need validating needs fetches of its own).
const MAX_FETCH_DEPTH: u8 = 6;
/// How long a proven "no DS here" is kept when the denial carries no SOA.
const DENIAL_TTL_S: u32 = 300;
/// Referrals' DS proofs remembered, and for how long at most.
const MAX_REFERRAL_PROOFS: u64 = 50_000;
const REFERRAL_PROOF_TTL_S: u32 = 3_600;

/// DNSSEC state shared by every resolution.
pub struct Validation {
    pub enabled: bool,
    anchors: TrustAnchors,
    /// RFC 7646: subtrees treated as unsigned.
    negative: Vec<Name>,
    pub max_iterations: u16,
    pub keys: KeyCache,
    pub aggressive: AggressiveNsec,
    /// The DS RRset (or its denial) each signed referral carried, by child
    /// zone, unchecked: the chain of trust checks it with the parent's keys
    /// before it uses it, and asks the parent itself when it does not
    /// verify. Saves the DS query Unbound also saves.
    referrals: Expiring<Arc<Vec<Record>>>,
}

impl Validation {
    pub fn from_config(config: &DnssecConfig, clock: Clock) -> Result<Validation, AnchorError> {
        let anchors = if config.validation {
            config.trust_anchors()?
        } else {
            TrustAnchors::default()
        };
        Ok(Validation {
            enabled: config.validation,
            anchors,
            // `Config::validate` has named any bad entry already.
            negative: config.negative_anchors().unwrap_or_default(),
            max_iterations: config.max_nsec3_iterations,
            keys: key_cache(clock.clone()),
            aggressive: AggressiveNsec::new(clock.clone()),
            referrals: Expiring::new(clock, MAX_REFERRAL_PROOFS, REFERRAL_PROOF_TTL_S),
        })
    }

    /// Validation turned off (benchmarks and tools without a config).
    pub fn off(clock: Clock) -> Validation {
        Validation {
            enabled: false,
            anchors: TrustAnchors::default(),
            negative: Vec::new(),
            max_iterations: crate::dnssec::denial::DEFAULT_MAX_NSEC3_ITERATIONS,
            keys: key_cache(clock.clone()),
            aggressive: AggressiveNsec::new(clock.clone()),
            referrals: Expiring::new(clock, MAX_REFERRAL_PROOFS, REFERRAL_PROOF_TTL_S),
        }
    }

    /// Keeps what a referral to `zone` said of its DS set, for its TTL.
    pub fn keep_referral(&self, zone: &Name, proof: Vec<Record>) {
        if !self.enabled || proof.is_empty() {
            return;
        }
        let ttl = proof.iter().map(|r| r.ttl).min().unwrap_or(0);
        self.referrals.insert(zone.clone(), Arc::new(proof), ttl);
    }

    /// The live DS proof a referral to `zone` carried.
    fn referral_proof(&self, zone: &Name) -> Option<Vec<Record>> {
        self.referrals.get(zone).map(|proof| proof.as_ref().clone())
    }

    /// Forgets proven keys and NSEC ranges (an admin's cache flush).
    pub fn flush(&self) {
        self.keys.flush_all();
        self.aggressive.flush_all();
        self.referrals.flush_all();
    }
}

/// A validation's verdict: the status, or why the data is bogus.
pub type Verdict = Result<Security, Bogus>;

/// What the parent's zone says of a child's DS set.
enum Evidence<'a> {
    /// The DS RRset and its RRSIGs, and the rank to cache it at.
    Ds(&'a mut Vec<Record>, Rank),
    /// NSEC/NSEC3 records denying it, their RRSIGs, and how long a proven
    /// denial stands.
    Denial(&'a mut [Record], u32),
}

/// What checking a list of RRsets found.
struct Checked {
    security: Security,
    /// Wildcard expansions: owner, the RRSIG's label count, the signer's keys.
    wildcards: Vec<(Name, u8, Arc<KeySet>)>,
}

/// Seconds since the epoch, as RRSIG validity windows count them.
fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

/// The (owner, type) of each RRset in `records`, RRSIGs aside, in order.
fn rrsets(records: &[Record]) -> Vec<(Name, RecordType)> {
    let mut sets: Vec<(Name, RecordType)> = Vec::new();
    for r in records {
        if r.record_type() == RecordType::RRSIG {
            continue;
        }
        let key = (r.name.to_lowercase(), r.record_type());
        if !sets.contains(&key) {
            sets.push(key);
        }
    }
    sets
}

/// Caps the TTL of the RRset (owner, rtype) and its RRSIGs at `ttl`
/// (RFC 4035 §5.3.3).
fn cap_ttl(records: &mut [Record], owner: &Name, rtype: RecordType, ttl: u32) {
    for r in records.iter_mut() {
        if r.name == *owner && (r.record_type() == rtype || covers(r, rtype)) {
            r.ttl = r.ttl.min(ttl);
        }
    }
}

/// The signer named by the RRSIGs over (owner, rtype) that a server of
/// `zone` may speak for: `zone` or below, at or above the owner.
fn signer_of(records: &[Record], owner: &Name, rtype: RecordType, zone: &Name) -> Option<Name> {
    records
        .iter()
        .filter(|r| r.name == *owner)
        .filter_map(rrsig)
        .filter(|s| s.input().type_covered == rtype)
        .map(|s| s.input().signer_name.to_lowercase())
        .find(|signer| zone.zone_of(signer) && signer.zone_of(owner))
}

impl Resolver {
    /// Validates what the walk found for (qname, qtype), capping the TTLs
    /// of what verifies. `Err` only when a fetch of keys failed.
    pub(super) async fn validate(
        &self,
        qname: &Name,
        qtype: RecordType,
        found: &mut Found,
        req: &mut Request,
    ) -> Result<Verdict, ResolveError> {
        if !self.validation.enabled {
            return Ok(Ok(Security::Indeterminate));
        }
        let zone = found.zone.clone();
        let max_iterations = self.validation.max_iterations;
        // RFC 4035 §2.2: RRSIGs are not signed themselves, so an answer of
        // RRSIGs alone (qtype RRSIG) proves nothing and never gets AD; as
        // in Unbound, it is returned unvalidated. A negative answer for
        // the type is a denial like any other.
        if qtype == RecordType::RRSIG && matches!(found.step, Step::Answer { .. }) {
            return Ok(Ok(Security::Indeterminate));
        }
        match &mut found.step {
            Step::Answer {
                chain,
                rrset,
                proof,
            } => {
                let linked = match self.check_rrsets(chain, &zone, false, req).await? {
                    Ok(c) => c.security,
                    Err(bogus) => return Ok(Err(bogus)),
                };
                // A CNAME question at a name a DNAME rewrites: the answer is
                // the CNAME synthesised from the DNAME in the chain.
                let synthesised = chain.iter().any(|r| r.record_type() == RecordType::DNAME);
                let answered = match self.check_rrsets(rrset, &zone, synthesised, req).await? {
                    Ok(c) => c,
                    Err(bogus) => return Ok(Err(bogus)),
                };
                let mut security = linked.and(answered.security);
                for (owner, labels, keys) in answered.wildcards {
                    if let Err(bogus) = check_denial_sigs(proof, &keys) {
                        return Ok(Err(bogus));
                    }
                    match wildcard_expansion_proof(
                        &owner,
                        labels,
                        proof,
                        &keys.zone,
                        max_iterations,
                    ) {
                        Proof::Proven => {}
                        Proof::OptOut | Proof::TooManyIterations(_) => {
                            security = security.and(Security::Insecure);
                        }
                        Proof::Missing(why) => {
                            return Ok(Err(Bogus::NsecMissing(owner.to_string(), why)));
                        }
                    }
                }
                Ok(Ok(security))
            }
            Step::Cname { chain, .. } => Ok(self
                .check_rrsets(chain, &zone, false, req)
                .await?
                .map(|c| c.security)),
            Step::Negative {
                kind,
                chain,
                soa,
                proof,
            } => {
                let linked = match self.check_rrsets(chain, &zone, false, req).await? {
                    Ok(c) => c.security,
                    Err(bogus) => return Ok(Err(bogus)),
                };
                let end = chain_end(qname, chain);
                let denied = match kind {
                    NegativeKind::NxDomain => Denied::Name,
                    NegativeKind::NoData => Denied::Type(qtype),
                };
                let denial = self
                    .check_denial(&end, denied, soa, proof, &zone, req)
                    .await?;
                Ok(denial.map(|s| s.and(linked)))
            }
        }
    }

    /// Turns a verdict into what the resolution does: the status to cache
    /// the data with, `None` for bogus data a CD client gets uncached, or
    /// the SERVFAIL for bogus data.
    pub(super) fn judge(
        &self,
        name: &Name,
        qtype: RecordType,
        verdict: Verdict,
        req: &Request,
    ) -> Result<Option<Security>, ResolveError> {
        match verdict {
            Ok(security) => {
                if self.validation.enabled {
                    self.metrics.validation(security.label());
                }
                Ok(Some(security))
            }
            Err(bogus) => {
                self.metrics.validation("bogus");
                debug!(%name, %qtype, reason = %bogus, "bogus");
                if req.checking_disabled {
                    Ok(None)
                } else {
                    Err(ResolveError::Bogus(bogus))
                }
            }
        }
    }

    /// RFC 8198: an NXDOMAIN for `name` from validated NSEC ranges, as the
    /// authority section (SOA first), with no upstream query.
    pub(super) fn aggressive_nxdomain(&self, name: &Name, req: &Request) -> Option<Vec<Record>> {
        if !self.validation.enabled || req.checking_disabled {
            return None;
        }
        let synthesised = self.validation.aggressive.nxdomain(name)?;
        self.metrics.aggressive_nsec();
        let mut authorities = synthesised.soa;
        authorities.extend(synthesised.proof);
        Some(authorities)
    }

    /// Keeps the NSEC ranges of a secure NXDOMAIN for [`Self::aggressive_nxdomain`].
    pub(super) fn keep_nsec_range(&self, soa: Option<&Record>, proof: &[Record]) {
        let Some(soa) = soa else { return };
        if !proof.iter().any(|r| r.record_type() == RecordType::NSEC) {
            return;
        }
        let mut with_sigs = vec![soa.clone()];
        with_sigs.extend(
            proof
                .iter()
                .filter(|r| r.name == soa.name && covers(r, RecordType::SOA))
                .cloned(),
        );
        self.validation
            .aggressive
            .insert(&soa.name.to_lowercase(), proof, &with_sigs, soa.ttl);
    }

    /// Checks every RRset in `records` (RRSIGs among them) from a server of
    /// `zone`, capping the TTLs of those that verify. `dname_checked`: a
    /// DNAME checked with the chain before these records synthesised their
    /// CNAME.
    async fn check_rrsets(
        &self,
        records: &mut [Record],
        zone: &Name,
        dname_checked: bool,
        req: &mut Request,
    ) -> Result<Result<Checked, Bogus>, ResolveError> {
        let now = unix_now();
        let has_dname =
            dname_checked || records.iter().any(|r| r.record_type() == RecordType::DNAME);
        let mut checked = Checked {
            security: Security::Secure,
            wildcards: Vec::new(),
        };
        for (owner, rtype) in rrsets(records) {
            let sigs: Vec<RRSIG> = records
                .iter()
                .filter(|r| r.name == owner)
                .filter_map(rrsig)
                .filter(|s| s.input().type_covered == rtype)
                .cloned()
                .collect();
            // RFC 6672 §5.3.1: a CNAME synthesised from a DNAME is unsigned;
            // the DNAME's signature speaks for it.
            if rtype == RecordType::CNAME && has_dname && sigs.is_empty() {
                continue;
            }
            // Unsigned data: the chain of trust down to the owner says
            // whether it had to be signed.
            let signer = signer_of(records, &owner, rtype, zone).unwrap_or_else(|| owner.clone());
            let keys = match self.key_set(&signer, req).await? {
                Err(bogus) => return Ok(Err(bogus)),
                Ok(None) => {
                    checked.security = checked.security.and(Security::Indeterminate);
                    continue;
                }
                Ok(Some(Trust::Insecure)) => {
                    checked.security = checked.security.and(Security::Insecure);
                    continue;
                }
                Ok(Some(Trust::Secure(keys))) => keys,
            };
            match verify_rrset(&owner, rtype, records, records, &keys, now) {
                Ok(ttl) => cap_ttl(records, &owner, rtype, ttl),
                Err(bogus) => return Ok(Err(bogus)),
            }
            let labels = owner.num_labels();
            if let Some(wild) = sigs.iter().map(|s| s.input().num_labels).max()
                && wild < labels
            {
                checked.wildcards.push((owner, wild, keys));
            }
        }
        Ok(Ok(checked))
    }

    /// Checks a negative answer for `end`: the SOA and the NSEC/NSEC3 sets
    /// verify with the zone's keys, and they prove `denied`.
    async fn check_denial(
        &self,
        end: &Name,
        denied: Denied,
        soa: &mut Option<Record>,
        proof: &mut [Record],
        zone: &Name,
        req: &mut Request,
    ) -> Result<Verdict, ResolveError> {
        let signer = proof
            .iter()
            .filter_map(rrsig)
            .map(|s| s.input().signer_name.to_lowercase())
            .find(|signer| zone.zone_of(signer) && signer.zone_of(end))
            .or_else(|| soa.as_ref().map(|s| s.name.to_lowercase()))
            .unwrap_or_else(|| end.clone());
        let keys = match self.key_set(&signer, req).await? {
            Err(bogus) => return Ok(Err(bogus)),
            Ok(None) => return Ok(Ok(Security::Indeterminate)),
            Ok(Some(Trust::Insecure)) => return Ok(Ok(Security::Insecure)),
            Ok(Some(Trust::Secure(keys))) => keys,
        };
        let now = unix_now();
        if let Some(soa) = soa.as_mut() {
            let owner = soa.name.clone();
            let verified = verify_rrset(
                &owner,
                RecordType::SOA,
                std::slice::from_ref(&*soa),
                proof,
                &keys,
                now,
            );
            match verified {
                Ok(ttl) => soa.ttl = soa.ttl.min(ttl),
                Err(bogus) => return Ok(Err(bogus)),
            }
        }
        if let Err(bogus) = check_denial_sigs(proof, &keys) {
            return Ok(Err(bogus));
        }
        Ok(match self.denial_proof(end, denied, proof, &keys.zone) {
            Proof::Proven => Ok(Security::Secure),
            Proof::OptOut | Proof::TooManyIterations(_) => Ok(Security::Insecure),
            Proof::Missing(why) => Err(Bogus::NsecMissing(end.to_string(), why)),
        })
    }

    /// What the NSEC or NSEC3 records in `proof` prove about `name`.
    fn denial_proof(&self, name: &Name, denied: Denied, proof: &[Record], zone: &Name) -> Proof {
        if proof.iter().any(|r| r.record_type() == RecordType::NSEC) {
            nsec_proof(name, denied, proof, zone)
        } else if proof.iter().any(|r| r.record_type() == RecordType::NSEC3) {
            nsec3_proof(name, denied, proof, zone, self.validation.max_iterations)
        } else {
            Proof::Missing("no NSEC or NSEC3 records")
        }
    }

    /// What the chain of trust says about the zone `name` is signed by:
    /// `None` when no trust anchor is above it (indeterminate).
    async fn key_set(
        &self,
        name: &Name,
        req: &mut Request,
    ) -> Result<Result<Option<Trust>, Bogus>, ResolveError> {
        let name = name.to_lowercase();
        let validation = &self.validation;
        if validation.negative.iter().any(|n| n.zone_of(&name))
            || self.routes.load().unvalidated(&name)
        {
            return Ok(Ok(Some(Trust::Insecure)));
        }
        let Some(anchor) = validation.anchors.closest(&name).cloned() else {
            return Ok(Ok(None));
        };
        if let Some(known) = validation.keys.get(&name) {
            return Ok(known.map(Some));
        }
        // Start from the deepest name on the way whose verdict is known.
        let mut at = name.clone();
        let mut verdict = None;
        while at.num_labels() > anchor.num_labels() {
            at = at.base_name();
            if let Some(known) = validation.keys.get(&at) {
                verdict = Some(known);
                break;
            }
        }
        let mut verdict = match verdict {
            Some(known) => known,
            None => {
                at = anchor.clone();
                let (trust, ttl) = self.anchor_trust(&anchor, req).await?;
                validation.keys.insert(anchor.clone(), trust.clone(), ttl);
                record_trust(req, &anchor, &trust);
                trust
            }
        };
        while at != name {
            let parent = match verdict {
                Err(bogus) => return Ok(Err(bogus)),
                Ok(Trust::Insecure) => {
                    validation
                        .keys
                        .insert(name.clone(), Ok(Trust::Insecure), DENIAL_TTL_S);
                    return Ok(Ok(Some(Trust::Insecure)));
                }
                Ok(Trust::Secure(keys)) => keys,
            };
            let next = name.trim_to(at.num_labels() as usize + 1);
            let (trust, ttl) = self.child_trust(&next, &parent, req).await?;
            validation.keys.insert(next.clone(), trust.clone(), ttl);
            record_trust(req, &next, &trust);
            verdict = trust;
            at = next;
        }
        Ok(verdict.map(Some))
    }

    /// The keys of an anchored zone, proven by its anchors (RFC 4035 §5.2).
    async fn anchor_trust(
        &self,
        anchor: &Name,
        req: &mut Request,
    ) -> Result<(Result<Trust, Bogus>, u32), ResolveError> {
        let ds: Vec<DS> = self
            .validation
            .anchors
            .ds
            .iter()
            .filter(|(n, _)| n == anchor)
            .map(|(_, d)| d.clone())
            .collect();
        let keys: Vec<_> = self
            .validation
            .anchors
            .keys
            .iter()
            .filter(|(n, _)| n == anchor)
            .map(|(_, k)| k.clone())
            .collect();
        Ok(self
            .proven_keys(anchor, &ds, &keys, req)
            .await?
            .unwrap_or_else(|| (Err(Bogus::DnskeyMissing(anchor.to_string())), BOGUS_TTL_S)))
    }

    /// Fetches `zone`'s DNSKEY set and proves it from `ds` or
    /// `anchor_keys`. A set that does not prove is asked again of the
    /// zone's other servers, leaving out the one that sent it (as data is,
    /// see [`Resolver::walk_and_validate`]); when none is left, the first
    /// verdict stands. `None`: no DNSKEY set came back at all.
    async fn proven_keys(
        &self,
        zone: &Name,
        ds: &[DS],
        anchor_keys: &[hickory_proto::dnssec::rdata::DNSKEY],
        req: &mut Request,
    ) -> Result<Option<(Result<Trust, Bogus>, u32)>, ResolveError> {
        let mut first_bogus = None;
        for _ in 0..=MAX_BOGUS_RETRIES {
            let found = match self.fetch(zone, RecordType::DNSKEY, req).await {
                Ok(found) => found,
                Err(e) => return first_bogus.map_or(Err(e), |b| Ok(Some(b))),
            };
            let Step::Answer { rrset, .. } = found.step else {
                return Ok(first_bogus);
            };
            let proven = self.prove_keys(zone, &rrset, ds, anchor_keys, found.rank);
            if proven.0.is_ok() || req.checking_disabled {
                return Ok(Some(proven));
            }
            debug!(%zone, server = %found.server, "DNSKEY set does not prove; asking the zone's other servers");
            req.bogus_from.push(found.server);
            first_bogus.get_or_insert(proven);
        }
        Ok(first_bogus)
    }

    /// A zone's DNSKEY RRset against its DS set or anchors; caches it when proven.
    fn prove_keys(
        &self,
        zone: &Name,
        dnskeys: &[Record],
        ds: &[DS],
        anchor_keys: &[hickory_proto::dnssec::rdata::DNSKEY],
        rank: Rank,
    ) -> (Result<Trust, Bogus>, u32) {
        match verify_dnskeys(zone, dnskeys, dnskeys, ds, anchor_keys, unix_now()) {
            Ok(Link::Secure(keys)) => {
                let ttl = keys.ttl;
                let mut records = dnskeys.to_vec();
                cap_ttl(&mut records, zone, RecordType::DNSKEY, ttl);
                self.cache_records(&records, rank, Security::Secure);
                (Ok(Trust::Secure(Arc::new(keys))), ttl)
            }
            Ok(Link::Insecure) => (Ok(Trust::Insecure), DENIAL_TTL_S),
            Err(bogus) => (Err(bogus), BOGUS_TTL_S),
        }
    }

    /// The link from `parent`'s proven keys to the name `next` one label
    /// below: its DS set and keys, a proven unsigned delegation, or (no
    /// delegation there) the parent's keys again. What the referral to
    /// `next` carried is tried first; the parent is asked only when that
    /// is missing or does not verify.
    async fn child_trust(
        &self,
        next: &Name,
        parent: &Arc<KeySet>,
        req: &mut Request,
    ) -> Result<(Result<Trust, Bogus>, u32), ResolveError> {
        if let Some(mut proof) = self.validation.referral_proof(next) {
            let evidence = if proof.iter().any(|r| r.record_type() == RecordType::DS) {
                Evidence::Ds(&mut proof, Rank::Referral)
            } else {
                let ttl = proof.iter().map(|r| r.ttl).min().unwrap_or(0);
                Evidence::Denial(&mut proof, ttl)
            };
            match self.link_from(next, parent, evidence, req).await? {
                Ok((Err(Bogus::NsecMissing(..)), _)) | Err(_) => {
                    debug!(zone = %next, "the referral's DS proof does not hold; asking the parent");
                }
                Ok(link) => return Ok(link),
            }
        }
        // A DS set (or denial) whose signatures fail is asked again of the
        // parent's other servers, as data is.
        let mut first_bogus = None;
        for _ in 0..=MAX_BOGUS_RETRIES {
            let mut found = match self.fetch(next, RecordType::DS, req).await {
                Ok(found) => found,
                Err(e) => return first_bogus.ok_or(e),
            };
            let server = found.server;
            match self.ds_link(next, parent, &mut found, req).await? {
                Ok(link) => return Ok(link),
                Err(bogus) if req.checking_disabled => return Ok((Err(bogus), BOGUS_TTL_S)),
                Err(bogus) => {
                    debug!(zone = %next, %server, "DS does not verify; asking the parent's other servers");
                    req.bogus_from.push(server);
                    first_bogus.get_or_insert((Err(bogus), BOGUS_TTL_S));
                }
            }
        }
        Ok(first_bogus
            .unwrap_or_else(|| (Err(Bogus::DnskeyMissing(next.to_string())), BOGUS_TTL_S)))
    }

    /// What a DS answer from the parent says of `next`: `Err` when its
    /// signatures do not verify with the parent's keys.
    async fn ds_link(
        &self,
        next: &Name,
        parent: &Arc<KeySet>,
        found: &mut Found,
        req: &mut Request,
    ) -> Result<Result<(Result<Trust, Bogus>, u32), Bogus>, ResolveError> {
        let evidence = match &mut found.step {
            Step::Answer { rrset, .. }
                if rrset.iter().any(|r| r.record_type() == RecordType::DS) =>
            {
                Evidence::Ds(rrset, found.rank)
            }
            Step::Negative {
                kind: NegativeKind::NoData,
                soa,
                proof,
                ..
            } => {
                let ttl = soa.as_ref().map_or(DENIAL_TTL_S, |s| match &s.data {
                    RData::SOA(data) => s.ttl.min(data.minimum),
                    _ => s.ttl,
                });
                Evidence::Denial(proof, ttl)
            }
            // No such name, or a CNAME there: no zone starts at it, and
            // data claiming to be signed by one will not verify.
            _ => {
                return Ok(Ok((
                    Ok(Trust::Secure(parent.clone())),
                    DENIAL_TTL_S.min(parent.ttl),
                )));
            }
        };
        self.link_from(next, parent, evidence, req).await
    }

    /// What a DS RRset, or its denial, from `parent`'s zone says of `next`,
    /// with how long the verdict stands. `Err` when its signatures do not
    /// verify with the parent's keys.
    async fn link_from(
        &self,
        next: &Name,
        parent: &Arc<KeySet>,
        evidence: Evidence<'_>,
        req: &mut Request,
    ) -> Result<Result<(Result<Trust, Bogus>, u32), Bogus>, ResolveError> {
        let now = unix_now();
        match evidence {
            Evidence::Ds(rrset, rank) => {
                let ttl = match verify_rrset(next, RecordType::DS, rrset, rrset, parent, now) {
                    Ok(ttl) => ttl,
                    Err(bogus) => return Ok(Err(bogus)),
                };
                cap_ttl(rrset, next, RecordType::DS, ttl);
                self.cache_records(rrset, rank, Security::Secure);
                let ds: Vec<DS> = rrset
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::DNSSEC(DNSSECRData::DS(d)) => Some(d.clone()),
                        _ => None,
                    })
                    .collect();
                Ok(Ok(match self.proven_keys(next, &ds, &[], req).await? {
                    Some((trust, keys_ttl)) => (trust, keys_ttl.min(ttl)),
                    // No keys where a DS set says there are: unless the DS
                    // set is all unsupported algorithms, the zone is bogus.
                    None => match verify_dnskeys(next, &[], &[], &ds, &[], now) {
                        Ok(Link::Insecure) => (Ok(Trust::Insecure), ttl),
                        _ => (Err(Bogus::DnskeyMissing(next.to_string())), BOGUS_TTL_S),
                    },
                }))
            }
            Evidence::Denial(proof, ttl) => {
                if let Err(bogus) = check_denial_sigs(proof, parent) {
                    return Ok(Err(bogus));
                }
                let max = self.validation.max_iterations;
                Ok(Ok(
                    match self.denial_proof(next, Denied::Type(RecordType::DS), proof, &parent.zone)
                    {
                        Proof::Proven if is_delegation(next, proof, &parent.zone, max) => {
                            debug!(zone = %next, "unsigned delegation");
                            (Ok(Trust::Insecure), ttl)
                        }
                        Proof::Proven => (Ok(Trust::Secure(parent.clone())), ttl.min(parent.ttl)),
                        Proof::OptOut | Proof::TooManyIterations(_) => (Ok(Trust::Insecure), ttl),
                        Proof::Missing(why) => (
                            Err(Bogus::NsecMissing(format!("{next} DS"), why)),
                            BOGUS_TTL_S,
                        ),
                    },
                ))
            }
        }
    }

    /// Walks for a DS or DNSKEY set as a sub-query of `req`'s question.
    async fn fetch(
        &self,
        name: &Name,
        rtype: RecordType,
        req: &mut Request,
    ) -> Result<Found, ResolveError> {
        if req.fetch_depth >= MAX_FETCH_DEPTH {
            return Err(ResolveError::BudgetQueries);
        }
        let reason = if rtype == RecordType::DS {
            SubReason::Ds
        } else {
            SubReason::Dnskey
        };
        req.begin(reason, name, rtype);
        let mut sub = req.sub_request(&self.config);
        let found = Box::pin(self.walk(name, rtype, &mut sub)).await;
        req.rejoin(sub);
        if req.tracing() {
            let outcome = match &found {
                Ok(found) => match &found.step {
                    Step::Answer { rrset, .. } => format!("{} records", rrset.len()),
                    Step::Cname { target, .. } => format!("CNAME to {target}"),
                    Step::Negative { kind, .. } => format!("{kind:?}"),
                },
                Err(e) => e.to_string(),
            };
            req.end(reason, name, rtype, &outcome);
        }
        found
    }
}

/// The trace's note of what the chain of trust proved about `zone`'s keys.
fn record_trust(req: &mut Request, zone: &Name, trust: &Result<Trust, Bogus>) {
    if !req.wants(trust.is_err()) {
        return;
    }
    req.record_failure(|| EventKind::Validation {
        zone: zone.clone(),
        name: zone.clone(),
        qtype: RecordType::DNSKEY,
        verdict: match trust {
            Ok(Trust::Secure(_)) => trace::Verdict::Secure,
            Ok(Trust::Insecure) => trace::Verdict::Insecure,
            Err(_) => trace::Verdict::Bogus,
        },
        reason: trust.as_ref().err().map(|b| b.to_string()),
    });
}

/// Verifies each NSEC and NSEC3 RRset in `proof` with `keys`, capping TTLs.
fn check_denial_sigs(proof: &mut [Record], keys: &KeySet) -> Result<(), Bogus> {
    let now = unix_now();
    for (owner, rtype) in rrsets(proof) {
        if matches!(rtype, RecordType::NSEC | RecordType::NSEC3) {
            let ttl = verify_rrset(&owner, rtype, proof, proof, keys, now)?;
            cap_ttl(proof, &owner, rtype, ttl);
        }
    }
    Ok(())
}
