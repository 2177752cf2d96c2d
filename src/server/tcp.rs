//! TCP listeners (RFC 7766): length-prefixed messages, several queries per
//! connection answered as they complete (pipelining, out of order), an idle
//! timeout, and caps on connections overall and per client.
//!
//! hickory-server's TCP loop has no connection cap and sends only messages
//! it encodes itself; taproot answers from stored wire bytes, so it keeps
//! its own small accept loop over tokio.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::handler::{Fast, Handler};
use crate::metrics::Protocol;

/// Connection limits and timeouts.
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    pub idle: Duration,
    pub max_connections: usize,
    pub max_per_client: usize,
}

/// Binds a listener with SO_REUSEADDR (restarts do not wait for TIME_WAIT).
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

/// Accepts until `shutdown`; connections are tracked so shutdown can drain them.
pub async fn serve(
    listener: TcpListener,
    handler: Arc<Handler>,
    limits: TcpLimits,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_client: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    debug!(error = %e, "TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            handler.metrics.dropped("tcp_limit");
            continue; // dropping the stream closes it
        };
        {
            let mut map = per_client.lock().unwrap_or_else(|p| p.into_inner());
            let n = map.entry(peer.ip()).or_insert(0);
            if *n >= limits.max_per_client {
                handler.metrics.dropped("tcp_client_limit");
                continue;
            }
            *n += 1;
        }
        let handler = handler.clone();
        let per_client = per_client.clone();
        let shutdown = shutdown.clone();
        let inner = tracker.clone();
        tracker.spawn(async move {
            connection(stream, peer, handler, limits.idle, inner, shutdown).await;
            drop(slot);
            let mut map = per_client.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = map.get_mut(&peer.ip()) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&peer.ip());
                }
            }
        });
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    handler: Arc<Handler>,
    idle: Duration,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    let writer_task = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            let Ok(len) = u16::try_from(msg.len()) else {
                continue;
            };
            let mut framed = Vec::with_capacity(msg.len() + 2);
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(&msg);
            if writer.write_all(&framed).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    let mut out = Vec::with_capacity(4096);
    loop {
        let len = tokio::select! {
            r = tokio::time::timeout(idle, reader.read_u16()) => match r {
                Ok(Ok(len)) => len as usize,
                _ => break, // idle timeout, EOF or error
            },
            _ = shutdown.cancelled() => break,
        };
        let mut buf = vec![0u8; len];
        match tokio::time::timeout(idle, reader.read_exact(&mut buf)).await {
            Ok(Ok(_)) => {}
            _ => break,
        }
        let prepared = handler.prepare(&buf);
        match handler.fast(&buf, &prepared, peer, Protocol::Tcp, &mut out) {
            Fast::Reply => {
                if tx.send(out.clone()).await.is_err() {
                    break;
                }
            }
            Fast::Drop => {}
            Fast::Miss => {
                let handler = handler.clone();
                let tx = tx.clone();
                tracker.spawn(async move {
                    if let Some(resp) = handler.slow(buf, prepared, peer, Protocol::Tcp).await {
                        let _ = tx.send(resp).await;
                    }
                });
            }
        }
    }
    drop(tx);
    let _ = writer_task.await;
}
