//! The cache-hit fast path renders from the same stored wire bytes as the
//! miss path: a hit is byte-identical to the first answer but for the ID and
//! the TTLs, which are decremented.

mod support;

use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use support::client::{self, exchange_udp_raw};
use support::lab::lab_tree;
use support::start_taproot;

/// Zeroes the ID and every TTL of a response, for comparing bytes.
fn without_id_and_ttls(mut raw: Vec<u8>) -> Vec<u8> {
    raw[0] = 0;
    raw[1] = 0;
    let (offsets, _) = taproot::wire::ttl_offsets(&raw).expect("walks");
    for off in offsets {
        let at = off as usize;
        raw[at..at + 4].copy_from_slice(&[0, 0, 0, 0]);
    }
    raw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_path_hit_is_byte_identical_to_the_miss_but_for_id_and_ttls() {
    let tree = lab_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    for (qname, rtype) in [
        ("out.example.co.kr.", RecordType::A),
        ("nope.example.co.kr.", RecordType::A),
        ("www.provider.lab.", RecordType::TXT),
    ] {
        let mut q = client::query(qname, rtype);
        q.metadata.recursion_desired = true;
        let miss = exchange_udp_raw(t.addr, &q.to_vec().expect("encode"), Duration::from_secs(3))
            .await
            .expect("miss answered");
        tree.reset_counts();
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        q.metadata.id = q.metadata.id.wrapping_add(7);
        let hit = exchange_udp_raw(t.addr, &q.to_vec().expect("encode"), Duration::from_secs(3))
            .await
            .expect("hit answered");
        assert_eq!(tree.total_queries(), 0, "{qname}: a hit");
        assert_eq!(u16::from_be_bytes([hit[0], hit[1]]), q.metadata.id);
        assert_eq!(
            without_id_and_ttls(miss.clone()),
            without_id_and_ttls(hit.clone()),
            "{qname}"
        );
        let (m1, m2) = (
            Message::from_vec(&miss).expect("decodes"),
            Message::from_vec(&hit).expect("decodes"),
        );
        let ttls = |m: &Message| {
            m.answers
                .iter()
                .chain(&m.authorities)
                .map(|r| r.ttl)
                .collect::<Vec<_>>()
        };
        for (a, b) in ttls(&m1).into_iter().zip(ttls(&m2)) {
            assert!(b < a, "{qname}: TTL decremented ({a} then {b})");
        }
    }
    t.stop().await;
}

/// Datagrams are read and answered in batches (recvmmsg/sendmmsg): a burst
/// sent before any answer is read, hits and misses mixed, gets every query
/// its own answer, each to its own question.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_hits_and_misses_gets_every_answer_once() {
    let tree = lab_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    // Warm one name, so the burst holds hits as well as misses.
    let warm = client::recursive("www.example.co.kr.", RecordType::A);
    exchange_udp_raw(
        t.addr,
        &warm.to_vec().expect("encode"),
        Duration::from_secs(3),
    )
    .await
    .expect("warmed");
    let names = [
        "www.example.co.kr.",
        "www.provider.lab.",
        "mail.provider.lab.",
        "host.sub.example.co.kr.",
        "www.example.co.kr.",
    ];
    const BURST: u16 = 200;
    let mut asked = std::collections::HashMap::new();
    for id in 0..BURST {
        let qname = names[usize::from(id) % names.len()];
        let mut q = client::recursive(qname, RecordType::A);
        q.metadata.id = id;
        socket
            .send_to(&q.to_vec().expect("encode"), t.addr)
            .await
            .expect("send");
        asked.insert(id, qname);
    }
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !asked.is_empty() {
        let (n, _) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{} queries unanswered: {asked:?}", asked.len()))
            .expect("recv");
        let reply = Message::from_vec(&buf[..n]).expect("an answer decodes");
        let qname = asked
            .remove(&reply.metadata.id)
            .unwrap_or_else(|| panic!("ID {} answered twice or never asked", reply.metadata.id));
        assert_eq!(reply.queries[0].name().to_ascii(), qname);
        assert!(client::first_a(&reply).is_some(), "{qname}: an address");
    }
    t.stop().await;
}

/// A datagram longer than the largest query taken (4 KiB) is dropped, and
/// the next query is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_datagram_is_dropped() {
    let tree = lab_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    let q = client::recursive("www.example.co.kr.", RecordType::A);
    let mut big = q.to_vec().expect("encode");
    big.resize(5000, 0);
    assert_eq!(
        exchange_udp_raw(t.addr, &big, Duration::from_millis(700)).await,
        None,
        "no answer to a 5,000-byte datagram"
    );
    let reply = exchange_udp_raw(t.addr, &q.to_vec().expect("encode"), Duration::from_secs(3))
        .await
        .expect("answered");
    let reply = Message::from_vec(&reply).expect("decodes");
    assert!(client::first_a(&reply).is_some());
    t.stop().await;
}
