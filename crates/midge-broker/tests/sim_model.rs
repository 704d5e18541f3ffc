//! A model test: random sequences of connect, disconnect, link failure,
//! subscribe, unsubscribe and publish run through the simulation (real
//! clients, sessions and router), and each client's received messages must
//! equal what a small reference model of the broker predicts: who receives
//! which message, at which QoS, with which RETAIN flag, how many times and
//! in which order. Every client has a will, due when its link fails but not
//! after DISCONNECT. The router runs as one shard or as three.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod sim;

use std::collections::BTreeMap;

use bytes::Bytes;
use midge_broker::{RouterConfig, ServerConfig};
use midge_codec::{LastWill, QoS, Topic};
use midge_session::ClientConfig;
use proptest::prelude::*;
use sim::Sim;

const TOPICS: [&str; 5] = ["a", "a/b", "b/c", "$t/a", "a/b/c"];
const FILTERS: [&str; 8] = ["a", "a/+", "a/#", "#", "+/c", "$t/#", "+/+", "a/b"];
/// Clients 0 and 1 keep their sessions (CleanSession 0), 2 and 3 do not.
const CLIENTS: usize = 4;
/// The will topics and the message id of each client's will.
const WILL_TOPICS: [&str; CLIENTS] = ["w/0", "w/1", "w/2", "w/3"];
const WILL_BASE: u16 = 60_000;

fn persistent(i: usize) -> bool {
    i < 2
}

/// The reference matcher: levels split on '/', `+` one level, `#` the
/// rest, and wildcards in first position never match a `$` topic.
fn model_match(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let f: Vec<&str> = filter.split('/').collect();
    let t: Vec<&str> = topic.split('/').collect();
    for (k, level) in f.iter().enumerate() {
        match *level {
            "#" => return true,
            "+" => {
                if k >= t.len() {
                    return false;
                }
            }
            exact => {
                if t.get(k) != Some(&exact) {
                    return false;
                }
            }
        }
    }
    f.len() == t.len()
}

#[derive(Debug, Clone)]
enum Op {
    Connect(usize),
    Disconnect(usize),
    Cut(usize),
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
    let c = 0..CLIENTS;
    prop_oneof![
        2 => c.clone().prop_map(Op::Connect),
        1 => c.clone().prop_map(Op::Disconnect),
        1 => c.clone().prop_map(Op::Cut),
        3 => (c.clone(), 0..FILTERS.len(), qos()).prop_map(|(i, f, q)| Op::Subscribe(i, f, q)),
        1 => (c.clone(), 0..FILTERS.len()).prop_map(|(i, f)| Op::Unsubscribe(i, f)),
        5 => (c, 0..TOPICS.len(), qos(), any::<bool>()).prop_map(|(i, t, q, r)| Op::Publish(i, t, q, r)),
    ]
}

/// (topic, message id, QoS, RETAIN) of one received message.
type Got = (String, u16, QoS, bool);

#[derive(Debug, Default)]
struct ModelSession {
    online: bool,
    subs: BTreeMap<&'static str, QoS>,
    queue: Vec<Got>,
}

#[derive(Debug, Default)]
struct Model {
    sessions: BTreeMap<usize, ModelSession>,
    retained: BTreeMap<&'static str, (u16, QoS)>,
    /// Per client: (message id, QoS, RETAIN) in arrival order.
    received: BTreeMap<usize, Vec<Got>>,
}

impl Model {
    fn online(&self, i: usize) -> bool {
        self.sessions.get(&i).is_some_and(|s| s.online)
    }

    fn connect(&mut self, i: usize) {
        if !persistent(i) {
            self.sessions.remove(&i);
        }
        let s = self.sessions.entry(i).or_default();
        s.online = true;
        let queued = std::mem::take(&mut s.queue);
        let got = self.received.entry(i).or_default();
        got.extend(queued);
    }

    fn leave(&mut self, i: usize) {
        if persistent(i) {
            if let Some(s) = self.sessions.get_mut(&i) {
                s.online = false;
            }
        } else {
            self.sessions.remove(&i);
        }
    }

    fn subscribe(&mut self, i: usize, filter: &'static str, q: QoS) {
        if let Some(s) = self.sessions.get_mut(&i) {
            s.subs.insert(filter, q);
        }
        for (topic, (m, rq)) in &self.retained {
            if model_match(filter, topic) {
                self.received.entry(i).or_default().push((
                    topic.to_string(),
                    *m,
                    (*rq).min(q),
                    true,
                ));
            }
        }
    }

