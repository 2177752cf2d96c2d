//! The validator's signature and key checks (`taproot::dnssec::verify`)
//! against zones signed at test time with Debian's ldnsutils
//! (`ldns-keygen`, `ldns-signzone`) and served by NSD: what a real signer
//! makes and a real server sends, fetched over TCP with DO=1.
//!
//! Each test builds one zone, `sec.lab.`, on 127.0.12.1:
//!
//! ```text
//! sec.lab.   SOA, NS ns, DNSKEY (KSK + ZSK), RRSIGs
//! ns         A 127.0.12.1
//! www        A 192.0.2.1
//! *.wild     A 192.0.2.9
//! ```

mod support;

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::dnssec::rdata::DS;
use hickory_proto::op::Message;
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use support::client::{self, ask_tcp};
use support::e2e::{Nsd, TempDir, Zone, tool};
use taproot::dnssec::{Bogus, Link, TrustAnchors, verify_dnskeys, verify_rrset};

const SERVER: Ipv4Addr = Ipv4Addr::new(127, 0, 12, 1);
const ORIGIN: &str = "sec.lab.";

const ZONE: &str = "$ORIGIN sec.lab.\n\
$TTL 3600\n\
@       IN SOA ns hostmaster 1 3600 600 86400 300\n\
@       IN NS  ns\n\
ns      IN A   127.0.12.1\n\
www     IN A   192.0.2.1\n\
*.wild  IN A   192.0.2.9\n";

/// A key made by `ldns-keygen` in `dir`: its base name and, for a KSK, its DS.
struct Key {
    base: String,
    ds: Vec<DS>,
}

fn run(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(tool(program))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program} cannot run: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn keygen(dir: &Path, algorithm: &str, ksk: bool) -> Key {
    let mut args = vec!["-a", algorithm, "-r", "/dev/urandom"];
    if algorithm.starts_with("RSA") {
        args.extend(["-b", "1024"]);
    }
    if ksk {
        args.push("-k");
    }
    args.push(ORIGIN);
    let base = run(dir, "ldns-keygen", &args);
    let ds = if ksk {
        let path = dir.join(format!("{base}.ds"));
        let text = std::fs::read_to_string(&path).expect("ldns-keygen wrote the DS");
        TrustAnchors::parse(&text, &path.display().to_string())
            .expect("ldns's DS line parses as an anchor")
            .ds
            .into_iter()
            .map(|(_, ds)| ds)
            .collect()
    } else {
        Vec::new()
    };
    Key { base, ds }
}

/// Signs [`ZONE`] with `keys` (extra `ldns-signzone` flags first) and returns the signed text.
fn sign(dir: &Path, flags: &[&str], keys: &[&Key]) -> String {
    std::fs::write(dir.join("sec.lab.zone"), ZONE).expect("write the zone");
    let mut args: Vec<&str> = flags.to_vec();
    args.extend(["-f", "sec.lab.signed", "sec.lab.zone"]);
    args.extend(keys.iter().map(|k| k.base.as_str()));
    run(dir, "ldns-signzone", &args);
    std::fs::read_to_string(dir.join("sec.lab.signed")).expect("the signed zone")
}

fn serve(text: String) -> Nsd {
    Nsd::start(vec![Zone {
        origin: ORIGIN,
        server: SERVER,
        text,
    }])
}

/// Asks NSD over TCP with DO=1.
async fn ask_do(nsd: &Nsd, name: &str, rtype: RecordType) -> Vec<Record> {
    let mut query = client::query(name, rtype);
    if let Some(edns) = query.edns.as_mut() {
        edns.set_dnssec_ok(true);
    }
    let reply: Message = ask_tcp(nsd.addr(SERVER), &query).await;
    reply.answers
}

fn now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

fn zone() -> Name {
    client::name(ORIGIN)
}

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
async fn rrsets_signed_with_algorithms_8_13_14_and_15_verify() {
    for algorithm in ["RSASHA256", "ECDSAP256SHA256", "ECDSAP384SHA384", "ED25519"] {
        let dir = TempDir::new("dnssec");
        let ksk = keygen(dir.path(), algorithm, true);
        let zsk = keygen(dir.path(), algorithm, false);
        let nsd = serve(sign(dir.path(), &[], &[&ksk, &zsk]));
        let ttl = check_www(&nsd, &ksk.ds)
            .await
            .unwrap_or_else(|e| panic!("{algorithm}: {e}"));
        assert!(ttl <= 3600 && ttl > 3000, "{algorithm}: TTL {ttl}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_expansion_verifies_with_the_fewer_labels_of_its_signature() {
    let dir = TempDir::new("dnssec");
    let ksk = keygen(dir.path(), "ECDSAP256SHA256", true);
    let zsk = keygen(dir.path(), "ECDSAP256SHA256", false);
    let nsd = serve(sign(dir.path(), &[], &[&ksk, &zsk]));
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
    let ksk = keygen(dir.path(), "ECDSAP256SHA256", true);
    let zsk = keygen(dir.path(), "ECDSAP256SHA256", false);
    let other = keygen(dir.path(), "ECDSAP256SHA256", true);

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
    let dir = TempDir::new("dnssec");
    let ksk = keygen(dir.path(), "ECDSAP256SHA256", true);
    let zsk = keygen(dir.path(), "ECDSAP256SHA256", false);
    let nsd = serve(sign(dir.path(), &[], &[&ksk, &zsk]));
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
async fn during_a_ksk_rollover_the_ds_of_either_key_proves_the_zone() {
    let dir = TempDir::new("dnssec");
    let old = keygen(dir.path(), "ECDSAP256SHA256", true);
    let new = keygen(dir.path(), "ECDSAP256SHA256", true);
    let zsk = keygen(dir.path(), "ECDSAP256SHA256", false);
    // -A: every KSK signs the DNSKEY RRset, as in a double-signature rollover.
    let nsd = serve(sign(dir.path(), &["-A"], &[&old, &new, &zsk]));
    for (which, ds) in [("old", &old.ds), ("new", &new.ds)] {
        check_www(&nsd, ds)
            .await
            .unwrap_or_else(|e| panic!("the {which} KSK's DS: {e}"));
    }
}
