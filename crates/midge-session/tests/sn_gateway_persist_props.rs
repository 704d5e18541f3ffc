//! Property tests of the gateway core's persistence: the traffic of
//! `sn_gateway_props.rs` (arbitrary datagrams, clock jumps, a scripted
//! broker) interleaved with restarts. After every step, the store built
//! from `poll_persist` alone equals `export()`; a restart with
//! `Gateway::restore` from the store gives back exactly the stored records;
//! nothing panics and the limits hold (a restored buffer may hold one more
//! than `max_buffered`: the message that was in flight).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use midge_codec::{
    ConnAck as MqttConnAck, ConnectReturnCode, Decoder, Encode, Packet, PacketId,
    PubAck as MqttPubAck, PubComp as MqttPubComp, PubRec as MqttPubRec, Publish as MqttPublish,
    QosPid, SubAck as MqttSubAck, SubscribeReturnCode, UnsubAck as MqttUnsubAck,
};
use midge_session::sn::gateway::{
    BrokerOp, ClientRecord, ConnKey, Gateway, GatewayConfig, PersistOp,
};
use midge_sn_codec::{
    ClientId, Connect, Disconnect, Encapsulated, Message, PingReq, PubAck, PubComp, PubRec, PubRel,
    Publish, PublishQoS, QoS, RegAck, Register, ReturnCode, SearchGw, Subscribe, SubscribeTopic,
    Topic, TopicId, TopicName, Unsubscribe, WillMsg, WillMsgUpd, WillTopic, WillTopicData,
    WillTopicUpd,
};
use midge_time::{Duration, Instant};
use proptest::prelude::*;

const IDS: [&str; 5] = ["a", "b", "c", "d", "e"];
const NAMES: [&str; 6] = ["t/1", "t/2", "t/3", "u/v", "ab", "t/+"];

