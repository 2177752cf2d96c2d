//! Aggressive use of validated NSEC records (RFC 8198): a secure NXDOMAIN
//! proves a whole range of names absent, so a later question for any name
//! in that range is answered from the range, with no upstream query.
//!
//! Only NSEC is used; NSEC3 ranges are ranges of hashes, and RFC 8198 §4
//! leaves them optional (Unbound also synthesises from NSEC only).

use std::collections::BTreeMap;
use std::sync::RwLock;

use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::denial::{closest_encloser, nsec_covers, wildcard_of};
use super::nsec;
use crate::clock::Clock;

/// More spans than this and the table starts over: a bound on memory that
/// a zone walking attacker cannot grow.
const MAX_SPANS: usize = 50_000;

/// One validated NSEC: the names between `owner` and `next` do not exist.
#[derive(Debug, Clone)]
struct Span {
    zone: Name,
    next: Name,
    /// The NSEC is owned at a delegation (NS without SOA): it is the
    /// parent's, and denies nothing at or below its owner (RFC 6840 §4.1).
    delegation: bool,
    /// The NSEC and its RRSIGs, for DO clients.
    records: Vec<Record>,
    /// The zone's SOA and its RRSIGs, for the negative answer.
    soa: Vec<Record>,
    until_ms: u64,
}

/// A synthesised NXDOMAIN: the SOA (first) and the NSEC proof, TTLs as left.
#[derive(Debug, Clone)]
pub struct Synthesised {
    pub soa: Vec<Record>,
    pub proof: Vec<Record>,
}

pub struct AggressiveNsec {
    spans: RwLock<BTreeMap<Name, Span>>,
    clock: Clock,
}

impl AggressiveNsec {
    pub fn new(clock: Clock) -> AggressiveNsec {
        AggressiveNsec {
            spans: RwLock::new(BTreeMap::new()),
            clock,
        }
    }

    /// Keeps the NSEC records of a secure negative answer from `zone` for
    /// `ttl` seconds. `proof` holds NSECs and RRSIGs, `soa` the SOA and its
    /// RRSIGs. An NSEC at a delegation is kept too, marked: it still
    /// proves the names it covers outside the delegation, as Unbound's
    /// `val_nsec_proves_name_error` lets it.
    pub fn insert(&self, zone: &Name, proof: &[Record], soa: &[Record], ttl: u32) {
        if ttl == 0 {
            return;
        }
        let until_ms = self.clock.now_ms() + u64::from(ttl) * 1000;
        let Ok(mut spans) = self.spans.write() else {
            return;
        };
        if spans.len() >= MAX_SPANS {
            spans.clear();
        }
        for r in proof {
            let Some(n) = nsec(r) else { continue };
            let types = n.type_set();
            let delegation = types.contains(RecordType::NS) && !types.contains(RecordType::SOA);
            let owner = r.name.to_lowercase();
            let records = proof
                .iter()
                .filter(|p| p.name.to_lowercase() == owner)
                .filter(|p| match &p.data {
                    RData::DNSSEC(DNSSECRData::RRSIG(sig)) => {
                        sig.input().type_covered == RecordType::NSEC
                    }
                    _ => nsec(p).is_some(),
                })
                .cloned()
                .collect();
            spans.insert(
                owner,
                Span {
                    zone: zone.clone(),
                    next: n.next_domain_name().to_lowercase(),
                    delegation,
                    records,
                    soa: soa.to_vec(),
                    until_ms,
                },
            );
        }
    }

    /// The live span whose NSEC covers `name` (strictly between its ends).
    /// A span owned at a delegation does not cover the names below it:
    /// they sort right after the delegation, but live in the child zone.
    fn covering<'m>(
        spans: &'m BTreeMap<Name, Span>,
        name: &Name,
        now_ms: u64,
    ) -> Option<(&'m Name, &'m Span)> {
        let (owner, span) = spans.range(..name.clone()).next_back()?;
        (span.until_ms > now_ms
            && span.zone.zone_of(name)
            && !(span.delegation && owner.zone_of(name))
            && nsec_covers(owner, &span.next, name))
        .then_some((owner, span))
    }

    /// An NXDOMAIN for `name` from kept spans: one covering the name and
    /// one covering the wildcard at its closest encloser (RFC 8198 §5.1).
    pub fn nxdomain(&self, name: &Name) -> Option<Synthesised> {
        let now_ms = self.clock.now_ms();
        let spans = self.spans.read().ok()?;
        let name = name.to_lowercase();
        let (owner, span) = Self::covering(&spans, &name, now_ms)?;
        let encloser = closest_encloser(&name, owner, &span.next);
        let wildcard = wildcard_of(&encloser)?;
        let (wild_owner, wild_span) = Self::covering(&spans, &wildcard, now_ms)?;
        let left = (span.until_ms.min(wild_span.until_ms) - now_ms).div_ceil(1000) as u32;
        let mut proof = span.records.clone();
        if wild_owner != owner {
            proof.extend(wild_span.records.iter().cloned());
        }
        let mut soa = span.soa.clone();
        for r in proof.iter_mut().chain(soa.iter_mut()) {
            r.ttl = r.ttl.min(left);
        }
        Some(Synthesised { soa, proof })
    }

    pub fn flush_all(&self) {
        if let Ok(mut spans) = self.spans.write() {
            spans.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::dnssec::testing::{n, nsec_record};

    #[test]
    fn a_delegations_nsec_denies_the_names_it_covers_outside_the_delegation_only() {
        let kept = AggressiveNsec::new(Clock::system());
        let proof = [
            // The parent's NSEC at the delegation child.example.
            nsec_record("child.example.", "m.example.", &[RecordType::NS]),
            // Covers *.example.
            nsec_record("example.", "a.example.", &[RecordType::SOA, RecordType::NS]),
        ];
        kept.insert(&n("example."), &proof, &[], 300);
        assert!(kept.nxdomain(&n("d.example.")).is_some(), "beside the cut");
        assert!(
            kept.nxdomain(&n("www.child.example.")).is_none(),
            "below the cut is the child's"
        );
    }
}
