//! Scenario tests on the deterministic simulation (`sim/mod.rs`): real
//! client machines, real server sessions and the router, a virtual clock
//! and injected faults.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sim;

use bytes::Bytes;
use midge_broker::{OverflowPolicy, RouterConfig, ServerConfig};
use midge_codec::{ConnectReturnCode, LastWill, QoS, Topic};
use midge_session::{ClientConfig, DisconnectReason, Event};
use midge_time::Duration;
use sim::Sim;

fn sim() -> Sim {
    Sim::new(RouterConfig::default(), ServerConfig::default())
}

fn persistent(id: &str) -> ClientConfig {
    ClientConfig::new(id).with_clean_session(false)
}

fn count(payloads: &[Vec<u8>], body: &[u8]) -> usize {
    payloads.iter().filter(|p| p.as_slice() == body).count()
}

#[test]
fn mqtt_3_1_4_2_takeover_disconnects_first_connection() {
    let mut s = sim();
    let a = s.add(persistent("dev"));
    let b = s.add(persistent("dev"));
    s.connect(a);
    s.subscribe(a, &[("cmd", QoS::AtLeastOnce)]);
    assert!(s.is_connected(a));
    s.connect(b);
    assert!(s.is_connected(b));
    assert!(!s.is_connected(a));
    assert!(s.nodes[a]
        .events
        .iter()
        .any(|e| matches!(e, Event::Disconnected { .. })));
    assert!(s.nodes[b].events.contains(&Event::Connected {
        session_present: true
    }));
    // The subscription moved with the session.
    let p = s.add(ClientConfig::new("pub"));
    s.connect(p);
    s.publish(p, "cmd", b"go", QoS::AtLeastOnce, false);
    assert_eq!(s.payloads(b), vec![b"go".to_vec()]);
    assert!(s.payloads(a).is_empty());
}

// covers: MQTT-3.2.2-2, MQTT-4.1.0-1
#[test]
fn mqtt_3_1_2_5_persistent_resume_with_qos1_and_qos2_in_flight() {
    let mut s = sim();
    let sub = s.add(persistent("sub"));
    let p = s.add(ClientConfig::new("pub"));
    s.connect(sub);
    s.subscribe(sub, &[("t/#", QoS::ExactlyOnce)]);
    s.connect(p);
    // The subscriber's acknowledgements never reach the server.
    s.nodes[sub].faults.blackhole_to_server = true;
    s.publish(p, "t/1", b"q1", QoS::AtLeastOnce, false);
    s.publish(p, "t/2", b"q2", QoS::ExactlyOnce, false);
    assert_eq!(s.payloads(sub), vec![b"q1".to_vec(), b"q2".to_vec()]);
    s.cut(sub);
    // While it is away, more arrive and are queued.
    s.publish(p, "t/3", b"q3", QoS::ExactlyOnce, false);
    s.publish(p, "t/4", b"q4", QoS::AtMostOnce, false);
    assert_eq!(s.router().offline_len("sub"), 3);
    s.nodes[sub].faults.blackhole_to_server = false;
    s.connect(sub);
    assert!(s.nodes[sub].events.contains(&Event::Connected {
        session_present: true
    }));
    let got = s.payloads(sub);
    // QoS 1 at least once, QoS 2 exactly once, QoS 0 not queued offline.
    assert!(count(&got, b"q1") >= 1);
    assert_eq!(count(&got, b"q2"), 1);
    assert_eq!(count(&got, b"q3"), 1);
    assert_eq!(count(&got, b"q4"), 0);
    assert_eq!(s.router().offline_len("sub"), 0);
}

