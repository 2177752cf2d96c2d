//! The scrubber: removes what a server may not tell us before anything is
//! classified or cached (Unbound's iter_scrub). A server is trusted only for
//! names in the zone it was asked as an authority for (its bailiwick).

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

/// What a scrub removed, for logs and counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Scrubbed {
    pub removed: usize,
}

/// Removes from `msg`:
/// - answer and authority records whose owner is outside `zone`, except an
///   NS set above the zone in an empty NOERROR without SOA: that is a lame
///   server's upward referral, kept so [`super::classify`] can call it lame
///   (Unbound's `scrub_sanitize` keeps it for the same reason). The
///   classifier never lets such an answer be cached;
/// - A, AAAA, CNAME and DNAME records in the authority section, which no
///   answer puts there;
/// - authority NS records that are not at an ancestor of (or at) `qname`:
///   a referral for some other part of the tree; and NS records of an
///   NXDOMAIN or SOA-carrying NODATA, which do not need them (Unbound's
///   `scrub_normalize`);
/// - additional records other than A/AAAA of a name server named in the
///   message, and any of those outside `zone` (out-of-bailiwick glue); all
///   of them when the upward NS set was kept.
pub fn scrub(msg: &mut Message, qname: &Name, zone: &Name) -> Scrubbed {
    let before = msg.answers.len() + msg.authorities.len() + msg.additionals.len();
    msg.answers.retain(|r| zone.zone_of(&r.name));
    let rcode = msg.metadata.response_code;
    let has_soa = msg
        .authorities
        .iter()
        .any(|r| r.record_type() == RecordType::SOA);
    let no_answer = msg.answers.is_empty();
    let lame_shape = no_answer && rcode == ResponseCode::NoError && !has_soa;
    let negative = rcode == ResponseCode::NXDomain || (no_answer && has_soa);
    let mut upward = false;
    msg.authorities.retain(|r| {
        let rtype = r.record_type();
        if matches!(
            rtype,
            RecordType::A | RecordType::AAAA | RecordType::CNAME | RecordType::DNAME
        ) {
            return false;
        }
        if rtype == RecordType::NS && lame_shape && r.name != *zone && r.name.zone_of(zone) {
            upward = true;
            return true;
        }
        if rtype == RecordType::NS && (negative || !r.name.zone_of(qname)) {
            return false;
        }
        zone.zone_of(&r.name)
    });
    if upward {
        msg.additionals.clear();
    }
    let ns_names: Vec<Name> = msg
        .authorities
        .iter()
        .chain(msg.answers.iter())
        .filter_map(|r| match &r.data {
            RData::NS(ns) => Some(ns.0.to_lowercase()),
            _ => None,
        })
        .collect();
    msg.additionals.retain(|r| {
        matches!(r.record_type(), RecordType::A | RecordType::AAAA)
            && zone.zone_of(&r.name)
            && ns_names.iter().any(|n| *n == r.name.to_lowercase())
    });
    let after = msg.answers.len() + msg.authorities.len() + msg.additionals.len();
    Scrubbed {
        removed: before - after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{MessageType, OpCode};
    use hickory_proto::rr::Record;
    use hickory_proto::rr::rdata::{A, NS};

    fn n(s: &str) -> Name {
        Name::from_ascii(s).expect("name")
    }

    #[test]
    fn out_of_bailiwick_glue_is_removed() {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.authorities.push(Record::from_rdata(
            n("example.kr."),
            300,
            RData::NS(NS(n("ns1.example.kr."))),
        ));
        m.additionals.push(Record::from_rdata(
            n("ns1.example.kr."),
            300,
            RData::A(A::new(127, 0, 0, 1)),
        ));
        m.additionals.push(Record::from_rdata(
            n("www.victim.com."),
            300,
            RData::A(A::new(6, 6, 6, 6)),
        ));
        let s = scrub(&mut m, &n("www.example.kr."), &n("kr."));
        assert_eq!(s.removed, 1);
        assert_eq!(m.additionals.len(), 1);
    }

    #[test]
    fn an_upward_referral_is_kept_for_classification_without_its_glue() {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.authorities.push(Record::from_rdata(
            Name::root(),
            300,
            RData::NS(NS(n("a.root."))),
        ));
        m.additionals.push(Record::from_rdata(
            n("a.root."),
            300,
            RData::A(A::new(127, 0, 0, 1)),
        ));
        scrub(&mut m, &n("www.example.kr."), &n("example.kr."));
        assert_eq!(m.authorities.len(), 1, "the lame evidence stays");
        assert!(m.additionals.is_empty(), "its glue never does");
    }
}
