//! The taproot daemon: parse the command line, load the config, run.
//!
//! Under systemd (`Type=notify`, see `deploy/taproot.service`) the daemon
//! tells the service manager what it is doing through sd_notify(3):
//!
//! ```text
//!  start ─► bind every UDP, TCP and HTTP listener ─► READY=1
//!  SIGHUP ─► RELOADING=1 + MONOTONIC_USEC ─► re-read file and environment ─► READY=1
//!  SIGTERM / SIGINT ─► STOPPING=1 ─► drain in-flight queries ─► exit 0
//! ```
//!
//! Without `NOTIFY_SOCKET` in the environment the notifications are no-ops,
//! so the same binary runs in a shell, a container or under systemd.
//!
//! The operator commands (`taproot trace`, `taproot cache flush|stats`) load
//! the same config and talk to the running daemon's admin listener
//! (`metrics.listen`) through [`taproot::control`].

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, Parser, Subcommand};
use sd_notify::NotifyState;
use tracing::{debug, error, info, warn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

use taproot::config::{
    Config, ConfigError, LogFormat, LogOverrides, MetricsOverrides, Mode, Overrides,
    ResolverOverrides, ServerOverrides,
};
use taproot::control::{AdminEndpoint, ListenOrigin, Request, TraceCache};
use taproot::server::{Running, Server};
use taproot::trace::Format;

/// glibc's malloc gives each thread that allocates its own 64 MiB arena and
/// returns little of it: with the UDP workers, the async runtime's threads
/// and the resolutions they run, RSS grew about 2 KiB per cached name beyond
/// the live heap (heaptrack, 50k names). mimalloc's per-thread pages are
/// small and shared back, so RSS follows what the cache holds.
///
/// mimalloc 2.x, not 3.x (the crate's `v2` feature): under churn (900,000
/// cold names through a 16 MiB cache, 200 outstanding, two threads) 3.x
/// kept RSS 16-20 MiB over idle and 2.x 13-14 MiB, with the same cold CPU
/// per name; 3.x abandons and reclaims pages between threads far more
/// (its stats showed 647,000 abandonments in 32 s), and the pages that
/// cache entries pin stay resident.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A caching recursive DNS resolver.
#[derive(Parser, Debug)]
#[command(name = "taproot", version, about)]
struct Cli {
    /// Config file (TOML). Default: /etc/taproot/taproot.toml when it exists.
    #[arg(short, long, global = true)]
    config: Option<PathBuf>,
    /// Listen address for UDP and TCP; repeat for several (overrides server.listen).
    #[arg(long, global = true)]
    listen: Vec<String>,
    /// Listen address for DNS over TLS; repeat for several (overrides server.listen_tls).
    #[arg(long, global = true)]
    listen_tls: Vec<String>,
    /// Listen address for DNS over HTTPS; repeat for several (overrides server.listen_https).
    #[arg(long, global = true)]
    listen_https: Vec<String>,
    /// recursive or iterative (overrides server.mode).
    #[arg(long, global = true, value_parser = parse_mode)]
    mode: Option<Mode>,
    /// Worker threads, 0 = one per core (overrides server.threads).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// named.root-format file (overrides resolver.root_hints_file).
    #[arg(long, global = true)]
    root_hints_file: Option<String>,
    /// Port of upstream servers (overrides resolver.upstream_port).
    #[arg(long, global = true)]
    upstream_port: Option<u16>,
    /// Metrics listen address, "" to disable (overrides metrics.listen).
    #[arg(long, global = true)]
    metrics_listen: Option<String>,
    /// Log level or tracing filter (overrides log.level).
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the resolver (the default).
    Run,
    /// Validate the config and print the effective result.
    CheckConfig {
        /// Print nothing on success (for `ExecReload=` and scripts).
        #[arg(short, long)]
        quiet: bool,
    },
    /// Resolve a question in the running daemon and show each step it took.
    Trace(TraceArgs),
    /// Flush or inspect the running daemon's cache.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
}

/// `taproot trace NAME [TYPE]` or `taproot trace --recent`.
#[derive(Args, Debug)]
struct TraceArgs {
    /// The name to resolve.
    #[arg(required_unless_present = "recent", value_parser = NonEmptyStringValueParser::new())]
    name: Option<String>,
    /// The record type.
    #[arg(value_name = "TYPE", default_value = "A")]
    qtype: String,
    /// Show the traces of recent failures the daemon kept, instead.
    #[arg(long, conflicts_with_all = ["name", "qtype", "cache"])]
    recent: bool,
    /// text, json, mermaid, svg or html.
    #[arg(long, default_value = "text", value_parser = parse_format)]
    format: Format,
    /// use: answer from the cache when it can; bypass: walk the whole path.
    #[arg(long, default_value = "bypass", value_parser = parse_trace_cache)]
    cache: TraceCache,
}

#[derive(Subcommand, Debug)]
enum CacheCommand {
    /// Forget NAME (with --subtree, everything under it too), or everything.
    Flush {
        /// The name to forget; without it the whole cache is flushed.
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        name: Option<String>,
        /// Flush every name at or below NAME.
        #[arg(long, requires = "name")]
        subtree: bool,
    },
    /// Print entries, hits, misses and evictions per cache, as JSON.
    Stats,
}

impl TraceArgs {
    fn request(self) -> Request {
        match self.name {
            Some(name) if !self.recent => Request::Trace {
                name,
                qtype: self.qtype,
                format: self.format,
                cache: self.cache,
            },
            _ => Request::RecentTraces {
                format: self.format,
            },
        }
    }
}

impl CacheCommand {
    fn request(self) -> Request {
        match self {
            CacheCommand::Flush { name, subtree } => Request::Flush { name, subtree },
            CacheCommand::Stats => Request::Stats,
        }
    }
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    match s {
        "recursive" => Ok(Mode::Recursive),
        "iterative" => Ok(Mode::Iterative),
        _ => Err(format!("{s:?} is not \"recursive\" or \"iterative\"")),
    }
}

fn parse_format(s: &str) -> Result<Format, String> {
    Format::parse(s).ok_or_else(|| format!("{s:?} is not text, json, mermaid, svg or html"))
}

fn parse_trace_cache(s: &str) -> Result<TraceCache, String> {
    TraceCache::parse(s).ok_or_else(|| format!("{s:?} is not \"use\" or \"bypass\""))
}

/// Exit codes: 0 clean stop, 1 runtime failure, 2 bad config (like Routinator).
enum ExitError {
    Config(ConfigError),
    /// A config that loads but names a file or value that cannot be used
    /// (root hints, trust anchors, a forwarder's CA file): exit 2 as well.
    Unusable(String),
    Runtime(String),
}

impl Cli {
    fn overrides(&self) -> Overrides {
        let server = (!self.listen.is_empty()
            || !self.listen_tls.is_empty()
            || !self.listen_https.is_empty()
            || self.mode.is_some()
            || self.threads.is_some())
        .then(|| ServerOverrides {
            listen: (!self.listen.is_empty()).then(|| self.listen.clone()),
            mode: self.mode,
            threads: self.threads,
            listen_tls: (!self.listen_tls.is_empty()).then(|| self.listen_tls.clone()),
            listen_https: (!self.listen_https.is_empty()).then(|| self.listen_https.clone()),
        });
        let resolver =
            (self.root_hints_file.is_some() || self.upstream_port.is_some()).then(|| {
                ResolverOverrides {
                    root_hints_file: self.root_hints_file.clone(),
                    upstream_port: self.upstream_port,
                }
            });
        Overrides {
            server,
            resolver,
            metrics: self
                .metrics_listen
                .clone()
                .map(|l| MetricsOverrides { listen: Some(l) }),
            log: self
                .log_level
                .clone()
                .map(|l| LogOverrides { level: Some(l) }),
        }
    }
}

/// Where the config comes from, kept so that SIGHUP re-reads the same
/// sources: the same file, the environment, the same command-line flags.
struct ConfigSource {
    file: Option<PathBuf>,
    overrides: Overrides,
}

impl ConfigSource {
    fn load(&self) -> Result<Config, ConfigError> {
        Config::load(self.file.as_deref(), &self.overrides)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(ExitError::Config(e)) => {
            eprintln!("taproot: config error: {e}");
            ExitCode::from(2)
        }
        Err(ExitError::Unusable(e)) => {
            eprintln!("taproot: config error: {e}");
            ExitCode::from(2)
        }
        Err(ExitError::Runtime(e)) => {
            eprintln!("taproot: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<(), ExitError> {
    let listen_origin = ListenOrigin::find(cli.config.as_deref(), cli.metrics_listen.is_some());
    let source = ConfigSource {
        overrides: cli.overrides(),
        file: cli.config,
    };
    let config = source.load().map_err(ExitError::Config)?;
    match cli.command.unwrap_or(Command::Run) {
        Command::Trace(args) => operate(&config, listen_origin, &args.request()),
        Command::Cache { command } => operate(&config, listen_origin, &command.request()),
        Command::CheckConfig { quiet } => {
            // What only start-up reads: a forwarder's CA file.
            taproot::resolve::route::Routes::from_config(&config)
                .map_err(|e| ExitError::Unusable(e.to_string()))?;
            // Local zones and RPZ files are checked as a start would build them.
            taproot::policy::Policy::from_config(&config)
                .map_err(|e| ExitError::Config(e.into()))?;
            let certificate = check_certificate(&config)?;
            if !quiet {
                if let Some(line) = certificate {
                    eprintln!("taproot: {line}");
                }
                print!("{}", config.to_toml());
                eprintln!("taproot: config OK");
            }
            Ok(())
        }
        Command::Run => {
            let log = LogControl::init(&config);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(config.worker_threads())
                .enable_all()
                .build()
                .map_err(|e| ExitError::Runtime(format!("cannot start the async runtime: {e}")))?;
            runtime.block_on(serve(config, source, log))
        }
    }
}

/// `check-config`: the certificate of the TLS and HTTPS listeners loads
/// (exit 2 naming the key and file when not), and when it expires.
fn check_certificate(config: &Config) -> Result<Option<String>, ExitError> {
    let s = &config.server;
    if s.listen_tls.is_empty() && s.listen_https.is_empty() {
        return Ok(None);
    }
    let loaded =
        taproot::server::tls::load(&s.tls).map_err(|e| ExitError::Unusable(e.to_string()))?;
    Ok(Some(match loaded.expires {
        Some(e) if e.days_left() < 0 => {
            format!("TLS certificate {} expired on {e}", s.tls.certificate_file)
        }
        Some(e) => format!(
            "TLS certificate {} expires {e} (in {} days)",
            s.tls.certificate_file,
            e.days_left()
        ),
        None => format!(
            "TLS certificate {} loads; its expiry date did not parse",
            s.tls.certificate_file
        ),
    }))
}

/// An operator command: one request to the running daemon's admin listener,
/// its reply on stdout. Every failure is one line and exit status 1.
fn operate(config: &Config, origin: ListenOrigin, request: &Request) -> Result<(), ExitError> {
    let endpoint = AdminEndpoint::from_config(&config.metrics, origin)
        .map_err(|e| ExitError::Runtime(e.to_string()))?;
    let reply = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ExitError::Runtime(format!("cannot start the async runtime: {e}")))?
        .block_on(endpoint.send(request))
        .map_err(|e| ExitError::Runtime(e.to_string()))?;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&reply).and_then(|()| stdout.flush()) {
        // `taproot trace … | head`: the reader has what it wanted.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(ExitError::Runtime(format!(
            "cannot write the reply to stdout: {e}"
        ))),
        Ok(()) => Ok(()),
    }
}

