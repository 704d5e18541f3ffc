//! Interop: the Midge async client (`midge_tokio::Client`) and the `midge pub`
//! / `midge sub` commands against a real Mosquitto broker, started by each test
//! on a free loopback port from a config file the test writes.
//!
//! Without mosquitto these tests print a SKIP line and pass; with
//! `MIDGE_REQUIRE_PEERS=1` (as `cargo xtask ci` runs them) they fail instead.
//! Every wait is bounded; every process is killed when a test ends.

use std::future::Future;
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use midge_client::Topic;
use midge_testkit::{Mosquitto, MosquittoClients, Process, TcpProxy, STARTUP_TIMEOUT};
use midge_tokio::{Client, ConnectOptions, LastWill, Message, Messages, QoS, Reconnect};

/// Bound for a whole async test.
const TEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound for one awaited message.
const WAIT: Duration = Duration::from_secs(10);

/// Runs an async test body under a timeout, so a hang fails.
async fn bounded(body: impl Future<Output = Result<()>>) -> Result<()> {
    tokio::time::timeout(TEST_TIMEOUT, body)
        .await
        .map_err(|_| anyhow!("test did not finish within {TEST_TIMEOUT:?}"))?
}

async fn connect(options: ConnectOptions) -> Result<(Client, Messages)> {
    Client::connect(options)
        .await
        .map_err(|e| anyhow!("connect failed: {e:?}"))
}

fn options(broker_url: &str, id: &str) -> Result<ConnectOptions> {
    ConnectOptions::new(broker_url, id).map_err(|e| anyhow!("options for {broker_url}: {e:?}"))
}

async fn next(messages: &mut Messages) -> Result<Message> {
    tokio::time::timeout(WAIT, messages.recv())
        .await
        .map_err(|_| anyhow!("no message within {WAIT:?}"))?
        .context("the message stream ended")
}

async fn subscribe(client: &Client, filter: &str, qos: QoS) -> Result<QoS> {
    client
        .subscribe(filter, qos)
        .await
        .map_err(|e| anyhow!("subscribe {filter}: {e:?}"))
}

async fn publish(
    client: &Client,
    topic: &str,
    payload: &str,
    qos: QoS,
    retain: bool,
) -> Result<()> {
    client
        .publish(topic, payload.to_owned(), qos, retain)
        .map_err(|e| anyhow!("publish {topic}: {e:?}"))?
        .await
        .map_err(|e| anyhow!("ack of {topic}: {e:?}"))?;
    Ok(())
}

fn text(message: &Message) -> (String, String) {
    (
        message.topic_str().to_owned(),
        String::from_utf8_lossy(&message.payload).into_owned(),
    )
}

// --- the async client ---------------------------------------------------

