//! One link of the chain of trust at a time (RFC 4035 §5).
//!
//! [`verify_dnskeys`] proves a zone's DNSKEY RRset from the DS set its
//! parent signed, or from a trust anchor (§5.2); [`verify_rrset`] proves
//! any RRset from its RRSIGs and the zone's proven keys (§5.3). Both return
//! the reason in RFC 8914 terms when they cannot.

use hickory_proto::dnssec::rdata::{DNSKEY, DS, RRSIG};
use hickory_proto::dnssec::{PublicKey, Verifier};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};

use super::{dnskey, rrsig, small_rsa};

/// Why an RRset or a key set is bogus, each an RFC 8914 §4 INFO-CODE.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Bogus {
    #[error("no signature over {0} verifies")]
    BadSignature(String),
    #[error("every signature over {0} has expired")]
    SignatureExpired(String),
    #[error("no signature over {0} is valid yet")]
    SignatureNotYetValid(String),
    #[error("no DNSKEY of {0} matches its DS set or the signatures made with it")]
    DnskeyMissing(String),
    #[error("{0} carries no RRSIG")]
    RrsigsMissing(String),
    #[error("the negative answer for {0} is not proven: {1}")]
    NsecMissing(String, &'static str),
}

impl Bogus {
    /// The RFC 8914 §4 INFO-CODE for this failure.
    pub fn ede_code(&self) -> u16 {
        match self {
            Bogus::BadSignature(_) => 6,
            Bogus::SignatureExpired(_) => 7,
            Bogus::SignatureNotYetValid(_) => 8,
            Bogus::DnskeyMissing(_) => 9,
            Bogus::RrsigsMissing(_) => 10,
            Bogus::NsecMissing(..) => 12,
        }
    }
}

/// A zone's DNSKEYs, proven by a chain of trust.
#[derive(Debug, Clone)]
pub struct KeySet {
    pub zone: Name,
    pub keys: Vec<DNSKEY>,
    /// How long the proof stands: the DNSKEY RRset's TTL capped by its signature.
    pub ttl: u32,
}

/// What a DS set (or anchor) says of the zone below it.
#[derive(Debug, Clone)]
pub enum Link {
    /// The zone's keys are proven; its data can be checked.
    Secure(KeySet),
    /// The DS set uses only algorithms or digests this validator does not
    /// implement: the zone is treated as unsigned (RFC 4035 §5.2, RFC 6840
    /// §5.2), its data returned without AD.
    Insecure,
}

/// Proves the DNSKEY RRset of `zone` (`dnskeys`, signed by `rrsigs`) from
/// the DS set `ds` its parent published, or from DNSKEY trust anchors
/// `anchor_keys` (RFC 4035 §5.2): some key must match a usable DS (or an
/// anchor), and that key must sign the DNSKEY RRset. `now` is the time in
/// seconds since the epoch (serial arithmetic, RFC 4034 §3.1.5).
pub fn verify_dnskeys(
    zone: &Name,
    dnskeys: &[Record],
    rrsigs: &[Record],
    ds: &[DS],
    anchor_keys: &[DNSKEY],
    now: u32,
) -> Result<Link, Bogus> {
    let usable_ds: Vec<&DS> = ds
        .iter()
        .filter(|d| d.digest_type().is_supported() && d.algorithm().is_supported())
        .collect();
    if anchor_keys.is_empty() && !ds.is_empty() && usable_ds.is_empty() {
        return Ok(Link::Insecure);
    }
    let published: Vec<&DNSKEY> = dnskeys
        .iter()
        .filter(|r| r.name == *zone)
        .filter_map(dnskey)
        .collect();
    let entry: Vec<DNSKEY> = published
        .iter()
        .filter(|key| key.zone_key() && !key.revoke())
        .filter(|key| {
            anchor_keys.contains(key)
                || usable_ds.iter().any(|d| {
                    key.calculate_key_tag().ok() == Some(d.key_tag())
                        && key.public_key().algorithm() == d.algorithm()
                        && d.covers(zone, key).unwrap_or(false)
                })
        })
        .map(|key| (*key).clone())
        .collect();
    if entry.is_empty() {
        return Err(Bogus::DnskeyMissing(zone.to_string()));
    }
    let entry = KeySet {
        zone: zone.clone(),
        keys: entry,
        ttl: u32::MAX,
    };
    let ttl = verify_rrset(zone, RecordType::DNSKEY, dnskeys, rrsigs, &entry, now)?;
    Ok(Link::Secure(KeySet {
        zone: zone.clone(),
        keys: published
            .into_iter()
            .filter(|key| key.zone_key() && !key.revoke())
            .cloned()
            .collect(),
        ttl,
    }))
}