#[derive(Debug, Clone)]
enum Op {
    Raw(u32, Vec<u8>),
    Sn(u32, Option<u8>, Message),
    Advance(u64),
    /// The broker delivers a message on connection number n (mod open).
    Deliver(usize, usize, u8),
    /// The broker side cuts connection number n (mod open).
    Cut(usize),
    /// The gateway restarts from the store.
    Restart,
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn topic() -> impl Strategy<Value = Topic> {
    prop_oneof![
        (0u16..5).prop_map(|i| Topic::TopicId(TopicId(i))),
        (1u16..4).prop_map(|i| Topic::Predefined(TopicId(i))),
        Just(Topic::Short(*b"ab")),
    ]
}

fn sub_topic() -> impl Strategy<Value = SubscribeTopic> {
    prop_oneof![
        (0..NAMES.len()).prop_map(|i| SubscribeTopic::Name(TopicName::from(NAMES[i]))),
        (1u16..4).prop_map(|i| SubscribeTopic::Predefined(TopicId(i))),
        Just(SubscribeTopic::Short(*b"ab")),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    let id = (0..IDS.len()).prop_map(|i| ClientId::from(IDS[i]));
    let msg_id = 1u16..6;
    prop_oneof![
        (id.clone(), any::<bool>(), any::<bool>(), 0u16..40).prop_map(
            |(client_id, will, clean, duration)| {
                Connect {
                    will,
                    clean_session: clean,
                    duration,
                    client_id,
                }
                .into()
            }
        ),
        prop_oneof![
            Just(WillTopic(None)),
            qos().prop_map(|q| WillTopic(Some(WillTopicData {
                qos: q,
                retain: false,
                topic: TopicName::from("w/x")
            })))
        ]
        .prop_map(Message::from),
        Just(
            WillMsg {
                will_msg: Bytes::from_static(b"will")
            }
            .into()
        ),
        (0..NAMES.len(), msg_id.clone()).prop_map(|(n, m)| Register {
            topic_id: TopicId(0),
            msg_id: m,
            topic_name: TopicName::from(NAMES[n]),
        }
        .into()),
        (topic(), 0u8..4, msg_id.clone(), any::<bool>()).prop_map(|(t, q, m, dup)| {
            let qos = match q {
                0 => PublishQoS::AtMostOnce,
                1 => PublishQoS::AtLeastOnce,
                2 => PublishQoS::ExactlyOnce,
                _ => PublishQoS::MinusOne,
            };
            let t = match (qos, t) {
                (PublishQoS::MinusOne, Topic::TopicId(_)) => Topic::Short(*b"ab"),
                (_, t) => t,
            };
            let m = if qos.is_acknowledged() { m } else { 0 };
            Publish {
                dup,
                qos,
                retain: false,
                topic: t,
                msg_id: m,
                data: Bytes::from_static(b"d"),
            }
            .into()
        }),
        (sub_topic(), qos(), msg_id.clone(), any::<bool>()).prop_map(|(t, q, m, dup)| Subscribe {
            dup,
            qos: q,
            msg_id: m,
            topic: t
        }
        .into()),
        (sub_topic(), msg_id.clone()).prop_map(|(t, m)| Unsubscribe {
            msg_id: m,
            topic: t
        }
        .into()),
        prop_oneof![Just(None), id.prop_map(Some)]
            .prop_map(|client_id| PingReq { client_id }.into()),
        prop_oneof![Just(None), (0u16..50).prop_map(Some)]
            .prop_map(|duration| Disconnect { duration }.into()),
        (0u16..5, msg_id.clone(), 0u8..4).prop_map(|(t, m, rc)| {
            let return_code = [
                ReturnCode::Accepted,
                ReturnCode::Congestion,
                ReturnCode::InvalidTopicId,
                ReturnCode::NotSupported,
            ][usize::from(rc)];
            prop_oneof_ack(t, m, return_code)
        }),
        msg_id.clone().prop_map(|m| PubRec { msg_id: m }.into()),
        msg_id.clone().prop_map(|m| PubRel { msg_id: m }.into()),
        msg_id.prop_map(|m| PubComp { msg_id: m }.into()),
        Just(WillTopicUpd(None).into()),
        Just(
            WillMsgUpd {
                will_msg: Bytes::from_static(b"w2")
            }
            .into()
        ),
        (0u8..4).prop_map(|radius| SearchGw { radius }.into()),
    ]
}

/// Alternates between the two acknowledgements that carry a topic id.
fn prop_oneof_ack(topic: u16, msg_id: u16, return_code: ReturnCode) -> Message {
    if topic % 2 == 0 {
        PubAck {
            topic_id: TopicId(topic),
            msg_id,
            return_code,
        }
        .into()
    } else {
        RegAck {
            topic_id: TopicId(topic),
            msg_id,
            return_code,
        }
        .into()
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0u32..8, proptest::collection::vec(any::<u8>(), 0..24)).prop_map(|(a, b)| Op::Raw(a, b)),
        8 => (0u32..8, prop_oneof![3 => Just(None), 1 => (1u8..3).prop_map(Some)], message())
            .prop_map(|(a, node, m)| Op::Sn(a, node, m)),
        2 => (0u64..40_000).prop_map(Op::Advance),
        2 => (0usize..4, 0..NAMES.len() - 1, 0u8..3).prop_map(|(c, t, q)| Op::Deliver(c, t, q)),
        1 => (0usize..4).prop_map(Op::Cut),
        1 => Just(Op::Restart),
    ]
}

/// A broker that answers everything the gateway writes.
#[derive(Default)]
struct FakeBroker {
    conns: BTreeMap<ConnKey, (Decoder, BytesMut)>,
    next_pid: u16,
}

impl FakeBroker {
    fn apply(&mut self, gw: &mut Gateway<u32>, now: Instant) {
        for _ in 0..1000 {
            let Some(op) = gw.poll_broker() else {
                return;
            };
            match op {
                BrokerOp::Open(key) => {
                    self.conns.insert(key, (Decoder::new(), BytesMut::new()));
                    gw.handle_broker_opened(now, key);
                }
                BrokerOp::Write(key, bytes) => {
                    let Some((decoder, buf)) = self.conns.get_mut(&key) else {
                        panic!("write to a connection never opened or closed");
                    };
                    buf.extend_from_slice(&bytes);
                    let mut replies: Vec<Packet> = Vec::new();
                    let mut close = false;
                    while let Some(p) = decoder.decode(buf).unwrap() {
                        match p {
                            Packet::Connect(_) => replies
                                .push(MqttConnAck::new(ConnectReturnCode::Accepted, false).into()),
                            Packet::Subscribe(s) => replies.push(
                                MqttSubAck::new(
                                    s.packet_id,
                                    s.filters
                                        .iter()
                                        .map(|f| SubscribeReturnCode::Success(f.qos))
                                        .collect(),
                                )
                                .into(),
                            ),
                            Packet::Unsubscribe(u) => {
                                replies.push(MqttUnsubAck::new(u.packet_id).into());
                            }
                            Packet::Publish(p) => match p.qos_pid {
                                QosPid::AtMostOnce => {}
                                QosPid::AtLeastOnce(pid) => {
                                    replies.push(MqttPubAck::new(pid).into());
                                }
                                QosPid::ExactlyOnce(pid) => {
                                    replies.push(MqttPubRec::new(pid).into());
                                }
                            },
                            Packet::PubRel(r) => replies.push(MqttPubComp::new(r.packet_id).into()),
                            Packet::PingReq => replies.push(Packet::PingResp),
                            Packet::Disconnect => close = true,
                            _ => {}
                        }
                    }
                    let mut answer = BytesMut::new();
                    for r in replies {
                        r.encode(&mut answer).unwrap();
                    }
                    if !answer.is_empty() {
                        gw.handle_broker_read(now, key, &answer);
                    }
                    if close {
                        self.conns.remove(&key);
                        gw.handle_broker_closed(now, key);
                    }
                }
                BrokerOp::Close(key) => {
                    self.conns.remove(&key);
                }
            }
        }
        panic!("the gateway keeps asking the broker for work");
    }

