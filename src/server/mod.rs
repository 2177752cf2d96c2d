//! The client-facing side.
//!
//! ```text
//!  UDP socket ×threads (SO_REUSEPORT) ───────────────┐
//!  TCP listener ──► stream ──────────────────────────┤
//!  TLS listener ──► handshake ──► stream ────────────┼─► Handler::fast ──► answer cache hit ──► reply
//!  HTTPS listener ► handshake ──► HTTP/1.1, HTTP/2 ──┘        │ miss
//!                                                             ▼
//!                                   Handler::slow (a task on the UDP worker's
//!                                   own event loop, or on the shared runtime for streams)
//!                                     ├─ recursive: resolve::Resolver
//!                                     └─ referral mode: crate::resolve::referral
//! ```
//!
//! Every transport reaches the same handler with a [`Transport`], which
//! says what differs (the response size, whether it is a datagram); the
//! stream listeners share one accept loop ([`listener`]) and TCP and TLS
//! one connection ([`stream`]).
//!
//! [`Server::start`] builds the [`Core`] (cache, resolver, handler) and then
//! spawns the listeners on it; it returns a [`Running`] handle that reloads
//! live settings and shuts down with a drain deadline.

pub mod acl;
mod batch;
pub mod ddr;
mod edns;
pub mod handler;
pub mod https;
mod listen;
pub mod listener;
pub mod ratelimit;
pub mod stream;
pub mod tls;
mod transfers;
pub mod transport;
pub mod udp;
mod warm;

