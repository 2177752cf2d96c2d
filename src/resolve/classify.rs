//! Response classification (RFC 1034 §5.3.3 step 4, RFC 2308 §2): what an
//! authoritative server's (already scrubbed) answer means for the walk.
//!
//! The rules follow Unbound's `iter_resptype.c`, because real servers are
//! imperfect and Unbound's reading of them is the one the Internet has been
//! tuned against:
//!
//! - An answer, NXDOMAIN or NODATA is believed whatever AA says: many
//!   authoritative servers (load balancers, old appliances) clear it. It is
//!   cached at the non-authoritative rank.
//! - RA=1 with AA=0 and no data is a recursive resolver answering from its
//!   cache ("recursive-lame"). Its NXDOMAIN, or its NODATA with an SOA, is
//!   tried last and used only when no other server of the zone gives an
//!   answer; an empty answer without SOA says nothing and is lame.
//! - An NS set below the zone in the authority section is a referral,
//!   whatever AA says.
//! - An empty answer without SOA whose authority holds the zone's own NS
//!   set is that zone's NODATA when AA is set (RFC 2308 §2.2 wants the SOA
//!   too, but the server has said it is authoritative), and lame without
//!   AA: a server answering from a cached delegation, or with RA=1 a
//!   recursive resolver with nothing to say. Neither of those is ever the
//!   answer (Unbound's THROWAWAY and REC_LAME).
//! - An empty answer whose authority holds an NS set above the zone (`. NS`
//!   is the classic) is lame, AA or not.
//! - A message with nothing in it at all is tried at the other servers
//!   first (Unbound retries it too) and believed only as a last resort.
//!
//! Knot Resolver differs in method: its `iterate.c` first re-derives AA
//! from the packet and then reads the packet as authoritative or not.
//! taproot keeps Unbound's rule-by-rule reading, because it names each
//! misbehaviour it tolerates, and those names are what the logs and the
//! `taproot_upstream_queries_total{result}` labels show an operator.

