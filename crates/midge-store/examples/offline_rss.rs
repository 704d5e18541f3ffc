//! Measures the memory of many offline persistent sessions with long
//! queues, on a `DiskStore` with a bounded in-memory share per queue.
//!
//! `cargo run --release -p midge-store --example offline_rss -- SESSIONS MESSAGES SHARE DIR`
//! (defaults: 100000 sessions, 100 messages of 64 bytes each, a share of
//! 8, a temporary directory). Every session subscribes to one topic, so each
//! message is stored once and referenced from every queue. Prints the
//! resident set size (Linux `/proc/self/status`) before, after queueing,
//! and after a restart that recovers the sessions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Instant as Clock;

use bytes::Bytes;
use midge_broker::router::{Action, AllowAll, ConnId, ConnectRequest, Router};
use midge_broker::{ResumeState, RouterConfig};
use midge_codec::{Filter, MqttString, PacketId, Publish, QoS, QosPid, SubscribeFilter, Topic};
use midge_store::DiskStore;
use midge_time::Instant;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (sessions, messages, share) = (arg(1, 100_000), arg(2, 100), arg(3, 8));
    let tmp = tempfile::tempdir().unwrap();
    let dir = args
        .get(4)
        .map_or_else(|| tmp.path().join("store"), std::path::PathBuf::from);
    let now = Instant::from_secs(1);
    let config = RouterConfig {
        offline_memory_messages: share,
        max_sessions: sessions + 10,
        max_connections: sessions + 10,
        ..RouterConfig::default()
    };
    println!("rss at start: {} KiB", rss_kib());
    let started = Clock::now();
    let store = DiskStore::open(&dir).unwrap().store;
    let mut r = Router::new(config.clone(), store, AllowAll);
    let filter = vec![SubscribeFilter::new(
        Filter::new("fan/out").unwrap(),
        QoS::AtLeastOnce,
    )];
    for i in 0..sessions {
        let conn = ConnId(i as u64);
        let id = MqttString::new(&format!("client-{i:06}")).unwrap();
        r.handle_connect(now, conn, ConnectRequest::new(id, false));
        r.handle_subscribe(now, conn, PacketId::new(1).unwrap(), filter.clone());
        r.handle_closed(now, conn, false, ResumeState::default());
        while r.poll_action().is_some() {}
        if i % 10_000 == 0 {
            r.commit().unwrap();
        }
    }
    r.commit().unwrap();
    println!(
        "{sessions} sessions subscribed in {:.1} s, rss {} KiB",
        started.elapsed().as_secs_f64(),
        rss_kib()
    );
    let publisher = ConnId(u64::MAX);
    r.handle_connect(
        now,
        publisher,
        ConnectRequest::new(MqttString::new("pub").unwrap(), true),
    );
    let started = Clock::now();
    for m in 0..messages {
        let payload = Bytes::from(vec![b'a' + u8::try_from(m % 26).unwrap_or(0); 64]);
        let p = Publish::new(
            Topic::new("fan/out").unwrap(),
            QosPid::AtLeastOnce(PacketId::new(1).unwrap()),
            payload,
        );
        r.handle_publish(now, publisher, p);
        while let Some(a) = r.poll_action() {
            if let Action::Deliver { .. } = a {
                panic!("nobody is online");
            }
        }
        r.commit().unwrap();
    }
    println!(
        "{messages} messages queued for each session in {:.1} s ({} queue entries), rss {} KiB",
        started.elapsed().as_secs_f64(),
        r.store().queue_entry_count().unwrap(),
        rss_kib()
    );
    drop(r);
    let started = Clock::now();
    let opened = DiskStore::open(&dir).unwrap();
    assert!(opened.recovery.is_none());
    let mut r = Router::new(config, opened.store, AllowAll);
    r.recover(now).unwrap();
    println!(
        "restart: {} sessions recovered in {:.1} s, {} queued for the first, {} of them in memory, rss {} KiB",
        r.session_count(),
        started.elapsed().as_secs_f64(),
        r.offline_len("client-000000"),
        r.offline_memory_len("client-000000"),
        rss_kib()
    );
}
