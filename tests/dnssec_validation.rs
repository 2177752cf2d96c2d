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
    // sec.lab.'s NSEC chain: sec.lab. → alias → d → host.ent → insecure →
    // ns → tobogus → toinsecure → *.wild → www. "b" and "c" fall between
    // alias and d.
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

/// The records of `section` of type `rtype`.
fn of_type(section: &[hickory_proto::rr::Record], rtype: RecordType) -> usize {
    section.iter().filter(|r| r.record_type() == rtype).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_keys_of_512_bits_verify_and_a_bad_signature_made_with_one_is_still_bogus() {
    let tree = SignedTree::start().await;
    let t = Validating::start(&tree, |_| {}).await;
    // RFC 5155's own examples use 512-bit RSA keys; ring refuses them.
    expect(
        &t,
        "www.rsa512.lab.",
        RecordType::A,
        ResponseCode::NoError,
        true,
    )
    .await;
    let bad = ask(&t, "www.rsa512bad.lab.", RecordType::A, true).await;
    assert_eq!(
        bad.metadata.response_code,
        ResponseCode::ServFail,
        "{bad:?}"
    );
    assert_eq!(ede_code(&bad), Some(6), "DNSSEC Bogus: {bad:?}");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_line_anchor_file_with_algorithm_mnemonics_validates() {
    let tree = SignedTree::start().await;
    // The root KSK as an operator pastes it: parentheses over three lines,
    // a comment inside them, the algorithm by its mnemonic.
    let line = tree.root_dnskey.split(';').next().unwrap_or_default();
    let fields: Vec<&str> = line.split_whitespace().collect();
    let key = fields.last().expect("a base64 key");
    let (head, tail) = key.split_at(key.len() / 2);
    let text = format!(
        "; the lab's root\n\
         .  3600  IN  DNSKEY  257 3 ECDSAP256SHA256 (\n\
         \t{head} ; first half\n\
         \t{tail}\n\
         \t) ; KSK\n"
    );
    let path = tree.dir().join("root.anchor");
    std::fs::write(&path, text).expect("write the anchor file");
    let t = Validating::start(&tree, |c| {
        c.dnssec.trust_anchor_file = path.display().to_string();
    })
    .await;
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
async fn a_cached_wildcard_answer_keeps_its_proof_for_do_clients() {
    let tree = SignedTree::start().await;
    let t = Validating::start(&tree, |_| {}).await;
    // A client without DO first: the expanded RRset is cached, its proof
    // not shown to that client.
    let plain = ask(&t, "cached.wild.sec.lab.", RecordType::A, false).await;
    assert_eq!(client::first_a(&plain).as_deref(), Some("192.0.2.9"));
    for round in ["first with DO", "cached"] {
        let reply = ask(&t, "cached.wild.sec.lab.", RecordType::A, true).await;
        assert_eq!(client::first_a(&reply).as_deref(), Some("192.0.2.9"));
        assert!(reply.metadata.authentic_data, "{round}: {reply:?}");
        // RFC 4035 §3.1.3.3: the NSEC showing no closer name exists.
        assert_eq!(
            of_type(&reply.authorities, RecordType::NSEC),
            1,
            "{round}: the wildcard's proof is shown: {reply:?}"
        );
    }
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_nsec_whose_next_name_is_below_the_question_proves_nodata_at_an_empty_non_terminal() {
    let tree = SignedTree::start().await;
    let t = Validating::start(&tree, |_| {}).await;
    // sec.lab. holds host.ent but not ent: the NSEC before ent.sec.lab.
    // names host.ent.sec.lab. as next (RFC 4035 §3.1.3.2).
    let reply = ask(&t, "ent.sec.lab.", RecordType::A, true).await;
    assert_eq!(
        reply.metadata.response_code,
        ResponseCode::NoError,
        "{reply:?}"
    );
    assert!(reply.answers.is_empty(), "NODATA: {reply:?}");
    assert!(reply.metadata.authentic_data, "secure: {reply:?}");
    assert_eq!(
        of_type(&reply.authorities, RecordType::NSEC),
        1,
        "{reply:?}"
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dname_applied_twice_verifies_and_a_cname_question_stops_at_the_synthesised_cname() {
    let tree = SignedTree::start().await;
    let t = Validating::start(&tree, |_| {}).await;
    // d.sec.lab. DNAME sec.lab.: www.d.d → www.d → www, the same DNAME twice.
    let twice = ask(&t, "www.d.d.sec.lab.", RecordType::A, true).await;
    assert_eq!(
        twice.metadata.response_code,
        ResponseCode::NoError,
        "{twice:?}"
    );
    assert_eq!(client::first_a(&twice).as_deref(), Some("192.0.2.1"));
    assert!(twice.metadata.authentic_data, "{twice:?}");
    assert_eq!(
        of_type(&twice.answers, RecordType::DNAME),
        1,
        "the DNAME once: {twice:?}"
    );
    // RFC 6672 §3.2: a CNAME question is answered by the synthesised CNAME.
    let cname = ask(&t, "www.d.sec.lab.", RecordType::CNAME, true).await;
    assert_eq!(
        cname.metadata.response_code,
        ResponseCode::NoError,
        "{cname:?}"
    );
    assert!(cname.metadata.authentic_data, "{cname:?}");
    assert_eq!(of_type(&cname.answers, RecordType::DNAME), 1, "{cname:?}");
    assert_eq!(of_type(&cname.answers, RecordType::CNAME), 1, "{cname:?}");
    assert_eq!(
        of_type(&cname.answers, RecordType::A),
        0,
        "no chase: {cname:?}"
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_roots_ds_nodata_is_proven_by_its_apex_nsec() {
    let tree = SignedTree::start().await;
    let t = Validating::start(&tree, |_| {}).await;
    let reply = ask(&t, ".", RecordType::DS, true).await;
    assert_eq!(
        reply.metadata.response_code,
        ResponseCode::NoError,
        "{reply:?}"
    );
    assert!(reply.answers.is_empty(), "{reply:?}");
    assert!(reply.metadata.authentic_data, "secure NODATA: {reply:?}");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_of_rrsigs_alone_never_gets_ad() {
    let tree = SignedTree::start().await;
    let t = Validating::start(&tree, |_| {}).await;
    // The A set is validated first, so the zone's keys are known.
    expect(
        &t,
        "www.sec.lab.",
        RecordType::A,
        ResponseCode::NoError,
        true,
    )
    .await;
    for dnssec_ok in [true, false] {
        let reply = ask(&t, "www.sec.lab.", RecordType::RRSIG, dnssec_ok).await;
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::NoError,
            "{reply:?}"
        );
        assert!(
            of_type(&reply.answers, RecordType::RRSIG) >= 1,
            "the RRSIGs asked for: {reply:?}"
        );
        assert!(
            !reply.metadata.authentic_data,
            "RRSIGs are unsigned: {reply:?}"
        );
    }
    let ad = ask_udp(
        t.addr,
        &question("www.sec.lab.", RecordType::RRSIG, false, true, false),
    )
    .await;
    assert!(!ad.metadata.authentic_data, "{ad:?}");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggressive_nsec_uses_a_delegations_nsec_only_for_names_outside_the_delegation() {
    let tree = SignedTree::start().await;
    let t = Validating::start(&tree, |_| {}).await;
    // j falls between insecure (a delegation: NS, no SOA) and ns.
    expect(
        &t,
        "j.sec.lab.",
        RecordType::A,
        ResponseCode::NXDomain,
        true,
    )
    .await;
    let before = tree.relay.total();
    // k lies in the same span and not below the delegation: Unbound's
    // val_nsec_proves_name_error denies it from the kept NSEC.
    expect(
        &t,
        "k.sec.lab.",
        RecordType::A,
        ResponseCode::NXDomain,
        true,
    )
    .await;
    assert_eq!(
        tree.relay.total(),
        before,
        "k.sec.lab. is denied from the kept NSEC (RFC 8198)"
    );
    // A name below the delegation sorts into the same span, but the NSEC
    // is the parent's: it says nothing of the child (RFC 6840 §4.1).
    let child = ask(&t, "www.insecure.sec.lab.", RecordType::A, true).await;
    assert_eq!(
        child.metadata.response_code,
        ResponseCode::NoError,
        "{child:?}"
    );
    assert_eq!(client::first_a(&child).as_deref(), Some("192.0.2.4"));
    t.stop().await;
}

/// `split.lab.` has two servers; the first sends www's A RRset with a
/// broken signature, the second serves it right. `splitkeys.lab.` too, but
/// its first server serves the zone signed with keys its DS does not name
/// (a DNSKEY set that does not prove, then data signed by it). As in
/// Unbound and Knot, bogus data or keys send the question to the zone's
/// other server (leaving out the first for the rest of the question), and
/// the client gets the good data with AD, not SERVFAIL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bogus_data_or_keys_from_one_server_are_asked_again_of_the_zones_other_server() {
    use std::net::IpAddr;
    use std::time::Duration;
    let tree = SignedTree::start().await;
    let t = Validating::start(&tree, |_| {}).await;
    for (name, bad, good, want) in [
        ("www.split.lab.", 21, 22, "192.0.2.21"),
        ("www.splitkeys.lab.", 23, 24, "192.0.2.23"),
    ] {
        let (bad, good) = (
            IpAddr::V4(support::signed_tree::ip(bad)),
            IpAddr::V4(support::signed_tree::ip(good)),
        );
        // The broken server looks the fastest, so it is asked first.
        let infra = &t.running.handler.resolver.infra;
        infra.record_rtt(bad, Duration::from_millis(1));
        infra.record_rtt(good, Duration::from_millis(300));
        let reply = ask(&t, name, RecordType::A, true).await;
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::NoError,
            "{name}: {reply:?}"
        );
        assert!(reply.metadata.authentic_data, "{name}: {reply:?}");
        assert_eq!(client::first_a(&reply).as_deref(), Some(want));
        let asked_bad = infra.stats(bad);
        assert!(
            asked_bad
                .srtt_ms
                .is_some_and(|ms| (ms - 1.0).abs() > f64::EPSILON),
            "{name}: the broken server was asked first: {asked_bad:?}"
        );
    }
    t.stop().await;
}

/// Entries in taproot's shared store (answers and RRsets).
fn stored(t: &Validating) -> u64 {
    let usage = t.running.handler.cache.usage();
    usage.answer_entries + usage.record_entries
}

/// Proofs answers share (see `cache::tails`).
fn shared_tails(t: &Validating) -> u64 {
    t.running.handler.cache.usage().shared_tails
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn do_and_plain_clients_asking_a_signed_name_share_one_entry() {
    let tree = SignedTree::start().await;
    let t = Validating::start(&tree, |_| {}).await;
    // The zone's keys, cut and wildcard proof are cached by the first
    // names; the names after them must each add one entry, whichever
    // client asks first, not one for DO and one without.
    for (kind, rcode) in [
        ("wildcard", ResponseCode::NoError),
        ("nxdomain", ResponseCode::NXDomain),
    ] {
        let name = |i: usize| match kind {
            "wildcard" => format!("n{i}.wild.sec.lab."),
            _ => format!("nx{i}.sec.lab."),
        };
        let (mut before, mut tails_before) = (0, 0);
        for i in 0..12 {
            if i == 4 {
                before = stored(&t);
                tails_before = shared_tails(&t);
            }
            let first_do = i % 2 == 0;
            let first = ask(&t, &name(i), RecordType::A, first_do).await;
            let second = ask(&t, &name(i), RecordType::A, !first_do).await;
            let (with_do, plain) = if first_do {
                (first, second)
            } else {
                (second, first)
            };
            for reply in [&with_do, &plain] {
                assert_eq!(reply.metadata.response_code, rcode, "{reply:?}");
            }
            assert!(with_do.metadata.authentic_data, "{with_do:?}");
            assert!(
                !plain.metadata.authentic_data,
                "RFC 6840 §5.8: no AD for a client that set neither DO nor AD: {plain:?}"
            );
            assert!(!has_dnssec_records(&plain), "{plain:?}");
            assert!(
                of_type(&with_do.authorities, RecordType::NSEC) > 0
                    && of_type(&with_do.authorities, RecordType::RRSIG) > 0,
                "DO: the proof and its signatures: {with_do:?}"
            );
            match kind {
                "wildcard" => {
                    assert_eq!(
                        types(&with_do)[..2],
                        [RecordType::A, RecordType::RRSIG],
                        "{with_do:?}"
                    );
                    assert_eq!(types(&plain), vec![RecordType::A], "{plain:?}");
                    assert_eq!(client::first_a(&plain).as_deref(), Some("192.0.2.9"));
                }
                _ => {
                    assert!(with_do.answers.is_empty(), "{with_do:?}");
                    assert_eq!(types(&plain), vec![RecordType::SOA], "{plain:?}");
                }
            }
        }
        let added = stored(&t) - before;
        assert_eq!(added, 8, "{kind}: 8 names asked with and without DO");
        // Every name under the wildcard ends with the same RRSIG and NSEC
        // proof: the entries refer to one copy, made for the first name.
        if kind == "wildcard" {
            assert!(tails_before >= 1, "the first names' proof is shared");
            assert_eq!(
                shared_tails(&t),
                tails_before,
                "8 more names under the wildcard share the proof already held"
            );
        }
    }
    t.stop().await;
}