pub use transport::Transport;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::cache::Cache;
use crate::clock::Clock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::resolve::route::Routes;
use crate::resolve::{Resolver, Validation, hints};
use handler::{Handler, Live};
use transfers::Transfers;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "cannot bind {proto} {addr}: {source}{hint}",
        hint = if source.kind() == std::io::ErrorKind::PermissionDenied {
            " (ports below 1024 need root or CAP_NET_BIND_SERVICE; or listen on a port above 1024)"
        } else if source.kind() == std::io::ErrorKind::AddrInUse {
            " (another DNS server, e.g. systemd-resolved or dnsmasq, already uses it)"
        } else { "" }
    )]
    Bind {
        proto: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Hints(#[from] hints::HintsError),
    #[error(transparent)]
    TrustAnchors(#[from] crate::dnssec::AnchorError),
    #[error(transparent)]
    Routes(#[from] crate::resolve::route::RouteError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// A local zone or RPZ that cannot be built (a config error: exit 2).
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    /// `[cache.shared]` cannot be set up: an unreadable secret, a URL the
    /// Redis client refuses (a config error: exit 2).
    #[error(transparent)]
    SharedCache(#[from] crate::cache::shared::SharedCacheError),
}

impl StartError {
    /// Whether the config is to blame (exit 2) rather than the system.
    pub fn is_config(&self) -> bool {
        !matches!(self, StartError::Bind { .. })
    }
}

/// A started server.
pub struct Running {
    /// The UDP and TCP addresses actually bound (port 0 resolved).
    pub addrs: Vec<SocketAddr>,
    /// The DNS over TLS addresses bound.
    pub tls_addrs: Vec<SocketAddr>,
    /// The DNS over HTTPS addresses bound.
    pub https_addrs: Vec<SocketAddr>,
    /// What the TLS and HTTPS listeners present; reloaded on SIGHUP.
    certificates: Option<Arc<tls::Certificates>>,
    pub metrics_addr: Option<SocketAddr>,
    pub handler: Arc<Handler>,
    pub config: Arc<ArcSwap<Config>>,
    shutdown_flag: Arc<AtomicBool>,
    /// Tells UDP workers to stop waiting for their resolutions.
    udp_abandon: Arc<AtomicBool>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    udp_threads: Vec<std::thread::JoinHandle<()>>,
    /// `[[rpz]]` zones transferred from a primary.
    transfers: Transfers,
    /// `cache.snapshot_file`: loaded at start, written on shutdown.
    warm: Option<Arc<warm::WarmRestart>>,
}

/// Entry point for the daemon and for in-process tests.
pub struct Server;

impl Server {
    /// Builds cache, resolver and listeners from `config` on the current runtime.
    pub async fn start(config: Config) -> Result<Running, StartError> {
        Self::start_with_clock(config, Clock::system()).await
    }

    pub async fn start_with_clock(config: Config, clock: Clock) -> Result<Running, StartError> {
        let core = Core::build(&config, clock)?;
        let certificates = core.certificates(&config)?;
        let bound = core.listen(&config, certificates.as_ref())?;
        let config = Arc::new(ArcSwap::from_pointee(config));
        let metrics_addr = match config.load().metrics_addr() {
            Some(addr) => Some(
                crate::metrics::http::serve(
                    addr,
                    crate::metrics::http::AppState {
                        cache: core.handler.cache.clone(),
                        resolver: core.handler.resolver.clone(),
                        metrics: core.handler.metrics.clone(),
                        config: config.clone(),
                    },
                    core.shutdown.clone(),
                )
                .await
                .map_err(|source| StartError::Bind {
                    proto: "HTTP",
                    addr,
                    source,
                })?,
            ),
            None => None,
        };
        let transfers = Transfers::new(core.shutdown.clone());
        let warm = warm::WarmRestart::from_config(&config.load(), core.handler.clone());
        if let Some(warm) = &warm {
            warm.spawn(core.shutdown.clone());
        }
        let running = Running {
            warm,
            transfers,
            addrs: bound.plain,
            tls_addrs: bound.tls,
            https_addrs: bound.https,
            certificates,
            metrics_addr,
            handler: core.handler,
            config,
            shutdown_flag: core.udp_stop.stop,
            udp_abandon: core.udp_stop.abandon,
            shutdown: core.shutdown,
            tracker: core.tracker,
            udp_threads: bound.udp_threads,
        };
        let config = running.config.load();
        let policy = running.handler.live.load().policy.clone();
        running
            .handler
            .live
            .store(Arc::new(running.live(&config, policy)));
        running.transfers.reconcile(&config, &running.handler);
        Ok(running)
    }
}

/// What every listener shares: the handler (and through it the cache and
/// resolver), the task tracker and the shutdown signals.
pub struct Core {
    pub handler: Arc<Handler>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    udp_stop: udp::Stop,
}

/// The listeners [`Core::listen`] started.
struct Bound {
    plain: Vec<SocketAddr>,
    tls: Vec<SocketAddr>,
    https: Vec<SocketAddr>,
    udp_threads: Vec<std::thread::JoinHandle<()>>,
}

impl Core {
    /// Cache, resolver and handler from `config`, with no listener yet.
    pub fn build(config: &Config, clock: Clock) -> Result<Core, StartError> {
        let root_hints = if !config.resolver.root_hints_file.is_empty() {
            hints::from_file(std::path::Path::new(&config.resolver.root_hints_file))?
        } else if !config.resolver.root_hints.is_empty() {
            hints::from_addresses(&config.resolver.root_hints)
        } else {
            hints::built_in()
        };
        let routes = Routes::from_config(config)?;
        let policy = Arc::new(Policy::from_config(config)?);
        let metrics = Arc::new(Metrics::new());
        metrics.policy_rules(policy.rpz.iter().map(|z| (&*z.name, z.rules().len())));
        let validation = Validation::from_config(&config.dnssec, clock.clone())?;
        let cache = Arc::new(Cache::new(&config.cache, clock));
        let resolver = Resolver::start(
            config.resolver.clone(),
            cache.clone(),
            root_hints,
            metrics.clone(),
            validation,
            config.server.max_inflight_resolutions,
            config.trace.keep_failures,
        );
        resolver.routes.store(Arc::new(routes));
        if config.cache.shared.enabled() {
            let stale_window = if config.cache.serve_stale {
                config.cache.stale_window_s
            } else {
                0
            };
            // A flush another instance published: the same as an admin's
            // flush here, without publishing it again. Weak, since the
            // tier lives in the cache.
            let (weak_cache, weak_resolver) = (Arc::downgrade(&cache), Arc::downgrade(&resolver));
            let on_flush = Box::new(move |scope: &crate::cache::FlushScope| {
                if let Some(cache) = weak_cache.upgrade() {
                    cache.flush(scope);
                }
                if let Some(resolver) = weak_resolver.upgrade() {
                    resolver.forget_derived();
                }
            });
            let tier = crate::cache::shared::SharedCache::start(
                &config.cache.shared,
                stale_window,
                cache.clock().clone(),
                &metrics.registry,
                on_flush,
            )?;
            cache.set_second_tier(Arc::new(tier));
        }
        let handler = Arc::new(Handler {
            live: ArcSwap::from_pointee(Live::from_config(config, policy)),
            cache,
            resolver,
            metrics,
        });
        Ok(Core {
            handler,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            udp_stop: udp::Stop {
                stop: Arc::new(AtomicBool::new(false)),
                abandon: Arc::new(AtomicBool::new(false)),
            },
        })
    }

    /// The certificate, when a TLS or HTTPS listener needs one.
    fn certificates(&self, config: &Config) -> Result<Option<Arc<tls::Certificates>>, StartError> {
        let s = &config.server;
        if s.listen_tls.is_empty() && s.listen_https.is_empty() {
            return Ok(None);
        }
        let loaded = tls::load(&s.tls)?;
        log_certificate(&s.tls.certificate_file, &loaded);
        Ok(Some(tls::Certificates::new(&loaded)))
    }

    /// Binds and starts every listener `config` names: UDP workers and TCP
    /// on `server.listen`, DNS over TLS on `server.listen_tls`, DNS over
    /// HTTPS on `server.listen_https`.
    fn listen(
        &self,
        config: &Config,
        certificates: Option<&Arc<tls::Certificates>>,
    ) -> Result<Bound, StartError> {
        let threads = config.worker_threads();
        let s = &config.server;
        let limits = listener::ConnectionLimits {
            idle: Duration::from_millis(s.tcp_idle_timeout_ms),
            max_connections: s.tcp_max_connections,
            max_per_client: s.tcp_max_connections_per_client.max(1),
        };
        let mut bound = Bound {
            plain: Vec::new(),
            tls: Vec::new(),
            https: Vec::new(),
            udp_threads: Vec::new(),
        };
        for &want in &s.listen {
            let listen::Bound {
                addr,
                udp: sockets,
                tcp,
            } = listen::bind(want, threads)?;
            for (i, socket) in sockets.into_iter().enumerate() {
                let (h, tr, stop) = (
                    self.handler.clone(),
                    self.tracker.clone(),
                    self.udp_stop.clone(),
                );
                let socket = Arc::new(socket);
                let thread = std::thread::Builder::new()
                    .name(format!("udp-{addr}-{i}"))
                    .spawn(move || udp::serve(socket, h, tr, stop))
                    .map_err(|source| StartError::Bind {
                        proto: "UDP",
                        addr,
                        source,
                    })?;
                bound.udp_threads.push(thread);
            }
            self.spawn(addr, tcp, listener::Service::Tcp, limits)?;
            info!(%addr, threads, "listening on UDP and TCP");
            bound.plain.push(addr);
        }
        let Some(certificates) = certificates else {
            return Ok(bound);
        };
        let dot = tls::Acceptor::new(certificates.clone(), Transport::Tls);
        for &want in &s.listen_tls {
            let addr = self.bind_stream(want, listener::Service::Tls(dot.clone()), limits)?;
            info!(%addr, "listening for DNS over TLS");
            bound.tls.push(addr);
        }
        let doh = tls::Acceptor::new(certificates.clone(), Transport::Https);
        let endpoint = Arc::new(https::Doh {
            path: s.https_path.clone(),
        });
        for &want in &s.listen_https {
            let service = listener::Service::Https(doh.clone(), endpoint.clone());
            let addr = self.bind_stream(want, service, limits)?;
            info!(%addr, path = %s.https_path, "listening for DNS over HTTPS");
            bound.https.push(addr);
        }
        Ok(bound)
    }

    /// Binds a stream listener alone (TLS, HTTPS: no UDP beside it).
    fn bind_stream(
        &self,
        want: SocketAddr,
        service: listener::Service,
        limits: listener::ConnectionLimits,
    ) -> Result<SocketAddr, StartError> {
        let proto = service.transport().as_str();
        let bind_err = |source| StartError::Bind {
            proto,
            addr: want,
            source,
        };
        let tcp = listener::bind(want).map_err(bind_err)?;
        let addr = tcp.local_addr().map_err(bind_err)?;
        self.spawn(addr, tcp, service, limits)?;
        Ok(addr)
    }

    /// The one way a stream listener starts, whatever its transport.
    pub fn spawn(
        &self,
        addr: SocketAddr,
        tcp: std::net::TcpListener,
        service: listener::Service,
        limits: listener::ConnectionLimits,
    ) -> Result<(), StartError> {
        let proto = service.transport().as_str();
        let tcp = tokio::net::TcpListener::from_std(tcp).map_err(|source| StartError::Bind {
            proto,
            addr,
            source,
        })?;
        let cx = stream::Context {
            handler: self.handler.clone(),
            idle: limits.idle,
            tracker: self.tracker.clone(),
            shutdown: self.shutdown.clone(),
        };
        tokio::spawn(listener::serve(tcp, service, limits, cx));
        Ok(())
    }
}

/// Says when the certificate expires, warning in its last 14 days.
fn log_certificate(file: &str, loaded: &tls::Loaded) {
    match loaded.expires {
        Some(e) if e.days_left() < 14 => {
            warn!(file, expires = %e, days_left = e.days_left(), "TLS certificate expires soon")
        }
        Some(e) => info!(file, expires = %e, days_left = e.days_left(), "TLS certificate loaded"),
        None => info!(file, "TLS certificate loaded (its expiry did not parse)"),
    }
}

impl Running {
    /// The first listen address (tests).
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// The live settings of `config`, with the DDR designation of the
    /// encrypted listeners as bound.
    fn live(&self, config: &Config, policy: Arc<Policy>) -> Live {
        let s = &config.server;
        let ports = |addrs: &[SocketAddr]| addrs.iter().map(SocketAddr::port).collect::<Vec<_>>();
        let designation = (!s.tls.name.is_empty())
            .then(|| {
                ddr::Designation::new(
                    &s.tls.name,
                    &ports(&self.tls_addrs),
                    &ports(&self.https_addrs),
                    &s.https_path,
                )
            })
            .flatten();
        Live {
            designation,
            ..Live::from_config(config, policy)
        }
    }

    /// Reads the certificate and key again (certbot renews them in place):
    /// new handshakes present the new one; a certificate that does not
    /// load leaves the old one in force, and is logged and counted.
    fn reload_certificate(&self, config: &Config) {
        let Some(certificates) = &self.certificates else {
            return;
        };
        let metrics = &self.handler.metrics;
        match tls::load(&config.server.tls) {
            Ok(loaded) => {
                certificates.replace(&loaded);
                metrics.certificate_reload("ok");
                log_certificate(&config.server.tls.certificate_file, &loaded);
            }
            Err(e) => {
                metrics.certificate_reload("failed");
                error!(error = %e, "TLS certificate not reloaded; the old one stays in use");
            }
        }
    }

    /// Applies what can change live from a new config; returns the keys
    /// that need a restart to take effect.
    ///
    /// Live: `acl`, `ratelimit`, `server.mode`, `server.shutdown_grace_ms`,
    /// `cache.min_ttl`, `cache.max_ttl`, `cache.negative_max_ttl` (for data
    /// stored from then on), `cache.prefetch`, `cache.stale_answer_ttl`, `cache.client_timeout_ms`,
    /// `metrics.admin_allow`, `[[forward]]`, `[[stub]]`, `server.tls.name`
    /// and the certificate and key files (read again on every reload),
    /// and `log.level`, which the binary applies.
    /// Everything else was copied into the listeners, caches or resolver at
    /// start and is reported here.
    pub fn reload(&self, new: Config) -> Result<Vec<&'static str>, crate::policy::PolicyError> {
        // Local zones and RPZ files first: a bad one refuses the whole
        // reload and the old policy stays.
        let policy = Arc::new(Policy::from_config_after(
            &new,
            Some(&self.handler.live.load().policy),
        )?);
        let old = self.config.load();
        let mut restart = Vec::new();
        let (o, n) = (&old.server, &new.server);
        let (oc, nc) = (&old.cache, &new.cache);
        for (key, changed) in [
            ("server.listen", o.listen != n.listen),
            ("server.threads", o.threads != n.threads),
            ("server.listen_tls", o.listen_tls != n.listen_tls),
            ("server.listen_https", o.listen_https != n.listen_https),
            ("server.https_path", o.https_path != n.https_path),
            (
                "server.tcp_idle_timeout_ms",
                o.tcp_idle_timeout_ms != n.tcp_idle_timeout_ms,
            ),
            (
                "server.tcp_max_connections",
                o.tcp_max_connections != n.tcp_max_connections,
            ),
            (
                "server.tcp_max_connections_per_client",
                o.tcp_max_connections_per_client != n.tcp_max_connections_per_client,
            ),
            (
                "server.max_inflight_resolutions",
                o.max_inflight_resolutions != n.max_inflight_resolutions,
            ),
            ("metrics.listen", old.metrics.listen != new.metrics.listen),
            ("cache.size_mb", oc.size_mb != nc.size_mb),
            // Turning it off is live; on needs the answer cache to have been
            // started keeping expired entries.
            ("cache.serve_stale", !oc.serve_stale && nc.serve_stale),
            (
                "cache.stale_window_s",
                oc.stale_window_s != nc.stale_window_s,
            ),
            // The tier's connection and tasks are made at start.
            ("cache.shared", oc.shared != nc.shared),
            ("resolver", old.resolver != new.resolver),
            ("dnssec", old.dnssec != new.dnssec),
        ] {
            if changed {
                restart.push(key);
            }
        }
        if new.forward != old.forward || new.stub != old.stub {
            match Routes::from_config(&new) {
                Ok(routes) => {
                    let resolver = &self.handler.resolver;
                    let old_routes = resolver.routes.swap(Arc::new(routes));
                    // What was learnt under a zone whose servers changed
                    // came from the old servers (or the tree's NXDOMAIN
                    // for a private name): ask again (Unbound flushes its
                    // whole cache on reload).
                    for zone in old_routes
                        .zones()
                        .iter()
                        .chain(resolver.routes.load().zones())
                    {
                        self.handler.cache.flush_name(&zone.zone, true);
                    }
                    resolver.forget_derived();
                }
                Err(e) => {
                    warn!(error = %e, "[[forward]]/[[stub]] not reloaded; the old zones stay in force");
                    restart.push("forward");
                }
            }
        }
        self.handler.cache.policy().set(&new.cache);
        self.reload_certificate(&new);
        self.handler
            .metrics
            .policy_rules(policy.rpz.iter().map(|z| (&*z.name, z.rules().len())));
        self.handler.live.store(Arc::new(self.live(&new, policy)));
        self.transfers.reconcile(&new, &self.handler);
        self.config.store(Arc::new(new));
        Ok(restart)
    }

    /// Stops accepting, lets in-flight queries finish for up to `grace`.
    pub async fn shutdown(self, grace: Duration) {
        self.shutdown_flag.store(true, Ordering::Relaxed);
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            warn!(
                pending = self.tracker.len(),
                "shutdown deadline passed with queries in flight"
            );
        }
        self.udp_abandon.store(true, Ordering::Relaxed);
        for t in self.udp_threads {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        // After the last answers: the snapshot holds what they taught.
        if let Some(warm) = self.warm {
            let _ = tokio::task::spawn_blocking(move || warm.write()).await;
        }
    }
}
