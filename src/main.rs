//! The taproot daemon: parse the command line, load the config, run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tracing::{error, info, warn};

use taproot::config::{
    Config, ConfigError, LogFormat, LogOverrides, MetricsOverrides, Mode, Overrides, ResolverOverrides,
    ServerOverrides,
};
use taproot::server::Server;

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
    CheckConfig,
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    match s {
        "recursive" => Ok(Mode::Recursive),
        "iterative" => Ok(Mode::Iterative),
        _ => Err(format!("{s:?} is not \"recursive\" or \"iterative\"")),
    }
}

/// Exit codes: 0 clean stop, 1 runtime failure, 2 bad config (like Routinator).
enum ExitError {
    Config(ConfigError),
    Runtime(String),
}

impl Cli {
    fn overrides(&self) -> Overrides {
        let server = (!self.listen.is_empty() || self.mode.is_some() || self.threads.is_some()).then(|| {
            ServerOverrides {
                listen: (!self.listen.is_empty()).then(|| self.listen.clone()),
                mode: self.mode,
                threads: self.threads,
            }
        });
        let resolver = (self.root_hints_file.is_some() || self.upstream_port.is_some()).then(|| ResolverOverrides {
            root_hints_file: self.root_hints_file.clone(),
            upstream_port: self.upstream_port,
        });
        Overrides {
            server,
            resolver,
            metrics: self.metrics_listen.clone().map(|l| MetricsOverrides { listen: Some(l) }),
            log: self.log_level.clone().map(|l| LogOverrides { level: Some(l) }),
        }
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
        Err(ExitError::Runtime(e)) => {
            eprintln!("taproot: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<(), ExitError> {
    let config = Config::load(cli.config.as_deref(), &cli.overrides()).map_err(ExitError::Config)?;
    match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig => {
            print!("{}", config.to_toml());
            eprintln!("taproot: config OK");
            Ok(())
        }
        Command::Run => {
            init_logging(&config);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(config.worker_threads())
                .enable_all()
                .build()
                .map_err(|e| ExitError::Runtime(format!("cannot start the async runtime: {e}")))?;
            runtime.block_on(serve(config, cli.config))
        }
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn serve(config: Config, config_path: Option<PathBuf>) -> Result<(), ExitError> {
    use tokio::signal::unix::{SignalKind, signal};
    let grace = Duration::from_millis(config.server.shutdown_grace_ms);
    let cli_overrides = Cli::parse().overrides();
    let running = Server::start(config)
        .await
        .map_err(|e| ExitError::Runtime(e.to_string()))?;
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    info!(version = env!("CARGO_PKG_VERSION"), "taproot ready");
    let sig = |kind| signal(kind).map_err(|e| ExitError::Runtime(format!("cannot install signal handler: {e}")));
    let mut term = sig(SignalKind::terminate())?;
    let mut int = sig(SignalKind::interrupt())?;
    let mut hup = sig(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Reloading]);
                match Config::load(config_path.as_deref(), &cli_overrides) {
                    Ok(new) => {
                        let restart = running.reload(new);
                        if restart.is_empty() {
                            info!("config reloaded");
                        } else {
                            warn!(keys = ?restart, "config reloaded; these keys need a restart to take effect");
                        }
                    }
                    Err(e) => error!(error = %e, "reload refused; the old config stays in force"),
                }
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
            }
        }
    }
    info!("stopping: draining in-flight queries");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    running.shutdown(grace).await;
    info!("stopped");
    Ok(())
}
