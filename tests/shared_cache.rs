//! A fleet of resolvers sharing a cache on Redis (`[cache.shared]`, #27):
//! two in-process taproot instances in front of one fake tree, with a real
//! `redis-server` (or a three-master Redis Cluster) on loopback. What one
//! instance resolved the other answers with no upstream query (counted at
//! the fake tree); Redis down, stalled or holding forged values costs a
//! question at most the read deadline, never an answer.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use support::client::{addresses, ask_udp, recursive, three_level_tree};
use support::e2e::{TempDir, http, off_thread};
use support::redis::{RedisCluster, RedisServer, wait_until};
use support::tree::FakeTree;
use support::{Taproot, metric, start_taproot, start_taproot_with_admin};
use taproot::config::Config;

/// The deadline the tests give a read; large enough to tell a read that
/// waited for it from a walk on loopback, small against Redis's own 1 s.
const TIMEOUT_MS: u64 = 50;

/// What a question may take beyond the deadline: the walk of one name on
/// loopback (its zone cuts cached) and a busy test machine.
const SLACK: Duration = Duration::from_millis(250);

/// The fleet's secret, in a file of its own.
fn secret(dir: &TempDir) -> String {
    dir.write("fleet.key", "a fleet secret long enough for a test\n")
        .display()
        .to_string()
}

/// Points `config` at a standalone Redis.
fn shared(config: &mut Config, url: &str, secret_file: &str) {
    config.cache.shared.url = url.to_string();
    config.cache.shared.key_secret_file = secret_file.to_string();
    config.cache.shared.timeout_ms = TIMEOUT_MS;
}

/// Asks `t` for the A records of `name` and returns them with the time taken.
async fn ask(t: &Taproot, name: &str) -> (Vec<String>, Duration) {
    let started = Instant::now();
    let reply = ask_udp(t.addr, &recursive(name, RecordType::A)).await;
    let took = started.elapsed();
    assert_eq!(
        reply.metadata.response_code,
        ResponseCode::NoError,
        "{name}"
    );
    (addresses(&reply), took)
}

/// Waits (off the runtime) until Redis holds at least `n` answers.
async fn until_stored(redis: &RedisServer, n: usize) {
    let port = redis.port;
    let stored = off_thread(move || {
        let probe = RedisServerView(port);
        wait_until(Duration::from_secs(5), || probe.answers() >= n)
    })
    .await;
    assert!(stored, "Redis did not get {n} answers within 5 s");
}

/// `redis-cli` on a port, for use on a blocking thread.
struct RedisServerView(u16);

impl RedisServerView {
    fn answers(&self) -> usize {
        let out = std::process::Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.0.to_string()])
            .args(["--scan", "--pattern", "taproot:v1:*"])
            .output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
            .unwrap_or(0)
    }
}

fn reads(t: &Taproot, result: &str) -> f64 {
    metric(
        &t.metrics_text(),
        &format!("taproot_shared_cache_reads_total{{result=\"{result}\"}}"),
    )
}

