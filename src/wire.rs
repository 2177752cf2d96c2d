//! Byte-level DNS message handling for the hot path.
//!
//! A cache hit must not pay for a full decode into hickory's `Message` and a
//! re-encode: the request's question is read in place, and the answer is
//! rendered from stored wire bytes with the ID, the question's spelling and
//! the TTLs patched (RFC 1035 §4.1). Everything here works on slices and
//! never panics on hostile input: every read is bounds-checked.

/// RFC 1035 §4.1.1: the fixed header length.
pub const HEADER_LEN: usize = 12;
/// RFC 1035 §2.3.4.
pub const MAX_NAME_LEN: usize = 255;
/// RFC 1035 §2.3.4.
pub const MAX_LABEL_LEN: usize = 63;
/// The longest cache key: a name, type, class and variant (see [`answer_key`]).
pub const KEY_MAX: usize = MAX_NAME_LEN + 5;
/// RFC 6891 §6.1.2: the OPT pseudo-RR type.
pub const TYPE_OPT: u16 = 41;

/// Response codes the server writes itself (RFC 1035 §4.1.1).
pub mod rcode {
    pub const NOERROR: u16 = 0;
    pub const FORMERR: u16 = 1;
    pub const SERVFAIL: u16 = 2;
    pub const NOTIMP: u16 = 4;
    pub const REFUSED: u16 = 5;
}

/// Query types the handler treats apart (RFC 6895 §3.1, RFC 8482).
pub mod qtype {
    pub const OPT: u16 = super::TYPE_OPT;
    pub const TKEY: u16 = 249;
    pub const TSIG: u16 = 250;
    pub const IXFR: u16 = 251;
    pub const AXFR: u16 = 252;
    pub const MAILB: u16 = 253;
    pub const MAILA: u16 = 254;
    pub const SVCB: u16 = 64;
    pub const ANY: u16 = 255;
}
/// Payload size taproot offers clients (DNS flag day 2020).
pub const SERVER_EDNS_PAYLOAD: u16 = 1232;
/// RFC 6891 §7: extended RCODE for an unsupported EDNS version.
pub const RCODE_BADVERS: u16 = 16;
/// The last byte of an answer key: which variant of the answer a query
/// gets. CD: unchecked data for a client that validates itself (RFC 4035
/// §3.2.2). DO picks no variant: one entry holds the DNSSEC records and a
/// client without DO is answered without them (see `cache::withheld`).
pub const VARIANT_CD: u8 = 2;

/// Header flag bits (RFC 1035 §4.1.1, RFC 4035 §3.2 for AD/CD).
pub mod flags {
    pub const QR: u16 = 0x8000;
    pub const AA: u16 = 0x0400;
    pub const TC: u16 = 0x0200;
    pub const RD: u16 = 0x0100;
    pub const RA: u16 = 0x0080;
    pub const AD: u16 = 0x0020;
    pub const CD: u16 = 0x0010;
    pub const OPCODE_MASK: u16 = 0x7800;
    pub const RCODE_MASK: u16 = 0x000f;
}

/// The EDNS part of a client's query (RFC 6891 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientEdns {
    pub payload: u16,
    pub dnssec_ok: bool,
    pub version: u8,
    /// The client sent an edns-tcp-keepalive option (RFC 7828 §3.2.1):
    /// a stream transport answers with its idle timeout.
    pub keepalive: bool,
    /// The client sent a Padding option (RFC 7830 §3): over an encrypted
    /// transport its responses are padded too (RFC 8467 §4.1).
    pub padding: bool,
}

/// EDNS option codes (IANA "DNS EDNS0 Option Codes").
pub mod option {
    /// RFC 7828.
    pub const TCP_KEEPALIVE: u16 = 11;
    /// RFC 7830.
    pub const PADDING: u16 = 12;
}

