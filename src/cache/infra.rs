//! The infrastructure cache: what taproot knows about each upstream server,
//! after Unbound's infra cache (`services/cache/infra.c`, `util/rtt.c`).
//!
//! Each server has a smoothed RTT and a retransmission timeout (RTO,
//! RFC 6298): after an answer the RTO is SRTT + 4·RTTVAR, at least
//! [`MIN_TIMEOUT_MS`]; an unanswered query doubles it, up to
//! `resolver.infra_max_rtt_ms` (Unbound's `infra-cache-max-rtt`, 120 s).
//! A timeout backs a server off; it does not condemn it. The server stays
//! usable and is ordered by its RTO, so a lost packet (a rate limiter's
//! drop, a lossy path) costs one RTO and the next query goes through. Only
//! a server whose RTO sits at the cap is *down*: then one question at a
//! time probes it (Unbound's `infra-keep-probing`) and every other
//! question skips it, so a dead server costs one timeout per probe, not
//! one per question.
//!
//! One lost burst is one event: queries sent with the same RTO that time
//! out together double it once, not once each (Unbound's `rtt_lost`
//! doubles the RTO the query was sent with, not the current one), and a
//! timeout that arrives after an answer has lowered the RTO is ignored.
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

/// RTO of a server never measured (Unbound's UNKNOWN_SERVER_NICENESS).
pub const UNKNOWN_RTT_MS: u32 = 376;
/// The shortest RTO (Unbound's RTT_MIN_TIMEOUT): below it a loaded
/// authoritative's ordinary jitter would count as loss.
pub const MIN_TIMEOUT_MS: u32 = 50;
/// The default RTO cap, where a server is down (Unbound's RTT_MAX_TIMEOUT
/// and `infra-cache-max-rtt`).
pub const DEFAULT_MAX_RTT_MS: u32 = 120_000;
/// How often a query explores a server other than the fastest.
pub const EXPLORE_PERCENT: u32 = 5;
/// Only servers whose RTO is within this of the best one's are explored
/// (Unbound's RTT_BAND): one that just lost packets is not.
pub const RTT_BAND_MS: u32 = 400;
/// How long a server stays lame for a zone (Unbound's infra-lame-ttl).
pub const LAME_TTL_MS: u64 = 900_000;
/// How long a truncated answer marks a server as rate-limiting us: its
/// lost UDP answers are then asked again over TCP.
pub const TRUNCATED_MEMORY_MS: u64 = 10_000;
/// How long what is known of a server is kept unused (Unbound's infra-host-ttl).
const HOST_TTL: Duration = Duration::from_secs(900);

/// What is known about one server address.
#[derive(Debug, Clone)]
pub struct ServerStats {
    pub srtt_ms: Option<f64>,
    pub rttvar_ms: f64,
    /// The retransmission timeout, in ms (see the module doc).
    pub rto_ms: u32,
    /// Loss events since the last answer (each doubled the RTO).
    pub timeouts: u32,
    /// A probe of this (down) server is in flight until then, clock ms.
    pub probe_until_ms: u64,
    /// When the server last answered TC=1 over UDP, clock ms.
    pub truncated_at_ms: Option<u64>,
    /// The server answered FORMERR to EDNS: query it without (RFC 6891 §7).
    pub no_edns: bool,
    /// The server does not echo the question's case: no 0x20 for it.
    pub no_0x20: bool,
}

impl Default for ServerStats {
    fn default() -> ServerStats {
        ServerStats {
            srtt_ms: None,
            rttvar_ms: 0.0,
            rto_ms: UNKNOWN_RTT_MS,
            timeouts: 0,
            probe_until_ms: 0,
            truncated_at_ms: None,
            no_edns: false,
            no_0x20: false,
        }
    }
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

/// The server a question asks next, and how long it waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    pub addr: IpAddr,
    /// The server's RTO when it was picked: what a timeout doubles.
    pub rto_ms: u32,
    /// How long this attempt waits: the RTO, at most `upstream_timeout_ms`.
    pub wait: Duration,
    /// The server is down and this attempt is its one probe.
    pub probe: bool,
    /// Send over TCP: the question sets it for a retry to a server that
    /// truncates lately ([`Infra::truncates_lately`]).
    pub tcp: bool,
}

