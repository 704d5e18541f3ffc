//! The MQTT-SN client machine (`midge_session::sn::client::SnClient`) driven
//! by the fuzz input read as a list of operations: raw datagrams and
//! well-formed gateway messages (from its gateway or from strangers),
//! commands (connect, register, publish at every QoS and topic form,
//! subscribe, unsubscribe, will updates, sleep, wake, disconnect, search) and
//! clock jumps with timeouts.
//!
//! Checks: no panic; every datagram the client sends decodes as MQTT-SN;
//! every queue stays within its configured limit; after `handle_timeout` the
//! next deadline lies in the future.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use midge_session::sn::client::{SnClient, SnClientConfig, SnTopic, SnWill};
use midge_session::Instant;
use midge_sn_codec::{
    Advertise, ConnAck, Disconnect, GwInfo, Message, PingResp, PubAck, PubComp, PubRec, PubRel,
    Publish, PublishQoS, QoS, RegAck, Register, ReturnCode, SearchGw, SubAck, Topic, TopicId,
    TopicName, UnsubAck, WillMsgReq, WillMsgResp, WillTopicReq, WillTopicResp,
};

const NAMES: [&str; 4] = ["a/b", "t", "p/one", "a/+"];

struct Fuzz {
    client: SnClient<u8>,
    now: Instant,
}

impl Fuzz {
    fn drain(&mut self) {
        let mut buf = BytesMut::new();
        while let Some(t) = self.client.poll_transmit(self.now, &mut buf) {
            assert_eq!(t.len, buf.len());
            assert!(
                midge_sn_codec::decode_slice(&buf).is_ok(),
                "the client sent an undecodable datagram"
            );
            buf.clear();
        }
        while self.client.poll_event().is_some() {}
        let config = self.client.config();
        // A `disconnect` is always taken, one beyond the limit (documented).
        assert!(self.client.queued_len() <= config.max_queued + 1);
        assert!(self.client.topics_len() <= config.max_topics);
        assert!(self.client.inbound_qos2_len() <= config.max_inbound_qos2);
        assert!(self.client.gateways().count() <= config.max_gateways + config.gateways.len());
    }

    fn datagram(&mut self, from: u8, bytes: &[u8]) {
        let _ = self.client.handle_datagram(self.now, from % 4, bytes);
        self.drain();
    }

    fn message(&mut self, from: u8, message: Message) {
        let mut buf = BytesMut::new();
        if message.encode(&mut buf).is_ok() {
            self.datagram(from, &buf);
        }
    }
}

fn code(b: u8) -> ReturnCode {
    match b % 5 {
        0 | 4 => ReturnCode::Accepted,
        1 => ReturnCode::Congestion,
        2 => ReturnCode::InvalidTopicId,
        _ => ReturnCode::NotSupported,
    }
}

