//! Talking to authoritative servers: UDP first, TCP when truncated.
//!
//! Every UDP query gets a fresh socket on an OS-chosen random port, a random
//! 16-bit ID from a CSPRNG, and is `connect`ed so the kernel drops datagrams
//! from any other address or port. An answer is accepted only when its ID
//! and question match what was sent (RFC 5452 §9.1); anything else is
//! counted and ignored while the attempt's timer runs. A reply that does
//! match, as far as it can be read, but whose body does not decode is the
//! server's own broken answer: the attempt ends at once with
//! [`TransportError::Malformed`] (see [`undecodable_reply_to`]).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
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
    /// The server's reply (right ID, QR set, the question asked) does not
    /// decode: that server has failed this query, as with a FORMERR, and
    /// waiting longer would only wait for a reply that will not come.
    #[error("the server's reply does not decode as a DNS message")]
    Malformed,
    /// DNS over TLS (RFC 7858): the handshake failed, most often because
    /// the certificate is not valid for the configured name or not signed
    /// by the configured roots. RFC 8310 §5 (strict profile): no answer
    /// is taken from that server, and there is no fallback to clear text.
    #[error("the TLS handshake with the server failed: {0}")]
    Tls(rustls::Error),
}

/// One upstream exchange's result.
#[derive(Debug)]
pub struct Exchange {
    pub message: Message,
    /// The reply's size in bytes (the TCP one after a truncated UDP reply).
    pub size: usize,
    pub rtt: Duration,
    pub tcp: bool,
    /// Datagrams that arrived for this query but were rejected (wrong ID or
    /// question, or too broken to tell): a sign of spoofing or a broken
    /// server.
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
    /// draft-vixie-dnsext-dns0x20: `name`'s case was randomised by the
    /// caller (who records the name as sent); insist on the echo.
    pub use_0x20: bool,
    /// RD: set only towards a forwarder, which recurses for us.
    pub recursion_desired: bool,
    /// CD (RFC 4035 §3.2.2): set towards a forwarder when taproot
    /// validates itself, so the forwarder hands over bogus data for
    /// taproot to judge instead of a SERVFAIL that hides why.
    pub checking_disabled: bool,
}

/// The query message for `q` with `id`, before encoding: an IXFR query
/// (`policy::transfer`) adds the version held to its authority section
/// (RFC 1995 §3).
pub(crate) fn query(q: &Question<'_>, id: u16) -> Message {
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = q.recursion_desired;
    msg.metadata.checking_disabled = q.checking_disabled;
    msg.add_query(Query::query(q.name.clone(), q.rtype));
    if let Some(payload) = q.edns_payload {
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        edns.set_dnssec_ok(q.dnssec_ok);
        msg.set_edns(edns);
    }
    msg
}

/// `msg` in wire format.
pub(crate) fn encode(msg: &Message) -> Result<Vec<u8>, TransportError> {
    msg.to_vec()
        .map_err(|e| TransportError::Encode(e.to_string()))
}

pub(crate) fn build(q: &Question<'_>, id: u16) -> Result<Vec<u8>, TransportError> {
    encode(&query(q, id))
}

/// `bytes` behind the two-byte length of DNS over TCP (RFC 1035 §4.2.2,
/// RFC 7766 §8).
pub(crate) fn framed(bytes: &[u8]) -> Result<Vec<u8>, TransportError> {
    let len =
        u16::try_from(bytes.len()).map_err(|_| TransportError::Encode("query too long".into()))?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(bytes);
    Ok(framed)
}

/// Reads one length-prefixed message from `stream` (RFC 7766 §8).
pub(crate) async fn read_frame(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let len = stream.read_u16().await? as usize;
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}

/// True when `reply` answers exactly what was asked (ID, QR, question).
pub(crate) fn matches(
    reply: &Message,
    id: u16,
    sent: &Name,
    rtype: RecordType,
    exact_case: bool,
) -> bool {
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

/// Whether `bytes`, which do not decode as a message, are still the
/// server's reply to this query: a complete header with our `id` and QR
/// set, and the question asked (type and name, case aside) when a single
/// question can be read at all. Unbound gives up on a server whose reply
/// it cannot parse and moves on at once; so does taproot.
///
/// This keeps RFC 5452 §9.1: a datagram with another ID, or a readable
/// question other than the one asked, is still ignored, and nothing in an
/// undecodable reply is ever believed. An off-path forger who guesses the
/// ID and port can end the attempt this way, but no sooner than with a
/// well-formed FORMERR without a question, which [`matches`] takes already.
pub(crate) fn undecodable_reply_to(bytes: &[u8], id: u16, sent: &Name, rtype: RecordType) -> bool {
    let mut decoder = BinDecoder::new(bytes);
    let Ok(header) = Header::read(&mut decoder) else {
        // Not even a header: a stray fragment, not this server's reply.
        return false;
    };
    if header.metadata.id != id || header.metadata.message_type != MessageType::Response {
        return false;
    }
    if header.counts.queries != 1 {
        return true;
    }
    match Query::read(&mut decoder) {
        Ok(q) => q.query_type() == rtype && q.name() == sent,
        Err(_) => true,
    }
}

/// The largest UDP reply read. Queries advertise `resolver.edns_buffer_size`
/// (1232 by default, at most 4096 is sensible), and a server sends no more
/// than advertised (RFC 6891 §6.2.5); a longer datagram is cut by the kernel,
/// fails to parse and fails the server like any other undecodable reply. A
/// 64 KiB buffer zeroed for every upstream query cost cold misses about 5%
/// of their CPU.
const MAX_UDP_REPLY: usize = 4096;

/// Sends `q` to `server` over UDP, then TCP if the answer is truncated.
pub async fn exchange(
    server: SocketAddr,
    q: &Question<'_>,
    timeout: Duration,
) -> Result<Exchange, TransportError> {
    let id: u16 = rand::rng().random();
    let bytes = build(q, id)?;
    let sent_name = q.name;
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
    let (reply, size) = loop {
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
            Ok(m) if matches(&m, id, sent_name, q.rtype, q.use_0x20) => break (m, n),
            Ok(m) if q.use_0x20 && matches(&m, id, sent_name, q.rtype, false) => {
                return Err(TransportError::CaseNotEchoed);
            }
            Err(_) if undecodable_reply_to(&buf[..n], id, sent_name, q.rtype) => {
                return Err(TransportError::Malformed);
            }
            _ => rejected += 1,
        }
    };
    sockets::keep(server, upstream);
    if !reply.metadata.truncation {
        return Ok(Exchange {
            message: reply,
            size,
            rtt: start.elapsed(),
            tcp: false,
            rejected,
        });
    }
    let over_tcp = exchange_over_tcp(server, q, timeout.saturating_sub(start.elapsed())).await?;
    Ok(Exchange {
        rtt: start.elapsed(),
        rejected,
        ..over_tcp
    })
}

