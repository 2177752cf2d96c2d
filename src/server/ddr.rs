//! Discovery of Designated Resolvers (RFC 9462): a client that knows only
//! taproot's address asks `_dns.resolver.arpa. SVCB` and learns where the
//! same resolver speaks DNS over TLS and DNS over HTTPS, and the name its
//! certificate is valid for (RFC 9462 §4, the SVCB keys of RFC 9461).
//!
//! Taproot answers it itself when `server.tls.name` is set, from the
//! listeners it has bound: one record per DoT port (`alpn=dot`), one per
//! DoH port (`alpn=h2,http/1.1`, `dohpath`). Unbound and Knot Resolver
//! answer it only from zone data an operator writes by hand.

use crate::wire::{self, ClientQuery, flags};

/// `_dns.resolver.arpa.` in wire form (RFC 9462 §4).
const QNAME: &[u8] = b"\x04_dns\x08resolver\x04arpa\x00";
/// TTL of the designation records: the listeners change only on restart.
pub const TTL: u32 = 300;

/// SvcParamKeys (RFC 9460 §14.3.2, RFC 9461 §5).
mod key {
    pub const ALPN: u16 = 1;
    pub const PORT: u16 = 3;
    pub const DOHPATH: u16 = 7;
}

/// The SVCB records that designate taproot's encrypted listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Designation {
    /// Each record's RDATA.
    rdatas: Vec<Vec<u8>>,
}

impl Designation {
    /// The records for `name` (the certificate's name) with DoT on
    /// `tls_ports` and DoH on `https_ports` at `path`; `None` when the name
    /// is not a domain name or there is nothing to designate.
    pub fn new(
        name: &str,
        tls_ports: &[u16],
        https_ports: &[u16],
        path: &str,
    ) -> Option<Designation> {
        let target = encode_name(name)?;
        let mut rdatas = Vec::new();
        let mut seen = Vec::new();
        let listeners = tls_ports
            .iter()
            .map(|&p| (false, p))
            .chain(https_ports.iter().map(|&p| (true, p)));
        for (doh, port) in listeners {
            if seen.contains(&(doh, port)) {
                continue;
            }
            seen.push((doh, port));
            let priority = u16::try_from(seen.len()).ok()?;
            let mut r = Vec::with_capacity(64);
            r.extend_from_slice(&priority.to_be_bytes());
            r.extend_from_slice(&target);
            // Keys in increasing order (RFC 9460 §2.2).
            let alpns: &[&[u8]] = if doh {
                &[b"h2", b"http/1.1"]
            } else {
                &[b"dot"]
            };
            let mut alpn = Vec::new();
            for a in alpns {
                alpn.push(a.len() as u8);
                alpn.extend_from_slice(a);
            }
            param(&mut r, key::ALPN, &alpn);
            param(&mut r, key::PORT, &port.to_be_bytes());
            if doh {
                // RFC 9461 §5: a relative URI template with the `dns` variable.
                param(&mut r, key::DOHPATH, format!("{path}{{?dns}}").as_bytes());
            }
            rdatas.push(r);
        }
        (!rdatas.is_empty()).then_some(Designation { rdatas })
    }

    /// Whether `qname` (wire form, any case) is `_dns.resolver.arpa.`.
    #[inline]
    pub fn asks(qname: &[u8]) -> bool {
        qname.eq_ignore_ascii_case(QNAME)
    }

    /// The response to `q` (an SVCB query for [`QNAME`]) in `raw`:
    /// authoritative, with every record and, when asked, an OPT.
    pub fn answer(&self, q: &ClientQuery<'_>, raw: &[u8], recursion: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.rdatas.iter().map(Vec::len).sum::<usize>() * 2);
        let mut f = flags::QR | flags::AA | (q.flags & (flags::RD | flags::CD));
        if recursion {
            f |= flags::RA;
        }
        out.extend_from_slice(&q.id.to_be_bytes());
        out.extend_from_slice(&f.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&(self.rdatas.len() as u16).to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&u16::from(q.edns.is_some()).to_be_bytes());
        out.extend_from_slice(&raw[wire::HEADER_LEN..q.question_end]);
        for rdata in &self.rdatas {
            // The owner is the question name, by pointer (RFC 1035 §4.1.4).
            out.extend_from_slice(&[0xc0, wire::HEADER_LEN as u8]);
            out.extend_from_slice(&64u16.to_be_bytes());
            out.extend_from_slice(&1u16.to_be_bytes());
            out.extend_from_slice(&TTL.to_be_bytes());
            out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            out.extend_from_slice(rdata);
        }
        if let Some(e) = q.edns {
            wire::push_opt(&mut out, e.dnssec_ok, 0, None);
        }
        out
    }
}

fn param(r: &mut Vec<u8>, key: u16, value: &[u8]) {
    r.extend_from_slice(&key.to_be_bytes());
    r.extend_from_slice(&(value.len() as u16).to_be_bytes());
    r.extend_from_slice(value);
}

/// `dns.example.net` (with or without the final dot) in wire form.
fn encode_name(name: &str) -> Option<Vec<u8>> {
    let name = name.trim().trim_end_matches('.');
    if name.is_empty() || name.len() > wire::MAX_NAME_LEN - 2 {
        return None;
    }
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.split('.') {
        if label.is_empty() || label.len() > wire::MAX_LABEL_LEN {
            return None;
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.to_ascii_lowercase().as_bytes());
    }
    out.push(0);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_record_per_listener_port_with_dot_first() {
        let d = Designation::new("dns.example.net.", &[853, 853], &[443], "/dns-query")
            .expect("a designation");
        assert_eq!(d.rdatas.len(), 2, "the second 853 adds nothing");
        assert_eq!(&d.rdatas[0][..2], &[0, 1]);
        assert!(d.rdatas[1].ends_with(b"/dns-query{?dns}"));
    }

    #[test]
    fn a_name_that_is_not_a_domain_name_designates_nothing() {
        assert_eq!(Designation::new("a..b", &[853], &[], "/"), None);
        assert_eq!(Designation::new("dns.example.net", &[], &[], "/"), None);
    }

    #[test]
    fn the_question_is_matched_in_any_case() {
        assert!(Designation::asks(b"\x04_DNS\x08Resolver\x04ARPA\x00"));
        assert!(!Designation::asks(b"\x04_dns\x07example\x00"));
    }
}
