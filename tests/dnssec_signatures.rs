//! The validator's signature and key checks (`taproot::dnssec::verify`)
//! against zones signed at test time with Debian's ldnsutils
//! (`ldns-keygen`, `ldns-signzone`) and served by NSD: what a real signer
//! makes and a real server sends, fetched over TCP with DO=1.
//!
//! Each test signs and serves one zone, `sec.lab.` ([`support::signed`]).

mod support;

use hickory_proto::dnssec::rdata::DS;
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, RecordType};
use support::client;
use support::e2e::{Nsd, TempDir};
use support::signed::{ORIGIN, ZONE, ask_do, keygen, now, serve, sign, signed_zone, zone};
use taproot::dnssec::{Bogus, Link, verify_dnskeys, verify_rrset};

/// The zone's keys proven from `ds`, and the `www` A RRset's check against them.
async fn check_www(nsd: &Nsd, ds: &[DS]) -> Result<u32, Bogus> {
    let keys = ask_do(nsd, ORIGIN, RecordType::DNSKEY).await;
    let link = verify_dnskeys(&zone(), &keys, &keys, ds, &[], now())?;
    let Link::Secure(keyset) = link else {
        panic!("a supported DS set proves the keys or fails");
    };
    let www = ask_do(nsd, "www.sec.lab.", RecordType::A).await;
    verify_rrset(
        &client::name("www.sec.lab."),
        RecordType::A,
        &www,
        &www,
        &keyset,
        now(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rrsets_signed_with_algorithms_8_10_13_14_and_15_verify() {
    for algorithm in [
        "RSASHA256",
        "RSASHA512",
        "ECDSAP256SHA256",
        "ECDSAP384SHA384",
        "ED25519",
    ] {
        let dir = TempDir::new("dnssec");
        let ksk = keygen(dir.path(), ORIGIN, algorithm, true);
        let zsk = keygen(dir.path(), ORIGIN, algorithm, false);
        let nsd = serve(sign(dir.path(), &[], &[&ksk, &zsk]));
        let ttl = check_www(&nsd, &ksk.ds)
            .await
            .unwrap_or_else(|e| panic!("{algorithm}: {e}"));
        assert!(ttl <= 3600 && ttl > 3000, "{algorithm}: TTL {ttl}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_expansion_verifies_with_the_fewer_labels_of_its_signature() {
    let (_dir, ksk, nsd) = signed_zone(&[]);
    let keys = ask_do(&nsd, ORIGIN, RecordType::DNSKEY).await;
    let Ok(Link::Secure(keyset)) = verify_dnskeys(&zone(), &keys, &keys, &ksk.ds, &[], now())
    else {
        panic!("the keys are proven");
    };
    let owner = client::name("anything.wild.sec.lab.");
    let answer = ask_do(&nsd, "anything.wild.sec.lab.", RecordType::A).await;
    assert!(verify_rrset(&owner, RecordType::A, &answer, &answer, &keyset, now()).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_bogus_gets_its_extended_error() {
    let dir = TempDir::new("dnssec");
    let ksk = keygen(dir.path(), ORIGIN, "ECDSAP256SHA256", true);
    let zsk = keygen(dir.path(), ORIGIN, "ECDSAP256SHA256", false);
    let other = keygen(dir.path(), ORIGIN, "ECDSAP256SHA256", true);

    // Expired: EDE 7.
    let nsd = serve(sign(
        dir.path(),
        &["-i", "20200101", "-e", "20200201"],
        &[&ksk, &zsk],
    ));
    let err = check_www(&nsd, &ksk.ds).await.expect_err("expired");
    assert_eq!(err.ede_code(), 7, "{err}");
    drop(nsd);

    // Not yet valid: EDE 8.
    let nsd = serve(sign(
        dir.path(),
        &["-i", "20300101", "-e", "20300201"],
        &[&ksk, &zsk],
    ));
    let err = check_www(&nsd, &ksk.ds).await.expect_err("future");
    assert_eq!(err.ede_code(), 8, "{err}");
    drop(nsd);

    // A DS for a key the zone does not publish: EDE 9.
    let nsd = serve(sign(dir.path(), &[], &[&ksk, &zsk]));
    let err = check_www(&nsd, &other.ds).await.expect_err("DS mismatch");
    assert_eq!(err.ede_code(), 9, "{err}");

    // A corrupted answer (the address changed after signing): EDE 6.
    let keys = ask_do(&nsd, ORIGIN, RecordType::DNSKEY).await;
    let Ok(Link::Secure(keyset)) = verify_dnskeys(&zone(), &keys, &keys, &ksk.ds, &[], now())
    else {
        panic!("the keys are proven");
    };
    let mut www = ask_do(&nsd, "www.sec.lab.", RecordType::A).await;
    for r in &mut www {
        if r.record_type() == RecordType::A {
            r.data = RData::A(A::new(192, 0, 2, 66));
        }
    }
    let owner = client::name("www.sec.lab.");
    let err =
        verify_rrset(&owner, RecordType::A, &www, &www, &keyset, now()).expect_err("corrupted");
    assert_eq!(err.ede_code(), 6, "{err}");
    drop(nsd);

    // An unsigned zone under a DS: EDE 10 (its DNSKEY-less data has no RRSIGs).
    let nsd = serve(ZONE.to_string());
    let www = ask_do(&nsd, "www.sec.lab.", RecordType::A).await;
    let err =
        verify_rrset(&owner, RecordType::A, &www, &www, &keyset, now()).expect_err("unsigned");
    assert_eq!(err.ede_code(), 10, "{err}");
    let keys = ask_do(&nsd, ORIGIN, RecordType::DNSKEY).await;
    let err = verify_dnskeys(&zone(), &keys, &keys, &ksk.ds, &[], now())
        .expect_err("no DNSKEY under a DS");
    assert_eq!(err.ede_code(), 9, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ds_set_of_unknown_digests_or_algorithms_makes_the_zone_insecure() {
    let (_dir, ksk, nsd) = signed_zone(&[]);
    let keys = ask_do(&nsd, ORIGIN, RecordType::DNSKEY).await;
    let real = &ksk.ds[0];
    let unknown_digest = DS::new(
        real.key_tag(),
        real.algorithm(),
        99.into(),
        real.digest().to_vec(),
    );
    let unknown_algorithm = DS::new(
        real.key_tag(),
        hickory_proto::dnssec::Algorithm::from_u8(200),
        real.digest_type(),
        real.digest().to_vec(),
    );
    for ds in [unknown_digest, unknown_algorithm] {
        let link = verify_dnskeys(&zone(), &keys, &keys, &[ds], &[], now()).expect("not bogus");
        assert!(matches!(link, Link::Insecure), "RFC 4035 §5.2: insecure");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ds_of_sha1_sha256_or_sha384_digest_proves_the_keys() {
    use hickory_proto::dnssec::DigestType;
    let (_dir, ksk, nsd) = signed_zone(&[]);
    let keys = ask_do(&nsd, ORIGIN, RecordType::DNSKEY).await;
    let real = &ksk.ds[0];
    let key = keys
        .iter()
        .filter_map(taproot::dnssec::dnskey)
        .find(|k| k.calculate_key_tag().ok() == Some(real.key_tag()))
        .expect("the KSK is published");
    for digest_type in [DigestType::SHA1, DigestType::SHA256, DigestType::SHA384] {
        let digest = key.to_digest(&zone(), digest_type).expect("a digest");
        let ds = DS::new(
            real.key_tag(),
            real.algorithm(),
            digest_type,
            digest.as_ref().to_vec(),
        );
        check_www(&nsd, &[ds])
            .await
            .unwrap_or_else(|e| panic!("{digest_type:?}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_ksk_rollover_the_ds_of_either_key_proves_the_zone() {
    let dir = TempDir::new("dnssec");
    let old = keygen(dir.path(), ORIGIN, "ECDSAP256SHA256", true);
    let new = keygen(dir.path(), ORIGIN, "ECDSAP256SHA256", true);
    let zsk = keygen(dir.path(), ORIGIN, "ECDSAP256SHA256", false);
    // -A: every KSK signs the DNSKEY RRset, as in a double-signature rollover.
    let nsd = serve(sign(dir.path(), &["-A"], &[&old, &new, &zsk]));
    for (which, ds) in [("old", &old.ds), ("new", &new.ds)] {
        check_www(&nsd, ds)
            .await
            .unwrap_or_else(|e| panic!("the {which} KSK's DS: {e}"));
    }
}