/// Sends `q` to `server` over TCP straight away: the retry to a server
/// that rate-limits us (its limiter truncates or drops UDP answers; it
/// does not limit TCP, RFC 7766 §1 and the RRL drafts). A TCP exchange
/// takes two round trips, so it gets at least 200 ms.
pub async fn exchange_over_tcp(
    server: SocketAddr,
    q: &Question<'_>,
    timeout: Duration,
) -> Result<Exchange, TransportError> {
    let start = Instant::now();
    let wait = timeout.max(Duration::from_millis(200));
    let (message, size) = tokio::time::timeout(wait, exchange_tcp(server, q))
        .await
        .map_err(|_| TransportError::Timeout(wait))??;
    Ok(Exchange {
        message,
        size,
        rtt: start.elapsed(),
        tcp: true,
        rejected: 0,
    })
}

/// One query over a fresh TCP connection (RFC 7766 §8 framing); the reply
/// and its size.
async fn exchange_tcp(
    server: SocketAddr,
    q: &Question<'_>,
) -> Result<(Message, usize), TransportError> {
    let id: u16 = rand::rng().random();
    let bytes = build(q, id)?;
    let sent_name = q.name;
    let mut stream = TcpStream::connect(server).await?;
    stream.write_all(&framed(&bytes)?).await?;
    let buf = read_frame(&mut stream).await?;
    let len = buf.len();
    let reply = Message::from_vec(&buf).map_err(|_| {
        if undecodable_reply_to(&buf, id, sent_name, q.rtype) {
            TransportError::Malformed
        } else {
            TransportError::Mismatch
        }
    })?;
    if !matches(&reply, id, sent_name, q.rtype, q.use_0x20) {
        return Err(TransportError::Mismatch);
    }
    Ok((reply, len))
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
                pointer_loop(&q, id.wrapping_add(1)), // undecodable, wrong ID
                cut_short(&q, id, "www.other.kr."),   // undecodable, wrong question
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
            x.rejected, 5,
            "wrong ID, wrong question, short header, and undecodable with a wrong ID or question"
        );
        responder.await.expect("responder");
    }

    /// A reply with the query's ID and question whose name is a compression
    /// pointer to itself (RFC 1035 §4.1.4 pointers must point backwards).
    fn pointer_loop(query: &Message, id: u16) -> Vec<u8> {
        let mut b = answer_for(query, id, "www.kr.", [6, 6, 6, 3]);
        b.truncate(12);
        b[5] = 1;
        b.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        b
    }

    /// An answer to `qname` whose header counts one more answer record than
    /// it holds: the question reads, the body does not.
    fn cut_short(query: &Message, id: u16, qname: &str) -> Vec<u8> {
        let mut b = answer_for(query, id, qname, [6, 6, 6, 5]);
        b[7] = 2;
        b
    }

    /// A reply to this query that does not decode ends the attempt at once
    /// with `Malformed`: it is the server's answer, and a broken one.
    #[tokio::test]
    async fn an_undecodable_reply_to_the_query_fails_at_once() {
        let cases: [fn(&Message, u16) -> Vec<u8>; 2] =
            [pointer_loop, |q, id| cut_short(q, id, "www.kr.")];
        for broken in cases {
            let server = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
            let addr = server.local_addr().expect("addr");
            let responder = tokio::spawn(async move {
                let mut buf = vec![0u8; 512];
                let (n, client) = server.recv_from(&mut buf).await.expect("query");
                let q = Message::from_vec(&buf[..n]).expect("query decodes");
                let reply = broken(&q, q.metadata.id);
                server.send_to(&reply, client).await.expect("send");
            });
            let name = Name::from_ascii("www.kr.").expect("name");
            let q = a_question(&name);
            let started = Instant::now();
            let result = exchange(addr, &q, Duration::from_secs(5)).await;
            assert!(
                matches!(result, Err(TransportError::Malformed)),
                "{result:?}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "no timeout waited"
            );
            responder.await.expect("responder");
        }
    }

    /// `name` A, as the walk asks it: EDNS, no 0x20.
    fn a_question(name: &Name) -> Question<'_> {
        Question {
            name,
            rtype: RecordType::A,
            edns_payload: Some(1232),
            dnssec_ok: false,
            use_0x20: false,
            recursion_desired: false,
            checking_disabled: false,
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
