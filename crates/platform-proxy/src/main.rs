//! `platform-proxy`: an identity-aware, multi-tenant app gateway.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use platform_proxy::config::{Config, LogFormat};
use platform_proxy::{app, demo, runtime};

#[derive(Debug, Parser)]
#[command(
    name = "platform-proxy",
    version,
    about = "Identity-aware, multi-tenant app gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct ConfigArg {
    /// TOML config file; every key can be overridden by PLATFORM_PROXY_… variables.
    #[arg(long, short, env = "PLATFORM_PROXY_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy.
    Serve(ConfigArg),
    /// Run a self-contained demo: embedded store, a dev identity provider and launch page, a demo app, two routes.
    Demo(demo::DemoArgs),
    /// Apply store migrations and exit.
    Migrate(ConfigArg),
    /// Validate the configuration (including certificates) and exit.
    CheckConfig(ConfigArg),
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // `serve` sizes the runtime from its config, so that is read first.
    let (command, workers) = match cli.command {
        Command::Serve(a) => match Config::load(a.config.as_deref()) {
            Ok(config) => {
                let workers = config.workers;
                (Run::Serve(Box::new(config)), workers)
            }
            Err(e) => return fail(&e),
        },
        Command::Demo(a) => (Run::Demo(a), 0),
        Command::Migrate(a) => (Run::Migrate(a), 0),
        Command::CheckConfig(a) => (Run::CheckConfig(a), 0),
    };
    let rt = match runtime::build(workers) {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("starting the runtime: {e}")),
    };
    match rt.block_on(run(command)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => fail(&format!("{e:#}")),
    }
}

fn fail(e: &dyn std::fmt::Display) -> std::process::ExitCode {
    eprintln!("platform-proxy: {e}");
    std::process::ExitCode::FAILURE
}

/// A command, with what it needs read before the runtime starts.
enum Run {
    Serve(Box<Config>),
    Demo(demo::DemoArgs),
    Migrate(ConfigArg),
    CheckConfig(ConfigArg),
}

async fn run(command: Run) -> anyhow::Result<()> {
    match command {
        Run::Serve(config) => {
            init_logging(config.log_format, &config.log_level);
            let running = app::start(&config).await?;
            let shutdown = running.shutdown.clone();
            tokio::spawn(async move {
                wait_for_signal().await;
                tracing::info!("signal received: shutting down");
                shutdown.cancel();
            });
            running.wait().await;
            Ok(())
        }
        Run::Demo(args) => {
            init_logging(LogFormat::Text, "warn");
            demo::run(args, wait_for_signal()).await
        }
        Run::Migrate(a) => {
            let config = Config::load(a.config.as_deref())?;
            init_logging(config.log_format, &config.log_level);
            pp_store::open_with(&config.store_url, config.store)
                .await
                .with_context(|| format!("migrating {}", config.store_url))?;
            println!("migrations applied to {}", config.store_url);
            Ok(())
        }
        Run::CheckConfig(a) => {
            let config = Config::load(a.config.as_deref())?;
            if !config.certificates.is_empty() {
                pp_dataplane::tls::server_config(&config.certificates)?;
            }
            println!("config ok");
            Ok(())
        }
    }
}

/// SIGTERM or SIGINT (Ctrl-C).
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
