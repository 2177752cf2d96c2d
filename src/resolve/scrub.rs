//! The scrubber: removes what a server may not tell us before anything is
//! classified or cached (Unbound's iter_scrub). A server is trusted only for
//! names in the zone it was asked as an authority for (its bailiwick).

use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RData, RecordType};

/// What a scrub removed, for logs and counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Scrubbed {
    pub removed: usize,
}

/// Removes from `msg`:
/// - answer and authority records whose owner is outside `zone`;
/// - authority NS records that are not at an ancestor of (or at) `qname`:
///   a referral for some other part of the tree;
/// - additional records other than A/AAAA of a name server named in the
///   message, and any of those outside `zone` (out-of-bailiwick glue).
pub fn scrub(msg: &mut Message, qname: &Name, zone: &Name) -> Scrubbed {
    let before = msg.answers.len() + msg.authorities.len() + msg.additionals.len();
    msg.answers.retain(|r| zone.zone_of(&r.name));
    msg.authorities.retain(|r| {
        zone.zone_of(&r.name) && (r.record_type() != RecordType::NS || r.name.zone_of(qname))
    });
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
}
