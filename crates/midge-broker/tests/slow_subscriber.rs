//! The slow-subscriber policy: a session's high- and low-water marks, the
//! router's pause/resume bookkeeping, and end-to-end runs in the simulation
//! where one publisher outpaces a slowly reading subscriber.
//!
//! No normative statement covers this (it is issue 5: no silent loss,
//! bounded memory), so the tests are named after the behaviour.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
mod sim;

use common::{connect as connect_packet, message, pid, Harness};
use std::collections::VecDeque;

use midge_broker::router::{
    shard_of, Action, AllowAll, ConnId, ConnectRequest, MemoryStore, Router, ShardConn,
    ShardMessage,
};
use midge_broker::{
    DeliverOutcome, DropReason, Event, ResumeState, RouterConfig, ServerConfig,
    SlowSubscriberPolicy,
};
use midge_codec::{Filter, MqttString, PubAck, QoS, SubscribeFilter};
use midge_session::ClientConfig;
use midge_time::Instant;
use sim::Sim;

// ----- the session's water marks -------------------------------------------

fn queue_of_ten() -> ServerConfig {
    ServerConfig {
        max_inflight: 1,
        max_queued_messages: 10,
        ..ServerConfig::default()
    }
}

#[test]
fn defaults_are_back_pressure_with_half_and_quarter_marks() {
    assert_eq!(
        RouterConfig::default().slow_subscriber,
        SlowSubscriberPolicy::BackPressure
    );
    assert_eq!(
        SlowSubscriberPolicy::default(),
        SlowSubscriberPolicy::BackPressure
    );
    let config = ServerConfig::default();
    assert_eq!(config.high_water_percent, 50);
    assert_eq!(config.low_water_percent, 25);
}

#[test]
fn session_reports_congestion_above_high_water_and_drained_once_at_low_water() {
    let mut h = Harness::connected(queue_of_ten(), connect_packet("sub", true, 0));
    let now = h.now;
    // One goes out (window of 1); the rest queue. High water is 5 of 10.
    let mut outcomes = Vec::new();
    for _ in 0..6 {
        outcomes.push(h.session.deliver(now, message("t", QoS::AtLeastOnce, b"m")));
        assert!(!h.session.is_above_high_water());
    }
    assert_eq!(outcomes[0], DeliverOutcome::Sent);
    assert_eq!(h.session.queued_len(), 5);
    assert_eq!(
        h.session.deliver(now, message("t", QoS::AtLeastOnce, b"m")),
        DeliverOutcome::Queued
    );
    assert!(h.session.is_above_high_water());
    assert_eq!(h.packets().len(), 1);

    // Each PUBACK lets one more out; low water is 2 of 10.
    let mut drained_at = Vec::new();
    for n in 1..=7u16 {
        h.send(PubAck::new(pid(n))).unwrap();
        assert_eq!(h.packets().len(), usize::from(n < 7));
        if h.events().contains(&Event::Drained) {
            drained_at.push(h.session.queued_len());
        }
    }
    assert_eq!(drained_at, vec![2], "drained exactly once, at low water");
    assert!(!h.session.is_above_high_water());
}

#[test]
fn session_counts_queued_bytes_against_the_byte_mark_too() {
    let config = ServerConfig {
        max_inflight: 1,
        max_queued_bytes: 40,
        ..ServerConfig::default()
    };
    let mut h = Harness::connected(config, connect_packet("sub", true, 0));
    let now = h.now;
    // "t" + 9 bytes = 10 bytes each; high water is 20 bytes.
    h.session
        .deliver(now, message("t", QoS::AtLeastOnce, b"123456789"));
    h.session
        .deliver(now, message("t", QoS::AtLeastOnce, b"123456789"));
    h.session
        .deliver(now, message("t", QoS::AtLeastOnce, b"123456789"));
    assert_eq!(h.session.queued_bytes(), 20);
    assert!(!h.session.is_above_high_water());
    h.session
        .deliver(now, message("t", QoS::AtLeastOnce, b"123456789"));
    assert!(h.session.is_above_high_water());
}