async fn pair(tree: &FakeTree, url: &str, secret_file: &str) -> (Taproot, Taproot) {
    let a = start_taproot(tree, |c| shared(c, url, secret_file)).await;
    let b = start_taproot(tree, |c| shared(c, url, secret_file)).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_one_instance_resolved_is_answered_by_another_without_an_upstream_query() {
    let tree = three_level_tree().await;
    let redis = off_thread(RedisServer::start).await;
    let dir = TempDir::new("fleet");
    let (a, b) = pair(&tree, &redis.url(), &secret(&dir)).await;

    let (first, _) = ask(&a, "www.example.co.kr.").await;
    assert_eq!(first, ["127.1.0.1", "127.1.0.2"]);
    until_stored(&redis, 1).await;

    tree.reset_counts();
    let (second, _) = ask(&b, "www.example.co.kr.").await;
    assert_eq!(second, first);
    assert_eq!(tree.total_queries(), 0, "{:?}", tree.query_log());
    assert_eq!(reads(&b, "hit"), 1.0, "{}", b.metrics_text());
    // Adopted into b's first tier: the next one is a plain hit, no read.
    ask(&b, "www.example.co.kr.").await;
    assert_eq!(reads(&b, "hit"), 1.0);
    assert_eq!(tree.total_queries(), 0);

    // A negative answer travels the same way.
    let nx = ask_udp(a.addr, &recursive("nope.example.co.kr.", RecordType::A)).await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    until_stored(&redis, 2).await;
    tree.reset_counts();
    let nx = ask_udp(b.addr, &recursive("nope.example.co.kr.", RecordType::A)).await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(tree.total_queries(), 0);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_with_a_bad_hmac_is_a_counted_miss_and_the_name_is_walked() {
    let tree = three_level_tree().await;
    let redis = off_thread(RedisServer::start).await;
    let dir = TempDir::new("fleet");
    let (a, b) = pair(&tree, &redis.url(), &secret(&dir)).await;
    ask(&a, "www.example.co.kr.").await;
    until_stored(&redis, 1).await;

    // Overwrite the value's tag by hand, as someone without the key would.
    let keys = redis.keys("taproot:v1:*");
    assert_eq!(keys.len(), 1, "{keys:?}");
    let len: usize = redis
        .cli(&["STRLEN", &keys[0]])
        .trim()
        .parse()
        .expect("a length");
    let forged = "Z".repeat(32);
    redis.cli(&["SETRANGE", &keys[0], &(len - 32).to_string(), &forged]);

    tree.reset_counts();
    let (got, _) = ask(&b, "www.example.co.kr.").await;
    assert_eq!(got, ["127.1.0.1", "127.1.0.2"], "walked instead");
    assert!(tree.total_queries() > 0, "the forged value was not used");
    assert_eq!(reads(&b, "rejected"), 1.0, "{}", b.metrics_text());
    assert_eq!(reads(&b, "hit"), 0.0);

    // A value under another fleet's key is refused the same way.
    let stranger = start_taproot(&tree, |c| shared(c, &redis.url(), "")).await;
    tree.reset_counts();
    ask(&stranger, "www.example.co.kr.").await;
    assert!(tree.total_queries() > 0);
    assert_eq!(reads(&stranger, "hit"), 0.0);
    a.stop().await;
    b.stop().await;
    stranger.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_killed_both_keep_answering_each_question_delayed_at_most_the_deadline() {
    let tree = three_level_tree().await;
    let mut redis = off_thread(RedisServer::start).await;
    let dir = TempDir::new("fleet");
    let (a, b) = pair(&tree, &redis.url(), &secret(&dir)).await;
    // Zone cuts cached in both, so a question is one upstream query.
    ask(&a, "www.example.co.kr.").await;
    ask(&b, "www.example.co.kr.").await;
    until_stored(&redis, 1).await;

    redis.kill();
    let limit = Duration::from_millis(TIMEOUT_MS) + SLACK;
    // Failing reads for longer than the breaker's span open it; each
    // question on the way is delayed at most the deadline.
    let mut opened = false;
    for i in 0..100 {
        for t in [&a, &b] {
            let (got, took) = ask(t, &format!("h{i}.wild.example.co.kr.")).await;
            assert_eq!(got, ["127.1.0.9"]);
            assert!(took <= limit, "h{i} took {took:?}, over {limit:?}");
        }
        if metric(&b.metrics_text(), "taproot_shared_cache_breaker_open") == 1.0
            && reads(&b, "open") > 0.0
        {
            opened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(opened, "the breaker never opened: {}", b.metrics_text());
    // Repeated failures opened the breaker: later reads were not even sent.
    let text = b.metrics_text();
    assert_eq!(
        metric(&text, "taproot_shared_cache_breaker_open"),
        1.0,
        "{text}"
    );
    assert!(reads(&b, "open") > 0.0, "{text}");
    assert!(reads(&b, "error") + reads(&b, "timeout") >= 3.0, "{text}");

    // Redis back: after the cool-down a probe closes the breaker and the
    // fleet shares again.
    let _redis = off_thread(move || {
        redis.restart();
        redis
    })
    .await;
    let mut closed = false;
    for i in 0..40 {
        ask(&b, &format!("back{i}.wild.example.co.kr.")).await;
        if metric(&b.metrics_text(), "taproot_shared_cache_breaker_open") == 0.0 {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(closed, "the breaker never closed: {}", b.metrics_text());
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_does_not_delay_answers_past_the_deadline() {
    let tree = three_level_tree().await;
    let redis = off_thread(RedisServer::start).await;
    let dir = TempDir::new("fleet");
    let (a, b) = pair(&tree, &redis.url(), &secret(&dir)).await;
    ask(&a, "www.example.co.kr.").await;
    ask(&b, "www.example.co.kr.").await;
    until_stored(&redis, 1).await;

    // Redis stops answering for 3 s (DEBUG SLEEP from another client).
    let mut sleeper = redis.stall(3.0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let limit = Duration::from_millis(TIMEOUT_MS) + SLACK;
    let stalled = Instant::now();
    for i in 0..6 {
        let (got, took) = ask(&b, &format!("slow{i}.wild.example.co.kr.")).await;
        assert_eq!(got, ["127.1.0.9"]);
        assert!(took <= limit, "slow{i} took {took:?}, over {limit:?}");
    }
    assert!(
        stalled.elapsed() < Duration::from_secs(2),
        "the questions ran inside the stall"
    );
    assert!(reads(&b, "timeout") >= 1.0, "{}", b.metrics_text());
    let _ = off_thread(move || sleeper.wait()).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_on_one_instance_makes_the_other_resolve_again() {
    let tree = three_level_tree().await;
    let redis = off_thread(RedisServer::start).await;
    let dir = TempDir::new("fleet");
    let key = secret(&dir);
    let (a, admin): (Taproot, SocketAddr) =
        start_taproot_with_admin(&tree, |c| shared(c, &redis.url(), &key)).await;
    let b = start_taproot(&tree, |c| shared(c, &redis.url(), &key)).await;
    ask(&a, "www.example.co.kr.").await;
    until_stored(&redis, 1).await;
    tree.reset_counts();
    ask(&b, "www.example.co.kr.").await;
    assert_eq!(tree.total_queries(), 0, "b had it from Redis");

    let r = http::post_async(admin, "/cache/flush?name=www.example.co.kr").await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The flush reaches b over pub/sub.
    let mut heard = false;
    for _ in 0..50 {
        if metric(
            &b.metrics_text(),
            "taproot_shared_cache_flushes_total{origin=\"fleet\"}",
        ) >= 1.0
        {
            heard = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(heard, "b never heard the flush: {}", b.metrics_text());

    tree.reset_counts();
    let (got, _) = ask(&b, "www.example.co.kr.").await;
    assert_eq!(got, ["127.1.0.1", "127.1.0.2"]);
    assert!(
        tree.total_queries() > 0,
        "b answered from its first tier or from Redis after the flush"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_spreads_the_fleet_cache_over_its_masters() {
    let tree = three_level_tree().await;
    let cluster = off_thread(RedisCluster::start).await;
    let dir = TempDir::new("fleet");
    let key = secret(&dir);
    let seeds = cluster.urls();
    let tweak = |c: &mut Config| {
        c.cache.shared.cluster = seeds.clone();
        c.cache.shared.key_secret_file = key.clone();
        c.cache.shared.timeout_ms = TIMEOUT_MS;
    };
    let a = start_taproot(&tree, tweak).await;
    let b = start_taproot(&tree, tweak).await;
    // The cluster connection is made in the background: wait for it.
    let mut ready = false;
    for _ in 0..100 {
        ask(&a, "www.example.co.kr.").await;
        if cluster.masters.iter().map(RedisServer::dbsize).sum::<u64>() > 0 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let flush = a.running.handler.cache.clone();
        flush.flush_all();
    }
    assert!(ready, "nothing reached the cluster");

    let names: Vec<String> = (0..30)
        .map(|i| format!("c{i}.wild.example.co.kr."))
        .collect();
    for name in &names {
        ask(&a, name).await;
    }
    let masters: Vec<u16> = cluster.masters.iter().map(|m| m.port).collect();
    let spread = off_thread(move || {
        wait_until(Duration::from_secs(5), || {
            masters.iter().all(|&p| {
                let out = std::process::Command::new("redis-cli")
                    .args(["-h", "127.0.0.1", "-p", &p.to_string(), "DBSIZE"])
                    .output();
                out.ok()
                    .and_then(|o| {
                        String::from_utf8_lossy(&o.stdout)
                            .trim()
                            .parse::<u64>()
                            .ok()
                    })
                    .is_some_and(|n| n > 0)
            })
        })
    })
    .await;
    let sizes: Vec<u64> = cluster.masters.iter().map(RedisServer::dbsize).collect();
    assert!(spread, "a master holds nothing: {sizes:?}");
    assert!(sizes.iter().sum::<u64>() >= 30, "{sizes:?}");

    tree.reset_counts();
    for name in &names {
        let (got, _) = ask(&b, name).await;
        assert_eq!(got, ["127.1.0.9"], "{name}");
    }
    assert_eq!(tree.total_queries(), 0, "{:?}", tree.query_log());
    assert_eq!(reads(&b, "hit"), 30.0, "{}", b.metrics_text());
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_down_at_start_does_not_stop_taproot_starting_or_answering() {
    let tree = three_level_tree().await;
    let port = support::e2e::free_port(&["127.0.0.1".parse().expect("literal")]);
    let url = format!("redis://127.0.0.1:{port}/0");
    let t = start_taproot(&tree, |c| shared(c, &url, "")).await;
    let limit = Duration::from_millis(TIMEOUT_MS) + SLACK;
    ask(&t, "www.example.co.kr.").await;
    for i in 0..5 {
        let (got, took) = ask(&t, &format!("d{i}.wild.example.co.kr.")).await;
        assert_eq!(got, ["127.1.0.9"]);
        assert!(took <= limit, "d{i} took {took:?}, over {limit:?}");
    }
    assert!(reads(&t, "error") + reads(&t, "timeout") >= 1.0);
    t.stop().await;
}
