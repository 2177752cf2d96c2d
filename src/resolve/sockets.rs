//! Upstream UDP sockets, kept for a few more queries to the same server.
//!
//! A fresh socket per query costs socket, bind, connect, two epoll_ctl and
//! close: about a fifth of a cold miss's CPU (perf, 20,000 cold names). So
//! after a query is answered its socket, still connected to that server,
//! is kept and the next query to the same server takes it.
//!
//! Spoofing resistance (RFC 5452) rests on an off-path attacker not knowing
//! the port. The port is random when the socket is bound, and a kept socket
//! only ever talks to the one server it is connected to: whoever learns its
//! port from its queries is that server (or on the path to it), who can
//! answer for its zones anyway. Keeping is also bounded: [`MAX_USES`]
//! queries, idle at most [`MAX_IDLE`]. A socket that saw a timeout or an
//! error is closed, never kept.
//!
//! Sockets are kept per thread: a tokio socket belongs to the runtime that
//! registered it, and each thread here runs one runtime (the shared one, or
//! a UDP worker's own), so a socket taken on a thread is always driven by
//! the runtime polling the query.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

/// Queries a socket carries before it is closed.
pub const MAX_USES: u32 = 16;

/// How long an unused socket is kept.
pub const MAX_IDLE: Duration = Duration::from_secs(2);

/// Idle sockets kept per server and thread.
const MAX_PER_SERVER: usize = 32;

/// Idle sockets kept per thread, all servers together (each is a descriptor).
const MAX_TOTAL: usize = 256;

/// A socket connected to one server, and how many queries it has carried.
pub struct Upstream {
    pub socket: UdpSocket,
    pub uses: u32,
}

struct Idle {
    upstream: Upstream,
    since: Instant,
}

#[derive(Default)]
struct Kept {
    by_server: HashMap<SocketAddr, Vec<Idle>>,
    total: usize,
}

impl Kept {
    /// Closes every socket idle for longer than [`MAX_IDLE`].
    fn expire(&mut self, now: Instant) {
        let mut total = 0;
        self.by_server.retain(|_, idle| {
            idle.retain(|i| now.duration_since(i.since) <= MAX_IDLE);
            total += idle.len();
            !idle.is_empty()
        });
        self.total = total;
    }
}

thread_local! {
    static KEPT: RefCell<Kept> = RefCell::new(Kept::default());
}

/// A connected socket for `server`: a kept one when there is one, else new.
pub async fn take(server: SocketAddr) -> std::io::Result<Upstream> {
    let now = Instant::now();
    let kept = KEPT.with(|k| {
        let mut k = k.borrow_mut();
        let idle = k.by_server.get_mut(&server)?;
        let mut found = None;
        let mut taken = 0;
        while let Some(candidate) = idle.pop() {
            taken += 1;
            if now.duration_since(candidate.since) <= MAX_IDLE {
                found = Some(candidate.upstream);
                break;
            }
        }
        if idle.is_empty() {
            k.by_server.remove(&server);
        }
        k.total = k.total.saturating_sub(taken);
        found
    });
    if let Some(upstream) = kept {
        return Ok(upstream);
    }
    let bind: SocketAddr = if server.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(bind).await?;
    socket.connect(server).await?;
    Ok(Upstream { socket, uses: 0 })
}

/// Returns a socket whose query was answered, for the next query to `server`.
pub fn keep(server: SocketAddr, mut upstream: Upstream) {
    upstream.uses += 1;
    if upstream.uses >= MAX_USES {
        return;
    }
    let now = Instant::now();
    KEPT.with(|k| {
        let mut k = k.borrow_mut();
        if k.total >= MAX_TOTAL {
            // Close what has idled too long; if that frees nothing, keep nothing new.
            k.expire(now);
            if k.total >= MAX_TOTAL {
                return;
            }
        }
        let idle = k.by_server.entry(server).or_default();
        if idle.len() < MAX_PER_SERVER {
            idle.push(Idle {
                upstream,
                since: now,
            });
            k.total += 1;
        }
    });
}
