//! Metric families (Prometheus conventions: base units, `_total` counters,
//! bounded label sets) and the values the hot path touches.
//!
//! The hot path never looks a label set up: every (protocol, qtype, rcode)
//! counter is created once at start-up and indexed by small integers, so a
//! query costs one relaxed atomic add. Cache counters live in
//! [`crate::cache::CacheStats`] and are copied in at scrape time.

pub mod http;

use std::sync::Mutex;
use std::time::Duration;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use crate::cache::{Cache, CacheKind};
use crate::server::transport::Transport;

/// Metric names, public so tests and dashboards share one spelling.
pub mod names {
    pub const QUERIES: &str = "taproot_queries_total";
    pub const QUERY_DURATION: &str = "taproot_query_duration_seconds";
    pub const CACHE_HITS: &str = "taproot_cache_hits_total";
    pub const CACHE_MISSES: &str = "taproot_cache_misses_total";
    pub const CACHE_ENTRIES: &str = "taproot_cache_entries";
    pub const CACHE_BYTES: &str = "taproot_cache_bytes";
    pub const CACHE_EVICTIONS: &str = "taproot_cache_evictions_total";
    pub const CACHE_PREFETCHES: &str = "taproot_cache_prefetches_total";
    pub const CACHE_STALE: &str = "taproot_cache_stale_answers_total";
    pub const UPSTREAM_QUERIES: &str = "taproot_upstream_queries_total";
    pub const FORWARD_QUERIES: &str = "taproot_forward_queries_total";
    pub const FORWARD_TLS_HANDSHAKES: &str = "taproot_forward_tls_handshakes_total";
    pub const FORWARD_TLS_CONNECTIONS: &str = "taproot_forward_tls_connections";
    pub const UPSTREAM_RTT: &str = "taproot_upstream_rtt_seconds";
    pub const UPSTREAM_REJECTED: &str = "taproot_upstream_rejected_total";
    pub const UPSTREAM_SERVER_EVENTS: &str = "taproot_upstream_server_events_total";
    pub const INFLIGHT: &str = "taproot_resolutions_inflight";
    pub const REFERRALS: &str = "taproot_referral_answers_total";
    pub const SERVFAIL: &str = "taproot_servfail_total";
    pub const FAILURES_CACHED: &str = "taproot_servfail_cached_total";
    pub const DNSSEC_VALIDATIONS: &str = "taproot_dnssec_validations_total";
    pub const DNSSEC_AGGRESSIVE: &str = "taproot_dnssec_aggressive_nsec_total";
    pub const DROPPED: &str = "taproot_dropped_total";
    pub const REFUSED: &str = "taproot_refused_total";
    pub const BUILD_INFO: &str = "taproot_build_info";
    /// Queries a local zone or RPZ answered (or dropped, or passed), by
    /// zone and action (see [`crate::policy`]).
    pub const POLICY_HITS: &str = "taproot_policy_hits_total";
    /// Triggers loaded per response policy zone.
    pub const POLICY_RULES: &str = "taproot_policy_rules";
    pub const CONNECTIONS_OPEN: &str = "taproot_connections_open";
    pub const TLS_HANDSHAKES: &str = "taproot_tls_handshakes_total";
    pub const TLS_HANDSHAKE_FAILURES: &str = "taproot_tls_handshake_failures_total";
    pub const TLS_CERTIFICATE_RELOADS: &str = "taproot_tls_certificate_reloads_total";
    pub const HTTPS_RESPONSES: &str = "taproot_https_responses_total";
    /// Warm restart (`cache.snapshot_file`): entries in the last snapshot
    /// written or loaded, by event.
    pub const SNAPSHOT_ENTRIES: &str = "taproot_cache_snapshot_entries";
    /// How old the snapshot loaded at start was: the downtime it bridged.
    pub const SNAPSHOT_AGE: &str = "taproot_cache_snapshot_age_seconds";
    /// When the last snapshot was written (Unix seconds).
    pub const SNAPSHOT_WRITTEN_AT: &str = "taproot_cache_snapshot_last_write_timestamp_seconds";
    /// Snapshots not written, or refused at start, by reason.
    pub const SNAPSHOT_FAILURES: &str = "taproot_cache_snapshot_failures_total";

