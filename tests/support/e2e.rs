//! The process harness: real peers as subprocesses on loopback.
//!
//! ```text
//!  dig / kdig ──► taproot (the real binary, a config file) ──► NSD ×5, one per server address
//!                    │ /metrics
//!                    ▼
//!                Prometheus (scrapes every second; tests read its query API)
//! ```
//!
//! - [`Nsd`] runs one NSD per server address of a small tree ([`lab_tree`]),
//!   all on one free port, so each server knows only its own zones and a
//!   referral really leads somewhere else.
//! - [`TaprootProcess`] runs `target/…/taproot` with a TOML config written
//!   from a [`Config`] the test may tweak.
//! - [`Prometheus`] runs a Prometheus server with a temp config and storage.
//! - [`dig`]/[`kdig`] run the clients and parse their output into [`DigReply`];
//!   [`http`] is a tiny HTTP/1.0 client and [`scrape`] reads the text format.
//!
//! Every wait is bounded; every child runs in its own process group, which is
//! sent SIGTERM (then SIGKILL) on drop. A missing tool fails the test with a
//! pointer to `tests/setup.sh` instead of passing silently.

use std::collections::BTreeSet;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use taproot::config::Config;

/// How long any peer may take to come up.
pub const START_WAIT: Duration = Duration::from_secs(15);

/// The server addresses of [`lab_tree`], one NSD each.
pub const ROOT_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 1);
pub const LAB_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 2);
pub const CORP_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 3);
pub const ENG_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 4);
pub const CDN_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 5);

/// The root server's name, authoritative data of the root zone itself.
pub const ROOT_NS: &str = "a.root-servers.";

/// One zone and the address of the server that serves it.
#[derive(Debug, Clone)]
pub struct Zone {
    pub origin: &'static str,
    pub server: Ipv4Addr,
    pub text: String,
}

/// A small tree of real zone files:
///
/// ```text
/// .                 127.0.1.1
/// └─ lab.           127.0.1.2
///    ├─ corp.lab.   127.0.1.3
///    │  └─ eng.corp.lab.  127.0.1.4   (third level: A, AAAA, MX, TXT, CNAME → cdn.lab.)
///    └─ cdn.lab.    127.0.1.5
/// ```
///
/// Answer data uses documentation addresses (RFC 5737, RFC 3849); only the
/// servers are on loopback.
pub fn lab_tree() -> Vec<Zone> {
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
                 corp     IN NS  ns.corp\n\
                 ns.corp  IN A   {CORP_IP}\n\
                 cdn      IN NS  ns.cdn\n\
                 ns.cdn   IN A   {CDN_IP}\n"
            ),
        },
        Zone {
            origin: "corp.lab.",
            server: CORP_IP,
            text: format!(
                "$ORIGIN corp.lab.\n$TTL 3600\n\
                 @        IN SOA ns hostmaster 1 1800 900 604800 600\n\
                 @        IN NS  ns\n\
                 ns       IN A   {CORP_IP}\n\
                 www      IN A   192.0.2.3\n\
                 eng      IN NS  ns.eng\n\
                 ns.eng   IN A   {ENG_IP}\n"
            ),
        },
        Zone {
            origin: "eng.corp.lab.",
            server: ENG_IP,
            text: format!(
                "$ORIGIN eng.corp.lab.\n$TTL 3600\n\
                 @        IN SOA ns1 hostmaster 2024010101 3600 600 86400 300\n\
                 @        IN NS  ns1\n\
                 @        IN MX  10 mail\n\
                 @        IN TXT \"v=spf1 mx -all\"\n\
                 ns1      IN A   {ENG_IP}\n\
                 mail     IN A   192.0.2.25\n\
                 www      IN A   192.0.2.1\n\
                 www      IN AAAA 2001:db8::1\n\
                 docs     IN CNAME edge.cdn.lab.\n"
            ),
        },
        Zone {
            origin: "cdn.lab.",
            server: CDN_IP,
            text: format!(
                "$ORIGIN cdn.lab.\n$TTL 3600\n\
                 @        IN SOA ns hostmaster 1 1800 900 604800 600\n\
                 @        IN NS  ns\n\
                 ns       IN A   {CDN_IP}\n\
                 edge 300 IN A   192.0.2.80\n"
            ),
        },
    ]
}

// ---------------------------------------------------------------------------
// Tools, temp dirs, ports, children

/// The path of an installed tool, or a failed test that says how to get it.
pub fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let sbin = ["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from);
    std::env::split_paths(&path)
        .chain(sbin)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed; run `bash tests/setup.sh` to install the test peers \
                 (dig, kdig, nsd, unbound, openssl, ldns-signzone, prometheus, promtool)"
            )
        })
}

/// The `taproot` binary under test. Integration tests get its path from
/// cargo; the examples that borrow this harness (`examples/cold_compare.rs`)
/// are not told it, and use the release build.
pub fn taproot_binary() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_taproot") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/taproot"),
    }
}

