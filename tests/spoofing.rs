//! Anti-spoofing (RFC 5452): an attacker floods taproot's outgoing ports
//! with forged answers while it waits on a slow server. Kept in its own test
//! binary because the flood hits every ephemeral port of the machine,
//! including other tests' client sockets.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use support::client;
use support::lab::{self, lab_tree};
use support::start_taproot;
use support::tree::Behaviour;
use tokio::net::UdpSocket;

/// A stub client that, unlike the shared one, checks the ID and the source
/// of what it receives: the flood reaches its socket too.
async fn ask_checked(to: SocketAddr, q: &Message) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    socket
        .send_to(&q.to_vec().expect("encode"), to)
        .await
        .expect("send");
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (n, from) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf))
            .await
            .expect("an answer within 5 s")
            .expect("recv");
        if from != to {
            continue;
        }
        if let Ok(m) = Message::from_vec(&buf[..n])
            && m.metadata.id == q.metadata.id
        {
            return m;
        }
    }
}

/// The ephemeral port range the kernel picks upstream source ports from.
fn ephemeral_ports() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().filter_map(|p| p.parse().ok());
            Some((it.next()?, it.next()?))
        })
        .unwrap_or((32768, 60999))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_spoofing_flood_during_a_slow_resolution_poisons_nothing() {
    let tree = lab_tree().await;
    for s in [lab::EX1, lab::EX2, lab::EX3] {
        tree.set_behaviour(s, Behaviour::Delay(Duration::from_millis(700)));
    }
    let t = start_taproot(&tree, |_| {}).await;
    // Warm the delegation so the only slow step is the final answer.
    ask_checked(
        t.addr,
        &client::recursive("alias.example.co.kr.", RecordType::A),
    )
    .await;
    let target = Name::from_ascii("www.example.co.kr.").expect("name");
    let (lo, hi) = ephemeral_ports();
    let attacker = tokio::spawn(async move {
        let socket = UdpSocket::bind("127.0.0.66:0")
            .await
            .expect("attacker socket");
        let mut sent = 0u64;
        let stop = Instant::now() + Duration::from_millis(600);
        'outer: loop {
            for port in lo..=hi {
                if Instant::now() > stop || sent >= 400_000 {
                    break 'outer;
                }
                let mut m = Message::new(rand::random(), MessageType::Response, OpCode::Query);
                m.metadata.authoritative = true;
                m.add_query(Query::query(target.clone(), RecordType::A));
                m.add_answer(Record::from_rdata(
                    target.clone(),
                    86400,
                    RData::A(A::new(6, 6, 6, 6)),
                ));
                let bytes = m.to_vec().expect("encode");
                let _ = socket
                    .send_to(&bytes, SocketAddr::from(([127, 0, 0, 1], port)))
                    .await;
                sent += 1;
            }
        }
        sent
    });
    let reply = ask_checked(
        t.addr,
        &client::recursive("www.example.co.kr.", RecordType::A),
    )
    .await;
    let forged = attacker.await.expect("attacker");
    eprintln!("spoofing: {forged} forged answers sent over ports {lo}-{hi}");
    assert!(forged > 1000, "the attack really ran: {forged}");
    assert_eq!(client::first_a(&reply).as_deref(), Some("127.5.0.1"));
    let again = ask_checked(
        t.addr,
        &client::recursive("www.example.co.kr.", RecordType::A),
    )
    .await;
    assert_eq!(
        client::first_a(&again).as_deref(),
        Some("127.5.0.1"),
        "the cache holds the true address"
    );
    t.stop().await;
}
