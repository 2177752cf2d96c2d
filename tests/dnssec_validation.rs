//! DNSSEC validation end to end: taproot resolves through a tree signed at
//! test time by ldns-signzone and served by NSD (see
//! `support::signed_tree`), with the tree's root KSK as its trust anchor.
//! Secure answers get AD, unsigned delegations do not, bogus answers are
//! SERVFAIL with the RFC 8914 reason, DO decides whether RRSIGs and NSECs
//! are shown, CD returns data unchecked, and a validated NSEC range
//! answers later NXDOMAINs without asking the server.

mod support;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use support::client::{self, ask_udp, ede_code};
use support::e2e::{dig, kdig, off_thread};
use support::signed_tree::{SignedTree, Validating};

/// A recursive query; `dnssec_ok` sets DO, `ad` and `cd` the header bits.
fn question(name: &str, rtype: RecordType, dnssec_ok: bool, ad: bool, cd: bool) -> Message {
    let mut q = client::recursive(name, rtype);
    if let Some(edns) = q.edns.as_mut() {
        edns.set_dnssec_ok(dnssec_ok);
    }
    q.metadata.authentic_data = ad;
    q.metadata.checking_disabled = cd;
    q
}

async fn ask(t: &Validating, name: &str, rtype: RecordType, dnssec_ok: bool) -> Message {
    ask_udp(t.addr, &question(name, rtype, dnssec_ok, false, false)).await
}

fn types(reply: &Message) -> Vec<RecordType> {
    reply
        .answers
        .iter()
        .chain(reply.authorities.iter())
        .map(|r| r.record_type())
        .collect()
}

fn has_dnssec_records(reply: &Message) -> bool {
    types(reply)
        .iter()
        .any(|t| matches!(t, RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3))
}

