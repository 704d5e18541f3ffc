//! Our broker, `midged`, on a free loopback port.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::port::{free_port, wait_for_port};
use crate::process::Process;
use crate::STARTUP_TIMEOUT;

/// How many free ports to try when another process takes ours first.
const BIND_ATTEMPTS: usize = 5;

/// What `midged` prints once its listener is bound, followed by the address.
const LISTENING: &str = "listening on ";

/// A running `midged` on 127.0.0.1; killed on drop.
#[derive(Debug)]
pub struct Midged {
    process: Process,
    addr: SocketAddr,
}

impl Midged {
    /// Starts `program` (the caller passes `env!("CARGO_BIN_EXE_midged")`) as
    /// `midged --bind 127.0.0.1 --port PORT extra_args..` on a free port, waits
    /// for its `listening on ADDR` line and for the port to accept.
    pub fn start(program: &Path, extra_args: &[&str]) -> Result<Self> {
        let mut last_failure = String::new();
        for _ in 0..BIND_ATTEMPTS {
            let port = free_port()?;
            let mut cmd = Command::new(program);
            cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                // In memory unless the caller chose: the default would share
                // ./midge-data (and its lock) between tests.
                .args(
                    ["--persistence", "none"]
                        .iter()
                        .filter(|_| !extra_args.contains(&"--persistence")),
                )
                .args(extra_args);
            let mut process = Process::spawn("midged", &mut cmd)?;
            match wait_listening(&mut process)? {
                Some(printed) => {
                    let addr = printed.unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
                    wait_for_port(addr, STARTUP_TIMEOUT)?;
                    return Ok(Self { process, addr });
                }
                None => last_failure = process.output_so_far(),
            }
        }
        bail!(
            "midged did not start in {BIND_ATTEMPTS} attempts; the last one said:\n{last_failure}"
        )
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Its address as a broker URL, `mqtt://ADDR`.
    pub fn url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }

    /// The broker process, e.g. to read its log.
    pub fn process(&self) -> &Process {
        &self.process
    }
}

/// Waits for the `listening on` line on stdout or stderr. `Some(Some(addr))`
/// when it names a parsable address, `Some(None)` when it does not, `None` if
/// the process exited first.
fn wait_listening(process: &mut Process) -> Result<Option<Option<SocketAddr>>> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        let lines = process
            .stdout()
            .snapshot()
            .into_iter()
            .chain(process.stderr().snapshot());
        for line in lines {
            if let Some((_, rest)) = line.split_once(LISTENING) {
                let word = rest.split_whitespace().next().unwrap_or_default();
                return Ok(Some(word.parse().ok()));
            }
        }
        if process.try_status()?.is_some() {
            return Ok(None);
        }
        if Instant::now() >= deadline {
            bail!(
                "midged printed no `{LISTENING}ADDR` line within {STARTUP_TIMEOUT:?}\n{}",
                process.output_so_far()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}