/// What a timeout did to the server's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// The RTO doubled.
    BackedOff,
    /// The RTO doubled to the cap: the server is down now.
    Down,
    /// Already counted: another query sent with the same RTO timed out
    /// first, or an answer lowered the RTO meanwhile.
    AlreadyCounted,
}

pub struct Infra {
    servers: moka::sync::Cache<IpAddr, Arc<Mutex<ServerStats>>>,
    /// (server, zone) → when the mark expires, in clock milliseconds.
    lame: moka::sync::Cache<(IpAddr, Name), (ZoneFailure, u64)>,
    /// Set by the first mark: until then no lookup in `lame` is needed.
    any_lame: std::sync::atomic::AtomicBool,
    clock: Clock,
    /// The longest one attempt waits (`resolver.upstream_timeout_ms`).
    max_wait: Duration,
    /// The RTO cap: a server there is down (`resolver.infra_max_rtt_ms`).
    max_rtt_ms: u32,
}

impl Infra {
    pub fn new(clock: Clock, max_wait: Duration, max_rtt_ms: u32) -> Infra {
        Infra {
            servers: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(HOST_TTL)
                .build(),
            lame: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_millis(LAME_TTL_MS))
                .build(),
            any_lame: std::sync::atomic::AtomicBool::new(false),
            clock,
            max_wait,
            max_rtt_ms: max_rtt_ms.max(MIN_TIMEOUT_MS),
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

    /// Whether `addr`'s RTO sits at the cap: only probes reach it.
    pub fn is_down(&self, addr: IpAddr) -> bool {
        self.stats(addr).rto_ms >= self.max_rtt_ms
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

    /// Picks the server of `zone` a question asks next among `candidates`
    /// (those it has not given up on): live servers by RTO, now and then
    /// one picked at random among those within [`RTT_BAND_MS`] of the best
    /// and not losing packets now, to keep measuring them; then servers
    /// that failed this zone (recursive-lame last among them, as Unbound
    /// does); a down server last of all, and only when no other question
    /// is probing it. `None` when only down servers being probed are left.
    pub fn pick(&self, candidates: &[IpAddr], zone: &Name) -> Option<Pick> {
        let now = self.clock.now_ms();
        // (class, RTO, backing off, address)
        let mut scored: Vec<(u8, u32, bool, IpAddr)> = candidates
            .iter()
            .filter_map(|a| {
                let s = self.stats(*a);
                let class = if s.rto_ms >= self.max_rtt_ms {
                    if s.probe_until_ms > now {
                        return None;
                    }
                    4
                } else {
                    match self.zone_failure(*a, zone) {
                        None => 0,
                        Some(ZoneFailure::ErrorRcode) => 1,
                        Some(ZoneFailure::Lame) => 2,
                        Some(ZoneFailure::RecursiveLame) => 3,
                    }
                };
                Some((class, s.rto_ms, s.timeouts > 0, *a))
            })
            .collect();
        scored.sort_unstable_by_key(|s| (s.0, s.1));
        let best = *scored.first()?;
        // Explored: live servers within the band of the best, not the best
        // itself, and not one that is losing packets now.
        let explorable: Vec<usize> = (1..scored.len())
            .filter(|&i| {
                let (class, rto, backing_off, _) = scored[i];
                class == 0 && !backing_off && rto <= best.1.saturating_add(RTT_BAND_MS)
            })
            .collect();
        let mut rng = rand::rng();
        let chosen = if best.0 == 0
            && !explorable.is_empty()
            && rng.random_range(0..100) < EXPLORE_PERCENT
        {
            scored[explorable[rng.random_range(0..explorable.len())]]
        } else {
            best
        };
        let (class, rto_ms, _, addr) = chosen;
        let probe = class == 4;
        if probe && !self.claim_probe(addr, now) {
            // Another question took the probe between the look and now.
            return None;
        }
        let wait = if probe {
            self.max_wait
        } else {
            Duration::from_millis(u64::from(rto_ms)).min(self.max_wait)
        };
        Some(Pick {
            addr,
            rto_ms,
            wait,
            probe,
            tcp: false,
        })
    }

    /// Takes the one probe slot of a down server, for as long as a probe
    /// may wait; false when another question holds it.
    fn claim_probe(&self, addr: IpAddr, now: u64) -> bool {
        let e = self.entry(addr);
        let Ok(mut s) = e.lock() else {
            return false;
        };
        if s.probe_until_ms > now {
            return false;
        }
        s.probe_until_ms = now + self.max_wait.as_millis() as u64;
        true
    }

    /// Folds in a measured RTT (RFC 6298 §2): the RTO comes down to
    /// SRTT + 4·RTTVAR and the server is live again, whatever was lost
    /// before. Answers over TCP count as well: a rate limiter that drops
    /// some UDP answers and truncates others still leaves the server
    /// answering.
    pub fn record_rtt(&self, addr: IpAddr, rtt: Duration) {
        let e = self.entry(addr);
        if let Ok(mut s) = e.lock() {
            let r = rtt.as_secs_f64() * 1000.0;
            let (srtt, rttvar) = match s.srtt_ms {
                None => (r, r / 2.0),
                Some(srtt) => (
                    0.875 * srtt + 0.125 * r,
                    0.75 * s.rttvar_ms + 0.25 * (srtt - r).abs(),
                ),
            };
            s.srtt_ms = Some(srtt);
            s.rttvar_ms = rttvar;
            s.rto_ms = self.rto_of(srtt, rttvar);
            s.timeouts = 0;
            s.probe_until_ms = 0;
        }
    }

    /// RFC 6298's RTO from a smoothed RTT and its variance, below the cap,
    /// so an answering server is never down (and no clamp that a tiny
    /// configured cap could turn around).
    fn rto_of(&self, srtt_ms: f64, rttvar_ms: f64) -> u32 {
        ((srtt_ms + 4.0 * rttvar_ms) as u32)
            .max(MIN_TIMEOUT_MS)
            .min(self.max_rtt_ms.saturating_sub(1))
    }

    /// Every server with a measured RTT: (address, smoothed RTT, its
    /// variance), for a warm-restart snapshot.
    pub fn measured_rtts(&self) -> Vec<(IpAddr, f64, f64)> {
        self.servers
            .iter()
            .filter_map(|(addr, e)| {
                let s = e.lock().ok()?;
                Some((*addr, s.srtt_ms?, s.rttvar_ms))
            })
            .collect()
    }

    /// Takes a server's RTT from a snapshot, unless it was measured since
    /// the start (a live measurement is newer than any file).
    pub fn restore_rtt(&self, addr: IpAddr, srtt_ms: f64, rttvar_ms: f64) {
        if !(srtt_ms.is_finite() && rttvar_ms.is_finite()) || srtt_ms < 0.0 || rttvar_ms < 0.0 {
            return;
        }
        let e = self.entry(addr);
        if let Ok(mut s) = e.lock()
            && s.srtt_ms.is_none()
        {
            s.srtt_ms = Some(srtt_ms);
            s.rttvar_ms = rttvar_ms;
            s.rto_ms = self.rto_of(srtt_ms, rttvar_ms);
        }
    }

    /// A query sent with RTO `sent_rto_ms` got no answer: the RTO doubles
    /// from that value (Unbound's `rtt_lost`), so queries lost together
    /// count once, and a loss an answer has already overtaken not at all.
    pub fn record_timeout(&self, addr: IpAddr, sent_rto_ms: u32) -> Loss {
        let e = self.entry(addr);
        let Ok(mut s) = e.lock() else {
            return Loss::AlreadyCounted;
        };
        s.probe_until_ms = 0;
        if s.rto_ms < sent_rto_ms {
            return Loss::AlreadyCounted;
        }
        let doubled = sent_rto_ms.saturating_mul(2).min(self.max_rtt_ms);
        if s.rto_ms >= doubled {
            return Loss::AlreadyCounted;
        }
        s.rto_ms = doubled;
        s.timeouts = s.timeouts.saturating_add(1);
        if doubled >= self.max_rtt_ms {
            Loss::Down
        } else {
            Loss::BackedOff
        }
    }

    /// The longest one attempt waits (`resolver.upstream_timeout_ms`).
    pub fn max_wait(&self) -> Duration {
        self.max_wait
    }

    /// `addr` answered TC=1 over UDP: a response rate limiter's slip (or
    /// a big answer). For [`TRUNCATED_MEMORY_MS`] its lost UDP answers
    /// are most likely the same limiter's drops.
    pub fn record_truncated(&self, addr: IpAddr) {
        if let Ok(mut s) = self.entry(addr).lock() {
            s.truncated_at_ms = Some(self.clock.now_ms());
        }
    }

    /// Whether `addr` answered TC=1 in the last [`TRUNCATED_MEMORY_MS`].
    pub fn truncates_lately(&self, addr: IpAddr) -> bool {
        self.stats(addr)
            .truncated_at_ms
            .is_some_and(|at| self.clock.now_ms().saturating_sub(at) < TRUNCATED_MEMORY_MS)
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

    fn addr(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn infra(clock: &Clock) -> Infra {
        Infra::new(clock.clone(), Duration::from_millis(1500), 12_000)
    }

    /// Picks of the best server, without the random exploration.
    fn best(infra: &Infra, candidates: &[IpAddr], zone: &Name) -> Option<Pick> {
        (0..200)
            .filter_map(|_| infra.pick(candidates, zone))
            .min_by_key(|p| p.rto_ms)
    }

    #[test]
    fn a_timeout_backs_off_and_the_server_stays_usable() {
        let clock = Clock::manual();
        let infra = infra(&clock);
        let (a, b) = (addr(1), addr(2));
        infra.record_rtt(a, Duration::from_millis(5));
        infra.record_rtt(b, Duration::from_millis(9));
        let sent = infra.stats(a).rto_ms;
        assert_eq!(sent, MIN_TIMEOUT_MS, "5 ms + 4 x 2.5 ms is under the floor");
        assert_eq!(infra.record_timeout(a, sent), Loss::BackedOff);
        assert_eq!(infra.stats(a).rto_ms, 2 * sent);
        assert!(!infra.is_down(a));
        // Ordered by RTO: the one that lost a packet comes second, but comes.
        assert_eq!(
            best(&infra, &[a, b], &Name::root()).map(|p| p.addr),
            Some(b)
        );
        assert_eq!(best(&infra, &[a], &Name::root()).map(|p| p.addr), Some(a));
    }

    #[test]
    fn queries_lost_together_count_once() {
        let infra = infra(&Clock::manual());
        let a = addr(1);
        infra.record_rtt(a, Duration::from_millis(20));
        let sent = infra.stats(a).rto_ms;
        assert_eq!(infra.record_timeout(a, sent), Loss::BackedOff);
        for _ in 0..50 {
            assert_eq!(infra.record_timeout(a, sent), Loss::AlreadyCounted);
        }
        assert_eq!(infra.stats(a).rto_ms, 2 * sent);
        assert_eq!(infra.stats(a).timeouts, 1);
    }

    #[test]
    fn an_answer_brings_the_rto_back_and_a_late_timeout_is_ignored() {
        let infra = infra(&Clock::manual());
        let a = addr(1);
        infra.record_rtt(a, Duration::from_millis(10));
        let sent = infra.stats(a).rto_ms;
        infra.record_timeout(a, sent);
        infra.record_timeout(a, 2 * sent);
        infra.record_rtt(a, Duration::from_millis(10));
        let after = infra.stats(a);
        assert!(after.rto_ms < sent * 2, "{after:?}");
        assert_eq!(after.timeouts, 0);
        assert_eq!(infra.record_timeout(a, 4 * sent), Loss::AlreadyCounted);
    }

    #[test]
    fn a_server_at_the_cap_is_down_and_probed_by_one_question_at_a_time() {
        let clock = Clock::manual();
        let infra = infra(&clock);
        let a = addr(1);
        let mut losses = Vec::new();
        while !infra.is_down(a) {
            let p = infra.pick(&[a], &Name::root()).expect("live: picked");
            assert!(!p.probe);
            assert!(p.wait <= Duration::from_millis(1500));
            losses.push(infra.record_timeout(a, p.rto_ms));
            assert!(losses.len() < 20);
        }
        // 376 → 752 → … → 12032 is capped at 12000.
        assert_eq!(losses.len(), 5);
        assert_eq!(losses.last(), Some(&Loss::Down));
        let probe = infra.pick(&[a], &Name::root()).expect("one probe");
        assert!(probe.probe);
        assert_eq!(probe.wait, Duration::from_millis(1500));
        assert_eq!(infra.pick(&[a], &Name::root()), None, "the probe is taken");
        clock.advance(1_501);
        assert!(
            infra.pick(&[a], &Name::root()).is_some_and(|p| p.probe),
            "a lost probe frees its slot"
        );
        infra.record_rtt(a, Duration::from_millis(3));
        assert!(!infra.is_down(a), "an answer to a probe brings it back");
        assert!(infra.pick(&[a], &Name::root()).is_some_and(|p| !p.probe));
    }

    #[test]
    fn a_cap_as_small_as_the_floor_keeps_an_answering_server_up() {
        let infra = Infra::new(Clock::manual(), Duration::from_millis(10), 10);
        let a = addr(1);
        infra.record_rtt(a, Duration::from_millis(200));
        assert!(!infra.is_down(a), "{:?}", infra.stats(a));
        assert_eq!(infra.record_timeout(a, infra.stats(a).rto_ms), Loss::Down);
        infra.record_rtt(a, Duration::from_millis(1));
        assert!(!infra.is_down(a));
    }

    #[test]
    fn a_truncated_answer_marks_a_server_as_rate_limiting_for_a_while() {
        let clock = Clock::manual();
        let infra = infra(&clock);
        let a = addr(1);
        assert!(!infra.truncates_lately(a));
        infra.record_truncated(a);
        assert!(infra.truncates_lately(a));
        clock.advance(TRUNCATED_MEMORY_MS);
        assert!(
            !infra.truncates_lately(a),
            "forgotten after {TRUNCATED_MEMORY_MS} ms"
        );
    }

    #[test]
    fn a_down_server_comes_after_a_lame_one() {
        let infra = infra(&Clock::manual());
        let (a, b) = (addr(1), addr(2));
        let kr = Name::from_ascii("kr.").expect("name");
        infra.mark_zone_failure(b, &kr, ZoneFailure::Lame);
        let mut rto = infra.stats(a).rto_ms;
        while infra.record_timeout(a, rto) != Loss::Down {
            rto = infra.stats(a).rto_ms;
        }
        assert_eq!(best(&infra, &[a, b], &kr).map(|p| p.addr), Some(b));
    }

    #[test]
    fn lameness_orders_a_server_last_for_that_zone_only() {
        let infra = infra(&Clock::manual());
        let (a, b) = (addr(1), addr(2));
        let kr = Name::from_ascii("kr.").expect("name");
        infra.record_rtt(a, Duration::from_millis(1));
        infra.record_rtt(b, Duration::from_millis(90));
        infra.mark_zone_failure(a, &kr, ZoneFailure::Lame);
        assert!(!infra.is_down(a));
        assert_eq!(best(&infra, &[a, b], &kr).map(|p| p.addr), Some(b));
        let lab = Name::from_ascii("lab.").expect("name");
        assert_eq!(infra.zone_failure(a, &lab), None, "lame for kr. only");
    }
}
