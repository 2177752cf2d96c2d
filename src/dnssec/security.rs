//! The security status of data (RFC 4035 §4.3), as the cache keeps it per
//! entry and the server turns it into the AD bit.

/// What validation made of an RRset or an answer. Bogus data is never
/// stored for clients that did not set CD, so only these three are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum Security {
    /// Not validated: validation is off, or no trust anchor covers the name.
    #[default]
    Indeterminate,
    /// Proven unsigned: an unsigned delegation, an opt-out span, only
    /// unsupported algorithms, a negative trust anchor.
    Insecure,
    /// Proven by a chain of signatures from a trust anchor.
    Secure,
}

impl Security {
    /// The status of an answer built from parts: the weakest part's, so a
    /// chain that leaves a signed zone for an unsigned one is not secure.
    pub fn and(self, other: Security) -> Security {
        self.min(other)
    }

    /// The bounded label used in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Security::Indeterminate => "indeterminate",
            Security::Insecure => "insecure",
            Security::Secure => "secure",
        }
    }
}