#[test]
fn session_closed_while_congested_emits_no_drained() {
    let mut h = Harness::connected(queue_of_ten(), connect_packet("sub", true, 0));
    let now = h.now;
    for _ in 0..8 {
        h.session.deliver(now, message("t", QoS::AtLeastOnce, b"m"));
    }
    assert!(h.session.is_above_high_water());
    h.session.close(now);
    let _ = h.packets();
    let events = h.events();
    assert!(!events.contains(&Event::Drained), "{events:?}");
    assert!(matches!(events.as_slice(), [Event::Closed { .. }]));
}

// ----- the router's bookkeeping --------------------------------------------

type R = Router<MemoryStore, AllowAll>;

const T0: Instant = Instant::from_secs(10);

fn router(policy: SlowSubscriberPolicy) -> R {
    let config = RouterConfig {
        slow_subscriber: policy,
        ..RouterConfig::default()
    };
    Router::new(config, MemoryStore::new(), AllowAll)
}

fn drain(r: &mut R) -> Vec<Action> {
    core::iter::from_fn(|| r.poll_action()).collect()
}

/// Connects clean clients `c1`, `c2` … on connections 1, 2 …
fn with_connections(policy: SlowSubscriberPolicy, n: u64) -> R {
    let mut r = router(policy);
    for conn in 1..=n {
        let id = MqttString::new(&format!("c{conn}")).unwrap();
        r.handle_connect(T0, ConnId(conn), ConnectRequest::new(id, true));
    }
    assert_eq!(drain(&mut r).len(), usize::try_from(n).unwrap());
    r
}

fn pause(conn: u64) -> Action {
    Action::PausePublisher { conn: ConnId(conn) }
}

fn resume(conn: u64) -> Action {
    Action::ResumePublisher { conn: ConnId(conn) }
}

/// Reports a queued delivery to `target`, caused by `publisher`.
fn queued(r: &mut R, target: u64, publisher: u64, congested: bool) -> Vec<Action> {
    r.handle_delivery(
        T0,
        ConnId(target),
        Some(ConnId(publisher)),
        DeliverOutcome::Queued,
        congested,
    );
    drain(r)
}

#[test]
fn router_pauses_publisher_of_congested_target_once_and_resumes_on_drain() {
    let mut r = with_connections(SlowSubscriberPolicy::BackPressure, 2);
    assert!(queued(&mut r, 2, 1, false).is_empty());
    assert_eq!(queued(&mut r, 2, 1, true), vec![pause(1)]);
    assert!(r.is_paused(ConnId(1)));
    // Already paused: no second decision.
    assert!(queued(&mut r, 2, 1, true).is_empty());
    r.handle_drained(T0, ConnId(2));
    assert_eq!(drain(&mut r), vec![resume(1)]);
    assert!(!r.is_paused(ConnId(1)));
    assert_eq!(r.paused_count(), 0);
    assert_eq!(r.stats().publisher_pauses, 1);
    // A second drain report changes nothing.
    r.handle_drained(T0, ConnId(2));
    assert!(drain(&mut r).is_empty());
}

#[test]
fn router_resumes_a_publisher_only_when_every_congested_target_it_fed_drained() {
    // Publishers 1 and 2, targets 3 and 4.
    let mut r = with_connections(SlowSubscriberPolicy::BackPressure, 4);
    assert_eq!(queued(&mut r, 3, 1, true), vec![pause(1)]);
    assert!(queued(&mut r, 4, 1, true).is_empty());
    assert_eq!(queued(&mut r, 4, 2, true), vec![pause(2)]);
    assert_eq!(r.paused_count(), 2);

    r.handle_drained(T0, ConnId(3));
    assert!(drain(&mut r).is_empty(), "1 still feeds congested 4");
    assert!(r.is_paused(ConnId(1)));

    r.handle_drained(T0, ConnId(4));
    let mut actions = drain(&mut r);
    actions.sort_by_key(|a| format!("{a:?}"));
    assert_eq!(actions, vec![resume(1), resume(2)]);
    assert_eq!(r.paused_count(), 0);
}

