//! Interop over MQTT-SN, with programs nobody here wrote on the other side:
//!
//! - `midge gateway` in front of a real Mosquitto broker, with `mqtt-sn-12`
//!   from PyPI (pinned by scripts/install-test-peers.sh; its `mqtt_sn_pub`
//!   / `mqtt_sn_sub` tools) and with `midge sn pub|sub` on the SN side, and
//!   `mosquitto_sub` / `mosquitto_pub` checking on the MQTT side;
//! - `midge sn pub|sub` end to end through `midged`'s gateway (the `midged`
//!   binary next to this test's, as `cargo test --workspace` builds it).
//!
//! Without the peers these tests print a SKIP line and pass; with
//! `MIDGE_REQUIRE_PEERS=1` they fail instead. Every wait is bounded; every
//! process is killed when a test ends.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use midge_testkit::{
    find_python, peers_required, Midged, Mosquitto, MosquittoClients, Process, STARTUP_TIMEOUT,
};

/// Bound for one program run or one awaited message.
const WAIT: Duration = Duration::from_secs(20);
/// How many times a publisher tries before a subscriber is declared deaf.
const ATTEMPTS: usize = 40;

/// Prints a SKIP line, or fails when peers are required.
fn skip(what: &str, hint: &str) -> Result<()> {
    if peers_required() {
        bail!("interop peer {what} is missing and MIDGE_REQUIRE_PEERS is set: {hint}");
    }
    println!("SKIP: interop peer {what} is missing ({hint})");
    eprintln!("SKIP: interop peer {what} is missing ({hint})");
    Ok(())
}

/// A Python that imports mqtt-sn-12, or `None` after [`skip`].
fn mqttsn12() -> Result<Option<PathBuf>> {
    let Some(python) = find_python()? else {
        return Ok(None);
    };
    let mut probe = Command::new(&python);
    probe.args(["-c", "import mqttsn12.mqtt_sn_pub, mqttsn12.mqtt_sn_sub"]);
    let status = Process::spawn("python probe", &mut probe)?.wait_timeout(WAIT)?;
    if status.success() {
        return Ok(Some(python));
    }
    skip(
        "mqtt-sn-12",
        &format!(
            "{} cannot import mqttsn12; scripts/install-test-peers.sh installs it",
            python.display()
        ),
    )?;
    Ok(None)
}

/// `python -u -m mqttsn12.<tool> -h 127.0.0.1 -p PORT args..`.
fn mqttsn12_tool(python: &Path, tool: &str, port: u16, args: &[&str]) -> Command {
    let mut cmd = Command::new(python);
    cmd.args(["-u", "-m", &format!("mqttsn12.{tool}")])
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args);
    cmd
}

fn midge(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_midge"));
    cmd.args(args);
    cmd
}

/// `midge gateway` in front of `broker_port`, on a free UDP port; killed on
/// drop.
struct GatewayProcess {
    process: Process,
    addr: SocketAddr,
}

impl GatewayProcess {
    fn start(broker_port: u16) -> Result<Self> {
        let broker = format!("mqtt://127.0.0.1:{broker_port}");
        let process = Process::spawn(
            "midge gateway",
            &mut midge(&[
                "gateway",
                "--broker",
                &broker,
                "--listen",
                "udp://127.0.0.1:0",
            ]),
        )?;
        let line = process
            .stderr()
            .wait_for(STARTUP_TIMEOUT, |line| line.contains("mqtt-sn on udp "))
            .with_context(|| format!("midge gateway did not start\n{}", process.output_so_far()))?;
        let addr = line
            .split("mqtt-sn on udp ")
            .nth(1)
            .and_then(|rest| rest.split([',', ' ']).next())
            .and_then(|word| word.parse().ok())
            .with_context(|| format!("no address in {line:?}"))?;
        Ok(Self { process, addr })
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }
}

