//! A whole signed tree for validation tests: a root, `lab.` and zones under
//! them, each signed at test time by ldns-signzone (or broken on purpose
//! after signing) and served by its own NSD on 127.0.14.0/24. The root's
//! KSK is the trust anchor taproot is given.
//!
//! ```text
//! .                      .1   NSEC      anchor: its KSK's DS
//! └─ lab.                .2   NSEC
//!    ├─ sec.lab.         .3   NSEC      www, *.wild, alias, toinsecure, tobogus
//!    │  └─ insecure.     .4   unsigned  (no DS: an unsigned delegation)
//!    ├─ nsec3.lab.       .5   NSEC3
//!    ├─ optout.lab.      .6   NSEC3 opt-out
//!    │  └─ child.        .7   unsigned  (no DS, inside an opt-out span)
//!    ├─ corrupt.lab.     .8   www's RRSIG altered           → EDE 6
//!    ├─ expired.lab.     .9   signatures expired in 2020    → EDE 7
//!    ├─ future.lab.      .10  signatures valid from 2040    → EDE 8
//!    ├─ nosigs.lab.      .11  www's RRSIG removed           → EDE 10
//!    ├─ unsigned.lab.    .12  served unsigned, DS in lab.   → EDE 9
//!    ├─ mismatch.lab.    .13  DS of some other key          → EDE 9
//!    ├─ unknownalg.lab.  .14  DS with algorithm 200: insecure
//!    ├─ unknowndigest.lab. .15 DS with digest type 200: insecure
//!    ├─ roll.lab.        .16  two KSKs, DS for the second only
//!    ├─ nonsec.lab.      .17  NSEC records removed          → EDE 12
//!    ├─ manyiter.lab.    .18  NSEC3 with 200 iterations: insecure
//!    ├─ rsa512.lab.      .19  RSASHA256 keys of 512 bits (RFC 5155's examples' size)
//!    ├─ rsa512bad.lab.   .20  the same, www's RRSIG altered → EDE 6
//!    ├─ split.lab.       .21  www's RRSIG altered on this server only,
//!    │                   .22  the same zone served right
//!    └─ splitkeys.lab.   .23  signed with keys the DS does not name,
//!                        .24  the same zone signed right
//! ```
//!
//! `sec.lab.` also holds `host.ent` (so `ent.sec.lab.` is an empty
//! non-terminal) and `d DNAME sec.lab.` (so `www.d.d.sec.lab.` applies the
//! same DNAME twice).
//!
//! `sec.lab.`'s NS address is a counting UDP relay on .33 in front of its
//! NSD, so a test can see which questions reached the server.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RecordType};
use taproot::config::Config;
use taproot::server::{Running, Server};
use tokio::net::UdpSocket;

use super::e2e::{Nsd, ROOT_NS, TempDir, Zone};
use super::signed::{Key, keygen, keygen_bits, sign_text};

const ALG: &str = "ECDSAP256SHA256";

pub fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 14, last)
}

/// Where `sec.lab.`'s counting relay listens.
pub const RELAY: Ipv4Addr = Ipv4Addr::new(127, 0, 14, 33);

/// How a leaf zone is signed, broken and delegated.
#[derive(Clone, Copy, PartialEq)]
enum Make {
    Nsec,
    Nsec3,
    OptOut,
    Unsigned,
    Expired,
    Future,
    Corrupt,
    StripRrsig,
    /// Signed, served unsigned, the DS left in the parent.
    ServedUnsigned,
    Mismatch,
    UnknownAlgorithm,
    UnknownDigest,
    Rollover,
    StripNsec,
    ManyIterations,
    /// Signed with 512-bit RSASHA256 keys.
    Rsa512,
    /// Signed with 512-bit RSASHA256 keys, www's RRSIG altered.
    Rsa512Corrupt,
    /// Signed; served by two servers, www's RRSIG altered on the first.
    Split,
    /// Signed; served by two servers, the first serving it signed with
    /// other keys.
    SplitKeys,
}

struct Leaf {
    origin: &'static str,
    last: u8,
    make: Make,
    body: String,
}

fn soa_and_ns(ip: Ipv4Addr) -> String {
    format!(
        "$TTL 3600\n\
         @ IN SOA ns hostmaster 1 3600 600 86400 300\n\
         @ IN NS ns\n\
         ns IN A {ip}\n"
    )
}

