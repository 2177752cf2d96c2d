//! DNS over TLS to forwarders (RFC 7858), one connection per server.
//!
//! A forward zone with `tls_name` set sends its queries over TLS. A TLS
//! handshake costs a TCP round trip and one or two TLS round trips before
//! the first byte of a query, so a connection is opened once per server and
//! shared by every query to it; queries are pipelined on it (RFC 7766
//! §6.2.1.1: several in flight at once, answers in any order, matched by
//! message ID and question), and it is closed once idle. Unbound does the
//! same for its `forward-tls-upstream` (`services/outside_network.c`, its
//! reuse tree of streams).
//!
//! ```text
//!  query ─┐                       ┌── writer: frames queries (RFC 1035 §4.2.2) ─┐
//!  query ─┼─► DotPool ─► Connection                                              ├─► TLS ─► server:853
//!  query ─┘   (server, name)      └── reader: an answer's ID → its waiter ◄─────┘
//! ```
//!
//! - [`TlsUpstream`] is what a connection checks: the server's name and the
//!   roots it must chain to (RFC 7858 §4.2, RFC 8310's strict profile: an
//!   unauthenticated server gets no query at all).
//! - [`DotPool`] holds the open connections, one per (server address,
//!   name, roots). The first query to a server opens its connection in a
//!   task of its own; queries that arrive meanwhile wait for that one
//!   handshake, and all of them fail with it if it fails: a bad
//!   certificate is not retried in a loop.
//! - A connection is a task that writes the queued queries and reads
//!   answers. Each query registers a random ID unused on that connection
//!   and waits on a channel of its own; no lock is held across an await.
//!   When the connection dies (the server closed it, reset it, or sent
//!   garbage framing), every query waiting on it fails at once with
//!   [`TransportError::Io`], and the next query opens a new one. A
//!   connection that falls silent (a query times out and nothing came
//!   back for [`SILENCE_LIMIT`]) is taken for dead the same way.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::opt::EdnsOption;
use rand::Rng;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tracing::debug;

use super::transport::{self, Exchange, Question, TransportError};

/// The DoT port (RFC 7858 §3.1), for a server given without one.
pub const DOT_PORT: u16 = 853;

/// The ALPN protocol ID for DNS over TLS (RFC 7858 §3.1, IANA's ALPN
/// registry). Offered, not required: many DoT servers (Unbound among them)
/// negotiate none.
pub const ALPN_DOT: &[u8] = b"dot";

/// Queries in flight on one connection at most; more wait for a slot
/// (within their own timeout). RFC 7766 §6.2.1.1 lets a client pipeline
/// without a limit, but a server reads a connection's queries one at a
/// time and a forwarder that recurses for us answers slowly, so a burst
/// larger than this is better spread over time than piled on one stream.
pub const MAX_IN_FLIGHT: usize = 64;

/// The least time a DoT exchange gets, whatever the caller's timeout: a
/// new connection takes a TCP round trip and a TLS one before the query's
/// own round trip (as `transport::exchange_over_tcp` gives TCP 200 ms for
/// its two).
pub const MIN_WAIT: Duration = Duration::from_millis(300);

/// How long a connection attempt (TCP and the TLS handshake) may take. It
/// runs in a task of its own, shared by the queries waiting for it, so it
/// is bounded on its own and not by the first query's timeout.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a connection may stay silent, with a query on it timing out
/// unanswered, before it is taken for dead and closed. TCP does not notice
/// a peer that vanished without a reset (a rebooted NAT, a frozen server)
/// for many minutes, and queries would keep timing out on it. Unbound
/// closes a stream on any query's timeout (`outnet_tcptimer`); a forwarder
/// that recurses for us may be slow on one name while answering others,
/// so taproot closes only a connection that has answered nothing for this
/// long, since before the query that timed out was sent.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(1);

/// Queries are padded to a multiple of this many bytes (RFC 8467 §4.1,
/// the recommended block-length strategy for clients; the option is RFC
/// 7830's), so that their length over TLS does not tell the name asked.
pub const PAD_BLOCK: usize = 128;

