//! The operator's side of the admin HTTP endpoint ([`crate::metrics::http`]):
//! what `taproot trace` and `taproot cache flush|stats` send to a running
//! daemon, as `unbound-control` talks to Unbound's remote-control port.
//!
//! ```text
//!  taproot cache flush NAME
//!      │ the same config as `taproot run`: file < TAPROOT_* environment < flags
//!      ▼
//!  metrics.listen ("" ─► "the admin listener is off"; 0.0.0.0 ─► 127.0.0.1, [::] ─► ::1)
//!      │ one connection, one HTTP/1.1 request, one deadline over all of it
//!      ▼
//!  POST /cache/flush?name=NAME ──► daemon: metrics.admin_allow checks our source address
//!      │
//!      ▼
//!  2xx: the reply on stdout; anything else: one line on stderr, exit status 1
//! ```
//!
//! The daemon is not asked to be found any other way (no pid file, no
//! socket path): the config that started it names the listener, so the
//! operator's `--config` is the whole address book, as `unbound-control -c`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Method, StatusCode, header};
use hyper_util::rt::TokioIo;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tokio::net::TcpStream;

use crate::config::{DEFAULT_CONFIG_PATH, MetricsConfig};
use crate::trace::Format;

/// How long `taproot trace` waits for the whole reply: a trace that
/// bypasses the cache walks the tree, which `resolver.query_budget_ms`
/// (10 s by default) bounds, and sub-resolutions may follow it.
pub const TRACE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the cache commands wait: the daemon answers them from memory.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The environment variable that sets `metrics.listen` (see `config.rs`).
const LISTEN_ENV: &str = "TAPROOT_METRICS__LISTEN";

/// What may stand unescaped in a path segment or a query value: RFC 3986
/// §2.3's unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// What went wrong talking to the daemon; each says what to check.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// `metrics.listen = ""`: the daemon runs no HTTP listener at all.
    #[error(
        "the admin listener is off: {origin} is \"\" (set it to an address such as 127.0.0.1:9153 and restart taproot)"
    )]
    Disabled { origin: ListenOrigin },
    /// `metrics.listen` is not an address:port (validation refuses this, so
    /// only a config that skipped validation gets here).
    #[error("{origin} is {value:?}, not an address:port")]
    BadListen { value: String, origin: ListenOrigin },
    /// Nothing listens on the address: the daemon is not running, or runs
    /// with another config.
    #[error(
        "no taproot daemon answers on {addr} (connection refused); that address is {origin}: is taproot running with this config?"
    )]
    NotRunning {
        addr: SocketAddr,
        origin: ListenOrigin,
    },
    /// Connecting failed for another reason (no route, address not local).
    #[error("cannot connect to the daemon on {addr} ({origin}): {error}")]
    Unreachable {
        addr: SocketAddr,
        origin: ListenOrigin,
        error: std::io::Error,
    },
    /// HTTP 403: the daemon's `metrics.admin_allow` does not hold our address.
    #[error(
        "the daemon on {addr} refused {target}: this client's address {client} is not in its metrics.admin_allow"
    )]
    Forbidden {
        addr: SocketAddr,
        target: String,
        client: String,
    },
    /// Any other answer than 2xx, with the first line of its body.
    #[error("the daemon on {addr} answered {target} with HTTP {status}: {line}")]
    Status {
        addr: SocketAddr,
        target: String,
        status: StatusCode,
        line: String,
    },
    /// The request could not be put together (a target that is not a URI).
    #[error("cannot build a request for {target}: {error}")]
    Request {
        target: String,
        error: hyper::http::Error,
    },
    /// The connection broke or the reply was not HTTP.
    #[error("the HTTP exchange with the daemon on {addr} failed: {error}")]
    Http {
        addr: SocketAddr,
        error: hyper::Error,
    },
    /// The whole exchange took longer than its deadline.
    #[error("no complete reply from the daemon on {addr} to {target} within {} s", .within.as_secs())]
    Timeout {
        addr: SocketAddr,
        target: String,
        within: Duration,
    },
    /// `/cache/stats` answered something that is not JSON.
    #[error("the daemon on {addr} answered {target} with something that is not JSON: {error}")]
    NotJson {
        addr: SocketAddr,
        target: String,
        error: serde_json::Error,
    },
}

