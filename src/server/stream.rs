//! DNS over a byte stream (RFC 7766, and RFC 7858 inside TLS): messages
//! with a two-byte length prefix, several queries in flight on one
//! connection, answered as they complete (pipelining, out of order,
//! RFC 7766 §6.2.1.1), and an idle timeout (§6.2.3).
//!
//! The connection is generic over `AsyncRead + AsyncWrite`: plain TCP and
//! DNS over TLS run this same code, the TLS handshake having been done by
//! the listener ([`super::listener`]) in front of it.
//!
//! ```text
//!  reader ─► frame ─► Handler::fast ─┬─ reply ───────────────► writer task ─► stream
//!                                    └─ miss ─► task: slow ──┘
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::edns;
use super::handler::{Fast, Handler};
use super::transport::Transport;

/// Responses queued for one connection's writer before readers wait.
const WRITE_QUEUE: usize = 64;

/// What every stream connection shares with its listener.
#[derive(Clone)]
pub struct Context {
    pub handler: Arc<Handler>,
    /// A connection with no query for this long is closed; a TLS
    /// handshake must finish within it too.
    pub idle: Duration,
    pub tracker: TaskTracker,
    pub shutdown: CancellationToken,
}

/// Serves DNS messages on `stream` until the client closes it, it idles
/// out, or the server shuts down.
pub async fn serve<S>(stream: S, peer: SocketAddr, transport: Transport, cx: &Context)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (reader, mut writer) = tokio::io::split(stream);
    let mut reader = BufReader::new(reader);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    let writer_task = tokio::spawn(async move {
        let mut framed = Vec::with_capacity(4096);
        while let Some(first) = rx.recv().await {
            // Everything already answered goes out in one write (one TLS
            // record, one segment) instead of one each.
            framed.clear();
            frame(&first, &mut framed);
            while let Ok(next) = rx.try_recv() {
                frame(&next, &mut framed);
            }
            if writer.write_all(&framed).await.is_err() || writer.flush().await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    let handler = &cx.handler;
    let mut out = Vec::with_capacity(4096);
    loop {
        let len = tokio::select! {
            r = tokio::time::timeout(cx.idle, reader.read_u16()) => match r {
                Ok(Ok(len)) => len as usize,
                _ => break, // idle timeout, EOF or error
            },
            _ = cx.shutdown.cancelled() => break,
        };
        let mut buf = vec![0u8; len];
        match tokio::time::timeout(cx.idle, reader.read_exact(&mut buf)).await {
            Ok(Ok(_)) => {}
            _ => break,
        }
        let prepared = handler.prepare(&buf);
        let query_edns = prepared.edns();
        match handler.fast(&buf, &prepared, peer, transport, &mut out) {
            Fast::Reply => {
                edns::finish(&mut out, query_edns, transport, cx.idle);
                if tx.send(out.clone()).await.is_err() {
                    break;
                }
            }
            Fast::Drop => {}
            Fast::Miss => {
                let handler = handler.clone();
                let tx = tx.clone();
                let idle = cx.idle;
                cx.tracker.spawn(async move {
                    if let Some(mut resp) = handler.slow(buf, prepared, peer, transport).await {
                        edns::finish(&mut resp, query_edns, transport, idle);
                        let _ = tx.send(resp).await;
                    }
                });
            }
        }
    }
    drop(tx);
    let _ = writer_task.await;
}

/// Appends `msg` with its two-byte length prefix (RFC 1035 §4.2.2).
fn frame(msg: &[u8], framed: &mut Vec<u8>) {
    if let Ok(len) = u16::try_from(msg.len()) {
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(msg);
    }
}