/// How long a closing connection waits to send its TLS close_notify.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Why a forwarder's TLS settings cannot be used. Each variant names the
/// setting or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("tls_name {name:?} is not a DNS name or an IP address")]
    Name { name: String },
    #[error("cannot read the CA file {}: {source}", path.display())]
    CaFileUnreadable { path: PathBuf, source: io::Error },
    #[error("the CA file {} is not valid PEM: {reason}", path.display())]
    CaFileNotPem { path: PathBuf, reason: String },
    #[error("the CA file {} holds no certificate (no \"BEGIN CERTIFICATE\" section)", path.display())]
    CaFileEmpty { path: PathBuf },
    #[error("a certificate in the CA file {} cannot be a root: {reason}", path.display())]
    CaFileBadCertificate { path: PathBuf, reason: String },
    #[error("no system root certificates could be loaded ({reason}); set tls_ca_file")]
    NoSystemRoots { reason: String },
    #[error("the TLS client cannot be set up: {0}")]
    Setup(rustls::Error),
}

/// What a DoT connection checks: the server name and the roots (RFC 7858
/// §4.2, RFC 8310 strict profile). Built once per forward zone when the
/// config is loaded; cheap to clone.
#[derive(Clone, Debug)]
pub struct TlsUpstream {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    /// The roots' file, part of the pool's key: two zones naming the same
    /// server and name but other roots do not share a connection.
    ca_file: Option<PathBuf>,
}

impl TlsUpstream {
    /// The TLS client for `tls_name` (a trailing dot is ignored; an IP
    /// address checks the certificate's IP SAN), with the roots of
    /// `ca_file` (PEM) or, without one, the system's roots. TLS 1.2 and
    /// 1.3 with the ring provider, ALPN "dot".
    pub fn new(tls_name: &str, ca_file: Option<&Path>) -> Result<TlsUpstream, TlsConfigError> {
        let name =
            ServerName::try_from(tls_name.to_string()).map_err(|_| TlsConfigError::Name {
                name: tls_name.to_string(),
            })?;
        let roots = match ca_file {
            Some(path) => roots_from_file(path)?,
            None => system_roots()?,
        };
        // rustls 0.23.48 deprecates ring's provider because it has no
        // post-quantum key exchange (X25519MLKEM768); aws-lc-rs has one but
        // is a C build (cmake, nasm) that taproot does not otherwise need,
        // while hickory-proto's DNSSEC already builds ring. Classical ECDHE
        // protects a forwarder's queries as every DoT server offers today.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TlsConfigError::Setup)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![ALPN_DOT.to_vec()];
        Ok(TlsUpstream {
            config: Arc::new(config),
            name,
            ca_file: ca_file.map(Path::to_path_buf),
        })
    }

    /// The name certificates are checked against, without a trailing dot.
    pub fn name(&self) -> String {
        self.name.to_str().into_owned()
    }
}

/// The roots in a PEM file: every `CERTIFICATE` section, each of which must
/// parse as a trust anchor; other sections (a key) are skipped.
fn roots_from_file(path: &Path) -> Result<RootCertStore, TlsConfigError> {
    let bytes = std::fs::read(path).map_err(|source| TlsConfigError::CaFileUnreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsConfigError::CaFileNotPem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsConfigError::CaFileEmpty {
            path: path.to_path_buf(),
        });
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| TlsConfigError::CaFileBadCertificate {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
    }
    Ok(roots)
}

/// The system's roots (`/etc/ssl/certs` on Debian, or `SSL_CERT_FILE`);
/// certificates that do not parse are skipped, as every TLS client does.
fn system_roots() -> Result<RootCertStore, TlsConfigError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _skipped) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let reason = match found.errors.first() {
            Some(e) => e.to_string(),
            None => "the system's store is empty".to_string(),
        };
        return Err(TlsConfigError::NoSystemRoots { reason });
    }
    Ok(roots)
}

/// A connection's identity in the pool: the server and what it must prove.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PoolKey {
    server: SocketAddr,
    name: ServerName<'static>,
    ca_file: Option<PathBuf>,
}

/// Why a connection attempt failed, kept to hand to every query that
/// waited for it.
#[derive(Clone, Debug)]
enum OpenFailure {
    Io(io::ErrorKind, String),
    Tls(rustls::Error),
    Timeout(Duration),
}

