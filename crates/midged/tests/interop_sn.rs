//! Interop: an MQTT-SN client nobody here wrote — `mqtt-sn-12` from PyPI
//! (pinned by scripts/install-test-peers.sh), driven through its
//! `mqtt_sn_pub` / `mqtt_sn_sub` tools — through `midged`'s MQTT-SN gateway,
//! with every message checked on the MQTT side by `mosquitto_sub`, or sent
//! there by `mosquitto_pub`.
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

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use midge_testkit::{
    find_python, peers_required, Midged, MosquittoClients, Process, STARTUP_TIMEOUT,
};

/// Bound for one peer run or one awaited message.
const WAIT: Duration = Duration::from_secs(20);

/// A Python that imports mqtt-sn-12; `Ok(None)` (after a SKIP line) when it
/// is missing and peers are not required.
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
    let hint = format!(
        "{} cannot import mqttsn12; scripts/install-test-peers.sh installs mqtt-sn-12",
        python.display()
    );
    if peers_required() {
        bail!("interop peer mqtt-sn-12 is missing and MIDGE_REQUIRE_PEERS is set: {hint}");
    }
    println!("SKIP: interop peer mqtt-sn-12 is missing ({hint})");
    eprintln!("SKIP: interop peer mqtt-sn-12 is missing ({hint})");
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

/// A UDP port free on 127.0.0.1 a moment ago.
fn free_udp_port() -> Result<u16> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    Ok(socket.local_addr()?.port())
}

/// `midged` with its MQTT-SN gateway on a free UDP port; returns it and that
/// port once midged has said the gateway is up.
fn midged_with_gateway(extra: &[&str]) -> Result<(Midged, u16)> {
    let sn_port = free_udp_port()?;
    let port = sn_port.to_string();
    let mut args = vec!["--sn-port", port.as_str()];
    args.extend_from_slice(extra);
    let midged = Midged::start(Path::new(env!("CARGO_BIN_EXE_midged")), &args)?;
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let process = midged.process();
    loop {
        let said = process
            .stdout()
            .snapshot()
            .into_iter()
            .chain(process.stderr().snapshot())
            .any(|line| line.contains("mqtt-sn gateway on udp"));
        if said {
            return Ok((midged, sn_port));
        }
        ensure!(
            Instant::now() < deadline,
            "midged never said its MQTT-SN gateway is up\n{}",
            process.output_so_far()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn mqttsn12_publishes_qos1_through_midged_to_mosquitto_sub() -> Result<()> {
    let Some(clients) = MosquittoClients::find()? else {
        return Ok(());
    };
    let Some(python) = mqttsn12()? else {
        return Ok(());
    };
    let (midged, sn_port) = midged_with_gateway(&[])?;
    let sub = clients.subscribe(midged.port(), &["-t", "interop/sn/q1", "-q", "1"])?;
    Process::run(
        "mqtt_sn_pub",
        &mut mqttsn12_tool(
            &python,
            "mqtt_sn_pub",
            sn_port,
            &[
                "-t",
                "interop/sn/q1",
                "-m",
                "from-mqttsn12",
                "-q",
                "1",
                "-i",
                "pysn-pub-q1",
            ],
        ),
        WAIT,
    )?;
    let messages = sub.wait_messages(1, WAIT)?;
    ensure!(messages.len() == 1, "expected one message: {messages:?}");
    let message = &messages[0];
    ensure!(message.topic == "interop/sn/q1", "{message:?}");
    ensure!(message.payload == "from-mqttsn12", "{message:?}");
    ensure!(message.qos == 1, "{message:?}");
    Ok(())
}

#[test]
fn mqttsn12_publishes_qos_minus_one_on_a_predefined_id_without_connecting() -> Result<()> {
    let Some(clients) = MosquittoClients::find()? else {
        return Ok(());
    };
    let Some(python) = mqttsn12()? else {
        return Ok(());
    };
    let (midged, sn_port) = midged_with_gateway(&["--sn-predefined", "interop/sn/pre=7"])?;
    let sub = clients.subscribe(midged.port(), &["-t", "interop/sn/pre"])?;
    Process::run(
        "mqtt_sn_pub",
        &mut mqttsn12_tool(
            &python,
            "mqtt_sn_pub",
            sn_port,
            &["-T", "7", "-m", "fire-and-forget", "-q", "-1"],
        ),
        WAIT,
    )?;
    let messages = sub.wait_messages(1, WAIT)?;
    ensure!(
        messages
            .first()
            .map(|m| (m.topic.as_str(), m.payload.as_str()))
            == Some(("interop/sn/pre", "fire-and-forget")),
        "{messages:?}"
    );
    Ok(())
}

#[test]
fn mosquitto_pub_reaches_mqttsn12_subscribed_through_midged() -> Result<()> {
    let Some(clients) = MosquittoClients::find()? else {
        return Ok(());
    };
    let Some(python) = mqttsn12()? else {
        return Ok(());
    };
    let (midged, sn_port) = midged_with_gateway(&[])?;
    let mut sub = Process::spawn(
        "mqtt_sn_sub",
        &mut mqttsn12_tool(
            &python,
            "mqtt_sn_sub",
            sn_port,
            &["-t", "interop/sn/down", "-q", "1", "-1", "-i", "pysn-sub"],
        ),
    )?;
    // The SN subscription is in place at some point after the tool starts;
    // publish (a bounded number of times) until it prints the message.
    let mut received = false;
    for attempt in 0..40 {
        clients.publish(
            midged.port(),
            &[
                "-t",
                "interop/sn/down",
                "-q",
                "1",
                "-m",
                &format!("to-mqttsn12-{attempt}"),
            ],
        )?;
        if sub
            .stdout()
            .wait_for(Duration::from_millis(500), |line| {
                line.starts_with("to-mqttsn12-")
            })
            .is_ok()
        {
            received = true;
            break;
        }
    }
    ensure!(
        received,
        "mqtt_sn_sub printed nothing\n{}",
        sub.output_so_far()
    );
    let status = sub
        .wait_timeout(WAIT)
        .context("mqtt_sn_sub -1 did not exit")?;
    ensure!(
        status.success(),
        "mqtt_sn_sub failed\n{}",
        sub.output_so_far()
    );
    Ok(())
}
