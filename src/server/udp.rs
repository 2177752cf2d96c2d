//! UDP listeners: one SO_REUSEPORT socket per worker thread per address.
//!
//! Each worker is a plain OS thread in a blocking receive loop, so a cache
//! hit is answered on the thread that received it with no task, no channel
//! and no allocation (the response buffer is reused). A miss is copied once
//! and spawned onto the async runtime; its answer is sent from there on the
//! same socket, so the worker never waits for the walk.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use socket2::{Domain, Protocol as SockProtocol, Socket, Type};
use tokio::runtime::Handle;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::handler::{Fast, Handler};
use crate::metrics::Protocol;

/// How often a blocked receive wakes to look at the shutdown flag.
const POLL: Duration = Duration::from_millis(200);

/// Binds one UDP socket with SO_REUSEPORT so several workers share the port.
pub fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::DGRAM,
        Some(SockProtocol::UDP),
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_port(true)?;
    socket.set_reuse_address(true)?;
    let _ = socket.set_recv_buffer_size(4 << 20);
    let _ = socket.set_send_buffer_size(4 << 20);
    socket.bind(&addr.into())?;
    let socket: UdpSocket = socket.into();
    socket.set_read_timeout(Some(POLL))?;
    Ok(socket)
}

/// Runs one worker until `shutdown` is set.
pub fn serve(
    socket: Arc<UdpSocket>,
    handler: Arc<Handler>,
    runtime: Handle,
    tracker: TaskTracker,
    shutdown: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 65535];
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    while !shutdown.load(Ordering::Relaxed) {
        let (n, src) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                warn!(error = %e, "UDP receive failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        match handler.fast(&buf[..n], src, Protocol::Udp, &mut out) {
            Fast::Reply => {
                if let Err(e) = socket.send_to(&out, src) {
                    debug!(client = %src, error = %e, "UDP send failed");
                }
            }
            Fast::Drop => {}
            Fast::Miss => {
                let raw = buf[..n].to_vec();
                let handler = handler.clone();
                let socket = socket.clone();
                drop(runtime.spawn(tracker.track_future(async move {
                    if let Some(resp) = handler.slow(raw, src, Protocol::Udp).await
                        && let Err(e) = socket.send_to(&resp, src)
                    {
                        debug!(client = %src, error = %e, "UDP send failed");
                    }
                })));
            }
        }
    }
}
