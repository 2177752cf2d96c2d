//! Talking to authoritative servers: UDP first, TCP when truncated.
//!
//! Every UDP query gets a fresh socket on an OS-chosen random port, a random
//! 16-bit ID from a CSPRNG, and is `connect`ed so the kernel drops datagrams
//! from any other address or port. An answer is accepted only when its ID
//! and question match what was sent (RFC 5452 §9.1); anything else, garbage
//! included, is counted and ignored while the attempt's timer runs.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::sockets;

/// Why an upstream attempt produced no usable message.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("network error: {0}")]
    Io(#[from] std::io::Error),
    #[error("the query could not be encoded: {0}")]
    Encode(String),
    #[error("the TCP answer did not match the query")]
    Mismatch,
    /// The server answered with the right ID and question but not the
    /// randomised case: it does not echo case, so 0x20 must be off for it.
    #[error("the server does not preserve the question's case (0x20)")]
    CaseNotEchoed,
}

/// One upstream exchange's result.
#[derive(Debug)]
pub struct Exchange {
    pub message: Message,
    pub rtt: Duration,
    pub tcp: bool,
    /// Datagrams that arrived for this query but were rejected (wrong ID,
    /// wrong question, unparsable): a sign of spoofing or a broken server.
    pub rejected: u32,
}

/// What to send.
#[derive(Debug, Clone)]
pub struct Question<'a> {
    pub name: &'a Name,
    pub rtype: RecordType,
    pub edns_payload: Option<u16>,
    /// DO (RFC 3225): ask for RRSIGs and NSECs; only with EDNS.
    pub dnssec_ok: bool,
    /// RFC draft-vixie-dnsext-dns0x20: randomise the case and insist on the echo.
    pub use_0x20: bool,
}

fn build(q: &Question<'_>, id: u16) -> Result<(Vec<u8>, Name), TransportError> {
    let mut name = q.name.clone();
    if q.use_0x20 {
        name.randomize_label_case();
    }
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = false;
    msg.add_query(Query::query(name.clone(), q.rtype));
    if let Some(payload) = q.edns_payload {
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        edns.set_dnssec_ok(q.dnssec_ok);
        msg.set_edns(edns);
    }
    let bytes = msg
        .to_vec()
        .map_err(|e| TransportError::Encode(e.to_string()))?;
    Ok((bytes, name))
}

/// True when `reply` answers exactly what was asked (ID, QR, question).
fn matches(reply: &Message, id: u16, sent: &Name, rtype: RecordType, exact_case: bool) -> bool {
    if reply.metadata.id != id || reply.metadata.message_type != MessageType::Response {
        return false;
    }
    match reply.queries.as_slice() {
        [q] => {
            q.query_type() == rtype
                && if exact_case {
                    q.name().eq_case(sent)
                } else {
                    q.name() == sent
                }
        }
        // Some servers omit the question on errors; only accept that for an error rcode.
        [] => reply.metadata.response_code != hickory_proto::op::ResponseCode::NoError,
        _ => false,
    }
}

/// The largest UDP reply read. Queries advertise `resolver.edns_buffer_size`
/// (1232 by default, at most 4096 is sensible), and a server sends no more
/// than advertised (RFC 6891 §6.2.5); a longer datagram is cut by the kernel,
/// fails to parse and is rejected like any other bad reply. A 64 KiB buffer
/// zeroed for every upstream query cost cold misses about 5% of their CPU.
const MAX_UDP_REPLY: usize = 4096;

