//! taproot: a caching recursive DNS resolver.
//!
//! A query travels through the crate the way the seed's sequence diagram
//! draws it:
//!
//! ```text
//! client ──► server (udp fast path / tcp) ──► handler ──► cache::answer   (hit: reply at once)
//!                                                │
//!                                                ▼ miss
//!                                  resolve::Resolver ──► cache (closest delegation)
//!                                                │
//!                                                ▼
//!                     root ──► TLD ──► second level ──► zone   (resolve::iterator)
//!                                                │
//!                                                ▼
//!                               cache (records, negatives, answers) ──► client
//! ```
//!
//! `referral` answers in iterative mode instead of walking; `metrics` counts
//! all of it for Prometheus. `dnssec` holds the validator's building blocks
//! (trust anchors, signature and key-set checks); the walk does not call
//! them yet.

pub mod cache;
pub mod clock;
pub mod config;
pub mod dnssec;
pub mod metrics;
pub mod referral;
pub mod resolve;
pub mod server;
pub mod wire;