/// Removes every `TAPROOT_*` variable the test process inherited, so that
/// only the config a test writes reaches the binary.
pub fn scrub_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TAPROOT_") {
            command.env_remove(key);
        }
    }
}

/// A directory removed with everything in it on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(stem: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("taproot-e2e-{}-{n}-{stem}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temp dir");
        TempDir(path)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write a temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port free for UDP and TCP on every address in `addrs`, never handed out
/// twice in this process (so parallel tests do not race for one).
pub fn free_port(addrs: &[IpAddr]) -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let first = *addrs.first().expect("at least one address");
    for _ in 0..100 {
        let Ok(probe) = UdpSocket::bind((first, 0)) else {
            continue;
        };
        let Ok(port) = probe.local_addr().map(|a| a.port()) else {
            continue;
        };
        let mut held_udp = vec![probe];
        let mut held_tcp = Vec::new();
        let all_free = addrs.iter().enumerate().all(|(i, ip)| {
            let udp_ok = i == 0
                || UdpSocket::bind((*ip, port))
                    .map(|s| held_udp.push(s))
                    .is_ok();
            udp_ok
                && TcpListener::bind((*ip, port))
                    .map(|s| held_tcp.push(s))
                    .is_ok()
        });
        if !all_free {
            continue;
        }
        let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if handed.insert(port) {
            return port;
        }
    }
    panic!("no port free on all of {addrs:?} after 100 tries");
}

/// A child process in its own process group, stopped on drop.
pub struct Process {
    child: Child,
    name: String,
    log: PathBuf,
}

