//! The metrics and admin HTTP endpoint of an in-process taproot in front of
//! the fake tree: `promtool` accepts the page, every family is there, and each
//! counter moves when, and only when, its event happens.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use support::client::{self, EXAMPLE_IP, ask_tcp, ask_udp, ask_udp_within, three_level_tree};
use support::e2e::{http, off_thread, scrape, tool};
use support::lab::{self, lab_tree};
use support::tree::{Behaviour, FakeTree};
use support::{Taproot, start_taproot_with_admin};
use taproot::clock::Clock;
use taproot::config::{AclAction, AclRule, Config};
use taproot::metrics::names;
use taproot::server::Server;
use tokio::net::UdpSocket;

/// Taproot with its metrics and admin listener on a free loopback port.
async fn start(tree: &FakeTree, tweak: impl FnOnce(&mut Config)) -> (Taproot, SocketAddr) {
    start_taproot_with_admin(tree, tweak).await
}

/// One `/metrics` page.
struct Page(String);

impl Page {
    async fn fetch(metrics: SocketAddr) -> Page {
        let r = http::get_async(metrics, "/metrics").await;
        assert_eq!(r.status, 200, "/metrics: {}", r.body);
        Page(r.body)
    }
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        scrape::sum(&self.0, name, labels)
    }
}

/// How much a series moved between two pages.
fn moved(before: &Page, after: &Page, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.get(name, labels) - before.get(name, labels)
}

const ANSWER: [(&str, &str); 1] = [("kind", "answer")];
const HIT: [(&str, &str); 1] = [("cache", "hit")];
const MISS: [(&str, &str); 1] = [("cache", "miss")];
const DURATION_COUNT: &str = "taproot_query_duration_seconds_count";

/// Asks `qname` and says whether the answer cache had it.
async fn hit_or_miss(t: &Taproot, metrics: SocketAddr, qname: &str) -> &'static str {
    let before = Page::fetch(metrics).await;
    let reply = ask_udp(t.addr, &client::recursive(qname, RecordType::A)).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    let after = Page::fetch(metrics).await;
    let hits = moved(&before, &after, names::CACHE_HITS, &ANSWER);
    let misses = moved(&before, &after, names::CACHE_MISSES, &ANSWER);
    match (hits as i64, misses as i64) {
        (1, 0) => "hit",
        (0, 1) => "miss",
        other => panic!("{qname}: answer cache hits/misses moved by {other:?}"),
    }
}

/// Asks over UDP from a chosen loopback source address.
async fn ask_udp_from(src: IpAddr, to: SocketAddr, message: &Message) -> Message {
    let socket = UdpSocket::bind(SocketAddr::new(src, 0))
        .await
        .expect("bind a client socket");
    let bytes = message.to_vec().expect("encode");
    socket.send_to(&bytes, to).await.expect("send");
    let mut buf = vec![0u8; 65535];
    let (len, _) = tokio::time::timeout(client::REPLY_WAIT, socket.recv_from(&mut buf))
        .await
        .expect("a reply in time")
        .expect("receive");
    Message::from_vec(&buf[..len]).expect("decode")
}

async fn send_raw(to: SocketAddr, bytes: &[u8]) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    socket.send_to(bytes, to).await.expect("send");
}