#[test]
fn router_releases_publishers_when_the_congested_target_disconnects() {
    let mut r = with_connections(SlowSubscriberPolicy::BackPressure, 3);
    assert_eq!(queued(&mut r, 3, 1, true), vec![pause(1)]);
    assert_eq!(queued(&mut r, 3, 2, true), vec![pause(2)]);
    r.handle_closed(T0, ConnId(3), false, ResumeState::default());
    let mut actions = drain(&mut r);
    actions.sort_by_key(|a| format!("{a:?}"));
    assert_eq!(actions, vec![resume(1), resume(2)]);
    assert_eq!(r.paused_count(), 0);
    // A late drain report for the closed target is ignored.
    r.handle_drained(T0, ConnId(3));
    assert!(drain(&mut r).is_empty());
}

#[test]
fn router_forgets_a_paused_publisher_that_disconnects() {
    let mut r = with_connections(SlowSubscriberPolicy::BackPressure, 3);
    assert_eq!(queued(&mut r, 3, 1, true), vec![pause(1)]);
    assert_eq!(queued(&mut r, 3, 2, true), vec![pause(2)]);
    r.handle_closed(T0, ConnId(1), false, ResumeState::default());
    assert!(drain(&mut r).is_empty(), "no resume for a gone connection");
    assert!(!r.is_paused(ConnId(1)));
    r.handle_drained(T0, ConnId(3));
    assert_eq!(drain(&mut r), vec![resume(2)]);
    assert_eq!(r.paused_count(), 0);
}

#[test]
fn router_never_pauses_a_connection_whose_own_queue_is_congested() {
    // 1 and 2 publish to each other and both fall behind: pausing both
    // would stop reading the acknowledgements that drain them.
    let mut r = with_connections(SlowSubscriberPolicy::BackPressure, 2);
    assert_eq!(queued(&mut r, 2, 1, true), vec![pause(1)]);
    // 1 becomes congested itself: it is resumed, and 2 is not paused.
    assert_eq!(queued(&mut r, 1, 2, true), vec![resume(1)]);
    assert_eq!(r.paused_count(), 0);
    // 1 drains: 1 still fed congested 2, so now it pauses.
    r.handle_drained(T0, ConnId(1));
    assert_eq!(drain(&mut r), vec![pause(1)]);
    r.handle_drained(T0, ConnId(2));
    assert_eq!(drain(&mut r), vec![resume(1)]);
}

#[test]
fn router_publishing_to_itself_is_not_paused() {
    let mut r = with_connections(SlowSubscriberPolicy::BackPressure, 1);
    assert!(queued(&mut r, 1, 1, true).is_empty());
    assert_eq!(r.paused_count(), 0);
}

#[test]
fn router_pauses_nobody_for_deliveries_without_a_known_publisher() {
    let mut r = with_connections(SlowSubscriberPolicy::BackPressure, 2);
    r.handle_delivery(T0, ConnId(2), None, DeliverOutcome::Queued, true);
    assert!(drain(&mut r).is_empty());
    // An unknown publisher connection is not tracked either.
    assert!(queued(&mut r, 2, 99, true).is_empty());
    assert_eq!(r.paused_count(), 0);
}

#[test]
fn router_reports_and_counts_every_drop_under_either_policy() {
    for policy in [
        SlowSubscriberPolicy::BackPressure,
        SlowSubscriberPolicy::Drop,
    ] {
        let mut r = with_connections(policy, 2);
        r.handle_delivery(
            T0,
            ConnId(2),
            Some(ConnId(1)),
            DeliverOutcome::Dropped(DropReason::QueueFull),
            false,
        );
        assert_eq!(
            drain(&mut r),
            vec![Action::DeliveryDropped {
                conn: ConnId(2),
                publisher: Some(ConnId(1)),
                reason: DropReason::QueueFull,
            }]
        );
        assert_eq!(r.stats().delivery_drops, 1);
    }
}