/// Proves the RRset (`owner`, `rtype`) in `records` from the RRSIGs over it
/// in `rrsigs` and the proven `keys` of its zone (RFC 4035 §5.3.1): the
/// signer must be that zone and the owner inside it, the label count no
/// more than the owner's (fewer: a wildcard expansion), now within the
/// validity window, the key tag and algorithm a zone key's. Returns the
/// TTL the RRset may be kept for (§5.3.3: no longer than its original TTL
/// and the signature's expiry).
pub fn verify_rrset(
    owner: &Name,
    rtype: RecordType,
    records: &[Record],
    rrsigs: &[Record],
    keys: &KeySet,
    now: u32,
) -> Result<u32, Bogus> {
    // Named only for a failure: a verified RRset costs no formatting.
    let what = || format!("{owner} {rtype}");
    // RFC 4034 §6.3: the canonical RRset holds each record once. A
    // response may repeat one (a DNAME applied twice along a chain); the
    // signature was made over the set without the repeat.
    let mut rrset: Vec<&Record> = Vec::new();
    for r in records
        .iter()
        .filter(|r| r.name == *owner && r.record_type() == rtype)
    {
        if !rrset.iter().any(|kept| kept.data == r.data) {
            rrset.push(r);
        }
    }
    let sigs: Vec<(&Record, &RRSIG)> = rrsigs
        .iter()
        .filter(|r| r.name == *owner)
        .filter_map(|r| rrsig(r).map(|s| (r, s)))
        .filter(|(_, s)| s.input().type_covered == rtype)
        .collect();
    if sigs.is_empty() {
        return Err(Bogus::RrsigsMissing(what()));
    }
    let (mut expired, mut early, mut keyless, mut bad) = (0, 0, 0, 0);
    for (sig_record, sig) in sigs {
        let input = sig.input();
        if input.signer_name != keys.zone
            || !keys.zone.zone_of(owner)
            || input.num_labels > owner.num_labels()
        {
            bad += 1;
            continue;
        }
        // Serial arithmetic (RFC 1982), so the window survives 2106.
        if (input.sig_expiration.get().wrapping_sub(now) as i32) < 0 {
            expired += 1;
            continue;
        }
        if (now.wrapping_sub(input.sig_inception.get()) as i32) < 0 {
            early += 1;
            continue;
        }
        let candidates: Vec<&DNSKEY> = keys
            .keys
            .iter()
            .filter(|k| {
                k.public_key().algorithm() == input.algorithm
                    && k.calculate_key_tag().ok() == Some(input.key_tag)
            })
            .collect();
        if candidates.is_empty() {
            keyless += 1;
            continue;
        }
        let verified = candidates.iter().any(|key| {
            small_rsa::verify(key, owner, sig, &rrset).unwrap_or_else(|| {
                key.verify_rrsig(owner, DNSClass::IN, sig, rrset.iter().copied())
                    .is_ok()
            })
        });
        if verified {
            let until_expiry = input.sig_expiration.get().wrapping_sub(now);
            let ttl = rrset
                .iter()
                .map(|r| r.ttl)
                .chain([sig_record.ttl, input.original_ttl, until_expiry, keys.ttl])
                .min()
                .unwrap_or(0);
            return Ok(ttl);
        }
        bad += 1;
    }
    Err(if bad > 0 {
        Bogus::BadSignature(what())
    } else if keyless > 0 {
        Bogus::DnskeyMissing(keys.zone.to_string())
    } else if expired > 0 {
        Bogus::SignatureExpired(what())
    } else if early > 0 {
        Bogus::SignatureNotYetValid(what())
    } else {
        Bogus::BadSignature(what())
    })
}
