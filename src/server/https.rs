//! DNS over HTTPS (RFC 8484): HTTP/1.1 and HTTP/2 on one port (ALPN `h2`,
//! `http/1.1`), behind the TLS handshake of [`super::tls`].
//!
//! A request is one DNS message, GET with `?dns=` (base64url without
//! padding, §4.1) or POST with `application/dns-message` (§4.1); it goes
//! through the same [`Handler::fast`] and [`Handler::slow`] as UDP, so a
//! hit is the stored wire bytes with the ID patched (0, as RFC 8484 §4.1
//! asks clients to send). The response carries `Cache-Control: max-age`
//! with the smallest TTL of its answer (§5.1), which Unbound does not
//! send.
//!
//! | request                                   | status |
//! |-------------------------------------------|--------|
//! | answered                                  | 200    |
//! | `dns` missing or not base64url, or a message that is not a query | 400 |
//! | a client the ACL drops                    | 403    |
//! | any other path                            | 404    |
//! | any other method                          | 405    |
//! | a message over 65,535 bytes               | 413    |
//! | POST with another `Content-Type`          | 415    |

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use super::edns;
use super::handler::{Fast, Handler};
use super::stream::Context;
use super::transport::Transport;
use crate::wire::{self, rcode};

/// The media type of a DNS message (RFC 8484 §6).
pub const DNS_MESSAGE: &str = "application/dns-message";
/// The largest DNS message (RFC 8484 §6: "up to 65535 bytes").
pub const MAX_MESSAGE: usize = 65_535;

/// The DoH endpoint's settings.
pub struct Doh {
    /// `server.https_path`, e.g. `/dns-query`.
    pub path: String,
}

/// Serves HTTP requests on one TLS connection until it closes, idles out
/// (no request in flight for the idle timeout), or the server shuts down.
pub async fn serve<S>(stream: S, peer: SocketAddr, doh: Arc<Doh>, cx: &Context)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let activity = Arc::new(Activity::new());
    let service = {
        let handler = cx.handler.clone();
        let activity = activity.clone();
        let idle = cx.idle;
        hyper::service::service_fn(move |req| {
            let (handler, doh, activity) = (handler.clone(), doh.clone(), activity.clone());
            async move {
                let _busy = activity.begin();
                let resp = respond(req, peer, &doh, &handler, idle).await;
                handler.metrics.https_response(resp.status().as_u16());
                Ok::<_, Infallible>(resp)
            }
        })
    };
    let mut builder = auto::Builder::new(Tracked(cx.tracker.clone()));
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = activity.idled_out(cx.idle) => Ok(()),
        _ = cx.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            tokio::time::timeout(cx.idle, conn.as_mut()).await.unwrap_or(Ok(()))
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "DoH connection ended with an error");
    }
}

/// Spawns HTTP/2's per-stream tasks on the server's task tracker, so a
/// stopping server waits for the answers they are writing (within its
/// shutdown grace), as it does for stream and UDP resolutions.
#[derive(Clone)]
struct Tracked(TaskTracker);

impl<F> hyper::rt::Executor<F> for Tracked
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        drop(self.0.spawn(future));
    }
}

/// Requests in flight and the time of the last one, for the idle timeout.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    inflight: AtomicUsize,
}

struct Busy<'a>(&'a Activity);

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            inflight: AtomicUsize::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn begin(&self) -> Busy<'_> {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        Busy(self)
    }

    /// Completes once no request has been in flight for `idle`.
    async fn idled_out(&self, idle: Duration) {
        let idle_ms = idle.as_millis() as u64;
        loop {
            let quiet = self
                .now_ms()
                .saturating_sub(self.last_ms.load(Ordering::Relaxed));
            if self.inflight.load(Ordering::Relaxed) == 0 && quiet >= idle_ms {
                return;
            }
            let wait = idle_ms.saturating_sub(quiet).max(idle_ms / 4).max(10);
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.last_ms.store(self.0.now_ms(), Ordering::Relaxed);
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A plain-text error response.
fn status(code: StatusCode, why: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(why.as_bytes())));
    *resp.status_mut() = code;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// How much of a request body taproot reads past [`MAX_MESSAGE`] before
/// refusing it: a client gets its 413 (or 415, 405) after its upload,
/// which HTTP/2 clients that cannot take an early response need, but no
/// client makes taproot read without end.
const DRAIN_LIMIT: usize = 4 * MAX_MESSAGE;

/// A request body: at most [`MAX_MESSAGE`] bytes kept, the rest read and
/// dropped up to [`DRAIN_LIMIT`]; `Err` with the status that refuses it.
async fn read_body(mut body: Incoming) -> Result<Vec<u8>, Response<Full<Bytes>>> {
    let mut kept = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| status(StatusCode::BAD_REQUEST, "body not read\n"))?;
        if let Ok(data) = frame.into_data() {
            total = total.saturating_add(data.len());
            if total <= MAX_MESSAGE {
                kept.extend_from_slice(&data);
            } else if total > DRAIN_LIMIT {
                break;
            }
        }
    }
    if total > MAX_MESSAGE {
        return Err(status(StatusCode::PAYLOAD_TOO_LARGE, "message too large\n"));
    }
    Ok(kept)
}

