//! Authenticated denial of existence: whether the NSEC (RFC 4035 §5.4,
//! RFC 6840 §4) or NSEC3 (RFC 5155 §8) records of a negative answer prove
//! it. The records must be verified first ([`super::verify_rrset`]); this
//! reads what they say.
//!
//! Both kinds prove one of three things: the name does not exist
//! (NXDOMAIN), the name exists without the type (NODATA, wildcard NODATA
//! included), or, for a DS query, that the delegation is unsigned. An
//! NSEC3 chain hashed with more than the configured iterations proves
//! nothing and makes the answer insecure (RFC 9276 §3.2; Unbound's and
//! Knot's limit is 150).

use data_encoding::BASE32HEX_NOPAD;
use hickory_proto::dnssec::rdata::{NSEC, NSEC3};
use hickory_proto::rr::{Name, Record, RecordType, RecordTypeSet};

use super::{nsec, nsec3};
use Proof::Proven;

/// RFC 9276 §3.2: NSEC3 chains with more iterations are treated as insecure.
pub const DEFAULT_MAX_NSEC3_ITERATIONS: u16 = 150;

/// What is to be denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The name does not exist (RCODE NXDOMAIN).
    Name,
    /// The name exists, or a wildcard matches it, without this type.
    Type(RecordType),
}

/// The verdict on a negative answer's proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// The records prove the denial.
    Proven,
    /// A DS denial by an opt-out NSEC3 span (RFC 5155 §6): the delegation
    /// may be unsigned; the answer is insecure, not secure.
    OptOut,
    /// An NSEC3 chain hashed more often than allowed: insecure (RFC 9276).
    TooManyIterations(u16),
    /// The records do not prove it: bogus (EDE 12, NSEC Missing).
    Missing(&'static str),
}

/// An NSEC or NSEC3 at a delegation (NS without SOA) speaks for the
/// parent only (RFC 6840 §4.1, RFC 5155 §8.9).
fn parent_side(types: &RecordTypeSet) -> bool {
    types.contains(RecordType::NS) && !types.contains(RecordType::SOA)
}

/// True when the bitmap of an NSEC or NSEC3 matching `name` denies
/// `qtype` there: neither the type nor a CNAME is listed, and the record
/// is from the right side of a cut (the parent's for DS, the zone's own
/// for everything else).
///
/// The root is the exception for DS: it has no parent, so its apex NSEC
/// (SOA listed, DS not) is the only record that can deny a DS there
/// (Unbound's `nsec_proves_nodata` makes the same exception).
fn bitmap_denies(types: &RecordTypeSet, qtype: RecordType, name: &Name) -> bool {
    let right_side = if qtype == RecordType::DS {
        !types.contains(RecordType::SOA) || name.is_root()
    } else {
        !parent_side(types)
    };
    right_side && !types.contains(qtype) && !types.contains(RecordType::CNAME)
}

/// `*.` + `name`.
pub(crate) fn wildcard_of(name: &Name) -> Option<Name> {
    Name::from_labels([&b"*"[..]])
        .ok()?
        .append_domain(name)
        .ok()
}

/// The longest name that `a` and `b` both lie at or below.
fn common_ancestor(a: &Name, b: &Name) -> Name {
    let mut n = a.clone();
    while !n.zone_of(b) {
        n = n.base_name();
    }
    n
}

/// True when `name` falls strictly between `owner` and `next` in canonical
/// order, the last NSEC of a zone (whose `next` is the apex) wrapping.
pub(crate) fn nsec_covers(owner: &Name, next: &Name, name: &Name) -> bool {
    if owner < next {
        owner < name && name < next
    } else {
        owner < name || name < next
    }
}

