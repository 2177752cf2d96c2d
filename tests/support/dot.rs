//! A DNS-over-TLS server for tests: a real Unbound on loopback, serving
//! DoT (RFC 7858) with a certificate from a test CA made by `openssl`.
//!
//! ```text
//!  DotPool / taproot ──TLS──► Unbound 127.0.2.53:PORT (cert "dot.lab", local-data only)
//! ```
//!
//! Unbound answers only from its `local-data`: every top-level domain of
//! the given records is a `static` local zone (other names in it are
//! NXDOMAIN), and its root hints name a loopback address it is not allowed
//! to query anyway (`do-not-query-localhost`), so it never tries to reach
//! the Internet. A forward zone of taproot pointing at it gets answers
//! with RA set, as from any recursive forwarder.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::e2e::{Process, START_WAIT, TempDir, free_port, poll, tool};

/// The address the DoT server listens on (its port is free and random).
pub const DOT_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 2, 53);

/// The name in the server's certificate (subjectAltName), without the
/// trailing dot, as `tls_name` is written.
pub const DOT_NAME: &str = "dot.lab";

/// A test CA and a server certificate it signed, as PEM files.
pub struct TestPki {
    /// The CA's certificate: the roots a client trusts.
    pub ca: PathBuf,
    /// The server's certificate (leaf first, then the CA: the whole chain).
    pub cert: PathBuf,
    /// The server's private key (PKCS #8).
    pub key: PathBuf,
}

impl TestPki {
    /// Makes a P-256 CA named `ca_name` and a certificate for the DNS name
    /// `server_name` signed by it, in `dir`, with `openssl`; the files are
    /// prefixed with `stem`. Valid from now for two days.
    pub fn make(dir: &Path, stem: &str, ca_name: &str, server_name: &str) -> TestPki {
        let path = |file: &str| dir.join(format!("{stem}-{file}"));
        let (ca, ca_key) = (path("ca.pem"), path("ca.key"));
        let (leaf, key, csr, ext) = (
            path("leaf.pem"),
            path("server.key"),
            path("server.csr"),
            path("server.ext"),
        );
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={ca_name}"),
            "-keyout",
            &s(&ca_key),
            "-out",
            &s(&ca),
        ]);
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN={server_name}"),
            "-keyout",
            &s(&key),
            "-out",
            &s(&csr),
        ]);
        std::fs::write(
            &ext,
            format!(
                "subjectAltName=DNS:{server_name}\n\
                 basicConstraints=critical,CA:FALSE\n\
                 keyUsage=critical,digitalSignature\n\
                 extendedKeyUsage=serverAuth\n"
            ),
        )
        .expect("write the extensions file");
        openssl(&[
            "x509",
            "-req",
            "-in",
            &s(&csr),
            "-CA",
            &s(&ca),
            "-CAkey",
            &s(&ca_key),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &s(&ext),
            "-out",
            &s(&leaf),
        ]);
        let chain = [&leaf, &ca]
            .iter()
            .map(|p| std::fs::read_to_string(p).expect("read a certificate"))
            .collect::<String>();
        let cert = path("chain.pem");
        std::fs::write(&cert, chain).expect("write the chain");
        TestPki { ca, cert, key }
    }
}

fn s(path: &Path) -> String {
    path.display().to_string()
}

