//! DNSSEC through a forwarder: taproot forwards `.` to another resolver
//! and still validates every answer itself, asking the forwarder for the
//! DS and DNSKEY sets of the chain of trust, with CD=1 so that the
//! forwarder hands over bogus data for taproot to judge.
//!
//! ```text
//!  client ──► taproot (validating, [[forward]] ".") ──► taproot (validating, walks) ──► signed tree on NSD
//! ```

mod support;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use support::client::{ask_udp, ede_code, recursive};
use support::signed_tree::{SignedTree, Validating};
use taproot::config::ForwardConfig;

fn forward_all(to: std::net::SocketAddr, zone: &str, dnssec: bool) -> ForwardConfig {
    ForwardConfig {
        zone: zone.into(),
        servers: vec![to.to_string()],
        tls_name: String::new(),
        tls_ca_file: String::new(),
        dnssec,
    }
}

async fn ask_do(at: std::net::SocketAddr, name: &str, rtype: RecordType, cd: bool) -> Message {
    let mut q = recursive(name, rtype);
    if let Some(edns) = q.edns.as_mut() {
        edns.set_dnssec_ok(true);
    }
    q.metadata.checking_disabled = cd;
    ask_udp(at, &q).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_through_a_forwarder_are_validated_with_keys_asked_of_the_forwarder() {
    let tree = SignedTree::start().await;
    let upstream = Validating::start(&tree, |_| {}).await;
    // The forwarding taproot has the anchor but no way to the tree except
    // through the forwarder.
    let t = Validating::start(&tree, |c| {
        c.resolver.root_hints_file = String::new();
        c.resolver.root_hints = vec!["127.0.0.254".parse().expect("literal")];
        c.forward = vec![forward_all(upstream.addr, ".", true)];
    })
    .await;
    let secure = ask_do(t.addr, "www.sec.lab.", RecordType::A, false).await;
    assert_eq!(
        secure.metadata.response_code,
        ResponseCode::NoError,
        "{secure:?}"
    );
    assert!(secure.metadata.authentic_data, "validated here: {secure:?}");
    assert!(
        secure
            .answers
            .iter()
            .any(|r| r.record_type() == RecordType::RRSIG),
        "{secure:?}"
    );
    // The forwarder, asked with CD=1, hands over the corrupt signature;
    // taproot finds it bogus itself.
    let passed_on = ask_do(upstream.addr, "www.corrupt.lab.", RecordType::A, true).await;
    assert_eq!(passed_on.metadata.response_code, ResponseCode::NoError);
    let bogus = ask_do(t.addr, "www.corrupt.lab.", RecordType::A, false).await;
    assert_eq!(
        bogus.metadata.response_code,
        ResponseCode::ServFail,
        "{bogus:?}"
    );
    assert_eq!(ede_code(&bogus), Some(6), "DNSSEC Bogus: {bogus:?}");
    // The unsigned delegation is proven insecure through the forwarder too.
    let insecure = ask_do(t.addr, "www.insecure.sec.lab.", RecordType::A, false).await;
    assert_eq!(
        insecure.metadata.response_code,
        ResponseCode::NoError,
        "{insecure:?}"
    );
    assert!(!insecure.metadata.authentic_data, "{insecure:?}");
    t.stop().await;
    upstream.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_zone_with_dnssec_off_is_answered_unvalidated() {
    let tree = SignedTree::start().await;
    let upstream = Validating::start(&tree, |_| {}).await;
    let t = Validating::start(&tree, |c| {
        c.forward = vec![forward_all(upstream.addr, "corrupt.lab.", false)];
    })
    .await;
    let reply = ask_do(t.addr, "www.corrupt.lab.", RecordType::A, false).await;
    assert_eq!(
        reply.metadata.response_code,
        ResponseCode::NoError,
        "{reply:?}"
    );
    assert!(!reply.metadata.authentic_data, "{reply:?}");
    // Outside the zone validation goes on as before.
    let secure = ask_do(t.addr, "www.sec.lab.", RecordType::A, false).await;
    assert!(secure.metadata.authentic_data, "{secure:?}");
    t.stop().await;
    upstream.stop().await;
}
