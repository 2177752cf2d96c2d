//! The key cache: what the chain of trust has proven about each name on
//! the way down from a trust anchor (Unbound's key cache). A zone's keys
//! are proven once per DNSKEY TTL, not once per answer; a name that is not
//! a zone cut maps to the keys of the zone it lies in, and a proven
//! unsigned delegation to `Insecure`, which everything below inherits.

use std::sync::Arc;

use super::verify::{Bogus, KeySet};
use crate::cache::Expiring;
use crate::clock::Clock;

/// The most names remembered; the least used go first.
const MAX_NAMES: u64 = 100_000;
/// How long a bogus key set is remembered (Unbound's val-bogus-ttl is 60 s).
pub const BOGUS_TTL_S: u32 = 60;
/// Longest any verdict is kept, whatever the DNSKEY TTL says.
const MAX_TTL_S: u32 = 86_400;

/// What the chain of trust says about the zone holding a name.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Its keys are proven: data signed with them can be checked.
    Secure(Arc<KeySet>),
    /// Proven unsigned, or signed only with what this validator cannot check.
    Insecure,
}

/// What the chain of trust has proven (or found bogus), by name.
pub type KeyCache = Expiring<Result<Trust, Bogus>>;

pub fn key_cache(clock: Clock) -> KeyCache {
    Expiring::new(clock, MAX_NAMES, MAX_TTL_S)
}
