//! The upstream-response path: raw bytes as if an authoritative server for
//! `example.co.kr.` had sent them in answer to `www.example.co.kr. A`. They
//! go through what the walk does before caching — parse, scrub (iter_scrub's
//! job), classify, and the driver's own `on_response` rules, for a full and
//! a minimised query — and what the driver would cache is cached. Whatever
//! the bytes: no panic, and nothing outside the server's bailiwick reaches
//! the cache (an upward NS set may pass the scrubber, but only into a lame
//! verdict); a referral leads strictly down.
//!
//! `cargo fuzz run upstream_response -- -max_total_time=600`
#![no_main]

use std::sync::OnceLock;

use hickory_proto::op::Message;
use hickory_proto::rr::{Name, Record, RecordType};
use libfuzzer_sys::fuzz_target;
use taproot::cache::{Cache, Rank};
use taproot::clock::Clock;
use taproot::config::CacheConfig;
use taproot::resolve::classify::{Classified, classify};
use taproot::resolve::response::{Next, Position, Reply, Step, on_response};
use taproot::resolve::scrub::scrub;

struct Fixture {
    zone: Name,
    qname: Name,
    cache: Cache,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| Fixture {
        zone: Name::from_ascii("example.co.kr.").expect("literal"),
        qname: Name::from_ascii("www.example.co.kr.").expect("literal"),
        cache: Cache::new(
            &CacheConfig {
                size_mb: 16,
                ..CacheConfig::default()
            },
            Clock::system(),
        ),
    })
}

fn assert_in_bailiwick(records: &[Record], zone: &Name) {
    for r in records {
        assert!(
            zone.zone_of(&r.name),
            "{} is outside {zone} and must never be cached",
            r.name
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Ok(mut msg) = Message::from_vec(data) else {
        return;
    };
    scrub(&mut msg, &f.qname, &f.zone);
    assert_in_bailiwick(&msg.answers, &f.zone);
    assert_in_bailiwick(&msg.additionals, &f.zone);
    // The one thing the scrubber lets through from outside the zone: an
    // upward NS set, kept so the answer is classified lame (and not cached).
    let upward = msg.authorities.iter().any(|r| !f.zone.zone_of(&r.name));
    for r in msg.authorities.iter().filter(|r| !f.zone.zone_of(&r.name)) {
        assert!(
            r.record_type() == RecordType::NS && r.name.zone_of(&f.zone),
            "only an upward NS set may stay outside the zone, not {} {}",
            r.name,
            r.record_type()
        );
    }
    let classified = classify(&msg, &f.qname, RecordType::A, &f.zone);
    if upward {
        assert!(
            matches!(classified, Classified::Lame(_)),
            "an upward NS set makes the answer lame: {classified:?}"
        );
        assert!(msg.additionals.is_empty(), "and takes no glue with it");
    }
    let aa = msg.metadata.authoritative;
    for minimised in [false, true] {
        let reply = Reply {
            classified: classified.clone(),
            aa,
            server: std::net::IpAddr::from([127, 0, 0, 1]),
            additionals: msg.additionals.clone(),
        };
        let at = Position {
            zone: f.zone.clone(),
            referrals: 0,
            max_referrals: 16,
            minimised,
        };
        cache_what_the_driver_would(f, on_response(reply, &at));
    }
});

fn cache_what_the_driver_would(f: &Fixture, next: Next) {
    let cache = |records: &[Record], rank| {
        assert_in_bailiwick(records, &f.zone);
        f.cache
            .store_rrsets(records, rank, taproot::dnssec::Security::Indeterminate);
    };
    match next {
        Next::Descend {
            zone,
            ns,
            glue,
            proof,
        } => {
            assert_in_bailiwick(&proof, &f.zone);
            assert!(
                zone != f.zone && f.zone.zone_of(&zone),
                "a referral leads strictly down: {zone}"
            );
            cache(&ns, Rank::Referral);
            cache(&glue, Rank::Additional);
        }
        Next::Finish(found) => {
            assert_eq!(found.zone, f.zone, "an answer belongs to the cut asked");
            match found.step {
                Step::Answer {
                    chain,
                    rrset,
                    proof,
                } => {
                    assert_in_bailiwick(&proof, &f.zone);
                    cache(&chain, found.rank);
                    cache(&rrset, found.rank);
                }
                Step::Cname { chain, .. } => cache(&chain, found.rank),
                Step::Negative {
                    chain, soa, proof, ..
                } => {
                    cache(&chain, found.rank);
                    assert_in_bailiwick(&proof, &f.zone);
                    if let Some(soa) = soa {
                        assert_in_bailiwick(std::slice::from_ref(&soa), &f.zone);
                    }
                }
            }
        }
        Next::Minimise(_) | Next::Fail(_) => {}
    }
}
