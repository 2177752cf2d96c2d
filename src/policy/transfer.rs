//! A secondary copy of a response policy zone, transferred from its primary.
//!
//! An `[[rpz]]` entry may name a `primary` instead of a file. taproot then
//! does what any secondary does (RFC 1034 §4.3.5): it asks the primary for
//! the zone's SOA every SOA refresh (every SOA retry after a failure), and
//! when the primary's serial is newer (RFC 1982 serial arithmetic) it
//! transfers the zone: IXFR (RFC 1995) with its own SOA when it holds a
//! copy, AXFR (RFC 5936) otherwise, and AXFR again when the incremental
//! reply does not fit the copy held.
//!
//! ```text
//!  spawn ── every SOA refresh ──► refresh ──► SOA query (UDP, TCP on TC)    resolve::transport
//!                                    │ newer serial
//!                                    ▼
//!                         IXFR / AXFR over TCP ──► messages ──► reply::ReplyReader
//!                                    │                              │ IXFR sequences
//!                                    ▼                              ▼
//!                        the held copy, replaced  ◄──  difference::Difference
//!                                    │
//!                                    ▼
//!                  on_update(zone, records)  (the policy engine's rules)
//! ```
//!
//! A transfer is all or nothing: every message must answer our query (ID,
//! QR, the question when present, NOERROR, no TC over TCP), every record
//! must be at or below the zone's apex, the reply must open and close with
//! the zone's SOA, and time, messages, records and bytes are bounded
//! ([`Limits`]). Anything else fails the transfer, is logged and counted,
//! and the copy held before stays in use.

mod difference;
mod reply;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use rand::Rng;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::resolve::transport::{self, Question, TransportError};

pub use difference::Inconsistent;
use reply::{Reply, ReplyReader, newer, soa_serial};

/// The shortest wait between two refreshes, whatever the SOA says: a
/// refresh of 0 must not turn into a busy loop.
pub const MIN_REFRESH: Duration = Duration::from_secs(1);

/// The first wait after a failure while no copy is held (no SOA retry is
/// known yet); it doubles with each failure up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(5);

/// The longest wait between attempts while no copy is held.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The time [`spawn`] gives one refresh, SOA query and transfer together.
/// BIND allows an inbound transfer 120 minutes (`max-transfer-time-in`);
/// an RPZ feed of millions of records over loopback or a LAN takes
/// seconds to a few minutes.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Bounds on one transfer beyond its time: a primary that streams forever,
/// or a garbled stream, fails the transfer instead of exhausting memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Answer records in one transfer (the large RPZ feeds hold a few
    /// million).
    pub records: u64,
    /// Messages in one transfer (a server may send one record per message).
    pub messages: u64,
    /// Bytes of messages in one transfer.
    pub bytes: u64,
    /// The time [`spawn`] gives each refresh.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            records: 20_000_000,
            messages: 20_000_000,
            bytes: 4 << 30,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Why a refresh failed. The held copy is unchanged in every case.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("the refresh did not finish within {0:?}")]
    Timeout(Duration),
    #[error("the primary cannot be reached: {0}")]
    Io(#[from] std::io::Error),
    #[error("the SOA query failed: {0}")]
    Soa(TransportError),
    #[error("the transfer query could not be built: {0}")]
    Query(TransportError),
    #[error("the primary answered {rcode} to the {qtype} query")]
    Rcode {
        qtype: RecordType,
        rcode: ResponseCode,
    },
    #[error("the primary's answer to the SOA query holds no SOA for the zone")]
    NoSoa,
    #[error("a transfer message does not decode as a DNS message")]
    Malformed,
    #[error("a transfer message does not answer the query (ID, QR, opcode or question)")]
    Mismatch,
    #[error("a transfer message over TCP has the TC bit set")]
    Truncated,
    #[error("the transfer holds {name}, which is not at or below the zone's apex")]
    OutOfZone { name: Name },
    #[error("the transfer holds a record of class {0}, not IN")]
    Class(DNSClass),
    #[error("the transfer does not open with the zone's SOA")]
    NoOpeningSoa,
    #[error("the transfer opens with serial {opened} and closes with {closed}")]
    SerialMismatch { opened: u32, closed: u32 },
    #[error("the transfer holds records after its closing SOA")]
    AfterClosingSoa,
    #[error("the primary closed the connection before the transfer's closing SOA")]
    Incomplete,
    #[error("the primary answered IXFR with its newer SOA alone and no difference")]
    SoaOnly,
    #[error("the transfer exceeds the limit of {limit} {what}")]
    TooLarge { what: &'static str, limit: u64 },
    #[error("the incremental transfer does not fit the held copy: {0}")]
    Ixfr(#[from] Inconsistent),
}

/// What a successful refresh did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refreshed {
    /// The primary's serial is not newer than ours: nothing transferred
    /// (or the IXFR reply said so).
    Unchanged,
    /// The copy now holds `serial`, from an IXFR difference when
    /// `incremental`, otherwise from a full zone (AXFR, or an AXFR-style
    /// IXFR reply).
    Updated { serial: u32, incremental: bool },
}

/// Counts over a transfer's life, for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransferStats {
    /// Refreshes that changed the copy.
    pub updates: u64,
    /// Of those, the ones applied from an IXFR difference.
    pub incremental: u64,
    /// Refreshes that failed (the copy was kept).
    pub failures: u64,
    /// Of those, the ones refused for a record outside the zone.
    pub out_of_zone: u64,
}