/// Proves `denied` for `qname` in `zone` from the NSEC records in `records`.
pub fn nsec_proof(qname: &Name, denied: Denied, records: &[Record], zone: &Name) -> Proof {
    let nsecs: Vec<(&Name, &NSEC)> = records
        .iter()
        .filter(|r| zone.zone_of(&r.name))
        .filter_map(|r| nsec(r).map(|n| (&r.name, n)))
        .collect();
    match denied {
        Denied::Type(qtype) => {
            if let Some((_, n)) = nsecs.iter().find(|(owner, _)| *owner == qname) {
                return if bitmap_denies(n.type_set(), qtype, qname) {
                    Proven
                } else {
                    Proof::Missing("the NSEC at the name lists the type")
                };
            }
            // RFC 6840 §4.1: a delegation's NSEC cannot speak for names below the cut.
            let Some((owner, n)) = nsecs.iter().find(|(owner, n)| {
                !(parent_side(n.type_set()) && owner.zone_of(qname))
                    && nsec_covers(owner, n.next_domain_name(), qname)
            }) else {
                return Proof::Missing("no NSEC at or covering the name");
            };
            // RFC 4035 §3.1.3.2, RFC 5155 §3 ("empty non-terminal"): an NSEC
            // covering the name whose next name lies below it shows the
            // name exists with no data of its own, so it has no type at all
            // (Unbound's `nsec_proves_nodata`, the ENT case).
            let next = n.next_domain_name();
            if next.num_labels() > qname.num_labels() && qname.zone_of(next) {
                return Proven;
            }
            // Wildcard NODATA: qname is covered, and *.closest-encloser lacks the type.
            let ce = closest_encloser(qname, owner, n.next_domain_name());
            let Some(wild) = wildcard_of(&ce) else {
                return Proof::Missing("no wildcard name");
            };
            match nsecs.iter().find(|(owner, _)| **owner == wild) {
                Some((_, w)) if bitmap_denies(w.type_set(), qtype, &wild) => Proven,
                _ => Proof::Missing("no NSEC at the wildcard without the type"),
            }
        }
        Denied::Name => {
            // RFC 6840 §4.1: a delegation's NSEC cannot deny names below the cut.
            let Some((owner, n)) = nsecs.iter().find(|(owner, n)| {
                !(parent_side(n.type_set()) && owner.zone_of(qname))
                    && nsec_covers(owner, n.next_domain_name(), qname)
            }) else {
                return Proof::Missing("no NSEC covers the name");
            };
            let ce = closest_encloser(qname, owner, n.next_domain_name());
            let Some(wild) = wildcard_of(&ce) else {
                return Proof::Missing("no wildcard name");
            };
            if nsecs
                .iter()
                .any(|(owner, n)| nsec_covers(owner, n.next_domain_name(), &wild))
            {
                Proven
            } else {
                Proof::Missing("no NSEC denies the wildcard")
            }
        }
    }
}

/// RFC 4035 §5.4 / RFC 6840 §4.4: the closest encloser of a name an NSEC
/// covers is the longer of its common ancestors with the NSEC's two ends.
pub(crate) fn closest_encloser(qname: &Name, owner: &Name, next: &Name) -> Name {
    let a = common_ancestor(qname, owner);
    let b = common_ancestor(qname, next);
    if a.num_labels() >= b.num_labels() {
        a
    } else {
        b
    }
}

/// The NSEC3 records of a response, with their owner hashes decoded.
struct Chain<'a> {
    entries: Vec<(Vec<u8>, &'a NSEC3)>,
}

