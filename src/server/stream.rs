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
//!  read ─► whole frames ─► Handler::fast ─┬─ hit ──────────────────► one write per read
//!                                         └─ miss ─► task: slow ─► channel ─┘
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::edns;
use super::handler::{Fast, Handler};
use super::transport::Transport;

/// Misses' answers queued for one connection before their tasks wait.
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
///
/// One task owns the stream, reading and writing: every whole query a read
/// brought in is answered, the hits are written together (one write, one
/// TLS record), and only then does the task wait, for more bytes or for a
/// miss's answer from its resolution task. A pipelined burst costs one
/// wake-up and one write, and a hit never crosses to another task.
pub async fn serve<S>(mut stream: S, peer: SocketAddr, transport: Transport, cx: &Context)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handler = &cx.handler;
    // Misses' answers, framed, from their resolution tasks.
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    let mut inbuf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut outbuf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut answer = Vec::with_capacity(READ_CHUNK);
    let mut idle_since = tokio::time::Instant::now();
    // Made once: a timer armed or a shutdown waiter registered per query
    // would cost more than the query (the timer is moved on only when it
    // fires early).
    let idle_timer = tokio::time::sleep(cx.idle);
    let shutdown = cx.shutdown.cancelled();
    tokio::pin!(idle_timer, shutdown);
    loop {
        let mut at = 0;
        while let Some(len) = whole_frame(&inbuf[at..]) {
            let raw = &inbuf[at + 2..at + 2 + len];
            at += 2 + len;
            let prepared = handler.prepare(raw);
            let query_edns = prepared.edns();
            match handler.fast(raw, &prepared, peer, transport, &mut answer) {
                Fast::Reply => {
                    edns::finish(&mut answer, query_edns, transport, cx.idle);
                    frame(&answer, &mut outbuf);
                }
                Fast::Drop => {}
                Fast::Miss => {
                    let (handler, tx, idle) = (handler.clone(), tx.clone(), cx.idle);
                    let raw = raw.to_vec();
                    cx.tracker.spawn(async move {
                        if let Some(mut resp) = handler.slow(raw, prepared, peer, transport).await {
                            edns::finish(&mut resp, query_edns, transport, idle);
                            let mut framed = Vec::with_capacity(resp.len() + 2);
                            frame(&resp, &mut framed);
                            let _ = tx.send(framed).await;
                        }
                    });
                }
            }
        }
        if at > 0 {
            inbuf.drain(..at);
            idle_since = tokio::time::Instant::now();
        }
        if !outbuf.is_empty() {
            if write_out(&mut stream, &outbuf).await.is_err() {
                return;
            }
            outbuf.clear();
        }
        // Room for the rest of a long message, or the next read.
        let want = match inbuf.as_slice() {
            [hi, lo, ..] => 2 + usize::from(u16::from_be_bytes([*hi, *lo])),
            _ => READ_CHUNK,
        };
        inbuf.reserve(want.saturating_sub(inbuf.len()).max(READ_CHUNK));
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            Some(framed) = rx.recv() => {
                outbuf.extend_from_slice(&framed);
                while let Ok(more) = rx.try_recv() {
                    outbuf.extend_from_slice(&more);
                }
            }
            // Cancel-safe: when another branch wins, nothing was read.
            r = stream.read_buf(&mut inbuf) => match r {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
            _ = &mut idle_timer => {
                if idle_since.elapsed() >= cx.idle {
                    break;
                }
                idle_timer.as_mut().reset(idle_since + cx.idle);
            }
        }
    }
    // The client stopped sending, or the server is stopping: answers to
    // queries already read still go out, for as long as the idle timeout
    // (a stopping server waits for them only its shutdown grace: RFC 7766
    // §6.2.3 lets a server close only between answers, and a client that
    // sent a query before the stop still gets its answer).
    drop(tx);
    let drain = async {
        loop {
            if !outbuf.is_empty() {
                if write_out(&mut stream, &outbuf).await.is_err() {
                    return;
                }
                outbuf.clear();
            }
            match rx.recv().await {
                Some(framed) => outbuf.extend_from_slice(&framed),
                None => return,
            }
        }
    };
    let _ = tokio::time::timeout(cx.idle, drain).await;
    let _ = stream.shutdown().await;
}

/// Bytes a read asks for at least.
const READ_CHUNK: usize = 4096;

async fn write_out<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// The length of the message `buffered` starts with, when all of it is there.
fn whole_frame(buffered: &[u8]) -> Option<usize> {
    match buffered {
        [hi, lo, rest @ ..] => {
            let len = usize::from(u16::from_be_bytes([*hi, *lo]));
            (rest.len() >= len).then_some(len)
        }
        _ => None,
    }
}

/// Appends `msg` with its two-byte length prefix (RFC 1035 §4.2.2).
fn frame(msg: &[u8], framed: &mut Vec<u8>) {
    if let Ok(len) = u16::try_from(msg.len()) {
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(msg);
    }
}
