//! Test support: the fake DNS tree on loopback, a stub client, and a
//! harness that runs taproot in-process against a tree.
#![allow(dead_code)]

pub mod browser;
pub mod client;
pub mod daemon;
pub mod dot;
pub mod e2e;
pub mod lab;
pub mod redis;
pub mod signed;
pub mod signed_tree;
pub mod tree;

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use taproot::clock::Clock;
use taproot::config::Config;
use taproot::server::{Running, Server};

use tree::FakeTree;

/// A config for tests: loopback listener on a free port, the tree's root
/// hints and port, loopback upstreams allowed, no metrics listener.
pub fn test_config(tree: &FakeTree) -> (Config, tempfile_path::TempPath) {
    let hints = tempfile_path::TempPath::with_contents("root.hints", &tree.root_hints());
    let mut config = Config::default();
    config.server.listen = vec!["127.0.0.1:0".parse().expect("literal")];
    config.server.threads = 1;
    config.resolver.root_hints_file = hints.path().display().to_string();
    config.resolver.upstream_port = tree.port();
    config.resolver.allow_loopback_upstreams = true;
    config.resolver.upstream_timeout_ms = 800;
    config.metrics.listen = String::new();
    // The fake tree is unsigned; DNSSEC tests turn validation back on with
    // their own trust anchors.
    config.dnssec.validation = false;
    (config, hints)
}

/// A running in-process taproot and what keeps its files alive.
pub struct Taproot {
    pub running: Running,
    pub addr: SocketAddr,
    _hints: tempfile_path::TempPath,
}

impl Taproot {
    /// What `/metrics` would show, rendered in-process (the test config
    /// has no metrics listener).
    pub fn metrics_text(&self) -> String {
        let h = &self.running.handler;
        h.metrics.render(
            &h.cache,
            h.resolver.inflight(),
            h.resolver.validation.keys.len(),
        )
    }

    pub async fn stop(self) {
        self.running.shutdown(Duration::from_secs(2)).await;
    }
}

/// Starts taproot against `tree`, after `tweak` adjusts the test config.
pub async fn start_taproot(tree: &FakeTree, tweak: impl FnOnce(&mut Config)) -> Taproot {
    start_taproot_on(tree, Clock::system(), tweak).await
}

/// [`start_taproot`] with the metrics and admin listener on a free
/// loopback port, and that port.
pub async fn start_taproot_with_admin(
    tree: &FakeTree,
    tweak: impl FnOnce(&mut Config),
) -> (Taproot, SocketAddr) {
    let t = start_taproot(tree, |c| {
        c.metrics.listen = "127.0.0.1:0".into();
        tweak(c);
    })
    .await;
    let admin = t.running.metrics_addr.expect("the admin listener is on");
    (t, admin)
}

/// [`start_taproot`] on `clock`: a manual clock lets TTLs and hold-downs
/// expire without sleeping.
pub async fn start_taproot_on(
    tree: &FakeTree,
    clock: Clock,
    tweak: impl FnOnce(&mut Config),
) -> Taproot {
    let (mut config, hints) = test_config(tree);
    tweak(&mut config);
    let running = Server::start_with_clock(config, clock)
        .await
        .expect("taproot starts");
    let addr = running.addr();
    Taproot {
        running,
        addr,
        _hints: hints,
    }
}

/// The value of one series (`name{labels}` exactly as exported) in a
/// Prometheus text exposition, 0 when it is absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// Minimal temp files without another dependency.
pub mod tempfile_path {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};

    static NEXT: AtomicU64 = AtomicU64::new(0);

    /// A file removed on drop.
    pub struct TempPath(PathBuf);

    impl TempPath {
        pub fn with_contents(stem: &str, text: &str) -> TempPath {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir()
                .join(format!("taproot-test-{}-{n}-{stem}", std::process::id()));
            let mut f = std::fs::File::create(&path).expect("create a temp file");
            f.write_all(text.as_bytes()).expect("write a temp file");
            TempPath(path)
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}