impl<'a> Chain<'a> {
    /// The NSEC3 records of `zone` in `records`; a chain hashed more than
    /// `max_iterations` times, or none at all, is the verdict instead.
    fn of(records: &'a [Record], zone: &Name, max_iterations: u16) -> Result<Chain<'a>, Proof> {
        let mut entries = Vec::new();
        for r in records.iter().filter(|r| zone.zone_of(&r.name)) {
            let Some(n) = nsec3(r) else { continue };
            if n.iterations() > max_iterations {
                return Err(Proof::TooManyIterations(n.iterations()));
            }
            let Some(label) = r.name.iter().next() else {
                continue;
            };
            if let Ok(hash) = BASE32HEX_NOPAD.decode(&label.to_ascii_uppercase()) {
                entries.push((hash, n));
            }
        }
        if entries.is_empty() {
            return Err(Proof::Missing("no NSEC3 records"));
        }
        Ok(Chain { entries })
    }

    fn hash(n: &NSEC3, name: &Name) -> Option<Vec<u8>> {
        n.hash_algorithm()
            .hash(n.salt(), name, n.iterations())
            .ok()
            .map(|d| d.as_ref().to_vec())
    }

    /// The NSEC3 whose owner is the hash of `name`.
    fn matching(&self, name: &Name) -> Option<&NSEC3> {
        self.entries
            .iter()
            .find(|(owner, n)| Self::hash(n, name).as_deref() == Some(owner.as_slice()))
            .map(|(_, n)| *n)
    }

    /// The NSEC3 whose span covers the hash of `name`.
    fn covering(&self, name: &Name) -> Option<&NSEC3> {
        self.entries
            .iter()
            .find(|(owner, n)| {
                let Some(h) = Self::hash(n, name) else {
                    return false;
                };
                let next = n.next_hashed_owner_name();
                if owner.as_slice() < next {
                    owner.as_slice() < h.as_slice() && h.as_slice() < next
                } else {
                    owner.as_slice() < h.as_slice() || h.as_slice() < next
                }
            })
            .map(|(_, n)| *n)
    }

    /// RFC 5155 §8.3: the closest provable encloser of `qname` (its nearest
    /// ancestor with a matching NSEC3) and the NSEC3 covering the next
    /// closer name.
    fn closest_encloser(&self, qname: &Name, zone: &Name) -> Option<(Name, &NSEC3)> {
        let mut next_closer = qname.clone();
        let mut ce = qname.base_name();
        loop {
            if self.matching(&ce).is_some() {
                return self.covering(&next_closer).map(|n| (ce, n));
            }
            if ce == *zone || ce.is_root() {
                return None;
            }
            next_closer = ce.clone();
            ce = ce.base_name();
        }
    }
}

/// Proves `denied` for `qname` in `zone` from the NSEC3 records in
/// `records` (RFC 5155 §8.4–8.7), hashed at most `max_iterations` times.
pub fn nsec3_proof(
    qname: &Name,
    denied: Denied,
    records: &[Record],
    zone: &Name,
    max_iterations: u16,
) -> Proof {
    let chain = match Chain::of(records, zone, max_iterations) {
        Ok(chain) => chain,
        Err(verdict) => return verdict,
    };
    match denied {
        Denied::Type(qtype) => {
            if let Some(n) = chain.matching(qname) {
                // §8.5/§8.6.
                return if bitmap_denies(n.type_set(), qtype, qname) {
                    Proven
                } else {
                    Proof::Missing("the NSEC3 at the name lists the type")
                };
            }
            let Some((ce, covering)) = chain.closest_encloser(qname, zone) else {
                return Proof::Missing("no closest-encloser proof");
            };
            if qtype == RecordType::DS && covering.opt_out() {
                // §8.6: an opt-out span may hide an unsigned delegation.
                return Proof::OptOut;
            }
            // §8.7: wildcard NODATA.
            match wildcard_of(&ce).and_then(|w| chain.matching(&w)) {
                Some(w) if bitmap_denies(w.type_set(), qtype, qname) => Proven,
                // §7.1, §8.6: an opt-out span covering the next closer name
                // may hide names that have no NSEC3 (an unsigned delegation,
                // an empty non-terminal above one), whatever the type asked:
                // insecure, not bogus (Unbound's nsec3_do_prove_nodata).
                _ if covering.opt_out() => Proof::OptOut,
                _ => Proof::Missing("no NSEC3 at the wildcard without the type"),
            }
        }
        Denied::Name => {
            // §8.4: closest encloser, next closer covered, wildcard covered.
            let Some((ce, covering)) = chain.closest_encloser(qname, zone) else {
                return Proof::Missing("no closest-encloser proof");
            };
            let wildcard_denied = wildcard_of(&ce).is_some_and(|w| chain.covering(&w).is_some());
            if !wildcard_denied {
                return Proof::Missing("no NSEC3 covers the wildcard");
            }
            if covering.opt_out() {
                Proof::OptOut
            } else {
                Proven
            }
        }
    }
}

/// RFC 4035 §5.3.4, RFC 5155 §8.8: an answer expanded from a wildcard
/// (its RRSIG counts `labels` labels, fewer than `qname` has) is proven
/// only with a record showing that no closer name exists: an NSEC covering
/// `qname`, or an NSEC3 covering the next closer name.
pub fn wildcard_expansion_proof(
    qname: &Name,
    labels: u8,
    records: &[Record],
    zone: &Name,
    max_iterations: u16,
) -> Proof {
    let covered = records
        .iter()
        .filter(|r| zone.zone_of(&r.name))
        .filter_map(|r| nsec(r).map(|n| (&r.name, n)))
        .any(|(owner, n)| nsec_covers(owner, n.next_domain_name(), qname));
    if covered {
        return Proven;
    }
    if !records.iter().any(|r| nsec3(r).is_some()) {
        return Proof::Missing("no NSEC covers the name a wildcard answered");
    }
    let chain = match Chain::of(records, zone, max_iterations) {
        Ok(chain) => chain,
        Err(verdict) => return verdict,
    };
    let next_closer = qname.trim_to(usize::from(labels) + 1);
    if chain.covering(&next_closer).is_some() {
        Proven
    } else {
        Proof::Missing("no NSEC3 covers the next closer name of a wildcard answer")
    }
}

/// True when the NSEC or NSEC3 matching `name` lists NS without SOA: the
/// name is a delegation (a proven DS denial there makes it unsigned);
/// false for a name inside the zone (an empty non-terminal, a host).
pub fn is_delegation(name: &Name, records: &[Record], zone: &Name, max_iterations: u16) -> bool {
    if let Some(n) = records.iter().filter(|r| r.name == *name).find_map(nsec) {
        return parent_side(n.type_set());
    }
    Chain::of(records, zone, max_iterations)
        .ok()
        .and_then(|chain| chain.matching(name).map(|n| parent_side(n.type_set())))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::dnssec::testing::{n, nsec_record};

    #[test]
    fn an_nsec_whose_next_name_is_below_the_question_proves_an_empty_non_terminal() {
        // b.example. exists only as the parent of a.b.example.
        let proof = [nsec_record("x.example.", "a.b.example.", &[RecordType::A])];
        for qtype in [RecordType::A, RecordType::DS, RecordType::TXT] {
            assert_eq!(
                nsec_proof(
                    &n("b.example."),
                    Denied::Type(qtype),
                    &proof,
                    &n("example.")
                ),
                Proven,
                "{qtype}"
            );
        }
        // The same NSEC proves nothing about a name whose subtree it skips.
        assert_ne!(
            nsec_proof(
                &n("c.example."),
                Denied::Type(RecordType::A),
                &proof,
                &n("example.")
            ),
            Proven
        );
    }

    /// An NSEC3 chain of `zone` over `names` (flags: `opt_out`), SHA-1, no
    /// salt, no extra iterations, each name with an A record.
    fn nsec3_chain(zone: &str, names: &[&str], opt_out: bool) -> Vec<Record> {
        use hickory_proto::dnssec::Nsec3HashAlgorithm;
        let mut hashes: Vec<Vec<u8>> = names
            .iter()
            .map(|name| {
                Nsec3HashAlgorithm::SHA1
                    .hash(&[], &n(name), 0)
                    .expect("hash")
                    .as_ref()
                    .to_vec()
            })
            .collect();
        hashes.sort();
        (0..hashes.len())
            .map(|i| {
                let next = hashes[(i + 1) % hashes.len()].clone();
                let label = BASE32HEX_NOPAD.encode(&hashes[i]).to_ascii_lowercase();
                Record::from_rdata(
                    n(&format!("{label}.{zone}")),
                    300,
                    hickory_proto::rr::RData::DNSSEC(
                        hickory_proto::dnssec::rdata::DNSSECRData::NSEC3(NSEC3::new(
                            Nsec3HashAlgorithm::SHA1,
                            opt_out,
                            0,
                            Vec::new(),
                            next,
                            [RecordType::A, RecordType::RRSIG],
                        )),
                    ),
                )
            })
            .collect()
    }

    #[test]
    fn an_opt_out_span_over_the_next_closer_name_makes_a_nodata_insecure_for_any_type() {
        // ent.example. exists (above an unsigned delegation, say) but an
        // opt-out chain gives it no NSEC3: only a covering span shows.
        let zone = n("example.");
        let qname = n("ent.example.");
        for qtype in [RecordType::A, RecordType::TXT, RecordType::DS] {
            let opt_out = nsec3_chain("example.", &["example.", "a.example."], true);
            assert_eq!(
                nsec3_proof(&qname, Denied::Type(qtype), &opt_out, &zone, 150),
                Proof::OptOut,
                "{qtype}"
            );
            // Without opt-out the same shape proves nothing: bogus.
            let plain = nsec3_chain("example.", &["example.", "a.example."], false);
            assert!(
                matches!(
                    nsec3_proof(&qname, Denied::Type(qtype), &plain, &zone, 150),
                    Proof::Missing(_)
                ),
                "{qtype}"
            );
        }
    }

    #[test]
    fn the_roots_apex_nsec_denies_its_ds_and_no_other_apex_nsec_does() {
        let apex = [RecordType::NS, RecordType::SOA, RecordType::DNSKEY];
        let root = [nsec_record(".", "lab.", &apex)];
        assert_eq!(
            nsec_proof(
                &Name::root(),
                Denied::Type(RecordType::DS),
                &root,
                &Name::root()
            ),
            Proven
        );
        // Anywhere else the apex NSEC is the child's: the DS lives in the parent.
        let lab = [nsec_record("lab.", "a.lab.", &apex)];
        assert_ne!(
            nsec_proof(&n("lab."), Denied::Type(RecordType::DS), &lab, &n("lab.")),
            Proven
        );
    }

    #[test]
    fn coverage_follows_canonical_order_and_wraps_at_the_last_nsec() {
        assert!(nsec_covers(&n("a.lab."), &n("c.lab."), &n("b.lab.")));
        assert!(nsec_covers(&n("a.lab."), &n("c.lab."), &n("x.b.lab.")));
        assert!(!nsec_covers(&n("a.lab."), &n("c.lab."), &n("d.lab.")));
        assert!(nsec_covers(&n("z.lab."), &n("lab."), &n("zz.lab.")));
        assert_eq!(
            closest_encloser(&n("x.y.b.lab."), &n("a.lab."), &n("c.lab.")),
            n("lab.")
        );
    }
}
