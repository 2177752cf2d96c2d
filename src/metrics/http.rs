//! The HTTP listener: `/metrics` for Prometheus, `/healthz` and `/readyz`
//! for supervisors, and the admin endpoints `/cache/flush`, `/cache/stats`
//! and `/trace/…`, which answer only clients in `metrics.admin_allow`.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::Request;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hickory_proto::rr::{Name, RecordType};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Metrics;
use crate::cache::Cache;
use crate::config::Config;
use crate::resolve::Resolver;
use crate::resolve::traced::TraceOptions;
use crate::trace::{Format, TraceClock};

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
        .merge(
            Router::new()
                .route("/cache/flush", post(flush))
                .route("/cache/stats", get(stats))
                .route("/trace/recent", get(recent_traces))
                .route("/trace/{name}/{qtype}", get(trace))
                .route_layer(middleware::from_fn_with_state(state.clone(), admin_only)),
        )
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
        s.metrics
            .observe_forward_tls(s.resolver.dot.handshakes(), s.resolver.dot.connections());
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

/// The one gate of the admin endpoints (`/cache/*`, `/trace/*`): only
/// clients in `metrics.admin_allow` (read live, so a reload applies).
async fn admin_only(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let allowed = s
        .config
        .load()
        .metrics
        .admin_allow
        .iter()
        .any(|net| net.contains(&peer.ip()));
    if !allowed {
        return (
            StatusCode::FORBIDDEN,
            "admin endpoints are not open to this address (metrics.admin_allow)\n",
        )
            .into_response();
    }
    next.run(request).await
}

#[derive(Deserialize)]
struct FlushParams {
    name: Option<String>,
    #[serde(default)]
    subtree: bool,
}

async fn flush(State(s): State<AppState>, Query(p): Query<FlushParams>) -> Response {
    match p.name {
        None => {
            fleet_flush(&s, &crate::cache::FlushScope::All).await;
            s.resolver.forget_derived();
            info!("cache flushed");
            (StatusCode::OK, "flushed all\n").into_response()
        }
        Some(n) => match Name::from_ascii(&n) {
            Ok(mut name) => {
                name.set_fqdn(true);
                let name = name.to_lowercase();
                let scope = if p.subtree {
                    crate::cache::FlushScope::Subtree(name.clone())
                } else {
                    crate::cache::FlushScope::Name(name.clone())
                };
                fleet_flush(&s, &scope).await;
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

/// Flushes this instance, and the fleet when a shared cache is set; a
/// shared cache that cannot be reached is logged (this instance is
/// flushed regardless).
async fn fleet_flush(s: &AppState, scope: &crate::cache::FlushScope) {
    if let Err(e) = s.cache.flush_fleet(scope).await {
        tracing::warn!(error = %e, ?scope, "the fleet was not flushed");
    }
}

async fn stats(State(s): State<AppState>) -> Response {
    let cache = &s.cache;
    cache.sync();
    let st = cache.stats();
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

#[derive(Deserialize)]
struct TraceParams {
    format: Option<String>,
    cache: Option<String>,
    /// `/trace/recent` in SVG or HTML: which kept trace (0 = newest).
    index: Option<usize>,
}

/// The `format=` parameter, or what a 400 says about it.
fn format_of(p: &TraceParams) -> Result<Format, String> {
    match p.format.as_deref() {
        None => Ok(Format::Text),
        Some(f) => Format::parse(f)
            .ok_or_else(|| format!("unknown format {f:?}: text, json, mermaid, svg or html\n")),
    }
}

/// `GET /trace/{name}/{type}?format=…&cache=bypass|use`: resolves the name
/// with every step recorded and returns the trace.
async fn trace(
    State(s): State<AppState>,
    Path((name, qtype)): Path<(String, String)>,
    Query(p): Query<TraceParams>,
) -> Response {
    let format = match format_of(&p) {
        Ok(f) => f,
        Err(why) => return (StatusCode::BAD_REQUEST, why).into_response(),
    };
    let bypass_cache = match p.cache.as_deref() {
        None | Some("bypass") => true,
        Some("use") => false,
        Some(other) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("unknown cache mode {other:?}: bypass or use\n"),
            )
                .into_response();
        }
    };
    let name = match Name::from_ascii(&name) {
        Ok(mut n) => {
            n.set_fqdn(true);
            n
        }
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("bad name {name:?}: {e}\n")).into_response();
        }
    };
    let qtype = match qtype.to_ascii_uppercase().parse::<RecordType>() {
        Ok(t) => t,
        Err(_) => {
            return (StatusCode::BAD_REQUEST, format!("unknown type {qtype:?}\n")).into_response();
        }
    };
    let options = TraceOptions {
        bypass_cache,
        clock: TraceClock::Real(std::time::Instant::now()),
    };
    let report = s.resolver.trace(&name, qtype, options).await;
    info!(name = %name, qtype = %qtype, rcode = %report.answer.rcode, events = report.events.len(), "traced");
    (
        [(header::CONTENT_TYPE, format.content_type())],
        report.render(format),
    )
        .into_response()
}

/// `GET /trace/recent?format=…`: the kept traces of the last questions that
/// failed, newest first. SVG and HTML show one (`index`, 0 = newest).
async fn recent_traces(State(s): State<AppState>, Query(p): Query<TraceParams>) -> Response {
    let format = match format_of(&p) {
        Ok(f) => f,
        Err(why) => return (StatusCode::BAD_REQUEST, why).into_response(),
    };
    let kept = s.resolver.recent_failures.list();
    let body = match format {
        Format::Json => serde_json::to_string_pretty(&serde_json::json!({
            "failures": kept.iter().map(|r| r.as_ref()).collect::<Vec<_>>()
        }))
        .unwrap_or_default(),
        Format::Text | Format::Mermaid => {
            if kept.is_empty() {
                "no failed question kept\n".to_string()
            } else {
                kept.iter()
                    .map(|r| r.render(format))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
        Format::Svg | Format::Html => match kept.get(p.index.unwrap_or(0)) {
            Some(report) => report.render(format),
            None => {
                return (StatusCode::NOT_FOUND, "no such failed question kept\n").into_response();
            }
        },
    };
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}
