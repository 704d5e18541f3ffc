//! The broker's router on a `DiskStore`: a persistent session's
//! subscriptions, queue, inflight state and inbound QoS 2 ids, and retained
//! messages, come back after the store is closed and opened again.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

use bytes::Bytes;
use midge_broker::router::{Action, AllowAll, ConnId, ConnectRequest, Router};
use midge_broker::{InflightMessage, ResumeState, RouterConfig};
use midge_codec::{Filter, MqttString, PacketId, Publish, QoS, QosPid, SubscribeFilter, Topic};
use midge_store::DiskStore;
use midge_time::Instant;

const T0: Instant = Instant::from_secs(5);

type R = Router<DiskStore, AllowAll>;

fn open(path: &Path, config: RouterConfig) -> R {
    let opened = DiskStore::open(path).unwrap();
    assert!(opened.recovery.is_none(), "{:?}", opened.recovery);
    let mut r = Router::new(config, opened.store, AllowAll);
    r.recover(T0).unwrap();
    r
}

fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

fn drain(r: &mut R) -> Vec<Action> {
    core::iter::from_fn(|| r.poll_action()).collect()
}

fn connect(r: &mut R, conn: u64, id: &str, clean: bool) -> (bool, ResumeState, Vec<Action>) {
    r.handle_connect(
        T0,
        ConnId(conn),
        ConnectRequest::new(MqttString::new(id).unwrap(), clean),
    );
    let mut actions = drain(r);
    match actions.remove(0) {
        Action::Accept {
            session_present,
            resume,
            ..
        } => (session_present, resume, actions),
        other => panic!("expected Accept, got {other:?}"),
    }
}

fn message(topic: &str, qos: QoS, body: &str, retain: bool) -> Publish {
    let qos_pid = match qos {
        QoS::AtMostOnce => QosPid::AtMostOnce,
        QoS::AtLeastOnce => QosPid::AtLeastOnce(pid(3)),
        QoS::ExactlyOnce => QosPid::ExactlyOnce(pid(3)),
    };
    let mut p = Publish::new(
        Topic::new(topic).unwrap(),
        qos_pid,
        Bytes::from(body.to_string()),
    );
    p.retain = retain;
    p
}

fn bodies(ps: &[Publish]) -> Vec<String> {
    ps.iter()
        .map(|p| String::from_utf8(p.payload.to_vec()).unwrap())
        .collect()
}

#[test]
fn persistent_sessions_and_retained_messages_survive_a_restart_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let config = RouterConfig {
        offline_memory_messages: 8,
        ..RouterConfig::default()
    };
    {
        let mut r = open(&path, config.clone());
        for (conn, id) in [(1, "a"), (2, "b")] {
            connect(&mut r, conn, id, false);
            let f = vec![SubscribeFilter::new(
                Filter::new("t/#").unwrap(),
                QoS::ExactlyOnce,
            )];
            r.handle_subscribe(T0, ConnId(conn), pid(1), f);
            drain(&mut r);
        }
        let mut sent = message("t/x", QoS::ExactlyOnce, "sent", false);
        sent.qos_pid = QosPid::ExactlyOnce(pid(40));
        let state = ResumeState {
            inflight: vec![
                InflightMessage::Publish(sent),
                InflightMessage::PubRel(pid(41)),
            ],
            queued: Vec::new(),
            inbound_qos2: vec![pid(42)],
            subscriptions: Vec::new(),
        };
        r.handle_closed(T0, ConnId(1), false, state);
        r.handle_closed(T0, ConnId(2), false, ResumeState::default());
        connect(&mut r, 3, "pub", true);
        for i in 0..50 {
            let q = if i % 2 == 0 {
                QoS::AtLeastOnce
            } else {
                QoS::ExactlyOnce
            };
            r.handle_publish(T0, ConnId(3), message("t/x", q, &format!("m{i}"), false));
        }
        r.handle_publish(
            T0,
            ConnId(3),
            message("t/r", QoS::AtLeastOnce, "kept", true),
        );
        assert!(r.commit().unwrap().is_some());
        // 51 queued messages (the retained one matches too) for two
        // sessions, stored once each.
        assert_eq!(r.store().message_count().unwrap(), 51);
        assert_eq!(r.store().queue_entry_count().unwrap(), 102);
    }
    let mut r = open(&path, config);
    assert_eq!(
        r.retained("t/r").unwrap().payload,
        Bytes::from_static(b"kept")
    );
    assert_eq!(r.offline_len("a"), 2 + 51);
    assert_eq!(r.offline_memory_len("a"), 2 + 8);
    let (present, resume, mut actions) = connect(&mut r, 4, "a", false);
    assert!(present);
    match &resume.inflight[..] {
        [InflightMessage::Publish(p), InflightMessage::PubRel(rel)] => {
            assert_eq!(p.qos_pid, QosPid::ExactlyOnce(pid(40)));
            assert_eq!(*rel, pid(41));
        }
        other => panic!("inflight lost: {other:?}"),
    }
    assert_eq!(resume.inbound_qos2, vec![pid(42)]);
    let mut got = bodies(&resume.queued);
    for _ in 0..20 {
        let chunk: Vec<Publish> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Deliver { publish, .. } => Some(publish.clone()),
                _ => None,
            })
            .collect();
        if chunk.is_empty() {
            break;
        }
        got.extend(bodies(&chunk));
        for _ in &chunk {
            r.handle_delivery(
                T0,
                ConnId(4),
                None,
                midge_broker::DeliverOutcome::Sent,
                false,
            );
        }
        actions = drain(&mut r);
    }
    let mut want: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    want.push("kept".to_string());
    assert_eq!(got, want);
    // Their QoS came back with them.
    assert_eq!(resume.queued[1].qos(), QoS::ExactlyOnce);
}
