//! `persistence` in the real `midged`: a durable broker stopped with
//! SIGTERM comes back with its persistent sessions, their queued messages
//! and its retained messages; `--persistence none` comes back empty; a data
//! directory is used by one broker at a time; the shard count it was
//! written with is kept.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod crash_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crash_support::{midged, midged_with, temp_dir, Raw, WAIT};
use midge_codec::{Packet, QoS};
use midge_testkit::{Midged, Process};

/// SIGTERM, once the broker is ready (its signal handlers are installed
/// then), and waits for the graceful stop.
fn terminate(broker: &mut Midged) {
    broker
        .process()
        .stderr()
        .wait_for(WAIT, |l| l.contains(" ready"))
        .unwrap();
    let pid = broker.process().id();
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
    broker
        .process()
        .stderr()
        .wait_for(WAIT, |l| l.contains("stopped"))
        .unwrap();
}

/// Subscribes `id` persistently to `topic/#`, goes offline, and has two
/// QoS 1 messages and one retained message published.
fn fill(broker: &Midged, id: &str, topic: &str) {
    let (mut sub, _) = Raw::connect(broker.addr(), id, false).unwrap();
    sub.subscribe(&format!("{topic}/#"), QoS::AtLeastOnce);
    sub.send(&Packet::Disconnect).unwrap();
    let (mut p, _) = Raw::connect(broker.addr(), &format!("{id}-pub"), true).unwrap();
    p.publish(&format!("{topic}/a"), QoS::AtLeastOnce, b"one", false)
        .unwrap();
    p.publish(&format!("{topic}/a"), QoS::ExactlyOnce, b"two", false)
        .unwrap();
    p.publish(&format!("{topic}-kept"), QoS::AtLeastOnce, b"kept", true)
        .unwrap();
    p.send(&Packet::Disconnect).unwrap();
}

/// [MQTT-3.1.2-4] [MQTT-3.1.2-5] across a restart of the process: the
/// session, its queued QoS 1/2 messages and the retained message are there.
#[test]
fn mqtt_3_1_2_4_durable_session_and_retained_survive_a_restart() {
    let dir = temp_dir("restart");
    let mut broker = midged(&dir);
    fill(&broker, "keeper", "keep");
    terminate(&mut broker);
    drop(broker);
    let broker = midged(&dir);
    let (mut sub, present) = Raw::connect(broker.addr(), "keeper", false).unwrap();
    assert!(present, "session lost across the restart");
    let got = sub.drain(Duration::from_secs(1));
    let payloads: Vec<&[u8]> = got.iter().map(|p| &p.payload[..]).collect();
    assert_eq!(payloads, vec![&b"one"[..], &b"two"[..]]);
    let (mut r, _) = Raw::connect(broker.addr(), "kept-reader", true).unwrap();
    r.subscribe("keep-kept", QoS::AtLeastOnce);
    let kept = r.drain(Duration::from_secs(1));
    assert_eq!(kept.len(), 1);
    assert_eq!(&kept[0].payload[..], b"kept");
    assert!(kept[0].retain);
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--persistence none`: a restart starts empty (and writes nothing).
#[test]
fn persistence_none_forgets_everything_on_restart() {
    let dir = temp_dir("none");
    let args = ["--persistence", "none", "--data-dir", dir.to_str().unwrap()];
    let program = Path::new(env!("CARGO_BIN_EXE_midged"));
    let mut broker = Midged::start(program, &args).unwrap();
    fill(&broker, "forgetful", "gone");
    terminate(&mut broker);
    drop(broker);
    let broker = Midged::start(program, &args).unwrap();
    let (_sub, present) = Raw::connect(broker.addr(), "forgetful", false).unwrap();
    assert!(!present);
    assert!(!dir.exists(), "--persistence none wrote {}", dir.display());
}

/// Two brokers on one data directory: the second stops with exit code 1.
#[test]
fn a_data_directory_in_use_stops_the_second_broker() {
    let dir = temp_dir("locked");
    let first = midged(&dir);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_midged"));
    cmd.args(["--bind", "127.0.0.1:0", "--data-dir", dir.to_str().unwrap()]);
    let mut second = Process::spawn("midged", &mut cmd).unwrap();
    let status = second.wait_timeout(WAIT).unwrap();
    assert_eq!(status.code(), Some(1));
    let out = second.stderr().wait_closed(WAIT).unwrap().join("\n");
    assert!(out.contains("in use"), "{out}");
    drop(first);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The data directory records its shard count; a start with another count
/// runs with the recorded one, so each client id finds its session.
#[test]
fn the_recorded_shard_count_wins_over_the_configured_one() {
    let dir = temp_dir("shards");
    std::fs::create_dir_all(&dir).unwrap();
    let three = dir.join("three.toml");
    std::fs::write(&three, "shards = 3\n").unwrap();
    let one = dir.join("one.toml");
    std::fs::write(&one, "shards = 1\n").unwrap();
    let data = dir.join("data");
    let mut broker = midged_with(&data, &["-c", three.to_str().unwrap()]);
    fill(&broker, "sharded", "sh");
    terminate(&mut broker);
    drop(broker);
    assert_eq!(
        std::fs::read_to_string(data.join("shards")).unwrap().trim(),
        "3"
    );
    let broker = midged_with(&data, &["-c", one.to_str().unwrap()]);
    broker
        .process()
        .stderr()
        .wait_for(WAIT, |l| l.contains("router shards; running with 3"))
        .unwrap();
    let (mut sub, present) = Raw::connect(broker.addr(), "sharded", false).unwrap();
    assert!(present);
    assert_eq!(sub.drain(Duration::from_secs(1)).len(), 2);
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
}