/// Sends `q` to `server` over UDP, then TCP if the answer is truncated.
pub async fn exchange(
    server: SocketAddr,
    q: &Question<'_>,
    timeout: Duration,
) -> Result<Exchange, TransportError> {
    let id: u16 = rand::rng().random();
    let (bytes, sent_name) = build(q, id)?;
    let start = Instant::now();
    let upstream = sockets::take(server).await?;
    let socket = &upstream.socket;
    // On the heap: an array would live in every future that awaits this one,
    // and futures are moved (into tasks, across awaits) by memcpy.
    let mut buf = vec![0u8; MAX_UDP_REPLY];
    let mut rejected = 0;
    // A kept socket may hold a late duplicate of its last answer: not ours.
    while upstream.uses > 0 && socket.try_recv(&mut buf).is_ok() {
        rejected += 1;
    }
    socket.send(&bytes).await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let reply = loop {
        let n = match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
            Err(_) => return Err(TransportError::Timeout(timeout)),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Err(e.into()),
            Ok(Err(_)) => {
                rejected += 1;
                continue;
            }
            Ok(Ok(n)) => n,
        };
        match Message::from_vec(&buf[..n]) {
            Ok(m) if matches(&m, id, &sent_name, q.rtype, q.use_0x20) => break m,
            Ok(m) if q.use_0x20 && matches(&m, id, &sent_name, q.rtype, false) => {
                return Err(TransportError::CaseNotEchoed);
            }
            _ => rejected += 1,
        }
    };
    sockets::keep(server, upstream);
    if !reply.metadata.truncation {
        return Ok(Exchange {
            message: reply,
            rtt: start.elapsed(),
            tcp: false,
            rejected,
        });
    }
    let remaining = timeout
        .saturating_sub(start.elapsed())
        .max(Duration::from_millis(200));
    let message = tokio::time::timeout(remaining, exchange_tcp(server, q))
        .await
        .map_err(|_| TransportError::Timeout(timeout))??;
    Ok(Exchange {
        message,
        rtt: start.elapsed(),
        tcp: true,
        rejected,
    })
}

