//! Unit tests of the gateway machine alone: SN datagrams scripted with
//! midge-sn-codec, the broker side scripted with midge-codec (the bytes the
//! gateway writes are decoded, the broker's answers encoded by hand).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use alloc::vec;

use midge_codec::{ConnAck as MqttConnAck, ConnectReturnCode, Decoder, Encode, Packet};
use midge_sn_codec::{SearchGw, WillMsg, WillTopic};

use super::*;

struct Rig {
    gw: Gateway<u8>,
    now: Instant,
}

impl Rig {
    fn new(config: GatewayConfig) -> Self {
        let now = Instant::from_secs(50);
        Self {
            gw: Gateway::new(config, now).unwrap(),
            now,
        }
    }

    fn quiet() -> GatewayConfig {
        let mut c = GatewayConfig::new(3);
        c.t_adv = None;
        c
    }

    fn send(&mut self, from: u8, m: impl Into<Message>) -> Result<(), PeerError> {
        let mut buf = BytesMut::new();
        m.into().encode(&mut buf).unwrap();
        self.gw.handle_datagram(self.now, from, &buf)
    }

    fn out(&mut self) -> Vec<(Destination<u8>, Message)> {
        let mut v = Vec::new();
        loop {
            let mut buf = BytesMut::new();
            let Some(t) = self.gw.poll_transmit(self.now, &mut buf) else {
                return v;
            };
            v.push((t.to, midge_sn_codec::decode_slice(&buf).unwrap()));
        }
    }

    fn ops(&mut self) -> Vec<BrokerOp> {
        core::iter::from_fn(|| self.gw.poll_broker()).collect()
    }

    fn events(&mut self) -> Vec<GatewayEvent<u8>> {
        core::iter::from_fn(|| self.gw.poll_event()).collect()
    }

    fn advance_to(&mut self, t: Instant) {
        self.now = t;
        self.gw.handle_timeout(t);
    }
}

fn mqtt_packets(ops: &[BrokerOp]) -> Vec<Packet> {
    let mut buf = BytesMut::new();
    for op in ops {
        if let BrokerOp::Write(_, b) = op {
            buf.extend_from_slice(b);
        }
    }
    let mut d = Decoder::new();
    core::iter::from_fn(|| d.decode(&mut buf).unwrap()).collect()
}

fn connect(id: &'static str, will: bool) -> Connect {
    Connect {
        will,
        clean_session: true,
        duration: 30,
        client_id: ClientId::from(id),
    }
}

fn connack(code: ReturnCode) -> Message {
    ConnAck { return_code: code }.into()
}

fn broker_connack(rig: &mut Rig, key: ConnKey, code: ConnectReturnCode) {
    let mut buf = BytesMut::new();
    MqttConnAck::new(code, false).encode(&mut buf).unwrap();
    rig.gw.handle_broker_read(rig.now, key, &buf);
}

#[test]
fn new_refuses_a_bad_config() {
    let mut c = GatewayConfig::new(1);
    c.max_clients = 0;
    assert_eq!(
        Gateway::<u8>::new(c, Instant::ZERO).err(),
        Some(ConfigError::ZeroLimit("max_clients"))
    );
}

#[test]
fn sn_6_2_mqtt_connect_carries_client_id_session_and_will_from_the_prompts() {
    let mut config = Rig::quiet();
    config.broker_keep_alive = 45;
    config.broker_credentials = Some((String::from("gw"), Some(Bytes::from_static(b"pw"))));
    let mut rig = Rig::new(config);
    rig.send(1, connect("dev9", true)).unwrap();
    rig.send(
        1,
        WillTopic(Some(WillTopicData {
            qos: SnQoS::ExactlyOnce,
            retain: true,
            topic: TopicName::from("w/dev9"),
        })),
    )
    .unwrap();
    rig.send(
        1,
        WillMsg {
            will_msg: Bytes::from_static(b"bye"),
        },
    )
    .unwrap();
    let ops = rig.ops();
    let [BrokerOp::Open(key)] = ops.as_slice() else {
        panic!("{ops:?}")
    };
    assert_eq!(rig.gw.client_state("dev9"), Some(ClientState::Connecting));
    rig.gw.handle_broker_opened(rig.now, *key);
    let packets = mqtt_packets(&rig.ops());
    let [Packet::Connect(c)] = packets.as_slice() else {
        panic!("{packets:?}")
    };
    assert_eq!(c.client_id.as_str(), "dev9");
    assert!(c.clean_session);
    assert_eq!(c.keep_alive, 45);
    assert_eq!(c.username.as_ref().map(|u| u.as_str()), Some("gw"));
    assert_eq!(c.password.as_deref(), Some(&b"pw"[..]));
    let will = c.will.as_ref().unwrap();
    assert_eq!(
        (
            will.topic.as_str(),
            &will.message[..],
            will.qos,
            will.retain
        ),
        ("w/dev9", &b"bye"[..], MqttQoS::ExactlyOnce, true)
    );
    // Nothing reaches the SN client before the broker answers.
    let prompts: Vec<Message> = rig.out().into_iter().map(|(_, m)| m).collect();
    assert_eq!(prompts, vec![WillTopicReq.into(), WillMsgReq.into()]);
    broker_connack(&mut rig, *key, ConnectReturnCode::Accepted);
    assert_eq!(
        rig.out(),
        vec![(Destination::Unicast(1), connack(ReturnCode::Accepted))]
    );
}