/// Where the `metrics.listen` the commands use was set, so that an error
/// names the place to look. Reads as "metrics.listen in FILE".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenOrigin {
    /// `--metrics-listen` on the command line.
    Flag,
    /// `TAPROOT_METRICS__LISTEN` in the environment.
    Environment,
    /// The config file (its value, or the default when the file has none).
    File(PathBuf),
    /// No config file and no override: the built-in default.
    Defaults,
}

impl ListenOrigin {
    /// The source with the highest precedence among those that were given,
    /// in the order `Config::load` merges them: flag > environment > file.
    /// `file` is `--config`; without it the default path counts when it exists.
    pub fn find(file: Option<&Path>, flag_given: bool) -> ListenOrigin {
        let from_env = std::env::vars_os().any(|(key, _)| key.eq_ignore_ascii_case(LISTEN_ENV));
        if flag_given {
            ListenOrigin::Flag
        } else if from_env {
            ListenOrigin::Environment
        } else if let Some(path) = file {
            ListenOrigin::File(path.to_path_buf())
        } else if Path::new(DEFAULT_CONFIG_PATH).exists() {
            ListenOrigin::File(PathBuf::from(DEFAULT_CONFIG_PATH))
        } else {
            ListenOrigin::Defaults
        }
    }
}

impl fmt::Display for ListenOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenOrigin::Flag => f.write_str("metrics.listen (set by --metrics-listen)"),
            ListenOrigin::Environment => write!(f, "metrics.listen (set by {LISTEN_ENV})"),
            ListenOrigin::File(path) => write!(f, "metrics.listen in {}", path.display()),
            ListenOrigin::Defaults => f.write_str(
                "metrics.listen of the built-in defaults (no config file was given or found)",
            ),
        }
    }
}

/// Whether a trace's question may be answered from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TraceCache {
    /// Walk the tree as if nothing were cached: the whole path shows.
    #[default]
    Bypass,
    /// Answer as a client would be answered, from the cache when it can.
    Use,
}

impl TraceCache {
    /// `use` or `bypass`, the spelling of the endpoint's `cache=` parameter.
    pub fn parse(s: &str) -> Option<TraceCache> {
        match s {
            "use" => Some(TraceCache::Use),
            "bypass" => Some(TraceCache::Bypass),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            TraceCache::Use => "use",
            TraceCache::Bypass => "bypass",
        }
    }
}

/// One operator command, as the request the daemon serves it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `GET /trace/{name}/{type}`: resolve the question now and show how.
    Trace {
        name: String,
        qtype: String,
        format: Format,
        cache: TraceCache,
    },
    /// `GET /trace/recent`: the traces of recent failures the daemon kept.
    RecentTraces { format: Format },
    /// `POST /cache/flush`: forget one name, a subtree, or everything.
    Flush { name: Option<String>, subtree: bool },
    /// `GET /cache/stats`: entries, hits and misses per cache, as JSON.
    Stats,
}

impl Request {
    fn method(&self) -> Method {
        match self {
            Request::Flush { .. } => Method::POST,
            _ => Method::GET,
        }
    }

    /// The path and query the request is sent to, names percent-encoded.
    pub fn target(&self) -> String {
        match self {
            Request::Trace {
                name,
                qtype,
                format,
                cache,
            } => format!(
                "/trace/{}/{}?format={}&cache={}",
                segment(name),
                // Mnemonics are upper case (RFC 3597 §5 spells TYPEnnn so too);
                // `taproot trace example.com mx` means MX.
                segment(&qtype.to_ascii_uppercase()),
                format.as_str(),
                cache.as_str(),
            ),
            Request::RecentTraces { format } => {
                format!("/trace/recent?format={}", format.as_str())
            }
            Request::Flush { name: None, .. } => "/cache/flush".to_string(),
            Request::Flush {
                name: Some(name),
                subtree,
            } => format!(
                "/cache/flush?name={}{}",
                utf8_percent_encode(name, UNRESERVED),
                if *subtree { "&subtree=true" } else { "" }
            ),
            Request::Stats => "/cache/stats".to_string(),
        }
    }

