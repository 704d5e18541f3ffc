//! The router split into shards: a cluster of `Router`s that exchange
//! `ShardMessage`s over in-memory FIFO channels must behave, as seen by the
//! clients, like one router: checked on directed cases and by a proptest
//! that runs random operations on both and compares every client's
//! deliveries per topic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use midge_broker::router::{
    shard_of, Action, AllowAll, ConnId, ConnectRequest, MemoryStore, Router, ShardMessage,
};
use midge_broker::{InflightMessage, ResumeState, RouterConfig};
use midge_codec::{
    ConnectReturnCode, Filter, MqttString, PacketId, Publish, QoS, QosPid, SubscribeFilter, Topic,
};
use midge_time::Instant;
use proptest::prelude::*;

const T0: Instant = Instant::from_secs(5);

type R = Router<MemoryStore, AllowAll>;

/// (topic, payload, QoS, RETAIN) as a client would see it.
type Seen = (String, Vec<u8>, QoS, bool);

/// N shards, or one router when N is 1, driven the same way.
struct Cluster {
    shards: Vec<R>,
    /// Which shard each connection talks to, and its client.
    conns: BTreeMap<ConnId, (usize, String)>,
    /// Per client id, everything delivered to it, in order.
    seen: BTreeMap<String, Vec<Seen>>,
    /// Per connection, the Accept it got: (session present).
    accepted: BTreeMap<ConnId, bool>,
    refused: BTreeMap<ConnId, ConnectReturnCode>,
    closes: Vec<ConnId>,
}

impl Cluster {
    fn new(n: u32) -> Self {
        let shards = (0..n)
            .map(|shard| {
                let config = RouterConfig {
                    shards: n,
                    shard,
                    ..RouterConfig::default()
                };
                Router::new(config, MemoryStore::new(), AllowAll)
            })
            .collect();
        Self {
            shards,
            conns: BTreeMap::new(),
            seen: BTreeMap::new(),
            accepted: BTreeMap::new(),
            refused: BTreeMap::new(),
            closes: Vec::new(),
        }
    }

    fn n(&self) -> u32 {
        u32::try_from(self.shards.len()).unwrap()
    }

    fn shard_for(&self, client: &str) -> usize {
        shard_of(client, self.n()) as usize
    }

    fn record(&mut self, client: &str, p: &Publish) {
        self.seen.entry(client.to_string()).or_default().push((
            p.topic.as_str().to_string(),
            p.payload.to_vec(),
            p.qos(),
            p.retain,
        ));
    }

    /// Moves shard messages (FIFO) and collects actions until quiet.
    fn pump(&mut self) {
        let mut wire: VecDeque<(usize, ShardMessage)> = VecDeque::new();
        loop {
            let mut moved = false;
            for i in 0..self.shards.len() {
                while let Some((to, m)) = self.shards[i].poll_shard_message() {
                    assert_ne!(to as usize, i, "a shard wrote to itself");
                    wire.push_back((to as usize, m));
                    moved = true;
                }
                while let Some(a) = self.shards[i].poll_action() {
                    moved = true;
                    match a {
                        Action::Accept {
                            conn,
                            session_present,
                            resume,
                        } => {
                            self.accepted.insert(conn, session_present);
                            let client = self.conns[&conn].1.clone();
                            for m in &resume.inflight {
                                if let InflightMessage::Publish(p) = m {
                                    self.record(&client, p);
                                }
                            }
                            for p in &resume.queued {
                                self.record(&client, p);
                            }
                        }
                        Action::Refuse { conn, code } => {
                            self.refused.insert(conn, code);
                        }
                        Action::Deliver { conn, publish } => {
                            let client = self.conns[&conn].1.clone();
                            self.record(&client, &publish);
                        }
                        Action::Close { conn } => self.closes.push(conn),
                        Action::SubAck { .. } => {}
                        other => panic!("unexpected {other:?}"),
                    }
                }
            }
            if let Some((to, m)) = wire.pop_front() {
                self.shards[to].handle_shard_message(T0, m);
                moved = true;
            }
            if !moved {
                return;
            }
        }
    }

    fn connect(&mut self, conn: u64, client: &str, clean: bool) {
        let shard = self.shard_for(client);
        self.conns.insert(ConnId(conn), (shard, client.to_string()));
        let req = ConnectRequest::new(MqttString::new(client).unwrap(), clean);
        self.shards[shard].handle_connect(T0, ConnId(conn), req);
        self.pump();
    }