use hickory_proto::dnssec::rdata::DNSSECRData;
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
        /// NSEC/NSEC3 records and their RRSIGs (a wildcard answer's proof).
        proof: Vec<Record>,
    },
    /// A chain that leaves this response: resolve `target` next.
    Cname { chain: Vec<Record>, target: Name },
    /// A delegation to `zone`, strictly below the zone asked.
    Referral {
        zone: Name,
        ns: Vec<Record>,
        glue: Vec<Record>,
        /// The child's DS RRset, or the NSEC/NSEC3 records denying it,
        /// with their RRSIGs: unchecked, for the validator to try before
        /// it asks the parent for the DS set itself.
        proof: Vec<Record>,
    },
    /// RFC 2308 §2.1, for the last name of `chain` (or the question).
    NxDomain {
        chain: Vec<Record>,
        soa: Option<Record>,
        /// NSEC/NSEC3 records and the RRSIGs over them and the SOA.
        proof: Vec<Record>,
    },
    /// RFC 2308 §2.2.
    NoData {
        chain: Vec<Record>,
        soa: Option<Record>,
        proof: Vec<Record>,
    },
    /// An answer not to be believed while another server of the zone may
    /// give a better one: a recursive resolver's cached reply, or a message
    /// with nothing in it. Used when every other server failed.
    LastResort {
        answer: Box<Classified>,
        why: &'static str,
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
    let mut chain: Vec<Record> = Vec::new();
    let mut current = qname.clone();
    // The DNAME above `current`, if one applies (RFC 6672 §2.2), and the
    // name it rewrites `current` to.
    let dname_for = |current: &Name| {
        answers
            .iter()
            .find_map(|r| {
                (r.record_type() == RecordType::DNAME
                    && r.name.zone_of(current)
                    && r.name != *current)
                    .then(|| dname_target(r).map(|t| (r, t)))
                    .flatten()
            })
            .and_then(|(dname, target)| {
                substitute(current, &dname.name, &target).map(|next| (dname, next))
            })
    };
    // The CNAME a DNAME synthesises for `current`; the DNAME joins the
    // chain once, however often it applies (RFC 2181 §5: no duplicate
    // records in a section; a repeated one would also break its RRset's
    // signature check, RFC 4034 §6.3).
    let synthesise = |chain: &mut Vec<Record>, current: &Name, dname: &Record, next: &Name| {
        if !chain.contains(dname) {
            chain.push(dname.clone());
        }
        Record::from_rdata(
            current.clone(),
            dname.ttl,
            RData::CNAME(hickory_proto::rr::rdata::CNAME(next.clone())),
        )
    };
    for _ in 0..MAX_LINKS_IN_RESPONSE {
        // RFC 6672 §3.2: a CNAME question at a name a DNAME rewrites is
        // answered by the synthesised CNAME; it is not chased.
        if qtype == RecordType::CNAME
            && let Some((dname, next)) = dname_for(&current)
        {
            let cname = synthesise(&mut chain, &current, dname, &next);
            return (chain, current, vec![cname]);
        }
        let rrset: Vec<Record> = answers
            .iter()
            .filter(|r| r.name == current && (r.record_type() == qtype || qtype == RecordType::ANY))
            .cloned()
            .collect();
        if !rrset.is_empty() {
            return (chain, current, rrset);
        }
        if qtype != RecordType::DNAME
            && let Some((dname, next)) = dname_for(&current)
        {
            let cname = synthesise(&mut chain, &current, dname, &next);
            chain.push(cname);
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
    classify_reply(msg, qname, qtype, zone, false)
}

/// Classifies a forwarder's reply to a query with RD=1 for a name in the
/// forward zone `zone`. Its RA=1 without AA is what recursion looks like,
/// not a cache answering for a zone it does not serve, so it is read as if
/// authoritative for the forward zone (Unbound's `rdset` in
/// `response_type_from_server`); and a forwarder that sends a referral has
/// not recursed: that server has failed the question.
pub fn classify_forwarded(
    msg: &Message,
    qname: &Name,
    qtype: RecordType,
    zone: &Name,
) -> Classified {
    match classify_reply(msg, qname, qtype, zone, true) {
        Classified::Referral { .. } => Classified::Lame("a forwarder answered with a referral"),
        other => other,
    }
}

fn classify_reply(
    msg: &Message,
    qname: &Name,
    qtype: RecordType,
    zone: &Name,
    forwarded: bool,
) -> Classified {
    let rcode = msg.metadata.response_code;
    if rcode != ResponseCode::NoError && rcode != ResponseCode::NXDomain {
        return Classified::ServerError(rcode);
    }
    let aa = msg.metadata.authoritative || forwarded;
    // "We do our own recursion, thank you": a resolver's cache, not the zone.
    let recursive = msg.metadata.recursion_available && !aa;
    let (mut chain, end, mut rrset) = follow_chain(&msg.answers, qname, qtype);
    let chain_sigs = signatures(&msg.answers, &chain);
    chain.extend(chain_sigs);
    let rrset_sigs = signatures(&msg.answers, &rrset);
    rrset.extend(rrset_sigs);
    let proof = denial_records(&msg.authorities);
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
        let answer = Classified::NxDomain { chain, soa, proof };
        if recursive {
            return last_resort(answer, "recursive-lame NXDOMAIN");
        }
        return answer;
    }
    if !rrset.is_empty() {
        // An NS query answered from a parent without AA: the NS set is the
        // delegation itself (Unbound: "the NS went to the AN section").
        let owner = rrset[0].name.to_lowercase();
        if qtype == RecordType::NS && chain.is_empty() && !aa && owner != *zone {
            return Classified::Referral {
                zone: owner,
                ns: rrset,
                glue: msg.additionals.clone(),
                proof: Vec::new(),
            };
        }
        if !aa && let Some(referral) = referral(&ns, zone, &end, msg) {
            return referral;
        }
        // An NS set beside the answer (the zone's own, say) is not kept:
        // it is no delegation, and the walk does not cache it.
        return Classified::Answer {
            chain,
            rrset,
            proof,
        };
    }
    if !chain.is_empty() && end != *qname && !zone.zone_of(&end) {
        // The chain leads out of this server's zone: the rest is resolved separately.
        return Classified::Cname { chain, target: end };
    }
    if soa.is_some() {
        let answer = Classified::NoData { chain, soa, proof };
        if recursive {
            return last_resort(answer, "recursive-lame NODATA");
        }
        return answer;
    }
    if !chain.is_empty() && end != *qname {
        return Classified::Cname { chain, target: end };
    }
    if let Some(first) = ns.first() {
        let owner = first.name.to_lowercase();
        if owner == *zone {
            if aa {
                return Classified::NoData { chain, soa, proof };
            }
            if recursive {
                return Classified::Lame("recursive server: empty answer with no SOA");
            }
            return Classified::Lame("empty non-authoritative answer with the zone's own NS set");
        }
        if owner.zone_of(zone) {
            return Classified::Lame("upward referral");
        }
        if let Some(referral) = referral(&ns, zone, &end, msg) {
            return referral;
        }
    }
    if recursive {
        return Classified::Lame("recursive server: empty answer with no SOA");
    }
    let answer = Classified::NoData { chain, soa, proof };
    if msg.answers.is_empty() && msg.authorities.is_empty() && msg.additionals.is_empty() {
        return last_resort(answer, "empty message");
    }
    answer
}

/// The RRSIGs in `section` over the RRsets `records` hold.
fn signatures(section: &[Record], records: &[Record]) -> Vec<Record> {
    section
        .iter()
        .filter(|s| match &s.data {
            RData::DNSSEC(DNSSECRData::RRSIG(sig)) => records
                .iter()
                .any(|r| r.name == s.name && r.record_type() == sig.input().type_covered),
            _ => false,
        })
        .cloned()
        .collect()
}

/// What a referral's authority section says of the child's DS set: the DS
/// RRset, or NSEC/NSEC3 records denying it, with the RRSIGs over them.
fn delegation_proof(authorities: &[Record], child: &Name) -> Vec<Record> {
    authorities
        .iter()
        .filter(|r| r.record_type() == RecordType::DS && r.name == *child)
        .chain(proof_records(authorities, RecordType::DS))
        .cloned()
        .collect()
}

/// What a validator needs from an authority section besides the SOA: the
/// NSEC and NSEC3 records and the RRSIGs over them and over the SOA.
fn denial_records(authorities: &[Record]) -> Vec<Record> {
    proof_records(authorities, RecordType::SOA)
        .cloned()
        .collect()
}

/// The NSEC and NSEC3 records of an authority section, and the RRSIGs over
/// them and over the `signed` RRset.
fn proof_records(authorities: &[Record], signed: RecordType) -> impl Iterator<Item = &Record> {
    authorities.iter().filter(move |r| match &r.data {
        RData::DNSSEC(DNSSECRData::NSEC(_) | DNSSECRData::NSEC3(_)) => true,
        RData::DNSSEC(DNSSECRData::RRSIG(sig)) => {
            let covered = sig.input().type_covered;
            covered == signed || matches!(covered, RecordType::NSEC | RecordType::NSEC3)
        }
        _ => false,
    })
}

fn last_resort(answer: Classified, why: &'static str) -> Classified {
    Classified::LastResort {
        answer: Box::new(answer),
        why,
    }
}

/// The referral an authority section's NS set makes, when that set is
/// strictly below `zone` and at or above `end` (RFC 1034 §4.3.2 step 3b).
fn referral(ns: &[Record], zone: &Name, end: &Name, msg: &Message) -> Option<Classified> {
    let child = ns.first()?.name.to_lowercase();
    if child == *zone || !zone.zone_of(&child) || !child.zone_of(end) {
        return None;
    }
    Some(Classified::Referral {
        ns: ns.iter().filter(|r| r.name == child).cloned().collect(),
        proof: delegation_proof(&msg.authorities, &child),
        zone: child,
        glue: msg.additionals.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata;

    fn n(s: &str) -> Name {
        Name::from_ascii(s).expect("name")
    }

    /// A NOERROR reply from a server of `solo.lab.` to `www.solo.lab. TXT`
    /// with no answer and `authorities`.
    fn empty_reply(aa: bool, ra: bool, authorities: Vec<Record>) -> Classified {
        use hickory_proto::op::{MessageType, OpCode};
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.metadata.authoritative = aa;
        m.metadata.recursion_available = ra;
        m.authorities = authorities;
        classify(&m, &n("www.solo.lab."), RecordType::TXT, &n("solo.lab."))
    }

    fn ns(owner: &str, target: &str) -> Record {
        Record::from_rdata(n(owner), 3600, RData::NS(rdata::NS(n(target))))
    }

    fn soa() -> Record {
        Record::from_rdata(
            n("solo.lab."),
            3600,
            RData::SOA(rdata::SOA::new(
                n("ns.solo.lab."),
                n("hostmaster.solo.lab."),
                1,
                3600,
                600,
                86400,
                300,
            )),
        )
    }

    /// Unbound's `response_type_from_server`: the zone's own NS set in an
    /// empty AA answer is an answer (NODATA); without AA it is thrown away,
    /// and from a recursive server it is REC_LAME, never an answer.
    #[test]
    fn an_empty_answer_with_the_zones_own_ns_set_is_nodata_only_with_aa() {
        let own = || vec![ns("solo.lab.", "ns.solo.lab.")];
        assert!(matches!(
            empty_reply(true, false, own()),
            Classified::NoData { soa: None, .. }
        ));
        assert!(matches!(
            empty_reply(true, true, own()),
            Classified::NoData { soa: None, .. }
        ));
        assert!(matches!(
            empty_reply(false, true, own()),
            Classified::Lame(_)
        ));
        assert!(matches!(
            empty_reply(false, false, own()),
            Classified::Lame(_)
        ));
    }

    #[test]
    fn an_empty_answer_with_an_ns_set_above_the_zone_is_lame_even_with_aa() {
        for aa in [true, false] {
            let reply = empty_reply(aa, false, vec![ns(".", "a.root.lab.")]);
            assert!(matches!(reply, Classified::Lame(_)), "aa={aa}: {reply:?}");
        }
    }

    /// A recursive server's empty answer says nothing unless it carries an
    /// SOA: then it is a NODATA kept as a last resort.
    #[test]
    fn a_recursive_servers_empty_answer_is_lame_without_soa_and_a_last_resort_with_it() {
        assert!(matches!(
            empty_reply(false, true, Vec::new()),
            Classified::Lame(_)
        ));
        match empty_reply(false, true, vec![soa()]) {
            Classified::LastResort { answer, .. } => {
                assert!(matches!(*answer, Classified::NoData { soa: Some(_), .. }));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_empty_message_from_a_server_that_is_not_recursive_is_a_last_resort() {
        assert!(matches!(
            empty_reply(false, false, Vec::new()),
            Classified::LastResort { .. }
        ));
        assert!(matches!(
            empty_reply(true, false, vec![soa()]),
            Classified::NoData { soa: Some(_), .. }
        ));
    }

    #[test]
    fn dname_substitution() {
        let got = substitute(&n("a.b.old.kr."), &n("old.kr."), &n("new.kr.")).expect("fits");
        assert_eq!(got, n("a.b.new.kr."));
    }
}
