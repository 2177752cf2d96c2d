//! Cold resolutions side by side: taproot and Unbound, same root hints, the
//! lab tree from tests/support on loopback port 53 (Unbound only queries
//! port 53). For each name: upstream queries the tree received and wall time.
//!
//! Run as root, after `cargo build --release`:
//! `TAPROOT_FAKE_TREE_PORT=53 cargo run --release --example cold_compare`

#[path = "../tests/support/mod.rs"]
mod support;
use support::lab;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::net::UdpSocket;

const NAMES: &[(&str, RecordType)] = &[
    ("www.provider.lab.", RecordType::A),
    ("www.example.co.kr.", RecordType::A),
    ("out.example.co.kr.", RecordType::A),
    ("www.glueless.kr.", RecordType::A),
    ("host.sub.example.co.kr.", RecordType::A),
    ("nope.example.co.kr.", RecordType::A),
];

async fn ask(to: SocketAddr, name: &str, rtype: RecordType) -> Option<Message> {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).ok()?, rtype));
    m.edns = Some(Edns::new());
    let s = UdpSocket::bind("127.0.0.1:0").await.ok()?;
    s.send_to(&m.to_vec().ok()?, to).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(10), s.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    Message::from_vec(&buf[..n]).ok()
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_up(addr: SocketAddr) {
    for _ in 0..100 {
        if ask(addr, "lab.", RecordType::SOA).await.is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{addr} did not come up");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let tree = lab::lab_tree().await;
    assert_eq!(
        tree.port(),
        53,
        "set TAPROOT_FAKE_TREE_PORT=53 (and run as root)"
    );
    let dir = std::env::temp_dir().join(format!("cold-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let hints = dir.join("root.hints");
    std::fs::write(&hints, tree.root_hints()).expect("hints");
    let taproot_conf = dir.join("taproot.toml");
    let mut f = std::fs::File::create(&taproot_conf).expect("conf");
    writeln!(
        f,
        "[server]\nlisten = [\"127.0.0.1:5391\"]\nthreads = 1\n[resolver]\nroot_hints_file = \"{}\"\nallow_loopback_upstreams = true\n[metrics]\nlisten = \"\"\n[ratelimit]\nqps = 0",
        hints.display()
    )
    .expect("write");
    let unbound_conf = dir.join("unbound.conf");
    std::fs::write(
        &unbound_conf,
        format!(
            "server:\n  interface: 127.0.0.1\n  port: 5392\n  do-not-query-localhost: no\n  root-hints: \"{}\"\n  username: \"\"\n  chroot: \"\"\n  directory: \"{}\"\n  pidfile: \"\"\n  num-threads: 1\n  access-control: 127.0.0.0/8 allow\n  qname-minimisation: yes\n  module-config: \"iterator\"\n  use-syslog: no\n  verbosity: 0\n",
            hints.display(),
            dir.display()
        ),
    )
    .expect("unbound conf");
    let bin = std::env::var("TAPROOT_BIN").unwrap_or_else(|_| "target/release/taproot".into());
    println!(
        "{:<26} {:>8} {:>10} {:>8} {:>10}",
        "name", "taproot", "", "unbound", ""
    );
    println!(
        "{:<26} {:>8} {:>10} {:>8} {:>10}",
        "", "queries", "ms", "queries", "ms"
    );
    let mut rows: Vec<(usize, f64, usize, f64)> = vec![(0, 0.0, 0, 0.0); NAMES.len()];
    for (which, port) in [(0, 5391u16), (1, 5392u16)] {
        let child = if which == 0 {
            Command::new(&bin)
                .arg("--config")
                .arg(&taproot_conf)
                // taproot reads every TAPROOT_* variable as config and
                // refuses unknown keys: this one is for the tree, not for it.
                .env_remove("TAPROOT_FAKE_TREE_PORT")
                .stderr(Stdio::null())
                .spawn()
        } else {
            Command::new("unbound")
                .arg("-d")
                .arg("-c")
                .arg(&unbound_conf)
                .stderr(Stdio::null())
                .spawn()
        }
        .expect("start resolver");
        let _guard = Killed(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_up(addr).await;
        for (i, (name, rtype)) in NAMES.iter().enumerate() {
            tree.reset_counts();
            let start = Instant::now();
            let reply = ask(addr, name, *rtype).await;
            let ms = start.elapsed().as_secs_f64() * 1000.0;
            let rcode = reply
                .map(|m| m.metadata.response_code.to_string())
                .unwrap_or("timeout".into());
            let queries = tree.total_queries();
            if which == 0 {
                rows[i].0 = queries;
                rows[i].1 = ms;
            } else {
                rows[i].2 = queries;
                rows[i].3 = ms;
            }
            eprintln!(
                "{} {name}: {rcode}",
                if which == 0 { "taproot" } else { "unbound" }
            );
        }
    }
    for ((name, _), (tq, tms, uq, ums)) in NAMES.iter().zip(rows) {
        println!("{name:<26} {tq:>8} {tms:>10.1} {uq:>8} {ums:>10.1}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