fn leaves() -> Vec<Leaf> {
    let plain = |origin, last, make| Leaf {
        origin,
        last,
        make,
        body: format!(
            "{}www IN A 192.0.2.{last}\n*.wild IN A 192.0.2.99\n",
            soa_and_ns(ip(last))
        ),
    };
    let mut sec = soa_and_ns(RELAY);
    sec.push_str(
        "www IN A 192.0.2.1\n\
         *.wild IN A 192.0.2.9\n\
         alias IN CNAME www\n\
         toinsecure IN CNAME www.insecure.sec.lab.\n\
         tobogus IN CNAME www.corrupt.lab.\n\
         insecure IN NS ns.insecure\n\
         host.ent IN A 192.0.2.3\n\
         d IN DNAME sec.lab.\n",
    );
    sec.push_str(&format!("ns.insecure IN A {}\n", ip(4)));
    let mut optout = soa_and_ns(ip(6));
    optout.push_str(&format!(
        "www IN A 192.0.2.6\nchild IN NS ns.child\nns.child IN A {}\n",
        ip(7)
    ));
    vec![
        Leaf {
            origin: "sec.lab.",
            last: 3,
            make: Make::Nsec,
            body: sec,
        },
        plain("insecure.sec.lab.", 4, Make::Unsigned),
        plain("nsec3.lab.", 5, Make::Nsec3),
        Leaf {
            origin: "optout.lab.",
            last: 6,
            make: Make::OptOut,
            body: optout,
        },
        plain("child.optout.lab.", 7, Make::Unsigned),
        plain("corrupt.lab.", 8, Make::Corrupt),
        plain("expired.lab.", 9, Make::Expired),
        plain("future.lab.", 10, Make::Future),
        plain("nosigs.lab.", 11, Make::StripRrsig),
        plain("unsigned.lab.", 12, Make::ServedUnsigned),
        plain("mismatch.lab.", 13, Make::Mismatch),
        plain("unknownalg.lab.", 14, Make::UnknownAlgorithm),
        plain("unknowndigest.lab.", 15, Make::UnknownDigest),
        plain("roll.lab.", 16, Make::Rollover),
        plain("nonsec.lab.", 17, Make::StripNsec),
        plain("manyiter.lab.", 18, Make::ManyIterations),
        plain("rsa512.lab.", 19, Make::Rsa512),
        plain("rsa512bad.lab.", 20, Make::Rsa512Corrupt),
        split_leaf("split.lab.", 21, Make::Split),
        split_leaf("splitkeys.lab.", 23, Make::SplitKeys),
    ]
}

/// A zone served by two servers, `.last` and `.last + 1`.
fn split_leaf(origin: &'static str, last: u8, make: Make) -> Leaf {
    Leaf {
        origin,
        last,
        make,
        body: format!(
            "$TTL 3600\n\
             @ IN SOA ns1 hostmaster 1 3600 600 86400 300\n\
             @ IN NS ns1\n\
             @ IN NS ns2\n\
             ns1 IN A {}\n\
             ns2 IN A {}\n\
             www IN A 192.0.2.{last}\n",
            ip(last),
            ip(last + 1)
        ),
    }
}

/// True for a signed-zone line `owner TTL IN RRSIG <covered> …` at `owner`.
fn is_rrsig_over(line: &str, owner: &str, covered: &str) -> bool {
    let f: Vec<&str> = line.split_whitespace().collect();
    f.len() > 4 && f[0].eq_ignore_ascii_case(owner) && f[3] == "RRSIG" && f[4] == covered
}