#[test]
fn router_reports_each_drop_oldest_eviction_as_a_drop() {
    let mut r = with_connections(SlowSubscriberPolicy::Drop, 2);
    r.handle_delivery(
        T0,
        ConnId(2),
        Some(ConnId(1)),
        DeliverOutcome::QueuedEvictedOldest(2),
        false,
    );
    let evicted = Action::DeliveryDropped {
        conn: ConnId(2),
        publisher: None,
        reason: DropReason::EvictedOldest,
    };
    assert_eq!(drain(&mut r), vec![evicted.clone(), evicted]);
    assert_eq!(r.stats().delivery_drops, 2);
}

#[test]
fn session_eviction_under_drop_oldest_reaches_the_router_as_a_drop() {
    let mut h = Harness::connected(
        ServerConfig {
            max_inflight: 1,
            max_queued_messages: 2,
            overflow_policy: midge_broker::OverflowPolicy::DropOldest,
            ..ServerConfig::default()
        },
        connect_packet("sub", true, 0),
    );
    let mut r = with_connections(SlowSubscriberPolicy::Drop, 2);
    let now = h.now;
    let mut outcomes = Vec::new();
    for p in [b"1", b"2", b"3", b"4"] {
        let outcome = h.session.deliver(now, message("t", QoS::AtLeastOnce, p));
        outcomes.push(outcome);
        let above = h.session.is_above_high_water();
        r.handle_delivery(now, ConnId(2), Some(ConnId(1)), outcome, above);
    }
    // One in flight, two queued, and the fourth evicts the oldest queued.
    assert_eq!(outcomes[3], DeliverOutcome::QueuedEvictedOldest(1));
    let drops: Vec<Action> = drain(&mut r)
        .into_iter()
        .filter(|a| matches!(a, Action::DeliveryDropped { .. }))
        .collect();
    assert_eq!(
        drops,
        vec![Action::DeliveryDropped {
            conn: ConnId(2),
            publisher: None,
            reason: DropReason::EvictedOldest,
        }]
    );
    assert_eq!(r.stats().delivery_drops, h.session.stats().dropped_oldest);
}

#[test]
fn router_under_drop_policy_never_pauses() {
    let mut r = with_connections(SlowSubscriberPolicy::Drop, 2);
    assert!(queued(&mut r, 2, 1, true).is_empty());
    assert_eq!(r.paused_count(), 0);
    assert_eq!(r.stats().publisher_pauses, 0);
}

// ----- end to end in the simulation ----------------------------------------

const MESSAGES: u32 = 20_000;
const HARD_LIMIT: usize = 200;

/// A subscriber that reads 3 packets per step behind a socket buffer, a
/// publisher with `MESSAGES` messages queued at once, a server read buffer
/// of 32 packets per step, and at most 512 encoded bytes waiting in the
/// subscriber's session (so that QoS 0 queues too).
fn slow_run(policy: SlowSubscriberPolicy, qos: QoS) -> (Sim, usize, usize) {
    let router = RouterConfig {
        slow_subscriber: policy,
        ..RouterConfig::default()
    };
    let server = ServerConfig {
        max_inflight: 16,
        max_queued_messages: HARD_LIMIT,
        max_unsent_bytes: 512,
        ..ServerConfig::default()
    };
    let mut s = Sim::new(router, server);
    s.read_budget = Some(32);
    let sub = s.add(ClientConfig::new("sub"));
    let p = s.add(ClientConfig::new("pub").with_max_queued(MESSAGES as usize));
    s.connect(sub);
    s.connect(p);
    s.subscribe(sub, &[("load", qos)]);
    s.nodes[sub].faults.read_per_step = Some(3);
    for k in 0..MESSAGES {
        s.publish_later(p, "load", &k.to_be_bytes(), qos, false);
    }
    s.run();
    (s, sub, p)
}

fn numbers(s: &Sim, i: usize) -> Vec<u32> {
    s.payloads(i)
        .iter()
        .map(|p| u32::from_be_bytes(p.as_slice().try_into().unwrap()))
        .collect()
}