#[test]
fn mqtt_4_3_3_2_qos2_exactly_once_under_duplication_and_reconnects() {
    let mut s = sim();
    let sub = s.add(persistent("sub"));
    let p = s.add(persistent("pub"));
    s.connect(sub);
    s.subscribe(sub, &[("x", QoS::ExactlyOnce)]);
    s.connect(p);
    s.nodes[sub].faults.duplicate = true;
    s.nodes[p].faults.duplicate = true;
    for round in 0..5u8 {
        for k in 0..4u8 {
            s.publish(p, "x", &[round, k], QoS::ExactlyOnce, false);
        }
        if round % 2 == 0 {
            s.cut(p);
            s.connect(p);
        } else {
            s.cut(sub);
            s.connect(sub);
        }
    }
    let got = s.payloads(sub);
    for round in 0..5u8 {
        for k in 0..4u8 {
            assert_eq!(
                count(&got, &[round, k]),
                1,
                "message {round}/{k} in {got:?}"
            );
        }
    }
}

#[test]
fn mqtt_4_3_3_2_qos2_exactly_once_under_random_link_cuts() {
    for seed in 1..=8u64 {
        let mut s = sim().with_seed(seed);
        let sub = s.add(persistent("sub").with_inflight_window(4));
        let p = s.add(persistent("pub").with_inflight_window(4));
        s.connect(sub);
        s.subscribe(sub, &[("x", QoS::ExactlyOnce)]);
        s.connect(p);
        s.nodes[sub].faults.cut_one_in = Some(7);
        s.nodes[p].faults.cut_one_in = Some(7);
        for k in 0..30u8 {
            s.nodes[p]
                .client
                .publish(
                    s.now,
                    "x",
                    Bytes::copy_from_slice(&[k]),
                    QoS::ExactlyOnce,
                    false,
                )
                .unwrap();
            for i in [sub, p] {
                if s.nodes[i].conn.is_none() {
                    s.connect(i);
                }
            }
            s.run();
        }
        // Let everything settle without faults.
        s.nodes[sub].faults.cut_one_in = None;
        s.nodes[p].faults.cut_one_in = None;
        for _ in 0..3 {
            for i in [sub, p] {
                if s.nodes[i].conn.is_none() {
                    s.connect(i);
                }
            }
        }
        let cuts = [sub, p]
            .iter()
            .flat_map(|&i| s.nodes[i].events.iter())
            .filter(|e| matches!(e, Event::Disconnected { .. }))
            .count();
        assert!(cuts >= 3, "seed {seed}: only {cuts} link failures");
        let got = s.payloads(sub);
        for k in 0..30u8 {
            assert_eq!(count(&got, &[k]), 1, "seed {seed}: message {k} in {got:?}");
        }
    }
}

// covers: MQTT-3.3.1-8
#[test]
fn mqtt_3_3_1_6_retained_message_reaches_later_subscriber() {
    let mut s = sim();
    let p = s.add(ClientConfig::new("pub"));
    let sub = s.add(ClientConfig::new("sub"));
    s.connect(p);
    s.publish(p, "status", b"up", QoS::AtLeastOnce, true);
    s.connect(sub);
    s.subscribe(sub, &[("status", QoS::ExactlyOnce)]);
    let got = s.messages(sub);
    assert_eq!(got.len(), 1);
    assert!(got[0].retain);
    assert_eq!(got[0].qos(), QoS::AtLeastOnce);
    // Live forwarding of a retained publish clears RETAIN [MQTT-3.3.1-9].
    s.publish(p, "status", b"down", QoS::AtLeastOnce, true);
    let got = s.messages(sub);
    assert_eq!(got.len(), 2);
    assert!(!got[1].retain);
    // An empty retained payload deletes it [MQTT-3.3.1-10].
    s.publish(p, "status", b"", QoS::AtMostOnce, true);
    let late = s.add(ClientConfig::new("late"));
    s.connect(late);
    s.subscribe(late, &[("status", QoS::AtLeastOnce)]);
    assert!(s.messages(late).is_empty());
}

fn with_will(id: &str) -> ClientConfig {
    ClientConfig::new(id)
        .with_keep_alive(10)
        .with_will(LastWill {
            topic: Topic::new("wills/dev").unwrap(),
            message: Bytes::from_static(b"lost"),
            qos: QoS::AtLeastOnce,
            retain: false,
        })
}

