//! Resolving under loss and load: a lost packet is not a dead server.
//!
//! Real authoritative servers drop and truncate answers to a busy resolver
//! (response rate limiting: NSD's RRL with `rrl-slip 2` drops half of
//! what it limits and truncates the other half), and paths lose packets.
//! Unbound's infra cache (`services/cache/infra.c`, `util/rtt.c`) backs a
//! server off on each loss and retries the question; taproot does the same
//! ([`taproot::resolve::infra`]): these tests hold it to that.
//!
//! The tree, on 127.0.11.0/24:
//!
//! ```text
//! .              127.0.11.1
//! └─ lab.        127.0.11.2
//!    ├─ lossy.lab.  127.0.11.3           (one server; *.lossy.lab. A)
//!    ├─ pair.lab.   127.0.11.4, .5       (two servers; *.pair.lab. A)
//!    └─ dead.lab.   127.0.11.6           (one server; *.dead.lab. A)
//! ```

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use support::client::{self, ask_udp_within, first_a};
use support::tree::{Behaviour, FakeTree};
use support::{Taproot, metric, start_taproot};

const ROOT: IpAddr = ip(1);
const LAB: IpAddr = ip(2);
const LOSSY: IpAddr = ip(3);
const PAIR_A: IpAddr = ip(4);
const PAIR_B: IpAddr = ip(5);
const DEAD: IpAddr = ip(6);

const fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 11, last))
}

const ROOT_ZONE: &str = r#"
$TTL 86400
@                IN SOA a.root.lab. hostmaster.root.lab. 1 1800 900 604800 86400
@                IN NS  a.root.lab.
a.root.lab.      IN A   127.0.11.1
lab.     172800  IN NS  ns.lab.
ns.lab.  172800  IN A   127.0.11.2
"#;

const LAB_ZONE: &str = r#"
$TTL 3600
@             IN SOA ns.lab. hostmaster.lab. 1 1800 900 604800 600
@             IN NS  ns
ns            IN A   127.0.11.2
lossy         IN NS  ns.lossy
ns.lossy      IN A   127.0.11.3
pair          IN NS  a.pair
pair          IN NS  b.pair
a.pair        IN A   127.0.11.4
b.pair        IN A   127.0.11.5
dead          IN NS  ns.dead
ns.dead       IN A   127.0.11.6
"#;

fn leaf_zone(origin: &str, servers: &[IpAddr]) -> String {
    let mut text = format!(
        "$TTL 3600\n@ IN SOA ns.{origin} hostmaster.{origin} 1 1800 900 604800 600\n* IN A 127.10.11.1\n"
    );
    for (i, s) in servers.iter().enumerate() {
        text.push_str(&format!("@ IN NS ns{i}.{origin}\nns{i} IN A {s}\n"));
    }
    text
}

async fn lossy_tree() -> FakeTree {
    FakeTree::builder()
        .zone(".", ROOT_ZONE, &[ROOT])
        .zone("lab.", LAB_ZONE, &[LAB])
        .zone("lossy.lab.", &leaf_zone("lossy.lab.", &[LOSSY]), &[LOSSY])
        .zone(
            "pair.lab.",
            &leaf_zone("pair.lab.", &[PAIR_A, PAIR_B]),
            &[PAIR_A, PAIR_B],
        )
        .zone("dead.lab.", &leaf_zone("dead.lab.", &[DEAD]), &[DEAD])
        .start()
        .await
}

/// Asks within the query budget (10 s) and a margin.
async fn ask(t: &Taproot, name: &str) -> Message {
    ask_udp_within(
        t.addr,
        &client::recursive(name, RecordType::A),
        Duration::from_secs(12),
    )
    .await
    .unwrap_or_else(|| panic!("no answer for {name} within the query budget"))
}

