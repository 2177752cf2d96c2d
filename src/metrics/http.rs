//! The HTTP listener: `/metrics` for Prometheus, `/healthz` and `/readyz`
//! for supervisors, and the admin endpoints `/cache/flush` and
//! `/cache/stats`, which answer only clients in `metrics.admin_allow`.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hickory_proto::rr::Name;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Metrics;
use crate::cache::Cache;
use crate::config::Config;
use crate::resolve::Resolver;

/// What the endpoints read and act on.
#[derive(Clone)]
pub struct AppState {
    pub cache: Arc<Cache>,
    pub resolver: Arc<Resolver>,
    pub metrics: Arc<Metrics>,
    pub config: Arc<ArcSwap<Config>>,
}

/// Binds `addr` and serves until `shutdown`; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        // This listener is started only after the config loaded and every DNS
        // listener bound (see `Server::start`), so answering at all means ready.
        .route("/readyz", get(|| async { "ready\n" }))
        .route("/cache/flush", post(flush))
        .route("/cache/stats", get(stats))
        .with_state(state);
    tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, service)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
        {
            warn!(error = %e, "metrics listener stopped");
        }
    });
    info!(addr = %bound, "metrics and admin endpoint listening");
    Ok(bound)
}

/// The Prometheus text exposition format. Rendering runs the caches'
/// maintenance, so it is kept off the async workers.
async fn metrics(State(s): State<AppState>) -> Response {
    let rendered = tokio::task::spawn_blocking(move || {
        s.metrics.render(
            &s.cache,
            s.resolver.inflight(),
            s.resolver.validation.keys.len(),
        )
    })
    .await;
    match rendered {
        Ok(body) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], body).into_response(),
        Err(e) => {
            warn!(error = %e, "rendering metrics failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "rendering metrics failed\n",
            )
                .into_response()
        }
    }
}

fn admin_allowed(s: &AppState, peer: SocketAddr) -> bool {
    s.config
        .load()
        .metrics
        .admin_allow
        .iter()
        .any(|net| net.contains(&peer.ip()))
}

#[derive(Deserialize)]
struct FlushParams {
    name: Option<String>,
    #[serde(default)]
    subtree: bool,
}

async fn flush(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(p): Query<FlushParams>,
) -> Response {
    if !admin_allowed(&s, peer) {
        return (
            StatusCode::FORBIDDEN,
            "admin endpoints are not open to this address\n",
        )
            .into_response();
    }
    match p.name {
        None => {
            s.cache.flush_all();
            s.resolver.forget_derived();
            info!("cache flushed");
            (StatusCode::OK, "flushed all\n").into_response()
        }
        Some(n) => match Name::from_ascii(&n) {
            Ok(mut name) => {
                name.set_fqdn(true);
                s.cache.flush_name(&name, p.subtree);
                // Failures, proven keys and NSEC ranges are few or short-lived:
                // a flush of any name forgets them all, so the next question
                // walks and validates again (after a key rollover, say).
                s.resolver.forget_derived();
                info!(name = %name, subtree = p.subtree, "cache flushed");
                (
                    StatusCode::OK,
                    format!(
                        "flushed {name}{}\n",
                        if p.subtree { " and below" } else { "" }
                    ),
                )
                    .into_response()
            }
            Err(e) => (StatusCode::BAD_REQUEST, format!("bad name {n:?}: {e}\n")).into_response(),
        },
    }
}

async fn stats(State(s): State<AppState>, ConnectInfo(peer): ConnectInfo<SocketAddr>) -> Response {
    if !admin_allowed(&s, peer) {
        return (
            StatusCode::FORBIDDEN,
            "admin endpoints are not open to this address\n",
        )
            .into_response();
    }
    let cache = &s.cache;
    cache.sync();
    let st = &cache.stats;
    let kinds: serde_json::Map<String, serde_json::Value> = crate::cache::CacheKind::ALL
        .iter()
        .map(|k| {
            (
                k.as_str().to_string(),
                serde_json::json!({
                    "hits": st.hits(*k),
                    "misses": st.misses(*k),
                    "inserts": st.inserts(*k),
                    "evictions": st.evictions(*k),
                }),
            )
        })
        .collect();
    let body = serde_json::json!({
        "usage": cache.usage(),
        "kinds": kinds,
        "prefetches": st.prefetches.load(std::sync::atomic::Ordering::Relaxed),
        "stale_answers": st.stale_answers.load(std::sync::atomic::Ordering::Relaxed),
    });
    axum::Json(body).into_response()
}