/// One secondary copy of a zone, kept current from its primary (RFC 1034
/// §4.3.5; AXFR RFC 5936, IXFR RFC 1995).
pub struct ZoneTransfer {
    zone: Name,
    primary: SocketAddr,
    /// The whole zone, its SOA first; empty until the first transfer.
    records: Vec<Record>,
    /// The SOA held, once there is a copy.
    soa: Option<SOA>,
    /// Failed refreshes since the last success.
    failures: u32,
    limits: Limits,
    stats: TransferStats,
}

/// A summary: the records of a large zone would fill any log.
impl std::fmt::Debug for ZoneTransfer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneTransfer")
            .field("zone", &self.zone)
            .field("primary", &self.primary)
            .field("serial", &self.serial())
            .field("records", &self.records.len())
            .field("failures", &self.failures)
            .field("stats", &self.stats)
            .finish()
    }
}

impl ZoneTransfer {
    /// A copy of `zone`, to be transferred from `primary`; it holds
    /// nothing until the first [`ZoneTransfer::refresh`].
    pub fn new(zone: Name, primary: SocketAddr) -> ZoneTransfer {
        ZoneTransfer {
            zone,
            primary,
            records: Vec::new(),
            soa: None,
            failures: 0,
            limits: Limits::default(),
            stats: TransferStats::default(),
        }
    }

    /// The same with other [`Limits`].
    pub fn with_limits(mut self, limits: Limits) -> ZoneTransfer {
        self.limits = limits;
        self
    }

    /// The zone's apex.
    pub fn zone(&self) -> &Name {
        &self.zone
    }

    /// The primary transferred from.
    pub fn primary(&self) -> SocketAddr {
        self.primary
    }

    /// The bounds on each transfer.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The serial of the copy held, if any.
    pub fn serial(&self) -> Option<u32> {
        self.soa.as_ref().map(|s| s.serial)
    }

    /// The whole current zone, its SOA first; empty before the first
    /// successful transfer.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Updates and failures so far.
    pub fn stats(&self) -> TransferStats {
        self.stats
    }

    /// How long to wait before the next refresh: none before the first,
    /// the SOA refresh after a success, the SOA retry after a failure
    /// (RFC 1034 §4.3.5), and while no copy is held a backoff from
    /// [`FIRST_BACKOFF`] doubling to [`MAX_BACKOFF`]. Never less than
    /// [`MIN_REFRESH`] once an attempt was made.
    pub fn next_refresh(&self) -> Duration {
        let seconds = |s: i32| Duration::from_secs(u64::try_from(s).unwrap_or(0));
        let wait = match (&self.soa, self.failures) {
            (None, 0) => return Duration::ZERO,
            (Some(soa), 0) => seconds(soa.refresh),
            (Some(soa), _) => seconds(soa.retry),
            (None, n) => FIRST_BACKOFF
                .saturating_mul(1 << (n - 1).min(16))
                .min(MAX_BACKOFF),
        };
        wait.max(MIN_REFRESH)
    }