impl OpenFailure {
    fn from_io(e: io::Error) -> OpenFailure {
        // tokio-rustls reports a TLS failure as an io::Error around it.
        match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(tls) => OpenFailure::Tls(tls.clone()),
            None => OpenFailure::Io(e.kind(), e.to_string()),
        }
    }

    fn to_transport(&self) -> TransportError {
        match self {
            OpenFailure::Io(kind, text) => TransportError::Io(io::Error::new(*kind, text.clone())),
            OpenFailure::Tls(e) => TransportError::Tls(e.clone()),
            OpenFailure::Timeout(wait) => TransportError::Timeout(*wait),
        }
    }
}

type Opened = Option<Result<Arc<Connection>, OpenFailure>>;

/// A pool entry: a connection being opened (queries wait for its outcome)
/// or an open one.
enum Slot {
    Opening(watch::Receiver<Opened>),
    Open(Arc<Connection>),
}

/// Open DoT connections, one per (server address, name), shared by every
/// query. Two upstreams with the same server and name but other roots
/// (`tls_ca_file`) get a connection each: one verified against other roots
/// is not proof for this one. One pool serves the whole resolver.
pub struct DotPool {
    inner: Arc<PoolInner>,
}

impl std::fmt::Debug for DotPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DotPool")
            .field("idle", &self.inner.idle)
            .field("max_in_flight", &self.inner.max_in_flight)
            .field("connections", &self.connections())
            .field("handshakes", &self.handshakes())
            .finish()
    }
}

struct PoolInner {
    idle: Duration,
    max_in_flight: usize,
    /// Where connections run: the runtime the pool was made on, if any.
    runtime: Option<tokio::runtime::Handle>,
    /// Locked only to look up or replace an entry, never across an await.
    slots: Mutex<HashMap<PoolKey, Slot>>,
    handshakes: AtomicU64,
}

impl PoolInner {
    fn slots(&self) -> MutexGuard<'_, HashMap<PoolKey, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops `key`'s entry if it is still `conn` (a newer one may have
    /// replaced it).
    fn forget(&self, key: &PoolKey, conn: &Arc<Connection>) {
        let mut slots = self.slots();
        if matches!(slots.get(key), Some(Slot::Open(c)) if Arc::ptr_eq(c, conn)) {
            slots.remove(key);
        }
    }
}

/// What became of a query on one connection.
enum Asked {
    Done(Result<Exchange, TransportError>),
    /// The connection closed before the query was sent: another may carry it.
    NotSent,
}

impl DotPool {
    /// An empty pool whose connections close once `idle` has passed
    /// since their last query was sent or answered, with none in flight.
    ///
    /// Connections run as tasks on the runtime this is called on (make
    /// the pool on the server's main, multi-threaded runtime), not on the
    /// runtime of the query that opened them: a UDP worker's
    /// current-thread runtime runs only while that worker has resolutions
    /// in flight, and a connection living there would stall every other
    /// worker's queries while it sleeps. Made outside a runtime, the pool
    /// opens each connection on the runtime of the query that needs it.
    pub fn new(idle: Duration) -> DotPool {
        DotPool::with_max_in_flight(idle, MAX_IN_FLIGHT)
    }

    /// [`DotPool::new`] with at most `max` queries in flight per
    /// connection (at least one) instead of [`MAX_IN_FLIGHT`].
    pub fn with_max_in_flight(idle: Duration, max: usize) -> DotPool {
        DotPool {
            inner: Arc::new(PoolInner {
                idle,
                max_in_flight: max.max(1),
                runtime: tokio::runtime::Handle::try_current().ok(),
                slots: Mutex::new(HashMap::new()),
                handshakes: AtomicU64::new(0),
            }),
        }
    }