    fn publish(&mut self, id: u16, topic: &'static str, q: QoS, retain: bool) {
        if retain {
            self.retained.insert(topic, (id, q));
        }
        for (i, s) in &mut self.sessions {
            let best = s
                .subs
                .iter()
                .filter(|(f, _)| model_match(f, topic))
                .map(|(_, q)| *q)
                .max();
            let Some(best) = best else { continue };
            let granted = q.min(best);
            if s.online {
                self.received
                    .entry(*i)
                    .or_default()
                    .push((topic.to_string(), id, granted, false));
            } else if granted != QoS::AtMostOnce {
                s.queue.push((topic.to_string(), id, granted, false));
            }
        }
    }
}

fn observed(sim: &Sim, i: usize) -> Vec<Got> {
    sim.messages(i)
        .iter()
        .map(|p| {
            let id = u16::from_be_bytes([p.payload[0], p.payload[1]]);
            (p.topic.as_str().to_string(), id, p.qos(), p.retain)
        })
        .collect()
}

/// The same messages, in order per topic: with several shards, the retained
/// messages a new subscription brings come from different shards, and
/// their order across topics is not defined.
fn per_topic(got: Vec<Got>) -> BTreeMap<String, Vec<Got>> {
    let mut out: BTreeMap<String, Vec<Got>> = BTreeMap::new();
    for g in got {
        out.entry(g.0.clone()).or_default().push(g);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn router_matches_reference_model(
        shards in prop_oneof![Just(1u32), Just(3u32)],
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let mut sim = Sim::with_shards(shards, RouterConfig::default(), ServerConfig::default());
        for (i, will_topic) in WILL_TOPICS.iter().enumerate() {
            let will_id = WILL_BASE + u16::try_from(i).unwrap();
            let will = LastWill {
                topic: Topic::new(will_topic).unwrap(),
                message: Bytes::copy_from_slice(&will_id.to_be_bytes()),
                qos: QoS::AtLeastOnce,
                retain: false,
            };
            sim.add(
                ClientConfig::new(format!("c{i}"))
                    .with_clean_session(!persistent(i))
                    .with_will(will),
            );
        }
        let mut model = Model::default();
        let mut next_id: u16 = 0;
        for op in ops {
            match op {
                Op::Connect(i) => {
                    if !model.online(i) {
                        sim.connect(i);
                        prop_assert!(sim.is_connected(i));
                        model.connect(i);
                    }
                }
                Op::Disconnect(i) => {
                    if model.online(i) {
                        sim.disconnect(i);
                        model.leave(i);
                    }
                }
                Op::Cut(i) => {
                    if model.online(i) {
                        sim.cut(i);
                        model.leave(i);
                        let will_id = WILL_BASE + u16::try_from(i).unwrap();
                        model.publish(will_id, WILL_TOPICS[i], QoS::AtLeastOnce, false);
                    }
                }
                Op::Subscribe(i, f, q) => {
                    if model.online(i) {
                        sim.subscribe(i, &[(FILTERS[f], q)]);
                        model.subscribe(i, FILTERS[f], q);
                    }
                }
                Op::Unsubscribe(i, f) => {
                    if model.online(i) {
                        sim.unsubscribe(i, &[FILTERS[f]]);
                        if let Some(s) = model.sessions.get_mut(&i) {
                            s.subs.remove(FILTERS[f]);
                        }
                    }
                }
                Op::Publish(i, t, q, retain) => {
                    if model.online(i) {
                        next_id += 1;
                        sim.publish(i, TOPICS[t], &next_id.to_be_bytes(), q, retain);
                        model.publish(next_id, TOPICS[t], q, retain);
                    }
                }
            }
            for i in 0..CLIENTS {
                let want = model.received.get(&i).cloned().unwrap_or_default();
                if shards == 1 {
                    prop_assert_eq!(observed(&sim, i), want, "client {} after {:?}", i, op);
                } else {
                    prop_assert_eq!(
                        per_topic(observed(&sim, i)),
                        per_topic(want),
                        "client {} after {:?}",
                        i,
                        op
                    );
                }
            }
        }
    }
}
