//! The fleet's shared cache: a [`SecondTier`] on Redis, standalone or a
//! Redis Cluster (`[cache.shared]`, issue #27).
//!
//! ```text
//!  client ─▶ first tier (in memory) ──hit──▶ answer
//!               │ miss
//!               ▼
//!         resolution leader (one per question in flight)
//!               │ read, deadline cache.shared.timeout_ms, breaker
//!               ▼
//!            Redis ──hit──▶ adopted into the first tier ──▶ answer
//!               │ miss, error, timeout, bad HMAC
//!               ▼
//!            the walk ──▶ first tier ──▶ answer
//!                            └──▶ write queue ──pipeline──▶ Redis
//! ```
//!
//! - [`key`]: Redis keys (an HMAC of the question and the flush
//!   generation) and the HMAC seal on every value.
//! - [`breaker`]: stops reads after repeated failures, then probes.
//! - [`writer`]: the bounded write queue and its pipelining task.
//! - [`connection`]: the standalone or cluster connection.
//! - [`stats`]: the metric families.
//!
//! The value is [`crate::cache::portable`]'s encoding of the first-tier
//! entry (the whole answer as the first tier holds it, absolute expiry,
//! original TTL, rank, DNSSEC status, variant) and a tag; it lives in
//! Redis for its remaining TTL plus the serve-stale window.
//!
//! A flush (`POST /cache/flush`) increments the generation in
//! [`key::GENERATION_KEY`], which every key is derived from, so every entry
//! stored before it becomes unreachable at once (Redis expires them at
//! their TTL), and publishes the flush on [`key::FLUSH_CHANNEL`]; every
//! instance drops the same from its first tier and reads with the new
//! generation. A flush of one name so empties the whole tier: keys are
//! HMACs, so Redis cannot be searched by name. Every instance also reads
//! the generation every second, so one that missed a message (its
//! subscription was reconnecting) stops reading old entries soon after.

pub mod breaker;
pub mod connection;
pub mod key;
pub mod stats;
pub mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hickory_proto::rr::Name;
use tracing::{debug, info, warn};

use super::answer::CachedAnswer;
use super::portable::{self, Now, PortableError};
use super::store::Entry;
use super::tier::{FlushError, FlushScope, SecondTier, TierFuture};
use crate::clock::Clock;
use crate::config::SharedCacheConfig;
use crate::dnssec::Security;
use crate::wire;
use breaker::{Admit, Breaker};
use connection::Redis;
use key::Keys;
use stats::{ReadOutcome, TierStats};
use writer::{Pending, Writer};

/// The generation before it has been read from Redis: reads wait for it
/// (an instance that started after a flush must not read older entries).
const UNKNOWN: u64 = u64::MAX;

/// How often the generation is read again, for a flush message missed.
const GENERATION_POLL: Duration = Duration::from_secs(1);

/// How long a lost subscription waits before it subscribes again.
const RESUBSCRIBE: Duration = Duration::from_secs(1);

