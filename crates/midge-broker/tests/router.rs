//! Router tests at the level of its inputs and actions (no sessions, no
//! bytes): the registry, subscriptions, retained messages, wills, share
//! groups, limits and the auth and store hooks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use midge_broker::router::{Action, AllowAll, Auth, ConnId, ConnectRequest, MemoryStore, Router};
use midge_broker::{InflightMessage, OverflowPolicy, ResumeState, RouterConfig};
use midge_codec::{
    ConnectReturnCode, Filter, LastWill, MqttString, PacketId, Publish, QoS, QosPid,
    SubscribeFilter, SubscribeReturnCode, Topic,
};
use midge_time::{Duration, Instant};

type R = Router<MemoryStore, AllowAll>;

const T0: Instant = Instant::from_secs(10);

fn router(config: RouterConfig) -> R {
    Router::new(config, MemoryStore::new(), AllowAll)
}

fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

fn drain<S: midge_broker::Store, A: Auth>(r: &mut Router<S, A>) -> Vec<Action> {
    core::iter::from_fn(|| r.poll_action()).collect()
}

fn request(id: &str, clean: bool) -> ConnectRequest {
    ConnectRequest::new(MqttString::new(id).unwrap(), clean)
}

/// Connects and returns (session_present, resume).
fn connect<S: midge_broker::Store, A: Auth>(
    r: &mut Router<S, A>,
    conn: u64,
    id: &str,
    clean: bool,
) -> (bool, ResumeState) {
    r.handle_connect(T0, ConnId(conn), request(id, clean));
    match drain(r).as_slice() {
        [Action::Accept {
            conn: c,
            session_present,
            resume,
        }] if *c == ConnId(conn) => (*session_present, resume.clone()),
        other => panic!("expected one Accept, got {other:?}"),
    }
}

fn subscribe<S: midge_broker::Store, A: Auth>(
    r: &mut Router<S, A>,
    conn: u64,
    filters: &[(&str, QoS)],
) -> (Vec<SubscribeReturnCode>, Vec<Action>) {
    let filters = filters
        .iter()
        .map(|(f, q)| SubscribeFilter::new(Filter::new(f).unwrap(), *q))
        .collect();
    r.handle_subscribe(T0, ConnId(conn), pid(1), filters);
    let mut actions = drain(r);
    assert!(!actions.is_empty());
    match actions.remove(0) {
        Action::SubAck {
            conn: c, results, ..
        } if c == ConnId(conn) => (results, actions),
        other => panic!("expected SubAck, got {other:?}"),
    }
}

fn publish(topic: &str, qos: QoS, retain: bool, payload: &'static [u8]) -> Publish {
    let qos_pid = match qos {
        QoS::AtMostOnce => QosPid::AtMostOnce,
        QoS::AtLeastOnce => QosPid::AtLeastOnce(pid(9)),
        QoS::ExactlyOnce => QosPid::ExactlyOnce(pid(9)),
    };
    let mut p = Publish::new(
        Topic::new(topic).unwrap(),
        qos_pid,
        Bytes::from_static(payload),
    );
    p.retain = retain;
    p
}

/// The (conn, topic, qos, retain, payload) of every Deliver.
fn deliveries(actions: &[Action]) -> Vec<(u64, String, QoS, bool, Vec<u8>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Deliver { conn, publish } => Some((
                conn.0,
                publish.topic.as_str().to_string(),
                publish.qos(),
                publish.retain,
                publish.payload.to_vec(),
            )),
            _ => None,
        })
        .collect()
}

fn pub_from(r: &mut R, conn: u64, p: Publish) -> Vec<(u64, String, QoS, bool, Vec<u8>)> {
    r.handle_publish(T0, ConnId(conn), p);
    deliveries(&drain(r))
}

#[test]
fn mqtt_3_1_4_2_takeover_closes_first_connection_and_carries_its_state() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "dev", false);
    subscribe(&mut r, 1, &[("a/#", QoS::AtLeastOnce)]);
    r.handle_connect(T0, ConnId(2), request("dev", false));
    assert_eq!(drain(&mut r), vec![Action::Close { conn: ConnId(1) }]);
    // A message routed during the handover is kept for the new connection.
    r.handle_publish(
        T0,
        ConnId(2),
        publish("a/x", QoS::AtLeastOnce, false, b"gap"),
    );
    assert!(drain(&mut r).is_empty());
    let old = ResumeState {
        inflight: vec![InflightMessage::Publish(publish(
            "a/y",
            QoS::AtLeastOnce,
            false,
            b"old",
        ))],
        ..ResumeState::default()
    };
    r.handle_closed(T0, ConnId(1), true, old);
    let actions = drain(&mut r);
    let [Action::Accept {
        conn,
        session_present,
        resume,
    }] = actions.as_slice()
    else {
        panic!("{actions:?}")
    };
    assert_eq!(*conn, ConnId(2));
    assert!(session_present);
    assert_eq!(resume.inflight.len(), 1);
    assert_eq!(resume.queued.len(), 1);
    assert_eq!(resume.queued[0].payload.as_ref(), b"gap");
    assert_eq!(resume.subscriptions, vec![Filter::new("a/#").unwrap()]);
    // A late close of the old connection changes nothing.
    r.handle_closed(T0, ConnId(1), true, ResumeState::default());
    assert_eq!(r.stats().unknown_connections, 1);
    assert_eq!(
        pub_from(&mut r, 2, publish("a/z", QoS::AtMostOnce, false, b"")).len(),
        1
    );
    // The takeover did not publish the old connection's will.
    assert_eq!(r.stats().wills_published, 0);
}

// covers: MQTT-3.2.2-2
#[test]
fn mqtt_3_1_2_4_persistent_session_keeps_subscriptions_while_offline() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "p", false);
    subscribe(&mut r, 1, &[("t", QoS::ExactlyOnce)]);
    r.handle_closed(T0, ConnId(1), false, ResumeState::default());
    assert!(r.has_session("p"));
    assert_eq!(r.store().subscriptions("p").len(), 1);
    let (present, resume) = connect(&mut r, 2, "p", false);
    assert!(present);
    assert_eq!(resume.subscriptions, vec![Filter::new("t").unwrap()]);
    assert_eq!(
        pub_from(&mut r, 2, publish("t", QoS::ExactlyOnce, false, b"x")).len(),
        1
    );
}