    /// Sends `q` to `server` over its shared DoT connection, opening one
    /// (one TLS handshake, checked against `upstream`) when there is none,
    /// and waits up to `timeout` (at least [`MIN_WAIT`]) for the answer
    /// with the query's ID and question. `rtt` counts from the call, so the
    /// first query to a server includes the handshake, as a TCP exchange
    /// includes its connect.
    pub async fn exchange(
        &self,
        server: SocketAddr,
        upstream: &TlsUpstream,
        q: &Question<'_>,
        timeout: Duration,
    ) -> Result<Exchange, TransportError> {
        let start = Instant::now();
        let wait = timeout.max(MIN_WAIT);
        // Built once with ID 0; each connection patches in an ID of its own.
        let message = padded(transport::build(q, 0)?)?;
        let len = u16::try_from(message.len())
            .map_err(|_| TransportError::Encode("query too long".into()))?;
        let mut frame = Vec::with_capacity(message.len() + 2);
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&message);
        let key = PoolKey {
            server,
            name: upstream.name.clone(),
            ca_file: upstream.ca_file.clone(),
        };
        // The connection the query went out on and when, for the timeout.
        let mut sent_on: Option<(Arc<Connection>, Instant)> = None;
        let attempt = async {
            // A connection that closes (idle) between the lookup and the
            // send is replaced once; a second such race gives up.
            for _ in 0..2 {
                let conn = self.connection(&key, upstream).await?;
                match conn.ask(q, &frame, start, &conn, &mut sent_on).await {
                    Asked::Done(result) => return result,
                    Asked::NotSent => continue,
                }
            }
            Err(TransportError::Io(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the DoT connection closed before the query could be sent",
            )))
        };
        let result = tokio::time::timeout(wait, attempt).await;
        match result {
            Ok(result) => result,
            Err(_) => {
                if let Some((conn, sent_at)) = sent_on {
                    conn.timed_out(sent_at);
                }
                Err(TransportError::Timeout(wait))
            }
        }
    }

    /// Completed TLS handshakes since the pool was made, for metrics and
    /// tests: with reuse working, one per server per idle period.
    pub fn handshakes(&self) -> u64 {
        self.inner.handshakes.load(Ordering::Relaxed)
    }

    /// Open connections (those being opened aside).
    pub fn connections(&self) -> usize {
        self.inner
            .slots()
            .values()
            .filter(|s| matches!(s, Slot::Open(c) if !c.is_closed()))
            .count()
    }

    /// Queries sent, or about to be, and not yet answered, on every
    /// connection.
    pub fn in_flight(&self) -> usize {
        let open: Vec<Arc<Connection>> = self
            .inner
            .slots()
            .values()
            .filter_map(|s| match s {
                Slot::Open(c) => Some(c.clone()),
                Slot::Opening(_) => None,
            })
            .collect();
        open.iter().map(|c| c.state().pending.len()).sum()
    }

    /// `key`'s open connection, or the outcome of the attempt to open it
    /// (started here when none is under way).
    async fn connection(
        &self,
        key: &PoolKey,
        upstream: &TlsUpstream,
    ) -> Result<Arc<Connection>, TransportError> {
        let mut outcome = {
            let mut slots = self.inner.slots();
            match slots.get(key) {
                Some(Slot::Open(c)) if !c.is_closed() => return Ok(c.clone()),
                Some(Slot::Opening(rx)) => rx.clone(),
                _ => {
                    let (tx, rx) = watch::channel(None);
                    slots.insert(key.clone(), Slot::Opening(rx.clone()));
                    let task = open(
                        Arc::downgrade(&self.inner),
                        key.clone(),
                        upstream.config.clone(),
                        tx,
                    );
                    match &self.inner.runtime {
                        Some(runtime) => drop(runtime.spawn(task)),
                        None => drop(tokio::spawn(task)),
                    }
                    rx
                }
            }
        };
        let opened = outcome.wait_for(Option::is_some).await.map_err(|_| {
            TransportError::Io(io::Error::other("the DoT connection attempt was abandoned"))
        })?;
        match opened.as_ref() {
            Some(Ok(conn)) => Ok(conn.clone()),
            Some(Err(failure)) => Err(failure.to_transport()),
            None => Err(TransportError::Io(io::Error::other(
                "the DoT connection attempt ended without an outcome",
            ))),
        }
    }
}

/// `query` with an EDNS Padding option (RFC 7830) that brings its length
/// to a multiple of [`PAD_BLOCK`]; a query without EDNS (after a FORMERR
/// fallback) is left as it is, since padding lives in the OPT record.
fn padded(query: Vec<u8>) -> Result<Vec<u8>, TransportError> {
    let mut message =
        Message::from_vec(&query).map_err(|e| TransportError::Encode(e.to_string()))?;
    let Some(edns) = message.edns.as_mut() else {
        return Ok(query);
    };
    // The option's own code and length take four bytes.
    let unpadded = query.len() + 4;
    let fill = (PAD_BLOCK - unpadded % PAD_BLOCK) % PAD_BLOCK;
    edns.options_mut()
        .insert(EdnsOption::Unknown(EDNS_PADDING, vec![0; fill]));
    message
        .to_vec()
        .map_err(|e| TransportError::Encode(e.to_string()))
}