/// Why `[cache.shared]` could not be set up (config validation catches
/// these first; this is for a file that changed in between).
#[derive(Debug, thiserror::Error)]
pub enum SharedCacheError {
    #[error("cache.shared.key_secret_file {path}: {source}")]
    Secret {
        path: String,
        source: std::io::Error,
    },
    #[error("cache.shared: {0}")]
    Redis(#[from] redis::RedisError),
}

/// What an instance does with a flush another instance published: drop
/// the same from its first tier (and what resolutions derived besides).
pub type OnFlush = Box<dyn Fn(&FlushScope) + Send + Sync>;

/// The state the tier's tasks share.
pub struct Shared {
    redis: Redis,
    keys: Keys,
    breaker: Breaker,
    generation: AtomicU64,
    timeout: Duration,
    clock: Clock,
    stale_window: u32,
    pub stats: TierStats,
}

/// The Redis tier (see the module doc).
pub struct SharedCache {
    shared: Arc<Shared>,
    writer: Writer,
}

impl SharedCache {
    /// Connects (lazily) to the Redis `config` names and starts the
    /// writer, the generation poll and the flush subscription on the
    /// current runtime. `stale_window` is the first tier's serve-stale
    /// window in seconds; `on_flush` applies another instance's flush.
    pub fn start(
        config: &SharedCacheConfig,
        stale_window: u32,
        clock: Clock,
        registry: &prometheus::Registry,
        on_flush: OnFlush,
    ) -> Result<SharedCache, SharedCacheError> {
        let secret = if config.key_secret_file.is_empty() {
            None
        } else {
            Some(std::fs::read(&config.key_secret_file).map_err(|source| {
                SharedCacheError::Secret {
                    path: config.key_secret_file.clone(),
                    source,
                }
            })?)
        };
        let (redis, subscribe_urls) = if config.cluster.is_empty() {
            (Redis::standalone(&config.url)?, vec![config.url.clone()])
        } else {
            (Redis::cluster(&config.cluster)?, config.cluster.clone())
        };
        let shared = Arc::new(Shared {
            redis,
            keys: Keys::new(secret.as_deref()),
            breaker: Breaker::default(),
            generation: AtomicU64::new(UNKNOWN),
            timeout: Duration::from_millis(config.timeout_ms),
            clock,
            stale_window,
            stats: TierStats::new(registry),
        });
        if !shared.keys.trusted {
            info!(
                "cache.shared.key_secret_file is empty: values are sealed with a built-in key, and Secure answers are neither written nor read"
            );
        }
        tokio::spawn(poll_generation(Arc::downgrade(&shared)));
        tokio::spawn(subscribe(
            Arc::downgrade(&shared),
            subscribe_urls,
            Arc::new(on_flush),
        ));
        let writer = Writer::start(Arc::downgrade(&shared));
        Ok(SharedCache { shared, writer })
    }

    /// The tier's counters (for tests and the bench).
    pub fn stats(&self) -> &TierStats {
        &self.shared.stats
    }
}

impl Shared {
    fn breaker_failure(&self) {
        if self.breaker.failure() {
            warn!(
                cool_down_s = breaker::COOL_DOWN.as_secs(),
                "the shared cache is failing; reads stop until a probe succeeds"
            );
        }
        self.stats.breaker_open.set(1);
    }

    fn breaker_success(&self) {
        if self.breaker.is_open() {
            info!("the shared cache answers again");
        }
        self.breaker.success();
        self.stats.breaker_open.set(0);
    }

    fn generation(&self) -> Option<u64> {
        Some(self.generation.load(Ordering::Acquire)).filter(|&g| g != UNKNOWN)
    }

    /// Learns generation `g` (never goes back: a late poll reply must not
    /// undo a flush just received).
    fn learn_generation(&self, g: u64) {
        let now = self.generation.load(Ordering::Acquire);
        if now == UNKNOWN || g > now {
            self.generation.store(g, Ordering::Release);
        }
    }

    /// The Redis key, sealed value and expiry (ms) of a pending write;
    /// `None` for what is not stored: see [`storable`].
    fn prepare(&self, p: &Pending) -> Option<(String, Vec<u8>, u64)> {
        let variant = *p.key.last()?;
        let generation = self.generation()?;
        let payload = portable::encode(&p.entry, variant, p.now).ok()?;
        let (header, _) = portable::split(&payload).ok()?;
        let left_ms = header.expires_ms.checked_sub(p.now.unix_ms)?;
        if left_ms < 1000 {
            return None;
        }
        let ttl_ms = left_ms + u64::from(self.stale_window) * 1000;
        let redis_key = self.keys.redis_key(generation, &p.key);
        let value = self.keys.seal(&redis_key, payload);
        Some((redis_key, value, ttl_ms))
    }

    /// Turns a value read under `redis_key` for `key` into an entry.
    fn adopt(
        &self,
        redis_key: &str,
        key: &[u8],
        value: &[u8],
    ) -> Result<CachedAnswer, ReadOutcome> {
        let payload = self.keys.open(redis_key, value).map_err(|e| {
            debug!(error = %e, "shared cache value refused");
            ReadOutcome::Rejected
        })?;
        let (header, _) = portable::split(payload).map_err(|e| {
            debug!(error = %e, "shared cache value refused");
            ReadOutcome::Rejected
        })?;
        if header.security == Security::Secure && !self.keys.trusted {
            return Err(ReadOutcome::Untrusted);
        }
        let now = Now::at(self.clock.now_ms());
        let entry = match portable::decode(payload, now) {
            Ok(entry) => entry,
            Err(PortableError::Expired) => return Err(ReadOutcome::Miss),
            Err(e) => {
                debug!(error = %e, "shared cache value refused");
                return Err(ReadOutcome::Rejected);
            }
        };
        if !entry.answers_key(key) || !entry.servable() {
            debug!("shared cache value answers another question");
            return Err(ReadOutcome::Rejected);
        }
        Ok(entry)
    }