/// A client query read in place from its datagram or TCP frame.
#[derive(Debug, Clone, Copy)]
pub struct ClientQuery<'a> {
    pub id: u16,
    pub flags: u16,
    /// The question name exactly as the client spelled it, in wire form.
    pub qname: &'a [u8],
    pub qtype: u16,
    pub qclass: u16,
    /// Offset just past the question: header + question is `raw[..question_end]`.
    pub question_end: usize,
    pub edns: Option<ClientEdns>,
}

impl ClientQuery<'_> {
    pub fn rd(&self) -> bool {
        self.flags & flags::RD != 0
    }
    pub fn cd(&self) -> bool {
        self.flags & flags::CD != 0
    }
    pub fn dnssec_ok(&self) -> bool {
        self.edns.is_some_and(|e| e.dnssec_ok)
    }
    /// The answer variant this query gets (see [`answer_key`]).
    #[inline]
    pub fn variant(&self) -> u8 {
        if self.flags & flags::CD != 0 {
            VARIANT_CD
        } else {
            0
        }
    }
    /// The largest UDP response the client accepts (RFC 6891 §6.2.5), capped at ours.
    pub fn udp_limit(&self) -> usize {
        match self.edns {
            Some(e) => e.payload.clamp(512, SERVER_EDNS_PAYLOAD) as usize,
            None => 512,
        }
    }
    /// The parse without its borrow of the packet, to be carried where the
    /// packet's borrow cannot go (into a miss's task) and reattached there
    /// with [`ParsedQuery::attach`] instead of parsing again.
    pub fn detach(&self) -> ParsedQuery {
        ParsedQuery {
            id: self.id,
            flags: self.flags,
            qtype: self.qtype,
            qclass: self.qclass,
            question_end: self.question_end,
            edns: self.edns,
        }
    }
}

/// A [`ClientQuery`] detached from its packet (the question name is at a
/// fixed offset, so it needs no pointer of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedQuery {
    id: u16,
    flags: u16,
    qtype: u16,
    qclass: u16,
    question_end: usize,
    edns: Option<ClientEdns>,
}

impl ParsedQuery {
    /// The query's EDNS, without the packet.
    pub fn edns(&self) -> Option<ClientEdns> {
        self.edns
    }

    /// The query again, over the packet it was parsed from; `None` when
    /// `raw` is too short to be that packet.
    #[inline]
    pub fn attach(self, raw: &[u8]) -> Option<ClientQuery<'_>> {
        let qname = raw.get(HEADER_LEN..self.question_end.checked_sub(4)?)?;
        Some(ClientQuery {
            id: self.id,
            flags: self.flags,
            qname,
            qtype: self.qtype,
            qclass: self.qclass,
            question_end: self.question_end,
            edns: self.edns,
        })
    }
}

/// Why a request gets no normal answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Not even a header, or a response: nothing is sent back (counted).
    Drop(DropReason),
    /// Answer with this RCODE and an echo of the header (FORMERR, NOTIMP, BADVERS).
    Error { id: u16, flags: u16, rcode: u16 },
}

/// Why a packet was dropped without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    TooShort,
    NotAQuery,
    Acl,
    RateLimit,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::TooShort => "malformed",
            DropReason::NotAQuery => "response",
            DropReason::Acl => "acl",
            DropReason::RateLimit => "ratelimit",
        }
    }
}

#[inline]
pub fn read_u16(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*buf.get(at)?, *buf.get(at + 1)?]))
}