/// The log subscriber and the handle that swaps its filter on reload.
struct LogControl {
    filter: reload::Handle<EnvFilter, Registry>,
}

impl LogControl {
    /// Logs to stderr: journald collects it under systemd. There the
    /// journal stamps each line itself and shows no colours, so neither is
    /// written when `JOURNAL_STREAM` says stderr is the journal.
    fn init(config: &Config) -> LogControl {
        let filter =
            EnvFilter::try_new(&config.log.level).unwrap_or_else(|_| EnvFilter::new("info"));
        let (filter, handle) = reload::Layer::new(filter);
        let journal = std::env::var_os("JOURNAL_STREAM").is_some();
        let ansi = !journal && std::io::stderr().is_terminal();
        let registry = tracing_subscriber::registry().with(filter);
        let fmt = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi);
        match (config.log.format, journal) {
            (LogFormat::Json, _) => registry.with(fmt.json()).init(),
            (LogFormat::Text, true) => registry.with(fmt.without_time()).init(),
            (LogFormat::Text, false) => registry.with(fmt).init(),
        }
        LogControl { filter: handle }
    }

    /// Applies a new `log.level`; it was validated with the rest of the config.
    fn set_level(&self, level: &str) -> Result<(), String> {
        let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
        self.filter.reload(filter).map_err(|e| e.to_string())
    }
}

