//! Zones signed at test time with Debian's ldnsutils and served by NSD,
//! for the DNSSEC tests: one zone, `sec.lab.`, on 127.0.12.1:
//!
//! ```text
//! sec.lab.      SOA, NS ns, DNSKEY (KSK + ZSK), RRSIGs, NSEC or NSEC3
//! ns            A 127.0.12.1
//! www           A 192.0.2.1
//! *.wild        A 192.0.2.9
//! insecure      NS ns.insecure (an unsigned delegation: no DS)
//! ```

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::dnssec::rdata::DS;
use hickory_proto::op::Message;
use hickory_proto::rr::{Name, Record, RecordType};
use taproot::dnssec::TrustAnchors;

use super::client::{self, ask_tcp};
use super::e2e::{Nsd, TempDir, Zone, tool};

pub const SERVER: Ipv4Addr = Ipv4Addr::new(127, 0, 12, 1);
pub const ORIGIN: &str = "sec.lab.";

pub const ZONE: &str = "$ORIGIN sec.lab.\n\
$TTL 3600\n\
@       IN SOA ns hostmaster 1 3600 600 86400 300\n\
@       IN NS  ns\n\
ns      IN A   127.0.12.1\n\
www     IN A   192.0.2.1\n\
*.wild  IN A   192.0.2.9\n\
insecure    IN NS ns.insecure\n\
ns.insecure IN A  127.0.12.2\n";

/// A key made by `ldns-keygen` in `dir`: its base name and, for a KSK, its
/// DS (parsed, and as the zone-file line ldns wrote).
pub struct Key {
    pub base: String,
    pub ds: Vec<DS>,
    pub ds_text: String,
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

/// A key for `origin` (a KSK when `ksk`); RSA keys have 1024 bits.
pub fn keygen(dir: &Path, origin: &str, algorithm: &str, ksk: bool) -> Key {
    keygen_bits(dir, origin, algorithm, ksk, "1024")
}

/// A key for `origin` (a KSK when `ksk`); an RSA key of `bits` bits.
pub fn keygen_bits(dir: &Path, origin: &str, algorithm: &str, ksk: bool, bits: &str) -> Key {
    let mut args = vec!["-a", algorithm, "-r", "/dev/urandom"];
    if algorithm.starts_with("RSA") {
        args.extend(["-b", bits]);
    }
    if ksk {
        args.push("-k");
    }
    args.push(origin);
    let base = run(dir, "ldns-keygen", &args);
    let (ds, ds_text) = if ksk {
        let path = dir.join(format!("{base}.ds"));
        let text = std::fs::read_to_string(&path).expect("ldns-keygen wrote the DS");
        let ds = TrustAnchors::parse(&text, &path.display().to_string())
            .expect("ldns's DS line parses as an anchor")
            .ds
            .into_iter()
            .map(|(_, ds)| ds)
            .collect();
        (ds, text)
    } else {
        (Vec::new(), String::new())
    };
    Key { base, ds, ds_text }
}

/// Signs [`ZONE`] with `keys` (extra `ldns-signzone` flags first) and returns the signed text.
pub fn sign(dir: &Path, flags: &[&str], keys: &[&Key]) -> String {
    sign_text(dir, ORIGIN, ZONE, flags, keys)
}

/// Signs the zone `text` of `origin` with `keys` (extra `ldns-signzone`
/// flags first) and returns the signed text.
pub fn sign_text(dir: &Path, origin: &str, text: &str, flags: &[&str], keys: &[&Key]) -> String {
    let file = format!("{origin}zone");
    let signed = format!("{origin}signed");
    std::fs::write(dir.join(&file), text).expect("write the zone");
    let mut args: Vec<&str> = flags.to_vec();
    args.extend(["-o", origin, "-f", &signed, &file]);
    args.extend(keys.iter().map(|k| k.base.as_str()));
    run(dir, "ldns-signzone", &args);
    std::fs::read_to_string(dir.join(&signed)).expect("the signed zone")
}

/// A fresh ECDSA P-256 KSK and ZSK, [`ZONE`] signed with them and `flags`,
/// served; the directory holds the keys and lives as long as the test.
pub fn signed_zone(flags: &[&str]) -> (TempDir, Key, Nsd) {
    let dir = TempDir::new("dnssec");
    let ksk = keygen(dir.path(), ORIGIN, "ECDSAP256SHA256", true);
    let zsk = keygen(dir.path(), ORIGIN, "ECDSAP256SHA256", false);
    let nsd = serve(sign(dir.path(), flags, &[&ksk, &zsk]));
    (dir, ksk, nsd)
}

/// Serves a (signed) `sec.lab.` text with NSD on [`SERVER`].
pub fn serve(text: String) -> Nsd {
    Nsd::start(vec![Zone {
        origin: ORIGIN,
        server: SERVER,
        text,
    }])
}

/// Asks NSD over TCP with DO=1.
pub async fn ask_signed(nsd: &Nsd, name: &str, rtype: RecordType) -> Message {
    let mut query = client::query(name, rtype);
    if let Some(edns) = query.edns.as_mut() {
        edns.set_dnssec_ok(true);
    }
    ask_tcp(nsd.addr(SERVER), &query).await
}

/// The answer section of [`ask_signed`].
pub async fn ask_do(nsd: &Nsd, name: &str, rtype: RecordType) -> Vec<Record> {
    ask_signed(nsd, name, rtype).await.answers
}

/// Seconds since the epoch, as RRSIG validity windows count them.
pub fn now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

/// `sec.lab.`
pub fn zone() -> Name {
    client::name(ORIGIN)
}