    /// The generation, read from Redis when it is not known yet (the first
    /// read or write after start, before the poll's first answer).
    async fn current_generation(&self) -> redis::RedisResult<u64> {
        if let Some(g) = self.generation() {
            return Ok(g);
        }
        let mut get = redis::cmd("GET");
        get.arg(key::GENERATION_KEY);
        let g: Option<u64> = self.redis.query(&get).await?;
        self.learn_generation(g.unwrap_or(0));
        Ok(self.generation().unwrap_or(0))
    }

    async fn read(&self, key: &[u8]) -> Option<CachedAnswer> {
        // Never written (see `storable`): not worth a round trip.
        if key.last().is_none_or(|v| v & wire::VARIANT_CD != 0) {
            return None;
        }
        if self.breaker.admit() == Admit::No {
            self.stats.read(ReadOutcome::Open);
            return None;
        }
        let started = Instant::now();
        let reply = tokio::time::timeout(self.timeout, async {
            let generation = self.current_generation().await?;
            let redis_key = self.keys.redis_key(generation, key);
            let mut get = redis::cmd("GET");
            get.arg(&redis_key);
            let value: Option<Vec<u8>> = self.redis.query(&get).await?;
            Ok::<_, redis::RedisError>(value.map(|v| (redis_key, v)))
        })
        .await;
        self.stats
            .read_seconds
            .observe(started.elapsed().as_secs_f64());
        let outcome = match reply {
            Err(_) => {
                self.breaker_failure();
                Err(ReadOutcome::Timeout)
            }
            Ok(Err(e)) => {
                debug!(error = %e, "shared cache read failed");
                self.breaker_failure();
                Err(ReadOutcome::Error)
            }
            Ok(Ok(None)) => {
                self.breaker_success();
                Err(ReadOutcome::Miss)
            }
            Ok(Ok(Some((redis_key, value)))) => {
                self.breaker_success();
                self.adopt(&redis_key, key, &value)
            }
        };
        match outcome {
            Ok(entry) => {
                self.stats.read(ReadOutcome::Hit);
                Some(entry)
            }
            Err(outcome) => {
                self.stats.read(outcome);
                None
            }
        }
    }

    async fn flush(&self, scope: &FlushScope) -> Result<(), FlushError> {
        let fail = |e: redis::RedisError| FlushError(e.to_string());
        let mut incr = redis::cmd("INCR");
        incr.arg(key::GENERATION_KEY);
        let generation: u64 = self.redis.query(&incr).await.map_err(fail)?;
        self.learn_generation(generation);
        let mut publish = redis::cmd("PUBLISH");
        publish
            .arg(key::FLUSH_CHANNEL)
            .arg(flush_message(generation, scope));
        let _: i64 = self.redis.query(&publish).await.map_err(fail)?;
        self.stats.flushed("local");
        Ok(())
    }
}

/// Whether an entry stored under `key` may go to the tier: never the
/// checking-disabled variant (it may hold data validation would call
/// bogus), never SERVFAIL, never what a client may not be given (glue),
/// and Secure data only when the fleet has a secret.
fn storable(key: &[u8], entry: &CachedAnswer, trusted: bool) -> bool {
    key.last().is_some_and(|v| v & wire::VARIANT_CD == 0)
        && entry.rcode() != 2 // SERVFAIL (RFC 1035 §4.1.1)
        && entry.servable()
        && (trusted || entry.security != Security::Secure)
}

impl SecondTier for SharedCache {
    fn read<'a>(&'a self, key: &'a [u8]) -> TierFuture<'a, Option<CachedAnswer>> {
        Box::pin(self.shared.read(key))
    }

