//! One first-tier entry as bytes that outlive the process that made them:
//! the value a fleet's shared cache holds (see `shared`), and the record
//! a warm-restart snapshot writes (issue #27, item 7).
//!
//! An entry's freshness is kept on a monotonic clock whose zero is the
//! process's start, so it means nothing to another process. The portable
//! form carries the wall-clock instant its TTLs ran out at instead, with
//! the wire bytes as stored (ID 0, question lower-cased, no OPT) and what
//! the entry knew besides them: its RFC 2181 §5.4.1 rank, its DNSSEC
//! status, and the answer variant (CD) it is: one entry serves clients
//! with and without DO (see [`super::withheld`]).
//!
//! Decoding rebuilds the entry through [`CachedAnswer::from_wire`] with
//! every TTL field lowered by the time that passed (RFC 1035 §3.2.1: a TTL
//! counts down from the moment the data was received), never by copying
//! private fields, so the in-memory layout may change without touching
//! the format. Whatever is short, long, of another version or out of
//! range is refused with a typed [`PortableError`]: bytes from a network
//! peer or a file are never trusted to be well formed.
//!
//! Layout, version 1 (integers big-endian):
//!
//! ```text
//! +---------+---------+------+----------+-------------+-----------+--------+---------+
//! | version | variant | rank | security | expires_ms  | ttl       | length | wire    |
//! | u8 = 1  | u8      | u8   | u8       | u64 (Unix)  | u32 (s)   | u16    | length  |
//! +---------+---------+------+----------+-------------+-----------+--------+---------+
//! ```
//!
//! `rank` 0 is an assembled answer, 1..=5 the ranks lowest first;
//! `security` 0 indeterminate, 1 insecure, 2 secure; `ttl` the entry's TTL
//! when it was stored (the smallest in the message), `expires_ms` the
//! Unix time in milliseconds at which it runs out.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::answer::CachedAnswer;
use super::record::Rank;
use crate::dnssec::Security;
use crate::wire;

/// The format this module writes; the only one it reads.
pub const VERSION: u8 = 1;

/// Bytes before the wire message.
pub const HEADER_LEN: usize = 1 + 1 + 1 + 1 + 8 + 4 + 2;

/// Why bytes are not an entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortableError {
    #[error("the value is {0} bytes, shorter than its header")]
    Truncated(usize),
    #[error("the value is version {0}, this taproot reads version {VERSION}")]
    UnknownVersion(u8),
    #[error("the value's rank byte {0} is none this taproot knows")]
    BadRank(u8),
    #[error("the value's security byte {0} is none this taproot knows")]
    BadSecurity(u8),
    #[error("the value's variant byte {0} has bits beyond CD")]
    BadVariant(u8),
    #[error("the value says {declared} bytes of message follow, {present} do")]
    BadLength { declared: usize, present: usize },
    #[error("the value's message does not parse as a cached response")]
    BadMessage,
    #[error("the value expired before now")]
    Expired,
    #[error("the entry is too large to encode ({0} bytes of message)")]
    TooLarge(usize),
}

/// The two clocks at one instant: the cache's monotonic milliseconds
/// ([`crate::clock::Clock::now_ms`]) and the wall clock's, by which
/// processes agree on when a TTL runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub monotonic_ms: u64,
    pub unix_ms: u64,
}

impl Now {
    /// `monotonic_ms` paired with the system's wall clock.
    pub fn at(monotonic_ms: u64) -> Now {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as u64;
        Now {
            monotonic_ms,
            unix_ms,
        }
    }
}

/// The metadata of an encoded entry, readable without rebuilding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub variant: u8,
    pub rank: Option<Rank>,
    pub security: Security,
    /// Unix milliseconds at which the entry's TTL runs out.
    pub expires_ms: u64,
    /// The entry's TTL when it was stored, in seconds.
    pub ttl: u32,
}

impl Header {
    /// Whole seconds of TTL left at `unix_ms` (0 once expired).
    pub fn remaining_s(&self, unix_ms: u64) -> u32 {
        (self.expires_ms.saturating_sub(unix_ms) / 1000).min(u64::from(u32::MAX)) as u32
    }
}

fn rank_byte(rank: Option<Rank>) -> u8 {
    match rank {
        None => 0,
        Some(Rank::Additional) => 1,
        Some(Rank::Referral) => 2,
        Some(Rank::NonAuthAnswer) => 3,
        Some(Rank::AuthAuthority) => 4,
        Some(Rank::AuthAnswer) => 5,
    }
}

