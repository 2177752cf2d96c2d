//! The operator commands against the real daemon: `taproot cache stats`,
//! `taproot cache flush [NAME] [--subtree]` and `taproot trace` find the
//! daemon through the same `--config` as `taproot run` (`metrics.listen`),
//! print the daemon's reply, and fail with one line and exit status 1 when
//! the daemon is not there, its admin listener is off, `admin_allow` keeps
//! them out, or it does not answer in time.
//!
//! The daemon runs against the three-level fake tree on loopback, so "the
//! name was flushed" is checked where it shows: the next question goes to
//! the zone's server again.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use support::client::{self, EXAMPLE_IP, ROOT_IP, ask_udp, three_level_tree};
use support::daemon::{Daemon, config_text_with_metrics};
use support::e2e::{TempDir, free_port, scrub_env, taproot_binary};
use support::tree::FakeTree;
use taproot::cache::CacheKind;

/// Longer than the longest request bound (30 s for a trace).
const CLI_WAIT: Duration = Duration::from_secs(40);

const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// The daemon with its admin listener on a free loopback port, and the fake
/// tree it resolves from.
struct Lab {
    tree: FakeTree,
    daemon: Daemon,
    dns: SocketAddr,
    admin: SocketAddr,
}

impl Lab {
    /// Starts the daemon with `metrics` as its `[metrics]` table after
    /// `listen = <free port>`, and waits for READY=1.
    async fn start(metrics: &str) -> Lab {
        let tree = three_level_tree().await;
        let dir = TempDir::new("admin-cli");
        let hints = dir.write("root.hints", &tree.root_hints());
        let dns = SocketAddr::new(LOOPBACK, free_port(&[LOOPBACK]));
        let admin = SocketAddr::new(LOOPBACK, free_port(&[LOOPBACK]));
        let config = config_text_with_metrics(
            &tree,
            &hints,
            dns,
            &format!("listen = \"{admin}\"\n{metrics}"),
            "",
        );
        let daemon = Daemon::spawn(dir, &config);
        daemon.until_ready().await;
        Lab {
            tree,
            daemon,
            dns,
            admin,
        }
    }

    /// `taproot --config <the daemon's file> args…`.
    async fn taproot(&self, args: &[&str]) -> Output {
        let mut all = vec!["--config", path_str(&self.daemon.config)];
        all.extend_from_slice(args);
        taproot(&all).await
    }

    /// Asks www.example.co.kr. A and returns how many queries the
    /// example.co.kr. server and the root got meanwhile.
    async fn ask_www(&self) -> (usize, usize) {
        let (example, root) = (
            self.tree.queries_to(EXAMPLE_IP),
            self.tree.queries_to(ROOT_IP),
        );
        let reply = ask_udp(
            self.dns,
            &client::recursive("www.example.co.kr.", RecordType::A),
        )
        .await;
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert!(client::first_a(&reply).is_some(), "{reply:?}");
        (
            self.tree.queries_to(EXAMPLE_IP) - example,
            self.tree.queries_to(ROOT_IP) - root,
        )
    }