fn qos(b: u8) -> QoS {
    match b % 3 {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn topic(b: u8) -> SnTopic {
    match b % 4 {
        0 | 3 => SnTopic::Name(NAMES[usize::from(b >> 2) % 4].to_owned()),
        1 => SnTopic::Predefined(u16::from(b >> 2) % 4),
        _ => SnTopic::Short([b'a', b'a' + (b >> 2) % 3]),
    }
}

fn gateway_message(selector: u8, arg: u8) -> Message {
    let id = u16::from(arg % 8);
    match selector % 18 {
        0 => Message::ConnAck(ConnAck {
            return_code: code(arg),
        }),
        1 => Message::RegAck(RegAck {
            topic_id: TopicId(id + 1),
            msg_id: id,
            return_code: code(arg >> 3),
        }),
        2 => Message::PubAck(PubAck {
            topic_id: TopicId(id),
            msg_id: id,
            return_code: code(arg >> 3),
        }),
        3 => Message::PubRec(PubRec { msg_id: id }),
        4 => Message::PubComp(PubComp { msg_id: id }),
        5 => Message::PubRel(PubRel { msg_id: id }),
        6 => Message::SubAck(SubAck {
            qos: qos(arg >> 3),
            topic_id: TopicId(id),
            msg_id: id,
            return_code: code(arg >> 5),
        }),
        7 => Message::UnsubAck(UnsubAck { msg_id: id }),
        8 => Message::PingResp(PingResp),
        9 => Message::WillTopicReq(WillTopicReq),
        10 => Message::WillMsgReq(WillMsgReq),
        11 => Message::Register(Register {
            topic_id: TopicId(id + 1),
            msg_id: id,
            topic_name: TopicName::from(NAMES[usize::from(arg >> 3) % 3]),
        }),
        12 | 13 => Message::Publish(Publish {
            dup: arg & 0x80 != 0,
            qos: match arg % 3 {
                0 => PublishQoS::AtMostOnce,
                1 => PublishQoS::AtLeastOnce,
                _ => PublishQoS::ExactlyOnce,
            },
            retain: false,
            topic: match (arg >> 2) % 3 {
                0 => Topic::TopicId(TopicId(id)),
                1 => Topic::Predefined(TopicId(id)),
                _ => Topic::Short(*b"ab"),
            },
            msg_id: id,
            data: Bytes::from_static(b"m"),
        }),
        14 => Message::Disconnect(Disconnect { duration: None }),
        15 => Message::Advertise(Advertise {
            gw_id: arg % 4,
            duration: u16::from(arg),
        }),
        16 => Message::GwInfo(GwInfo {
            gw_id: arg % 4,
            gw_add: Bytes::new(),
        }),
        _ => {
            if arg & 1 == 0 {
                Message::WillTopicResp(WillTopicResp {
                    return_code: code(arg >> 1),
                })
            } else {
                Message::WillMsgResp(WillMsgResp {
                    return_code: code(arg >> 1),
                })
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&setup, mut data)) = data.split_first() else {
        return;
    };
    let mut config = SnClientConfig::new("fuzz");
    config.keep_alive = u16::from(setup >> 5) * 10;
    config.clean_session = setup & 0x01 != 0;
    if setup & 0x02 != 0 {
        config.will = Some(SnWill::new("will/t", &b"bye"[..]));
    }
    config.max_queued = 8;
    config.max_topics = usize::from((setup >> 2) % 4) + 1;
    config.max_gateways = 2;
    config.max_inbound_qos2 = 2;
    config.max_events = 8;
    config.predefined = vec![(1, "p/one".to_owned())];
    config.gateways = vec![(1, 0)];
    config.seed = u64::from(setup);
    let Ok(client) = SnClient::new(config) else {
        return;
    };
    let mut f = Fuzz {
        client,
        now: Instant::from_secs(1),
    };
    let _ = f.client.connect(f.now, 0);
    f.drain();
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
        let now = f.now;
        match op % 16 {
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
            1..=4 => {
                let sel = next().unwrap_or(0);
                // Mostly from the gateway (address 0), sometimes a stranger.
                let from = if op & 0x80 != 0 { op >> 5 } else { 0 };
                f.message(from, gateway_message(sel, arg));
            }
            5 => {
                let q = match arg % 4 {
                    0 => PublishQoS::AtMostOnce,
                    1 => PublishQoS::AtLeastOnce,
                    2 => PublishQoS::ExactlyOnce,
                    _ => PublishQoS::MinusOne,
                };
                let _ = f.client.publish(now, topic(arg >> 2), &b"p"[..], q, arg & 0x80 != 0);
                f.drain();
            }
            6 => {
                let _ = f.client.subscribe(now, topic(arg), qos(arg >> 4));
                f.drain();
            }
            7 => {
                let _ = f.client.unsubscribe(now, topic(arg));
                f.drain();
            }
            8 => {
                let _ = f.client.register(now, NAMES[usize::from(arg) % 3]);
                f.drain();
            }
            9 => {
                let _ = match arg % 3 {
                    0 => f.client.update_will_topic(now, "w/t", qos(arg >> 2), false),
                    1 => f.client.update_will_msg(now, &b"w"[..]),
                    _ => f.client.clear_will(now),
                };
                f.drain();
            }
            10 => {
                let _ = f.client.sleep(now, u16::from(arg) + 1);
                f.drain();
            }
            11 => {
                let _ = f.client.wake_once(now);
                f.drain();
            }
            12 => {
                let _ = f.client.disconnect(now);
                f.drain();
            }
            13 => {
                let _ = if arg & 1 == 0 {
                    f.client.connect(now, (arg >> 1) % 4)
                } else {
                    f.client.search_gateway(now)
                };
                f.drain();
            }
            14 => f.message(op >> 4, Message::SearchGw(SearchGw { radius: arg })),
            _ => {
                let millis = u64::from(arg) * u64::from(arg) * 40;
                f.now += std::time::Duration::from_millis(millis);
                f.client.handle_timeout(f.now);
                f.drain();
                if let Some(t) = f.client.poll_timeout() {
                    assert!(t > f.now, "deadline not in the future after handle_timeout");
                }
            }
        }
    }
});