fn rank_of(byte: u8) -> Result<Option<Rank>, PortableError> {
    Ok(match byte {
        0 => None,
        1 => Some(Rank::Additional),
        2 => Some(Rank::Referral),
        3 => Some(Rank::NonAuthAnswer),
        4 => Some(Rank::AuthAuthority),
        5 => Some(Rank::AuthAnswer),
        other => return Err(PortableError::BadRank(other)),
    })
}

fn security_byte(security: Security) -> u8 {
    match security {
        Security::Indeterminate => 0,
        Security::Insecure => 1,
        Security::Secure => 2,
    }
}

fn security_of(byte: u8) -> Result<Security, PortableError> {
    Ok(match byte {
        0 => Security::Indeterminate,
        1 => Security::Insecure,
        2 => Security::Secure,
        other => return Err(PortableError::BadSecurity(other)),
    })
}

/// Encodes `entry`, the answer variant `variant` (the last byte of its
/// key, see [`wire::answer_key`]), as seen at `now`.
pub fn encode(entry: &CachedAnswer, variant: u8, now: Now) -> Result<Vec<u8>, PortableError> {
    let message = entry.wire();
    let len = message.len();
    let declared = u16::try_from(len).map_err(|_| PortableError::TooLarge(len))?;
    let expires_mono = entry.stored_ms + u64::from(entry.ttl) * 1000;
    // The same distance from now on the wall clock (negative: already past).
    let expires_ms = (now.unix_ms + expires_mono).saturating_sub(now.monotonic_ms);
    let mut out = Vec::with_capacity(HEADER_LEN + len);
    out.push(VERSION);
    out.push(variant);
    out.push(rank_byte(entry.rank));
    out.push(security_byte(entry.security));
    out.extend_from_slice(&expires_ms.to_be_bytes());
    out.extend_from_slice(&entry.ttl.to_be_bytes());
    out.extend_from_slice(&declared.to_be_bytes());
    out.extend_from_slice(&message);
    Ok(out)
}

/// Reads the header and the message of `bytes`, checking the frame.
pub fn split(bytes: &[u8]) -> Result<(Header, &[u8]), PortableError> {
    let Some(head) = bytes.get(..HEADER_LEN) else {
        return match bytes.first() {
            Some(&v) if v != VERSION => Err(PortableError::UnknownVersion(v)),
            _ => Err(PortableError::Truncated(bytes.len())),
        };
    };
    if head[0] != VERSION {
        return Err(PortableError::UnknownVersion(head[0]));
    }
    let variant = head[1];
    if variant & !wire::VARIANT_CD != 0 {
        return Err(PortableError::BadVariant(variant));
    }
    let header = Header {
        variant,
        rank: rank_of(head[2])?,
        security: security_of(head[3])?,
        expires_ms: u64::from_be_bytes(head[4..12].try_into().unwrap_or_default()),
        ttl: u32::from_be_bytes(head[12..16].try_into().unwrap_or_default()),
    };
    let declared = usize::from(u16::from_be_bytes([head[16], head[17]]));
    let message = &bytes[HEADER_LEN..];
    if message.len() != declared {
        return Err(PortableError::BadLength {
            declared,
            present: message.len(),
        });
    }
    Ok((header, message))
}