/// Asks `count` cold names under `zone`, `concurrent` at a time, and
/// returns how many were not answered NOERROR with the wildcard's address.
async fn cold_names(t: &Taproot, zone: &str, count: usize, concurrent: usize) -> Vec<String> {
    let limit = Arc::new(tokio::sync::Semaphore::new(concurrent));
    let mut tasks = Vec::new();
    for i in 0..count {
        let limit = limit.clone();
        let addr = t.addr;
        let name = format!("n{i}.{zone}");
        tasks.push(tokio::spawn(async move {
            let _slot = limit.acquire_owned().await.expect("semaphore open");
            let reply = ask_udp_within(
                addr,
                &client::recursive(&name, RecordType::A),
                Duration::from_secs(12),
            )
            .await;
            match reply {
                Some(r)
                    if r.metadata.response_code == ResponseCode::NoError
                        && first_a(&r).as_deref() == Some("127.10.11.1") =>
                {
                    None
                }
                Some(r) => Some(format!("{name}: {}", r.metadata.response_code)),
                None => Some(format!("{name}: no answer")),
            }
        }));
    }
    let mut failed = Vec::new();
    for task in tasks {
        if let Some(f) = task.await.expect("client task") {
            failed.push(f);
        }
    }
    failed
}

/// A server that drops every third UDP answer and truncates every other
/// one it does send (a rate limiter with slip, or a lossy path): 500 cold
/// names at 100 outstanding all resolve, and the server is never down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_names_through_a_server_that_drops_and_truncates_all_resolve() {
    let tree = lossy_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    // The delegation is learnt first; then the loss starts.
    let warm = ask(&t, "warm.lossy.lab.").await;
    assert_eq!(warm.metadata.response_code, ResponseCode::NoError);
    tree.set_behaviour(
        LOSSY,
        Behaviour::Lossy {
            drop_every: 3,
            truncate_every: 2,
        },
    );
    let failed = cold_names(&t, "lossy.lab.", 500, 100).await;
    let metrics = t.metrics_text();
    assert!(
        failed.is_empty(),
        "{} of 500 failed, e.g. {:?}\n{}",
        failed.len(),
        &failed[..failed.len().min(5)],
        metrics
            .lines()
            .filter(|l| l.starts_with("taproot_upstream") || l.starts_with("taproot_servfail"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let infra = &t.running.handler.resolver.infra;
    assert!(!infra.is_down(LOSSY), "{:?}", infra.stats(LOSSY));
    assert_eq!(
        metric(
            &metrics,
            "taproot_upstream_server_events_total{event=\"down\"}"
        ),
        0.0
    );
    assert!(
        metric(
            &metrics,
            "taproot_upstream_queries_total{result=\"timeout\",transport=\"udp\"}"
        ) > 0.0,
        "the loss was real"
    );
    t.stop().await;
}

/// One lost burst in front of a zone's only server (two answers in a row)
/// costs two retransmissions, not the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_whose_only_server_drops_two_answers_in_a_row_still_answers() {
    let tree = lossy_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    assert_eq!(
        ask(&t, "warm.lossy.lab.").await.metadata.response_code,
        ResponseCode::NoError
    );
    tree.set_behaviour(LOSSY, Behaviour::DropFirst(2));
    let reply = ask(&t, "www.lossy.lab.").await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(first_a(&reply).as_deref(), Some("127.10.11.1"));
    assert_eq!(
        tree.queries_to(LOSSY),
        1 + 3,
        "the warm-up, two lost, one answered"
    );
    // The next name goes straight through: nothing is held against the server.
    let next = ask(&t, "next.lossy.lab.").await;
    assert_eq!(next.metadata.response_code, ResponseCode::NoError);
    t.stop().await;
}

/// A dead server beside a live one costs the first question one timeout;
/// then, backed off, it is asked after the live one, so later questions
/// never wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_beside_a_live_one_costs_one_timeout_not_one_per_question() {
    let tree = lossy_tree().await;
    tree.set_behaviour(PAIR_A, Behaviour::Drop);
    let t = start_taproot(&tree, |_| {}).await;
    for i in 0..20 {
        let reply = ask(&t, &format!("q{i}.pair.lab.")).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError, "q{i}");
    }
    assert!(
        tree.queries_to(PAIR_A) <= 1,
        "the dead server was asked {} times: {:?}",
        tree.queries_to(PAIR_A),
        tree.query_log()
    );
    t.stop().await;
}