/// The `midged` binary next to this test's (`target/<profile>/midged`).
fn midged_binary() -> Result<Option<PathBuf>> {
    let exe = std::env::current_exe()?;
    let candidate = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join(format!("midged{}", std::env::consts::EXE_SUFFIX)));
    match candidate {
        Some(path) if path.is_file() => Ok(Some(path)),
        _ => {
            skip(
                "midged",
                "not built next to this test; `cargo build -p midged`",
            )?;
            Ok(None)
        }
    }
}

/// A UDP port free on 127.0.0.1 a moment ago.
fn free_udp_port() -> Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `midged` with its gateway on a free UDP port, once it says it is up.
fn midged_with_gateway(program: &Path) -> Result<(Midged, u16)> {
    let sn_port = free_udp_port()?;
    let midged = Midged::start(program, &["--sn-port", &sn_port.to_string()])?;
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let process = midged.process();
    while !process
        .stdout()
        .snapshot()
        .into_iter()
        .chain(process.stderr().snapshot())
        .any(|line| line.contains("mqtt-sn gateway on udp"))
    {
        ensure!(
            Instant::now() < deadline,
            "midged never said its MQTT-SN gateway is up\n{}",
            process.output_so_far()
        );
        thread::sleep(Duration::from_millis(20));
    }
    Ok((midged, sn_port))
}

/// Runs `publish(attempt)` until `sub` prints a line starting with
/// `prefix` (bounded by [`ATTEMPTS`]): the subscription is in place at some
/// point after the subscriber starts.
fn publish_until_printed(
    sub: &Process,
    prefix: &str,
    mut publish: impl FnMut(usize) -> Result<()>,
) -> Result<String> {
    for attempt in 0..ATTEMPTS {
        publish(attempt)?;
        if let Ok(line) = sub
            .stdout()
            .wait_for(Duration::from_millis(500), |line| line.contains(prefix))
        {
            return Ok(line);
        }
    }
    bail!(
        "{} printed nothing after {ATTEMPTS} publishes\n{}",
        sub.name(),
        sub.output_so_far()
    )
}

#[test]
fn mqttsn12_publishes_through_midge_gateway_to_mosquitto() -> Result<()> {
    let Some(clients) = MosquittoClients::find()? else {
        return Ok(());
    };
    let Some(python) = mqttsn12()? else {
        return Ok(());
    };
    let Some(broker) = Mosquitto::start()? else {
        return Ok(());
    };
    let gateway = GatewayProcess::start(broker.port())?;
    let sub = clients.subscribe(broker.port(), &["-t", "gw/up/#", "-q", "1"])?;
    Process::run(
        "mqtt_sn_pub",
        &mut mqttsn12_tool(
            &python,
            "mqtt_sn_pub",
            gateway.port(),
            &[
                "-t",
                "gw/up/q1",
                "-m",
                "via-midge-gateway",
                "-q",
                "1",
                "-i",
                "pysn-gw-pub",
            ],
        ),
        WAIT,
    )?;
    let messages = sub.wait_messages(1, WAIT)?;
    let message = messages.first().context("no message")?;
    ensure!(message.topic == "gw/up/q1", "{message:?}");
    ensure!(message.payload == "via-midge-gateway", "{message:?}");
    ensure!(message.qos == 1, "{message:?}");
    // QoS 2 as well: Mosquitto hands it on only once the gateway's PUBREL
    // reached it.
    Process::run(
        "mqtt_sn_pub",
        &mut mqttsn12_tool(
            &python,
            "mqtt_sn_pub",
            gateway.port(),
            &[
                "-t",
                "gw/up/q2",
                "-m",
                "q2-via-gateway",
                "-q",
                "2",
                "-i",
                "pysn-gw-pub2",
            ],
        ),
        WAIT,
    )?;
    let messages = sub.wait_messages(2, WAIT)?;
    let message = messages.get(1).context("no second message")?;
    ensure!(
        (message.topic.as_str(), message.payload.as_str()) == ("gw/up/q2", "q2-via-gateway"),
        "{message:?}"
    );
    drop(gateway.process);
    Ok(())
}

