//! The walk: recursive resolution from the root on a cache miss (RFC 1034 §5.3.3),
//! against fake trees on loopback. Each test is one behaviour.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use support::client::{self, addresses, ask_tcp, ask_udp, ede_code, three_level_tree};
use support::lab::{self, lab_tree};
use support::start_taproot;
use support::tree::Behaviour;

fn types(records: &[Record]) -> Vec<RecordType> {
    records.iter().map(|r| r.record_type()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_records_are_resolved_through_four_levels() {
    let tree = three_level_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    let reply = ask_udp(
        t.addr,
        &client::recursive("www.example.co.kr.", RecordType::A),
    )
    .await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.metadata.recursion_available);
    assert!(!reply.metadata.authoritative);
    assert_eq!(addresses(&reply), ["127.1.0.1", "127.1.0.2"]);
    for server in [client::ROOT_IP, client::COKR_IP, client::EXAMPLE_IP] {
        assert!(
            tree.queries_to(server) >= 1,
            "{server} was asked: {:?}",
            tree.query_log()
        );
    }
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_aaaa_mx_and_txt_resolve_at_a_second_level_zone() {
    let tree = lab_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    let a = ask_udp(
        t.addr,
        &client::recursive("www.provider.lab.", RecordType::A),
    )
    .await;
    assert_eq!(addresses(&a), ["127.3.0.1"]);
    let aaaa = ask_udp(
        t.addr,
        &client::recursive("www.provider.lab.", RecordType::AAAA),
    )
    .await;
    assert_eq!(addresses(&aaaa), ["fd00::1"]);
    let mx = ask_udp(t.addr, &client::recursive("provider.lab.", RecordType::MX)).await;
    assert!(
        matches!(&mx.answers[0].data, RData::MX(m) if m.exchange.to_ascii() == "mail.provider.lab.")
    );
    let txt = ask_udp(
        t.addr,
        &client::recursive("www.provider.lab.", RecordType::TXT),
    )
    .await;
    assert!(
        matches!(&txt.answers[0].data, RData::TXT(t) if t.to_string().contains("v=lab1 hello"))
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_lookup_in_the_same_zone_skips_root_and_tld() {
    let tree = three_level_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    let first = ask_udp(
        t.addr,
        &client::recursive("www.example.co.kr.", RecordType::A),
    )
    .await;
    assert_eq!(first.metadata.response_code, ResponseCode::NoError);
    tree.reset_counts();
    let second = ask_udp(
        t.addr,
        &client::recursive("alias.example.co.kr.", RecordType::A),
    )
    .await;
    assert_eq!(second.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        tree.queries_to(client::ROOT_IP),
        0,
        "{:?}",
        tree.query_log()
    );
    assert_eq!(
        tree.queries_to(client::KR1_IP) + tree.queries_to(client::KR2_IP),
        0
    );
    assert_eq!(
        tree.queries_to(client::COKR_IP),
        0,
        "{:?}",
        tree.query_log()
    );
    assert_eq!(
        tree.queries_to(client::EXAMPLE_IP),
        1,
        "{:?}",
        tree.query_log()
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cname_across_zones_returns_the_whole_chain() {
    let tree = lab_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    let reply = ask_udp(
        t.addr,
        &client::recursive("out.example.co.kr.", RecordType::A),
    )
    .await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(types(&reply.answers), [RecordType::CNAME, RecordType::A]);
    assert_eq!(reply.answers[1].name.to_ascii(), "www.provider.lab.");
    assert_eq!(addresses(&reply), ["127.3.0.1"]);
    assert!(tree.queries_to(lab::PROVIDER) >= 1);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_glueless_delegation_resolves_its_ns_name_first() {
    let tree = lab_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    let reply = ask_udp(
        t.addr,
        &client::recursive("www.glueless.kr.", RecordType::A),
    )
    .await;
    assert_eq!(
        reply.metadata.response_code,
        ResponseCode::NoError,
        "{reply:?}"
    );
    assert_eq!(addresses(&reply), ["127.4.0.1"]);
    assert!(
        tree.queries_to(lab::LAB) >= 1,
        "ns.provider.lab. was resolved via lab."
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_delegation_with_four_cuts_is_followed() {
    let tree = lab_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    let reply = ask_udp(
        t.addr,
        &client::recursive("host.sub.example.co.kr.", RecordType::A),
    )
    .await;
    assert_eq!(addresses(&reply), ["127.6.0.1"]);
    assert!(tree.queries_to(lab::SUB) >= 1);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_answer_carries_the_question_name() {
    let tree = lab_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    let reply = ask_udp(
        t.addr,
        &client::recursive("anything.wild.example.co.kr.", RecordType::A),
    )
    .await;
    assert_eq!(addresses(&reply), ["127.5.0.9"]);
    assert_eq!(
        reply.answers[0].name.to_ascii(),
        "anything.wild.example.co.kr."
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dname_is_followed_with_a_synthesised_cname() {
    let tree = lab_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    let reply = ask_udp(
        t.addr,
        &client::recursive("x.old.example.co.kr.", RecordType::A),
    )
    .await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        types(&reply.answers),
        [RecordType::DNAME, RecordType::CNAME, RecordType::A]
    );
    assert_eq!(addresses(&reply), ["127.5.0.7"]);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_and_nodata_carry_the_soa_and_are_answered_from_the_negative_cache() {
    let tree = lab_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    let nx = ask_udp(
        t.addr,
        &client::recursive("nope.example.co.kr.", RecordType::A),
    )
    .await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(types(&nx.authorities), [RecordType::SOA]);
    assert_eq!(nx.authorities[0].ttl, 300, "min(SOA TTL, MINIMUM)");
    let nodata = ask_udp(
        t.addr,
        &client::recursive("www.example.co.kr.", RecordType::MX),
    )
    .await;
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty());
    assert_eq!(types(&nodata.authorities), [RecordType::SOA]);
    tree.reset_counts();
    let nx2 = ask_udp(
        t.addr,
        &client::recursive("nope.example.co.kr.", RecordType::AAAA),
    )
    .await;
    assert_eq!(
        nx2.metadata.response_code,
        ResponseCode::NXDomain,
        "NXDOMAIN covers every type"
    );
    let nodata2 = ask_udp(
        t.addr,
        &client::recursive("www.example.co.kr.", RecordType::MX),
    )
    .await;
    assert_eq!(nodata2.metadata.response_code, ResponseCode::NoError);
    assert_eq!(types(&nodata2.authorities), [RecordType::SOA]);
    assert_eq!(tree.total_queries(), 0, "{:?}", tree.query_log());
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_over_1232_bytes_is_fetched_over_tcp_after_tc() {
    let tree = lab_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    let reply = ask_tcp(
        t.addr,
        &client::recursive("big.example.co.kr.", RecordType::TXT),
    )
    .await;
    assert_eq!(reply.answers.len(), 7);
    assert!(
        tree.query_log()
            .iter()
            .any(|q| q.tcp && q.name.to_ascii() == "big.example.co.kr."),
        "taproot retried over TCP: {:?}",
        tree.query_log()
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_a_512_byte_buffer_gets_tc_then_the_full_answer_over_tcp() {
    let tree = lab_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    let mut small = client::recursive("mid.example.co.kr.", RecordType::TXT);
    small.edns = None;
    let udp = ask_udp(t.addr, &small).await;
    assert!(udp.metadata.truncation, "TC=1 for a 512-byte client");
    assert!(udp.answers.is_empty());
    let tcp = ask_tcp(t.addr, &small).await;
    assert!(!tcp.metadata.truncation);
    assert_eq!(tcp.answers.len(), 3);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_and_a_refusing_server_beside_a_working_one_still_give_the_answer() {
    let tree = lab_tree().await;
    tree.set_behaviour(lab::EX1, Behaviour::Drop);
    tree.set_behaviour(lab::EX2, Behaviour::Refused);
    let t = start_taproot(&tree, |c| c.resolver.upstream_timeout_ms = 400).await;
    for name in [
        "www.example.co.kr.",
        "alias.example.co.kr.",
        "wild.example.co.kr.",
    ] {
        let reply = ask_udp(t.addr, &client::recursive(name, RecordType::A)).await;
        assert_ne!(
            reply.metadata.response_code,
            ResponseCode::ServFail,
            "{name}"
        );
    }
    let asked_dead = tree.queries_to(lab::EX1);
    assert!(
        asked_dead <= 1,
        "the dead server is held down after one timeout: {asked_dead}"
    );
    tree.reset_counts();
    let reply = ask_udp(
        t.addr,
        &client::recursive("x.new.example.co.kr.", RecordType::A),
    )
    .await;
    assert_eq!(addresses(&reply), ["127.5.0.7"]);
    assert_eq!(
        tree.queries_to(lab::EX1),
        0,
        "held down: {:?}",
        tree.query_log()
    );
    assert_eq!(
        tree.queries_to(lab::EX2),
        0,
        "held down: {:?}",
        tree.query_log()
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_server_still_answers_within_the_budget() {
    let tree = lab_tree().await;
    for s in [lab::EX1, lab::EX2, lab::EX3] {
        tree.set_behaviour(s, Behaviour::Delay(Duration::from_millis(300)));
    }
    let t = start_taproot(&tree, |_| {}).await;
    let start = Instant::now();
    let reply = ask_udp(
        t.addr,
        &client::recursive("www.example.co.kr.", RecordType::A),
    )
    .await;
    assert_eq!(addresses(&reply), ["127.5.0.1"]);
    assert!(start.elapsed() >= Duration::from_millis(300));
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cname_loop_is_servfail_with_an_extended_error() {
    let tree = lab_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    let reply = ask_udp(
        t.addr,
        &client::recursive("loop1.example.co.kr.", RecordType::A),
    )
    .await;
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    assert!(ede_code(&reply).is_some(), "EDE present: {reply:?}");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_bailiwick_record_stuffed_in_additional_is_never_used() {
    let tree = lab_tree().await;
    let forged = Record::from_rdata(
        Name::from_ascii("www.example.co.kr.").expect("name"),
        86400,
        RData::A(A::new(6, 6, 6, 6)),
    );
    tree.set_behaviour(lab::PROVIDER, Behaviour::Poison(vec![forged]));
    let t = start_taproot(&tree, |_| {}).await;
    let first = ask_udp(
        t.addr,
        &client::recursive("www.provider.lab.", RecordType::A),
    )
    .await;
    assert_eq!(addresses(&first), ["127.3.0.1"]);
    let reply = ask_udp(
        t.addr,
        &client::recursive("www.example.co.kr.", RecordType::A),
    )
    .await;
    assert_eq!(
        addresses(&reply),
        ["127.5.0.1"],
        "the true answer, not the forged one"
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qname_minimisation_shows_the_root_only_the_tld() {
    let tree = lab_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    let reply = ask_udp(
        t.addr,
        &client::recursive("host.sub.example.co.kr.", RecordType::A),
    )
    .await;
    assert_eq!(addresses(&reply), ["127.6.0.1"]);
    for q in tree.query_log() {
        if q.server == lab::ROOT {
            assert!(q.name.num_labels() <= 1, "the root saw {}", q.name);
        }
        if q.server == lab::KR {
            assert!(q.name.num_labels() <= 2, "kr. saw {}", q.name);
        }
    }
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_on_loopback_are_refused_unless_allowed() {
    let tree = lab_tree().await;
    let t = start_taproot(&tree, |c| c.resolver.allow_loopback_upstreams = false).await;
    let reply = ask_udp(
        t.addr,
        &client::recursive("www.provider.lab.", RecordType::A),
    )
    .await;
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(tree.total_queries(), 0);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edns_is_answered_only_when_the_client_used_it() {
    let tree = lab_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    let with = ask_udp(
        t.addr,
        &client::recursive("www.provider.lab.", RecordType::A),
    )
    .await;
    assert!(with.edns.is_some());
    let mut plain = client::recursive("www.provider.lab.", RecordType::A);
    plain.edns = None;
    let without = ask_udp(t.addr, &plain).await;
    assert!(without.edns.is_none());
    let _ = (
        Edns::new(),
        Query::new(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
        IpAddr::from([0u8; 4]),
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_0x20_the_walk_still_succeeds_and_servers_see_mixed_case() {
    let tree = lab_tree().await;
    let t = start_taproot(&tree, |c| c.resolver.use_0x20 = true).await;
    let reply = ask_udp(
        t.addr,
        &client::recursive("www.provider.lab.", RecordType::A),
    )
    .await;
    assert_eq!(addresses(&reply), ["127.3.0.1"]);
    let log = tree.query_log();
    assert!(
        log.iter()
            .any(|q| q.name.to_ascii() != q.name.to_ascii().to_lowercase()),
        "some upstream name had upper case: {log:?}"
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_bailiwick_glue_in_a_referral_is_scrubbed_before_caching() {
    let tree = lab_tree().await;
    // kr. may not speak for provider.lab.: this "glue" must be dropped.
    let forged = Record::from_rdata(
        Name::from_ascii("ns.provider.lab.").expect("name"),
        86400,
        RData::A(A::new(127, 0, 2, 66)),
    );
    tree.set_behaviour(lab::KR, Behaviour::Poison(vec![forged]));
    let t = start_taproot(&tree, |_| {}).await;
    let reply = ask_udp(
        t.addr,
        &client::recursive("www.glueless.kr.", RecordType::A),
    )
    .await;
    assert_eq!(addresses(&reply), ["127.4.0.1"]);
    assert!(
        tree.queries_to(lab::LAB) >= 1,
        "ns.provider.lab. was resolved from its own zone"
    );
    let ns = ask_udp(
        t.addr,
        &client::recursive("ns.provider.lab.", RecordType::A),
    )
    .await;
    assert_eq!(
        addresses(&ns),
        ["127.0.2.5"],
        "the cache holds the true address"
    );
    t.stop().await;
}

/// RFC 8109: the root NS set is asked for at the first query, not at start,
/// kept for its TTL, and asked for again once it has expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_is_primed_at_the_first_query_and_again_when_its_ns_set_expires() {
    use support::client::ROOT_IP;
    use taproot::clock::Clock;
    use taproot::server::Server;

    let tree = three_level_tree().await;
    let (config, _hints) = support::test_config(&tree);
    let clock = Clock::manual();
    let running = Server::start_with_clock(config, clock.clone())
        .await
        .expect("taproot starts");
    let addr = running.addr();
    let primes = |tree: &support::tree::FakeTree| {
        tree.query_log()
            .iter()
            .filter(|q| q.server == ROOT_IP && q.name.is_root() && q.rtype == RecordType::NS)
            .count()
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(tree.total_queries(), 0, "nothing is asked at start-up");

    let q = client::recursive("www.example.co.kr.", RecordType::A);
    assert_eq!(
        addresses(&ask_udp(addr, &q).await),
        ["127.1.0.1", "127.1.0.2"]
    );
    assert_eq!(primes(&tree), 1, "primed at the first query");
    let q2 = client::recursive("alias.example.co.kr.", RecordType::A);
    ask_udp(addr, &q2).await;
    assert_eq!(
        primes(&tree),
        1,
        "the primed NS set is reused while it lives"
    );

    // The root zone's NS TTL is 86400 s (also the max_ttl clamp).
    clock.advance(86_401_000);
    assert_eq!(
        addresses(&ask_udp(addr, &q).await),
        ["127.1.0.1", "127.1.0.2"]
    );
    assert_eq!(
        primes(&tree),
        2,
        "primed again once the root NS set expired"
    );
    running.shutdown(Duration::from_secs(2)).await;
}

/// RFC 4035 §3.1.4.1: the DS RRset lives in the parent zone. Once the
/// child's cut is cached, a DS question must still go to the parent's
/// servers, not to the child's, which can only answer NODATA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ds_question_is_asked_of_the_parent_even_with_the_childs_cut_cached() {
    let root_ip: IpAddr = "127.0.13.1".parse().expect("literal");
    let lab_ip: IpAddr = "127.0.13.2".parse().expect("literal");
    let child_ip: IpAddr = "127.0.13.3".parse().expect("literal");
    let root = "$TTL 86400\n\
        @ IN SOA a.root.lab. h.root.lab. 1 1800 900 604800 86400\n\
        @ IN NS a.root.lab.\n\
        a.root.lab. IN A 127.0.13.1\n\
        lab. IN NS ns.lab.\n\
        ns.lab. IN A 127.0.13.2\n";
    let lab = "$TTL 3600\n\
        @ IN SOA ns h 1 1800 900 604800 600\n\
        @ IN NS ns\n\
        ns IN A 127.0.13.2\n\
        signed IN NS ns.signed\n\
        ns.signed IN A 127.0.13.3\n\
        signed IN DS 12345 13 2 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF\n";
    let child = "$TTL 3600\n\
        @ IN SOA ns h 1 1800 900 604800 300\n\
        @ IN NS ns\n\
        ns IN A 127.0.13.3\n\
        www IN A 192.0.2.1\n";
    let tree = support::tree::FakeTree::builder()
        .zone(".", root, &[root_ip])
        .zone("lab.", lab, &[lab_ip])
        .zone("signed.lab.", child, &[child_ip])
        .start()
        .await;
    let t = start_taproot(&tree, |_| {}).await;
    // The child's cut is learned and cached.
    let www = ask_udp(t.addr, &client::recursive("www.signed.lab.", RecordType::A)).await;
    assert_eq!(addresses(&www), ["192.0.2.1"]);
    tree.reset_counts();
    let ds = ask_udp(t.addr, &client::recursive("signed.lab.", RecordType::DS)).await;
    assert_eq!(ds.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        types(&ds.answers),
        [RecordType::DS],
        "{:?}",
        tree.query_log()
    );
    assert_eq!(tree.queries_to(child_ip), 0, "{:?}", tree.query_log());
    t.stop().await;
}