// covers: MQTT-4.3.1-1, MQTT-4.3.2-1
#[tokio::test]
async fn mqtt_4_3_3_1_client_qos_0_1_2_round_trip_through_mosquitto() -> Result<()> {
    let Some(broker) = Mosquitto::start()? else {
        return Ok(());
    };
    bounded(async {
        let (client, mut messages) = connect(options(&broker.url(), "client-qos")?).await?;
        let granted = subscribe(&client, "client-qos/#", QoS::ExactlyOnce).await?;
        ensure!(granted == QoS::ExactlyOnce, "granted {granted:?}");
        let levels = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];
        for (n, qos) in levels.iter().enumerate() {
            publish(
                &client,
                &format!("client-qos/{n}"),
                &format!("p{n}"),
                *qos,
                false,
            )
            .await?;
        }
        let mut got = Vec::new();
        for _ in 0..levels.len() {
            let message = next(&mut messages).await?;
            got.push((text(&message), message.qos, message.retain));
        }
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let want: Vec<_> = levels
            .iter()
            .enumerate()
            .map(|(n, qos)| ((format!("client-qos/{n}"), format!("p{n}")), *qos, false))
            .collect();
        ensure!(got == want, "got {got:?}, want {want:?}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn client_gets_retained_message_flagged_from_mosquitto() -> Result<()> {
    let Some(broker) = Mosquitto::start()? else {
        return Ok(());
    };
    bounded(async {
        let (publisher, _) = connect(options(&broker.url(), "client-ret-pub")?).await?;
        publish(&publisher, "client-ret/t", "kept", QoS::AtLeastOnce, true).await?;
        let (late, mut messages) = connect(options(&broker.url(), "client-ret-late")?).await?;
        subscribe(&late, "client-ret/#", QoS::AtLeastOnce).await?;
        let message = next(&mut messages).await?;
        ensure!(
            text(&message) == ("client-ret/t".into(), "kept".into()) && message.retain,
            "late subscriber got {message:?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn client_resumes_persistent_session_on_mosquitto() -> Result<()> {
    let Some(broker) = Mosquitto::start()? else {
        return Ok(());
    };
    bounded(async {
        let persistent = || -> Result<ConnectOptions> {
            Ok(options(&broker.url(), "client-resume")?.with_clean_session(false))
        };
        let (first, _) = connect(persistent()?).await?;
        ensure!(!first.session_present(), "a fresh id had a session");
        subscribe(&first, "client-resume/t", QoS::AtLeastOnce).await?;
        first
            .disconnect()
            .await
            .map_err(|e| anyhow!("disconnect: {e:?}"))?;

        let (publisher, _) = connect(options(&broker.url(), "client-resume-pub")?).await?;
        for i in 0..3 {
            let payload = format!("offline-{i}");
            publish(
                &publisher,
                "client-resume/t",
                &payload,
                QoS::AtLeastOnce,
                false,
            )
            .await?;
        }

        let (again, mut messages) = connect(persistent()?).await?;
        ensure!(again.session_present(), "mosquitto kept no session for us");
        for i in 0..3 {
            let message = next(&mut messages).await?;
            let want = ("client-resume/t".to_owned(), format!("offline-{i}"));
            ensure!(text(&message) == want, "message {i}: got {message:?}");
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn client_will_published_when_its_connection_dies_not_on_disconnect() -> Result<()> {
    let Some(broker) = Mosquitto::start()? else {
        return Ok(());
    };
    bounded(async {
        let (watcher, mut seen) = connect(options(&broker.url(), "client-will-watch")?).await?;
        subscribe(&watcher, "client-will/#", QoS::AtLeastOnce).await?;

        let will = |who: &'static str| -> Result<LastWill> {
            Ok(LastWill {
                topic: Topic::new(&format!("client-will/{who}"))
                    .map_err(|e| anyhow!("will topic: {e:?}"))?,
                message: format!("{who}-gone").into(),
                qos: QoS::AtLeastOnce,
                retain: false,
            })
        };

        // A connection that dies under the client: its will is published.
        let proxy = TcpProxy::start(broker.addr())?;
        let proxied = format!("mqtt://127.0.0.1:{}", proxy.port());
        let (_doomed, _) = connect(
            options(&proxied, "client-will-doomed")?
                .with_will(will("doomed")?)
                .with_reconnect(Reconnect::disabled()),
        )
        .await?;
        proxy.cut();
        let message = next(&mut seen).await?;
        ensure!(
            text(&message) == ("client-will/doomed".into(), "doomed-gone".into()),
            "after the cut: {message:?}"
        );

        // A clean DISCONNECT: no will; the marker published after it comes first.
        let (polite, _) =
            connect(options(&broker.url(), "client-will-polite")?.with_will(will("polite")?))
                .await?;
        polite
            .disconnect()
            .await
            .map_err(|e| anyhow!("disconnect: {e:?}"))?;
        publish(
            &watcher,
            "client-will/marker",
            "marker",
            QoS::AtLeastOnce,
            false,
        )
        .await?;
        let message = next(&mut seen).await?;
        ensure!(
            text(&message) == ("client-will/marker".into(), "marker".into()),
            "after a clean disconnect: {message:?}"
        );
        Ok(())
    })
    .await
}

// --- the `midge` command ------------------------------------------------

/// `midge ARGS..` with the broker's host and port.
fn midge(broker: &Mosquitto, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_midge"));
    cmd.args(args)
        .args(["-h", "127.0.0.1", "-p", &broker.port().to_string()]);
    cmd
}

/// Runs `midge pub ARGS..` to a successful end.
fn midge_pub(broker: &Mosquitto, args: &[&str]) -> Result<()> {
    let mut cmd = midge(broker, &[&["pub"], args].concat());
    Process::run("midge pub", &mut cmd, STARTUP_TIMEOUT)?;
    Ok(())
}

/// Starts `midge sub -v ARGS.. -t SYNC` and waits until it prints the
/// retained sync message: `midge sub` subscribes to its filters in order, so
/// by then every filter before SYNC is in place. The caller must have
/// published `ready` retained to `sync`.
fn midge_sub_ready(broker: &Mosquitto, args: &[&str], sync: &str) -> Result<Process> {
    let mut cmd = midge(broker, &[&["sub", "-v"], args, &["-t", sync]].concat());
    let process = Process::spawn("midge sub", &mut cmd)?;
    let want = format!("{sync} ready");
    process
        .stdout()
        .wait_for(STARTUP_TIMEOUT, |line| line == want)
        .context("midge sub never printed the sync message")?;
    Ok(process)
}

/// `topic payload` lines of a `midge sub -v`, the sync message left out.
fn data_lines(lines: &[String], sync: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|line| !line.starts_with(sync))
        .cloned()
        .collect()
}

#[test]
fn cli_pub_and_sub_qos_0_1_2_through_mosquitto() -> Result<()> {
    let Some(broker) = Mosquitto::start()? else {
        return Ok(());
    };
    let Some(clients) = MosquittoClients::find()? else {
        return Ok(());
    };
    // A mosquitto_sub at QoS 2 shows the level each `midge pub -q N` used.
    let witness = clients.subscribe(broker.port(), &["-q", "2", "-t", "cli-qos/#"])?;
    midge_pub(
        &broker,
        &["-t", "cli-sync/qos", "-m", "ready", "-r", "-q", "1"],
    )?;
    let mut sub = midge_sub_ready(
        &broker,
        &["-q", "2", "-t", "cli-qos/#", "-C", "4", "-W", "20"],
        "cli-sync/qos",
    )?;
    for q in 0..=2 {
        let (topic, payload, qos) = (format!("cli-qos/{q}"), format!("p{q}"), q.to_string());
        midge_pub(&broker, &["-t", &topic, "-m", &payload, "-q", &qos])?;
    }
    let status = sub.wait_timeout(Duration::from_secs(20))?;
    ensure!(status.success(), "midge sub -C 4 ended with {status}");
    let mut got = data_lines(&sub.stdout().wait_closed(WAIT)?, "cli-sync");
    got.sort();
    ensure!(
        got == ["cli-qos/0 p0", "cli-qos/1 p1", "cli-qos/2 p2"],
        "midge sub printed {got:?}"
    );
    let mut seen: Vec<(String, u8)> = witness
        .wait_messages(3, WAIT)?
        .into_iter()
        .map(|m| (m.topic, m.qos))
        .collect();
    seen.sort();
    let want: Vec<(String, u8)> = (0..=2u8).map(|q| (format!("cli-qos/{q}"), q)).collect();
    ensure!(seen == want, "mosquitto_sub saw {seen:?}, want {want:?}");
    Ok(())
}

#[test]
fn cli_pub_retained_reaches_a_later_midge_sub() -> Result<()> {
    let Some(broker) = Mosquitto::start()? else {
        return Ok(());
    };
    let Some(clients) = MosquittoClients::find()? else {
        return Ok(());
    };
    midge_pub(&broker, &["-t", "cli-ret/t", "-m", "kept", "-r", "-q", "1"])?;
    let mut cmd = midge(
        &broker,
        &[
            "sub",
            "-v",
            "-q",
            "1",
            "-t",
            "cli-ret/t",
            "-C",
            "1",
            "-W",
            "10",
        ],
    );
    let got = Process::run("midge sub", &mut cmd, Duration::from_secs(20))?;
    ensure!(got == ["cli-ret/t kept"], "midge sub printed {got:?}");
    // And mosquitto stored it as retained: its own client sees the flag.
    let seen = clients.subscribe_until_exit(
        broker.port(),
        &["-q", "1", "-t", "cli-ret/t", "-C", "1", "-W", "10"],
        Duration::from_secs(20),
    )?;
    ensure!(
        seen.first()
            .is_some_and(|m| m.retain && m.payload == "kept"),
        "mosquitto_sub saw {seen:?}"
    );
    Ok(())
}

#[test]
fn cli_sub_resumes_persistent_session_on_mosquitto() -> Result<()> {
    let Some(broker) = Mosquitto::start()? else {
        return Ok(());
    };
    midge_pub(
        &broker,
        &["-t", "cli-sync/resume", "-m", "ready", "-r", "-q", "1"],
    )?;
    // Subscribe with a persistent session, then leave once the sync arrives.
    let persistent = ["-c", "-i", "cli-resume", "-q", "1", "-t", "cli-resume/t"];
    let mut first = midge_sub_ready(
        &broker,
        &[&persistent[..], &["-C", "1", "-W", "10"]].concat(),
        "cli-sync/resume",
    )?;
    let status = first.wait_timeout(Duration::from_secs(20))?;
    ensure!(status.success(), "first midge sub ended with {status}");
    for i in 0..3 {
        let payload = format!("offline-{i}");
        midge_pub(&broker, &["-t", "cli-resume/t", "-m", &payload, "-q", "1"])?;
    }
    let mut cmd = midge(
        &broker,
        &[&["sub", "-v"], &persistent[..], &["-C", "3", "-W", "10"]].concat(),
    );
    let got = Process::run("midge sub", &mut cmd, Duration::from_secs(20))?;
    ensure!(
        got == [
            "cli-resume/t offline-0",
            "cli-resume/t offline-1",
            "cli-resume/t offline-2"
        ],
        "resumed midge sub printed {got:?}"
    );
    Ok(())
}

#[test]
fn cli_sub_will_published_when_killed() -> Result<()> {
    let Some(broker) = Mosquitto::start()? else {
        return Ok(());
    };
    let Some(clients) = MosquittoClients::find()? else {
        return Ok(());
    };
    let watcher = clients.subscribe(broker.port(), &["-q", "1", "-t", "cli-will/#"])?;
    midge_pub(
        &broker,
        &["-t", "cli-sync/will", "-m", "ready", "-r", "-q", "1"],
    )?;
    let will = [
        "--will-topic",
        "cli-will/doomed",
        "--will-payload",
        "doomed-gone",
        "--will-qos",
        "1",
    ];
    let mut doomed = midge_sub_ready(
        &broker,
        &[&will[..], &["-t", "cli-ignored"]].concat(),
        "cli-sync/will",
    )?;
    // SIGKILL: no DISCONNECT reaches the broker.
    doomed.kill();
    let seen = watcher.wait_messages(1, WAIT)?;
    let Some(first) = seen.first() else {
        bail!("no will");
    };
    ensure!(
        (first.topic.as_str(), first.payload.as_str(), first.qos)
            == ("cli-will/doomed", "doomed-gone", 1),
        "watcher saw {seen:?}"
    );
    Ok(())
}
