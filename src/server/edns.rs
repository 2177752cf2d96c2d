//! EDNS options that only a stream transport answers, added to a response
//! the handler has already made (so the hit path stays the same bytes for
//! every transport, and UDP never pays for them).
//!
//! - edns-tcp-keepalive (RFC 7828 §3.3.2): a client that sent the option
//!   over TCP or TLS learns how long an idle connection is kept open.
//! - Padding (RFC 7830, RFC 8467 §4.1): over TLS and HTTPS, a client that
//!   padded its query gets its response padded to a multiple of 468 bytes,
//!   so the length of an encrypted answer says little about the name.

use std::time::Duration;

use super::transport::Transport;
use crate::wire::{self, ClientEdns, option};

/// RFC 8467 §4.1: "Responders SHOULD pad responses ... to a multiple of
/// 468 octets."
pub const RESPONSE_BLOCK: usize = 468;

/// Adds keepalive and padding to `resp` as the query's `edns` asked, on
/// `transport`; `idle` is the connection's idle timeout.
pub fn finish(resp: &mut Vec<u8>, edns: Option<ClientEdns>, transport: Transport, idle: Duration) {
    let Some(edns) = edns else {
        return;
    };
    let keepalive = edns.keepalive && matches!(transport, Transport::Tcp | Transport::Tls);
    let pad = edns.padding && transport.pads();
    if !keepalive && !pad {
        return;
    }
    let Some(opt) = wire::trailing_opt(resp) else {
        return;
    };
    if keepalive {
        // RFC 7828 §3.1: the TIMEOUT is in units of 100 milliseconds.
        let units = u16::try_from(idle.as_millis() / 100).unwrap_or(u16::MAX);
        wire::append_option(resp, opt, option::TCP_KEEPALIVE, &units.to_be_bytes());
    }
    if pad {
        let after_header = resp.len() + 4;
        let fill = (RESPONSE_BLOCK - after_header % RESPONSE_BLOCK) % RESPONSE_BLOCK;
        if after_header + fill <= usize::from(u16::MAX) {
            // RFC 7830 §3: the padding octets SHOULD be 0x00.
            const ZEROS: [u8; RESPONSE_BLOCK] = [0; RESPONSE_BLOCK];
            wire::append_option(resp, opt, option::PADDING, &ZEROS[..fill]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response with only a question and an OPT record, as the handler
    /// makes for a query with EDNS.
    fn response() -> Vec<u8> {
        let mut r = vec![0, 0, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 1];
        r.extend_from_slice(&[7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0, 0, 1, 0, 1]);
        wire::push_opt(&mut r, false, 0, None);
        r
    }

    fn edns(keepalive: bool, padding: bool) -> Option<ClientEdns> {
        Some(ClientEdns {
            payload: 1232,
            dnssec_ok: false,
            version: 0,
            keepalive,
            padding,
        })
    }

    #[test]
    fn a_padding_client_over_tls_gets_a_response_of_one_block() {
        let mut r = response();
        finish(&mut r, edns(false, true), Transport::Tls, Duration::ZERO);
        assert_eq!(r.len(), RESPONSE_BLOCK);
        assert_eq!(
            wire::trailing_opt(&r),
            Some(25),
            "the OPT record still ends the message"
        );
    }

    #[test]
    fn padding_is_never_added_over_plain_tcp_or_udp() {
        for t in [Transport::Udp, Transport::Tcp] {
            let mut r = response();
            finish(&mut r, edns(false, true), t, Duration::ZERO);
            assert_eq!(r, response(), "{t:?}");
        }
    }

    #[test]
    fn keepalive_answers_with_the_idle_timeout_in_tenths_of_a_second() {
        let mut r = response();
        finish(
            &mut r,
            edns(true, false),
            Transport::Tcp,
            Duration::from_secs(10),
        );
        assert_eq!(&r[r.len() - 6..], &[0, 11, 0, 2, 0, 100]);
        let mut u = response();
        finish(
            &mut u,
            edns(true, false),
            Transport::Udp,
            Duration::from_secs(10),
        );
        assert_eq!(u, response(), "RFC 7828 §3.2.2: never over UDP");
    }
}
