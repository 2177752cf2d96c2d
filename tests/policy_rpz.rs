//! Response policy zones over real sockets: every action read with `dig`
//! (EDE from dig's own output), exact beating wildcard, the first `[[rpz]]`
//! winning, PASSTHRU exempting a name from a later wildcard, a CNAME
//! rewrite followed through the fake tree; and with the real binary, a
//! cached name blocked at once after SIGHUP adds a rule, and a malformed
//! line stopping the start with exit 2.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use support::client::{self, ask_udp_within, three_level_tree};
use support::daemon::{Daemon, config_text};
use support::e2e::{DigReply, TempDir, dig, free_port, off_thread, taproot_binary};
use support::{Taproot, metric, start_taproot};
use taproot::config::{RpzConfig, RpzEde};
use taproot::policy::rpz::Rules;

const BLOCK: &str = "$TTL 60
@ SOA ns.block.rpz. hostmaster.block.rpz. ( 1 3600 600 86400 60 )
  NS  ns.block.rpz.
; every name below example.co.kr. is blocked but the exceptions
*.example.co.kr            CNAME .
ns1.example.co.kr          CNAME *.
drop.example.co.kr         CNAME rpz-drop.
www.example.co.kr          CNAME rpz-tcp-only.
local.example.co.kr        A     192.0.2.55
rewrite.example.co.kr      CNAME www.example.co.kr.
";

/// A file that outlives the test's use of it (removed with the dir).
fn rpz(dir: &TempDir, name: &str, text: &str, zone: &str, ede: RpzEde) -> RpzConfig {
    RpzConfig {
        zone: zone.into(),
        file: dir.write(name, text).display().to_string(),
        primary: String::new(),
        ede,
    }
}

async fn start(zones: Vec<RpzConfig>) -> (support::tree::FakeTree, Taproot) {
    let tree = three_level_tree().await;
    let t = start_taproot(&tree, move |c| c.rpz = zones).await;
    (tree, t)
}

async fn dig_at(addr: SocketAddr, args: &[&str]) -> DigReply {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    off_thread(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        dig(addr, &args)
    })
    .await
}