#[inline]
pub fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Reads a client query. Refuses what Unbound refuses: more or fewer than one
/// question, compression in the question, answer or authority records in a
/// query, two OPT records (RFC 6891 §6.1.1), EDNS versions above 0 (BADVERS).
pub fn parse_query(raw: &[u8]) -> Result<ClientQuery<'_>, Rejection> {
    if raw.len() < HEADER_LEN {
        return Err(Rejection::Drop(DropReason::TooShort));
    }
    let id = u16::from_be_bytes([raw[0], raw[1]]);
    let fl = u16::from_be_bytes([raw[2], raw[3]]);
    if fl & flags::QR != 0 {
        return Err(Rejection::Drop(DropReason::NotAQuery));
    }
    let formerr = Rejection::Error {
        id,
        flags: fl,
        rcode: rcode::FORMERR,
    };
    if fl & flags::OPCODE_MASK != 0 {
        return Err(Rejection::Error {
            id,
            flags: fl,
            rcode: rcode::NOTIMP,
        });
    }
    let qdcount = u16::from_be_bytes([raw[4], raw[5]]);
    let ancount = u16::from_be_bytes([raw[6], raw[7]]);
    let nscount = u16::from_be_bytes([raw[8], raw[9]]);
    let arcount = u16::from_be_bytes([raw[10], raw[11]]);
    if qdcount != 1 || ancount != 0 || nscount != 0 {
        return Err(formerr);
    }
    let name_end = scan_plain_name(raw, HEADER_LEN).ok_or(formerr)?;
    let qtype = read_u16(raw, name_end).ok_or(formerr)?;
    let qclass = read_u16(raw, name_end + 2).ok_or(formerr)?;
    let question_end = name_end + 4;
    let mut edns = None;
    let mut at = question_end;
    for _ in 0..arcount {
        let rr = read_rr(raw, at).ok_or(formerr)?;
        if rr.rtype == TYPE_OPT {
            if edns.is_some() || rr.name_len != 1 {
                return Err(formerr);
            }
            let version = ((rr.ttl >> 16) & 0xff) as u8;
            let (keepalive, padding) = scan_options(raw, rr.ttl_at + 6, rr.end);
            edns = Some(ClientEdns {
                payload: rr.class,
                dnssec_ok: rr.ttl & 0x8000 != 0,
                version,
                keepalive,
                padding,
            });
        }
        at = rr.end;
    }
    if let Some(e) = edns
        && e.version > 0
    {
        return Err(Rejection::Error {
            id,
            flags: fl,
            rcode: RCODE_BADVERS,
        });
    }
    Ok(ClientQuery {
        id,
        flags: fl,
        qname: &raw[HEADER_LEN..name_end],
        qtype,
        qclass,
        question_end,
        edns,
    })
}

/// Which of the options a stream transport answers (keepalive, padding)
/// an OPT record's RDATA, `raw[at..end]`, holds. A query with no options
/// (most of them) costs one comparison.
#[inline]
fn scan_options(raw: &[u8], mut at: usize, end: usize) -> (bool, bool) {
    let (mut keepalive, mut padding) = (false, false);
    while at + 4 <= end {
        let (Some(code), Some(len)) = (read_u16(raw, at), read_u16(raw, at + 2)) else {
            break;
        };
        match code {
            option::TCP_KEEPALIVE => keepalive = true,
            option::PADDING => padding = true,
            _ => {}
        }
        at += 4 + len as usize;
    }
    (keepalive, padding)
}

/// The offset of the OPT record when it is the last record of `resp`, as
/// taproot's responses put it ([`push_opt`] appends it): options can then
/// be appended to the message in place.
pub fn trailing_opt(resp: &[u8]) -> Option<usize> {
    let qd = read_u16(resp, 4)?;
    let rrs =
        read_u16(resp, 6)? as usize + read_u16(resp, 8)? as usize + read_u16(resp, 10)? as usize;
    let mut at = HEADER_LEN;
    for _ in 0..qd {
        at = skip_name(resp, at)? + 4;
    }
    let mut last = None;
    for _ in 0..rrs {
        let rr = read_rr(resp, at)?;
        last = (rr.rtype == TYPE_OPT).then_some(at);
        at = rr.end;
    }
    last.filter(|_| at == resp.len())
}