    fn close(&mut self, conn: u64, resume: ResumeState) {
        let shard = self.conns[&ConnId(conn)].0;
        self.shards[shard].handle_closed(T0, ConnId(conn), false, resume);
        self.pump();
    }

    fn subscribe(&mut self, conn: u64, filter: &str, qos: QoS) {
        let shard = self.conns[&ConnId(conn)].0;
        let f = vec![SubscribeFilter::new(Filter::new(filter).unwrap(), qos)];
        self.shards[shard].handle_subscribe(T0, ConnId(conn), PacketId::new(1).unwrap(), f);
        self.pump();
    }

    fn unsubscribe(&mut self, conn: u64, filter: &str) {
        let shard = self.conns[&ConnId(conn)].0;
        self.shards[shard].handle_unsubscribe(T0, ConnId(conn), vec![Filter::new(filter).unwrap()]);
        self.pump();
    }

    fn publish(&mut self, conn: u64, topic: &str, payload: &[u8], qos: QoS, retain: bool) {
        let shard = self.conns[&ConnId(conn)].0;
        let qos_pid = match qos {
            QoS::AtMostOnce => QosPid::AtMostOnce,
            QoS::AtLeastOnce => QosPid::AtLeastOnce(PacketId::new(3).unwrap()),
            QoS::ExactlyOnce => QosPid::ExactlyOnce(PacketId::new(3).unwrap()),
        };
        let mut p = Publish::new(
            Topic::new(topic).unwrap(),
            qos_pid,
            Bytes::copy_from_slice(payload),
        );
        p.retain = retain;
        self.shards[shard].handle_publish(T0, ConnId(conn), p);
        self.pump();
    }

    /// Deliveries per (client, topic), in order.
    fn per_topic(&self) -> BTreeMap<(String, String), Vec<Seen>> {
        let mut out: BTreeMap<(String, String), Vec<Seen>> = BTreeMap::new();
        for (client, seen) in &self.seen {
            for s in seen {
                out.entry((client.clone(), s.0.clone()))
                    .or_default()
                    .push(s.clone());
            }
        }
        out
    }

    fn retained(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        for topic in ["a", "a/b", "b/c", "$t/a", "a/b/c", "x/1", "x/2", "x/3"] {
            let held: Vec<_> = self
                .shards
                .iter()
                .filter_map(|r| r.retained(topic))
                .collect();
            assert!(held.len() <= 1, "{topic} retained on several shards");
            if let Some(p) = held.first() {
                out.insert(topic.to_string(), p.payload.to_vec());
            }
        }
        out
    }
}

/// Client ids spread over three shards (checked below).
const IDS: [&str; 6] = ["c0", "c1", "c2", "c3", "c4", "c5"];

#[test]
fn client_ids_and_topics_spread_over_the_shards() {
    let shards: std::collections::BTreeSet<u32> = IDS.iter().map(|id| shard_of(id, 3)).collect();
    assert_eq!(shards.len(), 3);
    assert_eq!(shard_of("anything", 1), 0);
    assert_eq!(shard_of("anything", 0), 0);
}

#[test]
fn connect_on_the_wrong_shard_is_refused() {
    let mut c = Cluster::new(3);
    let id = IDS[0];
    let wrong = (c.shard_for(id) + 1) % 3;
    c.conns.insert(ConnId(1), (wrong, id.to_string()));
    c.shards[wrong].handle_connect(
        T0,
        ConnId(1),
        ConnectRequest::new(MqttString::new(id).unwrap(), true),
    );
    c.pump();
    assert_eq!(c.refused[&ConnId(1)], ConnectReturnCode::ServerUnavailable);
    assert_eq!(c.shards[wrong].stats().wrong_shard, 1);
}

#[test]
fn mqtt_3_3_5_1_highest_qos_across_shards() {
    let mut c = Cluster::new(3);
    for (k, id) in IDS.iter().enumerate() {
        c.connect(k as u64 + 1, id, true);
        c.subscribe(k as u64 + 1, "a/#", QoS::AtMostOnce);
        c.subscribe(k as u64 + 1, "a/+", QoS::AtLeastOnce);
    }
    c.publish(1, "a/b", b"m", QoS::ExactlyOnce, false);
    for id in IDS {
        assert_eq!(
            c.seen[id],
            vec![("a/b".to_string(), b"m".to_vec(), QoS::AtLeastOnce, false)]
        );
    }
}

