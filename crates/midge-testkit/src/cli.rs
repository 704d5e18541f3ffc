//! The `mosquitto_pub`/`mosquitto_sub` scenarios, run against a broker on a
//! loopback port and checked. Each returns `Err` naming what the broker got
//! wrong. The same functions run against Mosquitto in this crate's own tests
//! and against `midged` in its interop tests.

use std::time::Duration;

use anyhow::{ensure, Result};

use crate::mosquitto::{MosquittoClients, SubMessage};

/// Bound for collecting the expected messages.
const WAIT: Duration = Duration::from_secs(10);

fn msg(topic: &str, payload: &str, qos: u8, retain: bool) -> SubMessage {
    SubMessage {
        qos,
        retain,
        topic: topic.to_owned(),
        payload: payload.to_owned(),
    }
}

fn sorted(mut messages: Vec<SubMessage>) -> Vec<SubMessage> {
    messages.sort_by(|a, b| a.topic.cmp(&b.topic));
    messages
}

/// `mosquitto_pub` at QoS 0, 1 and 2 to a QoS 2 and a QoS 1 `mosquitto_sub`:
/// the first gets each at its own level, the second at most QoS 1.
pub fn qos_levels(clients: &MosquittoClients, port: u16, prefix: &str) -> Result<()> {
    let filter = format!("{prefix}/qos/#");
    let at2 = clients.subscribe(port, &["-q", "2", "-t", &filter])?;
    let at1 = clients.subscribe(port, &["-q", "1", "-t", &filter])?;
    let topics: Vec<String> = (0..=2).map(|q| format!("{prefix}/qos/{q}")).collect();
    for (qos, topic) in topics.iter().enumerate() {
        let qos = qos.to_string();
        let payload = format!("payload-{qos}");
        clients.publish(port, &["-q", &qos, "-t", topic, "-m", &payload])?;
    }
    let got2 = sorted(at2.wait_messages(3, WAIT)?);
    let got1 = sorted(at1.wait_messages(3, WAIT)?);
    let want2: Vec<SubMessage> = topics
        .iter()
        .zip(0u8..)
        .map(|(t, q)| msg(t, &format!("payload-{q}"), q, false))
        .collect();
    let want1: Vec<SubMessage> = topics
        .iter()
        .zip(0u8..)
        .map(|(t, q)| msg(t, &format!("payload-{q}"), q.min(1), false))
        .collect();
    ensure!(
        got2 == want2,
        "QoS 2 subscriber: got {got2:?}, want {want2:?}"
    );
    ensure!(
        got1 == want1,
        "QoS 1 subscriber: got {got1:?}, want {want1:?}"
    );
    Ok(())
}

/// `mosquitto_pub -r`: a subscriber that arrives later gets the message with
/// the retain flag; one already subscribed gets a retained publish live, with
/// the flag clear.
pub fn retained(clients: &MosquittoClients, port: u16, prefix: &str) -> Result<()> {
    let topic = format!("{prefix}/retained");
    let live = clients.subscribe(port, &["-q", "1", "-t", &topic])?;
    clients.publish(port, &["-q", "1", "-r", "-t", &topic, "-m", "kept"])?;
    let got = live.wait_messages(1, WAIT)?;
    let want = vec![msg(&topic, "kept", 1, false)];
    ensure!(got == want, "live subscriber: got {got:?}, want {want:?}");
    let late = clients.subscribe_until_exit(
        port,
        &["-q", "1", "-t", &topic, "-C", "1", "-W", "10"],
        Duration::from_secs(20),
    )?;
    let want = vec![msg(&topic, "kept", 1, true)];
    ensure!(late == want, "late subscriber: got {late:?}, want {want:?}");
    Ok(())
}

/// `mosquitto_sub --will-*` killed abruptly: its will reaches a watcher.
pub fn will(clients: &MosquittoClients, port: u16, prefix: &str) -> Result<()> {
    let will_topic = format!("{prefix}/will/doomed");
    let watcher = clients.subscribe(port, &["-q", "1", "-t", &will_topic])?;
    let mut doomed = clients.subscribe(
        port,
        &[
            "-t",
            &format!("{prefix}/will/ignored"),
            "--will-topic",
            &will_topic,
            "--will-payload",
            "doomed-gone",
            "--will-qos",
            "1",
        ],
    )?;
    // SIGKILL: the socket closes with no DISCONNECT.
    doomed.process_mut().kill();
    let got = watcher.wait_messages(1, WAIT)?;
    let want = vec![msg(&will_topic, "doomed-gone", 1, false)];
    ensure!(got == want, "watcher: got {got:?}, want {want:?}");
    Ok(())
}

/// `mosquitto_sub -c -i ID -q 1` subscribes and leaves; three QoS 1 messages
/// published meanwhile arrive, in order, when it comes back with the same id.
pub fn session_resume(clients: &MosquittoClients, port: u16, prefix: &str) -> Result<()> {
    let topic = format!("{prefix}/resume");
    let id = format!("{prefix}-resume");
    let first = clients.subscribe_until_exit(
        port,
        &["-c", "-i", &id, "-q", "1", "-t", &topic, "-E"],
        Duration::from_secs(20),
    )?;
    ensure!(
        first.is_empty(),
        "nothing should arrive before publishing: {first:?}"
    );
    for i in 0..3 {
        let payload = format!("offline-{i}");
        clients.publish(port, &["-q", "1", "-t", &topic, "-m", &payload])?;
    }
    let got = clients.subscribe_until_exit(
        port,
        &[
            "-c", "-i", &id, "-q", "1", "-t", &topic, "-C", "3", "-W", "10",
        ],
        Duration::from_secs(20),
    )?;
    let want: Vec<SubMessage> = (0..3)
        .map(|i| msg(&topic, &format!("offline-{i}"), 1, false))
        .collect();
    ensure!(got == want, "resumed session: got {got:?}, want {want:?}");
    Ok(())
}
