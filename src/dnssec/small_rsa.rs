//! RSA signatures made with keys shorter than 1024 bits.
//!
//! RSA/SHA-1 and RSA/SHA-2 keys (algorithms 5, 7, 8 and 10) may be as short
//! as 512 bits (RFC 3110 §2, RFC 5702 §2), and RFC 5155's own examples use
//! 512-bit keys. ring, under hickory-proto, refuses RSA keys under 1024
//! bits, which would turn every answer of such a zone into a bogus one.
//! Their signatures are checked here instead, with RustCrypto's `rsa`
//! (PKCS #1 v1.5, RFC 8017 §8.2.2) over the same canonical data hickory
//! builds (RFC 4034 §3.1.8.1); keys of 1024 bits and more stay with ring.
//! Unbound accepts these sizes too (it checks signatures with OpenSSL).

use hickory_proto::dnssec::rdata::{DNSKEY, RRSIG};
use hickory_proto::dnssec::{PublicKey, TBS};
use hickory_proto::rr::{DNSClass, Name, Record};
use rsa::{BigUint, Pkcs1v15Sign, RsaPublicKey};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

/// The shortest RSA modulus ring verifies; shorter keys are checked here.
pub const RING_MIN_RSA_BITS: usize = 1024;

/// The RSA algorithm numbers (RFC 3110, RFC 5155 §2, RFC 5702).
const RSASHA1: u8 = 5;
const RSASHA1_NSEC3_SHA1: u8 = 7;
const RSASHA256: u8 = 8;
const RSASHA512: u8 = 10;

/// The digest an RSA algorithm signs.
enum Hash {
    Sha1,
    Sha256,
    Sha512,
}

/// The modulus and the exponent of an RSA public key in DNSKEY form
/// (RFC 3110 §2: a one-byte exponent length, or zero and two bytes).
fn modulus_and_exponent(key: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = key.split_first()?;
    let (exponent_len, rest) = if first == 0 {
        let (len, rest) = rest.split_at_checked(2)?;
        (usize::from(u16::from_be_bytes([len[0], len[1]])), rest)
    } else {
        (usize::from(first), rest)
    };
    let (exponent, modulus) = rest.split_at_checked(exponent_len)?;
    (!exponent.is_empty() && !modulus.is_empty()).then_some((modulus, exponent))
}

/// Whether `sig` over `rrset` (owned by `owner`) verifies with `key`, when
/// `key` is an RSA key shorter than [`RING_MIN_RSA_BITS`]; `None` for any
/// other key, which ring checks.
pub fn verify(key: &DNSKEY, owner: &Name, sig: &RRSIG, rrset: &[&Record]) -> Option<bool> {
    let public = key.public_key();
    // By number: hickory marks 5 and 7 deprecated, but RFC 8624 §3.1 still
    // has validators verify them.
    let hash = match u8::from(public.algorithm()) {
        RSASHA1 | RSASHA1_NSEC3_SHA1 => Hash::Sha1,
        RSASHA256 => Hash::Sha256,
        RSASHA512 => Hash::Sha512,
        _ => return None,
    };
    let (modulus, exponent) = modulus_and_exponent(public.public_bytes())?;
    let modulus = BigUint::from_bytes_be(modulus);
    if modulus.bits() >= RING_MIN_RSA_BITS {
        return None;
    }
    let Ok(rsa_key) = RsaPublicKey::new(modulus, BigUint::from_bytes_be(exponent)) else {
        return Some(false);
    };
    let Ok(tbs) = TBS::from_input(owner, DNSClass::IN, sig.input(), rrset.iter().copied()) else {
        return Some(false);
    };
    let data: &[u8] = tbs.as_ref();
    let (scheme, digest) = match hash {
        Hash::Sha1 => (Pkcs1v15Sign::new::<Sha1>(), Sha1::digest(data).to_vec()),
        Hash::Sha256 => (Pkcs1v15Sign::new::<Sha256>(), Sha256::digest(data).to_vec()),
        Hash::Sha512 => (Pkcs1v15Sign::new::<Sha512>(), Sha512::digest(data).to_vec()),
    };
    Some(rsa_key.verify(scheme, &digest, sig.sig()).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_exponent_length_forms_of_rfc_3110_are_read() {
        assert_eq!(
            modulus_and_exponent(&[1, 3, 0xab, 0xcd]),
            Some((&[0xab, 0xcd][..], &[3][..]))
        );
        assert_eq!(
            modulus_and_exponent(&[0, 0, 1, 3, 0xab]),
            Some((&[0xab][..], &[3][..]))
        );
        assert_eq!(modulus_and_exponent(&[4, 1, 0, 1]), None, "no modulus");
        assert_eq!(modulus_and_exponent(&[0, 1]), None, "truncated length");
    }
}
