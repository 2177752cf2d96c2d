//! The client transports taproot answers on, and what differs between them.
//!
//! Everything above the socket (the handler, the cache, the metrics) sees
//! only a [`Transport`]: how large a response may be and whether the
//! client can ask again over a stream when it is truncated. The listeners
//! below it are the only code that knows the socket's type.

/// How a client's query reached taproot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Plain DNS over UDP (RFC 1035 §4.2.1).
    Udp = 0,
    /// Plain DNS over TCP (RFC 7766).
    Tcp = 1,
    /// DNS over TLS (RFC 7858): TCP framing inside TLS.
    Tls = 2,
    /// DNS over HTTPS (RFC 8484): one message per HTTP exchange.
    Https = 3,
}

impl Transport {
    /// Every transport, in the order of their discriminants (metrics index by it).
    pub const ALL: [Transport; 4] = [
        Transport::Udp,
        Transport::Tcp,
        Transport::Tls,
        Transport::Https,
    ];

    /// The `protocol` label value of the query metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Https => "https",
        }
    }

    /// A datagram transport: the source address can be forged, so it is
    /// rate limited, and a response that does not fit is truncated (TC=1)
    /// for the client to retry over a stream.
    #[inline]
    pub fn is_datagram(self) -> bool {
        self == Transport::Udp
    }

    /// The largest response this transport carries: the client's EDNS
    /// payload size on UDP (RFC 6891 §6.2.5, capped at ours), the 16-bit
    /// length prefix on TCP and TLS (RFC 1035 §4.2.2), and the same on
    /// HTTPS, whose `application/dns-message` is at most 65,535 bytes
    /// (RFC 8484 §6).
    #[inline]
    pub fn max_response(self, udp_limit: impl FnOnce() -> usize) -> usize {
        match self {
            Transport::Udp => udp_limit(),
            Transport::Tcp | Transport::Tls | Transport::Https => 65_535,
        }
    }

    /// Whether responses are padded for a client that pads (RFC 7830,
    /// RFC 8467 §4.1): only where the bytes are encrypted does their
    /// length tell an observer anything worth hiding.
    pub fn pads(self) -> bool {
        matches!(self, Transport::Tls | Transport::Https)
    }
}