/// Appends one option to the OPT record at `opt` (from [`trailing_opt`]).
pub fn append_option(resp: &mut Vec<u8>, opt: usize, code: u16, data: &[u8]) {
    let rdlen_at = opt + 9;
    let Some(rdlen) = read_u16(resp, rdlen_at) else {
        return;
    };
    let Ok(len) = u16::try_from(data.len()) else {
        return;
    };
    let Some(new) = rdlen.checked_add(4 + len) else {
        return;
    };
    resp[rdlen_at..rdlen_at + 2].copy_from_slice(&new.to_be_bytes());
    resp.extend_from_slice(&code.to_be_bytes());
    resp.extend_from_slice(&len.to_be_bytes());
    resp.extend_from_slice(data);
}

/// Scans an uncompressed name starting at `at`; returns the offset after it.
pub fn scan_plain_name(raw: &[u8], mut at: usize) -> Option<usize> {
    let start = at;
    loop {
        let len = *raw.get(at)? as usize;
        if len == 0 {
            at += 1;
            break;
        }
        if len > MAX_LABEL_LEN {
            return None; // a pointer or a reserved label type: not in a question
        }
        at += 1 + len;
        if at - start > MAX_NAME_LEN {
            return None;
        }
    }
    if at > raw.len() || at - start > MAX_NAME_LEN {
        return None;
    }
    Some(at)
}

/// Skips a possibly compressed name; returns the offset after it in the record.
/// Pointers are not followed (their target does not matter for skipping).
pub fn skip_name(raw: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *raw.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => {
                raw.get(at + 1)?;
                return Some(at + 2);
            }
            l if l > MAX_LABEL_LEN as u8 => return None,
            l => at += 1 + l as usize,
        }
    }
}

/// Appends the name at `at` of `raw` to `out` uncompressed, following
/// compression pointers (only backwards, as RFC 1035 §4.1.4 messages do,
/// so a loop cannot form); returns the offset after the name where it
/// starts. `None` for a name that does not walk or is over 255 octets.
pub fn expand_name(raw: &[u8], at: usize, out: &mut Vec<u8>) -> Option<usize> {
    let start = out.len();
    let mut end = None;
    let mut at = at;
    loop {
        let len = *raw.get(at)?;
        match len {
            0 => {
                out.push(0);
                return (out.len() - start <= MAX_NAME_LEN).then_some(end.unwrap_or(at + 1));
            }
            l if l & 0xc0 == 0xc0 => {
                let target = usize::from(read_u16(raw, at)? & 0x3fff);
                if target >= at {
                    return None;
                }
                end.get_or_insert(at + 2);
                at = target;
            }
            l if usize::from(l) > MAX_LABEL_LEN => return None,
            l => {
                let label = raw.get(at..at + 1 + usize::from(l))?;
                out.extend_from_slice(label);
                if out.len() - start > MAX_NAME_LEN {
                    return None;
                }
                at += 1 + usize::from(l);
            }
        }
    }
}

/// A resource record's position in a message.
#[derive(Debug, Clone, Copy)]
pub struct RrSpan {
    pub name_len: usize,
    pub rtype: u16,
    pub class: u16,
    pub ttl: u32,
    /// Offset of the 32-bit TTL field.
    pub ttl_at: usize,
    pub end: usize,
}

/// Reads the fixed part of a resource record at `at` (RFC 1035 §4.1.3).
pub fn read_rr(raw: &[u8], at: usize) -> Option<RrSpan> {
    let name_end = skip_name(raw, at)?;
    let rtype = read_u16(raw, name_end)?;
    let class = read_u16(raw, name_end + 2)?;
    let ttl = read_u32(raw, name_end + 4)?;
    let rdlen = read_u16(raw, name_end + 8)? as usize;
    let end = name_end + 10 + rdlen;
    if end > raw.len() {
        return None;
    }
    Some(RrSpan {
        name_len: name_end - at,
        rtype,
        class,
        ttl,
        ttl_at: name_end + 4,
        end,
    })
}

