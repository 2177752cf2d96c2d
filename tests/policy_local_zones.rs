//! Local zones over real sockets: each Unbound zone type, the RFC 6761 /
//! RFC 6303 default zones, a configured zone replacing a default, and a
//! transparent zone's other names resolved from the fake tree.

mod support;

use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use support::client::{self, addresses, ask_udp, ask_udp_within, three_level_tree};
use support::{Taproot, metric, start_taproot};
use taproot::config::{LocalZoneConfig, LocalZoneType};

fn zone(name: &str, kind: LocalZoneType, records: &[&str]) -> LocalZoneConfig {
    LocalZoneConfig {
        zone: name.into(),
        kind,
        records: records.iter().map(|r| r.to_string()).collect(),
    }
}

async fn start_with(zones: Vec<LocalZoneConfig>) -> (support::tree::FakeTree, Taproot) {
    let tree = three_level_tree().await;
    let t = start_taproot(&tree, move |c| c.local_zone = zones).await;
    (tree, t)
}

async fn ask(t: &Taproot, name: &str, rtype: RecordType) -> Message {
    ask_udp(t.addr, &client::recursive(name, rtype)).await
}

fn has_soa(reply: &Message) -> bool {
    reply
        .authorities
        .iter()
        .any(|r| r.record_type() == RecordType::SOA)
}

#[tokio::test]
async fn a_static_zone_answers_its_records_and_denies_other_names_with_its_soa() {
    let (tree, t) = start_with(vec![zone(
        "home.arpa",
        LocalZoneType::Static,
        &[
            "nas.home.arpa. 3600 IN A 192.168.1.10",
            "printer A 192.168.1.11",
        ],
    )])
    .await;
    let r = ask(&t, "NAS.home.arpa.", RecordType::A).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(r.metadata.authoritative, "local answers are authoritative");
    assert!(r.metadata.recursion_available);
    assert_eq!(addresses(&r), ["192.168.1.10"]);
    assert_eq!(
        r.queries[0].name().to_ascii(),
        "NAS.home.arpa.",
        "the question is echoed as spelled"
    );
    assert_eq!(
        addresses(&ask(&t, "printer.home.arpa.", RecordType::A).await),
        ["192.168.1.11"]
    );
    let r = ask(&t, "nas.home.arpa.", RecordType::AAAA).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(
        r.answers.is_empty() && has_soa(&r),
        "NODATA with the SOA: {r:?}"
    );
    let r = ask(&t, "other.home.arpa.", RecordType::A).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    assert!(r.metadata.authoritative && has_soa(&r), "{r:?}");
    let text = t.metrics_text();
    assert_eq!(
        metric(
            &text,
            "taproot_policy_hits_total{action=\"static\",zone=\"home.arpa\"}"
        ),
        4.0,
        "{text}"
    );
    assert!(
        !tree.query_log().iter().any(|q| q
            .name
            .to_ascii()
            .to_ascii_lowercase()
            .ends_with("home.arpa.")),
        "local names never go upstream"
    );
    t.stop().await;
}

#[tokio::test]
async fn a_transparent_zone_answers_its_records_and_resolves_the_rest() {
    let (tree, t) = start_with(vec![zone(
        "example.co.kr",
        LocalZoneType::Transparent,
        &["local A 192.0.2.44"],
    )])
    .await;
    let r = ask(&t, "local.example.co.kr.", RecordType::A).await;
    assert!(r.metadata.authoritative);
    assert_eq!(addresses(&r), ["192.0.2.44"]);
    let r = ask(&t, "local.example.co.kr.", RecordType::TXT).await;
    assert!(
        r.answers.is_empty(),
        "a local name's other types are NODATA"
    );
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    let r = ask(&t, "www.example.co.kr.", RecordType::A).await;
    assert!(!r.metadata.authoritative, "resolved, not local");
    assert_eq!(addresses(&r), ["127.1.0.1", "127.1.0.2"]);
    assert!(
        tree.query_log()
            .iter()
            .any(|q| q.name.to_ascii().eq_ignore_ascii_case("www.example.co.kr.")),
        "the fake tree was asked"
    );
    t.stop().await;
}

#[tokio::test]
async fn a_redirect_zone_answers_every_name_below_with_the_apex_records() {
    let (_tree, t) = start_with(vec![zone(
        "portal.example",
        LocalZoneType::Redirect,
        &["portal.example. 60 IN A 192.0.2.80"],
    )])
    .await;
    let r = ask(&t, "a.b.portal.example.", RecordType::A).await;
    assert!(r.metadata.authoritative);
    assert_eq!(addresses(&r), ["192.0.2.80"]);
    assert_eq!(r.answers[0].name.to_ascii(), "a.b.portal.example.");
    t.stop().await;
}