#[test]
fn mqtt_3_1_2_5_offline_persistent_session_queues_qos1_and_qos2_only() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "p", false);
    subscribe(&mut r, 1, &[("t", QoS::ExactlyOnce)]);
    r.handle_closed(T0, ConnId(1), false, ResumeState::default());
    connect(&mut r, 2, "pub", true);
    for (q, body) in [
        (QoS::AtMostOnce, &b"0"[..]),
        (QoS::AtLeastOnce, b"1"),
        (QoS::ExactlyOnce, b"2"),
    ] {
        let p = Publish::new(
            Topic::new("t").unwrap(),
            match q {
                QoS::AtMostOnce => QosPid::AtMostOnce,
                QoS::AtLeastOnce => QosPid::AtLeastOnce(pid(3)),
                QoS::ExactlyOnce => QosPid::ExactlyOnce(pid(4)),
            },
            Bytes::copy_from_slice(body),
        );
        assert!(pub_from(&mut r, 2, p).is_empty());
    }
    assert_eq!(r.offline_len("p"), 2);
    assert_eq!(r.stats().offline_dropped_qos0, 1);
    assert_eq!(r.store().queued("p").len(), 2);
    let (present, resume) = connect(&mut r, 3, "p", false);
    assert!(present);
    let bodies: Vec<_> = resume.queued.iter().map(|p| p.payload.to_vec()).collect();
    assert_eq!(bodies, vec![b"1".to_vec(), b"2".to_vec()]);
    // Handed to the connection, they stay recorded until the session's
    // state replaces them: a crash now would find them again.
    assert_eq!(r.store().queued("p").len(), 2);
    r.checkpoint(T0, ConnId(3), &ResumeState::default(), 0);
    assert!(r.store().queued("p").is_empty());
    assert_eq!(r.store().message_count(), 0);
}

#[test]
fn mqtt_3_1_2_6_clean_session_discards_state_at_connect_and_close() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "c", false);
    subscribe(&mut r, 1, &[("t", QoS::AtLeastOnce)]);
    r.handle_closed(T0, ConnId(1), false, ResumeState::default());
    let (present, resume) = connect(&mut r, 2, "c", true);
    assert!(!present);
    assert!(resume.is_empty());
    assert!(r.subscriptions("c").is_empty());
    assert!(!r.store().has_session("c"));
    subscribe(&mut r, 2, &[("t", QoS::AtLeastOnce)]);
    r.handle_closed(T0, ConnId(2), false, ResumeState::default());
    assert!(!r.has_session("c"));
    connect(&mut r, 3, "x", true);
    assert!(pub_from(&mut r, 3, publish("t", QoS::AtLeastOnce, false, b"")).is_empty());
}

#[test]
fn mqtt_3_3_5_1_overlapping_subscriptions_deliver_once_at_highest_qos() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "s", true);
    subscribe(
        &mut r,
        1,
        &[
            ("a/+", QoS::AtMostOnce),
            ("a/#", QoS::AtLeastOnce),
            ("a/b", QoS::AtMostOnce),
        ],
    );
    let got = pub_from(&mut r, 1, publish("a/b", QoS::ExactlyOnce, false, b"m"));
    assert_eq!(
        got,
        vec![(1, "a/b".into(), QoS::AtLeastOnce, false, b"m".to_vec())]
    );
    // Downgrade never upgrades: a QoS 0 message stays QoS 0.
    let got = pub_from(&mut r, 1, publish("a/b", QoS::AtMostOnce, false, b"m"));
    assert_eq!(got[0].2, QoS::AtMostOnce);
}

#[test]
fn mqtt_3_8_4_3_repeat_subscribe_replaces_qos_and_resends_retained() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "s", true);
    pub_from(&mut r, 1, publish("r", QoS::ExactlyOnce, true, b"kept"));
    let (codes, first) = subscribe(&mut r, 1, &[("r", QoS::AtMostOnce)]);
    assert_eq!(codes, vec![SubscribeReturnCode::Success(QoS::AtMostOnce)]);
    assert_eq!(
        deliveries(&first),
        vec![(1, "r".into(), QoS::AtMostOnce, true, b"kept".to_vec())]
    );
    let (_, again) = subscribe(&mut r, 1, &[("r", QoS::ExactlyOnce)]);
    assert_eq!(
        deliveries(&again),
        vec![(1, "r".into(), QoS::ExactlyOnce, true, b"kept".to_vec())]
    );
    assert_eq!(r.subscriptions("s").len(), 1);
    let live = pub_from(&mut r, 1, publish("r", QoS::ExactlyOnce, false, b"live"));
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].2, QoS::ExactlyOnce);
}

#[test]
fn mqtt_3_3_1_5_retained_message_is_stored_and_replaced() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "s", true);
    pub_from(&mut r, 1, publish("r", QoS::AtLeastOnce, true, b"one"));
    pub_from(&mut r, 1, publish("r", QoS::AtLeastOnce, true, b"two"));
    assert_eq!(r.retained("r").unwrap().payload.as_ref(), b"two");
    assert_eq!(r.store().retained("r").unwrap().payload.as_ref(), b"two");
    assert_eq!(r.retained_len(), 1);
}

#[test]
fn mqtt_3_3_1_7_retained_qos0_replaces_the_stored_message() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "s", true);
    pub_from(&mut r, 1, publish("r", QoS::ExactlyOnce, true, b"two"));
    pub_from(&mut r, 1, publish("r", QoS::AtMostOnce, true, b"zero"));
    let kept = r.retained("r").unwrap();
    assert_eq!(kept.qos(), QoS::AtMostOnce);
    assert_eq!(kept.payload.as_ref(), b"zero");
}

// covers: MQTT-3.3.1-8
#[test]
fn mqtt_3_3_1_6_and_8_new_subscription_gets_retained_with_retain_set() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "s", true);
    pub_from(&mut r, 1, publish("a/1", QoS::AtLeastOnce, true, b"1"));
    pub_from(&mut r, 1, publish("a/2", QoS::AtMostOnce, true, b"2"));
    pub_from(&mut r, 1, publish("b", QoS::AtMostOnce, true, b"b"));
    let (_, actions) = subscribe(&mut r, 1, &[("a/+", QoS::ExactlyOnce)]);
    let got = deliveries(&actions);
    assert_eq!(
        got,
        vec![
            (1, "a/1".into(), QoS::AtLeastOnce, true, b"1".to_vec()),
            (1, "a/2".into(), QoS::AtMostOnce, true, b"2".to_vec()),
        ]
    );
}

