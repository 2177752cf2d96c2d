//! The socket loops of one server address: UDP datagrams and TCP streams
//! with the two-octet length prefix of RFC 1035 §4.2.2 (several queries per
//! connection, RFC 7766 §6.2.1).
//!
//! Each loop keeps the tasks it spawns (delayed UDP replies, TCP
//! connections) in a `JoinSet`, so aborting the loop's task aborts them too
//! and closes every socket the tree opened.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;
use tracing::debug;

use super::responder::{Responder, Transport};

/// How long a TCP connection may sit idle before the server closes it.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// Answers UDP queries on `socket`, the socket of `server`, until aborted.
pub(super) async fn serve_udp(socket: UdpSocket, server: IpAddr, responder: Arc<Responder>) {
    let socket = Arc::new(socket);
    let mut delayed = JoinSet::new();
    let mut buf = vec![0u8; usize::from(u16::MAX)];
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let (len, peer) = match received {
                    Ok(received) => received,
                    Err(error) => {
                        debug!(%server, %error, "fake server UDP receive failed");
                        continue;
                    }
                };
                let Some(reply) = responder.respond(server, &buf[..len], Transport::Udp) else {
                    continue;
                };
                if reply.from_other_port {
                    // An answer from the right address but a port the
                    // resolver never sent to: bound anew, port chosen by the kernel.
                    if let Ok(other) = UdpSocket::bind((server, 0)).await {
                        let _ = other.send_to(&reply.bytes, peer).await;
                    }
                } else if reply.delay.is_zero() {
                    if let Err(error) = socket.send_to(&reply.bytes, peer).await {
                        debug!(%server, %peer, %error, "fake server UDP send failed");
                    }
                } else {
                    let socket = socket.clone();
                    delayed.spawn(async move {
                        tokio::time::sleep(reply.delay).await;
                        let _ = socket.send_to(&reply.bytes, peer).await;
                    });
                }
            }
            Some(_) = delayed.join_next(), if !delayed.is_empty() => {}
        }
    }
}

/// Accepts TCP connections on `listener`, the listener of `server`, and
/// serves each until it goes idle, until aborted.
pub(super) async fn serve_tcp(listener: TcpListener, server: IpAddr, responder: Arc<Responder>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(serve_connection(stream, server, responder.clone()));
                }
                Err(error) => {
                    // Out of descriptors, most likely: back off instead of spinning.
                    debug!(%server, %error, "fake server TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Serves length-prefixed queries on one connection, in order.
async fn serve_connection(mut stream: TcpStream, server: IpAddr, responder: Arc<Responder>) {
    loop {
        let mut prefix = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut prefix)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let mut query = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut query)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let Some(reply) = responder.respond(server, &query, Transport::Tcp) else {
            continue;
        };
        if !reply.delay.is_zero() {
            tokio::time::sleep(reply.delay).await;
        }
        let Ok(len) = u16::try_from(reply.bytes.len()) else {
            debug!(%server, "fake server reply too long for TCP; closing");
            return;
        };
        let mut framed = Vec::with_capacity(reply.bytes.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&reply.bytes);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}