#[test]
fn sn_5_3_10_broker_unavailable_is_congestion_and_not_authorized_not_supported() {
    for (mqtt, sn) in [
        (ConnectReturnCode::ServerUnavailable, ReturnCode::Congestion),
        (ConnectReturnCode::NotAuthorized, ReturnCode::NotSupported),
    ] {
        let mut rig = Rig::new(Rig::quiet());
        rig.send(1, connect("d", false)).unwrap();
        let ops = rig.ops();
        let [BrokerOp::Open(key)] = ops.as_slice() else {
            panic!("{ops:?}")
        };
        rig.gw.handle_broker_opened(rig.now, *key);
        broker_connack(&mut rig, *key, mqtt);
        assert_eq!(rig.out(), vec![(Destination::Unicast(1), connack(sn))]);
        assert_eq!(rig.gw.client_state("d"), Some(ClientState::Disconnected));
        assert!(rig.ops().contains(&BrokerOp::Close(*key)));
        assert_eq!(rig.gw.broker_connections(), 0);
    }
}

#[test]
fn broker_connection_that_fails_to_open_answers_congestion() {
    let mut rig = Rig::new(Rig::quiet());
    rig.send(1, connect("d", false)).unwrap();
    let ops = rig.ops();
    let [BrokerOp::Open(key)] = ops.as_slice() else {
        panic!("{ops:?}")
    };
    rig.gw.handle_broker_closed(rig.now, *key);
    assert_eq!(
        rig.out(),
        vec![(Destination::Unicast(1), connack(ReturnCode::Congestion))]
    );
    assert_eq!(rig.gw.client_state("d"), Some(ClientState::Disconnected));
    // A second report for the same key is ignored.
    rig.gw.handle_broker_closed(rig.now, *key);
    assert!(rig.out().is_empty());
}

#[test]
fn broker_connection_never_opened_times_out_with_congestion() {
    let mut rig = Rig::new(Rig::quiet());
    rig.send(1, connect("d", false)).unwrap();
    let ops = rig.ops();
    let [BrokerOp::Open(key)] = ops.as_slice() else {
        panic!("{ops:?}")
    };
    let deadline = rig.gw.poll_timeout().unwrap();
    assert_eq!(deadline, rig.now + Duration::from_secs(30));
    rig.advance_to(deadline.saturating_sub(Duration::from_micros(1)));
    assert!(rig.out().is_empty());
    rig.advance_to(deadline);
    assert_eq!(
        rig.out(),
        vec![(Destination::Unicast(1), connack(ReturnCode::Congestion))]
    );
    assert_eq!(rig.ops(), vec![BrokerOp::Close(*key)]);
}

#[test]
fn sn_6_8_minus_one_connection_never_opened_drops_its_pending_publishes() {
    let mut rig = Rig::new(Rig::quiet());
    rig.send(
        1,
        Publish {
            dup: false,
            qos: PublishQoS::MinusOne,
            retain: false,
            topic: Topic::Short(*b"hi"),
            msg_id: 0,
            data: Bytes::from_static(b"x"),
        },
    )
    .unwrap();
    assert!(matches!(rig.ops().as_slice(), [BrokerOp::Open(_)]));
    let deadline = rig.gw.poll_timeout().unwrap();
    rig.advance_to(deadline);
    assert!(matches!(rig.ops().as_slice(), [BrokerOp::Close(_)]));
    assert_eq!(
        rig.events(),
        vec![GatewayEvent::Dropped {
            client_id: None,
            reason: DropReason::BrokerUnavailable
        }]
    );
    assert_eq!(rig.gw.broker_connections(), 0);
}