#[test]
fn mqtt_3_3_1_9_live_forwarding_clears_retain() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "s", true);
    subscribe(&mut r, 1, &[("r", QoS::AtLeastOnce)]);
    let got = pub_from(&mut r, 1, publish("r", QoS::AtLeastOnce, true, b"x"));
    assert_eq!(
        got,
        vec![(1, "r".into(), QoS::AtLeastOnce, false, b"x".to_vec())]
    );
}

// covers: MQTT-3.3.1-11
#[test]
fn mqtt_3_3_1_10_and_11_empty_retained_payload_is_forwarded_and_deletes() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "s", true);
    pub_from(&mut r, 1, publish("r", QoS::AtLeastOnce, true, b"x"));
    subscribe(&mut r, 1, &[("r", QoS::AtLeastOnce)]);
    let got = pub_from(&mut r, 1, publish("r", QoS::AtLeastOnce, true, b""));
    assert_eq!(got.len(), 1);
    assert!(r.retained("r").is_none());
    assert!(r.store().retained("r").is_none());
    let (_, actions) = subscribe(&mut r, 1, &[("r", QoS::AtLeastOnce)]);
    assert!(deliveries(&actions).is_empty());
}

#[test]
fn mqtt_3_3_1_12_publish_without_retain_leaves_store_untouched() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "s", true);
    pub_from(&mut r, 1, publish("r", QoS::AtLeastOnce, true, b"kept"));
    pub_from(&mut r, 1, publish("r", QoS::AtLeastOnce, false, b"other"));
    pub_from(&mut r, 1, publish("r", QoS::AtLeastOnce, false, b""));
    assert_eq!(r.retained("r").unwrap().payload.as_ref(), b"kept");
}

fn will(topic: &str) -> LastWill {
    LastWill {
        topic: Topic::new(topic).unwrap(),
        message: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: true,
    }
}

#[test]
fn mqtt_3_1_2_8_will_published_on_abnormal_close() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "watcher", true);
    subscribe(&mut r, 1, &[("wills/#", QoS::ExactlyOnce)]);
    let mut req = request("dev", true);
    req.will = Some(will("wills/dev"));
    r.handle_connect(T0, ConnId(2), req);
    drain(&mut r);
    r.handle_closed(T0, ConnId(2), true, ResumeState::default());
    let got = deliveries(&drain(&mut r));
    assert_eq!(
        got,
        vec![(
            1,
            "wills/dev".into(),
            QoS::AtLeastOnce,
            false,
            b"gone".to_vec()
        )]
    );
    assert_eq!(r.retained("wills/dev").unwrap().payload.as_ref(), b"gone");
    assert_eq!(r.stats().wills_published, 1);
}

#[test]
fn mqtt_3_1_2_10_will_dropped_after_disconnect() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "watcher", true);
    subscribe(&mut r, 1, &[("wills/#", QoS::ExactlyOnce)]);
    let mut req = request("dev", false);
    req.will = Some(will("wills/dev"));
    r.handle_connect(T0, ConnId(2), req);
    drain(&mut r);
    r.handle_closed(T0, ConnId(2), false, ResumeState::default());
    assert!(drain(&mut r).is_empty());
    // Resuming without a will and dropping abnormally publishes nothing.
    connect(&mut r, 3, "dev", false);
    r.handle_closed(T0, ConnId(3), true, ResumeState::default());
    assert!(drain(&mut r).is_empty());
    assert_eq!(r.stats().wills_published, 0);
}

#[test]
fn mqtt_4_7_2_1_wildcard_subscriptions_do_not_receive_dollar_topics() {
    let config = RouterConfig {
        allow_client_sys_publish: true,
        ..RouterConfig::default()
    };
    let mut r = router(config);
    connect(&mut r, 1, "s", true);
    subscribe(
        &mut r,
        1,
        &[("#", QoS::AtMostOnce), ("+/x", QoS::AtMostOnce)],
    );
    assert!(pub_from(&mut r, 1, publish("$SYS/x", QoS::AtMostOnce, false, b"")).is_empty());
    subscribe(&mut r, 1, &[("$SYS/#", QoS::AtMostOnce)]);
    assert_eq!(
        pub_from(&mut r, 1, publish("$SYS/x", QoS::AtMostOnce, false, b"")).len(),
        1
    );
}

#[test]
fn client_publish_to_sys_is_ignored_by_default() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "s", true);
    subscribe(&mut r, 1, &[("$SYS/#", QoS::AtMostOnce)]);
    assert!(pub_from(&mut r, 1, publish("$SYS/x", QoS::AtMostOnce, true, b"v")).is_empty());
    assert!(r.retained("$SYS/x").is_none());
    assert_eq!(r.stats().sys_publishes_dropped, 1);
}

#[test]
fn shared_subscription_delivers_to_one_member_round_robin() {
    let mut r = router(RouterConfig::default());
    for (c, id) in [(1, "w1"), (2, "w2"), (3, "w3")] {
        connect(&mut r, c, id, true);
        subscribe(&mut r, c, &[("$share/g/jobs/+", QoS::AtLeastOnce)]);
    }
    let mut order = Vec::new();
    for _ in 0..6 {
        let got = pub_from(&mut r, 1, publish("jobs/a", QoS::AtLeastOnce, false, b"j"));
        assert_eq!(got.len(), 1);
        order.push(got[0].0);
    }
    assert_eq!(order, vec![1, 2, 3, 1, 2, 3]);
    // Each group gets one copy and a plain subscription its own: a share
    // group is a subscription of its own, so client 4, a member of group h
    // and a plain subscriber, gets two.
    connect(&mut r, 4, "other", true);
    subscribe(
        &mut r,
        4,
        &[
            ("$share/h/jobs/#", QoS::AtMostOnce),
            ("jobs/a", QoS::AtMostOnce),
        ],
    );
    let got = pub_from(&mut r, 1, publish("jobs/a", QoS::AtLeastOnce, false, b"j"));
    assert_eq!(got.len(), 3);
    assert_eq!(got.iter().filter(|d| d.0 == 4).count(), 2);
    assert_eq!(got.iter().filter(|d| d.0 != 4).count(), 1);
}