#[test]
fn back_pressure_delivers_every_qos1_message_once_in_order_within_the_hard_limit() {
    let (s, sub, _) = slow_run(SlowSubscriberPolicy::BackPressure, QoS::AtLeastOnce);
    let expected: Vec<u32> = (0..MESSAGES).collect();
    assert!(
        numbers(&s, sub) == expected,
        "lost, duplicated or reordered"
    );
    assert!(s.drops.is_empty(), "{:?}", s.drops.first());
    assert!(s.pauses > 0, "the subscriber was slow enough to push back");
    assert_eq!(s.router().stats().publisher_pauses, s.pauses as u64);
    assert!(s.paused.is_empty() && s.router().paused_count() == 0);
    let max = s.max_queued[&sub];
    assert!(max <= HARD_LIMIT, "queue reached {max}");
    assert!(max > HARD_LIMIT / 2, "high water was crossed: {max}");
}

#[test]
fn back_pressure_pauses_for_qos0_too_and_loses_nothing() {
    let (s, sub, _) = slow_run(SlowSubscriberPolicy::BackPressure, QoS::AtMostOnce);
    let expected: Vec<u32> = (0..MESSAGES).collect();
    assert!(
        numbers(&s, sub) == expected,
        "lost, duplicated or reordered"
    );
    assert!(s.drops.is_empty());
    assert!(s.pauses > 0);
    assert!(s.max_queued[&sub] <= HARD_LIMIT);
}

#[test]
fn drop_policy_drops_at_the_hard_limit_and_reports_every_drop() {
    let (s, sub, p) = slow_run(SlowSubscriberPolicy::Drop, QoS::AtLeastOnce);
    let got = numbers(&s, sub);
    assert!(
        !s.drops.is_empty(),
        "a slow subscriber under Drop loses messages"
    );
    assert_eq!(s.pauses, 0);
    assert_eq!(s.router().stats().delivery_drops, s.drops.len() as u64);
    let pub_conn = s.conn(p);
    assert!(s.drops.iter().all(|(target, publisher, reason)| {
        Some(*target) == s.conn(sub) && *publisher == pub_conn && *reason == DropReason::QueueFull
    }));
    // Each message is delivered once or reported dropped, never both, and
    // what arrives keeps its order.
    assert_eq!(got.len() + s.drops.len(), MESSAGES as usize);
    assert!(got.windows(2).all(|w| w[0] < w[1]));
    assert!(s.max_queued[&sub] <= HARD_LIMIT);
}

#[test]
fn back_pressure_releases_the_publisher_when_the_slow_subscriber_goes_away() {
    let router = RouterConfig::default();
    let server = ServerConfig {
        max_inflight: 16,
        max_queued_messages: HARD_LIMIT,
        ..ServerConfig::default()
    };
    let mut s = Sim::new(router, server);
    s.read_budget = Some(32);
    let sub = s.add(ClientConfig::new("sub"));
    let p = s.add(ClientConfig::new("pub").with_max_queued(2000));
    s.connect(sub);
    s.connect(p);
    s.subscribe(sub, &[("load", QoS::AtLeastOnce)]);
    s.nodes[sub].faults.read_per_step = Some(1);
    for k in 0..2000u32 {
        s.publish_later(p, "load", &k.to_be_bytes(), QoS::AtLeastOnce, false);
    }
    assert!(!s.run_steps(100), "still busy");
    let pub_conn = s.conn(p).unwrap();
    assert!(s.paused.contains(&pub_conn), "the publisher is held back");
    s.cut(sub);
    assert!(s.paused.is_empty());
    assert_eq!(s.router().paused_count(), 0);
    // The publisher finished: nothing of its own waits any more.
    assert_eq!(s.nodes[p].client.queued_len(), 0);
    assert_eq!(s.nodes[p].client.inflight_len(), 0);
}

// ----- across router shards --------------------------------------------------

/// A client id starting with `prefix` whose session lives on `shard` of `n`.
fn id_on(prefix: &str, shard: u32, n: u32) -> String {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|id| shard_of(id, n) == shard)
        .unwrap()
}

