//! The walk: recursive resolution from the root on a cache miss (RFC 1034 §5.3.3),
//! against the fake tree on loopback.

mod support;

use std::time::Duration;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use support::client::*;
use support::start_taproot;

fn recursive(qname: &str, rtype: RecordType) -> Message {
    let mut m = query(qname, rtype);
    m.metadata.recursion_desired = true;
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_records_are_resolved_through_root_tld_and_second_level() {
    let tree = three_level_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    let reply = ask_udp(t.addr, &recursive("www.example.co.kr.", RecordType::A)).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.metadata.recursion_available);
    let mut addrs: Vec<String> = reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect();
    addrs.sort();
    assert_eq!(addrs, ["127.1.0.1", "127.1.0.2"]);
    assert!(tree.queries_to(ROOT_IP) >= 1, "the root was asked");
    assert!(tree.queries_to(EXAMPLE_IP) >= 1, "the zone's own server was asked");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_lookup_in_the_same_zone_skips_root_and_tld() {
    let tree = three_level_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    let first = ask_udp(t.addr, &recursive("www.example.co.kr.", RecordType::A)).await;
    assert_eq!(first.metadata.response_code, ResponseCode::NoError);
    tree.reset_counts();
    let second = ask_udp(t.addr, &recursive("alias.example.co.kr.", RecordType::A)).await;
    assert_eq!(second.metadata.response_code, ResponseCode::NoError);
    assert_eq!(tree.queries_to(ROOT_IP), 0, "{:?}", tree.query_log());
    assert_eq!(tree.queries_to(KR1_IP) + tree.queries_to(KR2_IP), 0, "{:?}", tree.query_log());
    assert_eq!(tree.queries_to(COKR_IP), 0, "{:?}", tree.query_log());
    assert_eq!(tree.queries_to(EXAMPLE_IP), 1, "{:?}", tree.query_log());
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_hit_answers_without_upstream_queries_and_ttl_decays() {
    let tree = three_level_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    let first = ask_udp(t.addr, &recursive("www.example.co.kr.", RecordType::A)).await;
    let ttl1 = first.answers[0].ttl;
    tree.reset_counts();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let second = ask_udp(t.addr, &recursive("WWW.Example.co.kr.", RecordType::A)).await;
    assert_eq!(tree.total_queries(), 0);
    assert_eq!(second.queries[0].name().to_ascii(), "WWW.Example.co.kr.");
    assert!(second.answers[0].ttl <= ttl1 - 2, "{} then {}", ttl1, second.answers[0].ttl);
    let _ = Query::new();
    t.stop().await;
}