#[tokio::test]
async fn refuse_deny_always_nxdomain_and_always_nodata_do_what_they_say() {
    let (_tree, t) = start_with(vec![
        zone("refused.example", LocalZoneType::Refuse, &[]),
        zone("denied.example", LocalZoneType::Deny, &[]),
        zone(
            "nx.example",
            LocalZoneType::AlwaysNxdomain,
            &["a A 192.0.2.1"],
        ),
        zone(
            "nd.example",
            LocalZoneType::AlwaysNodata,
            &["a A 192.0.2.1"],
        ),
    ])
    .await;
    let r = ask(&t, "x.refused.example.", RecordType::A).await;
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    let silent = ask_udp_within(
        t.addr,
        &client::recursive("x.denied.example.", RecordType::A),
        Duration::from_millis(500),
    )
    .await;
    assert!(silent.is_none(), "deny sends nothing: {silent:?}");
    let r = ask(&t, "a.nx.example.", RecordType::A).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    assert!(r.answers.is_empty());
    let r = ask(&t, "a.nd.example.", RecordType::A).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(r.answers.is_empty());
    let text = t.metrics_text();
    assert_eq!(
        metric(&text, "taproot_dropped_total{reason=\"policy\"}"),
        1.0,
        "{text}"
    );
    t.stop().await;
}

#[tokio::test]
async fn the_special_use_names_have_their_default_zones() {
    let (_tree, t) = start_with(vec![]).await;
    let r = ask(&t, "localhost.", RecordType::A).await;
    assert!(r.metadata.authoritative);
    assert_eq!(addresses(&r), ["127.0.0.1"]);
    assert_eq!(
        addresses(&ask(&t, "localhost.", RecordType::AAAA).await),
        ["::1"]
    );
    let r = ask(&t, "1.0.0.127.in-addr.arpa.", RecordType::PTR).await;
    assert!(
        matches!(&r.answers[..], [rr] if matches!(&rr.data, RData::PTR(p) if p.0.to_ascii() == "localhost.")),
        "{r:?}"
    );
    for name in [
        "4.3.2.10.in-addr.arpa.",
        "1.1.168.192.in-addr.arpa.",
        "a.test.",
        "host.invalid.",
        "x.onion.",
        "printer.home.arpa.",
    ] {
        let r = ask(&t, name, RecordType::PTR).await;
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain, "{name}");
        assert!(r.metadata.authoritative && has_soa(&r), "{name}: {r:?}");
    }
    t.stop().await;
}

#[tokio::test]
async fn a_configured_zone_replaces_a_default_and_nodefault_removes_one() {
    let (_tree, t) = start_with(vec![
        zone(
            "localhost",
            LocalZoneType::Static,
            &["localhost. A 127.0.0.2"],
        ),
        zone("10.in-addr.arpa", LocalZoneType::Nodefault, &[]),
    ])
    .await;
    assert_eq!(
        addresses(&ask(&t, "localhost.", RecordType::A).await),
        ["127.0.0.2"]
    );
    let r = ask(&t, "localhost.", RecordType::AAAA).await;
    assert!(r.answers.is_empty(), "the default's AAAA is gone: {r:?}");
    // Resolved: the fake root knows no arpa., and says so itself.
    let r = ask(&t, "4.3.2.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    assert!(!r.metadata.authoritative, "not a local answer: {r:?}");
    t.stop().await;
}

#[tokio::test]
async fn a_local_answer_too_big_for_udp_is_truncated() {
    let records: Vec<String> = (0..20)
        .map(|i| format!("big TXT \"{}{i}\"", "x".repeat(60)))
        .collect();
    let records: Vec<&str> = records.iter().map(String::as_str).collect();
    let (_tree, t) = start_with(vec![zone("big.example", LocalZoneType::Static, &records)]).await;
    let r = ask_udp(
        t.addr,
        &client::plain_query("big.big.example.", RecordType::TXT),
    )
    .await;
    assert!(r.metadata.truncation, "{r:?}");
    assert!(r.answers.is_empty());
    let r = support::client::ask_tcp(
        t.addr,
        &client::recursive("big.big.example.", RecordType::TXT),
    )
    .await;
    assert_eq!(r.answers.len(), 20, "TCP carries it all");
    t.stop().await;
}

#[tokio::test]
async fn referral_mode_obeys_local_zones() {
    let tree = three_level_tree().await;
    let t = start_taproot(&tree, |c| {
        c.local_zone = vec![zone(
            "home.arpa",
            LocalZoneType::Static,
            &["nas A 192.0.2.9"],
        )];
    })
    .await;
    // RD=0: referral mode.
    let r = ask_udp(t.addr, &client::query("nas.home.arpa.", RecordType::A)).await;
    assert_eq!(addresses(&r), ["192.0.2.9"]);
    assert!(r.metadata.authoritative);
    t.stop().await;
}