/// Two shards: publisher connection 1 on shard 0, subscriber connection 2
/// (subscribed to `t` at QoS 1) on shard 1.
fn two_shards() -> Vec<R> {
    let mut shards: Vec<R> = (0..2)
        .map(|shard| {
            let config = RouterConfig {
                shards: 2,
                shard,
                ..RouterConfig::default()
            };
            Router::new(config, MemoryStore::new(), AllowAll)
        })
        .collect();
    let publisher = MqttString::new(&id_on("pub", 0, 2)).unwrap();
    let subscriber = MqttString::new(&id_on("sub", 1, 2)).unwrap();
    shards[0].handle_connect(T0, ConnId(1), ConnectRequest::new(publisher, true));
    shards[1].handle_connect(T0, ConnId(2), ConnectRequest::new(subscriber, true));
    let filter = SubscribeFilter::new(Filter::new("t").unwrap(), QoS::AtLeastOnce);
    shards[1].handle_subscribe(T0, ConnId(2), pid(1), vec![filter]);
    pump(&mut shards);
    for r in &mut shards {
        drain(r);
    }
    shards
}

/// Moves shard messages (FIFO) until every shard is quiet.
fn pump(shards: &mut [R]) {
    let mut wire = VecDeque::new();
    loop {
        for r in shards.iter_mut() {
            while let Some(m) = r.poll_shard_message() {
                wire.push_back(m);
            }
        }
        let Some((to, m)) = wire.pop_front() else {
            return;
        };
        shards[to as usize].handle_shard_message(T0, m);
    }
}

/// Connection 1 publishes on shard 0; shard 1 applies its deliveries and
/// reports them (after a shard message, so with no publisher) as
/// `congested`. Returns shard 0's actions once the shards are quiet.
fn publish_across(shards: &mut [R], congested: bool) -> Vec<Action> {
    shards[0].handle_publish(T0, ConnId(1), message("t", QoS::AtLeastOnce, b"m"));
    assert!(drain(&mut shards[0]).is_empty(), "nothing local to deliver");
    pump(shards);
    let delivered = drain(&mut shards[1]);
    assert!(
        matches!(
            delivered.as_slice(),
            [Action::Deliver {
                conn: ConnId(2),
                ..
            }]
        ),
        "{delivered:?}"
    );
    shards[1].handle_delivery(T0, ConnId(2), None, DeliverOutcome::Queued, congested);
    assert!(drain(&mut shards[1]).is_empty());
    pump(shards);
    drain(&mut shards[0])
}

#[test]
fn cross_shard_publisher_is_paused_by_a_congested_target_and_resumed_on_drain() {
    let mut shards = two_shards();
    assert!(publish_across(&mut shards, false).is_empty());
    assert_eq!(publish_across(&mut shards, true), vec![pause(1)]);
    assert!(shards[0].is_paused(ConnId(1)));
    assert_eq!(shards[0].stats().publisher_pauses, 1);
    // Still congested: no second decision.
    assert!(publish_across(&mut shards, true).is_empty());
    shards[1].handle_drained(T0, ConnId(2));
    assert!(drain(&mut shards[1]).is_empty());
    pump(&mut shards);
    assert_eq!(drain(&mut shards[0]), vec![resume(1)]);
    assert_eq!(shards[0].paused_count(), 0);
    // Congested again later: paused again.
    assert_eq!(publish_across(&mut shards, true), vec![pause(1)]);
}

#[test]
fn cross_shard_target_disconnect_releases_the_remote_publisher() {
    let mut shards = two_shards();
    assert_eq!(publish_across(&mut shards, true), vec![pause(1)]);
    shards[1].handle_closed(T0, ConnId(2), false, ResumeState::default());
    pump(&mut shards);
    assert_eq!(drain(&mut shards[0]), vec![resume(1)]);
    assert_eq!(shards[0].paused_count(), 0);
    // A late drain report for the closed target sends nothing.
    shards[1].handle_drained(T0, ConnId(2));
    assert!(shards[1].poll_shard_message().is_none());
}

