//! Response classification (RFC 1034 §5.3.3 step 4, RFC 2308 §2): what an
//! authoritative server's (already scrubbed) answer means for the walk.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

/// The longest chain of CNAME/DNAME links followed inside one response.
const MAX_LINKS_IN_RESPONSE: usize = 16;

/// What a response says.
#[derive(Debug, Clone)]
pub enum Classified {
    /// The data asked for, after `chain` (CNAME/DNAME links, maybe none).
    Answer {
        chain: Vec<Record>,
        rrset: Vec<Record>,
        /// The child's own NS set from an authoritative answer's authority section.
        zone_ns: Vec<Record>,
    },
    /// A chain that leaves this response: resolve `target` next.
    Cname { chain: Vec<Record>, target: Name },
    /// A delegation to `zone`, strictly below the zone asked.
    Referral {
        zone: Name,
        ns: Vec<Record>,
        glue: Vec<Record>,
    },
    /// RFC 2308 §2.1, for the last name of `chain` (or the question).
    NxDomain {
        chain: Vec<Record>,
        soa: Option<Record>,
    },
    /// RFC 2308 §2.2.
    NoData {
        chain: Vec<Record>,
        soa: Option<Record>,
    },
    /// The server does not serve the zone it was asked for.
    Lame(&'static str),
    /// SERVFAIL, REFUSED, FORMERR, NOTIMP and the rest.
    ServerError(ResponseCode),
}

/// The DNAME target, read from its wire RDATA (hickory keeps DNAME as unknown data).
pub fn dname_target(record: &Record) -> Option<Name> {
    match &record.data {
        RData::Unknown { code, rdata } if *code == RecordType::DNAME => {
            Name::read(&mut BinDecoder::new(&rdata.anything)).ok()
        }
        _ => None,
    }
}

/// Rewrites `name` below `owner` to lie below `target` (RFC 6672 §2.2).
pub fn substitute(name: &Name, owner: &Name, target: &Name) -> Option<Name> {
    let keep = name.num_labels().checked_sub(owner.num_labels())? as usize;
    let labels: Vec<&[u8]> = name.iter().take(keep).collect();
    let prefix = Name::from_labels(labels).ok()?;
    prefix.append_domain(target).ok()
}

/// Follows qname through the answer section: CNAMEs, DNAMEs (synthesising
/// the CNAME, RFC 6672 §3.2) and finally the RRset of `qtype`.
/// Returns the chain, the name reached, and the final RRset if present.
pub fn follow_chain(
    answers: &[Record],
    qname: &Name,
    qtype: RecordType,
) -> (Vec<Record>, Name, Vec<Record>) {
    let mut chain = Vec::new();
    let mut current = qname.clone();
    for _ in 0..MAX_LINKS_IN_RESPONSE {
        let rrset: Vec<Record> = answers
            .iter()
            .filter(|r| r.name == current && (r.record_type() == qtype || qtype == RecordType::ANY))
            .cloned()
            .collect();
        if !rrset.is_empty() {
            return (chain, current, rrset);
        }
        if qtype != RecordType::DNAME
            && let Some((dname, target)) = answers.iter().find_map(|r| {
                (r.record_type() == RecordType::DNAME
                    && r.name.zone_of(&current)
                    && r.name != current)
                    .then(|| dname_target(r).map(|t| (r, t)))
                    .flatten()
            })
            && let Some(next) = substitute(&current, &dname.name, &target)
        {
            chain.push(dname.clone());
            chain.push(Record::from_rdata(
                current.clone(),
                dname.ttl,
                RData::CNAME(hickory_proto::rr::rdata::CNAME(next.clone())),
            ));
            current = next;
            continue;
        }
        if qtype != RecordType::CNAME
            && let Some(cname) = answers
                .iter()
                .find(|r| r.name == current && r.record_type() == RecordType::CNAME)
            && let RData::CNAME(target) = &cname.data
        {
            chain.push(cname.clone());
            current = target.0.clone();
            continue;
        }
        break;
    }
    (chain, current, Vec::new())
}

/// Classifies a scrubbed response from a server of `zone` to a query for
/// (`qname`, `qtype`).
pub fn classify(msg: &Message, qname: &Name, qtype: RecordType, zone: &Name) -> Classified {
    let rcode = msg.metadata.response_code;
    if rcode != ResponseCode::NoError && rcode != ResponseCode::NXDomain {
        return Classified::ServerError(rcode);
    }
    let aa = msg.metadata.authoritative;
    let (chain, end, rrset) = follow_chain(&msg.answers, qname, qtype);
    let soa = msg
        .authorities
        .iter()
        .find(|r| r.record_type() == RecordType::SOA && r.name.zone_of(&end))
        .cloned();
    let ns: Vec<Record> = msg
        .authorities
        .iter()
        .filter(|r| r.record_type() == RecordType::NS)
        .cloned()
        .collect();
    if rcode == ResponseCode::NXDomain {
        if !aa && chain.is_empty() {
            return Classified::Lame("non-authoritative NXDOMAIN");
        }
        return Classified::NxDomain { chain, soa };
    }
    if !rrset.is_empty() {
        if !aa {
            return Classified::Lame("non-authoritative answer");
        }
        let zone_ns = ns.into_iter().filter(|r| r.name.zone_of(&end)).collect();
        return Classified::Answer {
            chain,
            rrset,
            zone_ns,
        };
    }
    if !chain.is_empty() && end != *qname && !zone.zone_of(&end) {
        // The chain leads out of this server's zone: the rest is resolved separately.
        return Classified::Cname { chain, target: end };
    }
    if !chain.is_empty() && soa.is_none() && ns.is_empty() {
        return Classified::Cname { chain, target: end };
    }
    if let Some(first) = ns.first() {
        let child = first.name.to_lowercase();
        if !aa && soa.is_none() && chain.is_empty() {
            if child == *zone || !zone.zone_of(&child) {
                return Classified::Lame("upward or sideways referral");
            }
            if !child.zone_of(qname) {
                return Classified::Lame("referral for another name");
            }
            let ns: Vec<Record> = ns.into_iter().filter(|r| r.name == child).collect();
            let glue = msg.additionals.clone();
            return Classified::Referral {
                zone: child,
                ns,
                glue,
            };
        }
    }
    if !chain.is_empty() && end != *qname && soa.is_none() {
        return Classified::Cname { chain, target: end };
    }
    if !aa {
        return Classified::Lame("non-authoritative empty answer");
    }
    Classified::NoData { chain, soa }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::from_ascii(s).expect("name")
    }

    #[test]
    fn dname_substitution() {
        let got = substitute(&n("a.b.old.kr."), &n("old.kr."), &n("new.kr.")).expect("fits");
        assert_eq!(got, n("a.b.new.kr."));
    }
}