#[test]
fn mqtt_3_1_2_8_will_published_when_link_fails() {
    let mut s = sim();
    let w = s.add(ClientConfig::new("watch"));
    let d = s.add(with_will("dev"));
    s.connect(w);
    s.subscribe(w, &[("wills/#", QoS::AtLeastOnce)]);
    s.connect(d);
    s.cut(d);
    assert_eq!(s.payloads(w), vec![b"lost".to_vec()]);
}

#[test]
fn mqtt_3_1_2_10_no_will_after_disconnect() {
    let mut s = sim();
    let w = s.add(ClientConfig::new("watch"));
    let d = s.add(with_will("dev"));
    s.connect(w);
    s.subscribe(w, &[("wills/#", QoS::AtLeastOnce)]);
    s.connect(d);
    s.disconnect(d);
    s.advance(Duration::from_secs(60));
    assert!(s.payloads(w).is_empty());
    assert_eq!(s.router().stats().wills_published, 0);
}

#[test]
fn mqtt_3_1_2_24_server_drops_silent_client_and_publishes_its_will() {
    let mut s = sim();
    let w = s.add(ClientConfig::new("watch"));
    let d = s.add(with_will("dev"));
    s.connect(w);
    s.subscribe(w, &[("wills/#", QoS::AtLeastOnce)]);
    s.connect(d);
    s.nodes[d].faults.blackhole_to_server = true;
    s.advance(Duration::from_secs(14));
    assert!(s.payloads(w).is_empty());
    s.advance(Duration::from_secs(2));
    assert_eq!(s.payloads(w), vec![b"lost".to_vec()]);
}

#[test]
fn keep_alive_client_side_detects_missing_pingresp() {
    let mut s = sim();
    let c = s.add(ClientConfig::new("c").with_keep_alive(10));
    s.connect(c);
    // An idle, healthy link stays up across many keep-alive periods.
    s.advance(Duration::from_secs(100));
    assert!(s.is_connected(c));
    s.nodes[c].faults.blackhole_to_client = true;
    s.advance(Duration::from_secs(60));
    assert!(s.nodes[c].events.iter().any(|e| matches!(
        e,
        Event::Disconnected {
            reason: DisconnectReason::KeepAliveTimeout
        }
    )));
}

#[test]
fn mqtt_3_3_5_1_overlapping_subscriptions_one_copy_at_highest_qos() {
    let mut s = sim();
    let sub = s.add(ClientConfig::new("sub"));
    s.connect(sub);
    s.subscribe(
        sub,
        &[
            ("a/#", QoS::AtMostOnce),
            ("a/+", QoS::ExactlyOnce),
            ("a/b", QoS::AtLeastOnce),
        ],
    );
    s.publish(sub, "a/b", b"m", QoS::ExactlyOnce, false);
    let got = s.messages(sub);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].qos(), QoS::ExactlyOnce);
}

#[test]
fn mqtt_4_6_0_5_one_publishers_messages_keep_their_order() {
    let mut s = sim();
    let sub = s.add(persistent("sub").with_inflight_window(2));
    let p = s.add(ClientConfig::new("pub"));
    s.connect(sub);
    s.subscribe(sub, &[("o", QoS::AtLeastOnce)]);
    s.connect(p);
    for k in 0..10u8 {
        s.publish(p, "o", &[k], QoS::AtLeastOnce, false);
    }
    s.cut(sub);
    for k in 10..20u8 {
        s.publish(p, "o", &[k], QoS::AtLeastOnce, false);
    }
    s.connect(sub);
    let got: Vec<u8> = s.payloads(sub).iter().map(|p| p[0]).collect();
    assert_eq!(got, (0..20).collect::<Vec<u8>>());
}