#[test]
fn cross_shard_publisher_that_disconnects_is_forgotten() {
    let mut shards = two_shards();
    assert_eq!(publish_across(&mut shards, true), vec![pause(1)]);
    shards[0].handle_closed(T0, ConnId(1), false, ResumeState::default());
    assert!(
        drain(&mut shards[0]).is_empty(),
        "no resume for a gone connection"
    );
    assert!(!shards[0].is_paused(ConnId(1)));
    // The target drains later: the release reaches a shard that has
    // forgotten the publisher and changes nothing.
    shards[1].handle_drained(T0, ConnId(2));
    pump(&mut shards);
    assert!(drain(&mut shards[0]).is_empty());
    assert_eq!(shards[0].paused_count(), 0);
}

#[test]
fn cross_shard_publisher_congested_itself_is_not_paused_until_it_drains() {
    let mut shards = two_shards();
    // The publisher's own queue (on shard 0) is congested.
    shards[0].handle_delivery(T0, ConnId(1), None, DeliverOutcome::Queued, true);
    assert!(drain(&mut shards[0]).is_empty());
    assert!(publish_across(&mut shards, true).is_empty());
    assert!(!shards[0].is_paused(ConnId(1)));
    // Once its own queue drains, the remote target still holds it.
    shards[0].handle_drained(T0, ConnId(1));
    assert_eq!(drain(&mut shards[0]), vec![pause(1)]);
    shards[1].handle_drained(T0, ConnId(2));
    pump(&mut shards);
    assert_eq!(drain(&mut shards[0]), vec![resume(1)]);
}

#[test]
fn cross_shard_delivery_names_its_publisher() {
    let mut shards = two_shards();
    shards[0].handle_publish(T0, ConnId(1), message("t", QoS::AtMostOnce, b"m"));
    let Some((1, ShardMessage::Deliver { publisher, .. })) = shards[0].poll_shard_message() else {
        panic!("expected a delivery for shard 1");
    };
    assert_eq!(
        publisher,
        Some(ShardConn {
            shard: 0,
            conn: ConnId(1)
        })
    );
}

/// [`slow_run`] with the router split into three shards and the publisher
/// and subscriber on different ones.
fn slow_run_sharded(qos: QoS) -> (Sim, usize) {
    let server = ServerConfig {
        max_inflight: 16,
        max_queued_messages: HARD_LIMIT,
        max_unsent_bytes: 512,
        ..ServerConfig::default()
    };
    let mut s = Sim::with_shards(3, RouterConfig::default(), server);
    s.read_budget = Some(32);
    let sub_id = id_on("sub", 1, 3);
    let pub_id = id_on("pub", 2, 3);
    let sub = s.add(ClientConfig::new(&sub_id));
    let p = s.add(ClientConfig::new(&pub_id).with_max_queued(MESSAGES as usize));
    s.connect(sub);
    s.connect(p);
    s.subscribe(sub, &[("load", qos)]);
    s.nodes[sub].faults.read_per_step = Some(3);
    for k in 0..MESSAGES {
        s.publish_later(p, "load", &k.to_be_bytes(), qos, false);
    }
    s.run();
    (s, sub)
}

#[test]
fn back_pressure_across_shards_delivers_every_message_once_in_order_within_the_hard_limit() {
    for qos in [QoS::AtLeastOnce, QoS::AtMostOnce] {
        let (s, sub) = slow_run_sharded(qos);
        let expected: Vec<u32> = (0..MESSAGES).collect();
        assert!(
            numbers(&s, sub) == expected,
            "lost, duplicated or reordered at {qos:?}"
        );
        assert!(s.drops.is_empty(), "{:?}", s.drops.first());
        assert!(s.pauses > 0, "the remote publisher was paused");
        let pauses: u64 = s.routers.iter().map(|r| r.stats().publisher_pauses).sum();
        assert_eq!(pauses, s.pauses as u64);
        assert_eq!(
            s.routers[2].stats().publisher_pauses,
            pauses,
            "on its shard"
        );
        assert!(s.paused.is_empty());
        assert!(s.routers.iter().all(|r| r.paused_count() == 0));
        let max = s.max_queued[&sub];
        assert!(max <= HARD_LIMIT, "queue reached {max}");
    }
}