#[test]
fn shared_subscription_redispatches_a_closed_clean_members_messages() {
    let mut r = router(RouterConfig::default());
    for (c, id) in [(1, "w1"), (2, "w2")] {
        connect(&mut r, c, id, true);
        subscribe(&mut r, c, &[("$share/g/jobs", QoS::ExactlyOnce)]);
    }
    let got = pub_from(&mut r, 1, publish("jobs", QoS::ExactlyOnce, false, b"j1"));
    assert_eq!(got[0].0, 1);
    // w1 drops with j1 unacknowledged; it goes to w2.
    let mut sent = publish("jobs", QoS::ExactlyOnce, false, b"j1");
    sent.qos_pid = QosPid::ExactlyOnce(pid(1));
    let resume = ResumeState {
        inflight: vec![InflightMessage::Publish(sent)],
        ..ResumeState::default()
    };
    r.handle_closed(T0, ConnId(1), false, resume);
    let got = deliveries(&drain(&mut r));
    assert_eq!(
        got,
        vec![(2, "jobs".into(), QoS::ExactlyOnce, false, b"j1".to_vec())]
    );
    assert_eq!(r.stats().shared_redispatched, 1);
    // Later messages all go to the live member.
    for _ in 0..3 {
        assert_eq!(
            pub_from(&mut r, 2, publish("jobs", QoS::AtLeastOnce, false, b"j"))[0].0,
            2
        );
    }
}

#[test]
fn shared_group_prefers_live_members_and_queues_for_offline_persistent_ones() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "p", false);
    subscribe(&mut r, 1, &[("$share/g/t", QoS::AtLeastOnce)]);
    r.handle_closed(T0, ConnId(1), false, ResumeState::default());
    connect(&mut r, 2, "pub", true);
    assert!(pub_from(&mut r, 2, publish("t", QoS::AtLeastOnce, false, b"q")).is_empty());
    assert_eq!(r.offline_len("p"), 1);
    connect(&mut r, 3, "live", true);
    subscribe(&mut r, 3, &[("$share/g/t", QoS::AtLeastOnce)]);
    for _ in 0..3 {
        assert_eq!(
            pub_from(&mut r, 2, publish("t", QoS::AtLeastOnce, false, b"q"))[0].0,
            3
        );
    }
}

#[test]
fn limit_max_connections_refuses_with_server_unavailable() {
    let config = RouterConfig {
        max_connections: 1,
        ..RouterConfig::default()
    };
    let mut r = router(config);
    connect(&mut r, 1, "a", true);
    r.handle_connect(T0, ConnId(2), request("b", true));
    assert_eq!(
        drain(&mut r),
        vec![Action::Refuse {
            conn: ConnId(2),
            code: ConnectReturnCode::ServerUnavailable
        }]
    );
    assert_eq!(r.stats().refused_connections, 1);
    // A takeover is still possible at the limit.
    r.handle_connect(T0, ConnId(3), request("a", true));
    assert_eq!(drain(&mut r), vec![Action::Close { conn: ConnId(1) }]);
    r.handle_closed(T0, ConnId(1), false, ResumeState::default());
    assert!(matches!(
        drain(&mut r).as_slice(),
        [Action::Accept {
            conn: ConnId(3),
            ..
        }]
    ));
}

#[test]
fn limit_max_subscriptions_per_client_answers_failure() {
    let config = RouterConfig {
        max_subscriptions_per_client: 2,
        ..RouterConfig::default()
    };
    let mut r = router(config);
    connect(&mut r, 1, "s", true);
    let (codes, _) = subscribe(
        &mut r,
        1,
        &[
            ("a", QoS::AtMostOnce),
            ("b", QoS::AtMostOnce),
            ("c", QoS::AtMostOnce),
            ("a", QoS::AtLeastOnce),
        ],
    );
    assert_eq!(
        codes,
        vec![
            SubscribeReturnCode::Success(QoS::AtMostOnce),
            SubscribeReturnCode::Success(QoS::AtMostOnce),
            SubscribeReturnCode::Failure,
            SubscribeReturnCode::Success(QoS::AtLeastOnce),
        ]
    );
    assert_eq!(r.stats().refused_subscriptions, 1);
}

fn offline_with_limit(policy: OverflowPolicy) -> R {
    let config = RouterConfig {
        max_offline_messages: 2,
        offline_overflow: policy,
        ..RouterConfig::default()
    };
    let mut r = router(config);
    connect(&mut r, 1, "p", false);
    subscribe(&mut r, 1, &[("t", QoS::AtLeastOnce)]);
    r.handle_closed(T0, ConnId(1), false, ResumeState::default());
    connect(&mut r, 2, "pub", true);
    for body in [&b"1"[..], b"2", b"3"] {
        let p = Publish::new(
            Topic::new("t").unwrap(),
            QosPid::AtLeastOnce(pid(1)),
            Bytes::copy_from_slice(body),
        );
        pub_from(&mut r, 2, p);
    }
    r
}

fn queued_bodies(r: &mut R) -> Vec<Vec<u8>> {
    let (_, resume) = connect(r, 3, "p", false);
    resume.queued.iter().map(|p| p.payload.to_vec()).collect()
}

#[test]
fn limit_offline_queue_drop_newest_is_counted() {
    let mut r = offline_with_limit(OverflowPolicy::DropNewest);
    assert_eq!(r.stats().offline_dropped_newest, 1);
    assert_eq!(queued_bodies(&mut r), vec![b"1".to_vec(), b"2".to_vec()]);
}

#[test]
fn limit_offline_queue_drop_oldest_is_counted() {
    let mut r = offline_with_limit(OverflowPolicy::DropOldest);
    assert_eq!(r.stats().offline_dropped_oldest, 1);
    assert_eq!(r.store().queued("p").len(), 2);
    assert_eq!(queued_bodies(&mut r), vec![b"2".to_vec(), b"3".to_vec()]);
}

#[test]
fn limit_offline_bytes_drops_and_counts() {
    let config = RouterConfig {
        max_offline_bytes: 10,
        ..RouterConfig::default()
    };
    let mut r = router(config);
    connect(&mut r, 1, "p", false);
    subscribe(&mut r, 1, &[("t", QoS::AtLeastOnce)]);
    r.handle_closed(T0, ConnId(1), false, ResumeState::default());
    connect(&mut r, 2, "pub", true);
    pub_from(
        &mut r,
        2,
        publish("t", QoS::AtLeastOnce, false, b"12345678"),
    );
    pub_from(
        &mut r,
        2,
        publish("t", QoS::AtLeastOnce, false, b"12345678"),
    );
    assert_eq!(r.offline_len("p"), 1);
    assert_eq!(r.stats().offline_dropped_newest, 1);
}