fn ede_line(reply: &DigReply) -> String {
    reply
        .text
        .lines()
        .find(|l| l.contains("EDE:"))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_rpz_action_answers_as_bind_and_unbound_do() {
    let dir = TempDir::new("rpz-actions");
    let (_tree, t) = start(vec![rpz(
        &dir,
        "block.rpz",
        BLOCK,
        "block.rpz",
        RpzEde::Blocked,
    )])
    .await;

    let r = dig_at(t.addr, &["alias.example.co.kr", "A"]).await;
    assert_eq!(r.status, "NXDOMAIN", "{}", r.text);
    assert!(r.has_flag("aa"), "{}", r.text);
    let ede = ede_line(&r);
    assert!(
        ede.contains("15") && ede.contains("block.rpz"),
        "EDE 15 naming the zone: {}",
        r.text
    );

    let r = dig_at(t.addr, &["ns1.example.co.kr", "A"]).await;
    assert_eq!(r.status, "NOERROR", "{}", r.text);
    assert!(r.answer.is_empty(), "NODATA: {}", r.text);
    assert!(ede_line(&r).contains("15"), "{}", r.text);

    let r = dig_at(t.addr, &["local.example.co.kr", "A"]).await;
    assert_eq!(r.answers("A"), ["192.0.2.55"], "{}", r.text);
    let r = dig_at(t.addr, &["local.example.co.kr", "AAAA"]).await;
    assert_eq!(r.status, "NOERROR");
    assert!(
        r.answer.is_empty(),
        "local data without the type is NODATA: {}",
        r.text
    );

    // TCP-only: TC=1 over UDP (dig told not to retry), resolved over TCP.
    let r = dig_at(t.addr, &["+ignore", "www.example.co.kr", "A"]).await;
    assert!(r.has_flag("tc"), "{}", r.text);
    assert!(r.answer.is_empty());
    let r = dig_at(t.addr, &["+tcp", "www.example.co.kr", "A"]).await;
    assert_eq!(r.answers("A"), ["127.1.0.1", "127.1.0.2"], "{}", r.text);

    // DROP: nothing comes back.
    let silent = ask_udp_within(
        t.addr,
        &client::recursive("drop.example.co.kr.", RecordType::A),
        Duration::from_millis(500),
    )
    .await;
    assert!(silent.is_none(), "{silent:?}");

    // Without EDNS there is no OPT record and so no EDE.
    let r = dig_at(t.addr, &["+noedns", "alias.example.co.kr", "A"]).await;
    assert_eq!(r.status, "NXDOMAIN");
    assert!(ede_line(&r).is_empty(), "{}", r.text);

    let text = t.metrics_text();
    for (action, n) in [
        ("nxdomain", 2.0),
        ("nodata", 1.0),
        ("local_data", 2.0),
        ("drop", 1.0),
        ("tcp_only", 2.0),
    ] {
        let series = format!("taproot_policy_hits_total{{action=\"{action}\",zone=\"block.rpz\"}}");
        assert_eq!(metric(&text, &series), n, "{series}\n{text}");
    }
    assert_eq!(
        metric(&text, "taproot_policy_rules{zone=\"block.rpz\"}"),
        6.0,
        "{text}"
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cname_rewrite_is_answered_with_the_cname_and_the_targets_data() {
    let dir = TempDir::new("rpz-rewrite");
    let (tree, t) = start(vec![rpz(
        &dir,
        "block.rpz",
        BLOCK,
        "block.rpz",
        RpzEde::Blocked,
    )])
    .await;
    let r = dig_at(t.addr, &["rewrite.example.co.kr", "A"]).await;
    assert_eq!(r.status, "NOERROR", "{}", r.text);
    assert_eq!(r.answers("CNAME"), ["www.example.co.kr."], "{}", r.text);
    assert_eq!(r.answers("A"), ["127.1.0.1", "127.1.0.2"], "{}", r.text);
    assert!(
        tree.query_log()
            .iter()
            .any(|q| q.name.to_ascii().eq_ignore_ascii_case("www.example.co.kr.")),
        "the target came from the tree"
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exact_trigger_beats_a_wildcard_and_the_first_rpz_wins() {
    let dir = TempDir::new("rpz-order");
    let one = "*.co.kr CNAME *.\nexample.co.kr CNAME .\nwww.example.co.kr CNAME rpz-passthru.\n";
    let two = "*.example.co.kr CNAME .\nns1.example.co.kr CNAME .\n";
    let (_tree, t) = start(vec![
        rpz(&dir, "one", one, "one.rpz", RpzEde::Filtered),
        rpz(&dir, "two", two, "two.rpz", RpzEde::Blocked),
    ])
    .await;
    // one.rpz's exact trigger beats its own wildcard.
    let r = dig_at(t.addr, &["example.co.kr", "A"]).await;
    assert_eq!(r.status, "NXDOMAIN", "{}", r.text);
    let ede = ede_line(&r);
    assert!(
        ede.contains("17") && ede.contains("one.rpz"),
        "Filtered, zone one: {}",
        r.text
    );
    // one.rpz's wildcard matches first, though two.rpz has an exact trigger.
    let r = dig_at(t.addr, &["ns1.example.co.kr", "A"]).await;
    assert_eq!(r.status, "NOERROR", "{}", r.text);
    assert!(
        r.answer.is_empty() && ede_line(&r).contains("one.rpz"),
        "{}",
        r.text
    );
    // PASSTHRU in one.rpz exempts www from two.rpz's wildcard.
    let r = dig_at(t.addr, &["www.example.co.kr", "A"]).await;
    assert_eq!(r.answers("A"), ["127.1.0.1", "127.1.0.2"], "{}", r.text);
    assert!(ede_line(&r).is_empty(), "{}", r.text);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_a_transfer_hands_over_block_a_cached_name_without_a_reload() {
    let tree = three_level_tree().await;
    let t = start_taproot(&tree, |c| {
        c.rpz = vec![RpzConfig {
            zone: "feed.rpz".into(),
            file: String::new(),
            primary: "127.0.0.1:53".into(),
            ede: RpzEde::Blocked,
        }]
    })
    .await;
    // No rules until the first transfer: the name resolves, and is cached.
    for _ in 0..2 {
        let r = dig_at(t.addr, &["www.example.co.kr", "A"]).await;
        assert_eq!(r.answers("A"), ["127.1.0.1", "127.1.0.2"], "{}", r.text);
    }
    let origin = Name::from_ascii("feed.rpz.").unwrap();
    let records = vec![Record::from_rdata(
        Name::from_ascii("www.example.co.kr.feed.rpz.").unwrap(),
        60,
        RData::CNAME(CNAME(Name::root())),
    )];
    let rules = Rules::from_records(&origin, &records).expect("valid rules");
    assert!(t.running.handler.replace_rpz_rules("feed.rpz", rules));
    let r = dig_at(t.addr, &["www.example.co.kr", "A"]).await;
    assert_eq!(r.status, "NXDOMAIN", "blocked though cached: {}", r.text);
    assert!(ede_line(&r).contains("feed.rpz"), "{}", r.text);
    let text = t.metrics_text();
    assert_eq!(
        metric(&text, "taproot_policy_rules{zone=\"feed.rpz\"}"),
        1.0,
        "{text}"
    );
    assert!(
        !t.running
            .handler
            .replace_rpz_rules("other.rpz", Rules::default())
    );
    t.stop().await;
}

fn spawn_daemon(
    tree: &support::tree::FakeTree,
    dir: TempDir,
    rpz_text: &str,
) -> (Daemon, SocketAddr) {
    let hints = dir.write("root.hints", &tree.root_hints());
    let rpz_path = dir.write("block.rpz", rpz_text);
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port(&[IpAddr::from([127, 0, 0, 1])])));
    let extra = format!(
        "[[rpz]]\nzone = \"block.rpz\"\nfile = \"{}\"\n",
        rpz_path.display()
    );
    let config = config_text(tree, &hints, addr, &extra);
    (Daemon::spawn(dir, &config), addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_name_is_blocked_at_once_after_sighup_adds_a_rule() {
    let tree = three_level_tree().await;
    let (daemon, addr) = spawn_daemon(&tree, TempDir::new("rpz-sighup"), "other.example CNAME .\n");
    daemon.until_ready().await;
    let r = dig_at(addr, &["www.example.co.kr", "A"]).await;
    assert_eq!(r.answers("A"), ["127.1.0.1", "127.1.0.2"], "{}", r.text);
    let before = tree.total_queries();
    let r = dig_at(addr, &["www.example.co.kr", "A"]).await;
    assert_eq!(r.status, "NOERROR");
    assert_eq!(tree.total_queries(), before, "the name is cached");

    // The config text is unchanged; only the file on disk is.
    daemon
        .dir
        .write("block.rpz.new", "www.example.co.kr CNAME .\n");
    std::fs::rename(
        daemon.dir.path().join("block.rpz.new"),
        daemon.dir.path().join("block.rpz"),
    )
    .expect("replace the RPZ file");
    daemon.reload().await;
    let r = dig_at(addr, &["www.example.co.kr", "A"]).await;
    assert_eq!(r.status, "NXDOMAIN", "blocked though cached: {}", r.text);

    // A broken file on the next SIGHUP is refused; the rule stays.
    daemon
        .dir
        .write("block.rpz", "www.example.co.kr CNAME .\nbroken A 1.2.3\n");
    daemon.reload().await;
    daemon.log.wait_for(&["reload refused", "line 2"]).await;
    let r = dig_at(addr, &["www.example.co.kr", "A"]).await;
    assert_eq!(r.status, "NXDOMAIN", "the old policy stays: {}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_rpz_line_stops_the_start_with_exit_2_naming_key_file_and_line() {
    let tree = three_level_tree().await;
    let text = "$TTL 60\nfine.example CNAME .\nbad.example CNAME\n";
    let (mut daemon, _addr) = spawn_daemon(&tree, TempDir::new("rpz-bad"), text);
    let status = daemon.wait_exit().await;
    assert_eq!(status.code(), Some(2), "{:?}", daemon.log.lines());
    let path = daemon.dir.path().join("block.rpz").display().to_string();
    let line = daemon.log.wait_for(&["rpz[0].file", &path, "line 3"]).await;
    assert!(line.contains("config error"), "{line}");

    // check-config finds it too.
    let out = std::process::Command::new(taproot_binary())
        .arg("--config")
        .arg(&daemon.config)
        .arg("check-config")
        .output()
        .expect("run check-config");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("rpz[0].file") && stderr.contains("line 3"),
        "{stderr}"
    );
}
