//! What the shared tier counts, as Prometheus families registered beside
//! the others when `[cache.shared]` is set (absent otherwise).

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};

/// Reads by outcome: `hit`, `miss`, `error`, `timeout`, `rejected` (a value
/// whose HMAC, version or bytes do not verify), `untrusted` (Secure data
/// read without a fleet secret), `open` (refused by the breaker).
pub const READS: &str = "taproot_shared_cache_reads_total";
/// Read latency, sent to answered or timed out.
pub const READ_SECONDS: &str = "taproot_shared_cache_read_seconds";
/// 1 while the breaker refuses reads.
pub const BREAKER_OPEN: &str = "taproot_shared_cache_breaker_open";
/// Writes by outcome: `written`, `failed`, `dropped` (queue full),
/// `skipped` (breaker open, or not storable).
pub const WRITES: &str = "taproot_shared_cache_writes_total";
/// Flushes by origin: `local` (asked of this instance), `fleet` (published
/// by another instance).
pub const FLUSHES: &str = "taproot_shared_cache_flushes_total";

/// The tier's metric families.
#[derive(Clone)]
pub struct TierStats {
    reads: IntCounterVec,
    pub read_seconds: Histogram,
    pub breaker_open: IntGauge,
    writes: IntCounterVec,
    flushes: IntCounterVec,
}

/// How a read ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    Hit,
    Miss,
    Error,
    Timeout,
    Rejected,
    Untrusted,
    Open,
}

impl ReadOutcome {
    fn label(self) -> &'static str {
        match self {
            ReadOutcome::Hit => "hit",
            ReadOutcome::Miss => "miss",
            ReadOutcome::Error => "error",
            ReadOutcome::Timeout => "timeout",
            ReadOutcome::Rejected => "rejected",
            ReadOutcome::Untrusted => "untrusted",
            ReadOutcome::Open => "open",
        }
    }
}

impl TierStats {
    /// The families, registered in `registry` (a second registration of
    /// the same names, as in a test that starts two instances on one
    /// registry, keeps the families unregistered rather than failing).
    pub fn new(registry: &Registry) -> TierStats {
        let reads = IntCounterVec::new(
            Opts::new(READS, "Reads of the shared cache, by outcome."),
            &["result"],
        )
        .expect("static metric options");
        let read_seconds = Histogram::with_opts(
            HistogramOpts::new(READ_SECONDS, "Shared cache read latency.").buckets(vec![
                0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1,
            ]),
        )
        .expect("static metric options");
        let breaker_open = IntGauge::new(
            BREAKER_OPEN,
            "1 while the shared cache's circuit breaker refuses reads.",
        )
        .expect("static metric options");
        let writes = IntCounterVec::new(
            Opts::new(WRITES, "Writes to the shared cache, by outcome."),
            &["result"],
        )
        .expect("static metric options");
        let flushes = IntCounterVec::new(
            Opts::new(FLUSHES, "Shared cache flushes, by origin."),
            &["origin"],
        )
        .expect("static metric options");
        for outcome in [
            ReadOutcome::Hit,
            ReadOutcome::Miss,
            ReadOutcome::Error,
            ReadOutcome::Timeout,
            ReadOutcome::Rejected,
            ReadOutcome::Untrusted,
            ReadOutcome::Open,
        ] {
            reads.with_label_values(&[outcome.label()]);
        }
        for result in ["written", "failed", "dropped", "skipped"] {
            writes.with_label_values(&[result]);
        }
        for origin in ["local", "fleet"] {
            flushes.with_label_values(&[origin]);
        }
        let _ = registry.register(Box::new(reads.clone()));
        let _ = registry.register(Box::new(read_seconds.clone()));
        let _ = registry.register(Box::new(breaker_open.clone()));
        let _ = registry.register(Box::new(writes.clone()));
        let _ = registry.register(Box::new(flushes.clone()));
        TierStats {
            reads,
            read_seconds,
            breaker_open,
            writes,
            flushes,
        }
    }

    pub fn read(&self, outcome: ReadOutcome) {
        self.reads.with_label_values(&[outcome.label()]).inc();
    }

    /// Reads that ended with `outcome` so far.
    pub fn reads(&self, outcome: ReadOutcome) -> u64 {
        self.reads.with_label_values(&[outcome.label()]).get()
    }

    pub fn writes(&self, result: &'static str, n: u64) {
        self.writes.with_label_values(&[result]).inc_by(n);
    }

    pub fn flushed(&self, origin: &'static str) {
        self.flushes.with_label_values(&[origin]).inc();
    }
}