#[test]
fn limit_retained_messages_refuses_new_topics_only() {
    let config = RouterConfig {
        max_retained_messages: 1,
        ..RouterConfig::default()
    };
    let mut r = router(config);
    connect(&mut r, 1, "s", true);
    pub_from(&mut r, 1, publish("a", QoS::AtMostOnce, true, b"1"));
    pub_from(&mut r, 1, publish("b", QoS::AtMostOnce, true, b"1"));
    pub_from(&mut r, 1, publish("a", QoS::AtMostOnce, true, b"2"));
    assert_eq!(r.retained_len(), 1);
    assert_eq!(r.retained("a").unwrap().payload.as_ref(), b"2");
    assert_eq!(r.stats().retained_refused, 1);
}

#[test]
fn session_expiry_removes_abandoned_persistent_sessions() {
    let config = RouterConfig {
        session_expiry: Some(Duration::from_secs(60)),
        ..RouterConfig::default()
    };
    let mut r = router(config);
    assert_eq!(r.poll_timeout(), None);
    connect(&mut r, 1, "p", false);
    subscribe(&mut r, 1, &[("t", QoS::AtLeastOnce)]);
    r.handle_closed(T0, ConnId(1), false, ResumeState::default());
    let due = r.poll_timeout().unwrap();
    assert_eq!(due, T0 + Duration::from_secs(60));
    r.handle_timeout(due.saturating_sub(Duration::from_secs(1)));
    assert!(r.has_session("p"));
    r.handle_timeout(due);
    assert!(!r.has_session("p"));
    assert!(!r.store().has_session("p"));
    assert_eq!(r.stats().expired_sessions, 1);
    assert_eq!(r.poll_timeout(), None);
}

/// Denies user "guest" everything but reading `public/#`.
struct Acl;

impl Auth for Acl {
    fn connect(
        &mut self,
        _client_id: &str,
        username: Option<&str>,
        password: Option<&[u8]>,
    ) -> Result<(), ConnectReturnCode> {
        match (username, password) {
            (Some("guest"), _) => Ok(()),
            (Some("admin"), Some(b"secret")) => Ok(()),
            (Some("admin"), _) => Err(ConnectReturnCode::BadUsernameOrPassword),
            _ => Err(ConnectReturnCode::NotAuthorized),
        }
    }

    fn may_publish(&self, _client_id: &str, username: Option<&str>, _topic: &str) -> bool {
        username == Some("admin")
    }

    fn may_subscribe(&self, _client_id: &str, username: Option<&str>, filter: &str) -> bool {
        username == Some("admin") || filter.starts_with("public/")
    }
}

#[test]
fn auth_refuses_connect_subscribe_and_drops_publish() {
    let mut r = Router::new(RouterConfig::default(), MemoryStore::new(), Acl);
    r.handle_connect(T0, ConnId(1), request("anon", true));
    assert_eq!(
        drain(&mut r),
        vec![Action::Refuse {
            conn: ConnId(1),
            code: ConnectReturnCode::NotAuthorized
        }]
    );
    let mut bad = request("a", true);
    bad.username = Some(MqttString::new("admin").unwrap());
    r.handle_connect(T0, ConnId(2), bad);
    assert!(matches!(
        drain(&mut r).as_slice(),
        [Action::Refuse {
            code: ConnectReturnCode::BadUsernameOrPassword,
            ..
        }]
    ));
    let mut guest = request("g", true);
    guest.username = Some(MqttString::new("guest").unwrap());
    r.handle_connect(T0, ConnId(3), guest);
    drain(&mut r);
    let (codes, _) = subscribe(
        &mut r,
        3,
        &[
            ("public/#", QoS::AtMostOnce),
            ("private/#", QoS::AtMostOnce),
        ],
    );
    assert_eq!(
        codes,
        vec![
            SubscribeReturnCode::Success(QoS::AtMostOnce),
            SubscribeReturnCode::Failure
        ]
    );
    r.handle_publish(
        T0,
        ConnId(3),
        publish("public/x", QoS::AtLeastOnce, false, b""),
    );
    assert!(drain(&mut r).is_empty());
    assert_eq!(r.stats().denied_publishes, 1);
    assert_eq!(r.stats().denied_subscriptions, 1);
    assert_eq!(r.stats().denied_connections, 2);
    assert_eq!(r.connection_count(), 1);
}

#[test]
fn unsubscribe_removes_exact_filter_only() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "p", false);
    subscribe(
        &mut r,
        1,
        &[
            ("a/+", QoS::AtMostOnce),
            ("a/b", QoS::AtMostOnce),
            ("$share/g/a/b", QoS::AtMostOnce),
        ],
    );
    r.handle_unsubscribe(
        T0,
        ConnId(1),
        vec![
            Filter::new("a/+").unwrap(),
            Filter::new("$share/g/a/b").unwrap(),
            Filter::new("zzz").unwrap(),
        ],
    );
    assert_eq!(
        r.subscriptions("p"),
        vec![(Filter::new("a/b").unwrap(), QoS::AtMostOnce)]
    );
    assert_eq!(r.store().subscriptions("p").len(), 1);
    assert_eq!(
        pub_from(&mut r, 1, publish("a/b", QoS::AtMostOnce, false, b"")).len(),
        1
    );
    assert!(pub_from(&mut r, 1, publish("a/c", QoS::AtMostOnce, false, b"")).is_empty());
}

#[test]
fn persistent_close_saves_inflight_and_resumes_it_first() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "p", false);
    subscribe(&mut r, 1, &[("t", QoS::ExactlyOnce)]);
    let mut inflight = publish("t", QoS::ExactlyOnce, false, b"in");
    inflight.qos_pid = QosPid::ExactlyOnce(pid(5));
    let state = ResumeState {
        inflight: vec![
            InflightMessage::Publish(inflight.clone()),
            InflightMessage::PubRel(pid(6)),
        ],
        queued: vec![publish("t", QoS::AtLeastOnce, false, b"q")],
        inbound_qos2: vec![pid(7)],
        subscriptions: vec![Filter::new("t").unwrap()],
    };
    r.handle_closed(T0, ConnId(1), true, state);
    assert_eq!(r.store().session_state("p").unwrap().inflight.len(), 2);
    connect(&mut r, 2, "pub", true);
    pub_from(&mut r, 2, publish("t", QoS::AtLeastOnce, false, b"later"));
    let (present, resume) = connect(&mut r, 3, "p", false);
    assert!(present);
    assert_eq!(resume.inflight[0], InflightMessage::Publish(inflight));
    assert_eq!(resume.inbound_qos2, vec![pid(7)]);
    let bodies: Vec<_> = resume.queued.iter().map(|p| p.payload.to_vec()).collect();
    assert_eq!(bodies, vec![b"q".to_vec(), b"later".to_vec()]);
}

