//! Binding UDP and TCP on every server address of a tree on one shared port.
//!
//! Tests run in parallel threads and in several test binaries at once, and
//! different trees reuse the same 127.0.0.x addresses, so no fixed port will
//! do. The kernel picks a free port on the first address; the others may
//! already use it, in which case everything is released and a new port tried.

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpListener, UdpSocket};
use tracing::debug;

/// How many ports to try before giving up.
const ATTEMPTS: usize = 64;

/// The sockets of one server address.
pub(super) struct Bound {
    pub(super) addr: IpAddr,
    pub(super) udp: UdpSocket,
    pub(super) tcp: TcpListener,
}

/// Binds UDP and TCP on every address in `addrs` (which must not be empty
/// and hold no duplicates) on one port, and returns the port and sockets.
pub(super) async fn bind_shared_port(addrs: &[IpAddr]) -> io::Result<(u16, Vec<Bound>)> {
    let Some(&first) = addrs.first() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a fake tree needs at least one server address",
        ));
    };
    // A fixed port (e.g. 53, for peers like Unbound that only query port 53).
    if let Some(port) = std::env::var("TAPROOT_FAKE_TREE_PORT")
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
    {
        let udp = UdpSocket::bind(SocketAddr::new(first, port)).await?;
        return Ok((port, bind_rest(addrs, port, udp).await?));
    }
    let mut last_error = None;
    for _ in 0..ATTEMPTS {
        let udp = UdpSocket::bind(SocketAddr::new(first, 0)).await?;
        let port = udp.local_addr()?.port();
        match bind_rest(addrs, port, udp).await {
            Ok(bound) => return Ok((port, bound)),
            Err(error) if error.kind() == io::ErrorKind::AddrInUse => {
                debug!(port, %error, "fake tree port taken on another address; trying another");
                last_error = Some(error);
            }
            Err(error) => return Err(error),
        }
    }
    Err(last_error
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::AddrInUse, "no shared port found")))
}

/// Binds TCP on `port` at the first address and UDP and TCP at the others,
/// given the first address's UDP socket.
async fn bind_rest(addrs: &[IpAddr], port: u16, first_udp: UdpSocket) -> io::Result<Vec<Bound>> {
    let mut bound = Vec::with_capacity(addrs.len());
    let mut first_udp = Some(first_udp);
    for &addr in addrs {
        let at = SocketAddr::new(addr, port);
        let udp = match first_udp.take() {
            Some(udp) => udp,
            None => UdpSocket::bind(at).await?,
        };
        let tcp = TcpListener::bind(at).await?;
        bound.push(Bound { addr, udp, tcp });
    }
    Ok(bound)
}
