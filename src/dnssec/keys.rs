//! The key cache: what the chain of trust has proven about each name on
//! the way down from a trust anchor (Unbound's key cache). A zone's keys
//! are proven once per DNSKEY TTL, not once per answer; a name that is not
//! a zone cut maps to the keys of the zone it lies in, and a proven
//! unsigned delegation to `Insecure`, which everything below inherits.

use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::Name;

use super::verify::{Bogus, KeySet};
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

#[derive(Clone)]
struct Kept {
    verdict: Result<Trust, Bogus>,
    until_ms: u64,
}

pub struct KeyCache {
    names: moka::sync::Cache<Name, Kept>,
    clock: Clock,
}

impl KeyCache {
    pub fn new(clock: Clock) -> KeyCache {
        KeyCache {
            names: moka::sync::Cache::builder()
                .max_capacity(MAX_NAMES)
                .time_to_live(Duration::from_secs(u64::from(MAX_TTL_S)))
                .build(),
            clock,
        }
    }

    /// The live verdict for `name` (lower-cased).
    pub fn get(&self, name: &Name) -> Option<Result<Trust, Bogus>> {
        let kept = self.names.get(name)?;
        (kept.until_ms > self.clock.now_ms()).then_some(kept.verdict)
    }

    /// Remembers a verdict for `ttl` seconds.
    pub fn insert(&self, name: &Name, verdict: Result<Trust, Bogus>, ttl: u32) {
        let ttl = ttl.min(MAX_TTL_S);
        if ttl == 0 {
            return;
        }
        let until_ms = self.clock.now_ms() + u64::from(ttl) * 1000;
        self.names.insert(name.clone(), Kept { verdict, until_ms });
    }

    pub fn flush_all(&self) {
        self.names.invalidate_all();
    }
}
