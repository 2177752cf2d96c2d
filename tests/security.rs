//! Attacks from both sides: outsiders and floods from clients, malformed
//! packets, forged and broken upstream answers.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use rand::Rng;
use support::client::{self, ask_udp};
use support::lab::{self, lab_tree};
use support::start_taproot;
use support::tree::{Behaviour, Malformation};
use taproot::config::{AclAction, AclRule};
use tokio::net::UdpSocket;

async fn ask_from(from: &str, to: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind(from).await.expect("bind client");
    socket.send_to(bytes, to).await.expect("send");
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(wait, socket.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outsider_address_is_refused() {
    let tree = lab_tree().await;
    let t = start_taproot(&tree, |c| {
        c.acl = vec![AclRule {
            prefix: "127.0.0.1/32".parse().expect("prefix"),
            action: AclAction::Allow,
        }];
    })
    .await;
    let q = client::recursive("www.provider.lab.", RecordType::A)
        .to_vec()
        .expect("encode");
    let outsider = ask_from("127.0.0.2:0", t.addr, &q, Duration::from_secs(2))
        .await
        .expect("an answer");
    let outsider = Message::from_vec(&outsider).expect("decodes");
    assert_eq!(outsider.metadata.response_code, ResponseCode::Refused);
    assert_eq!(tree.total_queries(), 0, "no work for an outsider");
    let insider = ask_from("127.0.0.1:0", t.addr, &q, Duration::from_secs(2))
        .await
        .expect("an answer");
    assert_eq!(
        Message::from_vec(&insider)
            .expect("decodes")
            .metadata
            .response_code,
        ResponseCode::NoError
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_client_is_limited_while_another_is_served() {
    let tree = lab_tree().await;
    let t = start_taproot(&tree, |c| {
        c.ratelimit.qps = 20;
        c.ratelimit.burst = 20;
        c.ratelimit.slip = 2;
        // The test's clients are on loopback, which is exempt by default.
        c.ratelimit.exempt = Vec::new();
    })
    .await;
    let q = client::recursive("www.provider.lab.", RecordType::A);
    ask_udp(t.addr, &q).await; // warm the cache
    let flood = UdpSocket::bind("127.0.0.3:0").await.expect("bind");
    let bytes = q.to_vec().expect("encode");
    for _ in 0..400 {
        flood.send_to(&bytes, t.addr).await.expect("send");
    }
    let mut answered = 0;
    let mut truncated = 0;
    let mut buf = vec![0u8; 4096];
    while let Ok(Ok((n, _))) =
        tokio::time::timeout(Duration::from_millis(300), flood.recv_from(&mut buf)).await
    {
        let m = Message::from_vec(&buf[..n]).expect("decodes");
        if m.metadata.truncation {
            truncated += 1;
        } else {
            answered += 1;
        }
    }
    assert!(
        answered <= 30,
        "the flood was limited: {answered} full answers"
    );
    assert!(truncated > 0, "slip sends TC=1 now and then");
    let other = ask_from("127.0.0.4:0", t.addr, &bytes, Duration::from_secs(2))
        .await
        .expect("served");
    assert_eq!(
        client::first_a(&Message::from_vec(&other).expect("decodes")).as_deref(),
        Some("127.3.0.1")
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_clients_are_not_rate_limited_by_default() {
    let tree = lab_tree().await;
    // The shipped limit, scaled down so a short burst crosses it.
    let t = start_taproot(&tree, |c| {
        c.ratelimit.qps = 20;
        c.ratelimit.burst = 20;
    })
    .await;
    let q = client::recursive("www.provider.lab.", RecordType::A);
    ask_udp(t.addr, &q).await; // warm the cache
    let local = UdpSocket::bind("127.0.0.3:0").await.expect("bind");
    let bytes = q.to_vec().expect("encode");
    let mut answered = 0;
    let mut buf = vec![0u8; 4096];
    // In lockstep, so no reply is lost to a full socket buffer.
    for _ in 0..200 {
        local.send_to(&bytes, t.addr).await.expect("send");
        if let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_millis(300), local.recv_from(&mut buf)).await
        {
            let m = Message::from_vec(&buf[..n]).expect("decodes");
            if !m.metadata.truncation {
                answered += 1;
            }
        }
    }
    assert_eq!(
        answered, 200,
        "a loopback client is exempt (ratelimit.exempt)"
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_gets_a_minimal_answer() {
    let tree = lab_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    let reply = ask_udp(
        t.addr,
        &client::recursive("www.provider.lab.", RecordType::ANY),
    )
    .await;
    assert_eq!(reply.answers.len(), 1);
    assert_eq!(reply.answers[0].record_type(), RecordType::HINFO);
    assert_eq!(tree.total_queries(), 0);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_client_packets_get_formerr_or_nothing_and_the_next_query_is_answered() {
    let tree = lab_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    let mut rng = rand::rng();
    for len in [0usize, 3, 11, 12, 40, 300] {
        let junk: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if let Some(resp) = ask_from("127.0.0.1:0", t.addr, &junk, Duration::from_millis(200)).await
        {
            let rcode = resp.get(3).map(|b| b & 0x0f);
            assert!(
                matches!(rcode, Some(1) | Some(4) | Some(5)) || resp.len() >= 12,
                "{resp:?}"
            );
        }
    }
    let mut many = vec![0xab, 0xcd, 0x01, 0x00, 0xff, 0xff, 0, 0, 0, 0, 0, 0];
    many.extend_from_slice(b"\x03www\x00\x00\x01\x00\x01");
    let resp = ask_from("127.0.0.1:0", t.addr, &many, Duration::from_secs(1))
        .await
        .expect("FORMERR");
    assert_eq!(resp[3] & 0x0f, 1, "65535 questions: FORMERR");
    assert_eq!(&resp[..2], &[0xab, 0xcd]);
    let mut long = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 64];
    long.extend_from_slice(&[b'a'; 64]);
    long.extend_from_slice(&[0, 0, 1, 0, 1]);
    let resp = ask_from("127.0.0.1:0", t.addr, &long, Duration::from_secs(1))
        .await
        .expect("FORMERR");
    assert_eq!(resp[3] & 0x0f, 1, "a 64-octet label: FORMERR");
    let good = ask_udp(
        t.addr,
        &client::recursive("www.provider.lab.", RecordType::A),
    )
    .await;
    assert_eq!(client::first_a(&good).as_deref(), Some("127.3.0.1"));
    t.stop().await;
}

/// Garbage with the query's ID and QR set is nothing to believe: the two
/// servers that send it fail the question at once (see
/// `imperfect_servers::an_undecodable_reply_*` for the timing), and the
/// third answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_one_server_is_ignored_and_another_server_answers() {
    let tree = lab_tree().await;
    tree.set_behaviour(lab::EX1, Behaviour::Garbage);
    tree.set_behaviour(lab::EX2, Behaviour::Garbage);
    let t = start_taproot(&tree, |c| c.resolver.upstream_timeout_ms = 300).await;
    for name in ["www.example.co.kr.", "alias.example.co.kr."] {
        let reply = ask_udp(t.addr, &client::recursive(name, RecordType::A)).await;
        assert_eq!(
            client::first_a(&reply).as_deref(),
            Some("127.5.0.1"),
            "{name}"
        );
    }
    t.stop().await;
}

/// No broken or forged reply is taken for an answer: while every server of
/// the zone sends it, the client gets SERVFAIL; once one server answers
/// properly, the answer is its. Forgeries (wrong ID, question or port) and
/// a short header are ignored until the attempt times out (RFC 5452 §9.1);
/// a pointer loop behind the right ID and header fails that server at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_upstream_answers_are_ignored_and_another_server_answers() {
    for how in [
        Malformation::TruncatedHeader,
        Malformation::PointerLoop,
        Malformation::WrongQuestion,
        Malformation::WrongId,
        Malformation::FromOtherPort,
    ] {
        let tree = lab_tree().await;
        for server in [lab::EX1, lab::EX2, lab::EX3] {
            tree.set_behaviour(server, Behaviour::Malformed(how));
        }
        let t = start_taproot(&tree, |c| c.resolver.upstream_timeout_ms = 200).await;
        let broken = ask_udp(
            t.addr,
            &client::recursive("www.example.co.kr.", RecordType::A),
        )
        .await;
        assert_eq!(
            broken.metadata.response_code,
            ResponseCode::ServFail,
            "{how:?} is never taken for an answer: {broken:?}"
        );
        assert!(
            tree.queries_to(lab::EX1) + tree.queries_to(lab::EX2) + tree.queries_to(lab::EX3) >= 3,
            "{how:?}: every server was tried"
        );

        tree.set_behaviour(lab::EX3, Behaviour::Normal);
        let reply = ask_udp(
            t.addr,
            &client::recursive("x.wild.example.co.kr.", RecordType::A),
        )
        .await;
        assert_eq!(
            client::first_a(&reply).as_deref(),
            Some("127.5.0.9"),
            "{how:?}: the answer comes from the server that works: {reply:?}"
        );
        t.stop().await;
        tree.shutdown().await;
    }
}

/// One client may hold `tcp_max_connections_per_client` connections; the
/// next is closed at once, and the ones it holds keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connections_beyond_the_per_client_cap_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    let tree = lab_tree().await;
    let t = start_taproot(&tree, |c| c.server.tcp_max_connections_per_client = 2).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(TcpStream::connect(t.addr).await.expect("connect"));
    }
    // The listener has accepted both before the third arrives.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = TcpStream::connect(t.addr)
        .await
        .expect("the kernel accepts");
    let query = client::recursive("www.example.co.kr.", RecordType::A)
        .to_vec()
        .expect("encode");
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&query);
    let _ = third.write_all(&framed).await;
    let mut buf = [0u8; 2];
    let closed = tokio::time::timeout(Duration::from_secs(2), third.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the third connection is closed unanswered: {closed:?}"
    );
    // A held connection still gets its answer.
    let mut first = held.remove(0);
    first.write_all(&framed).await.expect("write");
    let len = first.read_u16().await.expect("a length") as usize;
    let mut reply = vec![0u8; len];
    first.read_exact(&mut reply).await.expect("the reply");
    let reply = Message::from_vec(&reply).expect("decodes");
    assert_eq!(client::first_a(&reply).as_deref(), Some("127.5.0.1"));
    t.stop().await;
}

/// Past `max_inflight_resolutions`, new misses get SERVFAIL at once instead
/// of queueing, and cached names are still answered meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misses_beyond_the_inflight_cap_get_servfail_and_hits_are_still_served() {
    let tree = lab_tree().await;
    let t = start_taproot(&tree, |c| c.server.max_inflight_resolutions = 2).await;
    let cached = ask_udp(
        t.addr,
        &client::recursive("www.example.co.kr.", RecordType::A),
    )
    .await;
    assert_eq!(client::first_a(&cached).as_deref(), Some("127.5.0.1"));
    for s in [lab::EX1, lab::EX2, lab::EX3] {
        tree.set_behaviour(s, Behaviour::Delay(Duration::from_millis(600)));
    }
    let misses: Vec<_> = (0..6)
        .map(|i| {
            let addr = t.addr;
            tokio::spawn(async move {
                let q = client::recursive(&format!("n{i}.wild.example.co.kr."), RecordType::A);
                client::ask_udp_within(addr, &q, Duration::from_secs(5)).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let hit = ask_udp(
        t.addr,
        &client::recursive("www.example.co.kr.", RecordType::A),
    )
    .await;
    assert_eq!(client::first_a(&hit).as_deref(), Some("127.5.0.1"));
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "a cached name is answered while the resolutions wait"
    );
    let mut servfail = 0;
    let mut answered = 0;
    for m in misses {
        match m.await.expect("task") {
            Some(r) if r.metadata.response_code == ResponseCode::ServFail => servfail += 1,
            Some(r) if client::first_a(&r).as_deref() == Some("127.5.0.9") => answered += 1,
            other => panic!("a miss gets SERVFAIL or its answer: {other:?}"),
        }
    }
    assert_eq!(answered, 2, "two resolutions ran");
    assert_eq!(servfail, 4, "the rest were turned away");
    t.stop().await;
}
