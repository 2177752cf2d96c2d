//! The infrastructure cache: what taproot knows about each upstream server,
//! like Unbound's infra cache. A smoothed RTT (RFC 6298 style) orders the
//! servers of a zone; timeouts hold a server down for a while, so a dead
//! server costs one timeout, not one per query.
//!
//! Lameness is about a server *and a zone* (Unbound keeps it per zone in the
//! same cache): one address often serves many zones, and being lame or
//! failing for one says nothing of the others. A server lame for a zone, or
//! answering SERVFAIL/REFUSED for it, is tried last for that zone only.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use hickory_proto::rr::Name;
use rand::Rng;

use crate::clock::Clock;

/// RTT assumed for a server never measured (Unbound's UNKNOWN_SERVER_NICENESS).
pub const UNKNOWN_RTT_MS: u32 = 376;
/// First hold-down after a failure; doubles per consecutive failure.
pub const HOLD_DOWN_BASE_MS: u64 = 30_000;
/// Longest hold-down (Unbound's infra-host-ttl).
pub const HOLD_DOWN_MAX_MS: u64 = 900_000;
/// How often a query explores a server other than the fastest.
pub const EXPLORE_PERCENT: u32 = 5;
/// How long a server stays lame for a zone (Unbound's infra-lame-ttl).
pub const LAME_TTL_MS: u64 = 900_000;
/// The shortest timeout given to a server that has answered before
/// (Unbound's RTT_MIN_TIMEOUT is 50 ms; the RTO is doubled from there).
pub const MIN_TIMEOUT_MS: f64 = 50.0;

/// What is known about one server address.
#[derive(Debug, Clone, Default)]
pub struct ServerStats {
    pub srtt_ms: Option<f64>,
    pub rttvar_ms: f64,
    pub failures: u32,
    pub held_until_ms: u64,
    /// The server answered FORMERR to EDNS: query it without (RFC 6891 §7).
    pub no_edns: bool,
    /// The server does not echo the question's case: no 0x20 for it.
    pub no_0x20: bool,
}

/// How a server failed a zone, for ordering it last there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneFailure {
    /// Not authoritative: an upward referral, an empty answer.
    Lame,
    /// RA=1, AA=0: a recursive resolver answering from its cache.
    RecursiveLame,
    /// SERVFAIL, REFUSED and other error RCODEs for this zone.
    ErrorRcode,
}

pub struct Infra {
    servers: moka::sync::Cache<IpAddr, Arc<Mutex<ServerStats>>>,
    /// (server, zone) → when the mark expires, in clock milliseconds.
    lame: moka::sync::Cache<(IpAddr, Name), (ZoneFailure, u64)>,
    /// Set by the first mark: until then no lookup in `lame` is needed.
    any_lame: std::sync::atomic::AtomicBool,
    clock: Clock,
    max_timeout: Duration,
}

