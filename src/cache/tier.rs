//! The second tier: a cache behind the in-memory one, shared by a fleet.
//!
//! The first tier (the [`super::store`]) answers hits on the hot path and
//! never waits. The second tier is slower and remote (a Redis that every
//! instance of a fleet reads and writes, see [`super::shared`]), so it is
//! consulted only where a resolution would start anyway: in the leader of
//! a coalesced resolution ([`crate::resolve::Resolver::answer`]), once per
//! question in flight, before the walk. What it returns is adopted into
//! the first tier; what a resolution stores in the first tier is handed to
//! it to write in the background. A flush an operator asks one instance
//! for is published to the others through it.
//!
//! A tier that is slow, down or holds garbage is a miss, never a late or
//! failed answer: [`SecondTier::read`] resolves to `None` within its own
//! deadline, and [`SecondTier::write`] never waits.

use std::future::Future;
use std::pin::Pin;

use std::sync::Arc;

use hickory_proto::rr::Name;

use super::answer::CachedAnswer;

/// A future a tier returns; boxed, since a tier is a trait object chosen at
/// start (and called only on a miss, never on the hit path).
pub type TierFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What an operator's flush covers (`POST /cache/flush`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlushScope {
    /// Every entry.
    All,
    /// One owner name (lower-cased, absolute).
    Name(Name),
    /// A name and everything below it.
    Subtree(Name),
}

/// Why a fleet-wide flush did not reach the tier.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the shared cache could not be flushed: {0}")]
pub struct FlushError(pub String);

/// A cache read on a first-tier miss and written after a resolution.
pub trait SecondTier: Send + Sync {
    /// The entry stored under `key` (see [`crate::wire::answer_key`]),
    /// rebuilt for the first tier; `None` for a miss, an error, a timeout
    /// or a value that does not verify.
    fn read<'a>(&'a self, key: &'a [u8]) -> TierFuture<'a, Option<CachedAnswer>>;

    /// Queues `entry`, the answer stored under `key`, to be written. Never
    /// waits; a full queue drops it.
    fn write(&self, key: &[u8], entry: &Arc<CachedAnswer>);

    /// Removes `scope` from the tier and tells every instance sharing it
    /// to drop the same from its first tier.
    fn flush<'a>(&'a self, scope: &'a FlushScope) -> TierFuture<'a, Result<(), FlushError>>;
}