/// Polls `/metrics` until `ok` holds for a page; returns the last page.
async fn wait_for_page(metrics: SocketAddr, within: Duration, ok: impl Fn(&Page) -> bool) -> Page {
    let deadline = Instant::now() + within;
    loop {
        let page = Page::fetch(metrics).await;
        if ok(&page) || Instant::now() >= deadline {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Drives every kind of event once, so that every labelled family has series.
async fn exercise(t: &Taproot) {
    // Over UDP: a miss and a hit, NXDOMAIN, an answer too big for UDP, a CNAME loop.
    for (name, rtype) in [
        ("www.example.co.kr.", RecordType::A),
        ("www.example.co.kr.", RecordType::A),
        ("nope.example.co.kr.", RecordType::A),
        ("big.example.co.kr.", RecordType::TXT),
        ("loop1.example.co.kr.", RecordType::A),
    ] {
        ask_udp(t.addr, &client::recursive(name, rtype)).await;
    }
    ask_tcp(
        t.addr,
        &client::recursive("www.example.co.kr.", RecordType::AAAA),
    )
    .await;
    // RD=0: a referral-mode answer.
    ask_udp(
        t.addr,
        &client::query("alias.example.co.kr.", RecordType::A),
    )
    .await;
    send_raw(t.addr, &[0x12, 0x34, 0x00]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_check_metrics_reports_nothing_on_the_metrics_page() {
    let tree = three_level_tree().await;
    let (t, metrics) = start(&tree, |_| {}).await;
    exercise(&t).await;
    let page = Page::fetch(metrics).await;
    let promtool = tool("promtool");
    let body = page.0.clone();
    let out = off_thread(move || {
        use std::io::Write;
        let mut child = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run promtool");
        child
            .stdin
            .take()
            .expect("promtool's stdin")
            .write_all(body.as_bytes())
            .expect("feed promtool");
        child.wait_with_output().expect("promtool finishes")
    })
    .await;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics ({}):\n{said}\n--- page:\n{}",
        out.status,
        page.0
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_family_is_exported_with_help_and_the_process_collector() {
    let tree = three_level_tree().await;
    let (t, metrics) = start(&tree, |_| {}).await;
    exercise(&t).await;
    let page = Page::fetch(metrics).await;
    let families = names::ALWAYS_EXPORTED;
    for family in families {
        assert!(
            scrape::has_family(&page.0, family),
            "{family} is missing:\n{}",
            page.0
        );
        let help = format!("# HELP {family} ");
        assert!(
            page.0
                .lines()
                .any(|l| l.starts_with(&help) && l.len() > help.len()),
            "{family} has no help text"
        );
    }
    let version = [("version", env!("CARGO_PKG_VERSION"))];
    assert_eq!(page.get(names::BUILD_INFO, &version), 1.0);
    assert!(page.get("process_resident_memory_bytes", &[]) > 0.0);
    assert!(page.get("process_open_fds", &[]) > 0.0);
    // Labels stay within their documented sets.
    for s in scrape::samples(&page.0) {
        for (k, v) in &s.labels {
            let ok = match k.as_str() {
                "protocol" => ["udp", "tcp", "tls", "https"].contains(&v.as_str()),
                "transport" => ["udp", "tcp", "tls", "https"].contains(&v.as_str()),
                "cache" => ["hit", "miss"].contains(&v.as_str()),
                "qtype" => v == "other" || taproot::metrics::QTYPES.iter().any(|(_, n)| n == v),
                _ => true,
            };
            assert!(ok, "{} has {k}={v:?}", s.name);
        }
    }
    assert_eq!(
        page.get(names::SERVFAIL, &[("reason", "cname_loop")]),
        1.0,
        "the CNAME loop"
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_then_a_hit_moves_each_counter_once() {
    let tree = three_level_tree().await;
    let (t, metrics) = start(&tree, |_| {}).await;
    let q = client::recursive("www.example.co.kr.", RecordType::A);
    let a = [("protocol", "udp"), ("qtype", "A"), ("rcode", "NOERROR")];

    let before = Page::fetch(metrics).await;
    ask_udp(t.addr, &q).await;
    let after_miss = Page::fetch(metrics).await;
    ask_udp(t.addr, &q).await;
    let after_hit = Page::fetch(metrics).await;

    let first = |name, labels| moved(&before, &after_miss, name, labels);
    let second = |name, labels| moved(&after_miss, &after_hit, name, labels);
    assert_eq!(first(names::QUERIES, &a), 1.0);
    assert_eq!(second(names::QUERIES, &a), 1.0);
    assert_eq!(first(names::CACHE_MISSES, &ANSWER), 1.0);
    assert_eq!(first(names::CACHE_HITS, &ANSWER), 0.0);
    assert_eq!(second(names::CACHE_MISSES, &ANSWER), 0.0);
    assert_eq!(second(names::CACHE_HITS, &ANSWER), 1.0);
    assert_eq!(first(DURATION_COUNT, &MISS), 1.0);
    assert_eq!(first(DURATION_COUNT, &HIT), 0.0);
    assert_eq!(second(DURATION_COUNT, &MISS), 0.0);
    assert_eq!(second(DURATION_COUNT, &HIT), 1.0);
    // Only the miss went upstream.
    let ok = [("result", "ok")];
    assert!(
        first(names::UPSTREAM_QUERIES, &ok) >= 3.0,
        "root, kr., co.kr., example.co.kr."
    );
    assert_eq!(second(names::UPSTREAM_QUERIES, &[]), 0.0);
    assert!(first("taproot_upstream_rtt_seconds_count", &[]) >= 3.0);
    assert_eq!(second("taproot_upstream_rtt_seconds_count", &[]), 0.0);
    // One RRset answers it: stored once, as a record entry that the hot path serves.
    assert!(after_hit.get(names::CACHE_ENTRIES, &[("kind", "record")]) >= 1.0);
    assert!(after_hit.get(names::CACHE_BYTES, &[]) > 0.0);
    assert_eq!(after_hit.get(names::INFLIGHT, &[]), 0.0);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_client_moves_the_refused_counter() {
    let tree = three_level_tree().await;
    let (t, metrics) = start(&tree, |c| {
        c.acl = vec![AclRule {
            prefix: "127.0.0.1/32".parse().expect("literal"),
            action: AclAction::Allow,
        }];
    })
    .await;
    let q = client::recursive("www.example.co.kr.", RecordType::A);
    let refused = [("rcode", "REFUSED")];

    let before = Page::fetch(metrics).await;
    let reply = ask_udp_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), t.addr, &q).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
    let after = Page::fetch(metrics).await;
    assert_eq!(moved(&before, &after, names::REFUSED, &[]), 1.0);
    assert_eq!(moved(&before, &after, names::QUERIES, &refused), 1.0);
    assert_eq!(tree.total_queries(), 0, "a refused client causes no walk");

    let reply = ask_udp_from(IpAddr::V4(Ipv4Addr::LOCALHOST), t.addr, &q).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    let last = Page::fetch(metrics).await;
    assert_eq!(moved(&after, &last, names::REFUSED, &[]), 0.0);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_empties_the_cache_so_the_next_query_is_a_miss() {
    let tree = three_level_tree().await;
    let (t, metrics) = start(&tree, |_| {}).await;
    assert_eq!(hit_or_miss(&t, metrics, "www.example.co.kr.").await, "miss");
    assert_eq!(hit_or_miss(&t, metrics, "www.example.co.kr.").await, "hit");
    let full = Page::fetch(metrics).await;
    assert!(full.get(names::CACHE_ENTRIES, &[("kind", "record")]) >= 1.0);

    let r = http::post_async(metrics, "/cache/flush").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let empty = Page::fetch(metrics).await;
    assert_eq!(empty.get(names::CACHE_ENTRIES, &[]), 0.0, "{}", empty.0);
    assert_eq!(empty.get(names::CACHE_BYTES, &[]), 0.0);

    let asked_before = tree.queries_to(client::ROOT_IP);
    assert_eq!(hit_or_miss(&t, metrics, "www.example.co.kr.").await, "miss");
    assert!(
        tree.queries_to(client::ROOT_IP) > asked_before,
        "delegations were flushed too: the walk starts at the root again"
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_flush_and_a_subtree_flush_remove_only_what_they_name() {
    let tree = three_level_tree().await;
    let (t, metrics) = start(&tree, |_| {}).await;
    let www = "www.example.co.kr.";
    let deep = "a.b.ent.example.co.kr.";
    for name in [www, deep] {
        assert_eq!(hit_or_miss(&t, metrics, name).await, "miss");
    }

    // The exact name only.
    let r = http::post_async(metrics, "/cache/flush?name=www.example.co.kr").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(hit_or_miss(&t, metrics, www).await, "miss");
    assert_eq!(hit_or_miss(&t, metrics, deep).await, "hit");

    // A name above without subtree=true leaves what is below it.
    let r = http::post_async(metrics, "/cache/flush?name=ent.example.co.kr").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(hit_or_miss(&t, metrics, deep).await, "hit");

    // The subtree: both.
    let r = http::post_async(metrics, "/cache/flush?name=example.co.kr&subtree=true").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(hit_or_miss(&t, metrics, www).await, "miss");
    assert_eq!(hit_or_miss(&t, metrics, deep).await, "miss");

    let r = http::post_async(metrics, "/cache/flush?name=bad..name").await;
    assert_eq!(r.status, 400, "{}", r.body);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_stats_is_json_with_usage_and_counters_by_kind() {
    let tree = three_level_tree().await;
    let (t, metrics) = start(&tree, |_| {}).await;
    ask_udp(
        t.addr,
        &client::recursive("www.example.co.kr.", RecordType::A),
    )
    .await;
    ask_udp(
        t.addr,
        &client::recursive("www.example.co.kr.", RecordType::A),
    )
    .await;
    let r = http::get_async(metrics, "/cache/stats").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.header("content-type")
            .is_some_and(|v| v.starts_with("application/json")),
        "{:?}",
        r.headers
    );
    let json: serde_json::Value = serde_json::from_str(&r.body).expect("JSON");
    assert!(
        json["usage"]["record_entries"].as_u64() >= Some(1),
        "{json}"
    );
    assert!(json["usage"]["bytes"].as_u64() > Some(0), "{json}");
    assert_eq!(json["kinds"]["answer"]["hits"], 1, "{json}");
    assert_eq!(json["kinds"]["answer"]["misses"], 1, "{json}");
    for kind in ["answer", "record", "negative", "delegation"] {
        for field in ["hits", "misses", "inserts", "evictions"] {
            assert!(
                json["kinds"][kind][field].is_u64(),
                "{kind}.{field}: {json}"
            );
        }
    }
    assert!(json["prefetches"].is_u64() && json["stale_answers"].is_u64());
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_answer_only_clients_in_admin_allow() {
    let tree = three_level_tree().await;
    let (t, metrics) = start(&tree, |c| {
        c.metrics.admin_allow = vec!["127.0.0.1/32".parse().expect("literal")];
    })
    .await;
    let outsider = Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    let calls = off_thread(move || {
        [
            http::request(outsider, metrics, "POST", "/cache/flush"),
            http::request(outsider, metrics, "GET", "/cache/stats"),
            http::request(outsider, metrics, "GET", "/metrics"),
            http::request(None, metrics, "GET", "/cache/stats"),
            http::request(None, metrics, "GET", "/cache/flush"),
        ]
    })
    .await;
    assert_eq!(calls[0].status, 403, "flush from outside admin_allow");
    assert_eq!(calls[1].status, 403, "stats from outside admin_allow");
    assert_eq!(calls[2].status, 200, "/metrics is for any client");
    assert_eq!(calls[3].status, 200, "stats from an admin address");
    assert_eq!(calls[4].status, 405, "a flush must be a POST");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_the_metrics_content_type() {
    let tree = three_level_tree().await;
    let (t, metrics) = start(&tree, |_| {}).await;
    let health = http::get_async(metrics, "/healthz").await;
    assert_eq!((health.status, health.body.trim()), (200, "ok"));
    let ready = http::get_async(metrics, "/readyz").await;
    assert_eq!((ready.status, ready.body.trim()), (200, "ready"));
    let page = http::get_async(metrics, "/metrics").await;
    assert_eq!(
        page.header("content-type"),
        Some("text/plain; version=0.0.4"),
        "the Prometheus text format"
    );
    assert_eq!(http::get_async(metrics, "/nowhere").await.status, 404);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_upstream_answer_is_counted_under_tcp() {
    let tree = three_level_tree().await;
    let (t, metrics) = start(&tree, |_| {}).await;
    let before = Page::fetch(metrics).await;
    let reply = ask_udp(
        t.addr,
        &client::recursive("big.example.co.kr.", RecordType::TXT),
    )
    .await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    let after = Page::fetch(metrics).await;
    let tcp_ok = [("transport", "tcp"), ("result", "ok")];
    let udp_ok = [("transport", "udp"), ("result", "ok")];
    assert_eq!(
        moved(&before, &after, names::UPSTREAM_QUERIES, &tcp_ok),
        1.0,
        "{}",
        after.0
    );
    assert!(moved(&before, &after, names::UPSTREAM_QUERIES, &udp_ok) >= 3.0);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_zone_moves_servfail_with_its_reason_and_upstream_timeouts() {
    let tree = three_level_tree().await;
    let (t, metrics) = start(&tree, |c| {
        c.resolver.upstream_timeout_ms = 300;
        c.resolver.query_budget_ms = 3_000;
    })
    .await;
    tree.set_behaviour(EXAMPLE_IP, Behaviour::Drop);
    let before = Page::fetch(metrics).await;
    let reply = ask_udp_within(
        t.addr,
        &client::recursive("www.example.co.kr.", RecordType::A),
        Duration::from_secs(5),
    )
    .await
    .expect("a SERVFAIL in time");
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    let after = Page::fetch(metrics).await;
    let reason = [("reason", "no_reachable_authority")];
    assert_eq!(
        moved(&before, &after, names::SERVFAIL, &reason),
        1.0,
        "{}",
        after.0
    );
    assert_eq!(moved(&before, &after, names::SERVFAIL, &[]), 1.0);
    assert_eq!(
        moved(&before, &after, names::QUERIES, &[("rcode", "SERVFAIL")]),
        1.0
    );
    let timeouts = [("result", "timeout")];
    assert!(moved(&before, &after, names::UPSTREAM_QUERIES, &timeouts) >= 1.0);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_stray_responses_move_dropped_by_reason() {
    let tree = three_level_tree().await;
    let (t, metrics) = start(&tree, |_| {}).await;
    let before = Page::fetch(metrics).await;
    send_raw(t.addr, &[0xde, 0xad, 0xbe]).await;
    let mut response = client::recursive("www.example.co.kr.", RecordType::A);
    response.metadata.message_type = hickory_proto::op::MessageType::Response;
    send_raw(t.addr, &response.to_vec().expect("encode")).await;
    let after = wait_for_page(metrics, Duration::from_secs(2), |p| {
        moved(&before, p, names::DROPPED, &[]) >= 2.0
    })
    .await;
    assert_eq!(
        moved(&before, &after, names::DROPPED, &[("reason", "malformed")]),
        1.0
    );
    assert_eq!(
        moved(&before, &after, names::DROPPED, &[("reason", "response")]),
        1.0
    );
    assert_eq!(
        moved(&before, &after, names::QUERIES, &[]),
        0.0,
        "nothing was answered"
    );
    // And the server still answers.
    let reply = ask_udp(
        t.addr,
        &client::recursive("www.example.co.kr.", RecordType::A),
    )
    .await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_without_rd_moves_referral_answers() {
    let tree = three_level_tree().await;
    let (t, metrics) = start(&tree, |_| {}).await;
    let before = Page::fetch(metrics).await;
    let reply = ask_udp(t.addr, &client::query("www.example.co.kr.", RecordType::A)).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(
        reply.answers.is_empty() && !reply.authorities.is_empty(),
        "{reply:?}"
    );
    let after = Page::fetch(metrics).await;
    assert_eq!(moved(&before, &after, names::REFERRALS, &[]), 1.0);
    assert_eq!(moved(&before, &after, DURATION_COUNT, &MISS), 1.0);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inflight_gauge_shows_a_resolution_in_progress() {
    let tree = three_level_tree().await;
    let (t, metrics) = start(&tree, |c| {
        c.resolver.upstream_timeout_ms = 3_000;
        c.cache.client_timeout_ms = 5_000;
    })
    .await;
    tree.set_behaviour(EXAMPLE_IP, Behaviour::Delay(Duration::from_millis(1_500)));
    let addr = t.addr;
    let asking = tokio::spawn(async move {
        ask_udp_within(
            addr,
            &client::recursive("www.example.co.kr.", RecordType::A),
            Duration::from_secs(5),
        )
        .await
    });
    let during = wait_for_page(metrics, Duration::from_millis(1_200), |p| {
        p.get(names::INFLIGHT, &[]) == 1.0
    })
    .await;
    assert_eq!(during.get(names::INFLIGHT, &[]), 1.0, "one walk in flight");
    let reply = asking.await.expect("the client task").expect("an answer");
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    let after = Page::fetch(metrics).await;
    assert_eq!(after.get(names::INFLIGHT, &[]), 0.0);
    t.stop().await;
}

/// Taproot on a manual clock, so TTLs pass without sleeping.
struct OnClock {
    running: taproot::server::Running,
    addr: SocketAddr,
    metrics: SocketAddr,
    clock: Clock,
    _hints: support::tempfile_path::TempPath,
}

impl OnClock {
    async fn start(tree: &FakeTree, tweak: impl FnOnce(&mut Config)) -> OnClock {
        let (mut config, hints) = support::test_config(tree);
        config.metrics.listen = "127.0.0.1:0".into();
        tweak(&mut config);
        let clock = Clock::manual();
        let running = Server::start_with_clock(config, clock.clone())
            .await
            .expect("taproot starts");
        OnClock {
            addr: running.addr(),
            metrics: running.metrics_addr.expect("the metrics listener is on"),
            running,
            clock,
            _hints: hints,
        }
    }

    async fn stop(self) {
        self.running.shutdown(Duration::from_secs(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefetch_is_counted_once() {
    let tree = lab_tree().await;
    let t = OnClock::start(&tree, |_| {}).await;
    let (metrics, clock) = (t.metrics, t.clock.clone());
    let q = client::recursive("ten.provider.lab.", RecordType::A);
    ask_udp(t.addr, &q).await;
    let before = Page::fetch(metrics).await;
    // The last 10% of its 10 s TTL: the hit asks for one background refresh.
    clock.advance(9_200);
    ask_udp(t.addr, &q).await;
    let after = wait_for_page(metrics, Duration::from_secs(3), |p| {
        moved(&before, p, names::CACHE_PREFETCHES, &[]) >= 1.0
    })
    .await;
    assert_eq!(moved(&before, &after, names::CACHE_PREFETCHES, &[]), 1.0);
    assert_eq!(moved(&before, &after, names::CACHE_HITS, &ANSWER), 1.0);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_answer_is_counted() {
    let tree = lab_tree().await;
    let t = OnClock::start(&tree, |c| {
        c.cache.client_timeout_ms = 400;
        c.resolver.upstream_timeout_ms = 300;
        c.resolver.query_budget_ms = 3_000;
    })
    .await;
    let (metrics, clock) = (t.metrics, t.clock.clone());
    let q = client::recursive("short.provider.lab.", RecordType::A);
    ask_udp(t.addr, &q).await;
    tree.set_behaviour(lab::PROVIDER, Behaviour::Drop);
    clock.advance(3_000);
    let before = Page::fetch(metrics).await;
    let stale = ask_udp(t.addr, &q).await;
    assert_eq!(stale.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        stale.answers.first().map(|r| r.ttl),
        Some(30),
        "RFC 8767 stale TTL"
    );
    let after = Page::fetch(metrics).await;
    assert_eq!(moved(&before, &after, names::CACHE_STALE, &[]), 1.0);
    assert_eq!(
        moved(&before, &after, names::CACHE_MISSES, &ANSWER),
        1.0,
        "expired is a miss"
    );
    t.stop().await;
}