#[test]
fn mqtt_3_3_1_6_retained_on_other_shards_reach_a_new_subscriber() {
    let mut c = Cluster::new(3);
    c.connect(1, IDS[0], true);
    for t in ["x/1", "x/2", "x/3"] {
        c.publish(1, t, t.as_bytes(), QoS::AtLeastOnce, true);
    }
    let owners: std::collections::BTreeSet<u32> = ["x/1", "x/2", "x/3"]
        .iter()
        .map(|t| shard_of(t, 3))
        .collect();
    assert!(owners.len() > 1, "the topics should have different owners");
    c.connect(2, IDS[1], true);
    c.subscribe(2, "x/+", QoS::ExactlyOnce);
    let mut got = c.seen[IDS[1]].clone();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("x/1".to_string(), b"x/1".to_vec(), QoS::AtLeastOnce, true),
            ("x/2".to_string(), b"x/2".to_vec(), QoS::AtLeastOnce, true),
            ("x/3".to_string(), b"x/3".to_vec(), QoS::AtLeastOnce, true),
        ]
    );
}

#[test]
fn mqtt_3_1_4_2_takeover_stays_on_the_clients_shard() {
    let mut c = Cluster::new(3);
    c.connect(1, IDS[2], false);
    c.subscribe(1, "t", QoS::AtLeastOnce);
    c.connect(2, IDS[2], false);
    assert_eq!(c.closes, vec![ConnId(1)]);
    c.close(1, ResumeState::default());
    assert_eq!(c.accepted.get(&ConnId(2)), Some(&true));
    c.connect(3, IDS[3], true);
    c.publish(3, "t", b"after", QoS::AtLeastOnce, false);
    assert_eq!(c.seen[IDS[2]].len(), 1);
}

#[test]
fn shared_group_spans_shards_round_robin_and_redispatches() {
    let mut c = Cluster::new(3);
    for (k, id) in IDS.iter().take(3).enumerate() {
        c.connect(k as u64 + 1, id, true);
        c.subscribe(k as u64 + 1, "$share/g/jobs", QoS::AtLeastOnce);
    }
    c.connect(10, IDS[5], true);
    for k in 0..6u8 {
        c.publish(10, "jobs", &[k], QoS::AtLeastOnce, false);
    }
    for id in IDS.iter().take(3) {
        assert_eq!(c.seen[*id].len(), 2, "{id}: {:?}", c.seen[*id]);
    }
    // The first member leaves with job 9 unacknowledged: another member gets it.
    let mut job = Publish::new(
        Topic::new("jobs").unwrap(),
        QosPid::AtLeastOnce(PacketId::new(4).unwrap()),
        Bytes::from_static(&[9]),
    );
    job.dup = true;
    c.close(
        1,
        ResumeState {
            inflight: vec![InflightMessage::Publish(job)],
            ..ResumeState::default()
        },
    );
    let others: usize = IDS[1..3]
        .iter()
        .map(|id| c.seen[*id].iter().filter(|s| s.1 == [9]).count())
        .sum();
    assert_eq!(others, 1);
    let redispatched: u64 = c.shards.iter().map(|r| r.stats().shared_redispatched).sum();
    assert_eq!(redispatched, 1);
    // From now on only the two remaining members get jobs.
    let before: usize = c.seen[IDS[0]].len();
    for k in 20..24u8 {
        c.publish(10, "jobs", &[k], QoS::AtLeastOnce, false);
    }
    assert_eq!(c.seen[IDS[0]].len(), before);
}

const TOPICS: [&str; 5] = ["a", "a/b", "b/c", "$t/a", "a/b/c"];
const FILTERS: [&str; 7] = ["a", "a/+", "a/#", "#", "+/c", "$t/#", "+/+"];

