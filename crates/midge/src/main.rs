//! `midge`, the Midge command-line MQTT client: `midge pub` publishes and
//! waits for the broker's acknowledgement, `midge sub` prints what arrives,
//! with the flags of mosquitto_pub and mosquitto_sub; `midge bench` loads a
//! broker and reports throughput, latency, loss and duplicates; `midge passwd`
//! writes password files for midged (as mosquitto_passwd); `midge sn pub`
//! and `midge sn sub` publish and subscribe over MQTT-SN through a gateway,
//! in the spirit of mqtt-sn-pub and mqtt-sn-sub.
//!
//! What it deliberately does not do: any protocol work (the async client,
//! `midge-client`, and its sans-IO session do it all), TLS or WebSocket (not
//! built yet), or reconnect: a lost connection ends the command with its
//! own exit code, so scripts can tell.
//!
//! Key types: [`cli::Cli`] (the flags), [`exit::Exit`] (the exit codes,
//! also listed in `--help` and docs/cli.md).
#![forbid(unsafe_code)]

mod bench;
mod cli;
mod exit;
mod gateway;
mod passwd;
mod run;
mod sn;
mod store;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};
use crate::exit::{Exit, Failure};

fn main() -> ExitCode {
    // clap prints help or the usage error and exits (0 or 2) by itself.
    let cli = Cli::parse();
    let debug = match &cli.command {
        Command::Pub(p) => p.conn.debug,
        Command::Sub(s) => s.conn.debug,
        Command::Sn(s) => s.debug(),
        Command::Gateway(g) => g.debug,
        Command::Bench(_) | Command::Passwd(_) | Command::Store(_) => false,
    };
    init_logging(debug);
    if let Command::Passwd(args) = &cli.command {
        return match passwd::run(args) {
            Ok(()) => Exit::Ok.into(),
            Err(Failure { exit, message }) => {
                eprintln!("midge passwd: {message}");
                exit.into()
            }
        };
    }
    if let Command::Store(args) = &cli.command {
        return match store::run(args) {
            Ok(()) => Exit::Ok.into(),
            Err(Failure { exit, message }) => {
                eprintln!("midge store: {message}");
                exit.into()
            }
        };
    }
    if let Command::Bench(args) = &cli.command {
        // The load generator runs on its own multi-threaded runtime.
        return match bench::run(args) {
            Ok(()) => Exit::Ok.into(),
            Err(Failure { exit, message }) => {
                eprintln!("midge: {message}");
                exit.into()
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("midge: cannot start the runtime: {e}");
            return Exit::Other.into();
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Pub(args) => run::publish(args).await,
            Command::Sub(args) => run::subscribe(args).await,
            Command::Sn(args) => sn::run(args).await,
            Command::Gateway(args) => gateway::run(args).await,
            Command::Bench(_) | Command::Passwd(_) | Command::Store(_) => Ok(()),
        }
    });
    match result {
        Ok(()) => Exit::Ok.into(),
        Err(Failure { exit, message }) => {
            eprintln!("midge: {message}");
            exit.into()
        }
    }
}

/// Logs go to stderr: warnings by default, `RUST_LOG` if set, everything
/// from debug up with `-d`.
fn init_logging(debug: bool) {
    let filter = if debug {
        EnvFilter::new("debug")
    } else {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"))
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .try_init();
}