    fn write(&self, key: &[u8], entry: &Arc<CachedAnswer>) {
        if !storable(key, entry, self.shared.keys.trusted) {
            return;
        }
        let pending = Pending {
            key: key.into(),
            entry: entry.clone(),
            now: Now::at(self.shared.clock.now_ms()),
        };
        if !self.writer.queue(pending) {
            self.shared.stats.writes("dropped", 1);
        }
    }

    fn flush<'a>(&'a self, scope: &'a FlushScope) -> TierFuture<'a, Result<(), FlushError>> {
        Box::pin(async move {
            match tokio::time::timeout(Duration::from_secs(2), self.shared.flush(scope)).await {
                Ok(result) => result,
                Err(_) => Err(FlushError("Redis did not answer within 2 s".into())),
            }
        })
    }
}

/// `<generation> all`, `<generation> name <name>`, `<generation> subtree <name>`.
fn flush_message(generation: u64, scope: &FlushScope) -> String {
    match scope {
        FlushScope::All => format!("{generation} all"),
        FlushScope::Name(n) => format!("{generation} name {n}"),
        FlushScope::Subtree(n) => format!("{generation} subtree {n}"),
    }
}

/// The generation and scope of a flush message; `None` for anything else.
fn parse_flush(text: &str) -> Option<(u64, FlushScope)> {
    let mut words = text.split(' ');
    let generation = words.next()?.parse().ok()?;
    let scope = match (words.next()?, words.next()) {
        ("all", None) => FlushScope::All,
        ("name", Some(n)) => FlushScope::Name(Name::from_ascii(n).ok()?.to_lowercase()),
        ("subtree", Some(n)) => FlushScope::Subtree(Name::from_ascii(n).ok()?.to_lowercase()),
        _ => return None,
    };
    words.next().is_none().then_some((generation, scope))
}

/// Reads the generation now and every [`GENERATION_POLL`].
async fn poll_generation(shared: std::sync::Weak<Shared>) {
    loop {
        let Some(s) = shared.upgrade() else {
            return;
        };
        let mut get = redis::cmd("GET");
        get.arg(key::GENERATION_KEY);
        if let Ok(Ok(g)) =
            tokio::time::timeout(Duration::from_secs(1), s.redis.query::<Option<u64>>(&get)).await
        {
            s.learn_generation(g.unwrap_or(0));
        }
        drop(s);
        tokio::time::sleep(GENERATION_POLL).await;
    }
}

/// Listens on [`key::FLUSH_CHANNEL`] (of the first of `urls` that
/// answers; in a cluster a message published on any node reaches all)
/// and applies each flush.
async fn subscribe(shared: std::sync::Weak<Shared>, urls: Vec<String>, on_flush: Arc<OnFlush>) {
    let mut next = 0;
    loop {
        if shared.strong_count() == 0 {
            return;
        }
        let url = &urls[next % urls.len().max(1)];
        next += 1;
        if let Ok(client) = redis::Client::open(url.as_str())
            && let Ok(Ok(mut pubsub)) =
                tokio::time::timeout(Duration::from_secs(1), client.get_async_pubsub()).await
            && pubsub.subscribe(key::FLUSH_CHANNEL).await.is_ok()
        {
            debug!(url, "subscribed to shared cache flushes");
            let mut messages = pubsub.on_message();
            while let Some(msg) = messages.next().await {
                let Some(s) = shared.upgrade() else {
                    return;
                };
                let text = String::from_utf8_lossy(msg.get_payload_bytes());
                match parse_flush(&text) {
                    Some((generation, scope)) => {
                        s.learn_generation(generation);
                        s.stats.flushed("fleet");
                        info!(?scope, generation, "flush from the fleet");
                        on_flush(&scope);
                    }
                    None => debug!(message = %text, "not a flush message"),
                }
            }
        }
        tokio::time::sleep(RESUBSCRIBE).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_messages_read_back_and_garbage_is_ignored() {
        let name = Name::from_ascii("Example.KR.").expect("name");
        for scope in [
            FlushScope::All,
            FlushScope::Name(name.to_lowercase()),
            FlushScope::Subtree(name.to_lowercase()),
        ] {
            assert_eq!(
                parse_flush(&flush_message(7, &scope)),
                Some((7, scope.clone()))
            );
        }
        for junk in ["", "x all", "7", "7 everything", "7 all extra", "7 name"] {
            assert_eq!(parse_flush(junk), None, "{junk:?}");
        }
    }
}