impl Process {
    /// Spawns `command` with stdout and stderr going to `log`.
    pub fn spawn(name: &str, mut command: Command, log: PathBuf) -> Process {
        let out = File::create(&log).expect("create a log file");
        let err = out.try_clone().expect("clone a log file handle");
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Process {
            child,
            name: name.to_string(),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `Some(status)` when it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Panics with the log when it has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.exited() {
            panic!(
                "{} exited early ({status}); its log:\n{}",
                self.name,
                self.log()
            );
        }
    }

    /// Sends `signal` (`HUP`, `TERM`, …) to the process itself, not its
    /// group: NSD's main process reloads on SIGHUP, its children must not
    /// see it.
    pub fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    fn signal_group(&self, signal: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg("--")
            .arg(format!("-{}", self.child.id()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.exited().is_none() {
            self.signal_group("TERM");
            let deadline = Instant::now() + Duration::from_secs(3);
            while self.exited().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Children NSD forked may outlive their parent: the whole group goes.
        self.signal_group("KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 50 ms until it returns `Some` or `within` passes.
pub fn poll<T>(within: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs blocking harness code from an async test.
pub async fn off_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

// ---------------------------------------------------------------------------
// NSD

/// Writes one NSD config (and its zone files) per server address of
/// `zones` under `dir`, every server on `port`; returns each address with
/// its `nsd.conf`. Separate from [`Nsd::start`] so a test can start the
/// servers elsewhere, e.g. inside a network namespace of its own.
pub fn nsd_configs(zones: &[Zone], port: u16, dir: &Path) -> Vec<(Ipv4Addr, PathBuf)> {
    nsd_configs_with(zones, port, dir, "")
}

/// [`nsd_configs`] with more `server:` options for every server, e.g.
/// response rate limiting (`rrl-ratelimit`, `rrl-slip`), each option on a
/// line of its own.
pub fn nsd_configs_with(
    zones: &[Zone],
    port: u16,
    dir: &Path,
    server_options: &str,
) -> Vec<(Ipv4Addr, PathBuf)> {
    nsd_configs_with_zone_options(zones, port, dir, server_options, "")
}

/// [`nsd_configs_with`] with `zone:` options for every zone, e.g.
/// `provide-xfr: 127.0.0.0/8 NOKEY` to allow zone transfers, each option
/// on a line of its own. Zone `i` of a server is in `zone{i}.zone` of its
/// directory ([`Nsd::reload_zone`] rewrites it).
pub fn nsd_configs_with_zone_options(
    zones: &[Zone],
    port: u16,
    dir: &Path,
    server_options: &str,
    zone_options: &str,
) -> Vec<(Ipv4Addr, PathBuf)> {
    let ips: BTreeSet<Ipv4Addr> = zones.iter().map(|z| z.server).collect();
    let mut out = Vec::new();
    for ip in ips {
        let home = dir.join(ip.to_string());
        std::fs::create_dir_all(&home).expect("create an NSD dir");
        let home_s = home.display().to_string();
        let mut conf = format!(
            "server:\n\
             \x20 ip-address: {ip}\n\
             \x20 port: {port}\n\
             \x20 do-ip6: no\n\
             \x20 username: \"\"\n\
             \x20 chroot: \"\"\n\
             \x20 database: \"\"\n\
             \x20 zonesdir: \"{home_s}\"\n\
             \x20 zonelistfile: \"{home_s}/zone.list\"\n\
             \x20 xfrdfile: \"{home_s}/xfrd.state\"\n\
             \x20 xfrdir: \"{home_s}\"\n\
             \x20 pidfile: \"{home_s}/nsd.pid\"\n\
             \x20 server-count: 1\n\
             \x20 verbosity: 1\n\
             \x20 hide-version: yes\n"
        );
        for option in server_options.lines().filter(|l| !l.trim().is_empty()) {
            conf.push_str(&format!("  {}\n", option.trim()));
        }
        conf.push_str("remote-control:\n  control-enable: no\n");
        for (i, zone) in zones.iter().filter(|z| z.server == ip).enumerate() {
            let file = format!("zone{i}.zone");
            std::fs::write(home.join(&file), &zone.text).expect("write a zone file");
            conf.push_str(&format!(
                "zone:\n  name: \"{}\"\n  zonefile: \"{file}\"\n",
                zone.origin
            ));
            for option in zone_options.lines().filter(|l| !l.trim().is_empty()) {
                conf.push_str(&format!("  {}\n", option.trim()));
            }
        }
        let conf_path = home.join("nsd.conf");
        std::fs::write(&conf_path, conf).expect("write nsd.conf");
        out.push((ip, conf_path));
    }
    out
}

/// One NSD process per server address, all on one port.
pub struct Nsd {
    port: u16,
    zones: Vec<Zone>,
    // Declared before `dir` so the processes stop before their files go.
    servers: Vec<(Ipv4Addr, Process)>,
    _dir: TempDir,
}

impl Nsd {
    /// Starts NSD for `zones`; panics (with NSD's log) if it cannot.
    pub fn start(zones: Vec<Zone>) -> Nsd {
        Self::start_with(zones, "")
    }

    /// [`Nsd::start`] with more `server:` options (see [`nsd_configs_with`]).
    pub fn start_with(zones: Vec<Zone>, server_options: &str) -> Nsd {
        Self::start_with_zone_options(zones, server_options, "")
    }

    /// [`Nsd::start_with`] with `zone:` options for every zone (see
    /// [`nsd_configs_with_zone_options`]).
    pub fn start_with_zone_options(
        zones: Vec<Zone>,
        server_options: &str,
        zone_options: &str,
    ) -> Nsd {
        let nsd = tool("nsd");
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(&nsd, &zones, server_options, zone_options) {
                Ok(n) => return n,
                Err(log) => last = log,
            }
        }
        panic!("NSD did not start in three tries; last log:\n{last}");
    }

    fn try_start(
        nsd: &Path,
        zones: &[Zone],
        server_options: &str,
        zone_options: &str,
    ) -> Result<Nsd, String> {
        let ips: BTreeSet<Ipv4Addr> = zones.iter().map(|z| z.server).collect();
        let addrs: Vec<IpAddr> = ips.iter().map(|ip| IpAddr::V4(*ip)).collect();
        let port = free_port(&addrs);
        let dir = TempDir::new("nsd");
        let mut servers = Vec::new();
        for (ip, conf_path) in
            nsd_configs_with_zone_options(zones, port, dir.path(), server_options, zone_options)
        {
            let mut cmd = Command::new(nsd);
            cmd.arg("-d").arg("-c").arg(&conf_path);
            let log = conf_path.with_file_name("nsd.log");
            servers.push((ip, Process::spawn(&format!("nsd {ip}"), cmd, log)));
        }
        // Ready when each server answers the SOA of its first zone authoritatively.
        for (ip, process) in &mut servers {
            let origin = zones
                .iter()
                .find(|z| z.server == *ip)
                .map(|z| z.origin)
                .unwrap_or(".");
            let to = SocketAddr::new(IpAddr::V4(*ip), port);
            let ready = poll(START_WAIT, || {
                if process.exited().is_some() {
                    return Some(false);
                }
                let reply = dns_query(to, origin, RecordType::SOA, Duration::from_millis(300))?;
                reply.metadata.authoritative.then_some(true)
            });
            if ready != Some(true) {
                return Err(process.log());
            }
        }
        Ok(Nsd {
            port,
            zones: zones.to_vec(),
            servers,
            _dir: dir,
        })
    }

    /// The port every server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A server's socket address.
    pub fn addr(&self, ip: Ipv4Addr) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(ip), self.port)
    }

    /// Root hints in named.root format for the root zone's server.
    pub fn root_hints(&self) -> String {
        let root = self
            .zones
            .iter()
            .find(|z| z.origin == ".")
            .expect("the tree has a root zone");
        format!(
            "; root hints of the NSD lab tree on port {}\n\
             .\t3600000\tNS\t{ROOT_NS}\n\
             {ROOT_NS}\t3600000\tA\t{}\n",
            self.port, root.server
        )
    }

    /// Replaces `origin`'s zone file with `text` and makes its server read
    /// it: NSD 4 rereads zone files whose mtime changed on SIGHUP (nsd(8)),
    /// no remote control needed. Returns at once; [`Nsd::serial`] tells
    /// when the new version is served.
    pub fn reload_zone(&mut self, origin: &str, text: &str) {
        let zone = self
            .zones
            .iter()
            .find(|z| z.origin == origin)
            .unwrap_or_else(|| panic!("no zone {origin} in this tree"))
            .clone();
        let index = self
            .zones
            .iter()
            .filter(|z| z.server == zone.server)
            .position(|z| z.origin == origin)
            .expect("the zone is among its server's");
        let file = self
            ._dir
            .path()
            .join(zone.server.to_string())
            .join(format!("zone{index}.zone"));
        std::fs::write(&file, text).expect("rewrite a zone file");
        if let Some(z) = self.zones.iter_mut().find(|z| z.origin == origin) {
            z.text = text.to_string();
        }
        let (_, process) = self
            .servers
            .iter()
            .find(|(ip, _)| *ip == zone.server)
            .expect("a server per address");
        process.signal("HUP");
    }

    /// The serial `origin`'s server answers with now, if it answers.
    pub fn serial(&self, origin: &str) -> Option<u32> {
        let zone = self.zones.iter().find(|z| z.origin == origin)?;
        soa_serial(self.addr(zone.server), origin)
    }

    /// Every server's log, for failure messages.
    pub fn logs(&self) -> String {
        self.servers
            .iter()
            .map(|(ip, p)| format!("--- nsd {ip}\n{}", p.log()))
            .collect()
    }
}

/// The serial of `origin`'s SOA as `server` answers it now (UDP, 300 ms).
pub fn soa_serial(server: SocketAddr, origin: &str) -> Option<u32> {
    let reply = dns_query(server, origin, RecordType::SOA, Duration::from_millis(300))?;
    reply.answers.iter().find_map(|r| match &r.data {
        hickory_proto::rr::RData::SOA(soa) => Some(soa.serial),
        _ => None,
    })
}

/// One UDP question, answered within `wait` or `None`.
pub fn dns_query(
    to: SocketAddr,
    qname: &str,
    rtype: RecordType,
    wait: Duration,
) -> Option<Message> {
    let mut query = Message::query();
    query.add_query(Query::query(Name::from_ascii(qname).ok()?, rtype));
    let bytes = query.to_vec().ok()?;
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).ok()?;
    socket.set_read_timeout(Some(wait)).ok()?;
    socket.send_to(&bytes, to).ok()?;
    let mut buf = [0u8; 4096];
    let (len, _) = socket.recv_from(&mut buf).ok()?;
    Message::from_vec(&buf[..len]).ok()
}

// ---------------------------------------------------------------------------
// Knot DNS

/// One `knotd` serving `zones` on one address (every zone's `server`),
/// with its control socket in its temp dir for `knotc`.
///
/// Zones load with `zonefile-load: difference`: a reloaded zone file
/// becomes a journal entry, so Knot answers IXFR with the difference
/// (RFC 1995), which NSD 4.6 cannot (it answers IXFR with the whole zone).
pub struct Knot {
    addr: SocketAddr,
    zones: Vec<Zone>,
    // Declared before `dir` so the process stops before its files go.
    process: Process,
    dir: TempDir,
}

impl Knot {
    /// Starts knotd for `zones`, transfers allowed from 127.0.0.0/8;
    /// panics (with Knot's log) if it cannot.
    pub fn start(zones: Vec<Zone>) -> Knot {
        let knotd = tool("knotd");
        let ip = zones.first().expect("at least one zone").server;
        assert!(
            zones.iter().all(|z| z.server == ip),
            "one knotd serves one address"
        );
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port(&[IpAddr::V4(ip)]);
            let dir = TempDir::new("knot");
            std::fs::create_dir_all(dir.path().join("db")).expect("create Knot's database dir");
            for (i, zone) in zones.iter().enumerate() {
                dir.write(&format!("zone{i}.zone"), &zone.text);
            }
            let addr = SocketAddr::new(IpAddr::V4(ip), port);
            let conf = dir.write("knot.conf", &knot_conf(dir.path(), addr, &zones, true));
            let mut cmd = Command::new(&knotd);
            cmd.arg("-c").arg(&conf);
            let mut process = Process::spawn("knotd", cmd, dir.path().join("knot.log"));
            let ready = zones.iter().all(|zone| {
                poll(START_WAIT, || {
                    if process.exited().is_some() {
                        return Some(false);
                    }
                    let reply = dns_query(
                        addr,
                        zone.origin,
                        RecordType::SOA,
                        Duration::from_millis(300),
                    )?;
                    reply.metadata.authoritative.then_some(true)
                }) == Some(true)
            });
            if ready {
                return Knot {
                    addr,
                    zones,
                    process,
                    dir,
                };
            }
            last = process.log();
        }
        panic!("knotd did not start in three tries; last log:\n{last}");
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces `origin`'s zone file with `text` and has Knot load the
    /// difference (`knotc -b zone-reload`, which waits for the load).
    pub fn reload_zone(&mut self, origin: &str, text: &str) {
        let index = self
            .zones
            .iter()
            .position(|z| z.origin == origin)
            .unwrap_or_else(|| panic!("no zone {origin} on this server"));
        self.dir.write(&format!("zone{index}.zone"), text);
        self.zones[index].text = text.to_string();
        self.knotc(&["-b", "zone-reload", origin]);
    }

    /// Allows or refuses zone transfers: rewrites the config with or
    /// without the transfer ACL and has Knot reread it (`knotc reload`).
    pub fn allow_transfers(&mut self, allowed: bool) {
        let conf = knot_conf(self.dir.path(), self.addr, &self.zones, allowed);
        self.dir.write("knot.conf", &conf);
        self.knotc(&["reload"]);
    }

    /// The serial `origin` is served with now, if it is answered.
    pub fn serial(&self, origin: &str) -> Option<u32> {
        soa_serial(self.addr, origin)
    }

    /// What knotd logged so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Runs `knotc` on the control socket (5 s timeout); panics unless it
    /// succeeds.
    fn knotc(&self, args: &[&str]) {
        let output = Command::new(tool("knotc"))
            .arg("-s")
            .arg(self.dir.path().join("knot.sock"))
            .arg("-t")
            .arg("5")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run knotc: {e}"));
        assert!(
            output.status.success(),
            "knotc {args:?}: {}{}\nknotd's log:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
    }
}

/// knotd's config: everything under `dir`, `zones` as `zone{i}.zone`,
/// differences of reloaded zone files kept in the journal, and transfers
/// from loopback when `transfers`.
fn knot_conf(dir: &Path, addr: SocketAddr, zones: &[Zone], transfers: bool) -> String {
    let dir = dir.display();
    let mut conf = format!(
        "server:\n\
         \x20   rundir: \"{dir}\"\n\
         \x20   listen: {ip}@{port}\n\
         log:\n\
         \x20 - target: stderr\n\
         \x20   any: info\n\
         database:\n\
         \x20   storage: \"{dir}/db\"\n\
         control:\n\
         \x20   listen: \"{dir}/knot.sock\"\n\
         acl:\n\
         \x20 - id: transfer\n\
         \x20   address: 127.0.0.0/8\n\
         \x20   action: transfer\n\
         template:\n\
         \x20 - id: default\n\
         \x20   storage: \"{dir}\"\n\
         \x20   zonefile-sync: -1\n\
         \x20   zonefile-load: difference\n\
         \x20   journal-content: changes\n\
         zone:\n",
        ip = addr.ip(),
        port = addr.port(),
    );
    for (i, zone) in zones.iter().enumerate() {
        conf.push_str(&format!(
            "  - domain: \"{}\"\n    file: \"zone{i}.zone\"\n",
            zone.origin
        ));
        if transfers {
            conf.push_str("    acl: transfer\n");
        }
    }
    conf
}

// ---------------------------------------------------------------------------
// taproot, the real binary

/// The `taproot` binary running against an [`Nsd`] tree.
pub struct TaprootProcess {
    /// The DNS address (UDP and TCP).
    pub dns: SocketAddr,
    /// The metrics and admin HTTP address.
    pub metrics: SocketAddr,
    process: Process,
    _dir: TempDir,
}

impl TaprootProcess {
    /// The config the harness starts from: loopback listeners on free ports,
    /// the tree's hints and port, loopback upstreams allowed.
    pub fn base_config(nsd: &Nsd, hints: &Path, dns_port: u16, metrics_port: u16) -> Config {
        let mut config = Config::default();
        config.server.listen = vec![SocketAddr::from(([127, 0, 0, 1], dns_port))];
        config.server.threads = 1;
        config.resolver.root_hints_file = hints.display().to_string();
        config.resolver.upstream_port = nsd.port();
        config.resolver.allow_loopback_upstreams = true;
        config.resolver.upstream_timeout_ms = 1_000;
        config.metrics.listen = format!("127.0.0.1:{metrics_port}");
        config.log.level = "info".into();
        // The lab tree is unsigned; signed-tree tests set their own anchors.
        config.dnssec.validation = false;
        config
    }

    /// Starts taproot after `tweak` adjusts the config; waits until `/readyz`
    /// answers (it is served only once the DNS listeners are bound).
    pub fn start(nsd: &Nsd, tweak: impl Fn(&mut Config)) -> TaprootProcess {
        let binary = taproot_binary();
        let mut last = String::new();
        for _ in 0..3 {
            let dir = TempDir::new("taproot");
            let hints = dir.write("root.hints", &nsd.root_hints());
            let loopback = [IpAddr::V4(Ipv4Addr::LOCALHOST)];
            let (dns_port, metrics_port) = (free_port(&loopback), free_port(&loopback));
            let mut config = Self::base_config(nsd, &hints, dns_port, metrics_port);
            tweak(&mut config);
            let config_path = dir.write("taproot.toml", &config.to_toml());
            let mut cmd = Command::new(&binary);
            cmd.arg("--config").arg(&config_path);
            scrub_env(&mut cmd);
            let mut process = Process::spawn("taproot", cmd, dir.path().join("taproot.log"));
            let metrics = SocketAddr::from(([127, 0, 0, 1], metrics_port));
            let ready = poll(START_WAIT, || {
                if process.exited().is_some() {
                    return Some(false);
                }
                let r = http::try_request(None, metrics, "GET", "/readyz").ok()?;
                (r.status == 200).then_some(true)
            });
            match ready {
                Some(true) => {
                    return TaprootProcess {
                        dns: SocketAddr::from(([127, 0, 0, 1], dns_port)),
                        metrics,
                        process,
                        _dir: dir,
                    };
                }
                Some(false) => last = process.log(),
                None => panic!(
                    "taproot did not become ready within {START_WAIT:?}; its log:\n{}",
                    process.log()
                ),
            }
        }
        panic!("taproot did not start in three tries; last log:\n{last}");
    }

    /// What taproot logged so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Changes the config file with `tweak` and sends SIGHUP, as
    /// `systemctl reload` does; returns once the daemon has logged that it
    /// applied or refused the new config.
    pub fn reconfigure(&self, tweak: impl Fn(&mut Config)) {
        let path = self._dir.path().join("taproot.toml");
        let mut config =
            Config::load(Some(&path), &Default::default()).expect("the running config loads");
        tweak(&mut config);
        let before = self.log().matches("reload").count();
        self._dir.write("taproot.toml", &config.to_toml());
        let status = Command::new("kill")
            .args(["-HUP", &self.process.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -HUP taproot");
        let seen = poll(START_WAIT, || {
            (self.log().matches("reload").count() > before).then_some(())
        });
        assert!(seen.is_some(), "no reload logged; log:\n{}", self.log());
    }

    /// Panics with the log if taproot has exited.
    pub fn assert_running(&mut self) {
        self.process.assert_running();
    }

    /// The `/metrics` text.
    pub fn metrics_text(&self) -> String {
        let r = http::get(self.metrics, "/metrics");
        assert_eq!(r.status, 200, "/metrics: {}", r.body);
        r.body
    }
}

/// NSD and taproot together: the usual e2e setup.
pub struct Lab {
    // Field order is drop order: taproot stops before the servers it asks.
    pub taproot: TaprootProcess,
    pub nsd: Nsd,
}

impl Lab {
    /// [`lab_tree`] on NSD and taproot in front of it.
    pub fn start() -> Lab {
        Self::start_with(|_| {})
    }

    pub fn start_with(tweak: impl Fn(&mut Config)) -> Lab {
        let nsd = Nsd::start(lab_tree());
        let taproot = TaprootProcess::start(&nsd, tweak);
        Lab { taproot, nsd }
    }
}

// ---------------------------------------------------------------------------
// dig and kdig

/// One resource record as dig prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rr {
    pub name: String,
    pub ttl: u32,
    pub class: String,
    pub rtype: String,
    pub data: String,
}

/// dig's or kdig's answer, parsed from `+noall +answer +authority +additional +comments`.
#[derive(Debug, Clone, Default)]
pub struct DigReply {
    /// `NOERROR`, `NXDOMAIN`, …
    pub status: String,
    /// Header flags in lower case: `qr`, `aa`, `rd`, `ra`, …
    pub flags: Vec<String>,
    pub answer: Vec<Rr>,
    pub authority: Vec<Rr>,
    pub additional: Vec<Rr>,
    /// The whole output, for failure messages.
    pub text: String,
}

impl DigReply {
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// The data of the answer records of `rtype`, sorted.
    pub fn answers(&self, rtype: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .answer
            .iter()
            .filter(|r| r.rtype == rtype)
            .map(|r| r.data.clone())
            .collect();
        v.sort();
        v
    }

    /// Parses dig's or kdig's presentation output.
    pub fn parse(text: &str) -> DigReply {
        #[derive(PartialEq)]
        enum Section {
            Other,
            Answer,
            Authority,
            Additional,
        }
        let mut reply = DigReply {
            text: text.to_string(),
            ..DigReply::default()
        };
        let mut section = Section::Other;
        for line in text.lines() {
            let line = line.trim_end();
            let lower = line.to_ascii_lowercase();
            if let Some(at) = lower.find("status: ") {
                reply.status = line[at + 8..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect();
            }
            if let Some(flags) = lower.strip_prefix(";; flags:") {
                reply.flags = flags
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .split_whitespace()
                    .map(str::to_string)
                    .collect();
            }
            if line.starts_with(';') {
                section = if lower.contains("answer section") {
                    Section::Answer
                } else if lower.contains("authority section") {
                    Section::Authority
                } else if lower.contains("additional section") {
                    Section::Additional
                } else if lower.contains("section") {
                    Section::Other
                } else {
                    section
                };
                continue;
            }
            if line.is_empty() || section == Section::Other {
                continue;
            }
            let mut fields = line.split_whitespace();
            let (Some(name), Some(ttl), Some(class), Some(rtype)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let Ok(ttl) = ttl.parse::<u32>() else {
                continue;
            };
            let rr = Rr {
                name: name.to_ascii_lowercase(),
                ttl,
                class: class.to_string(),
                rtype: rtype.to_string(),
                data: fields.collect::<Vec<_>>().join(" "),
            };
            match section {
                Section::Answer => reply.answer.push(rr),
                Section::Authority => reply.authority.push(rr),
                Section::Additional => reply.additional.push(rr),
                Section::Other => {}
            }
        }
        reply
    }
}

/// The output options every dig/kdig call gets.
const DIG_OUTPUT: [&str; 5] = [
    "+noall",
    "+answer",
    "+authority",
    "+additional",
    "+comments",
];

fn run_client(tool_name: &str, server: SocketAddr, args: &[&str], timing: &[&str]) -> DigReply {
    let path = tool(tool_name);
    let output = Command::new(&path)
        .arg("-p")
        .arg(server.port().to_string())
        .arg(format!("@{}", server.ip()))
        .args(DIG_OUTPUT)
        .args(timing)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool_name}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let reply = DigReply::parse(&text);
    assert!(
        output.status.success() && !reply.status.is_empty(),
        "{tool_name} {args:?} @{server} got no answer ({}):\n{text}",
        output.status
    );
    reply
}

/// `dig -p PORT @IP <args>` with bounded timing; panics when no answer came.
pub fn dig(server: SocketAddr, args: &[&str]) -> DigReply {
    run_client("dig", server, args, &["+time=3", "+tries=1"])
}

/// `kdig -p PORT @IP <args>`, same output options.
pub fn kdig(server: SocketAddr, args: &[&str]) -> DigReply {
    // kdig prints the status and flags only with +header.
    run_client("kdig", server, args, &["+header", "+time=3", "+retry=0"])
}

// ---------------------------------------------------------------------------
// HTTP

/// A tiny HTTP/1.0 client: one request per connection, bounded by timeouts.
pub mod http {
    use std::io::{Read, Write};
    use std::net::{IpAddr, SocketAddr};
    use std::time::Duration;

    const TIMEOUT: Duration = Duration::from_secs(5);

    #[derive(Debug, Clone)]
    pub struct Response {
        pub status: u16,
        pub headers: String,
        pub body: String,
    }

    impl Response {
        /// A header's value (case-insensitive name).
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
            })
        }
    }

    /// Sends `method path` to `to`, from `from` when given.
    pub fn try_request(
        from: Option<IpAddr>,
        to: SocketAddr,
        method: &str,
        path: &str,
    ) -> std::io::Result<Response> {
        let domain = socket2::Domain::for_address(to);
        let socket = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
        if let Some(ip) = from {
            socket.bind(&SocketAddr::new(ip, 0).into())?;
        }
        socket.connect_timeout(&to.into(), TIMEOUT)?;
        let mut stream: std::net::TcpStream = socket.into();
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers = head.split_once("\r\n").map_or("", |(_, h)| h).to_string();
        let mut response = Response {
            status,
            headers,
            body: body.to_string(),
        };
        if response
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            response.body = dechunk(&response.body);
        }
        Ok(response)
    }

    fn dechunk(mut body: &str) -> String {
        let mut out = String::new();
        while let Some((size, rest)) = body.split_once("\r\n") {
            let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
                break;
            };
            if n == 0 || rest.len() < n {
                break;
            }
            out.push_str(&rest[..n]);
            body = rest[n..].trim_start_matches("\r\n");
        }
        out
    }

    /// A request that must get an HTTP response.
    pub fn request(from: Option<IpAddr>, to: SocketAddr, method: &str, path: &str) -> Response {
        try_request(from, to, method, path)
            .unwrap_or_else(|e| panic!("{method} http://{to}{path}: {e}"))
    }

    pub fn get(to: SocketAddr, path: &str) -> Response {
        request(None, to, "GET", path)
    }

    pub fn post(to: SocketAddr, path: &str) -> Response {
        request(None, to, "POST", path)
    }

    /// [`get`] from an async test.
    pub async fn get_async(to: SocketAddr, path: &str) -> Response {
        let path = path.to_string();
        super::off_thread(move || get(to, &path)).await
    }

    /// [`post`] from an async test.
    pub async fn post_async(to: SocketAddr, path: &str) -> Response {
        let path = path.to_string();
        super::off_thread(move || post(to, &path)).await
    }

    /// Percent-encodes a query-string value.
    pub fn encode(value: &str) -> String {
        let mut out = String::new();
        for b in value.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------
// The Prometheus text format

/// Reads samples out of a `/metrics` page.
pub mod scrape {
    /// One sample line: name, labels, value.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Sample {
        pub name: String,
        pub labels: Vec<(String, String)>,
        pub value: f64,
    }

    /// Every sample line of `text`.
    pub fn samples(text: &str) -> Vec<Sample> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(parse_line)
            .collect()
    }

    fn parse_line(line: &str) -> Option<Sample> {
        let (series, value) = line.trim().rsplit_once(' ')?;
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().ok()?,
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, Vec::new()),
            Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)?),
        };
        Some(Sample {
            name: name.to_string(),
            labels,
            value,
        })
    }

    fn parse_labels(mut text: &str) -> Option<Vec<(String, String)>> {
        let mut out = Vec::new();
        loop {
            text = text.trim_start_matches(',').trim_start();
            if text.is_empty() {
                return Some(out);
            }
            let (key, rest) = text.split_once("=\"")?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                match chars.next()? {
                    (_, '\\') => {
                        let (_, c) = chars.next()?;
                        value.push(match c {
                            'n' => '\n',
                            c => c,
                        });
                    }
                    (i, '"') => break i,
                    (_, c) => value.push(c),
                }
            };
            out.push((key.trim().to_string(), value));
            text = &rest[end + 1..];
        }
    }

    /// The sum of `name`'s samples whose labels include every pair in `want`.
    pub fn sum(text: &str, name: &str, want: &[(&str, &str)]) -> f64 {
        samples(text)
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                want.iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// Whether the page declares the family `name` (`# TYPE name …`).
    pub fn has_family(text: &str, name: &str) -> bool {
        text.lines().any(|l| {
            l.strip_prefix("# TYPE ")
                .and_then(|rest| rest.split_whitespace().next())
                .is_some_and(|n| n == name)
        })
    }
}