/// The EDNS option code of Padding (RFC 7830 §3).
const EDNS_PADDING: u16 = 12;

/// Opens `key`'s connection (TCP, then the TLS handshake), hands the
/// outcome to every query waiting for it, and then runs the connection
/// until it closes.
async fn open(
    pool: Weak<PoolInner>,
    key: PoolKey,
    config: Arc<ClientConfig>,
    outcome: watch::Sender<Opened>,
) {
    let started = Instant::now();
    let connect = async {
        let tcp = TcpStream::connect(key.server).await?;
        tcp.set_nodelay(true)?;
        TlsConnector::from(config)
            .connect(key.name.clone(), tcp)
            .await
    };
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connect).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(OpenFailure::from_io(e)),
        Err(_) => Err(OpenFailure::Timeout(HANDSHAKE_TIMEOUT)),
    };
    let Some(inner) = pool.upgrade() else {
        return;
    };
    let stream = match stream {
        Ok(stream) => stream,
        Err(failure) => {
            debug!(server = %key.server, tls_name = %key.name.to_str(), error = %failure.to_transport(), "DoT connection failed");
            let mut slots = inner.slots();
            if matches!(slots.get(&key), Some(Slot::Opening(rx)) if rx.same_channel(&outcome.subscribe()))
            {
                slots.remove(&key);
            }
            drop(slots);
            outcome.send_replace(Some(Err(failure)));
            return;
        }
    };
    inner.handshakes.fetch_add(1, Ordering::Relaxed);
    debug!(
        server = %key.server,
        tls_name = %key.name.to_str(),
        handshake_ms = started.elapsed().as_millis() as u64,
        "DoT connection open"
    );
    let (queue_tx, queue_rx) = mpsc::channel(inner.max_in_flight);
    let conn = Arc::new(Connection {
        queue: queue_tx,
        slots: Semaphore::new(inner.max_in_flight),
        closed: AtomicBool::new(false),
        shutdown: Notify::new(),
        state: Mutex::new(ConnState {
            pending: HashMap::new(),
            closed: None,
            last_active: Instant::now(),
            last_read: Instant::now(),
        }),
    });
    inner.slots().insert(key.clone(), Slot::Open(conn.clone()));
    outcome.send_replace(Some(Ok(conn.clone())));
    let idle = inner.idle;
    // The pool is not kept alive by its connections.
    drop(inner);
    let why = conn.run(stream, queue_rx, idle).await;
    debug!(server = %key.server, tls_name = %key.name.to_str(), reason = %why.text, "DoT connection closed");
    if let Some(inner) = pool.upgrade() {
        inner.forget(&key, &conn);
    }
}

/// Why a connection closed, handed to the queries it fails.
#[derive(Clone, Debug)]
struct Closed {
    kind: io::ErrorKind,
    text: String,
}

impl Closed {
    fn from_io(e: &io::Error, when: &str) -> Closed {
        let text = match e.kind() {
            io::ErrorKind::UnexpectedEof => format!("the server closed the connection ({when})"),
            _ => format!("{when}: {e}"),
        };
        Closed {
            kind: e.kind(),
            text,
        }
    }
}

/// One open DoT connection: the queue to its writer, the queries waiting
/// for answers, and the slots that bound them.
struct Connection {
    /// Framed queries for the writer.
    queue: mpsc::Sender<Vec<u8>>,
    /// One permit per query in flight ([`MAX_IN_FLIGHT`]); closed with the
    /// connection so that queries waiting for a slot move on.
    slots: Semaphore,
    /// Set (under `state`'s lock) when the connection stops taking queries.
    closed: AtomicBool,
    /// Tells the connection's task to stop when a query found it dead.
    shutdown: Notify,
    state: Mutex<ConnState>,
}

struct ConnState {
    /// Each waiting query's ID and the channel its answers go to. An entry
    /// lives as long as its query waits, so an ID is never given to two
    /// queries at once.
    pending: HashMap<u16, mpsc::Sender<Vec<u8>>>,
    closed: Option<Closed>,
    /// When a query was last registered or answered: the idle clock.
    last_active: Instant,
    /// When the server last sent anything: the liveness clock.
    last_read: Instant,
}

/// Removes a query's ID from its connection when the query ends, answered,
/// failed or cancelled by its timeout.
struct Registered<'a> {
    conn: &'a Connection,
    id: u16,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let mut state = self.conn.state();
        state.pending.remove(&self.id);
        state.last_active = Instant::now();
    }
}