/// Sends sd_notify(3) states; without `NOTIFY_SOCKET` this does nothing.
fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        warn!(error = %e, "cannot notify the service manager");
    }
}

async fn serve(config: Config, source: ConfigSource, log: LogControl) -> Result<(), ExitError> {
    use tokio::signal::unix::{SignalKind, signal};
    // Install the handlers before READY=1, so that a SIGHUP or SIGTERM sent
    // as soon as the service manager sees it is never the default action.
    let sig = |kind| {
        signal(kind).map_err(|e| ExitError::Runtime(format!("cannot install signal handler: {e}")))
    };
    let mut term = sig(SignalKind::terminate())?;
    let mut int = sig(SignalKind::interrupt())?;
    let mut hup = sig(SignalKind::hangup())?;
    let running = Server::start(config).await.map_err(|e| match e {
        // A local zone or RPZ file that cannot be built is a config error.
        taproot::server::StartError::Policy(e) => ExitError::Config(e.into()),
        e if e.is_config() => ExitError::Unusable(e.to_string()),
        e => ExitError::Runtime(e.to_string()),
    })?;
    let status = serving_status(&running);
    notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
    info!(version = env!("CARGO_PKG_VERSION"), listen = ?running.addrs, "taproot ready");
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => reload(&running, &source, &log),
        }
    }
    info!("stopping: draining in-flight queries");
    notify(&[
        NotifyState::Stopping,
        NotifyState::Status("draining in-flight queries"),
    ]);
    // Read now, not at start: the grace period is one of the live settings.
    let grace = Duration::from_millis(running.config.load().server.shutdown_grace_ms);
    running.shutdown(grace).await;
    info!("stopped");
    Ok(())
}

