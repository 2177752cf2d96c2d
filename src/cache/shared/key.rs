//! Keys and seals: where an entry lives in Redis, and proof that the
//! fleet wrote it.
//!
//! A fleet's instances share one HMAC-SHA256 key (RFC 2104; the file named
//! by `cache.shared.key_secret_file`). The Redis key of an answer is an
//! HMAC of its first-tier key (the question's lower-cased name, type,
//! class and the DO/CD variant, see [`crate::wire::answer_key`]) and of
//! the flush generation, so no one reading Redis learns which names the
//! fleet asked for, and a flush makes every older key unreachable at once.
//! A value is the portable entry ([`crate::cache::portable`]: a version
//! byte and the payload) followed by an HMAC over the Redis key and those
//! bytes: a value written by anyone without the key, or moved under
//! another key, does not verify and is a miss.

use data_encoding::HEXLOWER;
use ring::hmac;

/// The key used when `key_secret_file` is empty. Anyone can forge values
/// under it, which is why a Secure status read under it is not trusted.
const DEFAULT_SECRET: &[u8] = b"taproot shared cache: no key_secret_file was set";

/// What every answer key starts with; `v1` is the value format's version
/// (see [`crate::cache::portable::VERSION`]).
pub const PREFIX: &str = "taproot:v1:";

/// The counter a flush increments (see the module doc).
pub const GENERATION_KEY: &str = "taproot:generation";

/// The channel flushes are published on.
pub const FLUSH_CHANNEL: &str = "taproot:flush";

/// Bytes of tag after each value.
pub const TAG_LEN: usize = 32;

/// Bytes of HMAC kept in a Redis key: 128 bits, hex-encoded.
const KEY_TAG_LEN: usize = 16;

/// Why a value read from Redis was refused before it was decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the value is shorter than its tag")]
    Short,
    #[error("the value's HMAC does not verify")]
    BadTag,
}

/// The fleet's HMAC key.
pub struct Keys {
    key: hmac::Key,
    /// True when the operator gave a secret: only then is a Secure status
    /// read from the tier believed.
    pub trusted: bool,
}

impl Keys {
    /// Keys from the contents of `key_secret_file` (surrounding white
    /// space ignored), or the built-in default for `None`.
    pub fn new(secret: Option<&[u8]>) -> Keys {
        let trusted = secret.is_some();
        let secret = secret.map_or(DEFAULT_SECRET, |s| s.trim_ascii());
        Keys {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            trusted,
        }
    }

    /// The Redis key of the first-tier key `answer_key` in flush
    /// `generation`.
    pub fn redis_key(&self, generation: u64, answer_key: &[u8]) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(b"key\0");
        ctx.update(&generation.to_be_bytes());
        ctx.update(answer_key);
        let tag = ctx.sign();
        let mut out = String::with_capacity(PREFIX.len() + 2 * KEY_TAG_LEN);
        out.push_str(PREFIX);
        out.push_str(&HEXLOWER.encode(&tag.as_ref()[..KEY_TAG_LEN]));
        out
    }

    fn tag(&self, redis_key: &str, payload: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(b"value\0");
        ctx.update(redis_key.as_bytes());
        ctx.update(&[0]);
        ctx.update(payload);
        ctx.sign()
    }

    /// `payload` with its tag appended, to be stored under `redis_key`.
    pub fn seal(&self, redis_key: &str, mut payload: Vec<u8>) -> Vec<u8> {
        let tag = self.tag(redis_key, &payload);
        payload.extend_from_slice(tag.as_ref());
        payload
    }

    /// The payload of `value` read under `redis_key`, once its tag verifies
    /// (in constant time).
    pub fn open<'v>(&self, redis_key: &str, value: &'v [u8]) -> Result<&'v [u8], SealError> {
        let cut = value.len().checked_sub(TAG_LEN).ok_or(SealError::Short)?;
        let (payload, tag) = value.split_at(cut);
        let expected = self.tag(redis_key, payload);
        constant_time_eq(expected.as_ref(), tag)
            .then_some(payload)
            .ok_or(SealError::BadTag)
    }
}

/// Equality of two tags in time that does not depend on where they differ
/// (ring's `hmac::verify` wants the message in one slice; ours is three).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_under_its_key_only() {
        let keys = Keys::new(Some(b"a fleet secret of some length\n"));
        let k1 = keys.redis_key(0, b"\x03www\x02kr\x00\x00\x01\x00\x01\x00");
        let k2 = keys.redis_key(1, b"\x03www\x02kr\x00\x00\x01\x00\x01\x00");
        assert!(k1.starts_with(PREFIX));
        assert_ne!(k1, k2, "a flush generation changes every key");
        let sealed = keys.seal(&k1, b"payload".to_vec());
        assert_eq!(keys.open(&k1, &sealed), Ok(&b"payload"[..]));
        assert_eq!(keys.open(&k2, &sealed), Err(SealError::BadTag));
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(keys.open(&k1, &flipped), Err(SealError::BadTag));
        assert_eq!(keys.open(&k1, b"short"), Err(SealError::Short));
        // Another fleet's key does not open it either.
        let other = Keys::new(None);
        assert!(!other.trusted);
        assert_eq!(other.open(&k1, &sealed), Err(SealError::BadTag));
    }
}
