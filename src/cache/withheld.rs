//! The DNSSEC records a client without DO is not sent, inside a stored answer.
//!
//! RFC 4035 §3.2.1: RRSIG, NSEC and NSEC3 records go only to a client that
//! set the DO bit, unless it asked for that very type. One cache entry
//! serves both kinds of client: its wire form holds the DNSSEC records too,
//! each section's at the section's end, so that the answer for a client
//! without DO is the same bytes with one span cut out of the answer section
//! and one out of the authority section, ANCOUNT and NSCOUNT lowered and
//! the TTL offsets behind a cut moved back (the hot path patches them as it
//! patches the ID). [`Withheld`] is where those spans lie.
//!
//! A compression pointer is an absolute offset (RFC 1035 §4.1.4), so the
//! kept bytes must never point into a cut, nor behind one (those bytes
//! move). [`locate`] accepts a layout only when every pointer in a kept
//! record that follows the first cut lands before that cut; [`arrange`]
//! re-encodes a message that fails it: DNSSEC records moved to the end of
//! their sections, additional-section ones dropped, and as a last resort
//! no compression at all (hickory would otherwise point a later SOA into
//! an RRSIG's signer name, which it remembers as a compression target).

use hickory_proto::op::Message;
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use crate::wire::{self, HEADER_LEN};

/// RFC 4034 §3, §4 and RFC 5155 §3: RRSIG, NSEC, NSEC3.
const RRSIG: u16 = 46;
const NSEC: u16 = 47;
const NSEC3: u16 = 50;
/// RFC 1035 §3.3: the types whose RDATA hickory compresses names in.
const CNAME: u16 = 5;
const NS: u16 = 2;
const PTR: u16 = 12;
const MX: u16 = 15;
const SOA: u16 = 6;

/// True for a record of type `rtype` that a client without DO asking for
/// `qtype` is not sent (RFC 4035 §3.2.1). Only the answer section makes an
/// exception for the type asked for: callers pass 0 as `qtype` for the
/// authority and additional sections, as [`super::encode`] filters them.
#[inline]
pub fn is_withheld(rtype: u16, qtype: u16) -> bool {
    rtype != qtype && matches!(rtype, RRSIG | NSEC | NSEC3)
}

/// Where the withheld records of a stored answer lie: `answer` and
/// `authority` are `[start, end)` byte spans at the end of those sections
/// (empty spans sit at the section's end), `counts` how many records each holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Withheld {
    answer: [u16; 2],
    authority: [u16; 2],
    counts: [u16; 2],
}

/// What [`locate`] found in a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The DNSSEC records sit at the end of their sections and nothing kept
    /// points past the first cut: an answer without them is these spans cut out.
    Ready(Withheld),
    /// They do not: [`arrange`] the message first.
    Unordered,
}

impl Withheld {
    /// True when there is nothing to cut: the answer is the same with DO or without.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.counts == [0, 0]
    }

    /// Bytes a client without DO is not sent.
    pub fn len(&self) -> usize {
        usize::from(self.answer[1] - self.answer[0])
            + usize::from(self.authority[1] - self.authority[0])
    }

    /// How many records of the answer and authority sections are withheld.
    pub fn counts(&self) -> [u16; 2] {
        self.counts
    }

    /// Appends `wire` without the withheld spans to `out`, with ANCOUNT
    /// and NSCOUNT lowered accordingly. `wire` is the message this was
    /// located in.
    #[inline]
    pub fn copy_without(&self, wire: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        let [a0, a1] = self.answer.map(usize::from);
        let [n0, n1] = self.authority.map(usize::from);
        if let (Some(head), Some(mid), Some(tail)) =
            (wire.get(..a0), wire.get(a1..n0), wire.get(n1..))
        {
            out.extend_from_slice(head);
            out.extend_from_slice(mid);
            out.extend_from_slice(tail);
        }
        self.lower_counts(out, start);
    }

    /// Lowers ANCOUNT and NSCOUNT of the message starting at `start` of
    /// `out` by the records withheld from each.
    #[inline]
    pub fn lower_counts(&self, out: &mut [u8], start: usize) {
        for (at, withheld) in [(start + 6, self.counts[0]), (start + 8, self.counts[1])] {
            if let Some(count) = wire::read_u16(out, at) {
                out[at..at + 2].copy_from_slice(&count.saturating_sub(withheld).to_be_bytes());
            }
        }
    }

    /// Where the withheld records start when they run to the end of
    /// `wire` (the message this was located in) and include some of the
    /// authority section's (a proof): no kept authority record after a
    /// withheld answer record, and an empty additional section. See
    /// [`super::tails`].
    pub fn tail_start(&self, wire: &[u8]) -> Option<usize> {
        let [a0, a1] = self.answer.map(usize::from);
        let [n0, n1] = self.authority.map(usize::from);
        let additional_count = wire::read_u16(wire, 10)?;
        let contiguous = self.counts[0] == 0 || a1 == n0;
        (self.counts[1] > 0 && contiguous && additional_count == 0 && n1 == wire.len())
            .then_some(if self.counts[0] > 0 { a0 } else { n0 })
    }

    /// Where byte `at` of the whole message is in the message without the
    /// withheld spans; `None` for a byte that is cut.
    #[inline]
    pub fn moved(&self, at: usize) -> Option<usize> {
        let [a0, a1] = self.answer.map(usize::from);
        let [n0, n1] = self.authority.map(usize::from);
        if at < a0 {
            Some(at)
        } else if at < a1 {
            None
        } else if at < n0 {
            Some(at - (a1 - a0))
        } else if at < n1 {
            None
        } else {
            Some(at - (a1 - a0) - (n1 - n0))
        }
    }
}

