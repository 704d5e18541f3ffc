//! `midged`, the Midge MQTT 3.1.1 broker: the `midge-server` broker on
//! tokio, with a command line, a TOML configuration file, logging, signal
//! handling and exit codes around it.
//!
//! What it deliberately does not do: any protocol or routing work (the
//! sans-IO cores and `midge-server` do it all), persistence (the durable
//! store comes later), TLS or WebSocket listeners (not built yet).
//!
//! Key types: [`cli::Args`] (the flags), [`config::FileConfig`] (the file)
//! and [`config::Settings`] (the two merged).
//!
//! Exit codes: 0 after a clean shutdown on SIGINT or SIGTERM; 1 when the
//! broker cannot run (a port in use, for example); 2 for a bad command line
//! or configuration file.
#![forbid(unsafe_code)]

mod cli;
mod config;
mod units;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use midge_tokio::{Runtime, Server, TokioRuntime};
use tracing_subscriber::EnvFilter;

use crate::cli::Args;
use crate::config::{FileConfig, LogLevel, Overrides, Settings};

/// Exit code when the broker cannot run.
const EXIT_RUNTIME: u8 = 1;
/// Exit code for a bad command line or configuration file (clap's too).
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    // clap prints help or a usage error itself and exits with 0 or 2.
    let args = Args::parse();
    let file = match &args.config {
        Some(path) => match config::load(path) {
            Ok(file) => file,
            Err(e) => {
                eprintln!("midged: bad configuration: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
        None => FileConfig::default(),
    };
    let overrides = Overrides {
        port: args.port,
        bind: args.bind.clone(),
    };
    let settings = Settings::resolve(file, &overrides);
    init_logging(args.log_level(), settings.log_level);

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    match runtime.block_on(serve(&settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            eprintln!("midged: {message}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// Logs go to stderr. The level: `-v`/`-q` if given, else `RUST_LOG` if
/// set, else the file's `log_level` (default info).
fn init_logging(flag: Option<LogLevel>, file: LogLevel) {
    let filter = match flag {
        Some(level) => EnvFilter::new(level.directive()),
        None => {
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(file.directive()))
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// The addresses, comma-separated, for messages.
fn list(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Binds, serves until SIGINT or SIGTERM, then shuts down gracefully.
async fn serve(settings: &Settings) -> Result<(), String> {
    let rt = TokioRuntime::current();
    let options = settings.server_options();
    let shards = options.shard_count();
    let server = Server::bind(rt.clone(), options)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", list(&settings.listeners)))?;
    for addr in server.local_addrs() {
        // Tests and scripts read this line to learn a port chosen with -p 0.
        tracing::info!("listening on {addr}");
    }
    tracing::info!(shards, "midged {} ready", env!("CARGO_PKG_VERSION"));
    let handle = server.handle();
    let run = server.run();
    tokio::pin!(run);
    tokio::select! {
        () = shutdown_signal() => {
            tracing::info!("shutting down");
            handle.shutdown();
        }
        result = &mut run => {
            // The server stopped by itself.
            return result.map_err(|e| format!("server failed: {e}"));
        }
    }
    run.await
        .map_err(|e| format!("server failed while stopping: {e}"))?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
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
