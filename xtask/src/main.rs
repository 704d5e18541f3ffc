//! `cargo xtask`: the project's automation, written in Rust so it runs wherever
//! cargo runs.
//!
//! Subcommands: `ci` (the exact CI sequence), `tidy` (layering and manifest
//! rules), `fuzz` (run one fuzz target), `bench` (criterion runs and a ratio
//! table against peer crates), `broker-bench` (whole brokers side by side), `conformance` (the normative-statement matrix),
//! `peers` (install the interop peers). It deliberately has no argument-parsing
//! dependency and installs nothing except `cargo-fuzz` when `cargo xtask fuzz`
//! needs it, and the interop peers (Mosquitto, paho-mqtt) for `ci` and `peers`.

mod bench;
mod broker_bench;
mod ci;
mod conformance;
mod fuzz;
mod peers;
mod tidy;
mod util;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

const HELP: &str = "\
cargo xtask <command> [options]

Commands:
  ci                               the exact CI sequence (fmt, clippy, interop peers,
                                   tests, no_std, docs, tidy, conformance --check,
                                   fuzz build)
  tidy                             layering check and manifest rules
  fuzz <target> [--seconds N]      run one fuzz target with cargo-fuzz (default 60 s)
  bench [--report-only] [args..]   run criterion benches, then print midge/peer ratios
  broker-bench [--seconds N] [--brokers a,b] [--durability]
                                   midged, mosquitto and rumqttd side by side under
                                   `midge bench` (throughput, latency, memory, CPU);
                                   --durability: QoS 1/2 into persistent subscribers,
                                   midged none/never/batch/always vs mosquitto persistence
  conformance [--check]            regenerate docs/conformance.md (or check it is current)
  peers                            install the interop peers (mosquitto, mosquitto-clients,
                                   paho-mqtt in target/peers/venv) if missing
  help                             this text
";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let command = args.next();
    let rest: Vec<String> = args.collect();
    let root = project_root()?;
    match command.as_deref() {
        Some("ci") => {
            no_extra_args("ci", &rest)?;
            ci::run(&root)
        }
        Some("tidy") => {
            no_extra_args("tidy", &rest)?;
            tidy::run(&root)
        }
        Some("fuzz") => fuzz::run(&root, &rest),
        Some("bench") => bench::run(&root, &rest),
        Some("broker-bench") => broker_bench::run(&root, &rest),
        Some("conformance") => conformance::run(&root, &rest),
        Some("peers") => {
            no_extra_args("peers", &rest)?;
            peers::run(&root)
        }
        Some("help" | "--help" | "-h") | None => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => bail!("unknown command `{other}`\n\n{HELP}"),
    }
}

fn no_extra_args(command: &str, rest: &[String]) -> Result<()> {
    if let Some(arg) = rest.first() {
        bail!("`cargo xtask {command}` takes no arguments, got `{arg}`");
    }
    Ok(())
}

/// The workspace root: the parent of this crate's manifest directory.
fn project_root() -> Result<PathBuf> {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .context("xtask's manifest directory has no parent")
}
