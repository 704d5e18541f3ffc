//! The broker's own publications ([`Router::handle_internal_publish`]) and
//! the subscription count the statistics read.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use midge_broker::router::{Action, AllowAll, Auth, ConnId, ConnectRequest, MemoryStore, Router};
use midge_broker::RouterConfig;
use midge_codec::{
    Filter, MqttString, PacketId, Publish, QoS, QosPid, SubscribeFilter, SubscribeReturnCode, Topic,
};
use midge_time::Instant;

const T0: Instant = Instant::from_secs(1);

fn drain<S: midge_broker::Store, A: Auth>(r: &mut Router<S, A>) -> Vec<Action> {
    core::iter::from_fn(|| r.poll_action()).collect()
}

fn connect<S: midge_broker::Store, A: Auth>(r: &mut Router<S, A>, conn: u64, id: &str) {
    let request = ConnectRequest::new(MqttString::new(id).unwrap(), true);
    r.handle_connect(T0, ConnId(conn), request);
    assert!(matches!(drain(r).as_slice(), [Action::Accept { .. }]));
}

fn subscribe<S: midge_broker::Store, A: Auth>(
    r: &mut Router<S, A>,
    conn: u64,
    filters: &[&str],
) -> Vec<SubscribeReturnCode> {
    let filters = filters
        .iter()
        .map(|f| SubscribeFilter::new(Filter::new(f).unwrap(), QoS::AtMostOnce))
        .collect();
    r.handle_subscribe(T0, ConnId(conn), PacketId::new(1).unwrap(), filters);
    match drain(r).first() {
        Some(Action::SubAck { results, .. }) => results.clone(),
        other => panic!("expected a SubAck, got {other:?}"),
    }
}

fn sys(topic: &str, payload: &'static [u8]) -> Publish {
    let mut p = Publish::new(
        Topic::new(topic).unwrap(),
        QosPid::AtMostOnce,
        Bytes::from_static(payload),
    );
    p.retain = true;
    p
}

fn delivered(actions: &[Action]) -> Vec<(u64, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Deliver { conn, publish } => Some((conn.0, publish.topic.as_str().to_string())),
            _ => None,
        })
        .collect()
}

#[test]
fn internal_publish_reaches_sys_subscribers_and_is_retained() {
    let mut r = Router::new(RouterConfig::default(), MemoryStore::new(), AllowAll);
    connect(&mut r, 1, "watcher");
    subscribe(&mut r, 1, &["$SYS/#"]);
    r.handle_internal_publish(T0, sys("$SYS/broker/uptime", b"5"));
    assert_eq!(
        delivered(&drain(&mut r)),
        vec![(1, "$SYS/broker/uptime".to_string())]
    );
    assert_eq!(
        r.retained("$SYS/broker/uptime").map(|p| p.payload.as_ref()),
        Some(&b"5"[..])
    );
    // The broker's own message is not a client's forbidden $SYS publish.
    assert_eq!(r.stats().sys_publishes_dropped, 0);
    // A client's publish to the same topic is still dropped.
    r.handle_publish(T0, ConnId(1), sys("$SYS/broker/uptime", b"6"));
    assert!(delivered(&drain(&mut r)).is_empty());
    assert_eq!(r.stats().sys_publishes_dropped, 1);
}

#[test]
fn mqtt_4_7_2_1_internal_sys_publish_escapes_leading_wildcards() {
    let mut r = Router::new(RouterConfig::default(), MemoryStore::new(), AllowAll);
    connect(&mut r, 1, "everything");
    subscribe(&mut r, 1, &["#", "+/broker/uptime"]);
    r.handle_internal_publish(T0, sys("$SYS/broker/uptime", b"5"));
    assert!(delivered(&drain(&mut r)).is_empty());
}

/// Refuses subscriptions to `$SYS` topics, allows everything else.
#[derive(Debug)]
struct NoSys;

impl Auth for NoSys {
    fn connect(
        &mut self,
        _client_id: &str,
        _username: Option<&str>,
        _password: Option<&[u8]>,
    ) -> Result<(), midge_codec::ConnectReturnCode> {
        Ok(())
    }

    fn may_publish(&self, _client_id: &str, _username: Option<&str>, _topic: &str) -> bool {
        true
    }

    fn may_subscribe(&self, _client_id: &str, _username: Option<&str>, filter: &str) -> bool {
        !filter.starts_with("$SYS")
    }
}

#[test]
fn internal_publish_skips_publish_auth_but_readers_need_subscribe_rights() {
    let mut r = Router::new(RouterConfig::default(), MemoryStore::new(), NoSys);
    connect(&mut r, 1, "reader");
    assert_eq!(
        subscribe(&mut r, 1, &["$SYS/#"]),
        vec![SubscribeReturnCode::Failure]
    );
    r.handle_internal_publish(T0, sys("$SYS/broker/version", b"v"));
    assert!(delivered(&drain(&mut r)).is_empty());
    assert!(r.retained("$SYS/broker/version").is_some());
}

#[test]
fn subscription_count_counts_each_client_and_filter_once() {
    let mut r = Router::new(RouterConfig::default(), MemoryStore::new(), AllowAll);
    assert_eq!(r.subscription_count(), 0);
    connect(&mut r, 1, "a");
    connect(&mut r, 2, "b");
    subscribe(&mut r, 1, &["x/#", "y"]);
    subscribe(&mut r, 1, &["y"]);
    subscribe(&mut r, 2, &["x/#"]);
    assert_eq!(r.subscription_count(), 3);
    r.handle_unsubscribe(T0, ConnId(1), vec![Filter::new("y").unwrap()]);
    drain(&mut r);
    assert_eq!(r.subscription_count(), 2);
}
