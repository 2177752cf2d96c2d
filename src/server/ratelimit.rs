//! Per-client rate limiting: a token bucket per address (IPv4 /32 and
//! IPv6 /56, since one IPv6 host owns a whole prefix). Excess queries are
//! dropped, or every `slip`-th one answered with TC=1 so a real client
//! retries over TCP (BIND's RRL slip), while spoofed floods get nothing.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use crate::config::RateLimitConfig;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    limited: u32,
}

/// What to do with one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Drop,
    Slip,
}

pub struct RateLimiter {
    exempt: Vec<ipnet::IpNet>,
    qps: f64,
    burst: f64,
    slip: u32,
    buckets: moka::sync::Cache<IpAddr, std::sync::Arc<Mutex<Bucket>>>,
}

impl RateLimiter {
    /// `None` when the config turns rate limiting off (qps = 0).
    pub fn new(c: &RateLimitConfig) -> Option<RateLimiter> {
        if c.qps == 0 {
            return None;
        }
        Some(RateLimiter {
            exempt: c.exempt.clone(),
            qps: f64::from(c.qps),
            burst: f64::from(c.burst.max(c.qps)),
            slip: c.slip,
            buckets: moka::sync::Cache::builder()
                .max_capacity(200_000)
                .time_to_idle(std::time::Duration::from_secs(60))
                .build(),
        })
    }

    fn bucket_key(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(_) => ip,
            IpAddr::V6(v6) => {
                let mut seg = v6.segments();
                seg[3] &= 0xff00;
                for s in seg.iter_mut().skip(4) {
                    *s = 0;
                }
                IpAddr::V6(seg.into())
            }
        }
    }

    pub fn check(&self, ip: IpAddr) -> Verdict {
        if self.exempt.iter().any(|net| net.contains(&ip)) {
            return Verdict::Pass;
        }
        let now = Instant::now();
        let bucket = self.buckets.get_with(Self::bucket_key(ip), || {
            std::sync::Arc::new(Mutex::new(Bucket {
                tokens: self.burst,
                last: now,
                limited: 0,
            }))
        });
        let Ok(mut b) = bucket.lock() else {
            return Verdict::Pass;
        };
        let refill = now.duration_since(b.last).as_secs_f64() * self.qps;
        b.tokens = (b.tokens + refill).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Verdict::Pass;
        }
        b.limited = b.limited.wrapping_add(1);
        if self.slip > 0 && b.limited % self.slip == 0 {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }
}
