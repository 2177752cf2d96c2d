//! The negative cache (RFC 2308): NXDOMAIN per name, NODATA per (name, type),
//! each kept with the SOA that proves it so the answer can carry it (§5).

use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::{Name, RData, Record, RecordType};
use moka::notification::RemovalCause;

use super::stats::{CacheKind, CacheStats};
use super::ttl::{Lifetime, PerEntryExpiry, TtlPolicy, is_fresh, remaining};
use crate::clock::Clock;
use crate::dnssec::Security;

/// Which negative answer (RFC 2308 §2.1 and §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NegativeKind {
    NxDomain,
    NoData,
}

/// `rtype: None` is an NXDOMAIN entry covering every type at the name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NegativeKey {
    pub name: Name,
    pub rtype: Option<RecordType>,
}

#[derive(Debug)]
pub struct NegativeEntry {
    pub kind: NegativeKind,
    pub soa: Record,
    /// NSEC/NSEC3 records and RRSIGs, for DO clients.
    pub proof: Vec<Record>,
    pub security: Security,
    pub ttl: u32,
    pub stored_ms: u64,
}

impl Lifetime for NegativeEntry {
    fn lifetime(&self) -> Duration {
        Duration::from_secs(u64::from(self.ttl))
    }
}

/// A negative answer read from the cache: the SOA's TTL is the time left.
#[derive(Debug, Clone)]
pub struct NegativeView {
    pub kind: NegativeKind,
    pub soa: Record,
    pub proof: Vec<Record>,
    pub security: Security,
}

pub struct NegativeCache {
    inner: moka::sync::Cache<NegativeKey, Arc<NegativeEntry>>,
    policy: Arc<TtlPolicy>,
    clock: Clock,
    stats: Arc<CacheStats>,
}

impl NegativeCache {
    pub fn new(
        max_bytes: u64,
        policy: Arc<TtlPolicy>,
        clock: Clock,
        stats: Arc<CacheStats>,
    ) -> NegativeCache {
        let evict_stats = stats.clone();
        let inner = moka::sync::Cache::builder()
            .max_capacity(max_bytes.max(1))
            .weigher(|k: &NegativeKey, v: &Arc<NegativeEntry>| {
                let records = 2 + v.proof.len();
                (k.name.len() + v.soa.name.len() + records * std::mem::size_of::<Record>() + 200)
                    as u32
            })
            .expire_after(PerEntryExpiry)
            .eviction_listener(move |_k, _v, cause| {
                if cause == RemovalCause::Size {
                    evict_stats.eviction(CacheKind::Negative);
                }
            })
            .build();
        NegativeCache {
            inner,
            policy,
            clock,
            stats,
        }
    }

    /// NXDOMAIN for the name, else NODATA for (name, type), with decremented SOA TTL.
    pub fn get(&self, name: &Name, rtype: RecordType) -> Option<NegativeView> {
        let name = name.to_lowercase();
        let now = self.clock.now_ms();
        for key in [
            NegativeKey {
                name: name.clone(),
                rtype: None,
            },
            NegativeKey {
                name: name.clone(),
                rtype: Some(rtype),
            },
        ] {
            if let Some(e) = self.inner.get(&key)
                && is_fresh(e.ttl, e.stored_ms, now)
            {
                self.stats.hit(CacheKind::Negative);
                let left = remaining(e.ttl, e.stored_ms, now);
                let mut soa = e.soa.clone();
                soa.ttl = left;
                let mut proof = e.proof.clone();
                for r in &mut proof {
                    r.ttl = left;
                }
                return Some(NegativeView {
                    kind: e.kind,
                    soa,
                    proof,
                    security: e.security,
                });
            }
        }
        self.stats.miss(CacheKind::Negative);
        None
    }

    /// Caches a negative answer proven by `soa` (and, signed, by `proof`);
    /// the TTL follows RFC 2308 §5. Returns the TTL used (0: not cached).
    pub fn insert(
        &self,
        name: &Name,
        rtype: RecordType,
        kind: NegativeKind,
        soa: Record,
        proof: Vec<Record>,
        security: Security,
    ) -> u32 {
        let RData::SOA(s) = &soa.data else {
            return 0;
        };
        let ttl = self.policy.negative(soa.ttl, s.minimum);
        if ttl == 0 {
            return 0;
        }
        let key = NegativeKey {
            name: name.to_lowercase(),
            rtype: match kind {
                NegativeKind::NxDomain => None,
                NegativeKind::NoData => Some(rtype),
            },
        };
        let mut soa = soa;
        soa.ttl = ttl;
        self.inner.insert(
            key,
            Arc::new(NegativeEntry {
                kind,
                soa,
                proof,
                security,
                ttl,
                stored_ms: self.clock.now_ms(),
            }),
        );
        self.stats.insert(CacheKind::Negative);
        ttl
    }

    pub fn flush_all(&self) {
        self.inner.invalidate_all();
    }

    pub fn flush_name(&self, name: &Name, subtree: bool) {
        let name = name.clone();
        super::invalidate_where(&self.inner, |k| {
            if subtree {
                name.zone_of(&k.name)
            } else {
                k.name == name
            }
        });
    }

    pub fn sync(&self) {
        self.inner.run_pending_tasks();
    }
    pub fn entry_count(&self) -> u64 {
        self.inner.entry_count()
    }
    pub fn weighted_size(&self) -> u64 {
        self.inner.weighted_size()
    }
}