    /// Brings the copy up to date, within `timeout` for the SOA query and
    /// any transfer together. With nothing held, an AXFR at once. With a
    /// copy, an SOA query (UDP, TCP when truncated), and when the
    /// primary's serial is newer than ours an IXFR with our SOA. An IXFR
    /// reply may be a full zone (AXFR-style); one whose difference does
    /// not fit the copy, one that is the newer SOA alone, or a primary
    /// that does not know IXFR (NOTIMP, FORMERR) is followed by an AXFR.
    /// On error the copy held is unchanged.
    pub async fn refresh(&mut self, timeout: Duration) -> Result<Refreshed, TransferError> {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + timeout;
        let result = match tokio::time::timeout_at(deadline, self.refresh_within(deadline)).await {
            Ok(result) => result,
            Err(_) => Err(TransferError::Timeout(timeout)),
        };
        match &result {
            Ok(Refreshed::Updated {
                serial,
                incremental,
            }) => {
                self.failures = 0;
                self.stats.updates += 1;
                if *incremental {
                    self.stats.incremental += 1;
                }
                tracing::info!(
                    zone = %self.zone,
                    primary = %self.primary,
                    serial,
                    records = self.records.len(),
                    incremental,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "zone transferred"
                );
            }
            Ok(Refreshed::Unchanged) => {
                self.failures = 0;
                tracing::debug!(
                    zone = %self.zone,
                    primary = %self.primary,
                    serial = self.serial(),
                    "zone is current"
                );
            }
            Err(error) => {
                self.failures = self.failures.saturating_add(1);
                self.stats.failures += 1;
                if matches!(error, TransferError::OutOfZone { .. }) {
                    self.stats.out_of_zone += 1;
                }
                tracing::warn!(
                    zone = %self.zone,
                    primary = %self.primary,
                    serial = self.serial(),
                    records = self.records.len(),
                    %error,
                    "zone transfer failed; the copy held is kept"
                );
            }
        }
        result
    }

    async fn refresh_within(
        &mut self,
        deadline: tokio::time::Instant,
    ) -> Result<Refreshed, TransferError> {
        let Some(ours) = self.serial() else {
            // Nothing held: the SOA query could only say "transfer".
            let reply = self.transfer(RecordType::AXFR).await?;
            return self.take(reply);
        };
        let theirs = self.primary_serial(deadline).await?;
        if !newer(theirs, ours) {
            if theirs != ours {
                // RFC 1982: older, or exactly half the space away. A
                // primary restored from an old backup; keep ours.
                tracing::info!(
                    zone = %self.zone,
                    primary = %self.primary,
                    serial = ours,
                    primary_serial = theirs,
                    "the primary's serial is not newer than the copy held; keeping the copy"
                );
            }
            return Ok(Refreshed::Unchanged);
        }
        let reply = match self.transfer(RecordType::IXFR).await {
            Ok(reply) => reply,
            Err(
                why @ (TransferError::Ixfr(_)
                | TransferError::SoaOnly
                | TransferError::Rcode {
                    rcode: ResponseCode::NotImp | ResponseCode::FormErr,
                    ..
                }),
            ) => {
                self.log_fallback(&why);
                self.transfer(RecordType::AXFR).await?
            }
            Err(e) => return Err(e),
        };
        match self.take(reply) {
            Err(why @ TransferError::Ixfr(_)) => {
                self.log_fallback(&why);
                let full = self.transfer(RecordType::AXFR).await?;
                self.take(full)
            }
            done => done,
        }
    }

    fn log_fallback(&self, why: &TransferError) {
        tracing::info!(
            zone = %self.zone,
            primary = %self.primary,
            reason = %why,
            "no usable incremental transfer; transferring the whole zone"
        );
    }

    /// The primary's serial, from an SOA query.
    async fn primary_serial(&self, deadline: tokio::time::Instant) -> Result<u32, TransferError> {
        let question = Question {
            name: &self.zone,
            rtype: RecordType::SOA,
            edns_payload: Some(1232),
            dnssec_ok: false,
            use_0x20: false,
            recursion_desired: false,
            checking_disabled: false,
        };
        let wait = deadline.saturating_duration_since(tokio::time::Instant::now());
        let exchange = transport::exchange(self.primary, &question, wait)
            .await
            .map_err(TransferError::Soa)?;
        let rcode = exchange.message.metadata.response_code;
        if rcode != ResponseCode::NoError {
            return Err(TransferError::Rcode {
                qtype: RecordType::SOA,
                rcode,
            });
        }
        exchange
            .message
            .answers
            .iter()
            .find_map(|r| soa_serial(&self.zone, r))
            .ok_or(TransferError::NoSoa)
    }

    /// Makes a complete reply the copy held.
    fn take(&mut self, reply: Reply) -> Result<Refreshed, TransferError> {
        match reply {
            Reply::Current => Ok(Refreshed::Unchanged),
            // A primary that went back in time (or a second primary behind
            // the first): keep the newer copy.
            Reply::Full { serial, .. } | Reply::Incremental { serial, .. }
                if self.serial().is_some_and(|ours| !newer(serial, ours)) =>
            {
                Ok(Refreshed::Unchanged)
            }
            Reply::Full { serial, records } => {
                let soa = held_soa(&records).ok_or(TransferError::NoOpeningSoa)?;
                self.records = records;
                self.soa = Some(soa);
                Ok(Refreshed::Updated {
                    serial,
                    incremental: false,
                })
            }
            Reply::Incremental { serial, difference } => self.apply(serial, difference),
        }
    }

