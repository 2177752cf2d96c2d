//! Warm restart for the running daemon (`cache.snapshot_file`): the cache
//! is loaded from the last snapshot in the background at start, while the
//! listeners already answer, written every `cache.snapshot_interval_s`,
//! and written once more on SIGTERM after the last answers went out.
//!
//! The file's format and what it refuses are [`crate::cache::snapshot`]'s;
//! here is when it is read and written, and what is logged. Reading and
//! writing run on the blocking pool: a snapshot of a large cache is
//! hundreds of megabytes, and neither a worker thread nor a client waits
//! for it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::handler::Handler;
use crate::cache::portable::Now;
use crate::cache::snapshot::{self, ServerRtt, SnapshotError};
use crate::config::Config;

/// The daemon's snapshot: where, how often, and under which anchors.
pub struct WarmRestart {
    path: PathBuf,
    interval: Option<Duration>,
    /// The digest the file is tied to ([`snapshot::anchors_digest`]).
    anchors: [u8; 32],
    handler: Arc<Handler>,
}

impl WarmRestart {
    /// `None` when `cache.snapshot_file` is empty.
    pub fn from_config(config: &Config, handler: Arc<Handler>) -> Option<Arc<WarmRestart>> {
        let cache = &config.cache;
        if cache.snapshot_file.is_empty() {
            return None;
        }
        Some(Arc::new(WarmRestart {
            path: PathBuf::from(&cache.snapshot_file),
            interval: (cache.snapshot_interval_s > 0)
                .then(|| Duration::from_secs(cache.snapshot_interval_s)),
            anchors: anchors_of(config),
            handler,
        }))
    }

    /// Loads the snapshot in the background, then writes one every
    /// interval until `shutdown`.
    pub fn spawn(self: &Arc<Self>, shutdown: CancellationToken) {
        let this = self.clone();
        tokio::spawn(async move {
            let loader = this.clone();
            let _ = tokio::task::spawn_blocking(move || loader.load()).await;
            let Some(interval) = this.interval else {
                return;
            };
            let mut tick =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {
                        let writer = this.clone();
                        let _ = tokio::task::spawn_blocking(move || writer.write()).await;
                    }
                }
            }
        });
    }

    /// Reads the file and puts what is still fresh into the cache; a file
    /// that is missing, damaged or refused is logged, and the cache starts
    /// cold.
    fn load(&self) {
        let started = Instant::now();
        let now = self.now();
        let read = snapshot::read(&self.path, now.unix_ms, self.anchors);
        let snap = match read {
            Ok(snap) => snap,
            Err(SnapshotError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                info!(path = %self.path.display(), "no cache snapshot yet: starting cold");
                return;
            }
            Err(error) => {
                self.handler.metrics.snapshot_failed("refused");
                warn!(%error, "cache snapshot ignored: starting cold");
                return;
            }
        };
        let cache = &self.handler.cache;
        let restored = cache.restore_entries(&snap.entries, now);
        for server in &snap.servers {
            self.handler.resolver.infra.restore_rtt(
                server.addr,
                f64::from(server.srtt_ms),
                f64::from(server.rttvar_ms),
            );
        }
        let age_s = now.unix_ms.saturating_sub(snap.created_unix_ms) / 1000;
        self.handler.metrics.snapshot_loaded(&restored, age_s);
        info!(
            path = %self.path.display(),
            loaded = restored.loaded,
            expired = restored.expired,
            unreadable = restored.unreadable,
            already_cached = restored.present,
            servers = snap.servers.len(),
            age_s,
            ms = started.elapsed().as_millis() as u64,
            "cache snapshot loaded"
        );
    }

    /// Writes the cache's live entries and the servers' RTTs; logs and
    /// counts a failure (a full disk degrades the next start, nothing else).
    pub fn write(&self) {
        let started = Instant::now();
        let now = self.now();
        let entries = self.handler.cache.snapshot_entries(now);
        let servers: Vec<ServerRtt> = self
            .handler
            .resolver
            .infra
            .measured_rtts()
            .into_iter()
            .map(|(addr, srtt, rttvar)| ServerRtt {
                addr,
                srtt_ms: srtt as f32,
                rttvar_ms: rttvar as f32,
            })
            .collect();
        match snapshot::write(&self.path, now.unix_ms, self.anchors, &entries, &servers) {
            Ok(()) => {
                self.handler
                    .metrics
                    .snapshot_written(entries.len(), now.unix_ms / 1000);
                info!(
                    path = %self.path.display(),
                    entries = entries.len(),
                    servers = servers.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "cache snapshot written"
                );
            }
            Err(error) => {
                self.handler.metrics.snapshot_failed("write");
                warn!(%error, "cache snapshot not written");
            }
        }
    }

    fn now(&self) -> Now {
        Now::at(self.handler.cache.clock().now_ms())
    }
}

/// What the cache's DNSSEC statuses depend on: whether validation is on,
/// the trust anchors, and the negative trust anchors. A snapshot made
/// under others is not loaded (what was Secure may not be).
fn anchors_of(config: &Config) -> [u8; 32] {
    let dnssec = &config.dnssec;
    let mut lines = Vec::new();
    if let Ok(anchors) = dnssec.trust_anchors() {
        lines.extend(
            anchors
                .ds
                .iter()
                .map(|(name, ds)| format!("{name} DS {ds}")),
        );
        lines.extend(
            anchors
                .keys
                .iter()
                .map(|(name, key)| format!("{name} DNSKEY {key}")),
        );
    }
    lines.extend(
        dnssec
            .negative_trust_anchors
            .iter()
            .map(|name| format!("nta {name}")),
    );
    snapshot::anchors_digest(dnssec.validation, &lines)
}
