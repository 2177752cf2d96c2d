//! taproot as a `Type=notify` systemd service: the test plays the service
//! manager (its own `NOTIFY_SOCKET`, signals, exit status) around the real
//! binary, and checks `deploy/taproot.service` with systemd-analyze.
//!
//! sd_notify(3): READY=1 when startup is complete, RELOADING=1 with
//! MONOTONIC_USEC when a reload starts and READY=1 when it is done,
//! STOPPING=1 when shutdown starts.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use support::client::{self, ask_tcp, ask_udp, three_level_tree};
use support::daemon::{Daemon, config_text};
use support::e2e::{TempDir, free_port, taproot_binary};
use support::tree::{Behaviour, FakeTree};

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/taproot.service");

fn addresses(reply: &Message) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

fn assert_www_answer(reply: &Message) {
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        addresses(reply),
        [
            "127.1.0.1".parse::<IpAddr>().unwrap(),
            "127.1.0.2".parse().unwrap()
        ]
    );
}

/// Asks taproot at `addr` for www.example.co.kr. A over UDP and checks the answer.
async fn www_is_answered_over_udp(addr: SocketAddr) {
    assert_www_answer(
        &ask_udp(
            addr,
            &client::recursive("www.example.co.kr.", RecordType::A),
        )
        .await,
    );
}

/// The same over TCP.
async fn www_is_answered_over_tcp(addr: SocketAddr) {
    assert_www_answer(
        &ask_tcp(
            addr,
            &client::recursive("www.example.co.kr.", RecordType::A),
        )
        .await,
    );
}