    /// Every family `/metrics` exposes from its first scrape on: taproot's
    /// own and the process collector's. (`UPSTREAM_REJECTED` appears once a
    /// forged or stray upstream reply was counted.)
    pub const ALWAYS_EXPORTED: [&str; 29] = [
        QUERIES,
        QUERY_DURATION,
        CACHE_HITS,
        CACHE_MISSES,
        CACHE_ENTRIES,
        CACHE_BYTES,
        CACHE_EVICTIONS,
        CACHE_PREFETCHES,
        CACHE_STALE,
        UPSTREAM_QUERIES,
        UPSTREAM_RTT,
        UPSTREAM_SERVER_EVENTS,
        INFLIGHT,
        REFERRALS,
        SERVFAIL,
        FAILURES_CACHED,
        DNSSEC_VALIDATIONS,
        DNSSEC_AGGRESSIVE,
        DROPPED,
        REFUSED,
        BUILD_INFO,
        CONNECTIONS_OPEN,
        TLS_HANDSHAKES,
        TLS_HANDSHAKE_FAILURES,
        TLS_CERTIFICATE_RELOADS,
        HTTPS_RESPONSES,
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ];
}

/// The `event` label values of `taproot_upstream_server_events_total`.
pub const SERVER_EVENTS: [&str; 4] = ["backoff", "down", "probe", "skipped_down"];

/// The qtype label values; anything else is `other`.
pub const QTYPES: [(u16, &str); 15] = [
    (1, "A"),
    (28, "AAAA"),
    (5, "CNAME"),
    (15, "MX"),
    (16, "TXT"),
    (2, "NS"),
    (6, "SOA"),
    (12, "PTR"),
    (33, "SRV"),
    (65, "HTTPS"),
    (64, "SVCB"),
    (255, "ANY"),
    (43, "DS"),
    (48, "DNSKEY"),
    (257, "CAA"),
];
const RCODES: [&str; 7] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "other",
];

#[inline]
fn qtype_index(qtype: u16) -> usize {
    QTYPES
        .iter()
        .position(|(t, _)| *t == qtype)
        .unwrap_or(QTYPES.len())
}

#[inline]
fn rcode_index(rcode: u16) -> usize {
    match rcode {
        0..=5 => rcode as usize,
        _ => RCODES.len() - 1,
    }
}

/// Every family taproot exports.
pub struct Metrics {
    pub registry: Registry,
    queries: Vec<IntCounter>,
    duration_hit: Histogram,
    duration_miss: Histogram,
    cache_hits: IntCounterVec,
    cache_misses: IntCounterVec,
    cache_entries: IntGaugeVec,
    cache_bytes: IntGauge,
    cache_evictions: IntCounter,
    cache_prefetches: IntCounter,
    cache_stale: IntCounter,
    upstream_queries: IntCounterVec,
    forward_queries: IntCounterVec,
    forward_tls_handshakes: IntCounter,
    forward_tls_connections: IntGauge,
    upstream_rtt: Histogram,
    upstream_rejected: IntCounter,
    upstream_server_events: IntCounterVec,
    pub inflight: IntGauge,
    referrals: IntCounter,
    servfail: IntCounterVec,
    failures_cached: IntCounter,
    validations: IntCounterVec,
    aggressive_nsec: IntCounter,
    dropped: IntCounterVec,
    refused: IntCounter,
    policy_hits: IntCounterVec,
    policy_rules: IntGaugeVec,
    connections_open: IntGaugeVec,
    tls_handshakes: IntCounterVec,
    tls_handshake_failures: IntCounterVec,
    tls_certificate_reloads: IntCounterVec,
    https_responses: IntCounterVec,
    snapshot_entries: IntGaugeVec,
    snapshot_age: IntGauge,
    snapshot_written_at: IntGauge,
    snapshot_failures: IntCounterVec,
    scrape_lock: Mutex<()>,
}

/// The `status` values of `taproot_https_responses_total` present from the
/// first scrape (others appear when first sent).
pub const HTTPS_STATUSES: [u16; 7] = [200, 400, 403, 404, 405, 413, 415];