/// Signs (or not) one zone; returns the text to serve and the DS lines
/// for its parent.
fn make_zone(dir: &std::path::Path, leaf: &Leaf) -> (String, String) {
    let origin = leaf.origin;
    let text = format!("$ORIGIN {origin}\n{}", leaf.body);
    let www = format!("www.{origin}");
    let sign = |flags: &[&str], keys: &[&Key]| sign_text(dir, origin, &text, flags, keys);
    let pair = || {
        (
            keygen(dir, origin, ALG, true),
            keygen(dir, origin, ALG, false),
        )
    };
    match leaf.make {
        Make::Unsigned => (text.clone(), String::new()),
        Make::Nsec | Make::Nsec3 | Make::OptOut | Make::ManyIterations => {
            let (ksk, zsk) = pair();
            let flags: &[&str] = match leaf.make {
                Make::Nsec => &[],
                Make::Nsec3 => &["-n", "-t", "0"],
                Make::OptOut => &["-n", "-p", "-t", "0"],
                _ => &["-n", "-t", "200"],
            };
            (sign(flags, &[&ksk, &zsk]), ksk.ds_text)
        }
        Make::Expired | Make::Future => {
            let (ksk, zsk) = pair();
            let window: &[&str] = if leaf.make == Make::Expired {
                &["-i", "20190101000000", "-e", "20200101000000"]
            } else {
                &["-i", "20400101000000", "-e", "20410101000000"]
            };
            (sign(window, &[&ksk, &zsk]), ksk.ds_text)
        }
        Make::Rsa512 => {
            let ksk = keygen_bits(dir, origin, "RSASHA256", true, "512");
            let zsk = keygen_bits(dir, origin, "RSASHA256", false, "512");
            (sign(&[], &[&ksk, &zsk]), ksk.ds_text)
        }
        Make::Corrupt | Make::Rsa512Corrupt => {
            let (ksk, zsk) = if leaf.make == Make::Corrupt {
                pair()
            } else {
                (
                    keygen_bits(dir, origin, "RSASHA256", true, "512"),
                    keygen_bits(dir, origin, "RSASHA256", false, "512"),
                )
            };
            let signed = sign(&[], &[&ksk, &zsk]);
            (corrupt_www_rrsig(&signed, &www), ksk.ds_text)
        }
        Make::Split | Make::SplitKeys => {
            let (ksk, zsk) = pair();
            (sign(&[], &[&ksk, &zsk]), ksk.ds_text)
        }
        Make::StripRrsig | Make::StripNsec => {
            let (ksk, zsk) = pair();
            let signed = sign(&[], &[&ksk, &zsk]);
            let kept = signed
                .lines()
                .filter(|line| {
                    if leaf.make == Make::StripRrsig {
                        return !is_rrsig_over(line, &www, "A");
                    }
                    let f: Vec<&str> = line.split_whitespace().collect();
                    !(f.get(3) == Some(&"NSEC")
                        || (f.get(3) == Some(&"RRSIG") && f.get(4) == Some(&"NSEC")))
                })
                .collect::<Vec<_>>()
                .join("\n");
            (kept, ksk.ds_text)
        }
        Make::ServedUnsigned => {
            let (ksk, _) = pair();
            (text.clone(), ksk.ds_text)
        }
        Make::Mismatch => {
            let zsk = keygen(dir, origin, ALG, false);
            let other = keygen(dir, origin, ALG, true);
            (sign(&[], &[&zsk]), other.ds_text)
        }
        Make::UnknownAlgorithm | Make::UnknownDigest => {
            let ds = if leaf.make == Make::UnknownAlgorithm {
                format!("{origin} 3600 IN DS 12345 200 2 {}\n", "AB".repeat(32))
            } else {
                format!("{origin} 3600 IN DS 12345 13 200 {}\n", "AB".repeat(32))
            };
            (text.clone(), ds)
        }
        Make::Rollover => {
            let old = keygen(dir, origin, ALG, true);
            let new = keygen(dir, origin, ALG, true);
            let zsk = keygen(dir, origin, ALG, false);
            (sign(&[], &[&old, &new, &zsk]), new.ds_text)
        }
    }
}

