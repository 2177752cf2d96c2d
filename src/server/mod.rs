//! The client-facing side.
//!
//! ```text
//!  UDP socket ×threads (SO_REUSEPORT) ─┐
//!                                      ├─► Handler::fast ──► answer cache hit ──► reply
//!  TCP listener ──► connection ────────┘        │ miss
//!                                               ▼
//!                                   Handler::slow (a task on the UDP worker's
//!                                   own event loop, or on the shared runtime for TCP)
//!                                     ├─ recursive: resolve::Resolver
//!                                     └─ referral mode: crate::resolve::referral
//! ```
//!
//! [`Server::start`] binds everything and returns a [`Running`] handle that
//! reloads live settings and shuts down with a drain deadline.

pub mod acl;
mod batch;
pub mod handler;
mod listen;
pub mod ratelimit;
pub mod tcp;
mod transfers;
pub mod udp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

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
    /// A local zone or RPZ that cannot be built (a config error: exit 2).
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
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
}

/// Entry point for the daemon and for in-process tests.
pub struct Server;

impl Server {
    /// Builds cache, resolver and listeners from `config` on the current runtime.
    pub async fn start(config: Config) -> Result<Running, StartError> {
        Self::start_with_clock(config, Clock::system()).await
    }

    pub async fn start_with_clock(config: Config, clock: Clock) -> Result<Running, StartError> {
        let root_hints = if !config.resolver.root_hints_file.is_empty() {
            hints::from_file(std::path::Path::new(&config.resolver.root_hints_file))?
        } else if !config.resolver.root_hints.is_empty() {
            hints::from_addresses(&config.resolver.root_hints)
        } else {
            hints::built_in()
        };
        let routes = Routes::from_config(&config)?;
        let policy = Arc::new(Policy::from_config(&config)?);
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
        let handler = Arc::new(Handler {
            live: ArcSwap::from_pointee(Live::from_config(&config, policy)),
            cache,
            resolver,
            metrics,
        });
        let shutdown = CancellationToken::new();
        let transfers = Transfers::new(shutdown.clone());
        transfers.reconcile(&config, &handler);
        let shutdown_flag = Arc::new(AtomicBool::new(false));
        let tracker = TaskTracker::new();
        let threads = config.worker_threads();
        let udp_stop = udp::Stop {
            stop: shutdown_flag.clone(),
            abandon: Arc::new(AtomicBool::new(false)),
        };
        let mut addrs = Vec::new();
        let mut udp_threads = Vec::new();
        for &want in &config.server.listen {
            let bind_err = |proto, source| StartError::Bind {
                proto,
                addr: want,
                source,
            };
            let listen::Bound {
                addr,
                udp: sockets,
                tcp: listener,
            } = listen::bind(want, threads)?;
            let listener =
                tokio::net::TcpListener::from_std(listener).map_err(|e| bind_err("TCP", e))?;
            for (i, socket) in sockets.into_iter().enumerate() {
                let (h, tr, stop) = (handler.clone(), tracker.clone(), udp_stop.clone());
                let socket = Arc::new(socket);
                let thread = std::thread::Builder::new()
                    .name(format!("udp-{addr}-{i}"))
                    .spawn(move || udp::serve(socket, h, tr, stop))
                    .map_err(|e| bind_err("UDP", e))?;
                udp_threads.push(thread);
            }
            let limits = tcp::TcpLimits {
                idle: Duration::from_millis(config.server.tcp_idle_timeout_ms),
                max_connections: config.server.tcp_max_connections,
                max_per_client: config.server.tcp_max_connections_per_client.max(1),
            };
            tokio::spawn(tcp::serve(
                listener,
                handler.clone(),
                limits,
                tracker.clone(),
                shutdown.clone(),
            ));
            info!(%addr, threads, "listening on UDP and TCP");
            addrs.push(addr);
        }
        let config = Arc::new(ArcSwap::from_pointee(config));
        let metrics_addr = match config.load().metrics_addr() {
            Some(addr) => Some(
                crate::metrics::http::serve(
                    addr,
                    crate::metrics::http::AppState {
                        cache: handler.cache.clone(),
                        resolver: handler.resolver.clone(),
                        metrics: handler.metrics.clone(),
                        config: config.clone(),
                    },
                    shutdown.clone(),
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
        Ok(Running {
            addrs,
            metrics_addr,
            handler,
            config,
            shutdown_flag,
            udp_abandon: udp_stop.abandon,
            shutdown,
            tracker,
            udp_threads,
            transfers,
        })
    }
}

impl Running {
    /// The first listen address (tests).
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Applies what can change live from a new config; returns the keys
    /// that need a restart to take effect.
    ///
    /// The policy is built first, every RPZ file read again (a file
    /// changed on disk is re-read even when the config text is the same);
    /// when it cannot be built, nothing is applied and the error says why:
    /// the old config and policy stay in force.
    ///
    /// Live: `acl`, `ratelimit`, `server.mode`, `server.shutdown_grace_ms`,
    /// `cache.min_ttl`, `cache.max_ttl`, `cache.negative_max_ttl` (for data
    /// stored from then on), `cache.prefetch`, `cache.stale_answer_ttl`, `cache.client_timeout_ms`,
    /// `metrics.admin_allow`, `[[forward]]`, `[[stub]]` (and `log.level`,
    /// which the binary applies).
    /// Everything else was copied into the listeners, caches or resolver at
    /// start and is reported here.
    pub fn reload(&self, new: Config) -> Result<Vec<&'static str>, crate::policy::PolicyError> {
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
        self.handler.cache.policy.set(&new.cache);
        self.handler
            .metrics
            .policy_rules(policy.rpz.iter().map(|z| (&*z.name, z.rules().len())));
        self.handler
            .live
            .store(Arc::new(Live::from_config(&new, policy)));
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
    }
}