/// SIGHUP: re-read the config and apply what can change live. A config that
/// does not load is refused as a whole and the running one stays in force.
fn reload(running: &Running, source: &ConfigSource, log: &LogControl) {
    // sd_notify(3): RELOADING=1 carries the monotonic time it started at.
    let mut states = vec![NotifyState::Reloading];
    match NotifyState::monotonic_usec_now() {
        Ok(now) => states.push(now),
        Err(e) => debug!(error = %e, "cannot read the monotonic clock"),
    }
    notify(&states);
    let status = match source.load() {
        Ok(new) => {
            let new_level = new.log.level.clone();
            let old = running.config.load_full();
            let mut restart = Vec::new();
            if new.log.format != old.log.format {
                restart.push("log.format");
            }
            let level_changed = new.log.level != old.log.level;
            match running.reload(new) {
                Ok(keys) => {
                    if level_changed && let Err(e) = log.set_level(&new_level) {
                        error!(error = %e, level = %new_level, "cannot apply the new log level");
                    }
                    restart.extend(keys);
                    if restart.is_empty() {
                        info!("config reloaded");
                    } else {
                        warn!(
                            keys = ?restart,
                            "config reloaded; these keys keep their old value until a restart"
                        );
                    }
                    serving_status(running)
                }
                Err(e) => {
                    error!(error = %e, "reload refused; the old config and policy stay in force");
                    format!("reload refused, old config in force: {e}").replace('\n', " ")
                }
            }
        }
        Err(e) => {
            error!(error = %e, "reload refused; the old config stays in force");
            // One line: sd_notify(3) separates its fields with newlines.
            format!("reload refused, old config in force: {e}").replace('\n', " ")
        }
    };
    notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// The one-line status `systemctl status taproot` shows.
fn serving_status(running: &Running) -> String {
    let list = |addrs: &[std::net::SocketAddr]| {
        addrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut status = format!("serving DNS on {}", list(&running.addrs));
    if !running.tls_addrs.is_empty() {
        status.push_str(&format!("; DNS over TLS on {}", list(&running.tls_addrs)));
    }
    if !running.https_addrs.is_empty() {
        status.push_str(&format!(
            "; DNS over HTTPS on {}",
            list(&running.https_addrs)
        ));
    }
    status
}