#[derive(Debug, Clone)]
enum Op {
    Connect(usize),
    Close(usize),
    Subscribe(usize, usize, QoS),
    Unsubscribe(usize, usize),
    Publish(usize, usize, QoS, bool),
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let c = 0..IDS.len();
    prop_oneof![
        2 => c.clone().prop_map(Op::Connect),
        1 => c.clone().prop_map(Op::Close),
        3 => (c.clone(), 0..FILTERS.len(), qos()).prop_map(|(i, f, q)| Op::Subscribe(i, f, q)),
        1 => (c.clone(), 0..FILTERS.len()).prop_map(|(i, f)| Op::Unsubscribe(i, f)),
        5 => (c, 0..TOPICS.len(), qos(), any::<bool>()).prop_map(|(i, t, q, r)| Op::Publish(i, t, q, r)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn three_shards_deliver_like_one_router(ops in proptest::collection::vec(op(), 1..60)) {
        let mut one = Cluster::new(1);
        let mut three = Cluster::new(3);
        // Per client: its live connection id.
        let mut live: BTreeMap<usize, u64> = BTreeMap::new();
        let mut next_conn = 1u64;
        let mut next_msg = 0u16;
        for op in ops {
            match op {
                Op::Connect(i) => {
                    if let std::collections::btree_map::Entry::Vacant(slot) = live.entry(i) {
                        // Even-numbered clients keep their sessions.
                        let clean = i % 2 == 1;
                        for c in [&mut one, &mut three] {
                            c.connect(next_conn, IDS[i], clean);
                        }
                        prop_assert_eq!(
                            one.accepted.get(&ConnId(next_conn)),
                            three.accepted.get(&ConnId(next_conn))
                        );
                        slot.insert(next_conn);
                        next_conn += 1;
                    }
                }
                Op::Close(i) => {
                    if let Some(conn) = live.remove(&i) {
                        for c in [&mut one, &mut three] {
                            c.close(conn, ResumeState::default());
                        }
                    }
                }
                Op::Subscribe(i, f, q) => {
                    if let Some(&conn) = live.get(&i) {
                        for c in [&mut one, &mut three] {
                            c.subscribe(conn, FILTERS[f], q);
                        }
                    }
                }
                Op::Unsubscribe(i, f) => {
                    if let Some(&conn) = live.get(&i) {
                        for c in [&mut one, &mut three] {
                            c.unsubscribe(conn, FILTERS[f]);
                        }
                    }
                }
                Op::Publish(i, t, q, retain) => {
                    if let Some(&conn) = live.get(&i) {
                        next_msg += 1;
                        for c in [&mut one, &mut three] {
                            c.publish(conn, TOPICS[t], &next_msg.to_be_bytes(), q, retain);
                        }
                    }
                }
            }
            prop_assert_eq!(one.per_topic(), three.per_topic(), "after {:?}", op);
            prop_assert_eq!(one.retained(), three.retained());
        }
    }
}

#[test]
fn recovered_shards_rebuild_the_replicated_index() {
    let mut c = Cluster::new(3);
    for (k, id) in IDS.iter().enumerate() {
        c.connect(k as u64 + 1, id, false);
        c.subscribe(k as u64 + 1, "r/#", QoS::AtLeastOnce);
        c.close(k as u64 + 1, ResumeState::default());
    }
    c.connect(20, IDS[0], false);
    c.publish(20, "r/x", b"kept", QoS::AtLeastOnce, true);
    c.close(20, ResumeState::default());

    // Restart every shard from its own store.
    let mut fresh = Cluster::new(3);
    for (i, old) in c.shards.iter().enumerate() {
        let config = old.config().clone();
        fresh.shards[i] = Router::new(config, old.store().clone(), AllowAll);
    }
    for r in &mut fresh.shards {
        r.recover(T0).unwrap();
    }
    fresh.pump();
    fresh.connect(30, "publisher", true);
    fresh.publish(30, "r/y", b"after", QoS::AtLeastOnce, false);
    for (k, id) in IDS.iter().enumerate() {
        fresh.connect(40 + k as u64, id, false);
        assert!(fresh.accepted[&ConnId(40 + k as u64)]);
        // r/x was queued before the restart for everyone but its
        // publisher, who was online; r/y reached the recovered index.
        let mut want = Vec::new();
        if k > 0 {
            want.push(("r/x".to_string(), b"kept".to_vec(), QoS::AtLeastOnce, false));
        }
        want.push((
            "r/y".to_string(),
            b"after".to_vec(),
            QoS::AtLeastOnce,
            false,
        ));
        assert_eq!(fresh.seen[*id], want, "{id}");
    }
    let retained: usize = fresh.shards.iter().map(R::retained_len).sum();
    assert_eq!(retained, 1);
}
