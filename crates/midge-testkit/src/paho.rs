//! The paho-mqtt scenarios of `tests/interop/*.py`, run against a broker on a
//! loopback port and checked. Each returns `Err` naming what the broker got
//! wrong, with the script's JSON report.
//!
//! The same functions run against Mosquitto in this crate's own tests (proving
//! the scripts and checks right) and against `midged` in its interop tests.

use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use serde_json::Value;

use crate::mosquitto::SubMessage;
use crate::peers::{interop_script, run_python};

/// Bound for one script run: each of its waits is bounded at 10 s inside.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `tests/interop/<script>` against `127.0.0.1:port` with a topic and
/// client-id prefix, returning its JSON report.
pub fn run_scenario(python: &Path, script: &str, port: u16, prefix: &str) -> Result<Value> {
    let port = port.to_string();
    run_python(
        python,
        &interop_script(script),
        ["--host", "127.0.0.1", "--port", &port, "--prefix", prefix],
        SCRIPT_TIMEOUT,
    )
}

/// The messages under `key` of a report.
fn messages(report: &Value, key: &str) -> Result<Vec<SubMessage>> {
    let list = report
        .get(key)
        .and_then(Value::as_array)
        .with_context(|| format!("report has no `{key}` list: {report}"))?;
    list.iter()
        .map(|m| {
            let field = |name: &str| {
                m.get(name)
                    .with_context(|| format!("message without `{name}`: {m}"))
            };
            Ok(SubMessage {
                topic: field("topic")?.as_str().unwrap_or_default().to_owned(),
                payload: field("payload")?.as_str().unwrap_or_default().to_owned(),
                qos: field("qos")?
                    .as_u64()
                    .and_then(|q| u8::try_from(q).ok())
                    .unwrap_or(u8::MAX),
                retain: field("retain")?.as_bool().unwrap_or_default(),
            })
        })
        .collect()
}

fn msg(topic: String, payload: &str, qos: u8, retain: bool) -> SubMessage {
    SubMessage {
        qos,
        retain,
        topic,
        payload: payload.to_owned(),
    }
}

/// QoS 0, 1 and 2 published by one paho client reach a QoS 2 subscriber each
/// at its own level, and each publish completes (on_publish after PUBACK /
/// PUBCOMP).
pub fn qos_round_trip(python: &Path, port: u16, prefix: &str) -> Result<Value> {
    let report = run_scenario(python, "qos_roundtrip.py", port, prefix)?;
    ensure!(
        report.get("granted") == Some(&serde_json::json!([2])),
        "SUBACK did not grant QoS 2: {report}"
    );
    ensure!(
        report.get("acked") == Some(&serde_json::json!([0, 1, 2])),
        "not every publish completed: {report}"
    );
    let mut got = messages(&report, "received")?;
    got.sort_by(|a, b| a.topic.cmp(&b.topic));
    let want: Vec<SubMessage> = (0..=2u8)
        .map(|q| {
            msg(
                format!("{prefix}/qos/{q}"),
                &format!("payload-{q}"),
                q,
                false,
            )
        })
        .collect();
    ensure!(got == want, "deliveries differ: got {got:?}, want {want:?}");
    Ok(report)
}

/// A retained message reaches a later subscriber with the retain flag set; once
/// cleared with an empty payload, a later subscriber gets only live traffic.
pub fn retained(python: &Path, port: u16, prefix: &str) -> Result<Value> {
    let report = run_scenario(python, "retained.py", port, prefix)?;
    let topic = format!("{prefix}/retained");
    let first = messages(&report, "first_subscriber")?;
    let want = vec![msg(topic.clone(), "kept", 1, true)];
    ensure!(
        first == want,
        "late subscriber got {first:?}, want {want:?}"
    );
    let after = messages(&report, "after_clear")?;
    let want = vec![msg(topic, "live", 1, false)];
    ensure!(
        after.first() == want.first(),
        "after clearing, a new subscriber first got {after:?}, want {want:?}"
    );
    Ok(report)
}

/// A dropped connection publishes its will; a clean DISCONNECT does not.
pub fn will(python: &Path, port: u16, prefix: &str) -> Result<Value> {
    let report = run_scenario(python, "will.py", port, prefix)?;
    let after_drop = messages(&report, "after_drop")?;
    let doomed = msg(format!("{prefix}/will/doomed"), "doomed-gone", 1, false);
    ensure!(
        after_drop.first() == Some(&doomed),
        "no will after the abrupt close: {after_drop:?}"
    );
    let all = messages(&report, "all")?;
    let marker = msg(format!("{prefix}/will/marker"), "marker", 1, false);
    ensure!(
        all == vec![doomed, marker],
        "expected the dropped client's will then the marker, and no will from the \
         client that disconnected cleanly: {all:?}"
    );
    Ok(report)
}

/// A clean_session=0 subscriber's session survives its disconnect: QoS 1
/// messages published meanwhile arrive on reconnect, and CONNACK says the
/// session was present (absent the first time).
pub fn session_resume(python: &Path, port: u16, prefix: &str) -> Result<Value> {
    let report = run_scenario(python, "session_resume.py", port, prefix)?;
    let present = |key: &str| {
        report
            .get(key)
            .and_then(|c| c.get("session_present"))
            .and_then(Value::as_bool)
    };
    ensure!(
        present("first_connack") == Some(false),
        "first CONNACK claimed a session: {report}"
    );
    ensure!(
        present("resumed_connack") == Some(true),
        "resumed CONNACK did not say session present: {report}"
    );
    let got = messages(&report, "received")?;
    let want: Vec<SubMessage> = (0..3)
        .map(|i| {
            msg(
                format!("{prefix}/resume"),
                &format!("offline-{i}"),
                1,
                false,
            )
        })
        .collect();
    ensure!(
        got == want,
        "queued messages differ: got {got:?}, want {want:?}"
    );
    Ok(report)
}

/// A second connection with the same client id takes over: the first is
/// disconnected by the broker, the second keeps working.
pub fn takeover(python: &Path, port: u16, prefix: &str) -> Result<Value> {
    let report = run_scenario(python, "takeover.py", port, prefix)?;
    ensure!(
        report.get("first_disconnected") == Some(&Value::Bool(true)),
        "the first client was not disconnected: {report}"
    );
    ensure!(
        report.get("second_connected") == Some(&Value::Bool(true)),
        "the second client lost its connection: {report}"
    );
    let got = messages(&report, "second_received")?;
    let want = vec![msg(format!("{prefix}/takeover"), "still-here", 1, false)];
    ensure!(got == want, "the second client got {got:?}, want {want:?}");
    Ok(report)
}

/// A client silent past its keep alive is disconnected by the broker and its
/// will published. The script bounds the wait (10 s for a 1 s keep alive); the
/// measured delay is in the report (`closed_after_seconds`) but not asserted,
/// since a loaded machine can stretch it.
pub fn keep_alive_expiry(python: &Path, port: u16, prefix: &str) -> Result<Value> {
    let report = run_scenario(python, "keepalive.py", port, prefix)?;
    ensure!(
        report.get("closed_by_broker") == Some(&Value::Bool(true)),
        "the broker did not close the silent connection: {report}"
    );
    let got = messages(&report, "received")?;
    let want = vec![msg(
        format!("{prefix}/keepalive/will"),
        "silent-gone",
        1,
        false,
    )];
    ensure!(
        got == want,
        "will after keep-alive expiry: got {got:?}, want {want:?}"
    );
    Ok(report)
}