impl Connection {
    fn state(&self) -> MutexGuard<'_, ConnState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Why it closed, for a query that was waiting on it.
    fn closed_error(&self) -> TransportError {
        let closed = self.state().closed.clone().unwrap_or(Closed {
            kind: io::ErrorKind::ConnectionAborted,
            text: "the DoT connection closed".to_string(),
        });
        TransportError::Io(io::Error::new(closed.kind, closed.text))
    }

    /// Marks the connection closed (once) and fails every waiting query:
    /// dropping their senders ends their waits at once.
    fn close(&self, why: Closed) {
        let pending = {
            let mut state = self.state();
            if state.closed.is_none() {
                state.closed = Some(why);
            }
            self.closed.store(true, Ordering::Release);
            std::mem::take(&mut state.pending)
        };
        self.slots.close();
        drop(pending);
    }

    /// A query sent at `sent_at` timed out. If nothing has come back on
    /// the connection since then, and for [`SILENCE_LIMIT`], it is taken
    /// for dead: closed, its other queries failed at once, and the next
    /// query opens a new one.
    fn timed_out(&self, sent_at: Instant) {
        let silent_for = {
            let state = self.state();
            if state.closed.is_some() || state.last_read > sent_at {
                return;
            }
            state.last_read.elapsed()
        };
        if silent_for < SILENCE_LIMIT {
            return;
        }
        self.close(Closed {
            kind: io::ErrorKind::TimedOut,
            text: format!("the server sent nothing on the DoT connection for {silent_for:?}"),
        });
        self.shutdown.notify_one();
    }

    /// Closes the connection if nothing is in flight and nothing happened
    /// for `idle`; under the lock that registers queries, so a query either
    /// registered first (and keeps it open) or finds it closed.
    fn close_if_idle(&self, idle: Duration) -> bool {
        let mut state = self.state();
        if !state.pending.is_empty() || state.last_active.elapsed() < idle {
            return false;
        }
        state.closed = Some(Closed {
            kind: io::ErrorKind::ConnectionAborted,
            text: format!("the DoT connection closed after {idle:?} idle"),
        });
        self.closed.store(true, Ordering::Release);
        drop(state);
        self.slots.close();
        true
    }

    /// Registers a query under a random ID free on this connection (RFC
    /// 5452 §9.1 randomness; RFC 7766 §6.2.1.1: IDs of pipelined queries
    /// must differ), or `None` when the connection has closed.
    fn register(&self) -> Option<(u16, mpsc::Receiver<Vec<u8>>)> {
        let mut state = self.state();
        if state.closed.is_some() {
            return None;
        }
        // At most `MAX_IN_FLIGHT` of 65536 IDs are taken; a free one is
        // found in a try or two.
        let mut rng = rand::rng();
        let id = loop {
            let id: u16 = rng.random();
            if !state.pending.contains_key(&id) {
                break id;
            }
        };
        // Room for a stray answer with this ID (one to an earlier query
        // that gave up) and the true one.
        let (tx, rx) = mpsc::channel(4);
        state.pending.insert(id, tx);
        state.last_active = Instant::now();
        Some((id, rx))
    }

    /// Sends `frame` (a framed query whose ID is patched in) and waits for
    /// the answer that matches `q`. Anything else with its ID (a late
    /// answer to an earlier query that had it) is counted and ignored, as
    /// transport's UDP exchange does.
    async fn ask(
        &self,
        q: &Question<'_>,
        frame: &[u8],
        start: Instant,
        this: &Arc<Connection>,
        sent_on: &mut Option<(Arc<Connection>, Instant)>,
    ) -> Asked {
        let Ok(_permit) = self.slots.acquire().await else {
            return Asked::NotSent;
        };
        let Some((id, mut answers)) = self.register() else {
            return Asked::NotSent;
        };
        let _registered = Registered { conn: self, id };
        let mut frame = frame.to_vec();
        frame[2..4].copy_from_slice(&id.to_be_bytes());
        let queued_at = Instant::now();
        if self.queue.send(frame).await.is_err() {
            return Asked::NotSent;
        }
        *sent_on = Some((this.clone(), queued_at));
        let mut rejected = 0;
        loop {
            let Some(bytes) = answers.recv().await else {
                return Asked::Done(Err(self.closed_error()));
            };
            match Message::from_vec(&bytes) {
                Ok(m) if transport::matches(&m, id, q.name, q.rtype, q.use_0x20) => {
                    return Asked::Done(Ok(Exchange {
                        message: m,
                        size: bytes.len(),
                        rtt: start.elapsed(),
                        tcp: true,
                        rejected,
                    }));
                }
                Ok(m) if q.use_0x20 && transport::matches(&m, id, q.name, q.rtype, false) => {
                    return Asked::Done(Err(TransportError::CaseNotEchoed));
                }
                Err(_) if transport::undecodable_reply_to(&bytes, id, q.name, q.rtype) => {
                    return Asked::Done(Err(TransportError::Malformed));
                }
                _ => rejected += 1,
            }
        }
    }

