//! Binding one listen address for UDP and TCP on the same port.
//!
//! With port 0 the kernel picks a port free for UDP, and TCP must then
//! take the same number, which some other process may hold for TCP. A
//! resolver told "any port" should find one free for both, so on that
//! conflict the UDP sockets are let go and the kernel asked again.

use std::net::{SocketAddr, TcpListener, UdpSocket};

use super::StartError;
use super::{listener as tcp, udp};

/// How many ports `bind` tries for a port-0 address before it gives up.
const PORT_ZERO_TRIES: usize = 8;

/// The bound address (port 0 resolved), `threads` UDP sockets sharing it
/// (SO_REUSEPORT) and its TCP listener.
pub struct Bound {
    pub addr: SocketAddr,
    pub udp: Vec<UdpSocket>,
    pub tcp: TcpListener,
}

/// Binds `want` for UDP (`threads` sockets) and TCP.
pub fn bind(want: SocketAddr, threads: usize) -> Result<Bound, StartError> {
    bind_with(want, threads, tcp::bind)
}

/// [`bind`], with the TCP bind passed in so a test can make it collide.
fn bind_with(
    want: SocketAddr,
    threads: usize,
    bind_tcp: impl Fn(SocketAddr) -> std::io::Result<TcpListener>,
) -> Result<Bound, StartError> {
    let bind_err = |proto, source| StartError::Bind {
        proto,
        addr: want,
        source,
    };
    let mut tries = 0;
    loop {
        tries += 1;
        let first = udp::bind(want).map_err(|e| bind_err("UDP", e))?;
        // With port 0 the first socket picks the port and the rest follow it.
        let addr = first.local_addr().map_err(|e| bind_err("UDP", e))?;
        let mut sockets = vec![first];
        for _ in 1..threads.max(1) {
            sockets.push(udp::bind(addr).map_err(|e| bind_err("UDP", e))?);
        }
        match bind_tcp(addr) {
            Ok(tcp) => {
                return Ok(Bound {
                    addr,
                    udp: sockets,
                    tcp,
                });
            }
            Err(e)
                if want.port() == 0
                    && e.kind() == std::io::ErrorKind::AddrInUse
                    && tries < PORT_ZERO_TRIES =>
            {
                tracing::debug!(%addr, "TCP port taken; picking another port");
            }
            Err(e) => return Err(bind_err("TCP", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    /// The first TCP bind finds the port the kernel gave UDP already
    /// listened on by someone else (a real listener, as another test or
    /// process would hold it); port 0 must then move both to a new port.
    #[test]
    fn port_zero_moves_on_when_tcp_finds_its_port_taken() {
        let squatters = RefCell::new(Vec::new());
        let bound = bind_with("127.0.0.1:0".parse().expect("literal"), 2, |addr| {
            if squatters.borrow().is_empty() {
                squatters.borrow_mut().push(tcp::bind(addr)?);
            }
            tcp::bind(addr)
        })
        .expect("a port free for both");
        let taken = squatters.borrow()[0].local_addr().expect("bound");
        assert_ne!(bound.addr, taken, "moved off the taken port");
        assert_eq!(bound.tcp.local_addr().expect("bound"), bound.addr);
        assert_eq!(bound.udp.len(), 2);
        for s in &bound.udp {
            assert_eq!(s.local_addr().expect("bound"), bound.addr);
        }
    }

    /// A port the operator chose is never swapped for another.
    #[test]
    fn a_chosen_port_that_tcp_cannot_take_is_an_error() {
        let squat = tcp::bind("127.0.0.1:0".parse().expect("literal")).expect("bind");
        let port = squat.local_addr().expect("bound").port();
        let want: SocketAddr = format!("127.0.0.1:{port}").parse().expect("literal");
        match bind(want, 1) {
            Err(StartError::Bind { proto, source, .. }) => {
                assert_eq!(proto, "TCP");
                assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(b) => panic!("bound {} although TCP {port} is taken", b.addr),
        }
    }
}