#[test]
fn sn_6_1_advertise_jitter_is_seeded_and_silence_while_the_broker_is_unavailable() {
    let first = |seed: u64| {
        let mut c = GatewayConfig::new(1);
        c.seed = seed;
        c.advertise_jitter = Duration::from_secs(5);
        Gateway::<u8>::new(c, Instant::ZERO)
            .unwrap()
            .poll_timeout()
            .unwrap()
    };
    assert_eq!(first(11), first(11));
    assert!(first(11) <= Instant::from_secs(5));
    assert!((0..8).map(first).collect::<BTreeSet<_>>().len() > 1);

    let mut c = GatewayConfig::new(1);
    c.advertise_jitter = Duration::ZERO;
    let mut rig = Rig::new(c);
    rig.gw.set_broker_available(rig.now, false);
    assert_eq!(rig.gw.poll_timeout(), None);
    rig.advance_to(rig.now + Duration::from_secs(3600));
    rig.send(1, SearchGw { radius: 1 }).unwrap();
    assert!(
        rig.out().is_empty(),
        "no ADVERTISE, no GWINFO without a broker"
    );
    rig.gw.set_broker_available(rig.now, true);
    rig.gw.handle_timeout(rig.now);
    let out = rig.out();
    assert!(matches!(
        out.as_slice(),
        [(Destination::Broadcast { radius: 0 }, Message::Advertise(a))] if a.gw_id == 1 && a.duration == 900
    ));
}

#[test]
fn transmit_and_event_queues_hold_their_limits() {
    let mut c = Rig::quiet();
    c.max_queued_transmits = 2;
    c.max_queued_events = 1;
    let mut rig = Rig::new(c);
    for _ in 0..5 {
        rig.send(1, SearchGw { radius: 0 }).unwrap();
    }
    assert_eq!(rig.gw.queued_transmits(), 2);
    assert_eq!(rig.gw.stats().transmits_dropped, 3);
    assert_eq!(rig.out().len(), 2);
    // Two QoS -1 publishes dropped for want of a buffer give two events;
    // only the newer stays.
    let mut c = Rig::quiet();
    c.max_queued_events = 1;
    c.max_buffered = 1;
    let mut rig = Rig::new(c);
    for _ in 0..3 {
        rig.send(
            1,
            Publish {
                dup: false,
                qos: PublishQoS::MinusOne,
                retain: false,
                topic: Topic::Short(*b"hi"),
                msg_id: 0,
                data: Bytes::new(),
            },
        )
        .unwrap();
    }
    assert_eq!(rig.events().len(), 1);
    assert_eq!(rig.gw.stats().events_dropped, 1);
}

#[test]
fn malformed_and_gateway_only_messages_are_refused_with_typed_errors() {
    let mut rig = Rig::new(Rig::quiet());
    assert!(matches!(
        rig.gw.handle_datagram(rig.now, 1, &[0x02]),
        Err(PeerError::Malformed(_))
    ));
    assert_eq!(
        rig.send(1, connack(ReturnCode::Accepted)),
        Err(PeerError::Unexpected(MsgType::ConnAck))
    );
    assert_eq!(
        rig.send(1, WillTopicReq),
        Err(PeerError::Unexpected(MsgType::WillTopicReq))
    );
    assert!(rig.out().is_empty());
    assert_eq!(rig.gw.stats().datagrams_refused, 3);
    // ADVERTISE and GWINFO from others are fine and need no answer.
    rig.send(
        1,
        Advertise {
            gw_id: 9,
            duration: 60,
        },
    )
    .unwrap();
    assert!(rig.out().is_empty());
}

#[test]
fn sn_6_14_pingreq_with_unknown_client_id_gets_disconnect() {
    let mut rig = Rig::new(Rig::quiet());
    assert_eq!(
        rig.send(
            4,
            PingReq {
                client_id: Some(ClientId::from("ghost"))
            }
        ),
        Err(PeerError::NotConnected(MsgType::PingReq))
    );
    assert_eq!(
        rig.out(),
        vec![(
            Destination::Unicast(4),
            Disconnect { duration: None }.into()
        )]
    );
}

#[test]
fn sn_6_2_pending_connect_limit_answers_congestion() {
    let mut c = Rig::quiet();
    c.max_pending_connects = 1;
    let mut rig = Rig::new(c);
    rig.send(1, connect("a", true)).unwrap();
    rig.send(2, connect("b", false)).unwrap();
    let out = rig.out();
    assert_eq!(
        out,
        vec![
            (Destination::Unicast(1), WillTopicReq.into()),
            (Destination::Unicast(2), connack(ReturnCode::Congestion)),
        ]
    );
    assert_eq!(rig.gw.client_count(), 1);
}

#[test]
fn sn_6_2_retransmitted_connect_while_connecting_is_absorbed() {
    let mut rig = Rig::new(Rig::quiet());
    rig.send(1, connect("a", false)).unwrap();
    rig.send(1, connect("a", false)).unwrap();
    assert_eq!(rig.ops().len(), 1, "one broker connection");
    assert!(rig.out().is_empty());
}