/// `signed` with one base64 character changed inside www's A RRSIG.
fn corrupt_www_rrsig(signed: &str, www: &str) -> String {
    signed
        .lines()
        .map(|line| {
            if is_rrsig_over(line, www, "A") {
                let mut chars: Vec<char> = line.chars().collect();
                let at = chars.len() - 10;
                chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
                chars.into_iter().collect()
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The parent-side lines for `leaf`: NS, glue, DS.
fn delegation(leaf: &Leaf, ds: &str) -> String {
    if matches!(leaf.make, Make::Split | Make::SplitKeys) {
        return format!(
            "{o} IN NS ns1.{o}\n{o} IN NS ns2.{o}\nns1.{o} IN A {}\nns2.{o} IN A {}\n{ds}\n",
            ip(leaf.last),
            ip(leaf.last + 1),
            o = leaf.origin
        );
    }
    let ns_ip = if leaf.origin == "sec.lab." {
        RELAY
    } else {
        ip(leaf.last)
    };
    format!(
        "{o} IN NS ns.{o}\nns.{o} IN A {ns_ip}\n{ds}\n",
        o = leaf.origin
    )
}

/// The signed tree, served, with the relay and the anchor file.
pub struct SignedTree {
    pub nsd: Nsd,
    pub relay: Relay,
    dir: TempDir,
    pub anchor_file: std::path::PathBuf,
    pub hints_file: std::path::PathBuf,
    /// The root KSK's DNSKEY line, as ldns-keygen wrote it (one line).
    pub root_dnskey: String,
}

impl SignedTree {
    pub async fn start() -> SignedTree {
        let dir = TempDir::new("signed-tree");
        let path = dir.path().to_path_buf();
        let built = super::e2e::off_thread(move || build(&path)).await;
        let nsd = super::e2e::off_thread(move || Nsd::start(built.0)).await;
        let anchor_file = dir.write("anchor.ds", &built.1);
        let root_dnskey = built.2;
        let hints_file = dir.write("root.hints", &nsd.root_hints());
        let relay = Relay::start(
            SocketAddr::new(IpAddr::V4(RELAY), nsd.port()),
            nsd.addr(ip(3)),
        )
        .await;
        SignedTree {
            nsd,
            relay,
            dir,
            anchor_file,
            hints_file,
            root_dnskey,
        }
    }

    /// A validating config against this tree.
    pub fn config(&self) -> Config {
        let mut config = Config::default();
        config.server.listen = vec!["127.0.0.1:0".parse().expect("literal")];
        config.server.threads = 1;
        config.resolver.root_hints_file = self.hints_file.display().to_string();
        config.resolver.upstream_port = self.nsd.port();
        config.resolver.allow_loopback_upstreams = true;
        config.resolver.upstream_timeout_ms = 1_000;
        config.metrics.listen = String::new();
        config.dnssec.trust_anchor_file = self.anchor_file.display().to_string();
        config
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

/// Every zone of the tree, the root's DS line (the anchor) and its KSK's
/// DNSKEY line.
fn build(dir: &std::path::Path) -> (Vec<Zone>, String, String) {
    let mut zones = Vec::new();
    let mut lab = format!("$ORIGIN lab.\n{}", soa_and_ns(ip(2)));
    let leaves = leaves();
    // Children first: a parent needs their DS lines before it is signed.
    let mut made: Vec<(usize, String)> = Vec::new();
    for (i, leaf) in leaves.iter().enumerate() {
        let (text, ds) = make_zone(dir, leaf);
        // The two grandchildren are unsigned: their parents' bodies already
        // delegate to them, and there is no DS to add.
        if !matches!(leaf.origin, "insecure.sec.lab." | "child.optout.lab.") {
            lab.push_str(&delegation(leaf, &ds));
        }
        made.push((i, text));
    }
    for (i, text) in made {
        let leaf = &leaves[i];
        if matches!(leaf.make, Make::Split | Make::SplitKeys) {
            // The second server serves the zone right; the first, broken.
            let broken = if leaf.make == Make::Split {
                corrupt_www_rrsig(&text, &format!("www.{}", leaf.origin))
            } else {
                let origin = leaf.origin;
                let other_ksk = keygen(dir, origin, ALG, true);
                let other_zsk = keygen(dir, origin, ALG, false);
                let unsigned = format!("$ORIGIN {origin}\n{}", leaf.body);
                sign_text(dir, origin, &unsigned, &[], &[&other_ksk, &other_zsk])
            };
            zones.push(Zone {
                origin: leaf.origin,
                server: ip(leaf.last + 1),
                text: text.clone(),
            });
            zones.push(Zone {
                origin: leaf.origin,
                server: ip(leaf.last),
                text: broken,
            });
            continue;
        }
        zones.push(Zone {
            origin: leaf.origin,
            server: ip(leaf.last),
            text,
        });
    }
    let lab_ksk = keygen(dir, "lab.", ALG, true);
    let lab_zsk = keygen(dir, "lab.", ALG, false);
    zones.push(Zone {
        origin: "lab.",
        server: ip(2),
        text: sign_text(dir, "lab.", &lab, &[], &[&lab_ksk, &lab_zsk]),
    });
    let root = format!(
        "$ORIGIN .\n$TTL 3600\n\
         . IN SOA {ROOT_NS} hostmaster.root. 1 3600 600 86400 300\n\
         . IN NS {ROOT_NS}\n\
         {ROOT_NS} IN A {}\n\
         lab. IN NS ns.lab.\n\
         ns.lab. IN A {}\n\
         {}",
        ip(1),
        ip(2),
        lab_ksk.ds_text
    );
    let root_ksk = keygen(dir, ".", ALG, true);
    let root_zsk = keygen(dir, ".", ALG, false);
    zones.push(Zone {
        origin: ".",
        server: ip(1),
        text: sign_text(dir, ".", &root, &[], &[&root_ksk, &root_zsk]),
    });
    let root_dnskey = std::fs::read_to_string(dir.join(format!("{}.key", root_ksk.base)))
        .expect("ldns-keygen wrote the root KSK");
    (zones, root_ksk.ds_text, root_dnskey)
}

/// A UDP relay that counts the questions passing through it, and can
/// swallow those of one type (a server that never answers them).
pub struct Relay {
    seen: Arc<Mutex<Vec<(Name, RecordType)>>>,
    swallow: Arc<Mutex<Option<RecordType>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(listen: SocketAddr, upstream: SocketAddr) -> Relay {
        let socket = Arc::new(UdpSocket::bind(listen).await.expect("bind the relay"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let counted = seen.clone();
        let swallow: Arc<Mutex<Option<RecordType>>> = Arc::new(Mutex::new(None));
        let swallowed = swallow.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65535];
            loop {
                let Ok((n, client)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let query = buf[..n].to_vec();
                let mut rtype = None;
                if let Ok(msg) = Message::from_vec(&query)
                    && let Some(q) = msg.queries.first()
                    && let Ok(mut seen) = counted.lock()
                {
                    seen.push((q.name().to_lowercase(), q.query_type()));
                    rtype = Some(q.query_type());
                }
                if rtype.is_some() && swallowed.lock().is_ok_and(|s| *s == rtype) {
                    continue;
                }
                let reply_to = socket.clone();
                tokio::spawn(async move {
                    let Ok(out) = UdpSocket::bind((RELAY, 0)).await else {
                        return;
                    };
                    if out.send_to(&query, upstream).await.is_err() {
                        return;
                    }
                    let mut back = vec![0u8; 65535];
                    if let Ok(Ok(n)) =
                        tokio::time::timeout(Duration::from_secs(2), out.recv(&mut back)).await
                    {
                        let _ = reply_to.send_to(&back[..n], client).await;
                    }
                });
            }
        });
        Relay {
            seen,
            swallow,
            task,
        }
    }

    /// From now on, questions of `rtype` get no answer (`None`: all do).
    pub fn swallow(&self, rtype: Option<RecordType>) {
        if let Ok(mut s) = self.swallow.lock() {
            *s = rtype;
        }
    }

    /// How many questions for (name, type) reached the server.
    pub fn count(&self, name: &str, rtype: RecordType) -> usize {
        let name = super::client::name(name).to_lowercase();
        self.seen
            .lock()
            .map(|s| s.iter().filter(|(n, t)| *n == name && *t == rtype).count())
            .unwrap_or(0)
    }

    /// Every question that reached the server.
    pub fn total(&self) -> usize {
        self.seen.lock().map(|s| s.len()).unwrap_or(0)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// taproot running in-process against a signed tree.
pub struct Validating {
    pub running: Running,
    pub addr: SocketAddr,
}

impl Validating {
    pub async fn start(tree: &SignedTree, tweak: impl FnOnce(&mut Config)) -> Validating {
        let mut config = tree.config();
        tweak(&mut config);
        let running = Server::start(config).await.expect("taproot starts");
        let addr = running.addr();
        Validating { running, addr }
    }

    pub async fn stop(self) {
        self.running.shutdown(Duration::from_secs(2)).await;
    }
}