/// One query over a fresh TCP connection (RFC 7766 §8 framing).
pub async fn exchange_tcp(server: SocketAddr, q: &Question<'_>) -> Result<Message, TransportError> {
    let id: u16 = rand::rng().random();
    let (bytes, sent_name) = build(q, id)?;
    let mut stream = TcpStream::connect(server).await?;
    let len =
        u16::try_from(bytes.len()).map_err(|_| TransportError::Encode("query too long".into()))?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(&bytes);
    stream.write_all(&framed).await?;
    let len = stream.read_u16().await? as usize;
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf).await?;
    let reply = Message::from_vec(&buf).map_err(|_| TransportError::Mismatch)?;
    if !matches(&reply, id, &sent_name, q.rtype, q.use_0x20) {
        return Err(TransportError::Mismatch);
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::RData;
    use hickory_proto::rr::rdata::A;
    use tokio::net::UdpSocket;

    fn answer_for(query: &Message, id: u16, qname: &str, addr: [u8; 4]) -> Vec<u8> {
        let name = Name::from_ascii(qname).expect("name");
        let mut m = Message::new(id, MessageType::Response, OpCode::Query);
        m.metadata.authoritative = true;
        m.add_query(Query::query(name.clone(), query.queries[0].query_type()));
        m.add_answer(hickory_proto::rr::Record::from_rdata(
            name,
            300,
            RData::A(A::new(addr[0], addr[1], addr[2], addr[3])),
        ));
        m.to_vec().expect("encodes")
    }

    /// RFC 5452 §9.1: only an answer with the right ID and question from the
    /// queried address and port is taken; everything before it is rejected.
    #[tokio::test]
    async fn forged_and_malformed_answers_are_ignored() {
        let server = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let other_port = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = server.local_addr().expect("addr");
        let responder = tokio::spawn(async move {
            let mut buf = vec![0u8; 512];
            let (n, client) = server.recv_from(&mut buf).await.expect("query");
            let q = Message::from_vec(&buf[..n]).expect("query decodes");
            let id = q.metadata.id;
            let forged = [
                answer_for(&q, id.wrapping_add(1), "www.kr.", [6, 6, 6, 1]), // wrong ID
                answer_for(&q, id, "www.other.kr.", [6, 6, 6, 2]),           // wrong question
                buf[..5].to_vec(),                                           // truncated header
                {
                    // a compression pointer that points at itself
                    let mut b = answer_for(&q, id, "www.kr.", [6, 6, 6, 3]);
                    b.truncate(12);
                    b[5] = 1;
                    b.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
                    b
                },
            ];
            for f in &forged {
                server.send_to(f, client).await.expect("send");
            }
            // From another port: the kernel drops it for the connected socket.
            other_port
                .send_to(&answer_for(&q, id, "www.kr.", [6, 6, 6, 4]), client)
                .await
                .expect("send");
            tokio::time::sleep(Duration::from_millis(50)).await;
            server
                .send_to(&answer_for(&q, id, "www.kr.", [127, 0, 0, 1]), client)
                .await
                .expect("send");
        });
        let name = Name::from_ascii("www.kr.").expect("name");
        let q = a_question(&name);
        let x = exchange(addr, &q, Duration::from_secs(2))
            .await
            .expect("the true answer arrives");
        assert_eq!(x.message.answers[0].data, RData::A(A::new(127, 0, 0, 1)));
        assert_eq!(
            x.rejected, 4,
            "wrong ID, wrong question, short header, pointer loop"
        );
        responder.await.expect("responder");
    }

    /// `name` A, as the walk asks it: EDNS, no 0x20.
    fn a_question(name: &Name) -> Question<'_> {
        Question {
            name,
            rtype: RecordType::A,
            edns_payload: Some(1232),
            dnssec_ok: false,
            use_0x20: false,
        }
    }

    /// Answers `count` queries on `server` and reports the port each came from.
    fn answer_queries(server: UdpSocket, count: usize) -> tokio::task::JoinHandle<Vec<u16>> {
        tokio::spawn(async move {
            let mut ports = Vec::new();
            let mut buf = vec![0u8; 512];
            for _ in 0..count {
                let (n, client) = server.recv_from(&mut buf).await.expect("query");
                let q = Message::from_vec(&buf[..n]).expect("query decodes");
                let reply = answer_for(&q, q.metadata.id, "www.kr.", [127, 0, 0, 1]);
                server.send_to(&reply, client).await.expect("send");
                ports.push(client.port());
            }
            ports
        })
    }

    /// A socket whose query was answered carries the next query to the same
    /// server; another server gets a socket of its own.
    #[tokio::test]
    async fn an_answered_socket_carries_the_next_query_to_its_server_only() {
        let one = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let two = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let (a1, a2) = (
            one.local_addr().expect("addr"),
            two.local_addr().expect("addr"),
        );
        let (r1, r2) = (answer_queries(one, 2), answer_queries(two, 1));
        let name = Name::from_ascii("www.kr.").expect("name");
        let q = a_question(&name);
        for server in [a1, a1, a2] {
            exchange(server, &q, Duration::from_secs(2))
                .await
                .expect("answered");
        }
        let ports_one = r1.await.expect("responder one");
        let ports_two = r2.await.expect("responder two");
        assert_eq!(ports_one[0], ports_one[1], "kept for the same server");
        assert_ne!(ports_one[0], ports_two[0], "never lent to another server");
    }

    /// After a timeout the socket is closed: the next query gets a new port.
    #[tokio::test]
    async fn a_socket_that_timed_out_is_not_kept() {
        let server = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = server.local_addr().expect("addr");
        let name = Name::from_ascii("www.kr.").expect("name");
        let q = a_question(&name);
        let mut buf = vec![0u8; 512];
        // The first query goes unanswered.
        let silent = exchange(addr, &q, Duration::from_millis(200));
        let (result, first) = tokio::join!(silent, server.recv_from(&mut buf));
        assert!(matches!(result, Err(TransportError::Timeout(_))));
        let first_port = first.expect("query").1.port();
        let responder = answer_queries(server, 1);
        exchange(addr, &q, Duration::from_secs(2))
            .await
            .expect("answered");
        let second_port = responder.await.expect("responder")[0];
        assert_ne!(first_port, second_port);
    }
}
