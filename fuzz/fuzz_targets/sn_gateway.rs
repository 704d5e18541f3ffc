//! The MQTT-SN gateway core (`midge_session::sn::gateway::Gateway`) driven by
//! the fuzz input read as a list of operations: raw datagrams and
//! well-formed SN messages from sixteen addresses (some through a forwarder),
//! broker connections opened, closed, fed raw bytes or well-formed MQTT
//! packets, and clock jumps with timeouts.
//!
//! Checks: no panic; every datagram the gateway sends decodes as MQTT-SN and
//! fits its `max_datagram`; every table stays within its configured limit
//! (clients, registrations, buffered messages, queued datagrams, broker
//! connections); after `handle_timeout` the next deadline lies in the future.
#![no_main]

use std::collections::BTreeSet;

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use midge_codec::{
    ConnAck, ConnectReturnCode, Encode, PacketId, PubAck, PubComp, PubRec, PubRel, Publish,
    QoS as MqttQoS, QosPid, SubAck, SubscribeReturnCode, UnsubAck,
};
use midge_session::sn::gateway::{BrokerOp, ConnKey, Destination, Gateway, GatewayConfig};
use midge_session::Instant;
use midge_sn_codec::{
    ClientId, Connect, Disconnect, Encapsulated, Message, PingReq, PubAck as SnPubAck,
    PubComp as SnPubComp, PubRec as SnPubRec, PubRel as SnPubRel, Publish as SnPublish,
    PublishQoS, QoS, RegAck, Register, ReturnCode, SearchGw, Subscribe, SubscribeTopic, Topic,
    TopicId, TopicName, Unsubscribe, WillMsg, WillTopic, WillTopicData,
};

const CLIENT_IDS: [&str; 4] = ["a", "b", "c", "sensor-1"];
const NAMES: [&str; 4] = ["a/b", "t", "a/+", "#"];

struct Fuzz {
    gw: Gateway<u8>,
    now: Instant,
    open: BTreeSet<u64>,
    pending: BTreeSet<u64>,
}

impl Fuzz {
    fn drain(&mut self) {
        while let Some(op) = self.gw.poll_broker() {
            match op {
                BrokerOp::Open(key) => {
                    self.pending.insert(key.0);
                }
                BrokerOp::Write(key, bytes) => {
                    assert!(self.open.contains(&key.0), "write to a connection not open");
                    assert!(!bytes.is_empty());
                }
                BrokerOp::Close(key) => {
                    self.open.remove(&key.0);
                    self.pending.remove(&key.0);
                }
            }
        }
        let max = self.gw.config().max_datagram;
        let mut buf = BytesMut::new();
        while let Some(t) = self.gw.poll_transmit(self.now, &mut buf) {
            assert_eq!(t.len, buf.len());
            assert!(t.len <= max.max(64) + 32, "datagram longer than max_datagram");
            assert!(
                midge_sn_codec::decode_slice(&buf).is_ok(),
                "the gateway sent an undecodable datagram"
            );
            if let Destination::Unicast(addr) = t.to {
                assert!(addr < 16);
            }
            buf.clear();
        }
        while self.gw.poll_event().is_some() {}
        let config = self.gw.config();
        assert!(self.gw.client_count() <= config.max_clients);
        assert!(self.gw.broker_connections() <= config.max_clients + 1);
        assert!(self.gw.queued_transmits() <= config.max_queued_transmits);
        for id in CLIENT_IDS {
            if let Some(n) = self.gw.registrations(id) {
                assert!(n <= config.max_registrations);
            }
            if let Some(n) = self.gw.buffered_len(id) {
                assert!(n <= config.max_buffered);
            }
        }
    }

    fn datagram(&mut self, from: u8, bytes: &[u8]) {
        let _ = self.gw.handle_datagram(self.now, from % 16, bytes);
        self.drain();
    }

    fn message(&mut self, from: u8, message: Message, forwarded: bool) {
        let message = if forwarded {
            Message::Encapsulated(Encapsulated {
                radius: 0,
                node_id: Bytes::copy_from_slice(&[from]),
                message: Box::new(message),
            })
        } else {
            message
        };
        let mut buf = BytesMut::new();
        if message.encode(&mut buf).is_ok() {
            self.datagram(from, &buf);
        }
    }

    fn broker_bytes(&mut self, which: u8, bytes: &[u8]) {
        let Some(key) = pick(&self.open, which) else {
            return;
        };
        self.gw.handle_broker_read(self.now, ConnKey(key), bytes);
        self.drain();
    }

