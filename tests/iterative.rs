//! Iterative referral mode: taproot answers from its cache or hands the
//! client the closest referral it knows, and the client walks on itself
//! (the seed's "Iterative DNS Query" diagram).

mod support;

use std::net::{IpAddr, SocketAddr};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use support::client::{self, ask_udp, three_level_tree};
use support::start_taproot;
use support::tree::FakeTree;
use taproot::config::{AclAction, AclRule, Mode};

fn question(qname: &str, rtype: RecordType, rd: bool) -> Message {
    let mut m = client::query(qname, rtype);
    m.metadata.recursion_desired = rd;
    m
}

/// The zone a referral points to, and the glue addresses it carries.
fn referral(reply: &Message) -> (String, Vec<IpAddr>) {
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(
        reply.answers.is_empty(),
        "a referral has no answer: {reply:?}"
    );
    let zone = reply
        .authorities
        .iter()
        .find(|r| r.record_type() == RecordType::NS)
        .map(|r| r.name.to_ascii())
        .expect("NS records in the authority section");
    let glue = reply
        .additionals
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    (zone, glue)
}

/// A stub that follows referrals with RD=0 queries, as a client of
/// iterative mode does, up to `limit` steps.
async fn walk_from(tree: &FakeTree, first: Message, qname: &str, rtype: RecordType) -> Message {
    let mut reply = first;
    for _ in 0..10 {
        if !reply.answers.is_empty() || reply.metadata.response_code != ResponseCode::NoError {
            return reply;
        }
        let (_, glue) = referral(&reply);
        let next = glue.first().copied().expect("glue to follow");
        reply = ask_udp(
            SocketAddr::new(next, tree.port()),
            &question(qname, rtype, false),
        )
        .await;
    }
    panic!("the walk did not end in 10 steps");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_query_gets_the_tld_referral_after_exactly_one_root_query() {
    let tree = three_level_tree().await;
    let t = start_taproot(&tree, |c| c.server.mode = Mode::Iterative).await;
    let reply = ask_udp(t.addr, &question("www.example.co.kr.", RecordType::A, true)).await;
    let (zone, glue) = referral(&reply);
    assert_eq!(zone, "kr.");
    assert!(glue.contains(&client::KR1_IP), "{glue:?}");
    assert!(
        !reply.metadata.recursion_available,
        "RA=0 in iterative mode"
    );
    assert!(!reply.metadata.authoritative);
    assert_eq!(
        tree.queries_to(client::ROOT_IP),
        1,
        "{:?}",
        tree.query_log()
    );
    assert_eq!(
        tree.total_queries(),
        1,
        "never walks further: {:?}",
        tree.query_log()
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_following_referrals_reaches_the_recursive_answer() {
    let tree = three_level_tree().await;
    let iterative = start_taproot(&tree, |c| c.server.mode = Mode::Iterative).await;
    let first = ask_udp(
        iterative.addr,
        &question("www.example.co.kr.", RecordType::A, false),
    )
    .await;
    let walked = walk_from(&tree, first, "www.example.co.kr.", RecordType::A).await;
    let recursive = start_taproot(&tree, |_| {}).await;
    let direct = ask_udp(
        recursive.addr,
        &question("www.example.co.kr.", RecordType::A, true),
    )
    .await;
    let mut a: Vec<_> = walked.answers.iter().map(|r| r.data.clone()).collect();
    let mut b: Vec<_> = direct.answers.iter().map(|r| r.data.clone()).collect();
    a.sort_by_key(|d| format!("{d:?}"));
    b.sort_by_key(|d| format!("{d:?}"));
    assert!(!a.is_empty());
    assert_eq!(a, b);
    iterative.stop().await;
    recursive.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rd0_in_recursive_mode_returns_the_deepest_known_cut_and_cached_answers() {
    let tree = three_level_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    // A recursive lookup in co.kr. caches the co.kr. cut.
    let warm = ask_udp(t.addr, &question("ns.co.kr.", RecordType::A, true)).await;
    assert_eq!(warm.metadata.response_code, ResponseCode::NoError);
    tree.reset_counts();
    let reply = ask_udp(
        t.addr,
        &question("www.example.co.kr.", RecordType::A, false),
    )
    .await;
    let (zone, glue) = referral(&reply);
    assert_eq!(zone, "co.kr.");
    assert!(glue.contains(&client::COKR_IP));
    assert!(
        reply.metadata.recursion_available,
        "recursive mode still offers recursion"
    );
    assert_eq!(
        tree.total_queries(),
        0,
        "answered from cache: {:?}",
        tree.query_log()
    );
    // A cached answer is returned as it is.
    let cached = ask_udp(t.addr, &question("ns.co.kr.", RecordType::A, false)).await;
    assert_eq!(cached.answers.len(), 1);
    assert!(!cached.metadata.authoritative);
    assert_eq!(tree.total_queries(), 0);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_entry_that_allows_only_referrals_is_honoured() {
    let tree = three_level_tree().await;
    let t = start_taproot(&tree, |c| {
        c.acl = vec![AclRule {
            prefix: "127.0.0.0/8".parse().expect("prefix"),
            action: AclAction::AllowReferral,
        }];
    })
    .await;
    let reply = ask_udp(t.addr, &question("www.example.co.kr.", RecordType::A, true)).await;
    let (zone, _) = referral(&reply);
    assert_eq!(zone, "kr.");
    assert!(
        !reply.metadata.recursion_available,
        "no recursion for this client"
    );
    assert_eq!(tree.total_queries(), 1);
    t.stop().await;
}
