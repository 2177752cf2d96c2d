//! Warm restart (`cache.snapshot_file`, issue #27): the real binary is
//! stopped with SIGTERM and started again, and what it had cached is
//! answered with no query to the fake tree, TTLs lowered by the downtime;
//! a damaged snapshot is logged and ignored, never fatal.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use support::client::{self, ask_udp, three_level_tree};
use support::daemon::{Daemon, config_text};
use support::e2e::{TempDir, free_port};
use support::tree::FakeTree;

/// A daemon on the fake tree writing its snapshot to `snapshot`.
async fn start(tree: &FakeTree, snapshot: &std::path::Path) -> (Daemon, SocketAddr) {
    let dir = TempDir::new("warm");
    let hints = dir.write("root.hints", &tree.root_hints());
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port(&[IpAddr::from([127, 0, 0, 1])])));
    let extra = format!(
        "[cache]\nsnapshot_file = \"{}\"\nsnapshot_interval_s = 0\n",
        snapshot.display()
    );
    let daemon = Daemon::spawn(dir, &config_text(tree, &hints, addr, &extra));
    daemon.until_ready().await;
    (daemon, addr)
}

async fn stop(mut daemon: Daemon) {
    daemon.signal("TERM");
    let status = daemon.wait_exit().await;
    assert_eq!(status.code(), Some(0), "a clean stop exits 0: {status}");
    assert!(
        daemon.log.contains("cache snapshot written"),
        "{:?}",
        daemon.log.lines()
    );
}

fn a_ttl(answer: &Message) -> u32 {
    answer
        .answers
        .iter()
        .find(|r| r.record_type() == RecordType::A)
        .map(|r| r.ttl)
        .unwrap_or_else(|| panic!("an A record in {answer:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_daemon_answers_what_it_had_cached_with_no_upstream_query_and_ttls_lowered_by_the_downtime()
 {
    let tree = three_level_tree().await;
    let state = TempDir::new("warm-state");
    let snapshot = state.path().join("cache.snapshot");

    let (daemon, addr) = start(&tree, &snapshot).await;
    let www = ask_udp(
        addr,
        &client::recursive("www.example.co.kr.", RecordType::A),
    )
    .await;
    let alias = ask_udp(
        addr,
        &client::recursive("alias.example.co.kr.", RecordType::A),
    )
    .await;
    assert_eq!(www.metadata.response_code, ResponseCode::NoError);
    assert_eq!(alias.metadata.response_code, ResponseCode::NoError);
    let first_ttl = a_ttl(&www);
    let learnt_at = Instant::now();
    stop(daemon).await;
    assert!(snapshot.exists(), "SIGTERM wrote {}", snapshot.display());

    // Down for a while: the TTLs must show it.
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let asked_before = tree.total_queries();
    let (daemon, addr) = start(&tree, &snapshot).await;
    let loaded = daemon.log.wait_for(&["cache snapshot loaded"]).await;
    assert!(!loaded.contains("loaded=0"), "{loaded}");

    let again = ask_udp(
        addr,
        &client::recursive("www.example.co.kr.", RecordType::A),
    )
    .await;
    let down_s = learnt_at.elapsed().as_secs() as u32;
    assert_eq!(again.metadata.response_code, ResponseCode::NoError);
    assert_eq!(again.answers.len(), www.answers.len(), "{again:?}");
    assert!(
        a_ttl(&again) <= first_ttl - 2 && a_ttl(&again) + down_s + 1 >= first_ttl,
        "TTL {} after {down_s} s, {first_ttl} before the restart",
        a_ttl(&again)
    );
    let chain = ask_udp(
        addr,
        &client::recursive("ALIAS.example.co.kr.", RecordType::A),
    )
    .await;
    assert_eq!(chain.metadata.response_code, ResponseCode::NoError);
    assert!(
        chain
            .answers
            .iter()
            .any(|r| r.record_type() == RecordType::CNAME),
        "{chain:?}"
    );
    assert_eq!(
        tree.total_queries(),
        asked_before,
        "answered from the snapshot, no upstream query: {:?}",
        tree.query_log()
    );
    // A name the first run never saw still walks, from the cached cut:
    // straight to example.co.kr's server.
    let fresh = ask_udp(
        addr,
        &client::recursive("chain.example.co.kr.", RecordType::A),
    )
    .await;
    assert_eq!(fresh.metadata.response_code, ResponseCode::NoError);
    let walked: Vec<_> = tree.query_log().into_iter().skip(asked_before).collect();
    assert!(!walked.is_empty());
    assert!(
        walked.iter().all(|q| q.server == client::EXAMPLE_IP),
        "the walk started at the cached cut: {walked:?}"
    );
    stop(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_snapshot_is_logged_and_ignored_and_the_daemon_resolves_cold() {
    let tree = three_level_tree().await;
    let state = TempDir::new("warm-state");
    let snapshot = state.path().join("cache.snapshot");

    // A real snapshot, then cut short as a crash in a copy would leave it.
    let (daemon, addr) = start(&tree, &snapshot).await;
    ask_udp(
        addr,
        &client::recursive("www.example.co.kr.", RecordType::A),
    )
    .await;
    stop(daemon).await;
    let bytes = std::fs::read(&snapshot).expect("read the snapshot");
    std::fs::write(&snapshot, &bytes[..bytes.len() / 2]).expect("truncate it");

    let asked_before = tree.total_queries();
    let (daemon, addr) = start(&tree, &snapshot).await;
    let line = daemon.log.wait_for(&["cache snapshot ignored"]).await;
    assert!(line.contains("truncated or damaged"), "{line}");
    let www = ask_udp(
        addr,
        &client::recursive("www.example.co.kr.", RecordType::A),
    )
    .await;
    assert_eq!(www.metadata.response_code, ResponseCode::NoError);
    assert!(
        tree.total_queries() > asked_before,
        "nothing was loaded: the name was walked again"
    );
    stop(daemon).await;

    // Not a snapshot at all: the same.
    std::fs::write(&snapshot, b"not a snapshot\n").expect("write garbage");
    let (daemon, _) = start(&tree, &snapshot).await;
    let line = daemon.log.wait_for(&["cache snapshot ignored"]).await;
    assert!(line.contains("not a taproot cache snapshot"), "{line}");
    stop(daemon).await;
}