/// A share-group name whose group `name/t` is owned by `shard` of `n`.
fn group_on(shard: u32, n: u32) -> String {
    (0..)
        .map(|i| format!("g{i}"))
        .find(|g| shard_of(&format!("{g}/t"), n) == shard)
        .unwrap()
}

/// Two shards; connection 1 publishes on shard 0, connection 2 on shard
/// `member_shard` is the only member of a share group on `t` owned by
/// `owner`.
fn shared_two_shards(member_shard: u32, owner: u32) -> Vec<R> {
    let mut shards: Vec<R> = (0..2)
        .map(|shard| {
            let config = RouterConfig {
                shards: 2,
                shard,
                ..RouterConfig::default()
            };
            Router::new(config, MemoryStore::new(), AllowAll)
        })
        .collect();
    let publisher = MqttString::new(&id_on("pub", 0, 2)).unwrap();
    let member = MqttString::new(&id_on("member", member_shard, 2)).unwrap();
    let m = member_shard as usize;
    shards[0].handle_connect(T0, ConnId(1), ConnectRequest::new(publisher, true));
    shards[m].handle_connect(T0, ConnId(2), ConnectRequest::new(member, true));
    let filter = format!("$share/{}/t", group_on(owner, 2));
    let filter = SubscribeFilter::new(Filter::new(&filter).unwrap(), QoS::AtLeastOnce);
    shards[m].handle_subscribe(T0, ConnId(2), pid(1), vec![filter]);
    pump(&mut shards);
    for r in &mut shards {
        drain(r);
    }
    shards
}

/// Publishes on shard 0, applies the member's delivery on `member_shard`
/// and reports it congested as an adapter would (with the publisher after
/// `handle_publish`, without it after shard messages).
fn publish_shared(shards: &mut [R], member_shard: usize) {
    shards[0].handle_publish(T0, ConnId(1), message("t", QoS::AtLeastOnce, b"m"));
    let local = drain(&mut shards[0]);
    let delivered_locally = local.iter().any(|a| {
        matches!(
            a,
            Action::Deliver {
                conn: ConnId(2),
                ..
            }
        )
    });
    if delivered_locally {
        shards[0].handle_delivery(T0, ConnId(2), Some(ConnId(1)), DeliverOutcome::Queued, true);
    }
    pump(shards);
    let later = drain(&mut shards[member_shard]);
    for a in later {
        if matches!(
            a,
            Action::Deliver {
                conn: ConnId(2),
                ..
            }
        ) {
            shards[member_shard].handle_delivery(T0, ConnId(2), None, DeliverOutcome::Queued, true);
        }
    }
    pump(shards);
}

#[test]
fn share_group_owned_by_the_member_shard_pauses_the_remote_publisher() {
    let mut shards = shared_two_shards(1, 1);
    publish_shared(&mut shards, 1);
    assert_eq!(drain(&mut shards[0]), vec![pause(1)]);
    shards[1].handle_drained(T0, ConnId(2));
    pump(&mut shards);
    assert_eq!(drain(&mut shards[0]), vec![resume(1)]);
}

#[test]
fn share_group_owned_elsewhere_pauses_a_publisher_on_the_member_shard_locally() {
    // Publisher and member on shard 0, the group on shard 1: the message
    // goes to shard 1 and comes back naming a publisher of shard 0.
    let mut shards = shared_two_shards(0, 1);
    publish_shared(&mut shards, 0);
    assert_eq!(drain(&mut shards[0]), vec![pause(1)]);
    shards[0].handle_drained(T0, ConnId(2));
    assert_eq!(drain(&mut shards[0]), vec![resume(1)]);
    assert!(shards[1].poll_shard_message().is_none());
}