#[test]
fn mosquitto_pub_reaches_mqttsn12_through_midge_gateway() -> Result<()> {
    let Some(clients) = MosquittoClients::find()? else {
        return Ok(());
    };
    let Some(python) = mqttsn12()? else {
        return Ok(());
    };
    let Some(broker) = Mosquitto::start()? else {
        return Ok(());
    };
    let gateway = GatewayProcess::start(broker.port())?;
    let mut sub = Process::spawn(
        "mqtt_sn_sub",
        &mut mqttsn12_tool(
            &python,
            "mqtt_sn_sub",
            gateway.port(),
            &["-t", "gw/down", "-q", "1", "-1", "-i", "pysn-gw-sub"],
        ),
    )?;
    publish_until_printed(&sub, "to-mqttsn12-", |attempt| {
        clients.publish(
            broker.port(),
            &[
                "-t",
                "gw/down",
                "-q",
                "1",
                "-m",
                &format!("to-mqttsn12-{attempt}"),
            ],
        )
    })?;
    let status = sub.wait_timeout(WAIT)?;
    ensure!(
        status.success(),
        "mqtt_sn_sub failed\n{}",
        sub.output_so_far()
    );
    Ok(())
}

#[test]
fn midge_sn_pub_and_sub_through_midge_gateway_in_front_of_mosquitto() -> Result<()> {
    let Some(clients) = MosquittoClients::find()? else {
        return Ok(());
    };
    let Some(broker) = Mosquitto::start()? else {
        return Ok(());
    };
    let gateway = GatewayProcess::start(broker.port())?;
    let port = gateway.port().to_string();

    // Up: midge sn pub at QoS 1 on a name, seen by mosquitto_sub.
    let sub = clients.subscribe(broker.port(), &["-t", "gw/cli/up", "-q", "1"])?;
    Process::run(
        "midge sn pub",
        &mut midge(&[
            "sn",
            "pub",
            "-t",
            "gw/cli/up",
            "-m",
            "q1-up",
            "-q",
            "1",
            "-p",
            &port,
        ]),
        WAIT,
    )?;
    let messages = sub.wait_messages(1, WAIT)?;
    let message = messages.first().context("no message")?;
    ensure!(
        (
            message.topic.as_str(),
            message.payload.as_str(),
            message.qos
        ) == ("gw/cli/up", "q1-up", 1),
        "{message:?}"
    );

    // Down: mosquitto_pub to midge sn sub on a wildcard (the gateway
    // registers the topic name with the client first).
    let mut sn_sub = Process::spawn(
        "midge sn sub",
        &mut midge(&[
            "sn", "sub", "-t", "gw/cli/#", "-q", "1", "-v", "-C", "1", "-p", &port,
        ]),
    )?;
    let line = publish_until_printed(&sn_sub, "gw/cli/down down-", |attempt| {
        clients.publish(
            broker.port(),
            &[
                "-t",
                "gw/cli/down",
                "-q",
                "1",
                "-m",
                &format!("down-{attempt}"),
            ],
        )
    })?;
    ensure!(line.starts_with("gw/cli/down down-"), "{line:?}");
    let status = sn_sub.wait_timeout(WAIT)?;
    ensure!(
        status.success(),
        "midge sn sub failed\n{}",
        sn_sub.output_so_far()
    );
    Ok(())
}