#[test]
fn shared_subscription_round_robin_and_redispatch_on_member_loss() {
    let mut s = sim();
    let w1 = s.add(ClientConfig::new("w1"));
    let w2 = s.add(ClientConfig::new("w2"));
    let p = s.add(ClientConfig::new("pub"));
    for w in [w1, w2] {
        s.connect(w);
        s.subscribe(w, &[("$share/g/jobs", QoS::AtLeastOnce)]);
    }
    s.connect(p);
    for k in 0..4u8 {
        s.publish(p, "jobs", &[k], QoS::AtLeastOnce, false);
    }
    assert_eq!(s.payloads(w1), vec![vec![0], vec![2]]);
    assert_eq!(s.payloads(w2), vec![vec![1], vec![3]]);
    // w1 stops acknowledging, receives job 4, then its link fails: job 4
    // goes to w2.
    s.nodes[w1].faults.blackhole_to_server = true;
    s.publish(p, "jobs", &[4], QoS::AtLeastOnce, false);
    s.publish(p, "jobs", &[5], QoS::AtLeastOnce, false);
    assert_eq!(s.payloads(w1).last(), Some(&vec![4]));
    s.cut(w1);
    assert_eq!(count(&s.payloads(w2), &[4]), 1);
    assert_eq!(count(&s.payloads(w2), &[5]), 1);
    assert_eq!(s.router().stats().shared_redispatched, 1);
}

#[test]
fn limit_offline_queue_drop_oldest_through_sessions() {
    let config = RouterConfig {
        max_offline_messages: 3,
        offline_overflow: OverflowPolicy::DropOldest,
        ..RouterConfig::default()
    };
    let mut s = Sim::new(config, ServerConfig::default());
    let sub = s.add(persistent("sub"));
    let p = s.add(ClientConfig::new("pub"));
    s.connect(sub);
    s.subscribe(sub, &[("t", QoS::AtLeastOnce)]);
    s.disconnect(sub);
    s.connect(p);
    for k in 0..5u8 {
        s.publish(p, "t", &[k], QoS::AtLeastOnce, false);
    }
    assert_eq!(s.router().stats().offline_dropped_oldest, 2);
    s.connect(sub);
    assert_eq!(s.payloads(sub), vec![vec![2], vec![3], vec![4]]);
}

#[test]
fn limit_max_connections_refuses_through_sessions() {
    let config = RouterConfig {
        max_connections: 2,
        ..RouterConfig::default()
    };
    let mut s = Sim::new(config, ServerConfig::default());
    let ids: Vec<usize> = ["a", "b", "c"]
        .iter()
        .map(|id| s.add(ClientConfig::new(*id)))
        .collect();
    for &i in &ids {
        s.connect(i);
    }
    assert!(s.is_connected(ids[0]) && s.is_connected(ids[1]));
    assert!(s.nodes[ids[2]].events.contains(&Event::ConnectionRefused {
        code: ConnectReturnCode::ServerUnavailable
    }));
    // A slot frees when a client leaves.
    s.disconnect(ids[0]);
    s.connect(ids[2]);
    assert!(s.is_connected(ids[2]));
}

#[test]
fn limit_max_subscriptions_through_sessions() {
    let config = RouterConfig {
        max_subscriptions_per_client: 1,
        ..RouterConfig::default()
    };
    let mut s = Sim::new(config, ServerConfig::default());
    let c = s.add(ClientConfig::new("c"));
    s.connect(c);
    s.subscribe(c, &[("a", QoS::AtMostOnce), ("b", QoS::AtMostOnce)]);
    let results = s.nodes[c].events.iter().find_map(|e| match e {
        Event::Subscribed { results, .. } => Some(results.clone()),
        _ => None,
    });
    assert_eq!(
        results.unwrap(),
        vec![
            midge_codec::SubscribeReturnCode::Success(QoS::AtMostOnce),
            midge_codec::SubscribeReturnCode::Failure
        ]
    );
}

#[test]
fn session_expiry_on_virtual_clock() {
    let config = RouterConfig {
        session_expiry: Some(Duration::from_secs(300)),
        ..RouterConfig::default()
    };
    let mut s = Sim::new(config, ServerConfig::default());
    let c = s.add(persistent("c"));
    s.connect(c);
    s.subscribe(c, &[("t", QoS::AtLeastOnce)]);
    s.disconnect(c);
    s.advance(Duration::from_secs(299));
    assert!(s.router().has_session("c"));
    s.advance(Duration::from_secs(1));
    assert!(!s.router().has_session("c"));
    s.connect(c);
    assert!(s.nodes[c].events.contains(&Event::Connected {
        session_present: false
    }));
}