#[test]
fn limit_max_sessions_refuses_new_client_ids_only() {
    let config = RouterConfig {
        max_sessions: 1,
        ..RouterConfig::default()
    };
    let mut r = router(config);
    connect(&mut r, 1, "p", false);
    r.handle_closed(T0, ConnId(1), false, ResumeState::default());
    r.handle_connect(T0, ConnId(2), request("q", true));
    assert!(matches!(
        drain(&mut r).as_slice(),
        [Action::Refuse {
            code: ConnectReturnCode::ServerUnavailable,
            ..
        }]
    ));
    // The stored session may still come back.
    let (present, _) = connect(&mut r, 3, "p", false);
    assert!(present);
}

#[test]
fn mqtt_3_1_4_2_third_connection_during_takeover_wins() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "dev", false);
    r.handle_connect(T0, ConnId(2), request("dev", false));
    assert_eq!(drain(&mut r), vec![Action::Close { conn: ConnId(1) }]);
    r.handle_connect(T0, ConnId(3), request("dev", true));
    assert_eq!(drain(&mut r), vec![Action::Close { conn: ConnId(2) }]);
    // The waiting connection's close is stale; the first one's completes
    // the takeover for the third.
    r.handle_closed(T0, ConnId(2), false, ResumeState::default());
    assert!(drain(&mut r).is_empty());
    r.handle_closed(T0, ConnId(1), true, ResumeState::default());
    let actions = drain(&mut r);
    assert!(matches!(
        actions.as_slice(),
        [Action::Accept {
            conn: ConnId(3),
            session_present: false,
            ..
        }]
    ));
    assert_eq!(r.connection_count(), 1);
    assert_eq!(r.session_count(), 1);
}

#[test]
fn mqtt_3_1_2_4_sessions_and_retained_survive_a_restart_through_the_store() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "p", false);
    subscribe(
        &mut r,
        1,
        &[("t/#", QoS::ExactlyOnce), ("$share/g/j", QoS::AtLeastOnce)],
    );
    let mut sent = publish("t/a", QoS::ExactlyOnce, false, b"inflight");
    sent.qos_pid = QosPid::ExactlyOnce(pid(4));
    let state = ResumeState {
        inflight: vec![InflightMessage::Publish(sent.clone())],
        inbound_qos2: vec![pid(8)],
        ..ResumeState::default()
    };
    r.handle_closed(T0, ConnId(1), false, state);
    connect(&mut r, 2, "pub", true);
    pub_from(
        &mut r,
        2,
        publish("t/b", QoS::AtLeastOnce, false, b"queued"),
    );
    pub_from(&mut r, 2, publish("status", QoS::AtMostOnce, true, b"up"));
    // A clean session leaves nothing behind.
    subscribe(&mut r, 2, &[("x", QoS::AtMostOnce)]);

    // The broker restarts with what the store recorded.
    let mut fresh = Router::new(RouterConfig::default(), r.store().clone(), AllowAll);
    fresh.recover(T0).unwrap();
    assert_eq!(fresh.session_count(), 1);
    assert_eq!(fresh.retained("status").unwrap().payload.as_ref(), b"up");
    assert_eq!(fresh.offline_len("p"), 2);
    connect(&mut fresh, 3, "pub", true);
    // The recovered subscription is live: a new message is queued for p.
    pub_from(
        &mut fresh,
        3,
        publish("t/c", QoS::AtLeastOnce, false, b"new"),
    );
    let (present, resume) = connect(&mut fresh, 4, "p", false);
    assert!(present);
    assert_eq!(resume.inflight, vec![InflightMessage::Publish(sent)]);
    assert_eq!(resume.inbound_qos2, vec![pid(8)]);
    let bodies: Vec<_> = resume.queued.iter().map(|p| p.payload.to_vec()).collect();
    assert_eq!(bodies, vec![b"queued".to_vec(), b"new".to_vec()]);
    assert_eq!(fresh.subscriptions("p").len(), 2);
    // Recovering twice changes nothing.
    fresh.recover(T0).unwrap();
    assert_eq!(fresh.session_count(), 2);
}

#[test]
fn limit_retained_bytes_never_leaves_a_stale_message() {
    let config = RouterConfig {
        max_retained_bytes: 10,
        ..RouterConfig::default()
    };
    let mut r = router(config);
    connect(&mut r, 1, "s", true);
    subscribe(&mut r, 1, &[("a", QoS::AtMostOnce)]);
    pub_from(&mut r, 1, publish("a", QoS::AtMostOnce, true, b"12345"));
    assert_eq!(r.retained_len(), 1);
    // Too big to keep: still forwarded, and the older value is gone too.
    let got = pub_from(
        &mut r,
        1,
        publish("a", QoS::AtMostOnce, true, b"1234567890"),
    );
    assert_eq!(got.len(), 1);
    assert!(r.retained("a").is_none());
    assert!(r.store().retained("a").is_none());
    assert_eq!(r.stats().retained_refused, 1);
    // Deleting freed the bytes.
    pub_from(&mut r, 1, publish("a", QoS::AtMostOnce, true, b"1234"));
    pub_from(&mut r, 1, publish("b", QoS::AtMostOnce, true, b"1234"));
    assert_eq!(r.retained_len(), 2);
}

/// A store whose disk is full: every call fails.
#[derive(Debug, Default)]
struct FullDisk;

impl midge_broker::Store for FullDisk {
    type Error = &'static str;

    fn save_subscription(&mut self, _: &str, _: &Filter, _: QoS) -> Result<(), Self::Error> {
        Err("full")
    }
    fn remove_subscription(&mut self, _: &str, _: &Filter) -> Result<(), Self::Error> {
        Err("full")
    }
    fn save_session_state(
        &mut self,
        _: &str,
        _: &midge_broker::SessionState,
    ) -> Result<(), Self::Error> {
        Err("full")
    }
    fn push_queued(&mut self, _: &str, _: u64, _: u64, _: &Publish) -> Result<(), Self::Error> {
        Err("full")
    }
    fn remove_queued(&mut self, _: &str, _: u64) -> Result<(), Self::Error> {
        Err("full")
    }
    fn load_queue(
        &self,
        _: &str,
        _: Option<u64>,
        _: usize,
    ) -> Result<Vec<midge_broker::QueuedMessage>, Self::Error> {
        Err("unreadable")
    }
    fn commit(&mut self) -> Result<(), Self::Error> {
        Err("full")
    }
    fn remove_session(&mut self, _: &str) -> Result<(), Self::Error> {
        Err("full")
    }
    fn save_retained(&mut self, _: &Publish) -> Result<(), Self::Error> {
        Err("full")
    }
    fn remove_retained(&mut self, _: &str) -> Result<(), Self::Error> {
        Err("full")
    }
    fn recover(&self) -> Result<midge_broker::Recovered, Self::Error> {
        Err("unreadable")
    }
}

