//! The Mosquitto broker on a free loopback port, and its command-line clients.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::peers::find_peer;
use crate::port::free_port;
use crate::process::Process;
use crate::scratch::ScratchDir;
use crate::STARTUP_TIMEOUT;

/// How many free ports to try when another process takes ours first.
const BIND_ATTEMPTS: usize = 5;

/// A Mosquitto broker listening on 127.0.0.1 on a free port, with anonymous
/// access, no persistence to disk and its log on stderr. It is killed, and its
/// config directory removed, on drop.
#[derive(Debug)]
pub struct Mosquitto {
    // Field order is drop order: the broker dies before its directory goes.
    process: Process,
    port: u16,
    _dir: ScratchDir,
}

impl Mosquitto {
    /// Starts the broker and waits until its port accepts. `Ok(None)` when
    /// mosquitto is not installed and peers are not required (see
    /// [`find_peer`]).
    pub fn start() -> Result<Option<Self>> {
        let Some(program) = find_peer("mosquitto")? else {
            return Ok(None);
        };
        let mut last_failure = String::new();
        for _ in 0..BIND_ATTEMPTS {
            let port = free_port()?;
            let dir = ScratchDir::new("midge-mosquitto")?;
            let config = dir.path().join("mosquitto.conf");
            std::fs::write(&config, config_text(port))
                .with_context(|| format!("could not write {}", config.display()))?;
            let mut cmd = Command::new(&program);
            cmd.arg("-c").arg(&config);
            let mut process = Process::spawn("mosquitto", &mut cmd)?;
            if wait_accepting(&mut process, port)? {
                return Ok(Some(Self {
                    process,
                    port,
                    _dir: dir,
                }));
            }
            // It exited before accepting: most likely the port was taken
            // between free_port and its bind. Try another.
            last_failure = process.output_so_far();
        }
        bail!("mosquitto did not start in {BIND_ATTEMPTS} attempts; the last one said:\n{last_failure}")
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Its address as a broker URL, `mqtt://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The broker process (its log is on stderr).
    pub fn process(&self) -> &Process {
        &self.process
    }
}

/// The config file: one listener on loopback, nothing written to disk.
fn config_text(port: u16) -> String {
    format!(
        "# Written by midge-testkit for one interop test.\n\
         listener {port} 127.0.0.1\n\
         allow_anonymous true\n\
         persistence false\n\
         log_dest stderr\n\
         log_type all\n\
         connection_messages true\n"
    )
}

/// Waits until the broker accepts on `port`: `Ok(true)` once it does,
/// `Ok(false)` if it exited first, `Err` if it does neither in time.
fn wait_accepting(process: &mut Process, port: u16) -> Result<bool> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if process.try_status()?.is_some() {
            return Ok(false);
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_ok() {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            bail!(
                "{} did not accept on {addr} within {STARTUP_TIMEOUT:?}\n{}",
                process.name(),
                process.output_so_far()
            );
        }
        thread::sleep(Duration::from_millis(25));
    }
}

/// `mosquitto_pub` and `mosquitto_sub`, found once.
#[derive(Debug, Clone)]
pub struct MosquittoClients {
    pub_program: PathBuf,
    sub_program: PathBuf,
}

/// One message as `mosquitto_sub` printed it through [`MosquittoSub`]'s format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubMessage {
    /// The QoS it was delivered with.
    pub qos: u8,
    /// Whether the retain flag was set on delivery.
    pub retain: bool,
    /// The topic name.
    pub topic: String,
    /// The payload, as text.
    pub payload: String,
}

/// The prefix of a message line in `mosquitto_sub`'s output; debug lines
/// (`-d`) never start with it.
const MSG_PREFIX: &str = "MSG|";

/// The `-F` format that prints [`SubMessage`] lines: QoS, retain, topic,
/// payload, split by `|`.
const MSG_FORMAT: &str = "MSG|%q|%r|%t|%p";

impl SubMessage {
    fn parse(line: &str) -> Option<Self> {
        let rest = line.strip_prefix(MSG_PREFIX)?;
        let mut fields = rest.splitn(4, '|');
        let qos = fields.next()?.parse().ok()?;
        let retain = fields.next()? == "1";
        let topic = fields.next()?.to_owned();
        let payload = fields.next()?.to_owned();
        Some(Self {
            qos,
            retain,
            topic,
            payload,
        })
    }
}

impl MosquittoClients {
    /// Finds both programs; `Ok(None)` to skip as [`find_peer`] decides.
    pub fn find() -> Result<Option<Self>> {
        let Some(pub_program) = find_peer("mosquitto_pub")? else {
            return Ok(None);
        };
        let Some(sub_program) = find_peer("mosquitto_sub")? else {
            return Ok(None);
        };
        Ok(Some(Self {
            pub_program,
            sub_program,
        }))
    }

    /// `mosquitto_sub -h 127.0.0.1 -p PORT -d -F ..`, line-buffered: piped, its
    /// stdout would otherwise sit in a block buffer (the `-d` lines that tell
    /// when SUBACK arrived, above all) until it exits. `stdbuf` (coreutils)
    /// switches that off; without it, the messages are still flushed one by one.
    fn sub_command(&self, port: u16) -> Command {
        let mut cmd = match crate::peers::search("stdbuf") {
            Some(stdbuf) => {
                let mut cmd = Command::new(stdbuf);
                cmd.arg("-oL").arg(&self.sub_program);
                cmd
            }
            None => Command::new(&self.sub_program),
        };
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-d",
            "-F",
            MSG_FORMAT,
        ]);
        cmd
    }

    /// Runs `mosquitto_pub -h 127.0.0.1 -p PORT args..` to completion (bounded
    /// by [`STARTUP_TIMEOUT`]); fails unless it exits successfully.
    pub fn publish(&self, port: u16, args: &[&str]) -> Result<()> {
        let mut cmd = Command::new(&self.pub_program);
        cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args);
        let mut process = Process::spawn("mosquitto_pub", &mut cmd)?;
        let status = process.wait_timeout(STARTUP_TIMEOUT)?;
        if !status.success() {
            bail!(
                "mosquitto_pub {args:?} failed ({status})\n{}",
                process.output_so_far()
            );
        }
        Ok(())
    }

    /// Starts `mosquitto_sub -h 127.0.0.1 -p PORT -d -F .. args..` in the
    /// background and waits until the broker has acknowledged its
    /// subscriptions, so that anything published afterwards reaches it.
    pub fn subscribe(&self, port: u16, args: &[&str]) -> Result<MosquittoSub> {
        let mut cmd = self.sub_command(port);
        cmd.args(args);
        let process = Process::spawn("mosquitto_sub", &mut cmd)?;
        process
            .stdout()
            .wait_for(STARTUP_TIMEOUT, |line| line.contains("received SUBACK"))
            .with_context(|| format!("mosquitto_sub {args:?} got no SUBACK"))?;
        Ok(MosquittoSub { process })
    }

    /// Runs `mosquitto_sub -h 127.0.0.1 -p PORT -d -F .. args..` until it exits
    /// on its own (give it `-C n` and `-W secs`, or `-E`), bounded by `timeout`,
    /// and returns the messages it printed. Fails unless it exits successfully.
    pub fn subscribe_until_exit(
        &self,
        port: u16,
        args: &[&str],
        timeout: Duration,
    ) -> Result<Vec<SubMessage>> {
        let mut cmd = self.sub_command(port);
        cmd.args(args);
        let mut process = Process::spawn("mosquitto_sub", &mut cmd)?;
        let status = process.wait_timeout(timeout)?;
        let lines = process.stdout().wait_closed(STARTUP_TIMEOUT)?;
        if !status.success() {
            bail!(
                "mosquitto_sub {args:?} failed ({status})\n{}",
                process.output_so_far()
            );
        }
        Ok(lines
            .iter()
            .filter_map(|line| SubMessage::parse(line))
            .collect())
    }

    /// The `mosquitto_sub` program, for a test that runs it its own way.
    pub fn sub_program(&self) -> &Path {
        &self.sub_program
    }

    /// The `mosquitto_pub` program, for a test that runs it its own way.
    pub fn pub_program(&self) -> &Path {
        &self.pub_program
    }
}

/// A running `mosquitto_sub` whose messages are collected; killed on drop.
#[derive(Debug)]
pub struct MosquittoSub {
    process: Process,
}

impl MosquittoSub {
    /// Waits until at least `count` messages have arrived (bounded by
    /// `timeout`) and returns every message so far, in arrival order.
    pub fn wait_messages(&self, count: usize, timeout: Duration) -> Result<Vec<SubMessage>> {
        let lines = self
            .process
            .stdout()
            .wait_count(count, timeout, |line| line.starts_with(MSG_PREFIX))?;
        Ok(lines
            .iter()
            .filter_map(|line| SubMessage::parse(line))
            .collect())
    }

    /// Every message so far, without waiting.
    pub fn messages(&self) -> Vec<SubMessage> {
        self.process
            .stdout()
            .snapshot()
            .iter()
            .filter_map(|line| SubMessage::parse(line))
            .collect()
    }

    /// The process, e.g. to kill it abruptly or wait for it to exit.
    pub fn process_mut(&mut self) -> &mut Process {
        &mut self.process
    }
}