/// Finds the withheld records of a response (one question, as the cache
/// stores them); `None` when it does not walk or is longer than a u16 offset.
pub fn locate(wire: &[u8]) -> Option<Layout> {
    if wire.len() > usize::from(u16::MAX) || wire::read_u16(wire, 4)? != 1 {
        return None;
    }
    let name_end = wire::skip_name(wire, HEADER_LEN)?;
    let qtype = wire::read_u16(wire, name_end)?;
    let mut at = name_end + 4;
    let mut spans = [[0u16; 2]; 2];
    let mut counts = [0u16; 2];
    let mut first_cut: Option<usize> = None;
    let mut ordered = true;
    for (section, count_at) in [6, 8, 10].into_iter().enumerate() {
        let mut cut_start: Option<usize> = None;
        for _ in 0..wire::read_u16(wire, count_at)? {
            let rr = wire::read_rr(wire, at)?;
            let asked = if section == 0 { qtype } else { 0 };
            if is_withheld(rr.rtype, asked) {
                match (spans.get_mut(section), counts.get_mut(section)) {
                    (Some(_), Some(n)) => {
                        cut_start.get_or_insert(at);
                        first_cut.get_or_insert(at);
                        *n += 1;
                    }
                    // The cache stores none in the additional section.
                    _ => ordered = false,
                }
            } else if cut_start.is_some() {
                ordered = false;
            } else if let Some(cut) = first_cut
                && !points_before(wire, at, &rr, cut)?
            {
                ordered = false;
            }
            at = rr.end;
        }
        if let Some(span) = spans.get_mut(section) {
            *span = [cut_start.unwrap_or(at) as u16, at as u16];
        }
    }
    Some(if ordered {
        Layout::Ready(Withheld {
            answer: spans[0],
            authority: spans[1],
            counts,
        })
    } else {
        Layout::Unordered
    })
}

/// True when every compression pointer of the record at `at` (its owner,
/// and the names hickory compresses in RDATA) lands before `limit`.
fn points_before(wire: &[u8], at: usize, rr: &wire::RrSpan, limit: usize) -> Option<bool> {
    let rdata = rr.ttl_at + 6;
    let names: &[usize] = match rr.rtype {
        CNAME | NS | PTR => &[0],
        MX => &[2],
        SOA => &[0, usize::MAX],
        _ => &[],
    };
    if !name_points_before(wire, at, limit)? {
        return Some(false);
    }
    let mut next = rdata;
    for &skip in names {
        // usize::MAX: the name right after the previous one (SOA's RNAME).
        let start = if skip == usize::MAX {
            next
        } else {
            rdata + skip
        };
        if !name_points_before(wire, start, limit)? {
            return Some(false);
        }
        next = wire::skip_name(wire, start)?;
    }
    Some(true)
}

