//! The cache seen from a client: TTL decay and expiry, clamps, coalescing,
//! prefetch and serve-stale (RFC 8767), against the lab tree.

mod support;

use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use support::client::{self, ask_udp};
use support::lab::{self, lab_tree};
use support::start_taproot;
use support::tree::Behaviour;

fn asked(tree: &support::tree::FakeTree, name: &str) -> usize {
    tree.query_log()
        .iter()
        .filter(|q| q.name.to_ascii().eq_ignore_ascii_case(name))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_query_two_seconds_later_shows_the_ttl_lowered_by_two() {
    let tree = lab_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    let first = ask_udp(
        t.addr,
        &client::recursive("www.provider.lab.", RecordType::A),
    )
    .await;
    let ttl1 = first.answers[0].ttl;
    tree.reset_counts();
    tokio::time::sleep(Duration::from_millis(2050)).await;
    let second = ask_udp(
        t.addr,
        &client::recursive("WWW.Provider.lab.", RecordType::A),
    )
    .await;
    assert_eq!(tree.total_queries(), 0, "answered from cache");
    assert_eq!(
        second.queries[0].name().to_ascii(),
        "WWW.Provider.lab.",
        "question echoed as spelled"
    );
    assert_eq!(
        second.answers[0].ttl,
        ttl1 - 2,
        "{ttl1} then {}",
        second.answers[0].ttl
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_expires_at_its_ttl() {
    let tree = lab_tree().await;
    let t = start_taproot(&tree, |c| c.cache.prefetch = false).await;
    ask_udp(
        t.addr,
        &client::recursive("short.provider.lab.", RecordType::A),
    )
    .await;
    ask_udp(
        t.addr,
        &client::recursive("short.provider.lab.", RecordType::A),
    )
    .await;
    assert_eq!(
        asked(&tree, "short.provider.lab."),
        1,
        "second answer from cache"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let again = ask_udp(
        t.addr,
        &client::recursive("short.provider.lab.", RecordType::A),
    )
    .await;
    assert_eq!(client::first_a(&again).as_deref(), Some("127.3.0.2"));
    assert_eq!(
        asked(&tree, "short.provider.lab."),
        2,
        "asked again after the TTL of 2 s"
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_clamps_from_the_config_apply_to_answers() {
    let tree = lab_tree().await;
    let t = start_taproot(&tree, |c| {
        c.cache.min_ttl = 60;
        c.cache.max_ttl = 600;
    })
    .await;
    let short = ask_udp(
        t.addr,
        &client::recursive("short.provider.lab.", RecordType::A),
    )
    .await;
    assert_eq!(short.answers[0].ttl, 60);
    let long = ask_udp(
        t.addr,
        &client::recursive("www.provider.lab.", RecordType::A),
    )
    .await;
    assert_eq!(long.answers[0].ttl, 600);
    t.stop().await;
}

/// A reload changes the clamps in place: what is stored from then on gets
/// the new ones, what was cached keeps its TTL, and nothing is flushed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_applies_new_ttl_clamps_without_flushing_the_cache() {
    let tree = lab_tree().await;
    let t = start_taproot(&tree, |c| c.cache.max_ttl = 600).await;
    let before = ask_udp(
        t.addr,
        &client::recursive("www.provider.lab.", RecordType::A),
    )
    .await;
    assert_eq!(before.answers[0].ttl, 600);
    let mut new = (**t.running.config.load()).clone();
    new.cache.max_ttl = 120;
    let restart = t.running.reload(new).expect("the policy builds");
    assert!(
        !restart.iter().any(|k| k.contains("ttl")),
        "TTL clamps are live: {restart:?}"
    );
    let asked = tree.total_queries();
    let cached = ask_udp(
        t.addr,
        &client::recursive("www.provider.lab.", RecordType::A),
    )
    .await;
    assert!(
        cached.answers[0].ttl > 120,
        "already cached data keeps its TTL"
    );
    assert_eq!(tree.total_queries(), asked, "the cache was not flushed");
    let fresh = ask_udp(
        t.addr,
        &client::recursive("www.example.co.kr.", RecordType::A),
    )
    .await;
    assert_eq!(fresh.answers[0].ttl, 120, "new data gets the new clamp");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_identical_questions_share_one_resolution() {
    let tree = lab_tree().await;
    for s in [lab::EX1, lab::EX2, lab::EX3] {
        tree.set_behaviour(s, Behaviour::Delay(Duration::from_millis(300)));
    }
    let t = start_taproot(&tree, |_| {}).await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let addr = t.addr;
        tasks.push(tokio::spawn(async move {
            ask_udp(
                addr,
                &client::recursive("www.example.co.kr.", RecordType::A),
            )
            .await
        }));
    }
    for task in tasks {
        let reply = task.await.expect("task");
        assert_eq!(client::first_a(&reply).as_deref(), Some("127.5.0.1"));
    }
    assert_eq!(
        asked(&tree, "www.example.co.kr."),
        1,
        "{:?}",
        tree.query_log()
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_popular_name_is_refreshed_before_it_expires() {
    let tree = lab_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    ask_udp(
        t.addr,
        &client::recursive("ten.provider.lab.", RecordType::A),
    )
    .await;
    assert_eq!(asked(&tree, "ten.provider.lab."), 1);
    // Hit it in the last 10% of its 10 s TTL: one background refresh.
    tokio::time::sleep(Duration::from_millis(9_200)).await;
    let hit = ask_udp(
        t.addr,
        &client::recursive("ten.provider.lab.", RecordType::A),
    )
    .await;
    assert!(hit.answers[0].ttl <= 1);
    assert!(tree.wait_for_queries(1, Duration::from_secs(3)).await);
    let deadline = Instant::now() + Duration::from_secs(3);
    while asked(&tree, "ten.provider.lab.") < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(asked(&tree, "ten.provider.lab."), 2, "prefetched once");
    // Past the original expiry the answer is still a hit, with a fresh TTL.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let after = ask_udp(
        t.addr,
        &client::recursive("ten.provider.lab.", RecordType::A),
    )
    .await;
    assert!(
        after.answers[0].ttl >= 8,
        "refreshed TTL: {}",
        after.answers[0].ttl
    );
    assert_eq!(asked(&tree, "ten.provider.lab."), 2, "no miss after expiry");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolution_outrun_by_a_stale_answer_goes_on_and_refreshes_the_cache() {
    let tree = lab_tree().await;
    let t = start_taproot(&tree, |c| {
        c.cache.client_timeout_ms = 400;
        c.resolver.upstream_timeout_ms = 1_500;
        c.resolver.query_budget_ms = 4_000;
    })
    .await;
    let q = client::recursive("short.provider.lab.", RecordType::A);
    let fresh = ask_udp(t.addr, &q).await;
    assert_eq!(client::first_a(&fresh).as_deref(), Some("127.3.0.2"));
    // Slower than the client timer, faster than the upstream timeout.
    tree.set_behaviour(lab::PROVIDER, Behaviour::Delay(Duration::from_millis(900)));
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let before = asked(&tree, "short.provider.lab.");
    let stale = ask_udp(t.addr, &q).await;
    assert_eq!(
        stale.answers[0].ttl, 30,
        "answered stale on the client timer"
    );
    // The resolution left behind finishes and stores a fresh answer. The
    // server's RTO is a few ms, so the resolution backs off from there
    // (50, 100, 200, 400, 800 ms) before a wait of 1.5 s hears the 900 ms
    // answer: about 2.5 s.
    tokio::time::sleep(Duration::from_millis(2_600)).await;
    let refreshed = ask_udp(t.addr, &q).await;
    assert_eq!(client::first_a(&refreshed).as_deref(), Some("127.3.0.2"));
    assert!(
        refreshed.answers[0].ttl < 30,
        "still the stale answer (TTL 30), not the refreshed one (TTL 2)"
    );
    assert!(
        asked(&tree, "short.provider.lab.") > before,
        "the refresh came from upstream"
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_upstream_is_dead_an_expired_answer_is_served_stale() {
    let tree = lab_tree().await;
    let t = start_taproot(&tree, |c| {
        c.cache.client_timeout_ms = 400;
        c.resolver.upstream_timeout_ms = 300;
        c.resolver.query_budget_ms = 3_000;
    })
    .await;
    let fresh = ask_udp(
        t.addr,
        &client::recursive("short.provider.lab.", RecordType::A),
    )
    .await;
    assert_eq!(client::first_a(&fresh).as_deref(), Some("127.3.0.2"));
    tree.set_behaviour(lab::PROVIDER, Behaviour::Drop);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let start = Instant::now();
    let stale = ask_udp(
        t.addr,
        &client::recursive("short.provider.lab.", RecordType::A),
    )
    .await;
    assert_eq!(stale.metadata.response_code, ResponseCode::NoError);
    assert_eq!(client::first_a(&stale).as_deref(), Some("127.3.0.2"));
    assert_eq!(stale.answers[0].ttl, 30, "RFC 8767 stale TTL");
    assert!(
        start.elapsed() < Duration::from_millis(1_500),
        "{:?}",
        start.elapsed()
    );
    t.stop().await;
}