/// Starts the binary on a free loopback port against `tree`.
fn spawn(tree: &FakeTree, extra: &str) -> (Daemon, SocketAddr) {
    let dir = TempDir::new("systemd");
    let hints = dir.write("root.hints", &tree.root_hints());
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port(&[IpAddr::from([127, 0, 0, 1])])));
    let config = config_text(tree, &hints, addr, extra);
    (Daemon::spawn(dir, &config), addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_is_sent_once_the_dns_port_answers_and_not_before() {
    let tree = three_level_tree().await;
    let (daemon, addr) = spawn(&tree, "");
    let messages = daemon.until_ready().await;
    assert_eq!(
        messages.len(),
        1,
        "READY=1 is the first thing the service manager hears: {messages:?}"
    );
    let ready = &messages[0];
    assert!(
        ready.contains(&format!("STATUS=serving DNS on {addr}")),
        "{ready:?}"
    );
    // Right after READY=1, with no retry: UDP and TCP both answer.
    www_is_answered_over_udp(addr).await;
    www_is_answered_over_tcp(addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_is_framed_by_reloading_with_a_timestamp_and_ready() {
    let tree = three_level_tree().await;
    let (daemon, addr) = spawn(&tree, "");
    daemon.until_ready().await;
    let (reloading, ready) = daemon.reload().await;
    let usec = reloading
        .iter()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("RELOADING=1 carries MONOTONIC_USEC: {reloading:?}"));
    assert!(
        usec.parse::<u64>().is_ok_and(|us| us > 0),
        "MONOTONIC_USEC is a positive count of microseconds: {usec}"
    );
    assert!(
        ready.iter().any(|l| l.starts_with("STATUS=serving DNS")),
        "{ready:?}"
    );
    daemon.log.wait_for(&["config reloaded"]).await;
    www_is_answered_over_udp(addr).await;
}

/// A reload applies the new ACL at once, keeps the cache, and a broken file
/// is refused with the old config still serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_new_acl_and_a_broken_file_leaves_the_old_one_in_force() {
    let tree = three_level_tree().await;
    let allow = "[[acl]]\nprefix = \"127.0.0.0/8\"\naction = \"allow\"\n";
    let refuse = "[[acl]]\nprefix = \"127.0.0.0/8\"\naction = \"allow\"\n\
                  [[acl]]\nprefix = \"127.0.0.1/32\"\naction = \"refuse\"\n";
    let (daemon, addr) = spawn(&tree, allow);
    let hints = daemon.dir.path().join("root.hints");
    let first = config_text(&tree, &hints, addr, allow);
    daemon.until_ready().await;
    www_is_answered_over_udp(addr).await;
    let upstream_before = tree.total_queries();

    daemon.rewrite_config(&config_text(&tree, &hints, addr, refuse));
    daemon.reload().await;
    daemon.log.wait_for(&["config reloaded"]).await;
    let refused = ask_udp(
        addr,
        &client::recursive("www.example.co.kr.", RecordType::A),
    )
    .await;
    assert_eq!(refused.metadata.response_code, ResponseCode::Refused);

    // A file that does not parse: refused, logged, the refuse rule stays.
    daemon.rewrite_config("[server\nlisten = nonsense\n");
    let (_, ready) = daemon.reload().await;
    assert!(
        ready.iter().any(|l| l.starts_with("STATUS=reload refused")),
        "the service manager is told the reload was refused: {ready:?}"
    );
    daemon.log.wait_for(&["reload refused"]).await;
    let still = ask_udp(
        addr,
        &client::recursive("www.example.co.kr.", RecordType::A),
    )
    .await;
    assert_eq!(still.metadata.response_code, ResponseCode::Refused);

    // Back to allow: the answer comes from the cache the reloads kept.
    daemon.rewrite_config(&first);
    daemon.reload().await;
    daemon.log.wait_for(&["config reloaded"]).await;
    www_is_answered_over_udp(addr).await;
    assert_eq!(
        tree.total_queries(),
        upstream_before,
        "the cache survived three reloads: no upstream query"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_sends_stopping_answers_queries_in_flight_and_exits_zero() {
    let tree = three_level_tree().await;
    let (mut daemon, addr) = spawn(&tree, "");
    daemon.until_ready().await;
    // The last server answers late, so the queries are still being resolved
    // when SIGTERM arrives.
    tree.set_behaviour(
        client::EXAMPLE_IP,
        Behaviour::Delay(Duration::from_millis(700)),
    );
    let udp = tokio::spawn(async move {
        ask_udp(
            addr,
            &client::recursive("www.example.co.kr.", RecordType::A),
        )
        .await
    });
    let tcp = tokio::spawn(async move {
        let mut m = client::recursive("alias.example.co.kr.", RecordType::A);
        m.metadata.id = 7;
        ask_tcp(addr, &m).await
    });
    // Both questions have reached the last server, so both are in flight.
    let asked = |tree: &FakeTree, label: &str| {
        tree.query_log().iter().any(|q| {
            q.server == client::EXAMPLE_IP
                && q.name.to_ascii().to_ascii_lowercase().starts_with(label)
        })
    };
    while !(asked(&tree, "www.") && asked(&tree, "alias.")) {
        let seen = tree.total_queries();
        assert!(
            tree.wait_for_queries(seen + 1, Duration::from_secs(5))
                .await,
            "taproot never reached the example.co.kr server: {:?}",
            tree.query_log()
        );
    }
    daemon.signal("TERM");
    let stopping = daemon.notify.next().await;
    assert!(
        stopping.iter().any(|l| l == "STOPPING=1"),
        "SIGTERM is answered with STOPPING=1: {stopping:?}"
    );
    assert_www_answer(&udp.await.expect("the UDP client task"));
    let tcp = tcp.await.expect("the TCP client task");
    assert_eq!(tcp.metadata.response_code, ResponseCode::NoError);
    assert!(
        tcp.answers
            .iter()
            .any(|r| r.record_type() == RecordType::CNAME),
        "{tcp:?}"
    );
    let status = daemon.wait_exit().await;
    assert_eq!(status.code(), Some(0), "a clean stop exits 0: {status}");
    daemon.log.wait_for(&["stopped"]).await;
}

/// The unit as installed, but with `ExecStart=` pointing at the binary
/// under test, so that verify can check the command exists.
fn unit_with_binary(dir: &TempDir) -> std::path::PathBuf {
    let text = std::fs::read_to_string(UNIT).expect("read deploy/taproot.service");
    dir.write(
        "taproot.service",
        &text.replace("/usr/sbin/taproot", &taproot_binary().display().to_string()),
    )
}

fn systemd_analyze(args: &[&str], unit: &Path) -> std::process::Output {
    Command::new("systemd-analyze")
        .args(args)
        .arg(unit)
        .output()
        .expect("systemd-analyze runs (package systemd; tests/setup.sh installs it)")
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    let dir = TempDir::new("unit");
    let unit = unit_with_binary(&dir);
    let out = systemd_analyze(&["verify"], &unit);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze verify has no complaint: {stderr}"
    );
}

/// `systemd-analyze security` rates a unit from 0 (locked down) to 10.
/// Debian 12's pdns-recursor.service rates 2.3, kresd@.service 7.1,
/// unbound.service 9.6.
#[test]
fn unit_exposure_is_below_two() {
    let out = systemd_analyze(
        &["security", "--offline=true", "--no-pager"],
        Path::new(UNIT),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let exposure: f64 = stdout
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for taproot.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no exposure level in:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(exposure < 2.0, "exposure {exposure}:\n{stdout}");
}

#[test]
fn unit_is_notify_type_with_a_checked_reload_and_a_dedicated_user() {
    let text = std::fs::read_to_string(UNIT).expect("read deploy/taproot.service");
    let has = |line: &str| text.lines().any(|l| l.trim() == line);
    for line in [
        "Type=notify",
        "ExecReload=/usr/sbin/taproot --config /etc/taproot/taproot.toml check-config --quiet",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=taproot",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "RestartPreventExitStatus=2",
    ] {
        assert!(has(line), "deploy/taproot.service has {line:?}");
    }
}

/// utime + stime of `pid` in clock ticks, from /proc/PID/stat.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // The fields after the parenthesised command name, which may hold spaces.
    let after = stat.rsplit_once(')').expect("a stat line").1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| fields[i].parse::<u64>().expect("a tick count");
    field(11) + field(12) // utime and stime are fields 14 and 15 of the line
}

/// An idle daemon sleeps: its UDP workers block in a receive, before the
/// first query and after a resolution has come and gone (a worker runs its
/// misses on an event loop and must leave it, and its socket must be
/// blocking again, once they are done).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_daemon_uses_no_cpu() {
    let tree = three_level_tree().await;
    let (daemon, addr) = spawn(&tree, "");
    daemon.until_ready().await;
    let idle_ticks = || async {
        let before = cpu_ticks(daemon.pid());
        tokio::time::sleep(Duration::from_secs(2)).await;
        cpu_ticks(daemon.pid()) - before
    };
    let fresh = idle_ticks().await;
    assert!(fresh <= 20, "{fresh} ticks of CPU in 2 s idle after start");
    www_is_answered_over_udp(addr).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = idle_ticks().await;
    assert!(
        after <= 20,
        "{after} ticks of CPU in 2 s idle after a resolution"
    );
}