/// Rebuilds the entry `bytes` hold, as fresh as it is at `now`. Its TTL
/// fields are lowered by the seconds elapsed since it was stored, and it
/// counts as stored at `now`; an entry with no second left is
/// [`PortableError::Expired`].
pub fn decode(bytes: &[u8], now: Now) -> Result<CachedAnswer, PortableError> {
    let (header, message) = split(bytes)?;
    let left = header.remaining_s(now.unix_ms);
    if left == 0 {
        return Err(PortableError::Expired);
    }
    let elapsed = header.ttl.saturating_sub(left);
    let mut wire = message.to_vec();
    let (offsets, _) = wire::ttl_offsets(&wire).ok_or(PortableError::BadMessage)?;
    for off in offsets {
        let at = usize::from(off);
        let field = wire.get_mut(at..at + 4).ok_or(PortableError::BadMessage)?;
        let ttl = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
        field.copy_from_slice(&ttl.saturating_sub(elapsed).to_be_bytes());
    }
    let mut entry =
        CachedAnswer::from_wire(wire, now.monotonic_ms).ok_or(PortableError::BadMessage)?;
    if entry.ttl == 0 {
        return Err(PortableError::Expired);
    }
    entry.rank = header.rank;
    entry.security = header.security;
    entry.set_variant(header.variant);
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{Resolution, encode as encode_resolution};
    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    fn entry(ttl: u32, stored_ms: u64) -> CachedAnswer {
        let name = Name::from_ascii("www.example.kr.").expect("name");
        let res = Resolution {
            rcode: ResponseCode::NoError,
            answers: vec![Record::from_rdata(
                name.clone(),
                ttl,
                RData::A(A::new(127, 0, 0, 7)),
            )],
            authorities: Vec::new(),
            security: Security::Secure,
        };
        let wire = encode_resolution(&name, RecordType::A, &res, true).expect("encodes");
        let mut e = CachedAnswer::from_wire(wire, stored_ms).expect("walks");
        e.rank = Some(Rank::AuthAnswer);
        e.security = Security::Secure;
        e.set_variant(wire::VARIANT_CD);
        e
    }

    fn ttls(e: &CachedAnswer) -> Vec<u32> {
        e.ttl_offsets()
            .map(|at| u32::from_be_bytes(e.head()[at..at + 4].try_into().expect("four bytes")))
            .collect()
    }

    #[test]
    fn an_entry_comes_back_with_its_metadata_and_ttls_decayed_by_wall_time() {
        let stored = entry(300, 5_000);
        // Made 2 s after it was stored, in a process whose clock reads 5 s less.
        let at_encode = Now {
            monotonic_ms: 7_000,
            unix_ms: 1_700_000_000_000,
        };
        let bytes = encode(&stored, wire::VARIANT_CD, at_encode).expect("encodes");
        let (header, _) = split(&bytes).expect("frames");
        assert_eq!(header.expires_ms, 1_700_000_000_000 + 298_000);
        assert_eq!(header.ttl, 300);
        // Another process, 100 s of wall time later.
        let later = Now {
            monotonic_ms: 10,
            unix_ms: 1_700_000_100_000,
        };
        let back = decode(&bytes, later).expect("decodes");
        assert_eq!(back.rank, Some(Rank::AuthAnswer));
        assert_eq!(back.security, Security::Secure);
        assert_eq!(back.stored_ms, 10);
        assert_eq!(back.ttl, 198);
        assert_eq!(ttls(&back), vec![198]);
        assert_eq!(back.qname(), stored.qname());
        // The bytes past the TTLs are the same message.
        assert_eq!(back.wire().len(), stored.wire().len());
        // The variant went along: the store finds it under the DO key.
        let mut key = stored.qname().to_vec();
        key.extend_from_slice(&[0, 1, 0, 1, wire::VARIANT_CD]);
        assert!(store::Entry::answers_key(&back, &key));
    }

    use super::super::store;

    #[test]
    fn an_expired_value_is_refused() {
        let stored = entry(10, 0);
        let now = Now {
            monotonic_ms: 0,
            unix_ms: 1_000_000,
        };
        let bytes = encode(&stored, 0, now).expect("encodes");
        let later = Now {
            monotonic_ms: 0,
            unix_ms: 1_010_000,
        };
        assert_eq!(decode(&bytes, later).err(), Some(PortableError::Expired));
    }

    #[test]
    fn truncated_garbage_and_unknown_versions_are_typed_errors() {
        let now = Now {
            monotonic_ms: 0,
            unix_ms: 1_000_000,
        };
        let bytes = encode(&entry(300, 0), 0, now).expect("encodes");
        assert_eq!(decode(&[], now).err(), Some(PortableError::Truncated(0)));
        assert!(matches!(
            decode(&bytes[..HEADER_LEN - 1], now),
            Err(PortableError::Truncated(_))
        ));
        // Every cut of a valid value is refused, never a panic.
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], now).is_err(), "cut at {cut}");
        }
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert_eq!(
            decode(&v2, now).err(),
            Some(PortableError::UnknownVersion(2))
        );
        let mut rank = bytes.clone();
        rank[2] = 9;
        assert_eq!(decode(&rank, now).err(), Some(PortableError::BadRank(9)));
        let mut sec = bytes.clone();
        sec[3] = 7;
        assert_eq!(decode(&sec, now).err(), Some(PortableError::BadSecurity(7)));
        let mut variant = bytes.clone();
        variant[1] = 0x80;
        assert_eq!(
            decode(&variant, now).err(),
            Some(PortableError::BadVariant(0x80))
        );
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(
            decode(&long, now),
            Err(PortableError::BadLength { .. })
        ));
        // A well-framed message that is not DNS.
        let mut junk = bytes[..HEADER_LEN].to_vec();
        junk[16..18].copy_from_slice(&5u16.to_be_bytes());
        junk.extend_from_slice(&[0xff; 5]);
        assert_eq!(decode(&junk, now).err(), Some(PortableError::BadMessage));
        // Pseudo-random bytes with a valid header never panic.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2_000 {
            let mut noise = bytes[..HEADER_LEN].to_vec();
            let n = (seed % 64) as usize;
            for _ in 0..n {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                noise.push(seed as u8);
            }
            noise[16..18].copy_from_slice(&(n as u16).to_be_bytes());
            let _ = decode(&noise, now);
        }
    }
}