    /// Applies an IXFR difference; the copy is untouched when it does not
    /// fit.
    fn apply(
        &mut self,
        serial: u32,
        difference: difference::Difference,
    ) -> Result<Refreshed, TransferError> {
        difference.apply(&mut self.records)?;
        // The new SOA was appended: put it first again.
        if let Some(at) = self
            .records
            .iter()
            .position(|r| soa_serial(&self.zone, r).is_some())
        {
            self.records.swap(0, at);
        }
        self.soa = held_soa(&self.records);
        Ok(Refreshed::Updated {
            serial,
            incremental: true,
        })
    }

    /// One AXFR or IXFR over a fresh TCP connection (RFC 5936 §4.1, RFC
    /// 1995 §2), read to its closing SOA.
    async fn transfer(&self, qtype: RecordType) -> Result<Reply, TransferError> {
        let id: u16 = rand::rng().random();
        let question = Question {
            name: &self.zone,
            rtype: qtype,
            edns_payload: None,
            dnssec_ok: false,
            use_0x20: false,
            recursion_desired: false,
            checking_disabled: false,
        };
        let mut query = transport::query(&question, id);
        let ours = match (qtype, self.records.first()) {
            // RFC 1995 §3: the version held, as an SOA in the authority section.
            (RecordType::IXFR, Some(soa)) => {
                query.add_authority(soa.clone());
                self.serial()
            }
            _ => None,
        };
        let bytes = transport::encode(&query)
            .and_then(|b| transport::framed(&b))
            .map_err(TransferError::Query)?;
        let mut stream = TcpStream::connect(self.primary).await?;
        stream.write_all(&bytes).await?;
        let mut reader = ReplyReader::new(self.zone.clone(), ours, self.limits.records);
        let (mut messages, mut received) = (0u64, 0u64);
        while !reader.is_done() {
            let frame = match transport::read_frame(&mut stream).await {
                Ok(frame) => frame,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return reader.finish();
                }
                Err(e) => return Err(e.into()),
            };
            messages += 1;
            received += frame.len() as u64 + 2;
            if messages > self.limits.messages {
                return Err(TransferError::TooLarge {
                    what: "messages",
                    limit: self.limits.messages,
                });
            }
            if received > self.limits.bytes {
                return Err(TransferError::TooLarge {
                    what: "bytes",
                    limit: self.limits.bytes,
                });
            }
            let message = Message::from_vec(&frame).map_err(|_| TransferError::Malformed)?;
            self.check(&message, id, qtype)?;
            for record in message.answers {
                reader.feed(record)?;
            }
            reader.end_of_message();
        }
        tracing::debug!(
            zone = %self.zone,
            primary = %self.primary,
            %qtype,
            messages,
            bytes = received,
            "transfer read"
        );
        reader.finish()
    }

    /// RFC 5936 §2.2: each message answers our query (ID, QR, opcode; the
    /// question when it has one, which only the first must), with NOERROR
    /// and, over TCP, never TC.
    fn check(&self, message: &Message, id: u16, qtype: RecordType) -> Result<(), TransferError> {
        let m = &message.metadata;
        if m.id != id || m.message_type != MessageType::Response || m.op_code != OpCode::Query {
            return Err(TransferError::Mismatch);
        }
        if !message.queries.is_empty() && !transport::matches(message, id, &self.zone, qtype, false)
        {
            return Err(TransferError::Mismatch);
        }
        if m.response_code != ResponseCode::NoError {
            return Err(TransferError::Rcode {
                qtype,
                rcode: m.response_code,
            });
        }
        if m.truncation {
            return Err(TransferError::Truncated);
        }
        Ok(())
    }
}

/// The SOA of a copy whose SOA is first.
fn held_soa(records: &[Record]) -> Option<SOA> {
    match records.first().map(|r| &r.data) {
        Some(RData::SOA(soa)) => Some(soa.clone()),
        _ => None,
    }
}

/// Keeps `transfer` current until `shutdown`: a refresh at once, then one
/// each [`ZoneTransfer::next_refresh`], each within
/// [`Limits::timeout`]. `on_update` is called with the whole zone after
/// every refresh that changed it; it runs on the transfer's task, so it
/// should hand heavy work (compiling millions of rules) elsewhere.
pub fn spawn(
    mut transfer: ZoneTransfer,
    on_update: impl Fn(&Name, &[Record]) + Send + Sync + 'static,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let wait = transfer.next_refresh();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            let timeout = transfer.limits.timeout;
            let refreshed = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = transfer.refresh(timeout) => r,
            };
            if let Ok(Refreshed::Updated { .. }) = refreshed {
                on_update(transfer.zone(), transfer.records());
            }
        }
    })
}
