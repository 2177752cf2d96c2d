//! A fake authoritative DNS tree on loopback addresses, for testing a
//! recursive resolver against real sockets.
//!
//! Each zone is given as RFC 1035 zone-file text and the addresses of the
//! servers that are authoritative for it; every address listens on UDP and
//! TCP, all on one shared port (see [`FakeTree::port`]), so the resolver under
//! test must send every upstream query to that port.
//!
//! ```text
//!  UdpSocket / TcpListener per address      transport.rs  (framing, delays, tasks)
//!                  │
//!              Responder                     responder.rs  (decode, log, behaviour,
//!                  │                                         EDNS, truncation)
//!      closest zone of this address
//!                  │
//!          authority::answer                 authority.rs  (RFC 1034 §4.3.2)
//!                  │
//!                Zone                        zone.rs       (cuts, DNAME, wildcards)
//! ```
//!
//! The servers are tasks on the runtime that calls [`FakeTreeBuilder::start`].
//! On a current-thread runtime (plain `#[tokio::test]`) they answer only while
//! the test is awaiting: wait for a child process or any blocking call through
//! `spawn_blocking`, or use `flavor = "multi_thread"`.
//!
//! ```ignore
//! let tree = FakeTree::builder()
//!     .zone(".", ROOT, &["127.0.0.10".parse()?])
//!     .zone("kr.", KR, &["127.0.0.11".parse()?, "127.0.0.12".parse()?])
//!     .start()
//!     .await;
//! tree.set_behaviour("127.0.0.11".parse()?, Behaviour::Drop);
//! ```

// Each test binary uses a different part of this module.
#![allow(dead_code)]

mod authority;
mod behaviour;
mod dname;
mod ports;
mod responder;
mod transport;
mod zone;

use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hickory_proto::rr::{RData, RecordType};
use tokio::task::JoinHandle;

// A test binary that never names one of these would warn without the allow.
#[allow(unused_imports)]
pub use behaviour::{Behaviour, Malformation, Rewrite};
#[allow(unused_imports)]
pub use dname::{dname_record, dname_target};
#[allow(unused_imports)]
pub use responder::LoggedQuery;

use responder::Responder;
use zone::Zone;

/// The TTL named.root gives every root hint.
const HINTS_TTL: u32 = 3_600_000;

/// Collects zones and their servers; [`FakeTreeBuilder::start`] binds them.
#[derive(Default)]
pub struct FakeTreeBuilder {
    zones: Vec<(Arc<Zone>, Vec<IpAddr>)>,
}

impl FakeTreeBuilder {
    /// Adds the zone `origin` (e.g. `"."`, `"co.kr."`), parsed from RFC 1035
    /// zone-file text whose relative names are relative to `origin`, served
    /// by each of `servers`. One address may serve several zones.
    ///
    /// The text must have an SOA at the apex. `DNAME` records are accepted
    /// (see [`dname_target`]); `ANAME` records are not.
    ///
    /// # Panics
    /// If the text does not parse, lacks the SOA, or holds a record outside
    /// the zone, or if `servers` is empty.
    pub fn zone(mut self, origin: &str, text: &str, servers: &[IpAddr]) -> Self {
        assert!(
            !servers.is_empty(),
            "fake zone {origin} needs at least one server address"
        );
        let zone = Zone::parse(origin, text).unwrap_or_else(|e| panic!("bad fake zone: {e}"));
        self.zones.push((Arc::new(zone), servers.to_vec()));
        self
    }

    /// Binds every server address and starts answering.
    ///
    /// # Panics
    /// If the sockets cannot be bound; see [`FakeTreeBuilder::try_start`].
    pub async fn start(self) -> FakeTree {
        self.try_start()
            .await
            .expect("fake DNS tree could not bind its loopback addresses")
    }