// ---------------------------------------------------------------------------
// Prometheus

/// A Prometheus server with a temp config and storage, on a free loopback port.
pub struct Prometheus {
    pub addr: SocketAddr,
    process: Process,
    _dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus with `config` (YAML) and `files` (name, text)
    /// beside it; waits until `/-/ready` answers 200.
    pub fn start(config: &str, files: &[(&str, &str)]) -> Prometheus {
        let binary = tool("prometheus");
        let dir = TempDir::new("prometheus");
        let config_path = dir.write("prometheus.yml", config);
        for (name, text) in files {
            dir.write(name, text);
        }
        let port = free_port(&[IpAddr::V4(Ipv4Addr::LOCALHOST)]);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut cmd = Command::new(binary);
        cmd.arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .current_dir(dir.path());
        let mut process = Process::spawn("prometheus", cmd, dir.path().join("prometheus.log"));
        let ready = poll(Duration::from_secs(30), || {
            if process.exited().is_some() {
                return Some(false);
            }
            let r = http::try_request(None, addr, "GET", "/-/ready").ok()?;
            (r.status == 200).then_some(true)
        });
        assert_eq!(
            ready,
            Some(true),
            "Prometheus did not become ready; its log:\n{}",
            process.log()
        );
        Prometheus {
            addr,
            process,
            _dir: dir,
        }
    }