#[test]
fn mqtt_4_6_0_5_order_per_publisher_survives_interleaving() {
    let mut interleavings: std::collections::BTreeSet<Vec<u8>> = std::collections::BTreeSet::new();
    for seed in 1..=6u64 {
        let mut s = sim().with_seed(seed);
        s.shuffle = true;
        let sub = s.add(ClientConfig::new("sub").with_inflight_window(3));
        let p1 = s.add(ClientConfig::new("p1"));
        let p2 = s.add(ClientConfig::new("p2"));
        for i in [sub, p1, p2] {
            s.connect(i);
        }
        s.subscribe(sub, &[("t/+", QoS::ExactlyOnce)]);
        // Both publishers queue several messages before anything moves.
        for k in 0..8u8 {
            for (p, topic, tag) in [(p1, "t/1", 1u8), (p2, "t/2", 2u8)] {
                s.nodes[p]
                    .client
                    .publish(
                        s.now,
                        topic,
                        Bytes::copy_from_slice(&[tag, k]),
                        QoS::AtLeastOnce,
                        false,
                    )
                    .unwrap();
            }
        }
        s.run();
        let got = s.payloads(sub);
        assert_eq!(got.len(), 16, "seed {seed}");
        for tag in [1u8, 2] {
            let seq: Vec<u8> = got.iter().filter(|p| p[0] == tag).map(|p| p[1]).collect();
            assert_eq!(
                seq,
                (0..8).collect::<Vec<u8>>(),
                "seed {seed}, publisher {tag}"
            );
        }
        interleavings.insert(got.iter().map(|p| p[0]).collect::<Vec<u8>>());
    }
    // The shuffle really did vary how the two publishers interleave.
    assert!(interleavings.len() > 1);
}

#[test]
fn sharded_router_keeps_qos2_exactly_once_under_link_cuts() {
    for seed in 1..=4u64 {
        let mut s =
            Sim::with_shards(3, RouterConfig::default(), ServerConfig::default()).with_seed(seed);
        let ids = ["s0", "s1", "s2", "s3", "s4"];
        let nodes: Vec<usize> = ids
            .iter()
            .map(|id| s.add(persistent(id).with_inflight_window(3)))
            .collect();
        for &i in &nodes {
            s.connect(i);
            s.subscribe(i, &[("x", QoS::ExactlyOnce)]);
        }
        let p = s.add(persistent("pub"));
        s.connect(p);
        for &i in nodes.iter().chain([&p]) {
            s.nodes[i].faults.cut_one_in = Some(9);
        }
        for k in 0..20u8 {
            s.nodes[p]
                .client
                .publish(
                    s.now,
                    "x",
                    Bytes::copy_from_slice(&[k]),
                    QoS::ExactlyOnce,
                    false,
                )
                .unwrap();
            for &i in nodes.iter().chain([&p]) {
                if s.nodes[i].conn.is_none() {
                    s.connect(i);
                }
            }
            s.run();
        }
        for &i in nodes.iter().chain([&p]) {
            s.nodes[i].faults.cut_one_in = None;
        }
        for _ in 0..3 {
            for &i in nodes.iter().chain([&p]) {
                if s.nodes[i].conn.is_none() {
                    s.connect(i);
                }
            }
        }
        for &i in &nodes {
            let got = s.payloads(i);
            for k in 0..20u8 {
                assert_eq!(
                    count(&got, &[k]),
                    1,
                    "seed {seed}, {}: {k} in {got:?}",
                    ids[i]
                );
            }
        }
    }
}

