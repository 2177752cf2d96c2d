//! The cache-hit fast path renders from the same stored wire bytes as the
//! miss path: a hit is byte-identical to the first answer but for the ID and
//! the TTLs, which are decremented.

mod support;

use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use support::client::{self, exchange_udp_raw};
use support::lab::lab_tree;
use support::start_taproot;

/// Zeroes the ID and every TTL of a response, for comparing bytes.
fn without_id_and_ttls(mut raw: Vec<u8>) -> Vec<u8> {
    raw[0] = 0;
    raw[1] = 0;
    let (offsets, _) = taproot::wire::ttl_offsets(&raw).expect("walks");
    for off in offsets {
        let at = off as usize;
        raw[at..at + 4].copy_from_slice(&[0, 0, 0, 0]);
    }
    raw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_path_hit_is_byte_identical_to_the_miss_but_for_id_and_ttls() {
    let tree = lab_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    for (qname, rtype) in [
        ("out.example.co.kr.", RecordType::A),
        ("nope.example.co.kr.", RecordType::A),
        ("www.provider.lab.", RecordType::TXT),
    ] {
        let mut q = client::query(qname, rtype);
        q.metadata.recursion_desired = true;
        let miss = exchange_udp_raw(t.addr, &q.to_vec().expect("encode"), Duration::from_secs(3))
            .await
            .expect("miss answered");
        tree.reset_counts();
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        q.metadata.id = q.metadata.id.wrapping_add(7);
        let hit = exchange_udp_raw(t.addr, &q.to_vec().expect("encode"), Duration::from_secs(3))
            .await
            .expect("hit answered");
        assert_eq!(tree.total_queries(), 0, "{qname}: a hit");
        assert_eq!(u16::from_be_bytes([hit[0], hit[1]]), q.metadata.id);
        assert_eq!(
            without_id_and_ttls(miss.clone()),
            without_id_and_ttls(hit.clone()),
            "{qname}"
        );
        let (m1, m2) = (
            Message::from_vec(&miss).expect("decodes"),
            Message::from_vec(&hit).expect("decodes"),
        );
        let ttls = |m: &Message| {
            m.answers
                .iter()
                .chain(&m.authorities)
                .map(|r| r.ttl)
                .collect::<Vec<_>>()
        };
        for (a, b) in ttls(&m1).into_iter().zip(ttls(&m2)) {
            assert!(b < a, "{qname}: TTL decremented ({a} then {b})");
        }
    }
    t.stop().await;
}