/// True when the name at `at` holds no pointer, or one that lands before `limit`.
fn name_points_before(wire: &[u8], mut at: usize, limit: usize) -> Option<bool> {
    loop {
        let len = *wire.get(at)?;
        match len {
            0 => return Some(true),
            l if l & 0xc0 == 0xc0 => {
                let target = usize::from(wire::read_u16(wire, at)? & 0x3fff);
                return Some(target < limit);
            }
            l if usize::from(l) > wire::MAX_LABEL_LEN => return None,
            l => at += 1 + usize::from(l),
        }
    }
}

/// Moves the records a client without DO is not sent to the end of each
/// section, keeping the order of the rest (a CNAME chain stays in order).
pub fn order_for_cutting(records: &mut Vec<Record>, qtype: u16) {
    let (kept, withheld): (Vec<Record>, Vec<Record>) = records
        .drain(..)
        .partition(|r| !is_withheld(u16::from(r.record_type()), qtype));
    records.extend(kept);
    records.extend(withheld);
}

/// Re-encodes a response so that [`locate`] finds it [`Layout::Ready`]:
/// DNSSEC records at the end of the answer and authority sections, none in
/// the additional section, and without compression if that is what it
/// takes. `None` when the bytes do not decode or cannot be arranged.
pub fn arrange(wire: &[u8]) -> Option<Vec<u8>> {
    let mut msg = Message::from_vec(wire).ok()?;
    let qtype = u16::from(msg.queries.first()?.query_type());
    order_for_cutting(&mut msg.answers, qtype);
    order_for_cutting(&mut msg.authorities, 0);
    msg.additionals
        .retain(|r| !is_withheld(u16::from(r.record_type()), 0));
    let compressed = msg.to_vec().ok()?;
    if matches!(locate(&compressed), Some(Layout::Ready(_))) {
        return Some(compressed);
    }
    let mut plain = Vec::with_capacity(compressed.len() * 2);
    let mut encoder = BinEncoder::new(&mut plain);
    encoder.set_name_encoding(NameEncoding::Uncompressed);
    msg.emit(&mut encoder).ok()?;
    matches!(locate(&plain), Some(Layout::Ready(_))).then_some(plain)
}

