//! The authoritative answer for one question from one zone: the algorithm of
//! RFC 1034 §4.3.2 with the later refinements a resolver meets in the wild:
//! DNAME (RFC 6672 §3.2), wildcards and empty non-terminals (RFC 4592),
//! negative answers (RFC 2308) and the RCODE after a CNAME chain (RFC 6604).

use std::collections::HashSet;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::dname::dname_target;
use super::zone::{Interruption, Zone, label_count};

/// How many CNAME/DNAME steps one answer follows inside a zone before it
/// stops and returns the chain so far.
const MAX_CHAIN: usize = 16;

/// The sections and flags of an authoritative server's reply, before it is
/// turned into a message.
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) rcode: ResponseCode,
    /// The AA bit: false only for a referral that answers nothing itself.
    pub(super) authoritative: bool,
    pub(super) answers: Vec<Record>,
    pub(super) authorities: Vec<Record>,
    pub(super) additionals: Vec<Record>,
}

impl Answer {
    fn new() -> Self {
        Self {
            rcode: ResponseCode::NoError,
            authoritative: true,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
        }
    }

    /// Ends the answer as NODATA or NXDOMAIN: the zone's SOA in authority.
    fn negative(mut self, zone: &Zone, rcode: ResponseCode) -> Self {
        self.rcode = rcode;
        self.authorities.push(zone.negative_soa());
        self
    }
}

/// Answers `qname`/`qtype` from `zone`, which must contain `qname`.
pub(super) fn answer(zone: &Zone, qname: &Name, qtype: RecordType) -> Answer {
    let mut out = Answer::new();
    let mut name = qname.clone();
    let mut visited = HashSet::new();

    for _ in 0..MAX_CHAIN {
        if !visited.insert(name.clone()) {
            // A CNAME loop: what we have is all there is.
            return out;
        }

        match zone.interruption(&name, qtype) {
            Some(Interruption::Cut(cut)) => return referral(zone, &cut, out),
            Some(Interruption::Dname(dname)) => {
                let Some(next) = synthesise_from_dname(&dname, &name, &mut out) else {
                    return out;
                };
                if !zone.contains(&next) {
                    return out;
                }
                name = next;
                continue;
            }
            None => {}
        }

        let records: Vec<Record> = match zone.node(&name) {
            Some(records) => records.to_vec(),
            None if zone.exists(&name) => return out.negative(zone, ResponseCode::NoError),
            None => match zone.wildcard_for(&name) {
                // RFC 4592 §3.3.1: the synthesised records take the query name as owner.
                Some(source) => source
                    .iter()
                    .map(|r| {
                        let mut r = r.clone();
                        r.name = name.clone();
                        r
                    })
                    .collect(),
                None => return out.negative(zone, ResponseCode::NXDomain),
            },
        };

        let follows_cname = qtype != RecordType::CNAME && qtype != RecordType::ANY;
        if follows_cname
            && let Some(cname) = records
                .iter()
                .find(|r| r.record_type() == RecordType::CNAME)
        {
            out.answers.push(cname.clone());
            let RData::CNAME(CNAME(target)) = &cname.data else {
                return out;
            };
            if !zone.contains(target) {
                return out;
            }
            name = target.clone();
            continue;
        }

        let matching: Vec<Record> = records
            .into_iter()
            .filter(|r| qtype == RecordType::ANY || r.record_type() == qtype)
            .collect();
        if matching.is_empty() {
            return out.negative(zone, ResponseCode::NoError);
        }
        let ns: Vec<Record> = matching
            .iter()
            .filter(|r| r.record_type() == RecordType::NS)
            .cloned()
            .collect();
        out.additionals.extend(zone.addresses_of(&ns));
        out.answers.extend(matching);
        return out;
    }
    out
}

/// Ends `out` with a referral to the child zone at `cut` (RFC 1034 §4.3.2
/// step 3b): its NS RRset in authority and the addresses of those servers
/// that this zone holds in additional. AA stays set only if a CNAME chain
/// already answered part of the question.
fn referral(zone: &Zone, cut: &Name, mut out: Answer) -> Answer {
    let ns = zone.rrset(cut, RecordType::NS);
    out.authoritative = !out.answers.is_empty();
    out.additionals.extend(zone.addresses_of(&ns));
    out.authorities.extend(ns);
    out
}

/// Adds the DNAME and the CNAME synthesised from it (RFC 6672 §3.2) to `out`,
/// returning the name the chain continues with. If the new name would be too
/// long, sets YXDOMAIN and returns `None`.
fn synthesise_from_dname(dname: &Record, name: &Name, out: &mut Answer) -> Option<Name> {
    out.answers.push(dname.clone());
    let Some(target) = dname_target(dname) else {
        out.rcode = ResponseCode::ServFail;
        return None;
    };
    let prefix_len = label_count(name) - label_count(&dname.name);
    let substituted = Name::from_labels(name.iter().take(prefix_len))
        .and_then(|prefix| prefix.append_name(&target));
    match substituted {
        Ok(mut next) => {
            next.set_fqdn(true);
            out.answers.push(Record::from_rdata(
                name.clone(),
                dname.ttl,
                RData::CNAME(CNAME(next.clone())),
            ));
            Some(next)
        }
        Err(_) => {
            out.rcode = ResponseCode::YXDomain;
            None
        }
    }
}
