//! Policy answers in wire form: the client's question echoed as spelled,
//! AA=1 (the answer is ours, RFC 1035 §4.1.1), RD and CD copied, RA as
//! the client's service allows, an OPT record when the client sent one
//! (RFC 6891 §7) with the policy's Extended DNS Error (RFC 8914 §2), and
//! TC=1 with the question alone when it does not fit the client's UDP size
//! (RFC 1035 §4.2.1).

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::PolicyAnswer;
use crate::wire::{self, ClientQuery, flags};

/// Writes the response to `q` (parsed from `raw`) into `out`. `aa`: the
/// records are the policy's own (not a followed CNAME target's).
pub fn render(
    q: &ClientQuery<'_>,
    raw: &[u8],
    answer: &PolicyAnswer,
    aa: bool,
    ra: bool,
    limit: usize,
    out: &mut Vec<u8>,
) {
    let ede = answer.ede.as_ref().map(|(c, t)| (*c, t.as_str()));
    let aa_flag = if aa { flags::AA } else { 0 };
    let truncated = |out: &mut Vec<u8>| {
        *out = wire::error_response(
            q.id,
            q.flags,
            Some((raw, q)),
            u16::from(answer.rcode),
            ra,
            flags::TC | aa_flag,
            ede,
        );
    };
    let Ok(name) = Name::read(&mut BinDecoder::new(q.qname)) else {
        *out = wire::error_response(q.id, q.flags, None, wire::rcode::FORMERR, ra, 0, None);
        return;
    };
    let mut msg = Message::new(q.id, MessageType::Response, OpCode::Query);
    msg.metadata.authoritative = aa;
    msg.metadata.recursion_desired = q.rd();
    msg.metadata.recursion_available = ra;
    msg.metadata.checking_disabled = q.cd();
    msg.metadata.response_code = ResponseCode::from(0, answer.rcode);
    let mut query = Query::query(name, RecordType::from(q.qtype));
    query.set_query_class(DNSClass::IN);
    msg.add_query(query);
    msg.insert_answers(answer.answers.clone());
    msg.insert_authorities(answer.authority.clone());
    let Some(mut bytes) = crate::cache::to_wire(&msg) else {
        truncated(out);
        return;
    };
    if let Some(e) = q.edns
        && let Some(ar) = wire::read_u16(&bytes, 10)
    {
        bytes[10..12].copy_from_slice(&ar.saturating_add(1).to_be_bytes());
        wire::push_opt(&mut bytes, e.dnssec_ok, 0, ede);
    }
    if bytes.len() > limit {
        truncated(out);
        return;
    }
    *out = bytes;
}
