//! Shared harness for Midge's interop tests against peers nobody here wrote:
//! the Mosquitto broker, `mosquitto_pub`/`mosquitto_sub`, and paho-mqtt scripts.
//!
//! It starts child processes and never leaves them behind ([`Process`] kills its
//! child on drop), collects their output lines with bounded waits ([`Lines`]),
//! finds free loopback ports ([`free_port`]) and waits for them to accept
//! ([`wait_for_port`]), finds a peer program or skips the test ([`find_peer`],
//! [`find_python`]), starts a Mosquitto broker from a config file it writes into a
//! scratch directory ([`Mosquitto`]), starts `midged` ([`Midged`]), runs a Python
//! script and parses its JSON report ([`run_python`]), and runs `mosquitto_sub`
//! in the background ([`MosquittoSub`]), and forwards TCP through a proxy whose
//! connections can be cut, so a client inside the test can lose its connection
//! without a DISCONNECT ([`TcpProxy`]). The scenarios themselves, with their
//! checks, live in [`paho`] (the Python scripts) and [`cli`] (`mosquitto_pub` /
//! `mosquitto_sub`), so that the same checks run against Mosquitto (proving the
//! harness) and against Midge.
//!
//! What it deliberately does not do: install anything (that is
//! `scripts/install-test-peers.sh`, run by `cargo xtask ci` and `cargo xtask
//! peers`), use fixed ports, or wait without a bound. Every wait takes a timeout
//! and fails with the output collected so far, so a hang becomes a readable error.
//!
//! Missing peers: when a peer is not installed, [`find_peer`] prints a loud
//! `SKIP` line and returns `Ok(None)`, and the test returns early; with
//! `MIDGE_REQUIRE_PEERS=1` in the environment (as `cargo xtask ci` sets it) it
//! returns an error instead, so CI cannot pass by skipping.
//!
//! This is a dev-only crate (`publish = false`), so like xtask it reports errors
//! with `anyhow`.

#![forbid(unsafe_code)]

pub mod cli;
mod midged;
mod mosquitto;
pub mod paho;
mod peers;
pub mod pki;
mod port;
mod process;
mod proxy;
mod scratch;

pub use midged::Midged;
pub use mosquitto::{Mosquitto, MosquittoClients, MosquittoSub, SubMessage};
pub use peers::{find_peer, find_python, interop_script, peers_required, run_python};
pub use port::{free_port, wait_for_port};
pub use process::{Lines, Process};
pub use proxy::TcpProxy;
pub use scratch::ScratchDir;

/// The bound used for a peer that should answer at once (a broker starting, a
/// short script): generous, since CI machines are shared and slow.
pub const STARTUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);