#[test]
fn sharded_router_shares_and_redispatches_through_sessions() {
    let mut s = Sim::with_shards(3, RouterConfig::default(), ServerConfig::default());
    let ids = ["w0", "w1", "w2", "w3"];
    let workers: Vec<usize> = ids.iter().map(|id| s.add(ClientConfig::new(*id))).collect();
    let shards: std::collections::BTreeSet<u32> =
        ids.iter().map(|id| midge_broker::shard_of(id, 3)).collect();
    assert!(
        shards.len() > 1,
        "the workers should live on several shards"
    );
    for &w in &workers {
        s.connect(w);
        s.subscribe(w, &[("$share/g/jobs", QoS::AtLeastOnce)]);
    }
    let p = s.add(ClientConfig::new("boss"));
    s.connect(p);
    for k in 0..8u8 {
        s.publish(p, "jobs", &[k], QoS::AtLeastOnce, false);
    }
    for &w in &workers {
        assert_eq!(s.payloads(w).len(), 2, "{}", ids[w]);
    }
    // w0 stops acknowledging, gets a job, and its link fails.
    s.nodes[workers[0]].faults.blackhole_to_server = true;
    let before: Vec<usize> = workers.iter().map(|&w| s.payloads(w).len()).collect();
    let mut k = 100u8;
    while s.payloads(workers[0]).len() == before[0] {
        s.publish(p, "jobs", &[k], QoS::AtLeastOnce, false);
        k += 1;
    }
    let lost = s.payloads(workers[0]).last().unwrap().clone();
    s.cut(workers[0]);
    let elsewhere: usize = workers[1..]
        .iter()
        .map(|&w| count(&s.payloads(w), &lost))
        .sum();
    assert_eq!(elsewhere, 1);
}

#[test]
fn mqtt_3_3_5_2_unauthorised_publish_is_acknowledged_and_dropped() {
    let mut s = sim();
    s.routers[0].auth_mut().deny_publish.push("secret".into());
    let sub = s.add(ClientConfig::new("sub"));
    let p = s.add(ClientConfig::new("pub"));
    s.connect(sub);
    s.subscribe(sub, &[("#", QoS::AtLeastOnce)]);
    s.connect(p);
    s.publish(p, "secret", b"no", QoS::AtLeastOnce, false);
    s.publish(p, "secret", b"no", QoS::ExactlyOnce, false);
    // Both handshakes completed as usual and the link is still up ...
    let delivered = s.nodes[p]
        .events
        .iter()
        .filter(|e| matches!(e, Event::Delivered { .. }))
        .count();
    assert_eq!(delivered, 2);
    assert!(s.is_connected(p));
    // ... but nobody got the messages.
    assert!(s.payloads(sub).is_empty());
    assert_eq!(s.router().stats().denied_publishes, 2);
    s.publish(p, "open", b"yes", QoS::AtLeastOnce, false);
    assert_eq!(s.payloads(sub), vec![b"yes".to_vec()]);
}

#[test]
fn mqtt_3_10_4_3_unsubscribe_lets_begun_deliveries_finish() {
    let server = ServerConfig {
        max_inflight: 1,
        ..ServerConfig::default()
    };
    let mut s = Sim::new(RouterConfig::default(), server);
    let sub = s.add(ClientConfig::new("sub").with_manual_acks(true));
    let p = s.add(ClientConfig::new("pub"));
    s.connect(sub);
    s.subscribe(sub, &[("t", QoS::AtLeastOnce)]);
    s.connect(p);
    s.publish(p, "t", b"1", QoS::AtLeastOnce, false);
    s.publish(p, "t", b"2", QoS::AtLeastOnce, false);
    // "1" is in flight (not acknowledged yet), "2" waits behind it.
    assert_eq!(s.payloads(sub), vec![b"1".to_vec()]);
    s.unsubscribe(sub, &["t"]);
    s.publish(p, "t", b"3", QoS::AtLeastOnce, false);
    let token = s.nodes[sub]
        .events
        .iter()
        .find_map(|e| match e {
            Event::Message { ack, .. } => *ack,
            _ => None,
        })
        .unwrap();
    s.nodes[sub].client.ack(s.now, token);
    s.run();
    // The deliveries begun before the UNSUBSCRIBE complete; nothing new comes.
    let got = s.payloads(sub);
    assert_eq!(got, vec![b"1".to_vec(), b"2".to_vec()]);
}