    fn broker_packet(&mut self, which: u8, packet: impl Encode) {
        let mut buf = BytesMut::new();
        if packet.encode(&mut buf).is_ok() {
            self.broker_bytes(which, &buf);
        }
    }
}

fn pick(set: &BTreeSet<u64>, which: u8) -> Option<u64> {
    if set.is_empty() {
        return None;
    }
    set.iter().nth(usize::from(which) % set.len()).copied()
}

fn topic(selector: u8, id: u8) -> Topic {
    match selector % 3 {
        0 => Topic::TopicId(TopicId(u16::from(id % 8))),
        1 => Topic::Predefined(TopicId(u16::from(id % 8))),
        _ => Topic::Short([b'a' + id % 3, b'b']),
    }
}

fn sn_qos(b: u8) -> QoS {
    match b % 3 {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn sn_message(selector: u8, arg: u8) -> Message {
    let id = u16::from(arg % 8);
    let name = TopicName::from(NAMES[usize::from(arg % 4)]);
    match selector % 16 {
        0 => Message::Connect(Connect {
            will: arg & 0x10 != 0,
            clean_session: arg & 0x20 != 0,
            duration: u16::from(arg >> 6) * 10,
            client_id: ClientId::from(CLIENT_IDS[usize::from(arg % 4)]),
        }),
        1 => Message::Register(Register {
            topic_id: TopicId(0),
            msg_id: id,
            topic_name: name,
        }),
        2 | 3 => Message::Publish(SnPublish {
            dup: arg & 0x80 != 0,
            qos: match arg % 4 {
                0 => PublishQoS::AtMostOnce,
                1 => PublishQoS::AtLeastOnce,
                2 => PublishQoS::ExactlyOnce,
                _ => PublishQoS::MinusOne,
            },
            retain: arg & 0x40 != 0,
            topic: topic(arg >> 2, arg >> 4),
            msg_id: id,
            data: Bytes::from_static(b"data"),
        }),
        4 => Message::Subscribe(Subscribe {
            dup: false,
            qos: sn_qos(arg >> 3),
            msg_id: id,
            topic: match arg % 3 {
                0 => SubscribeTopic::Name(name),
                1 => SubscribeTopic::Predefined(TopicId(id)),
                _ => SubscribeTopic::Short(*b"ab"),
            },
        }),
        5 => Message::Unsubscribe(Unsubscribe {
            msg_id: id,
            topic: SubscribeTopic::Name(name),
        }),
        6 => Message::PingReq(PingReq {
            client_id: (arg & 1 != 0).then(|| ClientId::from(CLIENT_IDS[usize::from(arg % 4)])),
        }),
        7 => Message::Disconnect(Disconnect {
            duration: (arg & 1 != 0).then_some(u16::from(arg) * 4),
        }),
        8 => Message::WillTopic(WillTopic((arg & 1 != 0).then(|| WillTopicData {
            qos: sn_qos(arg >> 1),
            retain: arg & 0x80 != 0,
            topic: name,
        }))),
        9 => Message::WillMsg(WillMsg {
            will_msg: Bytes::from_static(b"gone"),
        }),
        10 => Message::RegAck(RegAck {
            topic_id: TopicId(id),
            msg_id: id,
            return_code: if arg & 0x80 != 0 {
                ReturnCode::InvalidTopicId
            } else {
                ReturnCode::Accepted
            },
        }),
        11 => Message::PubAck(SnPubAck {
            topic_id: TopicId(id),
            msg_id: id,
            return_code: ReturnCode::Accepted,
        }),
        12 => Message::PubRec(SnPubRec { msg_id: id }),
        13 => Message::PubRel(SnPubRel { msg_id: id }),
        14 => Message::PubComp(SnPubComp { msg_id: id }),
        _ => Message::SearchGw(SearchGw { radius: arg }),
    }
}

fn pid(b: u8) -> PacketId {
    PacketId::new(u16::from(b % 8) + 1).expect("never zero")
}

fuzz_target!(|data: &[u8]| {
    let Some((&setup, mut data)) = data.split_first() else {
        return;
    };
    let mut config = GatewayConfig::new(setup)
        .with_predefined(1, "p/one")
        .with_predefined(2, "p/two");
    config.max_clients = usize::from(setup % 4) + 1;
    config.max_registrations = usize::from((setup >> 2) % 4) + 1;
    config.max_buffered = usize::from((setup >> 4) % 4) + 1;
    config.max_pending_connects = 2;
    config.max_queued_transmits = 32;
    config.max_queued_events = 16;
    config.max_datagram = 64;
    config.seed = u64::from(setup);
    let now = Instant::from_secs(1);
    let Ok(gw) = Gateway::new(config, now) else {
        return;
    };
    let mut f = Fuzz {
        gw,
        now,
        open: BTreeSet::new(),
        pending: BTreeSet::new(),
    };
    let mut next = || -> Option<u8> {
        let (&b, rest) = data.split_first()?;
        data = rest;
        Some(b)
    };
    let mut ops = 0;
    while let Some(op) = next() {
        ops += 1;
        if ops > 512 {
            break;
        }
        let arg = next().unwrap_or(0);
        match op % 10 {
            0 => {
                let mut raw = Vec::new();
                for _ in 0..arg % 48 {
                    match next() {
                        Some(b) => raw.push(b),
                        None => break,
                    }
                }
                f.datagram(op >> 4, &raw);
            }
            1 | 2 | 3 => {
                let sel = next().unwrap_or(0);
                f.message(op >> 4, sn_message(sel, arg), op % 10 == 3 && sel & 0x80 != 0);
            }
            4 => {
                // The caller opens (or fails to open) a pending connection.
                if let Some(key) = pick(&f.pending, arg) {
                    f.pending.remove(&key);
                    if arg & 0x80 == 0 {
                        f.open.insert(key);
                        f.gw.handle_broker_opened(f.now, ConnKey(key));
                    } else {
                        f.gw.handle_broker_closed(f.now, ConnKey(key));
                    }
                    f.drain();
                }
            }
            5 => {
                let code = if arg & 0x80 == 0 {
                    ConnectReturnCode::Accepted
                } else {
                    ConnectReturnCode::NotAuthorized
                };
                f.broker_packet(arg, ConnAck::new(code, arg & 0x40 != 0));
            }
            6 => {
                let which = next().unwrap_or(0);
                match arg % 7 {
                    0 => f.broker_packet(which, PubAck::new(pid(arg >> 3))),
                    1 => f.broker_packet(which, PubRec::new(pid(arg >> 3))),
                    2 => f.broker_packet(which, PubComp::new(pid(arg >> 3))),
                    3 => f.broker_packet(which, PubRel::new(pid(arg >> 3))),
                    4 => f.broker_packet(
                        which,
                        SubAck::new(
                            pid(arg >> 3),
                            vec![if arg & 0x80 == 0 {
                                SubscribeReturnCode::Success(MqttQoS::AtLeastOnce)
                            } else {
                                SubscribeReturnCode::Failure
                            }],
                        ),
                    ),
                    5 => f.broker_packet(which, UnsubAck::new(pid(arg >> 3))),
                    _ => {
                        let qos_pid = match (arg >> 3) % 3 {
                            0 => QosPid::AtMostOnce,
                            1 => QosPid::AtLeastOnce(pid(arg >> 5)),
                            _ => QosPid::ExactlyOnce(pid(arg >> 5)),
                        };
                        let name = ["a/b", "t", "p/one", "a/long/topic/name/for/the/limit"]
                            [usize::from(which % 4)];
                        if let Ok(topic) = name.try_into() {
                            let payload: &[u8] = if arg & 0x80 == 0 {
                                b"m"
                            } else {
                                &[0x55; 80]
                            };
                            f.broker_packet(which, Publish::new(topic, qos_pid, payload));
                        }
                    }
                }
            }
            7 => {
                let mut raw = Vec::new();
                for _ in 0..arg % 48 {
                    match next() {
                        Some(b) => raw.push(b),
                        None => break,
                    }
                }
                f.broker_bytes(op >> 4, &raw);
            }
            8 => {
                if let Some(key) = pick(&f.open, arg) {
                    f.open.remove(&key);
                    f.gw.handle_broker_closed(f.now, ConnKey(key));
                    f.drain();
                }
            }
            _ => {
                let millis = u64::from(arg) * u64::from(arg) * 40;
                f.now += std::time::Duration::from_millis(millis);
                if op & 0x80 != 0 {
                    f.gw.set_broker_available(f.now, op & 0x40 != 0);
                }
                f.gw.handle_timeout(f.now);
                f.drain();
                if let Some(t) = f.gw.poll_timeout() {
                    assert!(t > f.now, "deadline not in the future after handle_timeout");
                }
            }
        }
    }
});
