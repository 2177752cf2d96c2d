//! Resolution traces over the admin listener (`GET /trace/{name}/{type}`,
//! `GET /trace/recent`), against fake trees on loopback: what a real walk
//! records, in order, and how it is drawn.

mod support;

use std::net::SocketAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::Value;
use support::browser;
use support::client::{self, COKR_IP, EXAMPLE_IP, KR1_IP, KR2_IP, ROOT_IP, ask_udp};
use support::e2e::http;
use support::lab;
use support::tree::{Behaviour, FakeTree};
use support::{Taproot, start_taproot_with_admin};
use taproot::config::Config;

/// Taproot with its metrics and admin listener on a free loopback port.
async fn start(tree: &FakeTree, tweak: impl FnOnce(&mut Config)) -> (Taproot, SocketAddr) {
    start_taproot_with_admin(tree, tweak).await
}

/// `GET path`, which must succeed.
async fn get(admin: SocketAddr, path: &str) -> String {
    let r = http::get_async(admin, path).await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.body
}

/// The JSON trace of (name, type) with `cache` = bypass or use.
async fn json_trace(admin: SocketAddr, name: &str, qtype: &str, cache: &str) -> Value {
    let body = get(
        admin,
        &format!("/trace/{name}/{qtype}?format=json&cache={cache}"),
    )
    .await;
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn events(trace: &Value) -> &Vec<Value> {
    trace["events"].as_array().expect("events is an array")
}

/// The upstream exchanges, in order.
fn exchanges(trace: &Value) -> Vec<&Value> {
    events(trace)
        .iter()
        .filter(|e| e["event"] == "exchange")
        .collect()
}

/// The upstream exchanges with the servers of `zone`, in order.
fn exchanges_at<'t>(trace: &'t Value, zone: &str) -> Vec<&'t Value> {
    exchanges(trace)
        .into_iter()
        .filter(|e| field(e, "zone") == zone)
        .collect()
}

fn field<'a>(event: &'a Value, key: &str) -> &'a str {
    event[key].as_str().unwrap_or("")
}

