//! What a resolution found, before it is encoded: the form in which the walk
//! hands an answer to the cache, and the one encoder every response taproot
//! builds as a hickory `Message` goes through ([`to_wire`]): stored answers,
//! referral-mode answers and the RFC 8482 answer to ANY.

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};
use tracing::debug;

use crate::dnssec::Security;

/// The outcome of a resolution before it is encoded.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub rcode: ResponseCode,
    /// The CNAME/DNAME chain and the final RRset.
    pub answers: Vec<Record>,
    /// The SOA of a negative answer, and NSEC/NSEC3 proofs with their RRSIGs.
    pub authorities: Vec<Record>,
    pub security: Security,
}

impl Resolution {
    /// True for a plain positive answer: records of `qtype` owned by
    /// `qname` (and the RRSIGs over them), nothing else.
    pub fn is_one_rrset(&self, qname: &Name, qtype: RecordType) -> bool {
        self.rcode == ResponseCode::NoError
            && self.authorities.is_empty()
            && self.answers.iter().any(|r| r.record_type() == qtype)
            && self.answers.iter().all(|r| {
                r.name == *qname && (r.record_type() == qtype || crate::dnssec::covers(r, qtype))
            })
    }
}

/// Encodes a resolution as a response (ID 0; flags and ID are patched per
/// client). Without `dnssec_ok` the RRSIG, NSEC and NSEC3 records a client
/// did not ask for are left out (RFC 4035 §3.2.1); with it they come last
/// in each section, where a cached answer cuts them out for a client
/// without DO (see [`super::withheld`]).
pub fn encode(
    qname: &Name,
    qtype: RecordType,
    res: &Resolution,
    dnssec_ok: bool,
) -> Option<Vec<u8>> {
    let mut msg = Message::new(0, MessageType::Response, OpCode::Query);
    msg.metadata.recursion_available = true;
    msg.metadata.response_code = res.rcode;
    let mut query = Query::query(qname.to_lowercase(), qtype);
    query.set_query_class(DNSClass::IN);
    msg.add_query(query);
    let wanted = |r: &&Record| {
        dnssec_ok
            || r.record_type() == qtype
            || !matches!(
                r.record_type(),
                RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3
            )
    };
    msg.answers = res.answers.iter().filter(wanted).cloned().collect();
    super::withheld::order_for_cutting(&mut msg.answers, u16::from(qtype));
    msg.authorities = res
        .authorities
        .iter()
        .filter(|r| {
            dnssec_ok
                || !matches!(
                    r.record_type(),
                    RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3
                )
        })
        .cloned()
        .collect();
    super::withheld::order_for_cutting(&mut msg.authorities, 0);
    to_wire(&msg)
}

/// A response in wire form; `None` (logged) when hickory cannot encode it,
/// for the caller to answer SERVFAIL instead.
pub fn to_wire(msg: &Message) -> Option<Vec<u8>> {
    match msg.to_vec() {
        Ok(v) => Some(v),
        Err(e) => {
            debug!(error = %e, "cannot encode a response");
            None
        }
    }
}