/// Offsets of every TTL field in a response, and the smallest TTL, skipping OPT.
/// `None` when the message does not walk cleanly.
pub fn ttl_offsets(raw: &[u8]) -> Option<(Vec<u16>, Option<u32>)> {
    if raw.len() < HEADER_LEN {
        return None;
    }
    let qd = read_u16(raw, 4)?;
    let rrs = read_u16(raw, 6)? as usize + read_u16(raw, 8)? as usize + read_u16(raw, 10)? as usize;
    let mut at = HEADER_LEN;
    for _ in 0..qd {
        at = skip_name(raw, at)? + 4;
    }
    let mut offsets = Vec::with_capacity(rrs);
    let mut min_ttl: Option<u32> = None;
    for _ in 0..rrs {
        let rr = read_rr(raw, at)?;
        if rr.rtype != TYPE_OPT {
            offsets.push(u16::try_from(rr.ttl_at).ok()?);
            min_ttl = Some(min_ttl.map_or(rr.ttl, |m| m.min(rr.ttl)));
        }
        at = rr.end;
    }
    Some((offsets, min_ttl))
}

/// Writes the lower-cased question name, type, class and answer variant
/// ([`VARIANT_CD`]) into `out`: the answer cache's key, built on the stack so a lookup allocates nothing.
#[inline]
pub fn answer_key<'b>(
    qname: &[u8],
    qtype: u16,
    qclass: u16,
    variant: u8,
    out: &'b mut [u8; KEY_MAX],
) -> &'b [u8] {
    let n = qname.len().min(MAX_NAME_LEN);
    for (o, b) in out[..n].iter_mut().zip(qname) {
        *o = b.to_ascii_lowercase();
    }
    out[n..n + 2].copy_from_slice(&qtype.to_be_bytes());
    out[n + 2..n + 4].copy_from_slice(&qclass.to_be_bytes());
    out[n + 4] = variant;
    &out[..n + 5]
}

/// Appends an OPT record offering our payload size, with the DO bit echoed
/// and, optionally, an Extended DNS Error (RFC 8914 §2).
pub fn push_opt(out: &mut Vec<u8>, dnssec_ok: bool, ext_rcode: u8, ede: Option<(u16, &str)>) {
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&SERVER_EDNS_PAYLOAD.to_be_bytes());
    out.push(ext_rcode);
    out.push(0);
    out.extend_from_slice(&(if dnssec_ok { 0x8000u16 } else { 0 }).to_be_bytes());
    match ede {
        Some((code, text)) => {
            let text = &text.as_bytes()[..text.len().min(200)];
            let optlen = 2 + text.len() as u16;
            out.extend_from_slice(&(4 + optlen).to_be_bytes());
            out.extend_from_slice(&15u16.to_be_bytes());
            out.extend_from_slice(&optlen.to_be_bytes());
            out.extend_from_slice(&code.to_be_bytes());
            out.extend_from_slice(text);
        }
        None => out.extend_from_slice(&0u16.to_be_bytes()),
    }
}

/// A header-and-question answer with `rcode`: FORMERR, REFUSED, SERVFAIL, NOTIMP,
/// BADVERS, or a TC=1 stub. Echoes ID, RD and CD; the question when it parsed.
pub fn error_response(
    id: u16,
    req_flags: u16,
    question: Option<(&[u8], &ClientQuery<'_>)>,
    rcode: u16,
    ra: bool,
    extra_flags: u16,
    ede: Option<(u16, &str)>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&id.to_be_bytes());
    let mut f =
        flags::QR | (req_flags & (flags::RD | flags::CD | flags::OPCODE_MASK)) | extra_flags;
    if ra {
        f |= flags::RA;
    }
    f |= rcode & 0x0f;
    out.extend_from_slice(&f.to_be_bytes());
    let (qd, q) = match question {
        Some((raw, q)) => (1u16, Some((raw, q))),
        None => (0, None),
    };
    let edns = q.and_then(|(_, q)| q.edns);
    let opt = edns.is_some() || rcode > 15;
    out.extend_from_slice(&qd.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&(opt as u16).to_be_bytes());
    if let Some((raw, q)) = q {
        out.extend_from_slice(&raw[HEADER_LEN..q.question_end]);
    }
    if opt {
        let dok = edns.is_some_and(|e| e.dnssec_ok);
        push_opt(&mut out, dok, (rcode >> 4) as u8, ede);
    }
    out
}