#[test]
fn store_failures_are_counted_and_routing_goes_on() {
    let mut r = Router::new(RouterConfig::default(), FullDisk, AllowAll);
    assert_eq!(r.recover(T0), Err("unreadable"));
    connect(&mut r, 1, "p", false);
    subscribe(&mut r, 1, &[("t", QoS::AtLeastOnce)]);
    r.handle_closed(T0, ConnId(1), false, ResumeState::default());
    connect(&mut r, 2, "pub", true);
    r.handle_publish(T0, ConnId(2), publish("t", QoS::AtLeastOnce, true, b"m"));
    assert!(drain(&mut r).is_empty());
    // subscription, session state, queued message, retained message
    assert_eq!(r.stats().store_failures, 4);
    assert_eq!(r.offline_len("p"), 1);
    let (present, resume) = connect(&mut r, 3, "p", false);
    assert!(present);
    assert_eq!(resume.queued.len(), 1);
    // Resuming writes nothing; a failed commit is counted and keeps the
    // changes pending.
    assert_eq!(r.stats().store_failures, 4);
    let ticket = r.commit_ticket().unwrap();
    assert_eq!(r.commit(), Err("full"));
    assert_eq!(r.stats().store_failures, 5);
    assert!(!r.is_committed(ticket));
}

#[test]
fn mqtt_3_1_2_7_retained_message_outlives_its_publishers_session() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "pub", true);
    pub_from(&mut r, 1, publish("keep", QoS::AtLeastOnce, true, b"v"));
    r.handle_closed(T0, ConnId(1), false, ResumeState::default());
    assert!(!r.has_session("pub"));
    connect(&mut r, 2, "sub", true);
    let (_, actions) = subscribe(&mut r, 2, &[("keep", QoS::AtLeastOnce)]);
    assert_eq!(deliveries(&actions).len(), 1);
}

#[test]
fn mqtt_3_1_2_12_no_will_no_publication_on_abnormal_close() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "watch", true);
    subscribe(&mut r, 1, &[("#", QoS::AtLeastOnce)]);
    connect(&mut r, 2, "dev", true);
    // Even if told the will is due, a client without one publishes nothing.
    r.handle_closed(T0, ConnId(2), true, ResumeState::default());
    assert!(drain(&mut r).is_empty());
    assert_eq!(r.stats().wills_published, 0);
}

fn with_will(id: &str, retain: bool) -> ConnectRequest {
    let mut req = request(id, true);
    req.will = Some(LastWill {
        topic: Topic::new("wills/x").unwrap(),
        message: Bytes::from_static(b"bye"),
        qos: QoS::AtLeastOnce,
        retain,
    });
    req
}

#[test]
fn mqtt_3_1_2_16_will_without_retain_is_not_retained() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "watch", true);
    subscribe(&mut r, 1, &[("wills/#", QoS::AtLeastOnce)]);
    r.handle_connect(T0, ConnId(2), with_will("dev", false));
    drain(&mut r);
    r.handle_closed(T0, ConnId(2), true, ResumeState::default());
    assert_eq!(deliveries(&drain(&mut r)).len(), 1);
    assert!(r.retained("wills/x").is_none());
}

#[test]
fn mqtt_3_1_2_17_will_with_retain_is_retained() {
    let mut r = router(RouterConfig::default());
    r.handle_connect(T0, ConnId(2), with_will("dev", true));
    drain(&mut r);
    r.handle_closed(T0, ConnId(2), true, ResumeState::default());
    let kept = r.retained("wills/x").unwrap();
    assert!(kept.retain);
    assert_eq!(kept.payload.as_ref(), b"bye");
    connect(&mut r, 3, "late", true);
    let (_, actions) = subscribe(&mut r, 3, &[("wills/x", QoS::AtLeastOnce)]);
    assert_eq!(
        deliveries(&actions),
        vec![(3, "wills/x".into(), QoS::AtLeastOnce, true, b"bye".to_vec())]
    );
}

#[test]
fn mqtt_3_1_3_2_client_id_selects_the_session_state() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "a", false);
    subscribe(&mut r, 1, &[("only/a", QoS::AtLeastOnce)]);
    r.handle_closed(T0, ConnId(1), false, ResumeState::default());
    let (present_b, resume_b) = connect(&mut r, 2, "b", false);
    assert!(!present_b);
    assert!(resume_b.subscriptions.is_empty());
    let (present_a, resume_a) = connect(&mut r, 3, "a", false);
    assert!(present_a);
    assert_eq!(resume_a.subscriptions, vec![Filter::new("only/a").unwrap()]);
}

#[test]
fn mqtt_3_1_4_3_clean_session_handling_follows_a_valid_connect() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "p", false);
    subscribe(&mut r, 1, &[("t", QoS::AtLeastOnce)]);
    r.handle_closed(T0, ConnId(1), false, ResumeState::default());
    // An accepted CONNECT with CleanSession 1 discards it.
    let (present, _) = connect(&mut r, 2, "p", true);
    assert!(!present);
    assert!(r.subscriptions("p").is_empty());
}

#[test]
fn mqtt_3_3_2_3_delivered_topic_is_the_published_name_matching_the_filter() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "s", true);
    subscribe(&mut r, 1, &[("sport/+/score", QoS::AtMostOnce)]);
    let got = pub_from(
        &mut r,
        1,
        publish("sport/tennis/score", QoS::AtMostOnce, false, b"1"),
    );
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, "sport/tennis/score");
    assert!(midge_topic::matches_str("sport/+/score", &got[0].1));
    assert!(pub_from(
        &mut r,
        1,
        publish("sport/tennis/set", QoS::AtMostOnce, false, b"")
    )
    .is_empty());
}