    /// An instant query through `/api/v1/query`: each series' labels and value.
    pub fn query(&self, promql: &str) -> Vec<(serde_json::Value, f64)> {
        let path = format!("/api/v1/query?query={}", http::encode(promql));
        let r = http::get(self.addr, &path);
        assert_eq!(r.status, 200, "query {promql:?}: {}", r.body);
        let json: serde_json::Value =
            serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body));
        assert_eq!(json["status"], "success", "{}", r.body);
        json["data"]["result"]
            .as_array()
            .map(|results| {
                results
                    .iter()
                    .filter_map(|s| {
                        let v = s["value"][1].as_str()?.parse().ok()?;
                        Some((s["metric"].clone(), v))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The single value of a query that returns one series, if it does.
    pub fn value(&self, promql: &str) -> Option<f64> {
        let results = self.query(promql);
        (results.len() == 1).then(|| results[0].1)
    }

    /// Polls `promql` until its value satisfies `ok`; returns the last value seen.
    pub fn wait_for(
        &self,
        promql: &str,
        within: Duration,
        ok: impl Fn(f64) -> bool,
    ) -> Result<f64, Option<f64>> {
        let mut last = None;
        let hit = poll(within, || {
            last = self.value(promql);
            last.filter(|v| ok(*v))
        });
        hit.ok_or(last)
    }

    /// What Prometheus logged so far.
    pub fn log(&self) -> String {
        self.process.log()
    }
}