/// Reads a wire name (uncompressed, as in a question or a cache key) as text.
pub fn name_to_string(wire: &[u8]) -> String {
    let mut s = String::new();
    let mut at = 0;
    while let Some(&len) = wire.get(at) {
        if len == 0 || len as usize > MAX_LABEL_LEN {
            break;
        }
        let Some(label) = wire.get(at + 1..at + 1 + len as usize) else {
            break;
        };
        for &b in label {
            if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                s.push(b as char);
            } else {
                s.push_str(&format!("\\{b:03}"));
            }
        }
        s.push('.');
        at += 1 + len as usize;
    }
    if s.is_empty() {
        s.push('.');
    }
    s
}

/// An RCODE's mnemonic (RFC 6895 §2.3, the IANA registry), as dig prints
/// it: `NOERROR`, `NXDOMAIN`, …; `RCODE23` for one without a name.
pub fn rcode_mnemonic(rcode: u16) -> std::borrow::Cow<'static, str> {
    let name = match rcode {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        16 => "BADVERS",
        23 => "BADCOOKIE",
        other => return format!("RCODE{other}").into(),
    };
    name.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &[u8], qtype: u16, edns: bool) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, edns as u8];
        q.extend_from_slice(name);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        if edns {
            q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0]);
        }
        q
    }

    #[test]
    fn parses_a_plain_query_with_edns() {
        let raw = query(b"\x03www\x07Example\x03com\x00", 1, true);
        let q = parse_query(&raw).expect("valid");
        assert_eq!(q.id, 0x1234);
        assert!(q.rd());
        assert_eq!(q.qtype, 1);
        assert_eq!(q.edns.map(|e| e.payload), Some(1232));
        assert!(q.dnssec_ok());
        assert_eq!(name_to_string(q.qname), "www.Example.com.");
        let again = q.detach().attach(&raw).expect("same packet");
        assert_eq!(again.qname, q.qname);
        assert_eq!(again.detach(), q.detach());
        assert!(q.detach().attach(&raw[..HEADER_LEN + 3]).is_none());
    }

    #[test]
    fn rejects_what_a_query_may_not_hold() {
        assert_eq!(
            parse_query(&[1, 2, 3]).unwrap_err(),
            Rejection::Drop(DropReason::TooShort)
        );
        let mut many = query(b"\x00", 1, false);
        many[4] = 0xff;
        many[5] = 0xff;
        assert!(matches!(
            parse_query(&many),
            Err(Rejection::Error { rcode: 1, .. })
        ));
        let long_label = query(
            b"\x40aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\x00",
            1,
            false,
        );
        assert!(matches!(
            parse_query(&long_label),
            Err(Rejection::Error { rcode: 1, .. })
        ));
        let mut notimp = query(b"\x00", 1, false);
        notimp[2] |= 0x28; // opcode 5 (UPDATE)
        assert!(matches!(
            parse_query(&notimp),
            Err(Rejection::Error { rcode: 4, .. })
        ));
    }

    #[test]
    fn key_is_case_insensitive() {
        let mut a = [0u8; KEY_MAX];
        let mut b = [0u8; KEY_MAX];
        assert_eq!(
            answer_key(b"\x03WwW\x00", 1, 1, 0, &mut a),
            answer_key(b"\x03www\x00", 1, 1, 0, &mut b)
        );
    }
}
