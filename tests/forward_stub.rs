//! `[[forward]]` and `[[stub]]` zones end to end: the `taproot` binary in
//! front of the NSD lab tree, with more NSD servers on loopback that the
//! tree does not lead to, and `dig` as the client.
//!
//! ```text
//!                    ┌─► NSD .  ─► lab. ─► corp.lab. / cdn.lab. …   (the walk)
//!  dig ──► taproot ──┼─► NSD intranet.   127.0.1.9   [[forward]] (not delegated by the root)
//!                    ├─► NSD cdn.lab.    127.0.1.10  [[forward]] (the tree's cdn.lab. is 127.0.1.5)
//!                    └─► NSD hidden.     127.0.1.11  [[stub]] ─► referral ─► NSD child.hidden. 127.0.1.12
//! ```

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use support::dot::{DOT_NAME, UnboundDot};
use support::e2e::{
    CDN_IP, Nsd, ROOT_IP, TaprootProcess, TempDir, Zone, dig, lab_tree, off_thread, scrape,
    scrub_env, taproot_binary,
};
use taproot::config::{Config, ForwardConfig, StubConfig};

const INTRANET_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 9);
const SHADOW_CDN_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 10);
const HIDDEN_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 11);
const CHILD_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 12);
/// Nothing listens here: a forwarder that is down. Its address sorts
/// before the live one's, so that among two servers nothing is known
/// about yet, it is the one asked first.
const DEAD_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 8);

/// The lab tree and the servers only config leads to.
fn zones() -> Vec<Zone> {
    let mut zones = lab_tree();
    zones.push(Zone {
        origin: "intranet.",
        server: INTRANET_IP,
        text: format!(
            "$ORIGIN intranet.\n$TTL 3600\n\
             @    IN SOA ns hostmaster 1 1800 900 604800 600\n\
             @    IN NS  ns\n\
             ns   IN A   {INTRANET_IP}\n\
             www  IN A   198.51.100.7\n\
             wiki IN CNAME www\n"
        ),
    });
    zones.push(Zone {
        origin: "cdn.lab.",
        server: SHADOW_CDN_IP,
        text: format!(
            "$ORIGIN cdn.lab.\n$TTL 3600\n\
             @    IN SOA ns hostmaster 7 1800 900 604800 600\n\
             @    IN NS  ns\n\
             ns   IN A   {SHADOW_CDN_IP}\n\
             edge IN A   203.0.113.80\n"
        ),
    });
    zones.push(Zone {
        origin: "hidden.",
        server: HIDDEN_IP,
        text: format!(
            "$ORIGIN hidden.\n$TTL 3600\n\
             @        IN SOA ns hostmaster 1 1800 900 604800 600\n\
             @        IN NS  ns\n\
             ns       IN A   {HIDDEN_IP}\n\
             child    IN NS  ns.child\n\
             ns.child IN A   {CHILD_IP}\n"
        ),
    });
    zones.push(Zone {
        origin: "child.hidden.",
        server: CHILD_IP,
        text: format!(
            "$ORIGIN child.hidden.\n$TTL 3600\n\
             @    IN SOA ns hostmaster 1 1800 900 604800 600\n\
             @    IN NS  ns\n\
             ns   IN A   {CHILD_IP}\n\
             www  IN A   198.51.100.12\n"
        ),
    });
    zones
}

fn server(nsd: &Nsd, ip: Ipv4Addr) -> String {
    nsd.addr(ip).to_string()
}

fn forward(zone: &str, servers: Vec<String>) -> ForwardConfig {
    ForwardConfig {
        zone: zone.into(),
        servers,
        tls_name: String::new(),
        tls_ca_file: String::new(),
        dnssec: true,
    }
}