#[test]
fn mqtt_3_8_4_4_filters_in_one_subscribe_act_as_separate_subscribes() {
    let mut one = router(RouterConfig::default());
    let mut many = router(RouterConfig::default());
    for r in [&mut one, &mut many] {
        connect(r, 1, "s", true);
        r.handle_publish(T0, ConnId(1), publish("a", QoS::AtLeastOnce, true, b"ra"));
        r.handle_publish(T0, ConnId(1), publish("b", QoS::AtLeastOnce, true, b"rb"));
        drain(r);
    }
    let (codes, together) = subscribe(
        &mut one,
        1,
        &[("a", QoS::AtMostOnce), ("b", QoS::ExactlyOnce)],
    );
    let (c1, mut apart) = subscribe(&mut many, 1, &[("a", QoS::AtMostOnce)]);
    let (c2, more) = subscribe(&mut many, 1, &[("b", QoS::ExactlyOnce)]);
    apart.extend(more);
    assert_eq!(codes, [c1, c2].concat());
    assert_eq!(deliveries(&together), deliveries(&apart));
    assert_eq!(one.subscriptions("s"), many.subscriptions("s"));
}

#[test]
fn mqtt_3_8_4_6_delivered_qos_is_the_lower_of_published_and_granted() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "s", true);
    subscribe(&mut r, 1, &[("q", QoS::AtLeastOnce)]);
    for (published, expected) in [
        (QoS::AtMostOnce, QoS::AtMostOnce),
        (QoS::AtLeastOnce, QoS::AtLeastOnce),
        (QoS::ExactlyOnce, QoS::AtLeastOnce),
    ] {
        let got = pub_from(&mut r, 1, publish("q", published, false, b""));
        assert_eq!(got[0].2, expected, "published at {published:?}");
    }
}

#[test]
fn mqtt_3_10_4_2_no_queueing_after_unsubscribe() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "p", false);
    subscribe(&mut r, 1, &[("t", QoS::AtLeastOnce)]);
    r.handle_unsubscribe(T0, ConnId(1), vec![Filter::new("t").unwrap()]);
    r.handle_closed(T0, ConnId(1), false, ResumeState::default());
    connect(&mut r, 2, "pub", true);
    pub_from(&mut r, 2, publish("t", QoS::AtLeastOnce, false, b"x"));
    assert_eq!(r.offline_len("p"), 0);
}

#[test]
fn mqtt_3_10_4_6_filters_in_one_unsubscribe_act_as_separate_ones() {
    let mut one = router(RouterConfig::default());
    let mut many = router(RouterConfig::default());
    for r in [&mut one, &mut many] {
        connect(r, 1, "s", true);
        subscribe(
            r,
            1,
            &[
                ("a", QoS::AtMostOnce),
                ("b", QoS::AtMostOnce),
                ("c", QoS::AtMostOnce),
            ],
        );
    }
    one.handle_unsubscribe(
        T0,
        ConnId(1),
        vec![Filter::new("a").unwrap(), Filter::new("c").unwrap()],
    );
    many.handle_unsubscribe(T0, ConnId(1), vec![Filter::new("a").unwrap()]);
    many.handle_unsubscribe(T0, ConnId(1), vec![Filter::new("c").unwrap()]);
    assert_eq!(one.subscriptions("s"), many.subscriptions("s"));
    assert_eq!(
        one.subscriptions("s"),
        vec![(Filter::new("b").unwrap(), QoS::AtMostOnce)]
    );
}

#[test]
fn mqtt_4_1_0_2_clean_session_state_lives_while_connected() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "c", true);
    subscribe(&mut r, 1, &[("t", QoS::AtMostOnce)]);
    for _ in 0..3 {
        assert_eq!(
            pub_from(&mut r, 1, publish("t", QoS::AtMostOnce, false, b"")).len(),
            1
        );
    }
    assert!(r.has_session("c"));
    r.handle_closed(T0, ConnId(1), false, ResumeState::default());
    assert!(!r.has_session("c"));
}

#[test]
fn mqtt_4_5_0_1_accepted_message_joins_every_matching_session() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "online", true);
    subscribe(&mut r, 1, &[("m/#", QoS::AtLeastOnce)]);
    connect(&mut r, 2, "offline", false);
    subscribe(&mut r, 2, &[("m/+", QoS::ExactlyOnce)]);
    r.handle_closed(T0, ConnId(2), false, ResumeState::default());
    connect(&mut r, 3, "none", true);
    subscribe(&mut r, 3, &[("other", QoS::AtLeastOnce)]);
    let got = pub_from(&mut r, 1, publish("m/x", QoS::ExactlyOnce, false, b"m"));
    assert_eq!(
        got,
        vec![(1, "m/x".into(), QoS::AtLeastOnce, false, b"m".to_vec())]
    );
    assert_eq!(r.offline_len("offline"), 1);
}

#[test]
fn mqtt_3_1_4_2_takeover_whose_new_connection_dies_first_leaves_no_ghost() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "dev", false);
    subscribe(&mut r, 1, &[("t", QoS::AtLeastOnce)]);
    r.handle_connect(T0, ConnId(2), request("dev", false));
    assert_eq!(drain(&mut r), vec![Action::Close { conn: ConnId(1) }]);
    // The new connection drops before the old one has closed.
    r.handle_closed(T0, ConnId(2), false, ResumeState::default());
    r.handle_closed(T0, ConnId(1), true, ResumeState::default());
    assert!(drain(&mut r).is_empty(), "nobody is left to accept");
    assert_eq!(r.connection_count(), 0);
    // The session went offline properly: messages queue, and it resumes.
    connect(&mut r, 3, "pub", true);
    pub_from(&mut r, 3, publish("t", QoS::AtLeastOnce, false, b"q"));
    assert_eq!(r.offline_len("dev"), 1);
    let (present, resume) = connect(&mut r, 4, "dev", false);
    assert!(present);
    assert_eq!(resume.queued.len(), 1);
}

#[test]
fn shared_subscription_gets_no_retained_messages() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "w", true);
    pub_from(&mut r, 1, publish("jobs", QoS::AtLeastOnce, true, b"old"));
    let (codes, actions) = subscribe(&mut r, 1, &[("$share/g/jobs", QoS::AtLeastOnce)]);
    assert_eq!(codes, vec![SubscribeReturnCode::Success(QoS::AtLeastOnce)]);
    assert!(deliveries(&actions).is_empty());
}

#[test]
fn malformed_shared_subscription_is_refused() {
    let mut r = router(RouterConfig::default());
    connect(&mut r, 1, "w", true);
    let (codes, _) = subscribe(
        &mut r,
        1,
        &[
            ("$share/g", QoS::AtLeastOnce),
            ("$share/+/x", QoS::AtMostOnce),
        ],
    );
    assert_eq!(
        codes,
        vec![SubscribeReturnCode::Failure, SubscribeReturnCode::Failure]
    );
    assert_eq!(r.stats().refused_subscriptions, 2);
    assert!(r.subscriptions("w").is_empty());
}