/// Asserts a validated answer: `rcode`, AD as `secure`, and (with DO) RRSIGs shown.
async fn expect(t: &Validating, name: &str, rtype: RecordType, rcode: ResponseCode, secure: bool) {
    let reply = ask(t, name, rtype, true).await;
    assert_eq!(
        reply.metadata.response_code, rcode,
        "{name} {rtype}: {reply:?}"
    );
    assert_eq!(
        reply.metadata.authentic_data, secure,
        "{name} {rtype}: AD should be {secure}: {reply:?}"
    );
    if secure {
        assert!(
            has_dnssec_records(&reply),
            "{name} {rtype}: DO shows the proof: {reply:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secure_answer_gets_ad_and_only_do_clients_get_its_rrsigs() {
    let tree = SignedTree::start().await;
    let t = Validating::start(&tree, |_| {}).await;

    let with_do = ask(&t, "www.sec.lab.", RecordType::A, true).await;
    assert_eq!(with_do.metadata.response_code, ResponseCode::NoError);
    assert!(
        with_do.metadata.authentic_data,
        "secure: AD=1 for DO: {with_do:?}"
    );
    assert_eq!(
        types(&with_do),
        vec![RecordType::A, RecordType::RRSIG],
        "DO shows the RRSIG"
    );
    // The same question without DO: from the cache, no RRSIG, no AD
    // (RFC 6840 §5.8: AD only for a client that sets DO or AD).
    let plain = ask(&t, "www.sec.lab.", RecordType::A, false).await;
    assert_eq!(types(&plain), vec![RecordType::A], "no RRSIG without DO");
    assert!(!plain.metadata.authentic_data, "{plain:?}");
    let ad = ask_udp(
        t.addr,
        &question("www.sec.lab.", RecordType::A, false, true, false),
    )
    .await;
    assert!(ad.metadata.authentic_data, "AD=1 asked, AD=1 given: {ad:?}");
    assert_eq!(types(&ad), vec![RecordType::A]);
    // CD: the client validates itself; no AD.
    let cd = ask_udp(
        t.addr,
        &question("www.sec.lab.", RecordType::A, true, true, true),
    )
    .await;
    assert!(!cd.metadata.authentic_data, "never AD with CD: {cd:?}");
    assert_eq!(cd.metadata.response_code, ResponseCode::NoError);
    // A zone's own key set is an answer like any other.
    expect(
        &t,
        "sec.lab.",
        RecordType::DNSKEY,
        ResponseCode::NoError,
        true,
    )
    .await;
    expect(&t, "sec.lab.", RecordType::DS, ResponseCode::NoError, true).await;
    // A CNAME inside one signed zone: both links secure.
    let alias = ask(&t, "alias.sec.lab.", RecordType::A, true).await;
    assert!(alias.metadata.authentic_data, "{alias:?}");
    assert!(types(&alias).contains(&RecordType::CNAME));
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denials_and_wildcards_are_proven_by_nsec_and_nsec3() {
    let tree = SignedTree::start().await;
    let t = Validating::start(&tree, |_| {}).await;
    for zone in ["sec.lab.", "nsec3.lab."] {
        let nx = format!("nothing.{zone}");
        expect(&t, &nx, RecordType::A, ResponseCode::NXDomain, true).await;
        let www = format!("www.{zone}");
        expect(&t, &www, RecordType::MX, ResponseCode::NoError, true).await;
        let wild = format!("anything.wild.{zone}");
        let reply = ask(&t, &wild, RecordType::A, true).await;
        assert!(
            reply.metadata.authentic_data,
            "{wild}: a proven wildcard: {reply:?}"
        );
        let synthesised = if zone == "sec.lab." {
            "192.0.2.9"
        } else {
            "192.0.2.99"
        };
        assert_eq!(client::first_a(&reply).as_deref(), Some(synthesised));
        expect(&t, &wild, RecordType::TXT, ResponseCode::NoError, true).await;
    }
    // Without DO the denial is shown without its NSECs.
    let plain = ask(&t, "nothing.sec.lab.", RecordType::A, false).await;
    assert_eq!(plain.metadata.response_code, ResponseCode::NXDomain);
    assert!(!has_dnssec_records(&plain), "{plain:?}");
    assert_eq!(types(&plain), vec![RecordType::SOA]);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_delegations_and_unknown_algorithms_are_insecure() {
    let tree = SignedTree::start().await;
    let t = Validating::start(&tree, |c| {
        c.dnssec.negative_trust_anchors = vec!["corrupt.lab".into()];
    })
    .await;
    for name in [
        "www.insecure.sec.lab.",  // no DS, NSEC proves it
        "www.child.optout.lab.",  // inside an NSEC3 opt-out span
        "www.unknownalg.lab.",    // DS with algorithm 200 only
        "www.unknowndigest.lab.", // DS with digest type 200 only
        "www.corrupt.lab.",       // a negative trust anchor
        "nothing.manyiter.lab.",  // NSEC3 with 200 iterations (RFC 9276)
    ] {
        let reply = ask(&t, name, RecordType::A, true).await;
        let rcode = reply.metadata.response_code;
        assert!(
            rcode == ResponseCode::NoError || rcode == ResponseCode::NXDomain,
            "{name}: insecure data is returned: {reply:?}"
        );
        assert!(
            !reply.metadata.authentic_data,
            "{name}: insecure is not AD: {reply:?}"
        );
    }
    let answered = ask(&t, "www.insecure.sec.lab.", RecordType::A, false).await;
    assert_eq!(client::first_a(&answered).as_deref(), Some("192.0.2.4"));
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bogus_answers_are_servfail_naming_the_reason_and_cd_gets_them_unchecked() {
    let tree = SignedTree::start().await;
    let t = Validating::start(&tree, |_| {}).await;
    for (name, rtype, ede) in [
        ("www.corrupt.lab.", RecordType::A, 6),     // DNSSEC Bogus
        ("www.expired.lab.", RecordType::A, 7),     // Signature Expired
        ("www.future.lab.", RecordType::A, 8),      // Signature Not Yet Valid
        ("www.mismatch.lab.", RecordType::A, 9),    // DNSKEY Missing: no key matches the DS
        ("www.unsigned.lab.", RecordType::A, 9),    // DNSKEY Missing: unsigned zone under a DS
        ("www.nosigs.lab.", RecordType::A, 10),     // RRSIGs Missing
        ("nothing.nonsec.lab.", RecordType::A, 12), // NSEC Missing
    ] {
        let reply = ask(&t, name, rtype, true).await;
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::ServFail,
            "{name}: bogus is SERVFAIL: {reply:?}"
        );
        assert_eq!(
            ede_code(&reply),
            Some(ede),
            "{name}: the EDE says why: {reply:?}"
        );
        // CD=1: the data as the server gave it, never AD.
        let cd = ask_udp(t.addr, &question(name, rtype, true, false, true)).await;
        assert_ne!(
            cd.metadata.response_code,
            ResponseCode::ServFail,
            "{name} CD: {cd:?}"
        );
        assert!(!cd.metadata.authentic_data, "{name} CD: {cd:?}");
        // And bogus data was not cached for the clients that validate.
        let again = ask(&t, name, rtype, false).await;
        assert_eq!(
            again.metadata.response_code,
            ResponseCode::ServFail,
            "{name}"
        );
    }
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cname_chain_is_as_secure_as_its_weakest_link() {
    let tree = SignedTree::start().await;
    let t = Validating::start(&tree, |_| {}).await;
    let insecure = ask(&t, "toinsecure.sec.lab.", RecordType::A, true).await;
    assert_eq!(insecure.metadata.response_code, ResponseCode::NoError);
    assert_eq!(client::first_a(&insecure).as_deref(), Some("192.0.2.4"));
    assert!(
        !insecure.metadata.authentic_data,
        "secure → insecure is not AD: {insecure:?}"
    );
    let bogus = ask(&t, "tobogus.sec.lab.", RecordType::A, true).await;
    assert_eq!(
        bogus.metadata.response_code,
        ResponseCode::ServFail,
        "{bogus:?}"
    );
    assert_eq!(ede_code(&bogus), Some(6));
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_set_with_two_ksks_validates_through_the_one_the_parent_lists() {
    let tree = SignedTree::start().await;
    let t = Validating::start(&tree, |_| {}).await;
    expect(
        &t,
        "www.roll.lab.",
        RecordType::A,
        ResponseCode::NoError,
        true,
    )
    .await;
    expect(
        &t,
        "roll.lab.",
        RecordType::DNSKEY,
        ResponseCode::NoError,
        true,
    )
    .await;
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validated_nsec_range_answers_nxdomain_without_asking_the_server() {
    let tree = SignedTree::start().await;
    let t = Validating::start(&tree, |_| {}).await;
    // sec.lab.'s NSEC chain: sec.lab. → alias → insecure → ns → tobogus →
    // toinsecure → *.wild → www. "b" and "c" fall between alias and insecure.
    expect(
        &t,
        "b.sec.lab.",
        RecordType::A,
        ResponseCode::NXDomain,
        true,
    )
    .await;
    assert_eq!(tree.relay.count("b.sec.lab.", RecordType::A), 1);
    let before = tree.relay.total();
    expect(
        &t,
        "c.sec.lab.",
        RecordType::A,
        ResponseCode::NXDomain,
        true,
    )
    .await;
    expect(
        &t,
        "c.sec.lab.",
        RecordType::AAAA,
        ResponseCode::NXDomain,
        true,
    )
    .await;
    let plain = ask(&t, "bb.sec.lab.", RecordType::TXT, false).await;
    assert_eq!(plain.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(
        tree.relay.total(),
        before,
        "names inside a validated NSEC range are denied from it (RFC 8198)"
    );
    // A name outside every range seen still goes to the server.
    expect(
        &t,
        "zz.sec.lab.",
        RecordType::A,
        ResponseCode::NXDomain,
        true,
    )
    .await;
    assert_eq!(tree.relay.count("zz.sec.lab.", RecordType::A), 1);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_and_kdig_see_ad_rrsigs_and_the_reason_for_a_bogus_answer() {
    let tree = SignedTree::start().await;
    let t = Validating::start(&tree, |_| {}).await;
    let addr = t.addr;
    let secure = off_thread(move || dig(addr, &["+dnssec", "www.sec.lab.", "A"])).await;
    assert_eq!(secure.status, "NOERROR", "{}", secure.text);
    assert!(secure.has_flag("ad"), "{}", secure.text);
    assert_eq!(secure.answers("A"), vec!["192.0.2.1"]);
    assert_eq!(secure.answers("RRSIG").len(), 1, "{}", secure.text);
    // dig without +dnssec sets AD in its query by default (RFC 6840 §5.7):
    // AD back, no RRSIG.
    let plain = off_thread(move || dig(addr, &["www.sec.lab.", "A"])).await;
    assert!(plain.has_flag("ad"), "{}", plain.text);
    assert!(plain.answers("RRSIG").is_empty(), "{}", plain.text);
    let bogus = off_thread(move || dig(addr, &["+dnssec", "www.expired.lab.", "A"])).await;
    assert_eq!(bogus.status, "SERVFAIL", "{}", bogus.text);
    assert!(
        bogus.text.contains("EDE: 7"),
        "dig shows the EDE: {}",
        bogus.text
    );
    let unchecked =
        off_thread(move || kdig(addr, &["+dnssec", "+cdflag", "www.expired.lab.", "A"])).await;
    assert_eq!(unchecked.status, "NOERROR", "{}", unchecked.text);
    assert!(!unchecked.has_flag("ad"), "{}", unchecked.text);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dnskey_fetch_that_times_out_is_servfail_but_not_remembered_as_bogus() {
    let tree = SignedTree::start().await;
    let t = Validating::start(&tree, |c| {
        c.resolver.failure_cache_ttl_s = 0;
        c.resolver.upstream_timeout_ms = 300;
    })
    .await;
    tree.relay.swallow(Some(RecordType::DNSKEY));
    let failed = ask(&t, "www.sec.lab.", RecordType::A, true).await;
    assert_eq!(
        failed.metadata.response_code,
        ResponseCode::ServFail,
        "{failed:?}"
    );
    assert_eq!(
        ede_code(&failed),
        Some(22),
        "No Reachable Authority, not DNSKEY Missing: {failed:?}"
    );
    assert!(tree.relay.count("sec.lab.", RecordType::DNSKEY) >= 1);
    // The server answers again: the keys are fetched and the answer is secure.
    tree.relay.swallow(None);
    expect(
        &t,
        "www.sec.lab.",
        RecordType::A,
        ResponseCode::NoError,
        true,
    )
    .await;
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ds_denial_a_referral_carries_spares_the_ds_query() {
    let tree = SignedTree::start().await;
    let t = Validating::start(&tree, |_| {}).await;
    let reply = ask(&t, "www.insecure.sec.lab.", RecordType::A, true).await;
    assert_eq!(client::first_a(&reply).as_deref(), Some("192.0.2.4"));
    assert!(!reply.metadata.authentic_data, "{reply:?}");
    // sec.lab.'s referral to insecure.sec.lab. carried the NSEC proving no
    // DS; checked with sec.lab.'s keys, it makes the zone insecure without
    // asking sec.lab.'s server for the DS set (Unbound saves it too).
    assert_eq!(
        tree.relay.count("insecure.sec.lab.", RecordType::DS),
        0,
        "no DS query for a delegation whose referral proved it unsigned"
    );
    t.stop().await;
}
