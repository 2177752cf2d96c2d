//! One Redis, standalone or a Redis Cluster, behind the few commands the
//! tier sends.
//!
//! A standalone Redis is reached through the `redis` crate's
//! `ConnectionManager`, made lazily so that a Redis down at start does not
//! stop taproot: it connects on first use and reconnects after a failure.
//! A cluster connection cannot be made lazily, so it is made in the
//! background, retried every second until the cluster answers; until then
//! every command fails at once (a miss). Cluster commands are routed by
//! slot; a pipeline may only hold keys of one slot, so a batch of writes
//! to a cluster goes as concurrent single commands on the multiplexed
//! connection instead.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{RedisError, RedisResult};
use tracing::{info, warn};

/// How long connecting (or reconnecting) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A reply past this is a failure even for writes and flushes, which
/// have no deadline of their own.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

/// How often an unreachable cluster is tried again.
const CLUSTER_RETRY: Duration = Duration::from_secs(1);

/// The Redis a tier talks to.
#[derive(Clone)]
pub enum Redis {
    Standalone(ConnectionManager),
    Cluster(Arc<ArcSwapOption<ClusterConnection>>),
}

fn not_connected() -> RedisError {
    RedisError::from((
        redis::ErrorKind::Io,
        "the Redis Cluster is not connected yet",
    ))
}

impl Redis {
    /// A lazy connection to the standalone Redis at `url`.
    pub fn standalone(url: &str) -> RedisResult<Redis> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        Ok(Redis::Standalone(ConnectionManager::new_lazy_with_config(
            client, config,
        )?))
    }

    /// A cluster seeded by `nodes`, connected in the background.
    pub fn cluster(nodes: &[String]) -> RedisResult<Redis> {
        let client = ClusterClient::builder(nodes.iter().map(String::as_str))
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
            .retries(2)
            .build()?;
        let slot = Arc::new(ArcSwapOption::<ClusterConnection>::empty());
        let weak = Arc::downgrade(&slot);
        tokio::spawn(async move {
            let mut warned = false;
            loop {
                if weak.strong_count() == 0 {
                    return;
                }
                match client.get_async_connection().await {
                    Ok(conn) => {
                        if let Some(slot) = weak.upgrade() {
                            slot.store(Some(Arc::new(conn)));
                            info!("connected to the Redis Cluster of cache.shared.cluster");
                        }
                        return;
                    }
                    Err(e) => {
                        if !warned {
                            warn!(error = %e, "the Redis Cluster of cache.shared.cluster does not answer; retrying");
                            warned = true;
                        }
                        tokio::time::sleep(CLUSTER_RETRY).await;
                    }
                }
            }
        });
        Ok(Redis::Cluster(slot))
    }

    /// Runs one command.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> RedisResult<T> {
        match self {
            Redis::Standalone(manager) => cmd.query_async(&mut manager.clone()).await,
            Redis::Cluster(slot) => {
                let conn = slot.load_full().ok_or_else(not_connected)?;
                cmd.query_async(&mut ClusterConnection::clone(&conn)).await
            }
        }
    }

    /// `SET key value PX ttl_ms` for each of `writes`: one pipeline on a
    /// standalone Redis, concurrent commands on a cluster.
    pub async fn set_many(&self, writes: &[(String, Vec<u8>, u64)]) -> RedisResult<()> {
        match self {
            Redis::Standalone(manager) => {
                let mut pipe = redis::pipe();
                for (key, value, ttl_ms) in writes {
                    pipe.cmd("SET")
                        .arg(key)
                        .arg(value.as_slice())
                        .arg("PX")
                        .arg(*ttl_ms)
                        .ignore();
                }
                pipe.query_async::<()>(&mut manager.clone()).await
            }
            Redis::Cluster(slot) => {
                let conn = slot.load_full().ok_or_else(not_connected)?;
                let sets = writes.iter().map(|(key, value, ttl_ms)| {
                    let mut conn = ClusterConnection::clone(&conn);
                    let mut cmd = redis::cmd("SET");
                    cmd.arg(key).arg(value.as_slice()).arg("PX").arg(*ttl_ms);
                    async move { cmd.query_async::<()>(&mut conn).await }
                });
                for result in futures_util::future::join_all(sets).await {
                    result?;
                }
                Ok(())
            }
        }
    }
}
