//! Why a resolution failed: each variant becomes a SERVFAIL with an
//! Extended DNS Error (RFC 8914) and a `taproot_servfail_total{reason}` label.

/// A failed resolution.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ResolveError {
    #[error("CNAME loop at {0}")]
    CnameLoop(String),
    #[error("CNAME chain longer than {0} links")]
    CnameChainTooLong(u32),
    #[error("no authoritative server for {0} answered")]
    NoReachableAuthority(String),
    #[error("the time budget for this question ran out")]
    BudgetTime,
    #[error("the upstream query budget for this question ran out")]
    BudgetQueries,
    #[error("more than {0} referrals")]
    ReferralDepth(u32),
    #[error("too many resolutions in flight")]
    Overloaded,
    #[error(
        "upstream servers for {0} are on loopback or private addresses, which the config forbids"
    )]
    ForbiddenUpstream(String),
    #[error(
        "the name servers of {0} can only be found through {0} itself (an NS dependency cycle)"
    )]
    NsCycle(String),
    #[error("DNSSEC validation failed: {0}")]
    Bogus(crate::dnssec::Bogus),
    #[error("the resolution task ended without an answer")]
    Internal,
}

impl ResolveError {
    /// The bounded label used in metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ResolveError::CnameLoop(_) => "cname_loop",
            ResolveError::CnameChainTooLong(_) => "cname_chain",
            ResolveError::NoReachableAuthority(_) => "no_reachable_authority",
            ResolveError::BudgetTime => "budget_time",
            ResolveError::BudgetQueries => "budget_queries",
            ResolveError::ReferralDepth(_) => "referral_depth",
            ResolveError::Overloaded => "overloaded",
            ResolveError::ForbiddenUpstream(_) => "forbidden_upstream",
            ResolveError::NsCycle(_) => "ns_cycle",
            ResolveError::Bogus(_) => "dnssec_bogus",
            ResolveError::Internal => "internal",
        }
    }

    /// RFC 8914 §4 INFO-CODE.
    pub fn ede_code(&self) -> u16 {
        match self {
            ResolveError::NoReachableAuthority(_)
            | ResolveError::ForbiddenUpstream(_)
            | ResolveError::NsCycle(_) => 22,
            ResolveError::BudgetTime => 22,
            ResolveError::Overloaded => 0,
            ResolveError::Bogus(bogus) => bogus.ede_code(),
            _ => 0,
        }
    }
}
