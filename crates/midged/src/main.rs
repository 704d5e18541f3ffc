//! `midged`, the Midge MQTT 3.1.1 broker: the `midge-server` broker on
//! tokio, with a command line, a TOML configuration file, logging, signal
//! handling and exit codes around it. The `[auth]` table adds a password
//! file and an ACL file (module `auth`), re-read on SIGHUP.
//!
//! What it deliberately does not do: any protocol or routing work (the
//! sans-IO cores and `midge-server` do it all), persistence (the durable
//! store comes later). TLS, WebSocket and WebSocket over TLS listeners come
//! from the `[tls]` and `[websocket]` tables (module `transport`); SIGHUP
//! also reloads the `[tls]` certificate files.
//!
//! Key types: [`cli::Args`] (the flags), [`config::FileConfig`] (the file)
//! and [`config::Settings`] (the two merged).
//!
//! Exit codes: 0 after a clean shutdown on SIGINT or SIGTERM; 1 when the
//! broker cannot run (a port in use, for example); 2 for a bad command line
//! or configuration file.
#![forbid(unsafe_code)]

mod auth;
mod cli;
mod config;
mod metrics;
mod sn;
mod store;
mod transport;
mod units;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use clap::Parser;
use midge_server::Server;
use midge_tokio::{Runtime, TokioRuntime};
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
    let sn_flags = sn::SnFlags {
        port: args.sn_port,
        bind: args.sn_bind,
        predefined: args.sn_predefined.clone(),
    };
    let sn_settings = match sn::SnSettings::resolve(file.sn.clone(), &sn_flags) {
        Ok(sn) => sn,
        Err(message) => {
            eprintln!("midged: bad configuration: {message}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let transports = match transport::listeners(&file.tls, file.websocket.as_ref()) {
        Ok(transports) => transports,
        Err(message) => {
            eprintln!("midged: bad configuration: {message}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let mut settings = Settings::resolve(file, &overrides);
    if let Some(addr) = args.metrics {
        settings.metrics_listen = Some(addr);
    }
    args.apply_persistence(&mut settings.persistence);
    init_logging(args.log_level(), settings.log_level);
    // Plain WebSocket carries passwords in clear just as plain TCP does.
    let mut plain = settings.listeners.clone();
    plain.extend(transport::plain_addrs(&transports));
    let auth = match settings
        .auth
        .check_listeners(&plain)
        .and_then(|()| settings.auth.load())
    {
        Ok(rules) => auth::SharedAuth::new(rules),
        Err(message) => {
            eprintln!("midged: bad configuration: {message}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };

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
    match runtime.block_on(serve(&settings, transports, sn_settings.as_ref(), auth)) {
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
async fn serve(
    settings: &Settings,
    transports: Vec<midge_server::Listener>,
    sn_settings: Option<&sn::SnSettings>,
    auth: auth::SharedAuth,
) -> Result<(), String> {
    let rt = TokioRuntime::current();
    // First of all, so SIGINT and SIGTERM never kill a starting broker.
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut options = settings.server_options();
    let kinds: Vec<&'static str> = transports
        .iter()
        .map(|l| transport::kind_name(&l.kind))
        .collect();
    options.transports = transports;
    let mut shards = options.shard_count();
    if settings.persistence.mode == store::Mode::Durable {
        shards = store::shard_count(&settings.persistence.data_dir, shards)?;
        options.shards = usize::try_from(shards).unwrap_or(usize::MAX);
    }
    let (stores, recoveries) = settings.persistence.open(shards)?;
    options.store_recoveries = recoveries;
    if settings.persistence.mode == store::Mode::Durable {
        tracing::info!(
            data_dir = %settings.persistence.data_dir.display(),
            fsync = ?settings.persistence.fsync,
            fsync_interval = ?settings.persistence.fsync_interval,
            recovered_damaged = recoveries,
            "durable storage"
        );
    }
    // Watched before the listeners open, so a SIGHUP never kills a ready
    // broker; certificates are reloaded once the server exists.
    let server_handle = Arc::new(OnceLock::new());
    watch_sighup(
        settings.auth.clone(),
        auth.clone(),
        Arc::clone(&server_handle),
    );
    let shard_auth = auth.clone();
    // One store per shard, handed out in shard order (0, 1, ...); `open`
    // made exactly `shards` of them.
    let mut stores = stores.into_iter();
    let server = Server::bind_with(rt.clone(), options, move |_| {
        let store = stores
            .next()
            .unwrap_or_else(|| store::ShardStore::Memory(midge_broker::MemoryStore::new()));
        (store, shard_auth.clone())
    })
    .await
    .map_err(|e| format!("cannot listen on {}: {e}", list(&settings.listeners)))?;
    let plain = settings.listeners.len();
    for (i, addr) in server.local_addrs().into_iter().enumerate() {
        // Tests and scripts read this line to learn a port chosen with -p 0.
        match i.checked_sub(plain).and_then(|t| kinds.get(t)) {
            None => tracing::info!("listening on {addr}"),
            Some(kind) => tracing::info!("listening on {addr} ({kind})"),
        }
    }
    let handle = server.handle();
    let _ = server_handle.set(handle.clone());
    if let Some(addr) = settings.metrics_listen {
        metrics::serve(addr, &handle).await?;
    }
    let run = server.run();
    tokio::pin!(run);
    // The gateway needs the server running to connect in memory; it starts
    // on the first poll of `run` below.
    let gateway = sn::start(sn_settings, &rt, handle.clone(), &settings.persistence);
    tokio::pin!(gateway);
    let gateway = tokio::select! {
        // `run` first: its first poll opens the in-memory entry the
        // gateway's broker connections (restored ones at once) go through.
        biased;
        result = &mut run => {
            return result.map_err(|e| format!("server failed: {e}"));
        }
        started = &mut gateway => started?,
    };
    tracing::info!(shards, "midged {} ready", env!("CARGO_PKG_VERSION"));
    tokio::select! {
        () = &mut shutdown => {
            tracing::info!("shutting down");
            handle.shutdown();
        }
        result = &mut run => {
            // The server stopped by itself.
            return result.map_err(|e| format!("server failed: {e}"));
        }
    }
    if let Some((gateway, task)) = gateway {
        gateway.shutdown();
        let _ = task.await;
    }
    run.await
        .map_err(|e| format!("server failed while stopping: {e}"))?;
    let denials = auth.denials();
    tracing::info!(
        refused_connects = denials.connects.load(Ordering::Relaxed),
        denied_publishes = denials.publishes.load(Ordering::Relaxed),
        denied_subscribes = denials.subscribes.load(Ordering::Relaxed),
        "stopped"
    );
    Ok(())
}

/// Completes on SIGINT or SIGTERM. The handlers are installed when this is
/// called (not when first polled), so a signal that comes while the broker
/// is still starting is not fatal: it stops the broker gracefully once it
/// is up (with durable storage, after a final commit).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let int = signal(SignalKind::interrupt()).ok();
        let term = signal(SignalKind::terminate()).ok();
        async move {
            match (int, term) {
                (Some(mut int), Some(mut term)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Re-reads the `[auth]` files on every SIGHUP and installs them for all
/// shards, and the `[tls]` certificate, key and client CA files for new
/// handshakes (once the server is set in `server`); connections stay up. A
/// file that cannot be read or parsed keeps what is in force (the error is
/// logged). The handler is installed before this returns; the loop runs in
/// a task of its own.
fn watch_sighup(
    config: auth::AuthConfig,
    auth: auth::SharedAuth,
    server: Arc<OnceLock<midge_server::ServerHandle>>,
) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot watch SIGHUP: [auth] files will not be reloaded");
            return;
        };
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                match config.load() {
                    Ok(rules) => {
                        auth.replace(rules);
                        let denials = auth.denials();
                        tracing::info!(
                            refused_connects = denials.connects.load(Ordering::Relaxed),
                            denied_publishes = denials.publishes.load(Ordering::Relaxed),
                            denied_subscribes = denials.subscribes.load(Ordering::Relaxed),
                            "SIGHUP: [auth] files reloaded"
                        );
                    }
                    Err(message) => {
                        tracing::error!("SIGHUP: {message}; keeping the previous [auth] rules");
                    }
                }
                match server.get().map(midge_server::ServerHandle::reload_tls) {
                    None | Some(Ok(0)) => {}
                    Some(Ok(n)) => tracing::info!(listeners = n, "SIGHUP: [tls] files reloaded"),
                    Some(Err(e)) => {
                        tracing::error!("SIGHUP: {e}; keeping the previous [tls] certificates");
                    }
                }
            }
        });
    }
    #[cfg(not(unix))]
    {
        let _ = (config, auth, server);
    }
}
