//! DNSSEC validation (RFC 4033–4035, RFC 5155, RFC 6840): the pieces the
//! validator ([`crate::resolve::validate`]) builds the chain of trust from.
//!
//! - [`anchors`]: where trust starts (RFC 4033 §2): the root's DS set built
//!   in, or an Unbound-style `trust-anchor-file` of DS and DNSKEY lines.
//! - [`verify`]: one link of the chain at a time, with hickory-proto's
//!   signature primitives underneath: a zone's DNSKEY RRset against the DS
//!   set its parent signed (RFC 4035 §5.2), and any RRset against its RRSIGs
//!   and the zone's keys (RFC 4035 §5.3): validity window, key tag, signer
//!   name, label count, TTL capped by the signature.
//! - [`small_rsa`]: RSA keys under 1024 bits, which ring refuses.
//! - [`denial`]: whether verified NSEC or NSEC3 records prove an NXDOMAIN,
//!   a NODATA (wildcard included) or an unsigned delegation.
//! - [`keys`]: the verdict of the chain of trust per name, kept for the
//!   DNSKEY TTL so a zone's keys are proven once.
//! - [`aggressive`]: validated NSEC ranges answering NXDOMAIN (RFC 8198).
//! - [`security`]: the status the cache keeps per entry and AD reports.
//!
//! Every failure says which RFC 8914 Extended DNS Error it is, so a bogus
//! answer can carry the reason to the client.

pub mod aggressive;
pub mod anchors;
pub mod denial;
pub mod keys;
pub mod security;
pub mod small_rsa;
pub mod verify;

pub use anchors::{AnchorError, TrustAnchors};
pub use denial::{Denied, Proof, is_delegation, nsec_proof, nsec3_proof, wildcard_expansion_proof};
pub use security::Security;

use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, NSEC, NSEC3, RRSIG};
use hickory_proto::rr::{RData, Record, RecordType};

/// True for an RRSIG over `rtype`.
pub fn covers(record: &Record, rtype: RecordType) -> bool {
    rrsig(record).is_some_and(|sig| sig.input().type_covered == rtype)
}

/// The RRSIG data of `record`, if it is one.
pub fn rrsig(record: &Record) -> Option<&RRSIG> {
    match &record.data {
        RData::DNSSEC(DNSSECRData::RRSIG(sig)) => Some(sig),
        _ => None,
    }
}

/// The DNSKEY data of `record`, if it is one.
pub fn dnskey(record: &Record) -> Option<&DNSKEY> {
    match &record.data {
        RData::DNSSEC(DNSSECRData::DNSKEY(key)) => Some(key),
        _ => None,
    }
}

/// The NSEC data of `record`, if it is one.
pub fn nsec(record: &Record) -> Option<&NSEC> {
    match &record.data {
        RData::DNSSEC(DNSSECRData::NSEC(n)) => Some(n),
        _ => None,
    }
}

/// The NSEC3 data of `record`, if it is one.
pub fn nsec3(record: &Record) -> Option<&NSEC3> {
    match &record.data {
        RData::DNSSEC(DNSSECRData::NSEC3(n)) => Some(n),
        _ => None,
    }
}
pub use verify::{Bogus, KeySet, Link, verify_dnskeys, verify_rrset};

/// Records the validator's unit tests build by hand.
#[cfg(test)]
pub(crate) mod testing {
    use hickory_proto::dnssec::rdata::{DNSSECRData, NSEC};
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    pub fn n(s: &str) -> Name {
        Name::from_ascii(s).expect("name")
    }

    /// `owner NSEC next types`, TTL 300, unsigned.
    pub fn nsec_record(owner: &str, next: &str, types: &[RecordType]) -> Record {
        Record::from_rdata(
            n(owner),
            300,
            RData::DNSSEC(DNSSECRData::NSEC(NSEC::new_cover_self(
                n(next),
                types.iter().copied(),
            ))),
        )
    }
}
