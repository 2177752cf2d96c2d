//! A real Prometheus server scrapes taproot, using the shipped
//! `deploy/prometheus/` config with the target and interval changed, and the
//! counters read back through its query API show exactly the queries sent.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use support::client::{self, ask_udp, three_level_tree};
use support::e2e::{Prometheus, off_thread};
use support::start_taproot;

/// How long Prometheus may take to show a change (1 s scrapes).
const SEEN_WITHIN: Duration = Duration::from_secs(20);

/// The shipped scrape config, pointed at `target` and scraping every second.
fn scrape_config(target: SocketAddr) -> (String, String) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus");
    let config = std::fs::read_to_string(dir.join("prometheus.yml")).expect("prometheus.yml");
    let rules = std::fs::read_to_string(dir.join("taproot.rules.yml")).expect("rules");
    assert!(config.contains("127.0.0.1:9153"), "the default target");
    let config = config
        .replace("127.0.0.1:9153", &target.to_string())
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s")
        .replace("scrape_timeout: 5s", "scrape_timeout: 1s");
    (config, rules)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_taproot_and_sees_each_query_counted() {
    let tree = three_level_tree().await;
    let t = start_taproot(&tree, |c| c.metrics.listen = "127.0.0.1:0".into()).await;
    let target = t.running.metrics_addr.expect("the metrics listener is on");
    let (config, rules) = scrape_config(target);
    let prometheus =
        off_thread(move || Prometheus::start(&config, &[("taproot.rules.yml", rules.as_str())]))
            .await;
    let prometheus = std::sync::Arc::new(prometheus);

    let noerror_a = r#"sum(taproot_queries_total{job="taproot",qtype="A",rcode="NOERROR"})"#;
    let nxdomain = r#"sum(taproot_queries_total{job="taproot",rcode="NXDOMAIN"})"#;
    let hits = r#"sum(taproot_query_duration_seconds_count{job="taproot",cache="hit"})"#;
    // A first scrape: the target is up and the counters start at zero.
    let p = prometheus.clone();
    let up = off_thread(move || {
        p.wait_for(r#"up{job="taproot"}"#, SEEN_WITHIN, |v| v == 1.0)
            .and_then(|_| p.wait_for(noerror_a, SEEN_WITHIN, |v| v == 0.0))
    })
    .await;
    assert!(
        up.is_ok(),
        "taproot never scraped: {up:?}\n{}",
        prometheus.log()
    );

    // One miss and four hits for www, two NXDOMAINs.
    for _ in 0..5 {
        let reply = ask_udp(
            t.addr,
            &client::recursive("www.example.co.kr.", RecordType::A),
        )
        .await;
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    }
    for name in ["nope.example.co.kr.", "gone.example.co.kr."] {
        let reply = ask_udp(t.addr, &client::recursive(name, RecordType::A)).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
    }

    let p = prometheus.clone();
    let seen = off_thread(move || {
        [
            p.wait_for(noerror_a, SEEN_WITHIN, |v| v == 5.0),
            p.wait_for(nxdomain, SEEN_WITHIN, |v| v == 2.0),
            p.wait_for(hits, SEEN_WITHIN, |v| v == 4.0),
            p.wait_for(
                r#"sum(taproot_build_info{job="taproot"})"#,
                SEEN_WITHIN,
                |v| v == 1.0,
            ),
        ]
    })
    .await;
    for (query, result) in [noerror_a, nxdomain, hits, "build_info"].iter().zip(seen) {
        assert!(
            result.is_ok(),
            "{query}: last value {result:?}\n{}",
            prometheus.log()
        );
    }
    // The shipped recording rule evaluates over the same series.
    let p = prometheus.clone();
    let rule = off_thread(move || {
        p.wait_for(
            r#"sum(taproot:queries:rate5m{rcode="NOERROR"})"#,
            SEEN_WITHIN,
            |v| v > 0.0,
        )
    })
    .await;
    assert!(
        rule.is_ok(),
        "recording rule: {rule:?}\n{}",
        prometheus.log()
    );
    off_thread(move || drop(prometheus)).await;
    t.stop().await;
}
