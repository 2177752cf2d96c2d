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
//!                     root ──► TLD ──► second level ──► zone   (resolve::driver)
//!                                                │
//!                                                ▼
//!                               cache (records, negatives, answers) ──► client
//! ```
//!
//! Before the cache, `policy` decides local zones and response policy
//! zones (RPZ) for every query.
//! `resolve::referral` answers in iterative mode instead of walking;
//! `trace` records what the miss path did for one question and draws it
//! as the seed's diagram (`GET /trace/{name}/{type}`);
//! `resolve::validate` checks what the walk found against DNSSEC, with the
//! building blocks in `dnssec` (trust anchors, signature and key-set checks,
//! denial proofs); `metrics` counts all of it for Prometheus and serves the
//! admin endpoint that `control` (`taproot trace`, `taproot cache`) talks to.

// The only unsafe code is the store's (src/cache/store.rs) and the batched
// socket calls': every unsafe operation sits in its own block with the
// reason it is sound written above it.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod cache;
pub mod clock;
pub mod config;
pub mod control;
pub mod dnssec;
pub mod metrics;
pub mod policy;
pub mod resolve;
pub mod server;
pub mod trace;
pub mod wire;