    fn nth(&self, n: usize) -> Option<ConnKey> {
        let len = self.conns.len();
        (len > 0).then(|| *self.conns.keys().nth(n % len).unwrap())
    }

    fn deliver(&mut self, gw: &mut Gateway<u32>, now: Instant, n: usize, topic: &str, qos: u8) {
        let Some(key) = self.nth(n) else { return };
        self.next_pid = self.next_pid.wrapping_add(1).max(1);
        let pid = PacketId::new(self.next_pid).unwrap();
        let qos_pid = match qos {
            0 => QosPid::AtMostOnce,
            1 => QosPid::AtLeastOnce(pid),
            _ => QosPid::ExactlyOnce(pid),
        };
        let p = MqttPublish::new(
            midge_codec::Topic::new(topic).unwrap(),
            qos_pid,
            Bytes::from_static(b"m"),
        );
        let mut buf = BytesMut::new();
        p.encode(&mut buf).unwrap();
        gw.handle_broker_read(now, key, &buf);
    }
}

fn config() -> GatewayConfig {
    let mut c = GatewayConfig::new(1)
        .with_predefined(1, "p/1")
        .with_predefined(2, "t/1");
    c.t_adv = Some(Duration::from_secs(30));
    c.t_retry = Duration::from_secs(2);
    c.n_retry = 2;
    c.max_clients = 3;
    c.max_registrations = 3;
    c.max_buffered = 3;
    c.max_pending_connects = 2;
    c.max_client_inflight = 2;
    c.max_queued_transmits = 16;
    c.max_queued_events = 16;
    c.broker_connect_timeout = Duration::from_secs(5);
    c
}

type Store = BTreeMap<String, ClientRecord>;

fn sorted(mut records: Vec<ClientRecord>) -> Vec<ClientRecord> {
    records.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    records
}

fn persist(gw: &mut Gateway<u32>, store: &mut Store) {
    for _ in 0..1000 {
        match gw.poll_persist() {
            Some(PersistOp::Put(r)) => {
                store.insert(r.client_id.clone(), r);
            }
            Some(PersistOp::Delete(id)) => {
                assert!(store.remove(&id).is_some(), "delete of nothing stored");
            }
            Some(other) => panic!("unknown {other:?}"),
            None => {
                assert_eq!(
                    sorted(gw.export()),
                    store.values().cloned().collect::<Vec<_>>()
                );
                return;
            }
        }
    }
    panic!("poll_persist does not end");
}

fn drain(gw: &mut Gateway<u32>, broker: &mut FakeBroker, now: Instant, store: &mut Store) {
    let c = config();
    for _ in 0..100 {
        broker.apply(gw, now);
        assert!(gw.queued_transmits() <= c.max_queued_transmits);
        let mut buf = BytesMut::new();
        let mut sent = false;
        while let Some(t) = gw.poll_transmit(now, &mut buf) {
            assert!(t.len <= buf.len());
            sent = true;
        }
        while gw.poll_event().is_some() {}
        if !sent {
            break;
        }
    }
    persist(gw, store);
    assert!(gw.client_count() <= c.max_clients);
    assert!(gw.broker_connections() <= c.max_clients + 1);
    for id in IDS {
        assert!(gw.buffered_len(id).unwrap_or(0) <= c.max_buffered + 1);
        assert!(gw.registrations(id).unwrap_or(0) <= c.max_registrations);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn persisted_records_equal_the_state_and_restore_exactly(ops in proptest::collection::vec(op(), 1..80)) {
        let mut now = Instant::from_secs(10);
        let mut gw = Gateway::new(config(), now).unwrap();
        let mut broker = FakeBroker::default();
        let mut store = Store::new();
        for op in ops {
            match op {
                Op::Raw(from, bytes) => {
                    let _ = gw.handle_datagram(now, from, &bytes);
                }
                Op::Sn(from, node, message) => {
                    let message = match node {
                        Some(n) => Message::Encapsulated(Encapsulated {
                            radius: 0,
                            node_id: Bytes::from(vec![n]),
                            message: Box::new(message),
                        }),
                        None => message,
                    };
                    let mut buf = BytesMut::new();
                    if message.encode(&mut buf).is_ok() {
                        let _ = gw.handle_datagram(now, from, &buf);
                    }
                }
                Op::Advance(ms) => {
                    let target = now + Duration::from_millis(ms);
                    for _ in 0..10_000 {
                        match gw.poll_timeout() {
                            Some(t) if t <= target => {
                                now = now.max(t);
                                gw.handle_timeout(now);
                                drain(&mut gw, &mut broker, now, &mut store);
                                // Liveness: a handled deadline never stays due.
                                prop_assert!(gw.poll_timeout().is_none_or(|next| next > now));
                            }
                            _ => break,
                        }
                    }
                    now = target;
                }
                Op::Deliver(conn, topic, qos) => broker.deliver(&mut gw, now, conn, NAMES[topic], qos),
                Op::Cut(conn) => {
                    if let Some(key) = broker.nth(conn) {
                        broker.conns.remove(&key);
                        gw.handle_broker_closed(now, key);
                    }
                }
                Op::Restart => {
                    gw = Gateway::restore(config(), now, store.values().cloned()).unwrap();
                    broker = FakeBroker::default();
                    prop_assert_eq!(sorted(gw.export()), store.values().cloned().collect::<Vec<_>>());
                }
            }
            drain(&mut gw, &mut broker, now, &mut store);
        }
    }
}