    /// Runs the connection until it dies or idles out, then fails whatever
    /// still waits on it; returns why it closed.
    async fn run(
        &self,
        stream: TlsStream<TcpStream>,
        queue: mpsc::Receiver<Vec<u8>>,
        idle: Duration,
    ) -> Closed {
        let (reader, writer) = tokio::io::split(stream);
        let why = tokio::select! {
            why = self.read_answers(reader) => why,
            why = self.write_queries(writer, queue, idle) => why,
            _ = self.shutdown.notified() => self.state().closed.clone().unwrap_or(Closed {
                kind: io::ErrorKind::ConnectionAborted,
                text: "the DoT connection was closed".into(),
            }),
        };
        self.close(why.clone());
        why
    }

    /// Reads framed answers (RFC 7766 §8) and hands each to the query with
    /// its ID; an answer for no waiting query (it gave up) is dropped.
    async fn read_answers(&self, mut reader: ReadHalf<TlsStream<TcpStream>>) -> Closed {
        loop {
            let len = match reader.read_u16().await {
                Ok(len) => usize::from(len),
                Err(e) => return Closed::from_io(&e, "reading an answer's length"),
            };
            let mut answer = vec![0u8; len];
            if let Err(e) = reader.read_exact(&mut answer).await {
                return Closed::from_io(&e, "reading an answer");
            }
            let Some(id) = answer.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
                continue;
            };
            let mut state = self.state();
            state.last_read = Instant::now();
            if let Some(waiter) = state.pending.get(&id) {
                // Full only if the server repeats itself: drop the extra.
                let _ = waiter.try_send(answer);
            }
            drop(state);
        }
    }

    /// Writes queued queries, several to a TLS record when they queue up
    /// together, and closes the connection (with a TLS close_notify) once
    /// it has been idle for `idle`.
    async fn write_queries(
        &self,
        mut writer: WriteHalf<TlsStream<TcpStream>>,
        mut queue: mpsc::Receiver<Vec<u8>>,
        idle: Duration,
    ) -> Closed {
        let mut batch = Vec::new();
        loop {
            // While queries are in flight the connection is not idle; the
            // clock restarts when the last of them ends.
            let idle_at = {
                let state = self.state();
                let since = if state.pending.is_empty() {
                    state.last_active
                } else {
                    Instant::now()
                };
                tokio::time::Instant::from_std(since + idle)
            };
            tokio::select! {
                frame = queue.recv() => {
                    // `self.queue` is a sender, so the queue never ends while
                    // the connection lives.
                    let Some(frame) = frame else {
                        return Closed { kind: io::ErrorKind::ConnectionAborted, text: "the pool was dropped".into() };
                    };
                    batch.clear();
                    batch.extend_from_slice(&frame);
                    while let Ok(more) = queue.try_recv() {
                        batch.extend_from_slice(&more);
                    }
                    let written = async {
                        writer.write_all(&batch).await?;
                        writer.flush().await
                    };
                    if let Err(e) = written.await {
                        return Closed::from_io(&e, "writing a query");
                    }
                }
                _ = tokio::time::sleep_until(idle_at) => {
                    if self.close_if_idle(idle) {
                        let _ = tokio::time::timeout(CLOSE_WAIT, writer.shutdown()).await;
                        return Closed {
                            kind: io::ErrorKind::ConnectionAborted,
                            text: format!("the DoT connection closed after {idle:?} idle"),
                        };
                    }
                    // Busy: a query is in flight, or one came since.
                }
            }
        }
    }
}