impl Infra {
    pub fn new(clock: Clock, max_timeout: Duration) -> Infra {
        Infra {
            servers: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(900))
                .build(),
            lame: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_millis(LAME_TTL_MS))
                .build(),
            any_lame: std::sync::atomic::AtomicBool::new(false),
            clock,
            max_timeout,
        }
    }

    fn entry(&self, addr: IpAddr) -> Arc<Mutex<ServerStats>> {
        self.servers
            .get_with(addr, || Arc::new(Mutex::new(ServerStats::default())))
    }

    pub fn stats(&self, addr: IpAddr) -> ServerStats {
        self.servers
            .get(&addr)
            .and_then(|e| e.lock().ok().map(|s| s.clone()))
            .unwrap_or_default()
    }

    pub fn is_held_down(&self, addr: IpAddr) -> bool {
        self.stats(addr).held_until_ms > self.clock.now_ms()
    }

    /// Marks `addr` as failing `zone` for [`LAME_TTL_MS`]. Zone names
    /// compare without regard to case (hickory's `Name` equality and hash).
    pub fn mark_zone_failure(&self, addr: IpAddr, zone: &Name, how: ZoneFailure) {
        let until = self.clock.now_ms() + LAME_TTL_MS;
        self.lame.insert((addr, zone.clone()), (how, until));
        self.any_lame
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// How `addr` last failed `zone`, while the mark lasts.
    pub fn zone_failure(&self, addr: IpAddr, zone: &Name) -> Option<ZoneFailure> {
        if !self.any_lame.load(std::sync::atomic::Ordering::Relaxed) {
            // The common case: no key to build, no lookup.
            return None;
        }
        let (how, until) = self.lame.get(&(addr, zone.clone()))?;
        (until > self.clock.now_ms()).then_some(how)
    }

    /// Orders candidates for `zone`: live servers by SRTT (unknown ones at
    /// [`UNKNOWN_RTT_MS`]), now and then one picked at random first to keep
    /// measuring the others; then servers that failed this zone
    /// (recursive-lame last among them, as Unbound does); held-down servers
    /// last, as a final resort.
    pub fn order(&self, candidates: &[IpAddr], zone: &Name) -> Vec<IpAddr> {
        let now = self.clock.now_ms();
        let mut scored: Vec<(u8, f64, IpAddr)> = candidates
            .iter()
            .map(|a| {
                let s = self.stats(*a);
                let class = if s.held_until_ms > now {
                    4
                } else {
                    match self.zone_failure(*a, zone) {
                        None => 0,
                        Some(ZoneFailure::ErrorRcode) => 1,
                        Some(ZoneFailure::Lame) => 2,
                        Some(ZoneFailure::RecursiveLame) => 3,
                    }
                };
                (class, s.srtt_ms.unwrap_or(f64::from(UNKNOWN_RTT_MS)), *a)
            })
            .collect();
        scored.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let mut out: Vec<IpAddr> = scored.iter().map(|s| s.2).collect();
        let live = scored.iter().filter(|s| s.0 == 0).count();
        let mut rng = rand::rng();
        if live > 1 && rng.random_range(0..100) < EXPLORE_PERCENT {
            let pick = rng.random_range(1..live);
            out.swap(0, pick);
        }
        out
    }

    /// Per-attempt timeout for a server with stats `s` (the caller has
    /// read them already): twice SRTT + 4·RTTVAR, at least twice
    /// [`MIN_TIMEOUT_MS`], at most the configured maximum; unknown servers
    /// get the maximum. Each timeout doubles the SRTT the next one is
    /// computed from ([`Infra::record_failure`]), and the walk's retry round
    /// waits the maximum, so a server that slowed down is not given up on.
    pub fn timeout_for(&self, s: &ServerStats) -> Duration {
        match s.srtt_ms {
            Some(srtt) => {
                let rto = (srtt + 4.0 * s.rttvar_ms).max(MIN_TIMEOUT_MS) * 2.0;
                Duration::from_millis(rto as u64).min(self.max_timeout)
            }
            None => self.max_timeout,
        }
    }

    /// Folds in a measured RTT and clears failures.
    pub fn record_rtt(&self, addr: IpAddr, rtt: Duration) {
        let e = self.entry(addr);
        if let Ok(mut s) = e.lock() {
            let r = rtt.as_secs_f64() * 1000.0;
            match s.srtt_ms {
                None => {
                    s.srtt_ms = Some(r);
                    s.rttvar_ms = r / 2.0;
                }
                Some(srtt) => {
                    s.rttvar_ms = 0.75 * s.rttvar_ms + 0.25 * (srtt - r).abs();
                    s.srtt_ms = Some(0.875 * srtt + 0.125 * r);
                }
            }
            s.failures = 0;
            s.held_until_ms = 0;
        }
    }

    /// The configured maximum timeout.
    pub fn max_timeout(&self) -> Duration {
        self.max_timeout
    }

    /// A timeout or a network error: hold the server down.
    pub fn record_failure(&self, addr: IpAddr) {
        let e = self.entry(addr);
        let now = self.clock.now_ms();
        if let Ok(mut s) = e.lock() {
            s.failures = s.failures.saturating_add(1);
            let hold = HOLD_DOWN_BASE_MS
                .saturating_mul(1u64 << (s.failures - 1).min(10))
                .min(HOLD_DOWN_MAX_MS);
            s.held_until_ms = now + hold;
            let penalty = s.srtt_ms.unwrap_or(f64::from(UNKNOWN_RTT_MS)) * 2.0;
            s.srtt_ms = Some(penalty.min(self.max_timeout.as_millis() as f64 * 4.0));
        }
    }

    pub fn set_no_0x20(&self, addr: IpAddr) {
        if let Ok(mut s) = self.entry(addr).lock() {
            s.no_0x20 = true;
        }
    }

    pub fn set_no_edns(&self, addr: IpAddr) {
        if let Ok(mut s) = self.entry(addr).lock() {
            s.no_edns = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_hold_down_and_order_last() {
        let infra = Infra::new(Clock::manual(), Duration::from_millis(1500));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        infra.record_rtt(a, Duration::from_millis(5));
        infra.record_failure(a);
        assert!(infra.is_held_down(a));
        assert_eq!(infra.order(&[a, b], &Name::root()).last(), Some(&a));
    }

    #[test]
    fn lameness_orders_a_server_last_for_that_zone_only() {
        let infra = Infra::new(Clock::manual(), Duration::from_millis(1500));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let kr = Name::from_ascii("kr.").unwrap();
        infra.record_rtt(a, Duration::from_millis(1));
        infra.record_rtt(b, Duration::from_millis(9));
        infra.mark_zone_failure(a, &kr, ZoneFailure::Lame);
        assert!(!infra.is_held_down(a));
        assert_eq!(infra.order(&[a, b], &kr), [b, a]);
        let lab = Name::from_ascii("lab.").unwrap();
        assert_eq!(infra.zone_failure(a, &lab), None, "lame for kr. only");
    }
}