/// A zone's only server, really dead: its RTO doubles to the cap within a
/// question or two, and from then on one question at a time probes it
/// while the others fail at once; when it comes back, a probe finds it
/// and it answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_is_backed_off_to_the_cap_then_probed_one_question_at_a_time() {
    let tree = lossy_tree().await;
    let t = start_taproot(&tree, |c| {
        c.resolver.upstream_timeout_ms = 300;
        c.resolver.infra_max_rtt_ms = 400;
    })
    .await;
    assert_eq!(
        ask(&t, "warm.dead.lab.").await.metadata.response_code,
        ResponseCode::NoError
    );
    tree.set_behaviour(DEAD, Behaviour::Drop);
    let infra = &t.running.handler.resolver.infra;
    let first = ask(&t, "one.dead.lab.").await;
    assert_eq!(first.metadata.response_code, ResponseCode::ServFail);
    assert!(infra.is_down(DEAD), "{:?}", infra.stats(DEAD));
    // Ten questions at once: one probes, the others skip the down server.
    tree.reset_counts();
    let failed = cold_names(&t, "dead.lab.", 10, 10).await;
    assert_eq!(failed.len(), 10, "{failed:?}");
    assert_eq!(
        tree.queries_to(DEAD),
        1,
        "one probe: {:?}",
        tree.query_log()
    );
    let metrics = t.metrics_text();
    assert!(
        metric(
            &metrics,
            "taproot_upstream_server_events_total{event=\"probe\"}"
        ) >= 1.0
    );
    assert!(
        metric(
            &metrics,
            "taproot_upstream_server_events_total{event=\"skipped_down\"}"
        ) >= 9.0
    );
    // Back to life: the next probe gets an answer and the server is live.
    tree.set_behaviour(DEAD, Behaviour::Normal);
    let back = ask(&t, "back.dead.lab.").await;
    assert_eq!(back.metadata.response_code, ResponseCode::NoError);
    assert!(!infra.is_down(DEAD));
    t.stop().await;
}

/// A server that answered TC=1 lately is rate-limiting us (a response rate
/// limiter's slip): when it then drops a UDP answer, the question asks
/// again over TCP, which the limiter leaves alone, instead of waiting on
/// UDP retries it would drop as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_truncates_lately_gets_its_lost_answer_asked_again_over_tcp() {
    let tree = lossy_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    tree.set_behaviour(LOSSY, Behaviour::Truncate);
    let first = ask(&t, "first.lossy.lab.").await;
    assert_eq!(first.metadata.response_code, ResponseCode::NoError);
    // Now every UDP answer is dropped; TCP still answers.
    tree.set_behaviour(
        LOSSY,
        Behaviour::Lossy {
            drop_every: 1,
            truncate_every: 0,
        },
    );
    tree.reset_counts();
    let second = ask(&t, "second.lossy.lab.").await;
    assert_eq!(second.metadata.response_code, ResponseCode::NoError);
    assert_eq!(first_a(&second).as_deref(), Some("127.10.11.1"));
    let asked: Vec<(bool, String)> = tree
        .query_log()
        .iter()
        .filter(|q| q.server == LOSSY)
        .map(|q| (q.tcp, q.name.to_string().to_lowercase()))
        .collect();
    assert_eq!(
        asked,
        [
            (false, "second.lossy.lab.".to_string()),
            (true, "second.lossy.lab.".to_string())
        ],
        "one UDP query dropped, then TCP"
    );
    t.stop().await;
}