fn forward_queries(taproot: &TaprootProcess, server: SocketAddr, result: &str) -> f64 {
    scrape::sum(
        &taproot.metrics_text(),
        "taproot_forward_queries_total",
        &[("server", &server.to_string()), ("result", result)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_zone_is_answered_by_its_server_though_the_tree_does_not_delegate_it() {
    off_thread(|| {
        let nsd = Nsd::start(zones());
        // The tree itself has never heard of intranet.
        let root = dig(nsd.addr(ROOT_IP), &["+norec", "www.intranet", "A"]);
        assert_eq!(root.status, "NXDOMAIN", "{}", root.text);
        let intranet = server(&nsd, INTRANET_IP);
        let taproot = TaprootProcess::start(&nsd, |c: &mut Config| {
            c.forward = vec![forward("intranet", vec![intranet.clone()])];
        });
        let www = dig(taproot.dns, &["www.intranet", "A"]);
        assert_eq!(www.status, "NOERROR", "{}\n{}", www.text, taproot.log());
        assert!(www.has_flag("ra"), "{}", www.text);
        assert_eq!(www.answers("A"), ["198.51.100.7"]);
        // A CNAME inside the zone, and a name the forwarder says is not there.
        let wiki = dig(taproot.dns, &["wiki.intranet", "A"]);
        assert_eq!(wiki.answers("CNAME"), ["www.intranet."], "{}", wiki.text);
        assert_eq!(wiki.answers("A"), ["198.51.100.7"], "{}", wiki.text);
        let none = dig(taproot.dns, &["nope.intranet", "A"]);
        assert_eq!(none.status, "NXDOMAIN", "{}", none.text);
        // The rest of the world is still walked from the root.
        let walked = dig(taproot.dns, &["www.corp.lab", "A"]);
        assert_eq!(walked.answers("A"), ["192.0.2.3"], "{}", walked.text);
        assert!(
            forward_queries(&taproot, nsd.addr(INTRANET_IP), "ok") >= 3.0,
            "{}",
            taproot.metrics_text()
        );
        // Cached: asking again sends nothing more to the forwarder.
        let sent = forward_queries(&taproot, nsd.addr(INTRANET_IP), "ok");
        let again = dig(taproot.dns, &["www.intranet", "A"]);
        assert_eq!(again.answers("A"), ["198.51.100.7"]);
        assert_eq!(forward_queries(&taproot, nsd.addr(INTRANET_IP), "ok"), sent);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_zone_overrides_what_the_tree_delegates_even_at_the_end_of_a_cname() {
    off_thread(|| {
        let nsd = Nsd::start(zones());
        let tree = dig(nsd.addr(CDN_IP), &["+norec", "edge.cdn.lab", "A"]);
        assert_eq!(tree.answers("A"), ["192.0.2.80"], "the tree's own answer");
        let shadow = server(&nsd, SHADOW_CDN_IP);
        let taproot = TaprootProcess::start(&nsd, |c: &mut Config| {
            c.forward = vec![forward("cdn.lab.", vec![shadow.clone()])];
        });
        let edge = dig(taproot.dns, &["edge.cdn.lab", "A"]);
        assert_eq!(edge.answers("A"), ["203.0.113.80"], "{}", edge.text);
        // docs.eng.corp.lab is walked; its CNAME target is forwarded.
        let docs = dig(taproot.dns, &["docs.eng.corp.lab", "A"]);
        assert_eq!(docs.answers("CNAME"), ["edge.cdn.lab."], "{}", docs.text);
        assert_eq!(docs.answers("A"), ["203.0.113.80"], "{}", docs.text);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarder_that_is_down_fails_over_to_the_next_one() {
    off_thread(|| {
        let nsd = Nsd::start(zones());
        let dead = SocketAddr::new(IpAddr::V4(DEAD_IP), nsd.port());
        let intranet = server(&nsd, INTRANET_IP);
        let taproot = TaprootProcess::start(&nsd, |c: &mut Config| {
            c.forward = vec![forward(
                "intranet.",
                vec![dead.to_string(), intranet.clone()],
            )];
        });
        for name in ["www.intranet", "wiki.intranet", "ns.intranet"] {
            let reply = dig(taproot.dns, &[name, "A"]);
            assert_eq!(reply.status, "NOERROR", "{name}: {}", reply.text);
        }
        let text = taproot.metrics_text();
        assert!(
            forward_queries(&taproot, nsd.addr(INTRANET_IP), "ok") >= 3.0,
            "{text}"
        );
        // The dead one was tried first (it refuses: ICMP port
        // unreachable), the same question went on to the live one, and the
        // questions after asked the live one first.
        let failed = forward_queries(&taproot, dead, "error");
        assert_eq!(failed, 1.0, "{text}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stub_zone_starts_the_walk_at_its_servers_and_follows_their_referral() {
    off_thread(|| {
        let nsd = Nsd::start(zones());
        let hidden = server(&nsd, HIDDEN_IP);
        let taproot = TaprootProcess::start(&nsd, |c: &mut Config| {
            c.stub = vec![StubConfig {
                zone: "hidden".into(),
                servers: vec![hidden.clone()],
                dnssec: true,
            }];
        });
        // The stub's server only delegates child.hidden.; the answer comes
        // from the child's own server, which only a referral leads to.
        let www = dig(taproot.dns, &["www.child.hidden", "A"]);
        assert_eq!(www.status, "NOERROR", "{}\n{}", www.text, taproot.log());
        assert_eq!(www.answers("A"), ["198.51.100.12"]);
        let apex = dig(taproot.dns, &["hidden", "SOA"]);
        assert_eq!(apex.status, "NOERROR", "{}", apex.text);
        // A stub is not a forwarder: nothing was counted as forwarded.
        assert!(
            !taproot
                .metrics_text()
                .contains("taproot_forward_queries_total{"),
            "{}",
            taproot.metrics_text()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_zone_added_by_a_reload_answers_the_next_question() {
    off_thread(|| {
        let nsd = Nsd::start(zones());
        let taproot = TaprootProcess::start(&nsd, |_: &mut Config| {});
        let before = dig(taproot.dns, &["www.intranet", "A"]);
        assert_eq!(before.status, "NXDOMAIN", "{}", before.text);
        let intranet = server(&nsd, INTRANET_IP);
        taproot.reconfigure(|c: &mut Config| {
            c.forward = vec![forward("intranet.", vec![intranet.clone()])];
        });
        // The root's NXDOMAIN for intranet. was cached; the reload drops
        // what was learnt under a zone whose servers changed.
        let www = dig(taproot.dns, &["www.intranet", "A"]);
        assert_eq!(
            www.answers("A"),
            ["198.51.100.7"],
            "{}\n{}",
            www.text,
            taproot.log()
        );
        taproot.reconfigure(|c: &mut Config| c.forward.clear());
        let gone = dig(taproot.dns, &["www.intranet", "A"]);
        assert_eq!(gone.status, "NXDOMAIN", "{}", gone.text);
    })
    .await;
}

/// Twenty names under a zone only the DoT server knows.
fn secure_records() -> Vec<String> {
    (0..20)
        .map(|i| format!("host{i}.secure.corp. 3600 IN A 198.51.100.{}", 100 + i))
        .collect()
}

fn forward_tls(dot: &UnboundDot, ca: &std::path::Path) -> ForwardConfig {
    ForwardConfig {
        zone: "secure.corp.".into(),
        servers: vec![dot.addr().to_string()],
        tls_name: DOT_NAME.into(),
        tls_ca_file: ca.display().to_string(),
        dnssec: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_zone_over_tls_asks_unbound_many_questions_over_one_handshake() {
    off_thread(|| {
        let nsd = Nsd::start(lab_tree());
        let records = secure_records();
        let dot = UnboundDot::start(&records.iter().map(String::as_str).collect::<Vec<_>>());
        let taproot = TaprootProcess::start(&nsd, |c: &mut Config| {
            c.forward = vec![forward_tls(&dot, dot.ca_file())];
        });
        for i in 0..20 {
            let reply = dig(taproot.dns, &[&format!("host{i}.secure.corp"), "A"]);
            assert_eq!(reply.status, "NOERROR", "{}\n{}", reply.text, taproot.log());
            assert_eq!(reply.answers("A"), [format!("198.51.100.{}", 100 + i)]);
        }
        let none = dig(taproot.dns, &["nope.secure.corp", "A"]);
        assert_eq!(none.status, "NXDOMAIN", "{}", none.text);
        let text = taproot.metrics_text();
        let sum = |name: &str, want: &[(&str, &str)]| scrape::sum(&text, name, want);
        assert_eq!(
            sum(
                "taproot_forward_queries_total",
                &[("server", &dot.addr().to_string()), ("result", "ok")]
            ),
            21.0,
            "{text}"
        );
        assert_eq!(
            sum("taproot_upstream_queries_total", &[("transport", "tls")]),
            21.0,
            "{text}"
        );
        assert_eq!(
            sum("taproot_upstream_queries_total", &[("transport", "udp")]),
            0.0,
            "{text}"
        );
        assert_eq!(
            sum("taproot_forward_tls_handshakes_total", &[]),
            1.0,
            "{text}"
        );
        assert_eq!(sum("taproot_forward_tls_connections", &[]), 1.0, "{text}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarder_whose_certificate_another_ca_signed_is_never_believed() {
    off_thread(|| {
        let nsd = Nsd::start(lab_tree());
        let records = secure_records();
        let dot = UnboundDot::start(&records.iter().map(String::as_str).collect::<Vec<_>>());
        let taproot = TaprootProcess::start(&nsd, |c: &mut Config| {
            c.forward = vec![forward_tls(&dot, dot.other_ca_file())];
        });
        let reply = dig(taproot.dns, &["host1.secure.corp", "A"]);
        assert_eq!(reply.status, "SERVFAIL", "{}", reply.text);
        let text = taproot.metrics_text();
        assert!(
            scrape::sum(
                &text,
                "taproot_forward_queries_total",
                &[("result", "tls_error")]
            ) >= 1.0,
            "{text}"
        );
        assert_eq!(
            scrape::sum(&text, "taproot_forward_tls_handshakes_total", &[]),
            0.0
        );
        assert!(
            taproot.log().contains("DNS over TLS handshake failed"),
            "{}",
            taproot.log()
        );
    })
    .await;
}

#[test]
fn a_forwarder_ca_file_that_cannot_be_read_stops_the_start_naming_the_key_and_file() {
    let dir = TempDir::new("forward-ca");
    let hints = dir.write(
        "root.hints",
        ". 3600 NS a.root.\na.root. 3600 A 127.0.1.1\n",
    );
    let missing = dir.path().join("no-such-ca.pem");
    let mut config = Config::default();
    config.server.listen = vec!["127.0.0.1:0".parse().expect("literal")];
    config.metrics.listen = String::new();
    config.resolver.root_hints_file = hints.display().to_string();
    config.forward = vec![ForwardConfig {
        zone: "secure.corp.".into(),
        servers: vec!["127.0.2.53:8853".into()],
        tls_name: DOT_NAME.into(),
        tls_ca_file: missing.display().to_string(),
        dnssec: true,
    }];
    let path = dir.write("taproot.toml", &config.to_toml());
    for args in [vec!["check-config"], vec![]] {
        let mut cmd = std::process::Command::new(taproot_binary());
        cmd.args(&args).arg("--config").arg(&path);
        scrub_env(&mut cmd);
        let out = cmd.output().expect("run taproot");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("forward.tls_ca_file") && err.contains("no-such-ca.pem"),
            "{args:?}: {err}"
        );
    }
}