#[cfg(test)]
mod tests {
    use hickory_proto::dnssec::Algorithm;
    use hickory_proto::dnssec::DigestType;
    use hickory_proto::dnssec::Nsec3HashAlgorithm;
    use hickory_proto::dnssec::rdata::{DNSSECRData, DS, NSEC, NSEC3, RRSIG, SigInput};
    use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
    use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, PTR, SOA, SRV, TXT};
    use hickory_proto::rr::{Name, RData, Record, RecordType, SerialNumber};

    use super::*;
    use crate::cache::tails::Tails;
    use crate::cache::{CachedAnswer, Resolution, encode};
    use crate::dnssec::Security;
    use crate::wire::{flags, parse_query};

    /// xorshift64*: the cases are random but the same on every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn chance(&mut self, percent: u64) -> bool {
            self.next() % 100 < percent
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    /// The types a stored answer holds (RRSIG, NSEC and NSEC3 as asked-for
    /// types too: then a client without DO gets them).
    const TYPES: [RecordType; 13] = [
        RecordType::A,
        RecordType::AAAA,
        RecordType::NS,
        RecordType::CNAME,
        RecordType::MX,
        RecordType::TXT,
        RecordType::PTR,
        RecordType::SOA,
        RecordType::SRV,
        RecordType::NSEC,
        RecordType::NSEC3,
        RecordType::RRSIG,
        RecordType::DS,
    ];

    const ZONES: [&str; 3] = ["sec.lab.", "other.lab.", "lab."];

    fn any_name(rng: &mut Rng) -> Name {
        let zone = ZONES[rng.below(ZONES.len())];
        name_in(rng, zone)
    }

    fn name_in(rng: &mut Rng, zone: &str) -> Name {
        let labels = ["www", "mail", "a", "b-c", "deep.er", "x1"];
        let text = format!("{}.{zone}", labels[rng.below(labels.len())]);
        Name::from_ascii(text).expect("name")
    }

    fn zone(rng: &mut Rng) -> Name {
        Name::from_ascii(ZONES[rng.below(ZONES.len())]).expect("zone")
    }

    fn rdata(rng: &mut Rng, rtype: RecordType, owner: &Name) -> RData {
        let other = any_name(rng);
        match rtype {
            RecordType::A => RData::A(A::new(192, 0, 2, rng.next() as u8)),
            RecordType::AAAA => {
                RData::AAAA(AAAA::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, rng.next() as u16))
            }
            RecordType::NS => RData::NS(NS(other)),
            RecordType::CNAME => RData::CNAME(CNAME(other)),
            RecordType::MX => RData::MX(MX::new(rng.next() as u16, other)),
            RecordType::TXT => RData::TXT(TXT::new(vec![format!("t{}", rng.next() % 1000)])),
            RecordType::PTR => RData::PTR(PTR(other)),
            RecordType::SOA => RData::SOA(SOA::new(
                other,
                name_in(rng, "lab."),
                rng.next() as u32,
                3600,
                600,
                86400,
                300,
            )),
            RecordType::SRV => RData::SRV(SRV::new(1, 2, 53, other)),
            RecordType::NSEC => RData::DNSSEC(DNSSECRData::NSEC(NSEC::new(
                other,
                [RecordType::A, RecordType::RRSIG, RecordType::NSEC],
            ))),
            RecordType::NSEC3 => RData::DNSSEC(DNSSECRData::NSEC3(NSEC3::new(
                Nsec3HashAlgorithm::SHA1,
                rng.chance(50),
                0,
                Vec::new(),
                rng.bytes(20),
                [RecordType::A, RecordType::RRSIG],
            ))),
            RecordType::DS => RData::DNSSEC(DNSSECRData::DS(DS::new(
                rng.next() as u16,
                Algorithm::ECDSAP256SHA256,
                DigestType::SHA256,
                rng.bytes(32),
            ))),
            _ => signature(rng, RecordType::A, owner),
        }
    }

    fn signature(rng: &mut Rng, covered: RecordType, owner: &Name) -> RData {
        let input = SigInput {
            type_covered: covered,
            algorithm: Algorithm::ECDSAP256SHA256,
            num_labels: owner.num_labels(),
            original_ttl: 300,
            sig_expiration: SerialNumber::new(2_000_000_000),
            sig_inception: SerialNumber::new(1_700_000_000),
            key_tag: rng.next() as u16,
            signer_name: zone(rng),
        };
        RData::DNSSEC(DNSSECRData::RRSIG(RRSIG::from_sig(input, rng.bytes(64))))
    }

    /// An RRset of `rtype` at `owner`, with 0–2 RRSIGs right after it (as
    /// servers send them).
    fn rrset(rng: &mut Rng, owner: &Name, rtype: RecordType, out: &mut Vec<Record>) {
        let n = if rtype == RecordType::CNAME || rtype == RecordType::SOA {
            1
        } else {
            1 + rng.below(3)
        };
        for _ in 0..n {
            out.push(Record::from_rdata(
                owner.clone(),
                300 + rng.below(100) as u32,
                rdata(rng, rtype, owner),
            ));
        }
        for _ in 0..rng.below(3) {
            out.push(Record::from_rdata(
                owner.clone(),
                300,
                signature(rng, rtype, owner),
            ));
        }
    }

    /// A random answer: maybe a CNAME link, maybe an RRset, maybe an
    /// authority section with an SOA, NSEC/NSEC3 proofs and RRSIGs.
    fn case(rng: &mut Rng) -> (Name, RecordType, Resolution) {
        let qname = any_name(rng);
        let qtype = TYPES[rng.below(TYPES.len())];
        let mut answers = Vec::new();
        let mut owner = qname.clone();
        if rng.chance(30) && qtype != RecordType::CNAME {
            let target = any_name(rng);
            answers.push(Record::from_rdata(
                owner.clone(),
                300,
                RData::CNAME(CNAME(target.clone())),
            ));
            for _ in 0..rng.below(2) {
                answers.push(Record::from_rdata(
                    owner.clone(),
                    300,
                    signature(rng, RecordType::CNAME, &owner),
                ));
            }
            owner = target;
        }
        let negative = rng.chance(40);
        if !negative {
            rrset(rng, &owner, qtype, &mut answers);
        }
        let mut authorities = Vec::new();
        if negative || rng.chance(30) {
            let apex = zone(rng);
            if negative {
                rrset(rng, &apex, RecordType::SOA, &mut authorities);
            }
            for _ in 0..1 + rng.below(2) {
                let proof = if rng.chance(50) {
                    RecordType::NSEC
                } else {
                    RecordType::NSEC3
                };
                let at = any_name(rng);
                rrset(rng, &at, proof, &mut authorities);
            }
        }
        let rcode = if negative && rng.chance(50) {
            ResponseCode::NXDomain
        } else {
            ResponseCode::NoError
        };
        let security = if rng.chance(50) {
            Security::Secure
        } else {
            Security::Insecure
        };
        (
            qname,
            qtype,
            Resolution {
                rcode,
                answers,
                authorities,
                security,
            },
        )
    }

    /// The resolution as one message in the order it came, DNSSEC records
    /// wherever they were: what `from_wire` must arrange itself.
    fn unarranged(qname: &Name, qtype: RecordType, res: &Resolution) -> Vec<u8> {
        let mut msg = Message::new(0, MessageType::Response, OpCode::Query);
        msg.metadata.response_code = res.rcode;
        msg.add_query(Query::query(qname.clone(), qtype));
        msg.answers = res.answers.clone();
        msg.authorities = res.authorities.clone();
        msg.to_vec().expect("encodes")
    }

    /// A query for `qname` spelled in mixed case, with EDNS (DO as given) or without.
    fn query(
        qname: &Name,
        qtype: RecordType,
        edns: bool,
        dnssec_ok: bool,
        ad: bool,
        cd: bool,
    ) -> Vec<u8> {
        let mut f = flags::RD;
        if ad {
            f |= flags::AD;
        }
        if cd {
            f |= flags::CD;
        }
        let mut q = vec![0xab, 0xcd];
        q.extend_from_slice(&f.to_be_bytes());
        q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(edns)]);
        for label in qname.iter() {
            q.push(label.len() as u8);
            q.extend(label.iter().map(|b| b.to_ascii_uppercase()));
        }
        q.push(0);
        q.extend_from_slice(&u16::from(qtype).to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        if edns {
            let do_bit = if dnssec_ok { 0x80 } else { 0 };
            q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, do_bit, 0, 0, 0]);
        }
        q
    }

    /// Records as a client compares them: name, type, TTL and data.
    fn seen(records: &[Record]) -> Vec<(Name, RecordType, u32, RData)> {
        records
            .iter()
            .map(|r| {
                (
                    r.name.to_lowercase(),
                    r.record_type(),
                    r.ttl,
                    r.data.clone(),
                )
            })
            .collect()
    }

    fn decayed(records: &[Record], by: u32) -> Vec<(Name, RecordType, u32, RData)> {
        records
            .iter()
            .map(|r| {
                (
                    r.name.to_lowercase(),
                    r.record_type(),
                    r.ttl - by,
                    r.data.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn every_stored_answer_renders_right_with_and_without_do() {
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        let mut cut_some = 0;
        let tails = Tails::default();
        let mut tailed_some = 0;
        for round in 0..3_000 {
            let (qname, qtype, res) = case(&mut rng);
            // The encoder's own layout, or the records as they came.
            let wire = if round % 2 == 0 {
                encode(&qname, qtype, &res, true).expect("encodes")
            } else {
                unarranged(&qname, qtype, &res)
            };
            let Some(mut entry) = CachedAnswer::from_wire(wire, 0) else {
                panic!("round {round}: not cached: {qname} {qtype} {res:?}");
            };
            entry.security = res.security;
            cut_some += usize::from(!entry.withheld().is_empty());
            // The same entry with its trailing proof shared (when it has
            // one): it must render exactly as the whole one does.
            let mut tailed = CachedAnswer::from_wire(entry.wire().into_owned(), 0).expect("walks");
            tailed.security = res.security;
            tailed.share_tail(&tails);
            tailed_some += usize::from(tailed.has_shared_tail());
            let with_do = Message::from_vec(&encode(&qname, qtype, &res, true).expect("encodes"))
                .expect("decodes");
            let without = Message::from_vec(&encode(&qname, qtype, &res, false).expect("encodes"))
                .expect("decodes");
            for variant in 0..16u8 {
                let (edns, dnssec_ok, ad, cd) = (
                    variant & 1 != 0,
                    variant & 3 == 3,
                    variant & 4 != 0,
                    variant & 8 != 0,
                );
                let raw = query(&qname, qtype, edns, dnssec_ok, ad, cd);
                let q = parse_query(&raw).expect("a query");
                for (shared, entry) in [(false, &entry), (true, &tailed)] {
                    let mut out = Vec::new();
                    assert!(entry.render(&q, 2_000, true, None, 65_535, &mut out));
                    let got = Message::from_vec(&out).unwrap_or_else(|e| {
                        panic!("round {round} variant {variant}: {e}: {qname} {qtype} {res:?}")
                    });
                    let want = if dnssec_ok { &with_do } else { &without };
                    let ctx = format!(
                        "round {round}, DO {dnssec_ok}, shared tail {}: {qname} {qtype} {res:?}",
                        shared && entry.has_shared_tail()
                    );
                    assert_eq!(seen(&got.answers), decayed(&want.answers, 2), "{ctx}");
                    assert_eq!(
                        seen(&got.authorities),
                        decayed(&want.authorities, 2),
                        "{ctx}"
                    );
                    assert_eq!(got.additionals.len(), 0, "{ctx}");
                    assert_eq!(got.edns.is_some(), edns, "{ctx}");
                    assert_eq!(
                        got.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok),
                        dnssec_ok,
                        "{ctx}"
                    );
                    let m = &got.metadata;
                    assert_eq!(m.id, 0xabcd, "{ctx}");
                    assert_eq!(m.message_type, MessageType::Response, "{ctx}");
                    assert_eq!(m.response_code, res.rcode, "{ctx}");
                    assert!(m.recursion_desired && m.recursion_available, "{ctx}");
                    assert!(!m.truncation && !m.authoritative, "{ctx}");
                    assert_eq!(m.checking_disabled, cd, "{ctx}");
                    // RFC 6840 §5.7-5.8: AD for a secure answer to a client that
                    // set DO or AD, never with CD.
                    let ad_due = res.security == Security::Secure && !cd && (ad || dnssec_ok);
                    assert_eq!(m.authentic_data, ad_due, "{ctx}");
                    assert_eq!(
                        got.queries.first().map(|q| q.name().to_lowercase()),
                        Some(qname.to_lowercase()),
                        "{ctx}"
                    );
                }
            }
        }
        assert!(
            cut_some > 1_000,
            "the cases cut DNSSEC records often ({cut_some})"
        );
        assert!(
            tailed_some > 300,
            "the cases end with a shareable proof often ({tailed_some})"
        );
    }

    /// A signed wildcard's expansion: `qname` A, the RRSIG made over the
    /// wildcard, and the NSEC proving no closer name, with its RRSIG.
    fn wildcard_expansion(
        qname: &str,
        sig_a: &RData,
        nsec: &Record,
        sig_nsec: &Record,
    ) -> Resolution {
        let qname = Name::from_ascii(qname).expect("name");
        Resolution {
            rcode: ResponseCode::NoError,
            answers: vec![
                Record::from_rdata(qname.clone(), 300, RData::A(A::new(192, 0, 2, 9))),
                Record::from_rdata(qname, 300, sig_a.clone()),
            ],
            authorities: vec![nsec.clone(), sig_nsec.clone()],
            security: Security::Secure,
        }
    }

    #[test]
    fn names_under_one_signed_wildcard_share_one_copy_of_its_proof() {
        let mut rng = Rng(0x71a1_5eed);
        let wild = Name::from_ascii("*.w.sec.lab.").expect("name");
        let sig_a = signature(&mut rng, RecordType::A, &wild);
        let nsec = Record::from_rdata(wild.clone(), 300, rdata(&mut rng, RecordType::NSEC, &wild));
        let sig_nsec = Record::from_rdata(
            wild.clone(),
            300,
            signature(&mut rng, RecordType::NSEC, &wild),
        );
        let tails = Tails::default();
        let mut entries = Vec::new();
        for name in ["x1.w.sec.lab.", "x22.w.sec.lab.", "deep.x333.w.sec.lab."] {
            let qname = Name::from_ascii(name).expect("name");
            let res = wildcard_expansion(name, &sig_a, &nsec, &sig_nsec);
            let wire = encode(&qname, RecordType::A, &res, true).expect("encodes");
            let whole = wire.len();
            let mut entry = CachedAnswer::from_wire(wire, 0).expect("walks");
            entry.security = Security::Secure;
            entry.share_tail(&tails);
            assert!(entry.has_shared_tail(), "{name}");

            assert!(
                entry.head().len() < whole / 2,
                "{name}: the entry keeps the A record alone"
            );
            entries.push((qname, res, entry));
        }
        assert_eq!(tails.live(), 1, "one proof for the three names");
        let one = tails.bytes();
        assert!(
            one > 200 && one < 600,
            "one proof's bytes, counted once: {one}"
        );
        for (qname, res, entry) in &entries {
            for dnssec_ok in [true, false] {
                let raw = query(qname, RecordType::A, true, dnssec_ok, false, false);
                let q = parse_query(&raw).expect("a query");
                let mut out = Vec::new();
                assert!(entry.render(&q, 3_000, true, None, 65_535, &mut out));
                let got = Message::from_vec(&out).expect("decodes");
                let want = Message::from_vec(
                    &encode(qname, RecordType::A, res, dnssec_ok).expect("encodes"),
                )
                .expect("decodes");
                assert_eq!(
                    seen(&got.answers),
                    decayed(&want.answers, 3),
                    "{qname} DO {dnssec_ok}"
                );
                assert_eq!(
                    seen(&got.authorities),
                    decayed(&want.authorities, 3),
                    "{qname} DO {dnssec_ok}"
                );
                assert_eq!(got.authorities.len(), if dnssec_ok { 2 } else { 0 });
                assert_eq!(got.metadata.authentic_data, dnssec_ok);
            }
        }
        drop(entries);
        assert_eq!(tails.live(), 0, "the proof goes with the last answer");
        assert_eq!(tails.bytes(), 0, "and its bytes with it");
    }

    #[test]
    fn a_kept_pointer_into_a_cut_is_found_and_the_message_rearranged() {
        // An SOA after the answer's RRSIG whose names point into the
        // RRSIG's signer name: cutting the RRSIG would leave them dangling.
        let qname = Name::from_ascii("www.a.lab.").expect("name");
        let mut msg = Message::new(0, MessageType::Response, OpCode::Query);
        msg.add_query(Query::query(qname.clone(), RecordType::A));
        msg.metadata.response_code = ResponseCode::NoError;
        msg.answers = vec![
            Record::from_rdata(qname.clone(), 300, RData::A(A::new(192, 0, 2, 1))),
            Record::from_rdata(
                qname.clone(),
                300,
                RData::DNSSEC(DNSSECRData::RRSIG(RRSIG::from_sig(
                    SigInput {
                        type_covered: RecordType::A,
                        algorithm: Algorithm::ECDSAP256SHA256,
                        num_labels: 3,
                        original_ttl: 300,
                        sig_expiration: SerialNumber::new(2_000_000_000),
                        sig_inception: SerialNumber::new(1_700_000_000),
                        key_tag: 1,
                        signer_name: Name::from_ascii("sec.lab.").expect("name"),
                    },
                    vec![7; 64],
                ))),
            ),
        ];
        let soa_owner = Name::from_ascii("sec.lab.").expect("name");
        msg.authorities = vec![Record::from_rdata(
            soa_owner.clone(),
            300,
            RData::SOA(SOA::new(
                Name::from_ascii("ns.other.lab.").expect("name"),
                Name::from_ascii("sec.lab.").expect("name"),
                1,
                2,
                3,
                4,
                5,
            )),
        )];
        let wire = msg.to_vec().expect("encodes");
        // hickory remembers the uncompressed signer name as a target and
        // points the SOA's owner and RNAME at it.
        assert_eq!(locate(&wire), Some(Layout::Unordered));
        let arranged = arrange(&wire).expect("arranged");
        let Some(Layout::Ready(withheld)) = locate(&arranged) else {
            panic!("arranged is ready");
        };
        assert_eq!(withheld.counts(), [1, 0]);
        let mut out = Vec::new();
        withheld.copy_without(&arranged, &mut out);
        let plain = Message::from_vec(&out).expect("a DO=0 copy decodes");
        assert_eq!(plain.answers.len(), 1);
        assert_eq!(plain.authorities[0].name, soa_owner);
    }
}
