//! Redis for the shared-cache tests: a standalone `redis-server`, or a
//! three-master Redis Cluster made with `redis-cli --cluster create`, on
//! loopback ports, each in its own temp dir with persistence off
//! (`--save ''`), killed on drop. Commands go through `redis-cli`, the
//! operator's tool, so a test reads Redis as an operator would.

use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::e2e::{Process, START_WAIT, TempDir, free_port, poll, tool};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// One `redis-server` on 127.0.0.1.
pub struct RedisServer {
    pub port: u16,
    process: Option<Process>,
    dir: TempDir,
    extra: Vec<String>,
}

impl RedisServer {
    /// A standalone server, ready (it answered PING).
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> RedisServer {
        let dir = TempDir::new("redis");
        let port = free_port(&[LOOPBACK]);
        let mut server = RedisServer {
            port,
            process: None,
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(tool("redis-server"));
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--protected-mode", "no"])
            // DEBUG SLEEP stalls it for the slow-Redis test (Redis 7
            // refuses DEBUG unless told; `local`: from loopback only).
            .args(["--enable-debug-command", "local", "--dir"])
            .arg(self.dir.path())
            .args(&self.extra);
        let log = self.dir.path().join("redis.log");
        self.process = Some(Process::spawn("redis-server", cmd, log));
        let ready = poll(START_WAIT, || {
            (self.cli(&["PING"]).trim() == "PONG").then_some(())
        });
        if ready.is_none() {
            panic!(
                "redis-server on port {} did not answer PING; its log:\n{}",
                self.port,
                self.process.as_ref().map(Process::log).unwrap_or_default()
            );
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs `redis-cli -p <port> <args>` and returns its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = cli_output(self.port, args);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The number of keys (`DBSIZE`).
    pub fn dbsize(&self) -> u64 {
        self.cli(&["DBSIZE"]).trim().parse().unwrap_or(0)
    }

    /// The keys that match `pattern` (`--scan`).
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        self.cli(&["--scan", "--pattern", pattern])
            .lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(p) = self.process.take() {
            p.signal("KILL");
            drop(p);
        }
    }

    /// Starts it again on the same port (empty: persistence is off).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Makes the server unresponsive for `seconds` (`DEBUG SLEEP` from a
    /// background `redis-cli`); returns the child so the test can wait.
    pub fn stall(&self, seconds: f64) -> std::process::Child {
        Command::new(tool("redis-cli"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["DEBUG", "SLEEP", &seconds.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-cli starts")
    }
}

fn cli_output(port: u16, args: &[&str]) -> Output {
    Command::new(tool("redis-cli"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli runs")
}

/// Three masters, no replicas, every slot assigned.
pub struct RedisCluster {
    pub masters: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three cluster-enabled servers and joins them (`redis-cli
    /// --cluster create … --cluster-replicas 0 --cluster-yes`); returns
    /// once `CLUSTER INFO` says `cluster_state:ok` on every node.
    pub fn start() -> RedisCluster {
        let masters: Vec<RedisServer> = (0..3)
            .map(|_| {
                // The bus port is given, not left at port + 10000, which
                // may be taken (or past 65535).
                let bus = free_port(&[LOOPBACK]).to_string();
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus,
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ])
            })
            .collect();
        let nodes: Vec<String> = masters
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.port))
            .collect();
        let out = Command::new(tool("redis-cli"))
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let ok = poll(START_WAIT, || {
            masters
                .iter()
                .all(|m| m.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
                .then_some(())
        });
        assert!(ok.is_some(), "the cluster did not reach cluster_state:ok");
        RedisCluster { masters }
    }

    /// The seed URLs, as `cache.shared.cluster` takes them.
    pub fn urls(&self) -> Vec<String> {
        self.masters.iter().map(RedisServer::url).collect()
    }
}

/// Waits up to `within` for `check` on a blocking thread's schedule (for
/// counts that background writes make true).
pub fn wait_until(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    poll(within, || check().then_some(())).is_some()
}
