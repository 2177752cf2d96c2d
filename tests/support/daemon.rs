//! The real `taproot` binary as a child process, with this test playing the
//! service manager's part: it writes the config file, listens on the
//! `NOTIFY_SOCKET` datagram socket for sd_notify(3) messages, sends
//! signals, and reads what the daemon logs on stderr.
//!

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::UnixDatagram;
use tokio::process::{Child, ChildStderr, Command};
use tokio::sync::watch;

use super::e2e::{TempDir, scrub_env, taproot_binary};
use super::tree::FakeTree;

/// How long a test waits for the daemon to say or do anything.
pub const DAEMON_WAIT: Duration = Duration::from_secs(10);

/// The config a test daemon starts from: DNS on `listen`, the fake tree as
/// its root, no metrics listener, one UDP thread. `extra` is appended
/// (e.g. `[[acl]]` rules, `[log]`).
pub fn config_text(tree: &FakeTree, hints: &Path, listen: SocketAddr, extra: &str) -> String {
    config_text_with_metrics(tree, hints, listen, "listen = \"\"", extra)
}

/// [`config_text`] with `metrics` as the body of its `[metrics]` table
/// (`listen = "127.0.0.1:9153"`, `admin_allow = [...]`): TOML allows a
/// table once, so it cannot come in `extra`.
pub fn config_text_with_metrics(
    tree: &FakeTree,
    hints: &Path,
    listen: SocketAddr,
    metrics: &str,
    extra: &str,
) -> String {
    format!(
        r#"[server]
listen = ["{listen}"]
threads = 1

[resolver]
root_hints_file = "{hints}"
upstream_port = {port}
allow_loopback_upstreams = true
upstream_timeout_ms = 800

[metrics]
{metrics}

[dnssec]
validation = false

{extra}
"#,
        hints = hints.display(),
        port = tree.port(),
    )
}

/// sd_notify(3) messages as the service manager receives them.
pub struct NotifySocket {
    socket: UnixDatagram,
    pub path: PathBuf,
}

impl NotifySocket {
    pub fn bind(dir: &TempDir) -> NotifySocket {
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        NotifySocket { socket, path }
    }

    /// The next message, split into its `KEY=value` lines.
    pub async fn next(&self) -> Vec<String> {
        let mut buf = vec![0u8; 4096];
        let len = tokio::time::timeout(DAEMON_WAIT, self.socket.recv(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no sd_notify message within {DAEMON_WAIT:?}"))
            .expect("read the notify socket");
        let text = String::from_utf8_lossy(&buf[..len]).into_owned();
        text.lines().map(str::to_string).collect()
    }

    /// A message if one arrives within `wait`.
    pub async fn next_within(&self, wait: Duration) -> Option<Vec<String>> {
        let mut buf = vec![0u8; 4096];
        let len = tokio::time::timeout(wait, self.socket.recv(&mut buf))
            .await
            .ok()?
            .expect("read the notify socket");
        let text = String::from_utf8_lossy(&buf[..len]).into_owned();
        Some(text.lines().map(str::to_string).collect())
    }
}

/// Everything the daemon wrote to stderr, line by line, with a watch that
/// ticks on each new line.
#[derive(Clone)]
pub struct Log {
    lines: Arc<Mutex<Vec<String>>>,
    count: watch::Receiver<usize>,
}

impl Log {
    fn collect(stderr: ChildStderr) -> Log {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, count) = watch::channel(0);
        let sink = lines.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                eprintln!("taproot| {line}");
                let mut all = sink.lock().unwrap_or_else(PoisonError::into_inner);
                all.push(line);
                tx.send_replace(all.len());
            }
        });
        Log { lines, count }
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn contains(&self, needle: &str) -> bool {
        self.lines().iter().any(|l| l.contains(needle))
    }

    /// Waits until a line holding every one of `needles` has been logged;
    /// returns that line.
    pub async fn wait_for(&self, needles: &[&str]) -> String {
        let find = || {
            self.lines()
                .into_iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
        };
        let mut count = self.count.clone();
        let found = tokio::time::timeout(DAEMON_WAIT, async {
            loop {
                if let Some(line) = find() {
                    return Some(line);
                }
                if count.changed().await.is_err() {
                    // stderr closed: the daemon is gone.
                    return find();
                }
            }
        })
        .await
        .ok()
        .flatten();
        found.unwrap_or_else(|| {
            panic!(
                "taproot never logged a line with {needles:?}; it logged:\n{}",
                self.lines().join("\n")
            )
        })
    }
}

/// A running `taproot run` child. Dropping it kills the child (SIGKILL).
pub struct Daemon {
    child: Child,
    pub notify: NotifySocket,
    pub log: Log,
    pub config: PathBuf,
    pub dir: TempDir,
}

impl Daemon {
    /// Starts `taproot --config <dir>/taproot.toml run` with `config` as the
    /// file and NOTIFY_SOCKET set. No `TAPROOT_*` variable of the test's own
    /// environment reaches it.
    pub fn spawn(dir: TempDir, config: &str) -> Daemon {
        let path = dir.write("taproot.toml", config);
        let notify = NotifySocket::bind(&dir);
        let mut command = Command::new(taproot_binary());
        command
            .arg("--config")
            .arg(&path)
            .arg("run")
            .env("NOTIFY_SOCKET", &notify.path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        scrub_env(command.as_std_mut());
        let mut child = command.spawn().expect("start the taproot binary");
        let stderr = child.stderr.take().expect("piped stderr");
        Daemon {
            child,
            notify,
            log: Log::collect(stderr),
            config: path,
            dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the child has not been reaped yet")
    }

    /// Replaces the config file (as an operator's editor would).
    pub fn rewrite_config(&self, text: &str) {
        let tmp = self.dir.write("taproot.toml.new", text);
        std::fs::rename(tmp, &self.config).expect("replace the config file");
    }

    /// Sends `signal` (a name `kill` knows: HUP, TERM) to this child only.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }

    /// Waits for the child to exit, for at most `DAEMON_WAIT`.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        tokio::time::timeout(DAEMON_WAIT, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("taproot did not exit within {DAEMON_WAIT:?}"))
            .expect("wait for the child")
    }

    /// Reads sd_notify messages until one has `READY=1`; returns them all.
    pub async fn until_ready(&self) -> Vec<Vec<String>> {
        let mut seen = Vec::new();
        loop {
            let message = self.notify.next().await;
            let ready = message.iter().any(|l| l == "READY=1");
            seen.push(message);
            if ready {
                return seen;
            }
        }
    }

    /// SIGHUP, then the RELOADING=1 and READY=1 messages that frame the
    /// reload; returns (RELOADING message, READY message).
    pub async fn reload(&self) -> (Vec<String>, Vec<String>) {
        self.signal("HUP");
        let reloading = self.notify.next().await;
        assert!(
            reloading.iter().any(|l| l == "RELOADING=1"),
            "the first message after SIGHUP is RELOADING=1: {reloading:?}"
        );
        let ready = self.notify.next().await;
        assert!(
            ready.iter().any(|l| l == "READY=1"),
            "the reload ends with READY=1: {ready:?}"
        );
        (reloading, ready)
    }
}
