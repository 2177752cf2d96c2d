//! End to end with real peers: the `taproot` binary resolves a tree served by
//! NSD (one process per server address, zone files on loopback), and `dig`
//! and `kdig` ask it, as an operator would.
//!
//! ```text
//!  dig / kdig ──► taproot ──► NSD .  ──► NSD lab. ──► NSD corp.lab. ──► NSD eng.corp.lab.
//!                                                 └─► NSD cdn.lab.
//! ```

mod support;

use std::net::{IpAddr, SocketAddr};

use support::e2e::{CDN_IP, DigReply, LAB_IP, Lab, ROOT_IP, dig, kdig, off_thread};
use taproot::config::Mode;

fn rtypes(reply: &DigReply) -> Vec<&str> {
    reply.answer.iter().map(|r| r.rtype.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_resolves_a_aaaa_mx_and_txt_three_cuts_below_the_root() {
    off_thread(|| {
        let lab = Lab::start();
        let at = lab.taproot.dns;
        let a = dig(at, &["www.eng.corp.lab", "A"]);
        assert_eq!(a.status, "NOERROR", "{}", a.text);
        assert!(a.has_flag("ra"), "a recursive answer has RA: {}", a.text);
        assert!(
            !a.has_flag("aa"),
            "a resolver is not authoritative: {}",
            a.text
        );
        assert_eq!(a.answers("A"), ["192.0.2.1"]);
        let aaaa = dig(at, &["www.eng.corp.lab", "AAAA"]);
        assert_eq!(aaaa.answers("AAAA"), ["2001:db8::1"]);
        let mx = dig(at, &["eng.corp.lab", "MX"]);
        assert_eq!(mx.answers("MX"), ["10 mail.eng.corp.lab."]);
        let txt = dig(at, &["eng.corp.lab", "TXT"]);
        assert_eq!(txt.answers("TXT"), ["\"v=spf1 mx -all\""]);
        // The second-level zone one cut up, on its own NSD.
        let www = dig(at, &["www.corp.lab", "A"]);
        assert_eq!(www.answers("A"), ["192.0.2.3"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cname_into_another_zone_comes_back_as_the_whole_chain() {
    off_thread(|| {
        let lab = Lab::start();
        let reply = dig(lab.taproot.dns, &["docs.eng.corp.lab", "A"]);
        assert_eq!(reply.status, "NOERROR", "{}", reply.text);
        assert_eq!(rtypes(&reply), ["CNAME", "A"], "{}", reply.text);
        assert_eq!(reply.answers("CNAME"), ["edge.cdn.lab."]);
        assert_eq!(reply.answers("A"), ["192.0.2.80"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kdig_over_tcp_gets_the_answer_and_a_cache_hit_shows_a_lower_ttl() {
    off_thread(|| {
        let lab = Lab::start();
        let at = lab.taproot.dns;
        let first = kdig(at, &["+tcp", "www.eng.corp.lab", "A"]);
        assert_eq!(first.status, "NOERROR", "{}", first.text);
        assert_eq!(first.answers("A"), ["192.0.2.1"]);
        assert_eq!(
            first.answer[0].ttl, 3600,
            "a fresh answer has the zone's TTL"
        );
        std::thread::sleep(std::time::Duration::from_millis(2_100));
        let again = dig(at, &["www.eng.corp.lab", "A"]);
        assert_eq!(again.answers("A"), ["192.0.2.1"]);
        let ttl = again.answer[0].ttl;
        assert!(
            (3597..=3598).contains(&ttl),
            "two seconds in cache take two off the TTL, got {ttl}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_and_nodata_from_nsd_carry_the_zone_soa() {
    off_thread(|| {
        let lab = Lab::start();
        let at = lab.taproot.dns;
        let nx = dig(at, &["nope.eng.corp.lab", "A"]);
        assert_eq!(nx.status, "NXDOMAIN", "{}", nx.text);
        assert!(nx.answer.is_empty());
        assert_eq!(nx.authority.len(), 1, "{}", nx.text);
        assert_eq!(nx.authority[0].rtype, "SOA");
        assert_eq!(nx.authority[0].name, "eng.corp.lab.");
        assert!(
            nx.authority[0].ttl <= 300,
            "RFC 2308: min(SOA TTL, MINIMUM)"
        );
        let nodata = dig(at, &["www.eng.corp.lab", "MX"]);
        assert_eq!(nodata.status, "NOERROR", "{}", nodata.text);
        assert!(nodata.answer.is_empty(), "{}", nodata.text);
        assert_eq!(nodata.authority[0].rtype, "SOA");
    })
    .await;
}

/// The seed's "Iterative DNS Query": taproot hands out the referral, the
/// client (`dig +norecurse`) walks on to each referred server itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_norecurse_follows_taproots_referral_down_to_the_answer() {
    off_thread(|| {
        let lab = Lab::start_with(|c| c.server.mode = Mode::Iterative);
        let qname = "www.eng.corp.lab";
        let first = dig(lab.taproot.dns, &["+norecurse", qname, "A"]);
        assert_eq!(first.status, "NOERROR", "{}", first.text);
        assert!(
            first.answer.is_empty(),
            "a referral, not an answer: {}",
            first.text
        );
        assert!(!first.has_flag("ra"), "iterative mode offers no recursion");
        assert_eq!(first.authority[0].rtype, "NS", "{}", first.text);
        assert_eq!(
            first.authority[0].name, "lab.",
            "the TLD referral: {}",
            first.text
        );
        let glue: Vec<IpAddr> = first
            .additional
            .iter()
            .filter(|r| r.rtype == "A")
            .filter_map(|r| r.data.parse().ok())
            .collect();
        assert_eq!(glue, [IpAddr::from(LAB_IP)], "{}", first.text);

        // The client walks on from there: lab. → corp.lab. → eng.corp.lab.
        let mut server = SocketAddr::new(glue[0], lab.nsd.port());
        let mut hops = Vec::new();
        let answer = loop {
            assert!(hops.len() < 6, "the walk ends within six hops: {hops:?}");
            let reply = dig(server, &["+norecurse", qname, "A"]);
            hops.push(server.ip());
            if !reply.answer.is_empty() {
                break reply;
            }
            let next: IpAddr = reply
                .additional
                .iter()
                .find(|r| r.rtype == "A")
                .and_then(|r| r.data.parse().ok())
                .unwrap_or_else(|| panic!("a referral with glue: {}", reply.text));
            server = SocketAddr::new(next, lab.nsd.port());
        };
        assert!(answer.has_flag("aa"), "{}", answer.text);
        assert_eq!(answer.answers("A"), ["192.0.2.1"]);
        assert_eq!(hops.len(), 3, "lab., corp.lab., eng.corp.lab.: {hops:?}");
        assert!(!hops.contains(&IpAddr::from(ROOT_IP)));
        assert!(!hops.contains(&IpAddr::from(CDN_IP)));

        // The same question recursively from a recursive taproot agrees.
        drop(lab);
        let recursive = Lab::start();
        let full = dig(recursive.taproot.dns, &[qname, "A"]);
        assert_eq!(full.answers("A"), answer.answers("A"));
    })
    .await;
}