/// The zones asked, in order, each once (a retry to the same zone is not
/// a new step of the walk).
fn zones_in_order(trace: &Value) -> Vec<String> {
    let mut zones: Vec<String> = Vec::new();
    for e in exchanges(trace) {
        let zone = field(e, "zone").to_string();
        if zones.last() != Some(&zone) {
            zones.push(zone);
        }
    }
    zones
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_trace_asks_root_kr_co_kr_and_the_zone_in_that_order() {
    let tree = client::three_level_tree().await;
    let (t, admin) = start(&tree, |_| {}).await;
    let trace = json_trace(admin, "www.example.co.kr.", "A", "bypass").await;
    assert_eq!(trace["question"]["name"], "www.example.co.kr.");
    assert_eq!(trace["question"]["qtype"], "A");
    assert_eq!(trace["answer"]["rcode"], "NOERROR", "{trace:#}");
    assert_eq!(
        trace["answer"]["records"].as_array().map(Vec::len),
        Some(2),
        "{trace:#}"
    );
    assert_eq!(
        zones_in_order(&trace),
        [".", "kr.", "co.kr.", "example.co.kr."],
        "{trace:#}"
    );
    let kr = [KR1_IP.to_string(), KR2_IP.to_string()];
    for e in exchanges(&trace) {
        for key in ["server", "zone", "qname", "qtype", "rcode"] {
            assert!(e[key].is_string(), "{key} missing in {e}");
        }
        assert!(e["rtt_ms"].is_number(), "rtt_ms missing in {e}");
        let server = field(e, "server");
        let expected_name = match field(e, "zone") {
            "." => {
                assert_eq!(server, ROOT_IP.to_string());
                "a.root-servers.fake."
            }
            "kr." => {
                assert!(kr.contains(&server.to_string()), "{e}");
                if server == KR1_IP.to_string() {
                    "ns1.kr."
                } else {
                    "ns2.kr."
                }
            }
            "co.kr." => {
                assert_eq!(server, COKR_IP.to_string());
                "ns.co.kr."
            }
            "example.co.kr." => {
                assert_eq!(server, EXAMPLE_IP.to_string());
                "ns1.example.co.kr."
            }
            other => panic!("an exchange with an unexpected zone {other}: {e}"),
        };
        assert_eq!(field(e, "server_name"), expected_name, "{e}");
    }
    // The referrals say where each step led.
    let referrals: Vec<&str> = events(&trace)
        .iter()
        .filter(|e| e["event"] == "referral")
        .map(|e| field(e, "zone"))
        .collect();
    assert_eq!(referrals, ["kr.", "co.kr.", "example.co.kr."]);
    // The answer was cached as usual: a client's question is a hit.
    let reply = ask_udp(
        t.addr,
        &client::recursive("www.example.co.kr.", RecordType::A),
    )
    .await;
    assert_eq!(reply.answers.len(), 2);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_that_uses_the_cache_shows_the_hit_and_no_exchange() {
    let tree = client::three_level_tree().await;
    let (t, admin) = start(&tree, |_| {}).await;
    json_trace(admin, "www.example.co.kr.", "A", "bypass").await;
    let asked = tree.query_log().len();
    let trace = json_trace(admin, "www.example.co.kr.", "A", "use").await;
    assert!(exchanges(&trace).is_empty(), "{trace:#}");
    assert_eq!(tree.query_log().len(), asked, "nothing went upstream");
    let hit = events(&trace)
        .iter()
        .find(|e| e["event"] == "cache")
        .expect("a cache lookup");
    assert_eq!(field(hit, "outcome"), "answer", "{trace:#}");
    assert_eq!(trace["answer"]["rcode"], "NOERROR");
    assert_eq!(trace["question"]["cache"], "use");

    // A name in the same zone, with the cache: the walk starts at the
    // closest delegation (the note's third cache case), not at the root.
    let trace = json_trace(admin, "alias.example.co.kr.", "A", "use").await;
    let delegation = events(&trace)
        .iter()
        .find(|e| e["event"] == "cache" && e["outcome"] == "delegation")
        .unwrap_or_else(|| panic!("a closest-delegation lookup: {trace:#}"));
    assert_eq!(field(delegation, "detail"), "example.co.kr.");
    assert_eq!(zones_in_order(&trace), ["example.co.kr."], "{trace:#}");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_glueless_ns_lookup_nests_under_the_step_that_needed_it() {
    let tree = lab::lab_tree().await;
    let (t, admin) = start(&tree, |_| {}).await;
    let trace = json_trace(admin, "www.glueless.kr.", "A", "bypass").await;
    assert_eq!(trace["answer"]["rcode"], "NOERROR", "{trace:#}");
    let all = events(&trace);
    let begin = all
        .iter()
        .position(|e| e["event"] == "sub_begin" && e["reason"] == "glueless")
        .unwrap_or_else(|| panic!("a glueless sub-resolution: {trace:#}"));
    assert_eq!(field(&all[begin], "name"), "ns.provider.lab.");
    let end = all
        .iter()
        .position(|e| e["event"] == "sub_end" && e["reason"] == "glueless")
        .expect("the glueless lookup ends");
    let depth = all[begin]["depth"].as_u64().unwrap_or(99);
    let inside: Vec<&Value> = all[begin + 1..end]
        .iter()
        .filter(|e| e["event"] == "exchange")
        .collect();
    assert!(!inside.is_empty(), "the lookup asked servers: {trace:#}");
    for e in &inside {
        assert_eq!(e["depth"].as_u64(), Some(depth + 1), "nested: {e}");
    }
    assert!(
        inside.iter().any(|e| field(e, "zone") == "provider.lab."),
        "the NS name was resolved at its own zone: {trace:#}"
    );
    // After it, the glueless zone's server is asked at the question's depth.
    let after = all[end + 1..]
        .iter()
        .find(|e| e["event"] == "exchange")
        .expect("the walk goes on");
    assert_eq!(field(after, "zone"), "glueless.kr.");
    assert_eq!(after["depth"].as_u64(), Some(depth));
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cname_to_another_zone_restarts_in_a_nested_resolution() {
    let tree = lab::lab_tree().await;
    let (t, admin) = start(&tree, |_| {}).await;
    let trace = json_trace(admin, "out.example.co.kr.", "A", "bypass").await;
    assert_eq!(trace["answer"]["rcode"], "NOERROR", "{trace:#}");
    let all = events(&trace);
    let restart = all
        .iter()
        .find(|e| e["event"] == "restart")
        .unwrap_or_else(|| panic!("a restart: {trace:#}"));
    assert_eq!(field(restart, "kind"), "cname");
    assert_eq!(field(restart, "from"), "out.example.co.kr.");
    assert_eq!(field(restart, "to"), "www.provider.lab.");
    let begin = all
        .iter()
        .position(|e| e["event"] == "sub_begin" && e["reason"] == "cname")
        .unwrap_or_else(|| panic!("the target's resolution nests: {trace:#}"));
    let nested: Vec<&Value> = all[begin..]
        .iter()
        .filter(|e| e["event"] == "exchange")
        .collect();
    assert!(
        nested
            .iter()
            .any(|e| field(e, "zone") == "provider.lab." && e["depth"].as_u64() == Some(1)),
        "the target's zone is asked inside the nested resolution: {trace:#}"
    );
    assert!(
        all.iter()
            .any(|e| e["event"] == "sub_end" && e["reason"] == "cname")
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minimised_query_shows_the_name_as_sent() {
    let tree = client::three_level_tree().await;
    let (t, admin) = start(&tree, |c| {
        c.resolver.qname_minimisation = true;
        c.resolver.use_0x20 = true;
    })
    .await;
    let trace = json_trace(admin, "www.example.co.kr.", "A", "bypass").await;
    let to_root = exchanges(&trace)
        .into_iter()
        .find(|e| field(e, "zone") == "." && e["qtype"] == "A")
        .unwrap_or_else(|| panic!("a query to the root for the TLD: {trace:#}"));
    // The root is shown the TLD only, in the case 0x20 gave it.
    assert_eq!(field(to_root, "qname").to_ascii_lowercase(), "kr.");
    assert_eq!(to_root["minimised"], true);
    let sent_names: Vec<String> = tree
        .query_log()
        .iter()
        .map(|q| q.name.to_string())
        .collect();
    assert!(
        sent_names.iter().any(|n| n == field(to_root, "qname")),
        "the trace shows the name exactly as the server saw it: {} in {sent_names:?}",
        field(to_root, "qname")
    );
    let full = exchanges(&trace)
        .into_iter()
        .find(|e| field(e, "zone") == "example.co.kr.")
        .expect("the zone is asked");
    assert_eq!(
        field(full, "qname").to_ascii_lowercase(),
        "www.example.co.kr."
    );
    assert_eq!(full["minimised"], false);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_and_its_retry_appear_in_the_trace() {
    let tree = client::three_level_tree().await;
    let (t, admin) = start(&tree, |_| {}).await;
    tree.set_behaviour(EXAMPLE_IP, Behaviour::DropFirst(1));
    let trace = json_trace(admin, "www.example.co.kr.", "A", "bypass").await;
    assert_eq!(trace["answer"]["rcode"], "NOERROR", "{trace:#}");
    let at_zone = exchanges_at(&trace, "example.co.kr.");
    assert!(at_zone.len() >= 2, "{trace:#}");
    assert_eq!(field(at_zone[0], "result"), "timeout");
    assert!(at_zone[0]["rcode"].is_null());
    assert_eq!(at_zone[0]["attempt"].as_u64(), Some(1));
    let answered = at_zone.last().expect("a last exchange");
    assert_eq!(field(answered, "result"), "answer");
    assert_eq!(answered["attempt"].as_u64(), Some(2), "{trace:#}");
    t.stop().await;
}

/// A minimised query that is lost costs the server's RTO, not the longest
/// wait: the walk then asks the full name, which has retries of its own.
/// Waiting the whole `upstream_timeout_ms` there held every name under a
/// wildcard whose minimised query a rate limiter dropped (NSD's default
/// RRL: 260 names a second against Unbound's 2,200, bench/compare.sh).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_minimised_query_waits_an_rto_and_the_full_name_is_asked() {
    let tree = client::three_level_tree().await;
    let (t, admin) = start(&tree, |c| {
        c.resolver.qname_minimisation = true;
        c.resolver.upstream_timeout_ms = 5_000;
    })
    .await;
    tree.set_behaviour(EXAMPLE_IP, Behaviour::DropFirst(1));
    let trace = json_trace(admin, "x.wild.example.co.kr.", "A", "bypass").await;
    assert_eq!(trace["answer"]["rcode"], "NOERROR", "{trace:#}");
    let at_zone = exchanges_at(&trace, "example.co.kr.");
    let lost = at_zone.first().expect("the zone is asked");
    assert_eq!(lost["minimised"], true, "{trace:#}");
    assert_eq!(
        field(lost, "qname").to_ascii_lowercase(),
        "wild.example.co.kr."
    );
    assert_eq!(field(lost, "result"), "timeout", "{trace:#}");
    let waited = lost["timeout_ms"].as_u64().expect("a timeout_ms");
    assert!(
        waited < 5_000,
        "the lost minimised query waited {waited} ms, the longest wait: {trace:#}"
    );
    let answered = at_zone.last().expect("a last exchange");
    assert_eq!(field(answered, "result"), "answer", "{trace:#}");
    assert_eq!(answered["minimised"], false, "{trace:#}");
    assert_eq!(
        field(answered, "qname").to_ascii_lowercase(),
        "x.wild.example.co.kr."
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servfail_keeps_its_trace_in_recent_failures() {
    let tree = client::three_level_tree().await;
    let (t, admin) = start(&tree, |_| {}).await;
    let empty = get(admin, "/trace/recent?format=json").await;
    let empty: Value = serde_json::from_str(&empty).expect("JSON");
    assert_eq!(empty["failures"].as_array().map(Vec::len), Some(0));

    tree.set_behaviour(EXAMPLE_IP, Behaviour::ServFail);
    let reply = ask_udp(
        t.addr,
        &client::recursive("www.example.co.kr.", RecordType::A),
    )
    .await;
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);

    let body = get(admin, "/trace/recent?format=json").await;
    let recent: Value = serde_json::from_str(&body).expect("JSON");
    let failures = recent["failures"].as_array().expect("a list");
    assert_eq!(failures.len(), 1, "{recent:#}");
    let failure = &failures[0];
    assert_eq!(failure["question"]["name"], "www.example.co.kr.");
    assert_eq!(failure["answer"]["rcode"], "SERVFAIL");
    assert_eq!(failure["answer"]["ede"]["code"], 22, "{failure:#}");
    assert!(
        exchanges(failure)
            .iter()
            .any(|e| field(e, "zone") == "example.co.kr." && e["rcode"] == "SERVFAIL"),
        "the failing server's answer is in the trace: {failure:#}"
    );
    // Recorded in case it failed: the path (referrals) and the failure,
    // not the steps a success would have wasted time on.
    assert!(
        events(failure)
            .iter()
            .any(|e| e["event"] == "referral" && e["zone"] == "example.co.kr."),
        "{failure:#}"
    );
    assert!(
        !events(failure).iter().any(|e| e["event"] == "cache"),
        "{failure:#}"
    );
    let text = get(admin, "/trace/recent").await;
    assert!(text.contains("www.example.co.kr."), "{text}");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_keep_failures_zero_nothing_is_kept() {
    let tree = client::three_level_tree().await;
    let (t, admin) = start(&tree, |c| c.trace.keep_failures = 0).await;
    tree.set_behaviour(EXAMPLE_IP, Behaviour::ServFail);
    let reply = ask_udp(
        t.addr,
        &client::recursive("www.example.co.kr.", RecordType::A),
    )
    .await;
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    let body = get(admin, "/trace/recent?format=json").await;
    let recent: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(recent["failures"].as_array().map(Vec::len), Some(0));
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mermaid_starts_with_sequence_diagram_and_lists_servers_in_the_order_first_asked() {
    let tree = client::three_level_tree().await;
    let (t, admin) = start(&tree, |_| {}).await;
    let r = http::get_async(admin, "/trace/www.example.co.kr./A?format=mermaid").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mermaid = r.body;
    assert_eq!(mermaid.lines().next(), Some("sequenceDiagram"), "{mermaid}");
    let participants: Vec<&str> = mermaid
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("participant ") || l.starts_with("actor "))
        .collect();
    assert!(participants.len() >= 6, "{mermaid}");
    assert!(participants[0].contains("Client"), "{mermaid}");
    assert!(participants[1].contains("taproot"), "{mermaid}");
    // Named as an operator reads them, without the root's dot.
    assert!(participants[2].ends_with("a.root-servers.fake 127.0.0.10"));
    assert!(participants[3].contains(".kr 127.0.0.1"), "{mermaid}");
    assert!(participants[4].ends_with("ns.co.kr 127.0.0.13"));
    assert!(participants[5].ends_with("ns1.example.co.kr 127.0.0.14"));
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_trace_requests_get_a_clear_status() {
    let tree = client::three_level_tree().await;
    let (t, admin) = start(&tree, |_| {}).await;
    for (path, status) in [
        ("/trace/www.example.co.kr./NOSUCHTYPE", 400),
        ("/trace/www.example.co.kr./A?format=png", 400),
        ("/trace/www.example.co.kr./A?cache=maybe", 400),
        ("/trace/recent?format=svg", 404),
    ] {
        let r = http::get_async(admin, path).await;
        assert_eq!(r.status, status, "{path}: {}", r.body);
        assert!(!r.body.is_empty(), "{path} says why");
    }
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_answer_only_clients_in_admin_allow() {
    let tree = client::three_level_tree().await;
    let (t, admin) = start(&tree, |c| {
        c.metrics.admin_allow = vec!["10.0.0.0/8".parse().expect("literal")];
    })
    .await;
    for path in ["/trace/www.example.co.kr./A", "/trace/recent"] {
        let r = http::get_async(admin, path).await;
        assert_eq!(r.status, 403, "{path}: {}", r.body);
        assert!(r.body.contains("admin_allow"), "{}", r.body);
    }
    assert!(tree.query_log().is_empty(), "a refused trace walks nothing");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_svg_of_a_real_walk_parses_as_xml_and_the_html_renders_in_chromium() {
    let tree = client::three_level_tree().await;
    let (t, admin) = start(&tree, |_| {}).await;
    let r = http::get_async(admin, "/trace/www.example.co.kr./A?format=svg").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("image/svg+xml"));
    let svg = roxmltree::Document::parse(&r.body)
        .unwrap_or_else(|e| panic!("the SVG is not XML ({e}):\n{}", r.body));
    assert_eq!(svg.root_element().tag_name().name(), "svg");
    for server in ["127.0.0.10", "127.0.0.13", "127.0.0.14"] {
        assert!(r.body.contains(server), "{server} is drawn");
    }

    let r = http::get_async(admin, "/trace/www.example.co.kr./A?format=html&cache=use").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/html"))
    );
    let html = r.body;
    let shot = support::e2e::off_thread(move || browser::Screenshot::of_html(&html)).await;
    shot.assert_not_blank();
    shot.clean_up();
    t.stop().await;
}