/// QoS 2 from an SN client through `midge gateway` to Mosquitto, which
/// hands a QoS 2 message on only at PUBREL: the gateway must have finished
/// its own exchange with the broker before the client's DISCONNECT reaches
/// it (it failed about every other run before the gateway core delayed its
/// PUBREC to the broker's PUBCOMP).
#[test]
fn midge_sn_qos2_publish_through_midge_gateway_reaches_mosquitto() -> Result<()> {
    let Some(clients) = MosquittoClients::find()? else {
        return Ok(());
    };
    let Some(broker) = Mosquitto::start()? else {
        return Ok(());
    };
    let gateway = GatewayProcess::start(broker.port())?;
    let port = gateway.port().to_string();
    let sub = clients.subscribe(broker.port(), &["-t", "gw/q2", "-q", "2"])?;
    Process::run(
        "midge sn pub",
        &mut midge(&[
            "sn", "pub", "-t", "gw/q2", "-m", "q2-up", "-q", "2", "-p", &port,
        ]),
        WAIT,
    )?;
    let messages = sub.wait_messages(1, WAIT)?;
    let message = messages.first().context("no message")?;
    ensure!(
        (
            message.topic.as_str(),
            message.payload.as_str(),
            message.qos
        ) == ("gw/q2", "q2-up", 2),
        "{message:?}"
    );
    Ok(())
}

#[test]
fn midge_sn_pub_and_sub_end_to_end_through_midged() -> Result<()> {
    let Some(program) = midged_binary()? else {
        return Ok(());
    };
    let (_midged, sn_port) = midged_with_gateway(&program)?;
    let port = sn_port.to_string();
    let mut sub = Process::spawn(
        "midge sn sub",
        &mut midge(&[
            "sn", "sub", "-t", "e2e/#", "-q", "2", "-v", "-C", "2", "-p", &port,
        ]),
    )?;
    publish_until_printed(&sub, "e2e/first ", |attempt| {
        Process::run(
            "midge sn pub",
            &mut midge(&[
                "sn",
                "pub",
                "-t",
                "e2e/first",
                "-m",
                &format!("one-{attempt}"),
                "-q",
                "1",
                "-p",
                &port,
            ]),
            WAIT,
        )
        .map(drop)
    })?;
    Process::run(
        "midge sn pub",
        &mut midge(&[
            "sn",
            "pub",
            "-t",
            "e2e/second",
            "-m",
            "two",
            "-q",
            "2",
            "-p",
            &port,
        ]),
        WAIT,
    )?;
    let status = sub.wait_timeout(WAIT)?;
    ensure!(
        status.success(),
        "midge sn sub failed\n{}",
        sub.output_so_far()
    );
    let lines = sub.stdout().wait_closed(WAIT)?;
    ensure!(
        lines.last().map(String::as_str) == Some("e2e/second two"),
        "{lines:?}"
    );
    Ok(())
}

#[test]
fn midge_sn_sleeping_subscriber_collects_what_midged_buffered() -> Result<()> {
    let Some(program) = midged_binary()? else {
        return Ok(());
    };
    let (_midged, sn_port) = midged_with_gateway(&program)?;
    let port = sn_port.to_string();
    let mut sub = Process::spawn(
        "midge sn sub",
        &mut midge(&[
            "sn", "sub", "-t", "nap/t", "-q", "1", "-C", "1", "--sleep", "4", "-d", "-p", &port,
        ]),
    )?;
    // Publish only once the subscriber is asleep, so the gateway must buffer.
    sub.stderr()
        .wait_for(WAIT, |line| line.contains("asleep"))
        .with_context(|| format!("never asleep\n{}", sub.output_so_far()))?;
    Process::run(
        "midge sn pub",
        &mut midge(&[
            "sn",
            "pub",
            "-t",
            "nap/t",
            "-m",
            "while-asleep",
            "-q",
            "1",
            "-p",
            &port,
        ]),
        WAIT,
    )?;
    let status = sub.wait_timeout(WAIT)?;
    ensure!(
        status.success(),
        "midge sn sub failed\n{}",
        sub.output_so_far()
    );
    let lines = sub.stdout().wait_closed(WAIT)?;
    ensure!(lines == ["while-asleep"], "{lines:?}");
    Ok(())
}