/// The DNS message a request carries, or the status that refuses it.
async fn message(req: Request<Incoming>) -> Result<Vec<u8>, Response<Full<Bytes>>> {
    let (parts, body) = req.into_parts();
    // Read first, whatever the verdict: see DRAIN_LIMIT.
    let body = read_body(body).await;
    match parts.method {
        Method::GET => {
            let param = parts
                .uri
                .query()
                .unwrap_or("")
                .split('&')
                .find_map(|kv| kv.strip_prefix("dns="))
                .ok_or_else(|| status(StatusCode::BAD_REQUEST, "missing dns parameter\n"))?;
            // 65,535 bytes take 87,380 base64 characters.
            if param.len() > MAX_MESSAGE.div_ceil(3) * 4 {
                return Err(status(StatusCode::PAYLOAD_TOO_LARGE, "message too large\n"));
            }
            // RFC 8484 §4.1: without padding; a padded one is forgiven.
            data_encoding::BASE64URL_NOPAD
                .decode(param.trim_end_matches('=').as_bytes())
                .map_err(|_| status(StatusCode::BAD_REQUEST, "dns is not base64url\n"))
        }
        Method::POST => {
            let media = parts
                .headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .map(str::trim);
            if !media.is_some_and(|m| m.eq_ignore_ascii_case(DNS_MESSAGE)) {
                return Err(status(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "Content-Type must be application/dns-message\n",
                ));
            }
            body
        }
        _ => {
            let mut resp = status(StatusCode::METHOD_NOT_ALLOWED, "GET or POST\n");
            resp.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, POST"));
            Err(resp)
        }
    }
}

async fn respond(
    req: Request<Incoming>,
    peer: SocketAddr,
    doh: &Doh,
    handler: &Arc<Handler>,
    idle: Duration,
) -> Response<Full<Bytes>> {
    if req.uri().path() != doh.path {
        let _ = read_body(req.into_body()).await;
        return status(StatusCode::NOT_FOUND, "not found\n");
    }
    let query = match message(req).await {
        Ok(q) => q,
        Err(resp) => return resp,
    };
    let prepared = handler.prepare(&query);
    if prepared.unparsable() {
        return status(StatusCode::BAD_REQUEST, "not a DNS query\n");
    }
    let query_edns = prepared.edns();
    let mut out = Vec::new();
    let mut answer = match handler.fast(&query, &prepared, peer, Transport::Https, &mut out) {
        Fast::Reply => out,
        Fast::Miss => match handler
            .clone()
            .slow(query, prepared, peer, Transport::Https)
            .await
        {
            Some(a) => a,
            None => return status(StatusCode::FORBIDDEN, "refused\n"),
        },
        Fast::Drop => return status(StatusCode::FORBIDDEN, "refused\n"),
    };
    edns::finish(&mut answer, query_edns, Transport::Https, idle);
    let cache_control = freshness(&answer);
    let mut resp = Response::new(Full::new(Bytes::from(answer)));
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(DNS_MESSAGE));
    if let Ok(v) = HeaderValue::from_str(&cache_control) {
        headers.insert(CACHE_CONTROL, v);
    }
    resp
}

/// `Cache-Control` for a DNS response (RFC 8484 §5.1): `max-age` the
/// smallest TTL of the answer section; for a negative answer the SOA's
/// negative TTL, the lesser of its TTL and MINIMUM (RFC 2308 §5);
/// `no-store` for SERVFAIL and the other failures, which must not outlive
/// the moment.
pub fn freshness(resp: &[u8]) -> String {
    let code = u16::from(resp.get(3).copied().unwrap_or(0) & 0x0f);
    if !matches!(code, rcode::NOERROR | 3) {
        return "no-store".into();
    }
    max_age(resp).map_or_else(|| "max-age=0".into(), |ttl| format!("max-age={ttl}"))
}

fn max_age(resp: &[u8]) -> Option<u32> {
    let qd = wire::read_u16(resp, 4)?;
    let an = wire::read_u16(resp, 6)?;
    let ns = wire::read_u16(resp, 8)?;
    let mut at = wire::HEADER_LEN;
    for _ in 0..qd {
        at = wire::skip_name(resp, at)? + 4;
    }
    let mut smallest: Option<u32> = None;
    for _ in 0..an {
        let rr = wire::read_rr(resp, at)?;
        smallest = Some(smallest.map_or(rr.ttl, |s| s.min(rr.ttl)));
        at = rr.end;
    }
    if smallest.is_some() {
        return smallest;
    }
    for _ in 0..ns {
        let rr = wire::read_rr(resp, at)?;
        if rr.rtype == 6 {
            // MINIMUM is the last field of the SOA's RDATA (RFC 1035 §3.3.13).
            let minimum = wire::read_u32(resp, rr.end.checked_sub(4)?)?;
            return Some(rr.ttl.min(minimum));
        }
        at = rr.end;
    }
    None
}
