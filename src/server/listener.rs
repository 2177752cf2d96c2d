//! One way to run a stream listener, whatever its transport: accept,
//! admit under the connection caps, then hand the connection to its
//! transport (plain DNS, a TLS handshake then DNS, or a TLS handshake then
//! HTTP) in a task of its own, so that a slow or hostile client holds up
//! nobody else.
//!
//! ```text
//!  TcpListener ─► accept ─► caps (all, per client) ─► task ─┬─ tcp:   stream::serve
//!                                                           ├─ tls:   handshake ─► stream::serve
//!                                                           └─ https: handshake ─► https::serve
//! ```
//!
//! UDP has its own workers ([`super::udp`]): a datagram has no connection
//! to admit, and its hit path is batched.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::debug;

use super::https::Doh;
use super::stream::{self, Context};
use super::tls::Acceptor;
use super::transport::Transport;

/// Connection caps and the idle timeout of one stream listener
/// (RFC 7766 §6.2.3, RFC 7858 §3.4).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub idle: Duration,
    pub max_connections: usize,
    pub max_per_client: usize,
}

/// What a listener does with a connection it accepted.
#[derive(Clone)]
pub enum Service {
    /// DNS over TCP (RFC 7766).
    Tcp,
    /// DNS over TLS (RFC 7858).
    Tls(Acceptor),
    /// DNS over HTTPS (RFC 8484).
    Https(Acceptor, Arc<Doh>),
}

impl Service {
    pub fn transport(&self) -> Transport {
        match self {
            Service::Tcp => Transport::Tcp,
            Service::Tls(_) => Transport::Tls,
            Service::Https(..) => Transport::Https,
        }
    }
}

/// Binds a stream listener with SO_REUSEADDR (restarts do not wait for
/// TIME_WAIT); IPv6 addresses are IPv6 only, as on the UDP side.
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Accepts until shutdown; connections are tracked so shutdown can drain them.
pub async fn serve(listener: TcpListener, service: Service, limits: ConnectionLimits, cx: Context) {
    let transport = service.transport();
    let caps = Caps::new(limits);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    debug!(error = %e, transport = transport.as_str(), "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = cx.shutdown.cancelled() => break,
        };
        let admission = match caps.admit(peer.ip()) {
            Ok(a) => a,
            Err(reason) => {
                cx.handler.metrics.dropped(reason);
                continue; // dropping the stream closes it
            }
        };
        let _ = stream.set_nodelay(true);
        let cx = cx.clone();
        let service = service.clone();
        cx.tracker.clone().spawn(async move {
            let open = cx.handler.metrics.connection_opened(transport);
            connection(stream, peer, &service, &cx).await;
            drop(open);
            drop(admission);
        });
    }
}

async fn connection(stream: TcpStream, peer: SocketAddr, service: &Service, cx: &Context) {
    let metrics = &cx.handler.metrics;
    match service {
        Service::Tcp => stream::serve(stream, peer, Transport::Tcp, cx).await,
        Service::Tls(tls) => {
            if let Some(stream) = tls.handshake(stream, cx.idle, metrics).await {
                stream::serve(stream, peer, Transport::Tls, cx).await;
            }
        }
        Service::Https(tls, doh) => {
            if let Some(stream) = tls.handshake(stream, cx.idle, metrics).await {
                super::https::serve(stream, peer, doh.clone(), cx).await;
            }
        }
    }
}

/// The caps of one listener: connections in all, and per client address.
struct Caps {
    limits: ConnectionLimits,
    slots: Arc<Semaphore>,
    per_client: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One admitted connection; dropping it gives its places back.
struct Admission {
    _slot: OwnedSemaphorePermit,
    ip: IpAddr,
    per_client: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Caps {
    fn new(limits: ConnectionLimits) -> Caps {
        Caps {
            limits,
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            per_client: Arc::default(),
        }
    }

    /// A place for a connection from `ip`, or the `dropped` reason.
    fn admit(&self, ip: IpAddr) -> Result<Admission, &'static str> {
        let slot = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| "tcp_limit")?;
        let mut map = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= self.limits.max_per_client {
            return Err("tcp_client_limit");
        }
        *n += 1;
        Ok(Admission {
            _slot: slot,
            ip,
            per_client: self.per_client.clone(),
        })
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut map = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}