    /// Binds UDP and TCP on every server address, all on one port that is
    /// free on all of them, and spawns the listeners on the current runtime.
    pub async fn try_start(self) -> io::Result<FakeTree> {
        let responder = Arc::new(Responder::new(&self.zones));
        let mut addrs: Vec<IpAddr> = Vec::new();
        for (_, servers) in &self.zones {
            for addr in servers {
                if !addrs.contains(addr) {
                    addrs.push(*addr);
                }
            }
        }
        let (port, bound) = ports::bind_shared_port(&addrs).await?;
        let mut tasks = Vec::with_capacity(bound.len() * 2);
        for socket in bound {
            tasks.push(tokio::spawn(transport::serve_udp(
                socket.udp,
                socket.addr,
                responder.clone(),
            )));
            tasks.push(tokio::spawn(transport::serve_tcp(
                socket.tcp,
                socket.addr,
                responder.clone(),
            )));
        }
        tracing::debug!(port, servers = addrs.len(), "fake DNS tree started");
        Ok(FakeTree {
            port,
            addrs,
            responder,
            tasks: Mutex::new(tasks),
        })
    }
}

/// A running fake DNS tree. Dropping it stops every server.
pub struct FakeTree {
    port: u16,
    addrs: Vec<IpAddr>,
    responder: Arc<Responder>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl FakeTree {
    /// Starts describing a tree.
    pub fn builder() -> FakeTreeBuilder {
        FakeTreeBuilder::default()
    }

    /// The one port every server of the tree listens on, UDP and TCP.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `ip` with the tree's port: where to send a query for that server.
    pub fn addr(&self, ip: IpAddr) -> SocketAddr {
        SocketAddr::new(ip, self.port)
    }

    /// Every server address, in the order the zones first named them.
    pub fn servers(&self) -> &[IpAddr] {
        &self.addrs
    }

    /// Root hints in named.root format, built from the `.` zone's apex NS
    /// records and the A/AAAA records the root zone holds for those names.
    /// The port is not in it: give the resolver [`FakeTree::port`] as well.
    ///
    /// # Panics
    /// If the tree has no `.` zone.
    pub fn root_hints(&self) -> String {
        let root = self
            .responder
            .root()
            .expect("root_hints() needs a fake zone for \".\"");
        let ns = root.rrset(root.origin(), RecordType::NS);
        let mut hints = format!("; root hints of a fake DNS tree on port {}\n", self.port);
        for record in &ns {
            if let RData::NS(target) = &record.data {
                let _ = writeln!(hints, ".\t{HINTS_TTL}\tNS\t{}", target.0);
            }
        }
        for record in root.addresses_of(&ns) {
            let _ = writeln!(
                hints,
                "{}\t{HINTS_TTL}\t{}\t{}",
                record.name,
                record.record_type(),
                record.data
            );
        }
        hints
    }

    /// How many queries `ip` has received, over UDP and TCP, since the start
    /// or the last [`FakeTree::reset_counts`]. Dropped queries count.
    pub fn queries_to(&self, ip: IpAddr) -> usize {
        self.responder.queries_to(ip)
    }

    /// How many queries all servers have received together.
    pub fn total_queries(&self) -> usize {
        self.responder.total_queries()
    }

    /// Every query received, in arrival order.
    pub fn query_log(&self) -> Vec<LoggedQuery> {
        self.responder.query_log()
    }

    /// Empties the query log and zeroes the counters.
    pub fn reset_counts(&self) {
        self.responder.reset_counts();
    }

    /// Changes how server `ip` behaves from its next query on.
    ///
    /// # Panics
    /// If `ip` is not one of the tree's servers (a typo in a test).
    pub fn set_behaviour(&self, ip: IpAddr, behaviour: Behaviour) {
        assert!(
            self.responder.set_behaviour(ip, behaviour),
            "{ip} is not a server of this fake DNS tree (servers: {:?})",
            self.addrs
        );
    }

    /// Waits until the tree has received at least `total` queries in all,
    /// for at most `within`. Returns whether it got there.
    pub async fn wait_for_queries(&self, total: usize, within: Duration) -> bool {
        let mut receiver = self.responder.watch_total();
        tokio::time::timeout(within, receiver.wait_for(|n| *n >= total))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Aborts every listener and connection task. The sockets close as the
    /// runtime drops the tasks, which may be just after this returns; use
    /// [`FakeTree::shutdown`] to wait for that.
    pub fn stop(&self) {
        let tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        for task in tasks.iter() {
            task.abort();
        }
    }

    /// Stops the tree and waits until every task, and so every socket, is gone.
    pub async fn shutdown(self) {
        self.stop();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        for task in tasks {
            let _ = task.await;
        }
    }
}

impl Drop for FakeTree {
    fn drop(&mut self) {
        self.stop();
    }
}