/// Runs `openssl args…`; panics with its output if it fails.
fn openssl(args: &[&str]) {
    let output = Command::new(tool("openssl"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Unbound serving DNS over TLS from `local-data`, on [`DOT_IP`] and a free
/// port, with a certificate for [`DOT_NAME`].
pub struct UnboundDot {
    addr: SocketAddr,
    config: PathBuf,
    pki: TestPki,
    other_ca: PathBuf,
    // Declared before `dir` so the process stops before its files go.
    process: Option<Process>,
    dir: TempDir,
}

impl UnboundDot {
    /// Starts Unbound answering `local_data` (records in presentation
    /// format, e.g. `"www.corp.lab. 300 IN A 192.0.2.7"`) over DoT; waits
    /// until it accepts connections.
    pub fn start(local_data: &[&str]) -> UnboundDot {
        Self::start_with(local_data, "")
    }

    /// [`UnboundDot::start`] with more `server:` options, one per line.
    pub fn start_with(local_data: &[&str], server_options: &str) -> UnboundDot {
        let mut dir = TempDir::new("unbound-dot");
        let pki = TestPki::make(dir.path(), "dot", "taproot test CA", DOT_NAME);
        // A CA that signed nothing the server holds: roots that must fail.
        let other = TestPki::make(dir.path(), "other", "taproot other CA", DOT_NAME);
        let unbound = tool("unbound");
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port(&[IpAddr::V4(DOT_IP)]);
            let addr = SocketAddr::new(IpAddr::V4(DOT_IP), port);
            let config = dir.write(
                "unbound.conf",
                &config_text(dir.path(), addr, &pki, local_data, server_options),
            );
            let mut dot = UnboundDot {
                addr,
                config,
                pki: TestPki {
                    ca: pki.ca.clone(),
                    cert: pki.cert.clone(),
                    key: pki.key.clone(),
                },
                other_ca: other.ca.clone(),
                process: None,
                dir,
            };
            match dot.spawn(&unbound) {
                Ok(()) => return dot,
                Err(log) => {
                    last = log;
                    dot.process = None;
                    dir = dot.dir;
                }
            }
        }
        panic!("Unbound did not start in three tries; last log:\n{last}");
    }

    /// Starts the process from the written config; `Err(log)` when it
    /// exits before it accepts connections.
    fn spawn(&mut self, unbound: &Path) -> Result<(), String> {
        let mut cmd = Command::new(unbound);
        cmd.arg("-d").arg("-c").arg(&self.config);
        let log = self.dir.path().join("unbound.log");
        let mut process = Process::spawn("unbound", cmd, log);
        let addr = self.addr;
        let ready = poll(START_WAIT, || {
            if process.exited().is_some() {
                return Some(false);
            }
            TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                .ok()
                .map(|_| true)
        });
        match ready {
            Some(true) => {
                self.process = Some(process);
                Ok(())
            }
            Some(false) => Err(process.log()),
            None => panic!(
                "Unbound did not accept connections on {addr} within {START_WAIT:?}; its log:\n{}",
                process.log()
            ),
        }
    }

    /// Where it serves DoT.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The PEM file of the CA that signed its certificate.
    pub fn ca_file(&self) -> &Path {
        &self.pki.ca
    }

    /// The PEM file of a CA that did not sign its certificate.
    pub fn other_ca_file(&self) -> &Path {
        &self.other_ca
    }

    /// The name its certificate is valid for ([`DOT_NAME`]).
    pub fn name(&self) -> &str {
        DOT_NAME
    }

    /// Stops the process (SIGSTOP) without closing its sockets: connections
    /// stay open and queries on them go unanswered.
    pub fn pause(&self) {
        if let Some(p) = &self.process {
            p.signal("STOP");
        }
    }

    /// Lets a paused process go on (SIGCONT).
    pub fn resume(&self) {
        if let Some(p) = &self.process {
            p.signal("CONT");
        }
    }

    /// Kills the process (SIGKILL): the kernel closes its connections.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.signal("KILL");
            let gone = poll(Duration::from_secs(5), || p.exited().map(|_| ()));
            assert!(gone.is_some(), "Unbound survived SIGKILL");
        }
    }

    /// Starts it again, same address, port, certificate and data (after
    /// [`UnboundDot::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        let unbound = tool("unbound");
        if let Err(log) = self.spawn(&unbound) {
            panic!("Unbound did not restart on {}; its log:\n{log}", self.addr);
        }
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        self.process.as_ref().map(Process::log).unwrap_or_default()
    }
}

/// The Unbound config: DoT only on `addr`, answers from `local_data` only.
fn config_text(
    dir: &Path,
    addr: SocketAddr,
    pki: &TestPki,
    local_data: &[&str],
    server_options: &str,
) -> String {
    let home = dir.display();
    let hints = dir.join("root.hints");
    std::fs::write(
        &hints,
        "; no Internet: the only root server is on loopback, and never asked\n\
         .\t3600000\tNS\ta.root-servers.\n\
         a.root-servers.\t3600000\tA\t127.0.2.1\n",
    )
    .expect("write the root hints");
    let (ip, port) = (addr.ip(), addr.port());
    let mut conf = format!(
        "server:\n\
         \x20 interface: {ip}@{port}\n\
         \x20 port: {port}\n\
         \x20 tls-port: {port}\n\
         \x20 tls-service-key: \"{}\"\n\
         \x20 tls-service-pem: \"{}\"\n\
         \x20 interface-automatic: no\n\
         \x20 do-ip6: no\n\
         \x20 do-daemonize: no\n\
         \x20 chroot: \"\"\n\
         \x20 username: \"\"\n\
         \x20 directory: \"{home}\"\n\
         \x20 pidfile: \"{home}/unbound.pid\"\n\
         \x20 root-hints: \"{}\"\n\
         \x20 do-not-query-localhost: yes\n\
         \x20 module-config: \"iterator\"\n\
         \x20 use-syslog: no\n\
         \x20 logfile: \"\"\n\
         \x20 verbosity: 1\n\
         \x20 num-threads: 1\n\
         \x20 incoming-num-tcp: 100\n",
        pki.key.display(),
        pki.cert.display(),
        hints.display()
    );
    for option in server_options.lines().filter(|l| !l.trim().is_empty()) {
        conf.push_str(&format!("  {}\n", option.trim()));
    }
    let mut tlds: Vec<String> = local_data
        .iter()
        .filter_map(|rr| rr.split_whitespace().next())
        .filter_map(|owner| owner.trim_end_matches('.').rsplit('.').next())
        .filter(|tld| !tld.is_empty())
        .map(|tld| tld.to_ascii_lowercase())
        .collect();
    tlds.sort();
    tlds.dedup();
    for tld in tlds {
        conf.push_str(&format!("  local-zone: \"{tld}.\" static\n"));
    }
    for rr in local_data {
        if rr.contains('"') {
            conf.push_str(&format!("  local-data: '{rr}'\n"));
        } else {
            conf.push_str(&format!("  local-data: \"{rr}\"\n"));
        }
    }
    conf.push_str("remote-control:\n  control-enable: no\n");
    conf
}