    /// Asks www twice: the first goes upstream, the second is a cache hit.
    async fn cache_www(&self) {
        let (upstream, _) = self.ask_www().await;
        assert!(upstream > 0, "the first question goes to the zone's server");
        assert_eq!(
            self.ask_www().await,
            (0, 0),
            "the second is answered from the cache"
        );
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// Runs the binary with `args` and no inherited `TAPROOT_*` variable.
async fn taproot(args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(taproot_binary());
    scrub_env(command.as_std_mut());
    command.args(args).stdin(Stdio::null()).kill_on_drop(true);
    tokio::time::timeout(CLI_WAIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("taproot {args:?} did not exit within {CLI_WAIT:?}"))
        .expect("run the taproot binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit status 1 and exactly one line on stderr, which it returns.
fn one_line_failure(o: &Output) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(stdout(o).is_empty(), "nothing on stdout: {}", stdout(o));
    err
}

/// A config for the commands alone (no daemon needs it): fake root hints
/// and `[metrics]` as given.
fn client_config(dir: &TempDir, metrics: &str) -> String {
    let hints = dir.write(
        "root.hints",
        ". 3600000 NS a.root.\na.root. 3600000 A 127.0.9.1\n",
    );
    let path = dir.write(
        "taproot.toml",
        &format!(
            "[resolver]\nroot_hints_file = \"{}\"\n[metrics]\n{metrics}\n",
            hints.display()
        ),
    );
    path_str(&path).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_stats_prints_pretty_json_with_every_cache_kind() {
    let lab = Lab::start("").await;
    lab.ask_www().await;
    let out = lab.taproot(&["cache", "stats"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.lines().count() > 1, "pretty-printed: {text}");
    let stats: serde_json::Value = serde_json::from_str(&text).expect("cache stats is JSON");
    for kind in CacheKind::ALL {
        let counters = &stats["kinds"][kind.as_str()];
        for counter in ["hits", "misses", "inserts", "evictions"] {
            assert!(
                counters[counter].is_u64(),
                "kinds.{}.{counter} is a count: {text}",
                kind.as_str()
            );
        }
    }
    assert!(
        stats["kinds"]["answer"]["misses"].as_u64() > Some(0),
        "the question for www was looked up: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_name_is_asked_upstream_again() {
    let lab = Lab::start("").await;
    lab.cache_www().await;
    let out = lab.taproot(&["cache", "flush", "www.example.co.kr"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "flushed www.example.co.kr.\n");
    let (to_zone, to_root) = lab.ask_www().await;
    assert!(to_zone > 0, "www went to example.co.kr.'s server again");
    assert_eq!(
        to_root, 0,
        "the delegation stayed cached: only www was flushed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_subtree_takes_the_names_below_it_along() {
    let lab = Lab::start("").await;
    lab.cache_www().await;
    let out = lab
        .taproot(&["cache", "flush", "example.co.kr", "--subtree"])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "flushed example.co.kr. and below\n");
    let (to_zone, _) = lab.ask_www().await;
    assert!(
        to_zone > 0,
        "www, below example.co.kr., went upstream again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushing_everything_sends_the_next_question_back_to_the_root() {
    let lab = Lab::start("").await;
    lab.cache_www().await;
    let out = lab.taproot(&["cache", "flush"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "flushed all\n");
    let (to_zone, to_root) = lab.ask_www().await;
    assert!(to_zone > 0, "www went upstream again");
    assert!(to_root > 0, "the walk started over at the root");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_the_daemon_refuses_exits_one_with_the_status_and_its_reason() {
    let lab = Lab::start("").await;
    let out = lab.taproot(&["cache", "flush", "www..example"]).await;
    let err = one_line_failure(&out);
    assert!(err.contains("HTTP 400"), "{err}");
    assert!(err.contains("bad name"), "the body's first line: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_outside_admin_allow_exits_one_naming_admin_allow() {
    let lab = Lab::start("admin_allow = [\"192.0.2.0/24\"]").await;
    for args in [&["cache", "stats"][..], &["cache", "flush"][..]] {
        let out = lab.taproot(args).await;
        let err = one_line_failure(&out);
        assert!(err.contains("metrics.admin_allow"), "{err}");
        assert!(
            err.contains(&lab.admin.to_string()),
            "names the daemon: {err}"
        );
        assert!(
            err.contains("address 127.0.0.1 "),
            "names the refused address: {err}"
        );
    }
    // Refused means nothing was flushed.
    lab.cache_www().await;
    lab.taproot(&["cache", "flush"]).await;
    assert_eq!(lab.ask_www().await, (0, 0), "www is still cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_daemon_running_exits_one_naming_the_address_and_the_config() {
    let dir = TempDir::new("admin-cli");
    let port = free_port(&[LOOPBACK]);
    let config = client_config(&dir, &format!("listen = \"127.0.0.1:{port}\""));
    for args in [&["cache", "stats"][..], &["trace", "www.example.co.kr"][..]] {
        let mut all = vec!["--config", &config];
        all.extend_from_slice(args);
        let out = taproot(&all).await;
        let err = one_line_failure(&out);
        assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
        assert!(err.contains("metrics.listen"), "{err}");
        assert!(err.contains(&config), "names the config file: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_listen_address_is_reached_on_loopback() {
    // Nothing listens, so the refusal names where the command went.
    let dir = TempDir::new("admin-cli");
    let port = free_port(&[LOOPBACK]);
    let config = client_config(&dir, &format!("listen = \"0.0.0.0:{port}\""));
    let out = taproot(&["--config", &config, "cache", "stats"]).await;
    let err = one_line_failure(&out);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_listener_turned_off_exits_one_naming_metrics_listen() {
    let dir = TempDir::new("admin-cli");
    let config = client_config(&dir, "listen = \"\"");
    let out = taproot(&["--config", &config, "cache", "flush"]).await;
    let err = one_line_failure(&out);
    assert!(err.contains("metrics.listen"), "{err}");
    assert!(err.contains("off"), "{err}");
    assert!(err.contains(&config), "names the config file: {err}");
    // The flag overrides the file, and the message says where it came from.
    let dir = TempDir::new("admin-cli");
    let config = client_config(&dir, "listen = \"127.0.0.1:9\"");
    let out = taproot(&[
        "--config",
        &config,
        "--metrics-listen",
        "",
        "cache",
        "stats",
    ])
    .await;
    let err = one_line_failure(&out);
    assert!(err.contains("--metrics-listen"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_that_never_answers_is_given_up_on_in_five_seconds() {
    // Accepts connections and never says a word.
    let silent = tokio::net::TcpListener::bind((LOOPBACK, 0))
        .await
        .expect("bind");
    let addr = silent.local_addr().expect("local addr");
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            open.push(stream);
        }
    });
    let dir = TempDir::new("admin-cli");
    let config = client_config(&dir, &format!("listen = \"{addr}\""));
    let started = std::time::Instant::now();
    let out = taproot(&["--config", &config, "cache", "stats"]).await;
    let took = started.elapsed();
    held.abort();
    let err = one_line_failure(&out);
    assert!(err.contains(&addr.to_string()), "{err}");
    assert!(err.contains("within 5 s"), "{err}");
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(15),
        "gave up after {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_still_exits_two() {
    let dir = TempDir::new("admin-cli");
    let path = dir.write("bad.toml", "[metrics]\nlisten = \"nonsense\"\n");
    let out = taproot(&["--config", path_str(&path), "cache", "stats"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("metrics.listen"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_prints_the_question_the_answer_and_the_events_as_json() {
    let lab = Lab::start("").await;
    let out = lab
        .taproot(&["trace", "www.example.co.kr", "A", "--format", "json"])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let trace: serde_json::Value =
        serde_json::from_str(&text).expect("trace --format json is JSON");
    for key in ["question", "answer", "events"] {
        assert!(trace.get(key).is_some(), "has {key}: {text}");
    }
    assert!(
        trace["events"].as_array().is_some_and(|e| !e.is_empty()),
        "{text}"
    );
    assert!(
        lab.tree.queries_to(ROOT_IP) > 0,
        "--cache bypass (the default) walked from the root: {text}"
    );
}