/// One open connection, counted in `taproot_connections_open` until dropped.
pub struct OpenConnection(IntGauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let v = IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition");
    registry
        .register(Box::new(v.clone()))
        .expect("unique metric name");
    v
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric definition");
    registry
        .register(Box::new(g.clone()))
        .expect("unique metric name");
    g
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("static metric definition");
    registry
        .register(Box::new(g.clone()))
        .expect("unique metric name");
    g
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("static metric definition");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric name");
    c
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let queries_vec = counter_vec(
            &registry,
            names::QUERIES,
            "Client queries answered, by client transport, query type and response code.",
            &["protocol", "qtype", "rcode"],
        );
        let mut queries = Vec::new();
        for proto in Transport::ALL.map(Transport::as_str) {
            for qt in QTYPES.iter().map(|(_, n)| *n).chain(["other"]) {
                for rc in RCODES {
                    queries.push(queries_vec.with_label_values(&[proto, qt, rc]));
                }
            }
        }
        let duration = HistogramVec::new(
            HistogramOpts::new(
                names::QUERY_DURATION,
                "Time from receiving a client query to sending its answer.",
            )
            .buckets(vec![
                0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["cache"],
        )
        .expect("static metric definition");
        registry
            .register(Box::new(duration.clone()))
            .expect("unique metric name");
        let upstream_rtt = Histogram::with_opts(
            HistogramOpts::new(
                names::UPSTREAM_RTT,
                "Round-trip time of upstream queries that were answered.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
        )
        .expect("static metric definition");
        registry
            .register(Box::new(upstream_rtt.clone()))
            .expect("unique metric name");
        let cache_entries = IntGaugeVec::new(
            Opts::new(
                names::CACHE_ENTRIES,
                "Entries in the cache: answer (assembled answers), record (RRsets, which also answer their own question), negative; and in the side caches: parent_side (referrals' cuts for the last resort), dnssec_key (proven keys by name).",
            ),
            &["kind"],
        )
        .expect("static metric definition");
        registry
            .register(Box::new(cache_entries.clone()))
            .expect("unique metric name");
        let cache_bytes = IntGauge::new(
            names::CACHE_BYTES,
            "Approximate bytes held by the cache (weigher).",
        )
        .expect("static metric definition");
        registry
            .register(Box::new(cache_bytes.clone()))
            .expect("unique metric name");
        let forward_tls_connections = IntGauge::new(
            names::FORWARD_TLS_CONNECTIONS,
            "Open DNS-over-TLS connections to [[forward]] servers.",
        )
        .expect("static metric definition");
        registry
            .register(Box::new(forward_tls_connections.clone()))
            .expect("unique metric name");
        let inflight = IntGauge::new(names::INFLIGHT, "Recursive resolutions in flight.")
            .expect("static metric definition");
        registry
            .register(Box::new(inflight.clone()))
            .expect("unique metric name");
        let build = IntGaugeVec::new(
            Opts::new(names::BUILD_INFO, "Build information; always 1."),
            &["version"],
        )
        .expect("static metric definition");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        registry
            .register(Box::new(build))
            .expect("unique metric name");
        #[cfg(target_os = "linux")]
        {
            let pc = prometheus::process_collector::ProcessCollector::for_self();
            let _ = registry.register(Box::new(pc));
        }
        let policy_rules = IntGaugeVec::new(
            Opts::new(
                names::POLICY_RULES,
                "Triggers loaded, by response policy zone.",
            ),
            &["zone"],
        )
        .expect("static metric definition");
        registry
            .register(Box::new(policy_rules.clone()))
            .expect("unique metric name");
        let m = Metrics {
            policy_hits: counter_vec(
                &registry,
                names::POLICY_HITS,
                "Queries a local zone or response policy zone decided, by zone and action.",
                &["zone", "action"],
            ),
            policy_rules,
            queries,
            duration_hit: duration.with_label_values(&["hit"]),
            duration_miss: duration.with_label_values(&["miss"]),
            cache_hits: counter_vec(
                &registry,
                names::CACHE_HITS,
                "Cache lookups that found data, by store.",
                &["kind"],
            ),
            cache_misses: counter_vec(
                &registry,
                names::CACHE_MISSES,
                "Cache lookups that found nothing, by store.",
                &["kind"],
            ),
            cache_entries,
            cache_bytes,
            cache_evictions: counter(
                &registry,
                names::CACHE_EVICTIONS,
                "Entries evicted to keep the cache within its size.",
            ),
            cache_prefetches: counter(
                &registry,
                names::CACHE_PREFETCHES,
                "Background refreshes of answers near expiry.",
            ),
            cache_stale: counter(
                &registry,
                names::CACHE_STALE,
                "Answers served from expired data (RFC 8767).",
            ),
            upstream_queries: counter_vec(
                &registry,
                names::UPSTREAM_QUERIES,
                "Queries sent to authoritative servers, by transport and result.",
                &["transport", "result"],
            ),
            forward_queries: counter_vec(
                &registry,
                names::FORWARD_QUERIES,
                "Queries sent to [[forward]] servers, by server and result (as in taproot_upstream_queries_total).",
                &["server", "result"],
            ),
            forward_tls_handshakes: counter(
                &registry,
                names::FORWARD_TLS_HANDSHAKES,
                "TLS handshakes completed with [[forward]] servers (one per connection, not per query).",
            ),
            forward_tls_connections,
            upstream_rtt,
            upstream_rejected: counter(
                &registry,
                names::UPSTREAM_REJECTED,
                "Upstream datagrams rejected for a wrong ID, question or format (spoofing attempts).",
            ),
            upstream_server_events: counter_vec(
                &registry,
                names::UPSTREAM_SERVER_EVENTS,
                "What lost answers did to upstream servers' records: backoff (a loss doubled the RTO), down (the RTO reached infra_max_rtt_ms), probe (a question asked a down server), skipped_down (a question found only down servers another question was probing).",
                &["event"],
            ),
            inflight,
            referrals: counter(
                &registry,
                names::REFERRALS,
                "Referral answers given in iterative mode.",
            ),
            servfail: counter_vec(
                &registry,
                names::SERVFAIL,
                "SERVFAIL answers, by reason.",
                &["reason"],
            ),
            failures_cached: counter(
                &registry,
                names::FAILURES_CACHED,
                "Client questions answered SERVFAIL from the failure cache, without a walk (RFC 9520).",
            ),
            validations: counter_vec(
                &registry,
                names::DNSSEC_VALIDATIONS,
                "Answers validated from upstream, by outcome (secure, insecure, bogus, indeterminate).",
                &["result"],
            ),
            aggressive_nsec: counter(
                &registry,
                names::DNSSEC_AGGRESSIVE,
                "NXDOMAIN answers synthesised from validated NSEC ranges, without an upstream query (RFC 8198).",
            ),
            dropped: counter_vec(
                &registry,
                names::DROPPED,
                "Client packets dropped without an answer, by reason.",
                &["reason"],
            ),
            refused: counter(
                &registry,
                names::REFUSED,
                "Client queries answered REFUSED.",
            ),
            connections_open: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        names::CONNECTIONS_OPEN,
                        "Client connections open, by transport (tcp, tls, https).",
                    ),
                    &["transport"],
                )
                .expect("static metric definition");
                registry
                    .register(Box::new(g.clone()))
                    .expect("unique metric name");
                g
            },
            tls_handshakes: counter_vec(
                &registry,
                names::TLS_HANDSHAKES,
                "TLS handshakes completed on the DNS over TLS and DNS over HTTPS listeners.",
                &["transport"],
            ),
            tls_handshake_failures: counter_vec(
                &registry,
                names::TLS_HANDSHAKE_FAILURES,
                "TLS handshakes that failed, by transport and reason (timeout, not_tls, no_alpn, incompatible, alert, closed, other).",
                &["transport", "reason"],
            ),
            tls_certificate_reloads: counter_vec(
                &registry,
                names::TLS_CERTIFICATE_RELOADS,
                "Certificate reloads on SIGHUP, by result (ok; failed keeps the old certificate).",
                &["result"],
            ),
            https_responses: counter_vec(
                &registry,
                names::HTTPS_RESPONSES,
                "DNS over HTTPS responses, by HTTP status.",
                &["status"],
            ),
            snapshot_entries: gauge_vec(
                &registry,
                names::SNAPSHOT_ENTRIES,
                "Cache entries in the last warm-restart snapshot: written, loaded, and at load the expired and unreadable ones dropped.",
                &["event"],
            ),
            snapshot_age: gauge(
                &registry,
                names::SNAPSHOT_AGE,
                "Age of the cache snapshot loaded at start, when it was loaded (the downtime it bridged).",
            ),
            snapshot_written_at: gauge(
                &registry,
                names::SNAPSHOT_WRITTEN_AT,
                "Unix time the last cache snapshot was written.",
            ),
            snapshot_failures: counter_vec(
                &registry,
                names::SNAPSHOT_FAILURES,
                "Cache snapshots not written (write) or refused at start (refused).",
                &["reason"],
            ),
            scrape_lock: Mutex::new(()),
            registry,
        };
        for t in [Transport::Tcp, Transport::Tls, Transport::Https] {
            m.connections_open.with_label_values(&[t.as_str()]);
        }
        for t in [Transport::Tls, Transport::Https] {
            m.tls_handshakes.with_label_values(&[t.as_str()]);
            for reason in crate::server::tls::FAILURE_REASONS {
                m.tls_handshake_failures
                    .with_label_values(&[t.as_str(), reason]);
            }
        }
        for result in ["ok", "failed"] {
            m.tls_certificate_reloads.with_label_values(&[result]);
        }
        for code in HTTPS_STATUSES {
            m.https_responses
                .with_label_values(&[code.to_string().as_str()]);
        }
        for kind in CacheKind::ALL {
            m.cache_hits.with_label_values(&[kind.as_str()]);
            m.cache_misses.with_label_values(&[kind.as_str()]);
        }
        for event in SERVER_EVENTS {
            m.upstream_server_events.with_label_values(&[event]);
        }
        for result in ["secure", "insecure", "bogus", "indeterminate"] {
            m.validations.with_label_values(&[result]);
        }
        m
    }

    /// One answered client query.
    #[inline]
    pub fn query(
        &self,
        transport: Transport,
        qtype: u16,
        rcode: u16,
        hit: bool,
        elapsed: Duration,
    ) {
        let i = (transport as usize * (QTYPES.len() + 1) + qtype_index(qtype)) * RCODES.len()
            + rcode_index(rcode);
        if let Some(c) = self.queries.get(i) {
            c.inc();
        }
        let secs = elapsed.as_secs_f64();
        if hit {
            self.duration_hit.observe(secs);
        } else {
            self.duration_miss.observe(secs);
        }
    }

    pub fn upstream_query(&self, transport: &str, result: &str) {
        self.upstream_queries
            .with_label_values(&[transport, result])
            .inc();
    }
    /// One query to a `[[forward]]` server (also counted as an upstream query).
    pub fn forward_query(&self, server: std::net::SocketAddr, result: &str) {
        self.forward_queries
            .with_label_values(&[server.to_string().as_str(), result])
            .inc();
    }
    /// The DNS-over-TLS pool's counts, read at scrape time.
    pub fn observe_forward_tls(&self, handshakes: u64, connections: usize) {
        catch_up(&self.forward_tls_handshakes, handshakes);
        self.forward_tls_connections.set(connections as i64);
    }
    /// What happened to an upstream server's record (see
    /// [`SERVER_EVENTS`]).
    pub fn upstream_server_event(&self, event: &str) {
        self.upstream_server_events
            .with_label_values(&[event])
            .inc();
    }
    pub fn upstream_rtt(&self, rtt: Duration) {
        self.upstream_rtt.observe(rtt.as_secs_f64());
    }
    pub fn spoof_rejected(&self, n: u32) {
        self.upstream_rejected.inc_by(u64::from(n));
    }
    pub fn referral(&self) {
        self.referrals.inc();
    }
    /// A client question answered SERVFAIL from the failure cache (RFC 9520).
    pub fn failure_cached(&self) {
        self.failures_cached.inc();
    }
    pub fn validation(&self, result: &str) {
        self.validations.with_label_values(&[result]).inc();
    }
    pub fn aggressive_nsec(&self) {
        self.aggressive_nsec.inc();
    }
    pub fn servfail(&self, reason: &str) {
        self.servfail.with_label_values(&[reason]).inc();
    }
    pub fn dropped(&self, reason: &str) {
        self.dropped.with_label_values(&[reason]).inc();
    }
    pub fn refused(&self) {
        self.refused.inc();
    }
    /// A query the policy decided (label sets are bounded by the config).
    pub fn policy_hit(&self, zone: &str, action: &str) {
        self.policy_hits.with_label_values(&[zone, action]).inc();
    }
    /// Sets `taproot_policy_rules` to these (zone, rules) pairs; zones
    /// no longer configured disappear.
    pub fn policy_rules<'z>(&self, zones: impl Iterator<Item = (&'z str, usize)>) {
        self.policy_rules.reset();
        for (zone, n) in zones {
            self.policy_rules
                .with_label_values(&[zone])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
    /// A client connection opened on a stream transport; it is counted
    /// open until the returned guard is dropped.
    pub fn connection_opened(&self, transport: Transport) -> OpenConnection {
        let g = self
            .connections_open
            .with_label_values(&[transport.as_str()]);
        g.inc();
        OpenConnection(g)
    }
    /// A TLS handshake done, or failed for `failure`.
    pub fn tls_handshake(&self, transport: Transport, failure: Option<&str>) {
        match failure {
            None => self
                .tls_handshakes
                .with_label_values(&[transport.as_str()])
                .inc(),
            Some(reason) => self
                .tls_handshake_failures
                .with_label_values(&[transport.as_str(), reason])
                .inc(),
        }
    }
    /// A certificate reload on SIGHUP: `ok` or `failed`.
    pub fn certificate_reload(&self, result: &str) {
        self.tls_certificate_reloads
            .with_label_values(&[result])
            .inc();
    }
    /// One DNS over HTTPS response.
    pub fn https_response(&self, status: u16) {
        let label = match status {
            200 => "200",
            400 => "400",
            403 => "403",
            404 => "404",
            405 => "405",
            413 => "413",
            415 => "415",
            500 => "500",
            _ => "other",
        };
        self.https_responses.with_label_values(&[label]).inc();
    }

    /// A warm-restart snapshot was written with `entries` entries.
    pub fn snapshot_written(&self, entries: usize, unix_s: u64) {
        self.snapshot_entries
            .with_label_values(&["written"])
            .set(entries as i64);
        self.snapshot_written_at.set(unix_s as i64);
    }

    /// A snapshot was loaded at start, `age_s` old.
    pub fn snapshot_loaded(&self, restored: &crate::cache::snapshot::Restored, age_s: u64) {
        for (event, n) in [
            ("loaded", restored.loaded),
            ("expired", restored.expired),
            ("unreadable", restored.unreadable),
        ] {
            self.snapshot_entries
                .with_label_values(&[event])
                .set(n as i64);
        }
        self.snapshot_age.set(age_s as i64);
    }

    /// A snapshot could not be written (`write`) or was refused (`refused`).
    pub fn snapshot_failed(&self, reason: &str) {
        self.snapshot_failures.with_label_values(&[reason]).inc();
    }

    /// Copies the cache's own counters into their families, then encodes all.
    ///
    /// Runs the caches' pending maintenance first, so entry counts, bytes and
    /// evictions are current rather than as of the last write.
    /// The text exposition; `key_entries` is the DNSSEC key cache's size
    /// (the resolver's, not the cache's).
    pub fn render(&self, cache: &Cache, inflight: usize, key_entries: u64) -> String {
        let _guard = self.scrape_lock.lock();
        cache.sync();
        let stats = cache.stats();
        for kind in CacheKind::ALL {
            let l = [kind.as_str()];
            catch_up(&self.cache_hits.with_label_values(&l), stats.hits(kind));
            catch_up(&self.cache_misses.with_label_values(&l), stats.misses(kind));
        }
        catch_up(&self.cache_evictions, stats.total_evictions());
        catch_up(
            &self.cache_prefetches,
            stats.prefetches.load(std::sync::atomic::Ordering::Relaxed),
        );
        catch_up(
            &self.cache_stale,
            stats
                .stale_answers
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        let usage = cache.usage();
        self.cache_entries
            .with_label_values(&["answer"])
            .set(usage.answer_entries as i64);
        self.cache_entries
            .with_label_values(&["record"])
            .set(usage.record_entries as i64);
        self.cache_entries
            .with_label_values(&["negative"])
            .set(usage.negative_entries as i64);
        self.cache_entries
            .with_label_values(&["parent_side"])
            .set(usage.parent_side_entries as i64);
        self.cache_entries
            .with_label_values(&["shared_tail"])
            .set(usage.shared_tails as i64);
        self.cache_entries
            .with_label_values(&["dnssec_key"])
            .set(key_entries as i64);
        self.cache_bytes.set(usage.bytes as i64);
        self.inflight.set(inflight as i64);
        let mut out = String::new();
        let encoder = prometheus::TextEncoder::new();
        if let Err(e) = encoder.encode_utf8(&self.registry.gather(), &mut out) {
            out = format!("# encoding failed: {e}\n");
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Raises a mirror counter to the source value (counters only go up).
fn catch_up(counter: &IntCounter, value: u64) {
    let have = counter.get();
    if value > have {
        counter.inc_by(value - have);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::config::CacheConfig;
    use std::sync::atomic::Ordering;

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn unknown_qtypes_and_rcodes_fall_into_other() {
        let m = Metrics::new();
        let cache = Cache::new(&CacheConfig::default(), Clock::manual());
        m.query(Transport::Udp, 1, 0, true, Duration::ZERO);
        m.query(Transport::Tcp, 99, 0, false, Duration::ZERO);
        m.query(Transport::Udp, 1, 9, true, Duration::ZERO);
        let text = m.render(&cache, 0, 0);
        let q = |labels: &str| value(&text, &format!("{}{{{labels}}}", names::QUERIES));
        assert_eq!(q(r#"protocol="udp",qtype="A",rcode="NOERROR""#), Some(1.0));
        assert_eq!(
            q(r#"protocol="tcp",qtype="other",rcode="NOERROR""#),
            Some(1.0)
        );
        assert_eq!(q(r#"protocol="udp",qtype="A",rcode="other""#), Some(1.0));
    }

    #[test]
    fn cache_counters_are_mirrored_once_per_increase() {
        let m = Metrics::new();
        let cache = Cache::new(&CacheConfig::default(), Clock::manual());
        cache.stats().hit(CacheKind::Answer);
        cache.stats().miss(CacheKind::Record);
        cache.stats().eviction(CacheKind::Negative);
        cache.stats().prefetches.fetch_add(2, Ordering::Relaxed);
        cache.stats().stale_answers.fetch_add(3, Ordering::Relaxed);
        // Two scrapes in a row must not count anything twice.
        let _ = m.render(&cache, 7, 0);
        let text = m.render(&cache, 7, 0);
        let hits = format!("{}{{kind=\"answer\"}}", names::CACHE_HITS);
        let misses = format!("{}{{kind=\"record\"}}", names::CACHE_MISSES);
        assert_eq!(value(&text, &hits), Some(1.0));
        assert_eq!(value(&text, &misses), Some(1.0));
        assert_eq!(value(&text, names::CACHE_EVICTIONS), Some(1.0));
        assert_eq!(value(&text, names::CACHE_PREFETCHES), Some(2.0));
        assert_eq!(value(&text, names::CACHE_STALE), Some(3.0));
        assert_eq!(value(&text, names::INFLIGHT), Some(7.0));
        cache.stats().hit(CacheKind::Answer);
        let text = m.render(&cache, 0, 0);
        assert_eq!(value(&text, &hits), Some(2.0));
        assert_eq!(value(&text, names::INFLIGHT), Some(0.0));
    }
}
