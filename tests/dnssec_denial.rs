//! Authenticated denial (`taproot::dnssec::denial`) against zones signed
//! with NSEC and with NSEC3 by ldns-signzone and served by NSD: NXDOMAIN,
//! NODATA, wildcard NODATA and an unsigned delegation, each proven from
//! the authority section NSD sends after its RRSIGs are verified; proofs
//! for another name rejected; NSEC3 opt-out and RFC 9276's iteration cap.

mod support;

use hickory_proto::op::Message;
use hickory_proto::rr::{Name, Record, RecordType};
use support::client;
use support::e2e::Nsd;
use support::signed::{Key, ORIGIN, ask_do, ask_signed, now, signed_zone, zone};
use taproot::dnssec::denial::DEFAULT_MAX_NSEC3_ITERATIONS;
use taproot::dnssec::{Denied, KeySet, Link, Proof, nsec_proof, nsec3_proof};
use taproot::dnssec::{verify_dnskeys, verify_rrset};

async fn proven_keys(nsd: &Nsd, ksk: &Key) -> KeySet {
    let keys = ask_do(nsd, ORIGIN, RecordType::DNSKEY).await;
    match verify_dnskeys(&zone(), &keys, &keys, &ksk.ds, &[], now()) {
        Ok(Link::Secure(keyset)) => keyset,
        other => panic!("the zone's keys are proven: {other:?}"),
    }
}

/// The negative answer to (name, type), its NSEC/NSEC3 RRsets verified.
async fn verified_negative(nsd: &Nsd, keys: &KeySet, name: &str, rtype: RecordType) -> Message {
    let reply = ask_signed(nsd, name, rtype).await;
    assert!(reply.answers.is_empty(), "{name} {rtype} is negative");
    for r in &reply.authorities {
        if matches!(r.record_type(), RecordType::NSEC | RecordType::NSEC3) {
            verify_rrset(
                &r.name,
                r.record_type(),
                &reply.authorities,
                &reply.authorities,
                keys,
                now(),
            )
            .unwrap_or_else(|e| panic!("{} {}: {e}", r.name, r.record_type()));
        }
    }
    reply
}

fn name(s: &str) -> Name {
    client::name(s)
}

/// What each kind of chain must prove: NXDOMAIN, NODATA, wildcard NODATA,
/// and the absence of DS at an unsigned delegation.
const DENIALS: [(&str, RecordType, Denied); 4] = [
    ("nope.sec.lab.", RecordType::A, Denied::Name),
    ("www.sec.lab.", RecordType::MX, Denied::Type(RecordType::MX)),
    (
        "x.wild.sec.lab.",
        RecordType::MX,
        Denied::Type(RecordType::MX),
    ),
    (
        "insecure.sec.lab.",
        RecordType::DS,
        Denied::Type(RecordType::DS),
    ),
];

/// Signs the zone with `flags`, then checks with `prove` that each of
/// [`DENIALS`] is proven from NSD's answer, and that a proof is not taken
/// for another name or type: the NXDOMAIN proof for nope.sec.lab. says
/// nothing of www.sec.lab., and the NODATA proof for MX does not deny A.
async fn every_denial_is_proven_and_only_for_its_question(
    flags: &[&str],
    prove: impl Fn(&Name, Denied, &[Record]) -> Proof,
) {
    let (_dir, ksk, nsd) = signed_zone(flags);
    let keys = proven_keys(&nsd, &ksk).await;
    for (qname, rtype, denied) in DENIALS {
        let reply = verified_negative(&nsd, &keys, qname, rtype).await;
        assert_eq!(
            prove(&name(qname), denied, &reply.authorities),
            Proof::Proven,
            "{qname} {rtype}"
        );
    }
    let nx = verified_negative(&nsd, &keys, "nope.sec.lab.", RecordType::A).await;
    assert!(matches!(
        prove(&name("www.sec.lab."), Denied::Name, &nx.authorities),
        Proof::Missing(_)
    ));
    let nodata = verified_negative(&nsd, &keys, "www.sec.lab.", RecordType::MX).await;
    assert!(matches!(
        prove(
            &name("www.sec.lab."),
            Denied::Type(RecordType::A),
            &nodata.authorities
        ),
        Proof::Missing(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nsec_proves_nxdomain_nodata_wildcard_nodata_and_an_unsigned_delegation() {
    every_denial_is_proven_and_only_for_its_question(&[], |qname, denied, records| {
        nsec_proof(qname, denied, records, &zone())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nsec3_proves_nxdomain_nodata_wildcard_nodata_and_an_unsigned_delegation() {
    every_denial_is_proven_and_only_for_its_question(
        &["-n", "-t", "5", "-s", "c0ffee"],
        |qname, denied, records| {
            nsec3_proof(
                qname,
                denied,
                records,
                &zone(),
                DEFAULT_MAX_NSEC3_ITERATIONS,
            )
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_opt_out_a_name_only_covered_is_insecure_and_a_matched_delegation_proven() {
    let (_dir, ksk, nsd) = signed_zone(&["-n", "-p", "-t", "0"]);
    let keys = proven_keys(&nsd, &ksk).await;
    let max = DEFAULT_MAX_NSEC3_ITERATIONS;
    // RFC 5155 §9.2: an opt-out span may hide unsigned delegations, so a
    // name it only covers is not proven absent: insecure.
    let nx = verified_negative(&nsd, &keys, "nothere.sec.lab.", RecordType::DS).await;
    let covered = nsec3_proof(
        &name("nothere.sec.lab."),
        Denied::Name,
        &nx.authorities,
        &zone(),
        max,
    );
    assert_eq!(covered, Proof::OptOut);
    // ldns-signzone still gives the unsigned delegation its own NSEC3,
    // which proves the DS absent outright.
    let ds = verified_negative(&nsd, &keys, "insecure.sec.lab.", RecordType::DS).await;
    let matched = nsec3_proof(
        &name("insecure.sec.lab."),
        Denied::Type(RecordType::DS),
        &ds.authorities,
        &zone(),
        max,
    );
    assert_eq!(matched, Proof::Proven);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_nsec3_chain_with_more_than_150_iterations_proves_nothing() {
    let (_dir, ksk, nsd) = signed_zone(&["-n", "-t", "200"]);
    let keys = proven_keys(&nsd, &ksk).await;
    let reply = verified_negative(&nsd, &keys, "nope.sec.lab.", RecordType::A).await;
    let proof = nsec3_proof(
        &name("nope.sec.lab."),
        Denied::Name,
        &reply.authorities,
        &zone(),
        DEFAULT_MAX_NSEC3_ITERATIONS,
    );
    assert_eq!(proof, Proof::TooManyIterations(200));
}