    /// The deadline over connecting, sending and reading the whole reply.
    pub fn timeout(&self) -> Duration {
        match self {
            Request::Trace { .. } | Request::RecentTraces { .. } => TRACE_TIMEOUT,
            Request::Flush { .. } | Request::Stats => ADMIN_TIMEOUT,
        }
    }
}

/// `name` as one path segment. A name of dots only (`.`, the root) would be
/// a dot segment that RFC 3986 §5.2.4 removes, so its dots are escaped too.
fn segment(name: &str) -> String {
    if name.bytes().all(|b| b == b'.') {
        name.bytes().map(|_| "%2E").collect()
    } else {
        utf8_percent_encode(name, UNRESERVED).to_string()
    }
}

/// A running daemon's admin listener, as the config names it.
#[derive(Debug, Clone)]
pub struct AdminEndpoint {
    addr: SocketAddr,
    origin: ListenOrigin,
}

impl AdminEndpoint {
    /// The listener `metrics` names; a wildcard address is reached on
    /// loopback, where the daemon listens too.
    pub fn from_config(
        metrics: &MetricsConfig,
        origin: ListenOrigin,
    ) -> Result<AdminEndpoint, ControlError> {
        if metrics.listen.is_empty() {
            return Err(ControlError::Disabled { origin });
        }
        let Ok(mut addr) = metrics.listen.parse::<SocketAddr>() else {
            return Err(ControlError::BadListen {
                value: metrics.listen.clone(),
                origin,
            });
        };
        match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => addr.set_ip(Ipv4Addr::LOCALHOST.into()),
            IpAddr::V6(ip) if ip.is_unspecified() => addr.set_ip(Ipv6Addr::LOCALHOST.into()),
            _ => {}
        }
        Ok(AdminEndpoint { addr, origin })
    }

    /// The address requests go to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends `request` and returns what the operator should see on stdout:
    /// the trace as rendered, the flush reply line, the stats as pretty JSON.
    pub async fn send(&self, request: &Request) -> Result<Vec<u8>, ControlError> {
        let target = request.target();
        let within = request.timeout();
        let (status, client, body) =
            tokio::time::timeout(within, self.exchange(request.method(), &target))
                .await
                .map_err(|_| ControlError::Timeout {
                    addr: self.addr,
                    target: target.clone(),
                    within,
                })??;
        if status == StatusCode::FORBIDDEN {
            return Err(ControlError::Forbidden {
                addr: self.addr,
                target,
                client,
            });
        }
        if !status.is_success() {
            return Err(ControlError::Status {
                addr: self.addr,
                target,
                status,
                line: first_line(&body),
            });
        }
        match request {
            Request::Stats => {
                let stats: serde_json::Value =
                    serde_json::from_slice(&body).map_err(|error| ControlError::NotJson {
                        addr: self.addr,
                        target,
                        error,
                    })?;
                let mut out = serde_json::to_vec_pretty(&stats).unwrap_or_default();
                out.push(b'\n');
                Ok(out)
            }
            Request::Flush { .. } => {
                Ok(format!("{}\n", String::from_utf8_lossy(&body).trim_end()).into_bytes())
            }
            Request::Trace { .. } | Request::RecentTraces { .. } => Ok(body.to_vec()),
        }
    }

    /// One request on a fresh connection; returns the status, our own
    /// address as the daemon saw it, and the whole body.
    async fn exchange(
        &self,
        method: Method,
        target: &str,
    ) -> Result<(StatusCode, String, Bytes), ControlError> {
        let stream = TcpStream::connect(self.addr).await.map_err(|error| {
            if error.kind() == std::io::ErrorKind::ConnectionRefused {
                ControlError::NotRunning {
                    addr: self.addr,
                    origin: self.origin.clone(),
                }
            } else {
                ControlError::Unreachable {
                    addr: self.addr,
                    origin: self.origin.clone(),
                    error,
                }
            }
        })?;
        let client = stream
            .local_addr()
            .map_or_else(|_| "(unknown)".to_string(), |a| a.ip().to_string());
        let http = |error| ControlError::Http {
            addr: self.addr,
            error,
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http)?;
        let request = hyper::Request::builder()
            .method(method)
            .uri(target)
            .header(header::HOST, self.addr.to_string())
            .header(
                header::USER_AGENT,
                concat!("taproot/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::<Bytes>::new());
        let request = request.map_err(|error| ControlError::Request {
            target: target.to_string(),
            error,
        })?;
        // The sender moves into the exchange and is dropped when it ends,
        // which lets the connection future finish: no task outlives this.
        let reply = async move {
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        };
        let (reply, _connection) = tokio::join!(reply, connection);
        let (status, body) = reply.map_err(http)?;
        Ok((status, client, body))
    }
}

/// The first line of an error body, for a one-line message.
fn first_line(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    match text.lines().map(str::trim).find(|l| !l.is_empty()) {
        Some(line) => line.chars().take(200).collect(),
        None => "(empty body)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(listen: &str) -> Result<AdminEndpoint, ControlError> {
        let metrics = MetricsConfig {
            listen: listen.into(),
            ..MetricsConfig::default()
        };
        AdminEndpoint::from_config(&metrics, ListenOrigin::File("t.toml".into()))
    }

    #[test]
    fn a_wildcard_listen_address_is_reached_on_loopback() {
        let v4 = endpoint("0.0.0.0:9153").map(|e| e.addr().to_string());
        assert_eq!(v4.ok().as_deref(), Some("127.0.0.1:9153"));
        let v6 = endpoint("[::]:9153").map(|e| e.addr().to_string());
        assert_eq!(v6.ok().as_deref(), Some("[::1]:9153"));
        let own = endpoint("192.0.2.1:80").map(|e| e.addr().to_string());
        assert_eq!(own.ok().as_deref(), Some("192.0.2.1:80"));
    }

    #[test]
    fn an_empty_listen_address_says_the_listener_is_off_naming_key_and_file() {
        let err = endpoint("").map(|_| ()).err().map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(err.contains("metrics.listen in t.toml"), "{err}");
        assert!(err.contains("off"), "{err}");
    }

    #[test]
    fn trace_targets_percent_encode_the_name_and_upper_case_the_type() {
        let trace = |name: &str, qtype: &str| Request::Trace {
            name: name.into(),
            qtype: qtype.into(),
            format: Format::Json,
            cache: TraceCache::Bypass,
        };
        assert_eq!(
            trace("www.example.com.", "aaaa").target(),
            "/trace/www.example.com./AAAA?format=json&cache=bypass"
        );
        assert_eq!(
            trace("a b/c?d#e%", "A").target(),
            "/trace/a%20b%2Fc%3Fd%23e%25/A?format=json&cache=bypass"
        );
        assert_eq!(
            trace(".", "NS").target(),
            "/trace/%2E/NS?format=json&cache=bypass"
        );
        assert_eq!(
            Request::RecentTraces {
                format: Format::Html
            }
            .target(),
            "/trace/recent?format=html"
        );
    }

    #[test]
    fn flush_targets_carry_the_name_and_subtree_as_query() {
        let flush = |name: Option<&str>, subtree| Request::Flush {
            name: name.map(str::to_string),
            subtree,
        };
        assert_eq!(flush(None, false).target(), "/cache/flush");
        assert_eq!(
            flush(Some("example.com"), false).target(),
            "/cache/flush?name=example.com"
        );
        assert_eq!(
            flush(Some("a+b&c=d"), true).target(),
            "/cache/flush?name=a%2Bb%26c%3Dd&subtree=true"
        );
    }

    #[test]
    fn an_error_body_is_cut_to_its_first_line() {
        assert_eq!(first_line(b"\nbad name \"x\"\nmore\n"), "bad name \"x\"");
        assert_eq!(first_line(b""), "(empty body)");
    }
}
