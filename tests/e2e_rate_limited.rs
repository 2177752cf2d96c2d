//! End to end against an authoritative that rate-limits, as real ones do
//! to a busy resolver: NSD with response rate limiting on (`rrl-ratelimit`
//! low enough to bite on one machine, `rrl-slip 2`: of the answers over
//! the limit, every second is an empty TC=1 reply and the others are
//! dropped), the `taproot` binary in front, and `dnsperf` asking thousands
//! of cold names at high concurrency. The names sit under one wildcard, so
//! NSD counts them in one RRL bucket (its wildcard class) while each is a
//! new question for the resolver.
//!
//! ```text
//!  dnsperf ──► taproot ──► NSD .  ──► NSD lab. ──► NSD rrl.lab. (*.rrl.lab. A; RRL 50/s, slip 2)
//! ```

mod support;

use std::net::Ipv4Addr;
use std::process::Command;

use support::e2e::{Nsd, ROOT_IP, ROOT_NS, TaprootProcess, TempDir, Zone, dig, off_thread, tool};
use support::metric;

const LAB_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 12, 2);
const RRL_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 12, 3);

/// Cold names asked, and how many at once.
const NAMES: usize = 3_000;
const OUTSTANDING: usize = 200;

fn tree() -> Vec<Zone> {
    vec![
        Zone {
            origin: ".",
            server: ROOT_IP,
            text: format!(
                "$TTL 86400\n\
                 .           IN SOA {ROOT_NS} hostmaster.root-servers. 1 1800 900 604800 86400\n\
                 .           IN NS  {ROOT_NS}\n\
                 {ROOT_NS}   IN A   {ROOT_IP}\n\
                 lab. 172800 IN NS  ns1.nic.lab.\n\
                 ns1.nic.lab. 172800 IN A {LAB_IP}\n"
            ),
        },
        Zone {
            origin: "lab.",
            server: LAB_IP,
            text: format!(
                "$ORIGIN lab.\n$TTL 3600\n\
                 @        IN SOA ns1.nic hostmaster.nic 1 1800 900 604800 600\n\
                 @        IN NS  ns1.nic\n\
                 ns1.nic  IN A   {LAB_IP}\n\
                 rrl      IN NS  ns.rrl\n\
                 ns.rrl   IN A   {RRL_IP}\n"
            ),
        },
        Zone {
            origin: "rrl.lab.",
            server: RRL_IP,
            text: format!(
                "$ORIGIN rrl.lab.\n$TTL 3600\n\
                 @        IN SOA ns hostmaster 1 1800 900 604800 600\n\
                 @        IN NS  ns\n\
                 ns       IN A   {RRL_IP}\n\
                 *        IN A   192.0.2.7\n"
            ),
        },
    ]
}

/// `name` in dnsperf's summary, e.g. "NOERROR 2990" from the
/// "Response codes:" line, as a count (0 when absent).
fn rcode_count(summary: &str, rcode: &str) -> usize {
    summary
        .lines()
        .find(|l| l.trim_start().starts_with("Response codes:"))
        .and_then(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| w.trim_end_matches(',') == rcode)?;
            words.next()?.parse().ok()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_names_behind_a_rate_limiting_nsd_almost_never_fail() {
    off_thread(|| {
        let dnsperf = tool("dnsperf");
        let nsd = Nsd::start_with(tree(), "rrl-ratelimit: 50\nrrl-slip: 2");
        let taproot = TaprootProcess::start(&nsd, |c| {
            c.resolver.upstream_timeout_ms = 1_000;
        });
        // The limit bites: past 50 answers a second NSD drops or truncates.
        let warm = dig(taproot.dns, &["warm.rrl.lab", "A"]);
        assert_eq!(warm.status, "NOERROR", "{}", warm.text);
        let dir = TempDir::new("dnsperf");
        let names: String = (0..NAMES).map(|i| format!("c{i}.rrl.lab. A\n")).collect();
        let input = dir.write("names.txt", &names);
        let out = Command::new(dnsperf)
            .args(["-s", "127.0.0.1", "-p", &taproot.dns.port().to_string()])
            .arg("-d")
            .arg(&input)
            .args([
                "-n",
                "1",
                "-q",
                &OUTSTANDING.to_string(),
                "-t",
                "12",
                "-l",
                "120",
            ])
            .output()
            .expect("dnsperf runs");
        let summary = String::from_utf8_lossy(&out.stdout).to_string();
        let metrics = taproot.metrics_text();
        let upstream: Vec<&str> = metrics
            .lines()
            .filter(|l| {
                l.starts_with("taproot_upstream_queries_total")
                    || l.starts_with("taproot_upstream_server_events_total")
                    || l.starts_with("taproot_servfail_total")
            })
            .collect();
        let context = format!("{summary}\n{}", upstream.join("\n"));
        let noerror = rcode_count(&summary, "NOERROR");
        let failed = NAMES - noerror;
        assert!(
            failed * 1000 <= NAMES * 5,
            "{failed} of {NAMES} cold names not answered NOERROR (at most 0.5% may fail)\n{context}"
        );
        // The rate limiter really did drop and truncate.
        let timeouts = metric(
            &metrics,
            "taproot_upstream_queries_total{result=\"timeout\",transport=\"udp\"}",
        );
        let tcp = metric(
            &metrics,
            "taproot_upstream_queries_total{result=\"ok\",transport=\"tcp\"}",
        );
        assert!(timeouts > 0.0 && tcp > 0.0, "RRL did not bite:\n{context}");
        assert_eq!(
            metric(
                &metrics,
                "taproot_upstream_server_events_total{event=\"down\"}"
            ),
            0.0,
            "a rate-limited server is not a dead one\n{context}"
        );
    })
    .await;
}
