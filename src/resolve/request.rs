//! One client question's context on the miss path: its limits
//! (NXNSAttack-style amplification bounds), its flags (DO, CD), what it
//! has learnt about its servers, and, when asked, its trace.
//!
//! Unbound keeps the same in its `module_qstate` and the iterator's
//! `iter_qstate`; a sub-query (a glueless NS address, a DS or DNSKEY fetch)
//! there is a query state of its own, linked to its parent. Here a
//! glueless lookup runs inside its parent's request (it spends the
//! question's sends), and a validator's fetch gets a request of its own
//! inside the parent's time ([`Request::sub_request`]), which hands the
//! trace back when it ends ([`Request::rejoin`]).

use std::net::IpAddr;

use hickory_proto::rr::{Name, RecordType};

use super::ResolveError;
use crate::config::ResolverConfig;
use crate::trace::{Detail, EventKind, SubReason, Trace};

/// One client question as the miss path works on it.
#[derive(Debug)]
pub struct Request {
    pub deadline: tokio::time::Instant,
    pub queries_left: u32,
    /// How deep glueless NS sub-resolutions are nested.
    pub glueless_depth: u8,
    /// Whether this question has primed the root (RFC 8109): once is enough.
    pub primed: bool,
    /// The NS names whose addresses are being looked up, outermost first: a
    /// name that turns up again needs itself (an NS dependency cycle).
    pub ns_lookups: Vec<Name>,
    /// The client set CD: bogus data is returned instead of SERVFAIL.
    pub checking_disabled: bool,
    /// The client set DO: cached RRsets come with their RRSIGs.
    pub dnssec_ok: bool,
    /// How deep the validator's DS/DNSKEY fetches are nested.
    pub fetch_depth: u8,
    /// Servers whose data proved bogus in this question: not asked again.
    pub bogus_from: Vec<IpAddr>,
    /// Resolve the question (each link of its CNAME chain) from the root
    /// hints, ignoring cached RRsets, negatives and delegations: a trace
    /// with `cache=bypass`, the note's diagram drawn from a real walk.
    /// What is learnt is cached as usual, and the sub-resolutions (NS
    /// addresses, DS and DNSKEY sets) use the cache as they always do, so
    /// the trace shows what a resolver with this walk's knowledge does.
    pub bypass_cache: bool,
    /// The events of this question, when a trace was asked for or a
    /// failure would be kept ([`crate::trace::recent`]).
    pub trace: Option<Trace>,
}

impl Request {
    pub fn new(config: &ResolverConfig) -> Request {
        Request {
            deadline: tokio::time::Instant::now() + config.query_budget(),
            queries_left: config.max_upstream_queries,
            glueless_depth: 0,
            primed: false,
            ns_lookups: Vec::new(),
            checking_disabled: false,
            dnssec_ok: false,
            fetch_depth: 0,
            bogus_from: Vec::new(),
            bypass_cache: false,
            trace: None,
        }
    }

    /// A request of its own for a validator's DS or DNSKEY fetch (Unbound
    /// counts a sub-query's sends apart), inside this one's time. It takes
    /// the trace along; [`Request::rejoin`] gives it back.
    pub fn sub_request(&mut self, config: &ResolverConfig) -> Request {
        Request {
            deadline: self.deadline,
            glueless_depth: self.glueless_depth,
            primed: self.primed,
            ns_lookups: self.ns_lookups.clone(),
            checking_disabled: self.checking_disabled,
            fetch_depth: self.fetch_depth + 1,
            bogus_from: self.bogus_from.clone(),
            bypass_cache: self.bypass_cache,
            trace: self.trace.take(),
            ..Request::new(config)
        }
    }

    /// Takes back what a sub-request learnt that concerns the question.
    pub fn rejoin(&mut self, sub: Request) {
        self.primed |= sub.primed;
        self.trace = sub.trace;
    }

    /// Takes one upstream query from the question's allowance.
    pub fn spend(&mut self) -> Result<(), ResolveError> {
        if tokio::time::Instant::now() >= self.deadline {
            return Err(ResolveError::BudgetTime);
        }
        if self.queries_left == 0 {
            return Err(ResolveError::BudgetQueries);
        }
        self.queries_left -= 1;
        Ok(())
    }

    pub fn remaining_time(&self) -> std::time::Duration {
        self.deadline
            .saturating_duration_since(tokio::time::Instant::now())
    }

    /// Whether this step ignores the cache: the question's own links under
    /// `cache=bypass`, not its sub-resolutions.
    #[inline]
    pub fn bypasses_cache(&self) -> bool {
        self.bypass_cache && self.glueless_depth == 0 && self.fetch_depth == 0
    }

    /// Whether events are being recorded.
    #[inline]
    pub fn tracing(&self) -> bool {
        self.trace.is_some()
    }

    /// Whether an event of this kind is recorded: `failure` events (what a
    /// SERVFAIL needs, see [`Detail::Failures`]) by every trace, the rest
    /// only by a full one.
    #[inline]
    pub fn wants(&self, failure: bool) -> bool {
        self.trace
            .as_ref()
            .is_some_and(|t| failure || t.detail() == Detail::Full)
    }

    /// Records the step `make` builds, only in a full trace: an untraced
    /// question, or one recorded only in case it fails, never builds one.
    #[inline]
    pub fn record(&mut self, make: impl FnOnce() -> EventKind) {
        if let Some(trace) = &mut self.trace
            && trace.detail() == Detail::Full
        {
            trace.push(make());
        }
    }

    /// Records an event a failure's trace needs, in every trace.
    #[inline]
    pub fn record_failure(&mut self, make: impl FnOnce() -> EventKind) {
        if let Some(trace) = &mut self.trace {
            trace.push(make());
        }
    }

    /// The trace clock now (0 when not tracing), for an exchange's RTT.
    #[inline]
    pub fn trace_now(&mut self) -> u64 {
        self.trace.as_mut().map_or(0, |t| t.now_us())
    }

    /// Opens a nested sub-resolution in the trace.
    pub fn begin(&mut self, reason: SubReason, name: &Name, qtype: RecordType) {
        if let Some(trace) = &mut self.trace {
            trace.begin(reason, name, qtype);
        }
    }

    /// Closes it with what it came to.
    pub fn end(&mut self, reason: SubReason, name: &Name, qtype: RecordType, outcome: &str) {
        if let Some(trace) = &mut self.trace {
            trace.end(reason, name, qtype, outcome.to_string());
        }
    }
}
