//! Property tests of `SnClient`: arbitrary datagrams (random octets and
//! valid gateway messages with colliding ids), commands and clock jumps never
//! panic it, never make it write an undecodable datagram, never stall its
//! timers, and never grow a table past its configured limit.

// Test helpers outside #[test] functions: a failed expectation should panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use bytes::{Bytes, BytesMut};
use midge_session::sn::client::{GwAddCodec, SnClient, SnClientConfig, SnEvent, SnTopic, SnWill};
use midge_sn_codec::*;
use midge_time::{Duration, Instant};
use proptest::prelude::*;

type Addr = u8;

#[derive(Debug, Clone)]
enum Step {
    Raw(Addr, Vec<u8>),
    Msg(Addr, Message),
    Advance(u64),
    Command(u8, u8),
    DrainEvents,
}

fn return_code() -> impl Strategy<Value = ReturnCode> {
    prop_oneof![
        3 => Just(ReturnCode::Accepted),
        1 => Just(ReturnCode::Congestion),
        1 => Just(ReturnCode::InvalidTopicId),
        1 => Just(ReturnCode::NotSupported),
    ]
}

fn topic() -> impl Strategy<Value = Topic> {
    prop_oneof![
        (0u16..5).prop_map(|id| Topic::TopicId(TopicId(id))),
        (0u16..3).prop_map(|id| Topic::Predefined(TopicId(id))),
        Just(Topic::Short(*b"ab")),
    ]
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn pqos() -> impl Strategy<Value = PublishQoS> {
    prop_oneof![
        Just(PublishQoS::AtMostOnce),
        Just(PublishQoS::AtLeastOnce),
        Just(PublishQoS::ExactlyOnce),
        Just(PublishQoS::MinusOne)
    ]
}

fn name() -> impl Strategy<Value = TopicName> {
    prop_oneof![
        Just(TopicName::from("a")),
        Just(TopicName::from("b/c")),
        Just(TopicName::from("s/+")),
        Just(TopicName::from("d")),
        Just(TopicName::from("e")),
    ]
}

/// Messages a gateway (or a neighbour) could send, with small ids so they
/// collide with the client's own.
fn gateway_message() -> impl Strategy<Value = Message> {
    let msg_id = 0u16..6;
    prop_oneof![
        return_code().prop_map(|return_code| Message::ConnAck(ConnAck { return_code })),
        Just(Message::WillTopicReq(WillTopicReq)),
        Just(Message::WillMsgReq(WillMsgReq)),
        (0u16..5, msg_id.clone(), return_code()).prop_map(|(t, msg_id, return_code)| {
            Message::RegAck(RegAck {
                topic_id: TopicId(t),
                msg_id,
                return_code,
            })
        }),
        (0u16..5, msg_id.clone(), return_code()).prop_map(|(t, msg_id, return_code)| {
            Message::PubAck(PubAck {
                topic_id: TopicId(t),
                msg_id,
                return_code,
            })
        }),
        msg_id
            .clone()
            .prop_map(|msg_id| Message::PubRec(PubRec { msg_id })),
        msg_id
            .clone()
            .prop_map(|msg_id| Message::PubComp(PubComp { msg_id })),
        msg_id
            .clone()
            .prop_map(|msg_id| Message::PubRel(PubRel { msg_id })),
        (pqos(), topic(), 1u16..40, any::<bool>(), any::<bool>()).prop_map(
            |(qos, topic, msg_id, retain, dup)| {
                let qos = if qos == PublishQoS::MinusOne {
                    PublishQoS::AtMostOnce
                } else {
                    qos
                };
                Message::Publish(Publish {
                    dup,
                    qos,
                    retain,
                    topic,
                    msg_id,
                    data: Bytes::from_static(b"x"),
                })
            }
        ),
        (0u16..6, 1u16..6, name()).prop_map(|(t, msg_id, topic_name)| {
            Message::Register(Register {
                topic_id: TopicId(t),
                msg_id,
                topic_name,
            })
        }),
        (qos(), 0u16..5, msg_id.clone(), return_code()).prop_map(
            |(qos, t, msg_id, return_code)| {
                Message::SubAck(SubAck {
                    qos,
                    topic_id: TopicId(t),
                    msg_id,
                    return_code,
                })
            }
        ),
        msg_id.prop_map(|msg_id| Message::UnsubAck(UnsubAck { msg_id })),
        Just(Message::PingReq(PingReq { client_id: None })),
        Just(Message::PingResp(PingResp)),
        prop::option::of(0u16..3).prop_map(|duration| Message::Disconnect(Disconnect { duration })),
        return_code().prop_map(|return_code| Message::WillTopicResp(WillTopicResp { return_code })),
        return_code().prop_map(|return_code| Message::WillMsgResp(WillMsgResp { return_code })),
        (0u8..12, 0u16..3)
            .prop_map(|(gw_id, duration)| Message::Advertise(Advertise { gw_id, duration })),
        (0u8..12, prop::collection::vec(0u8..6, 0..3)).prop_map(|(gw_id, add)| {
            Message::GwInfo(GwInfo {
                gw_id,
                gw_add: Bytes::from(add),
            })
        }),
        (0u8..3).prop_map(|radius| Message::SearchGw(SearchGw { radius })),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => (0u8..4, prop::collection::vec(any::<u8>(), 0..24)).prop_map(|(a, b)| Step::Raw(a, b)),
        8 => (prop_oneof![4 => Just(1u8), 1 => 0u8..4], gateway_message())
            .prop_map(|(a, m)| Step::Msg(a, m)),
        3 => prop_oneof![0u64..2_000, 0u64..400_000].prop_map(Step::Advance),
        4 => (0u8..16, any::<u8>()).prop_map(|(k, x)| Step::Command(k, x)),
        1 => Just(Step::DrainEvents),
    ]
}

fn small_config(seed: u64) -> SnClientConfig<Addr> {
    let mut cfg = SnClientConfig::new("prop");
    cfg.seed = seed;
    cfg.keep_alive = 30;
    cfg.max_queued = 4;
    cfg.max_topics = 3;
    cfg.max_gateways = 3;
    cfg.max_inbound_qos2 = 2;
    cfg.max_events = 6;
    cfg.t_wait = Duration::from_secs(20);
    cfg.gateways = vec![(1, 1), (2, 2)];
    cfg.predefined = vec![(1, "p/1".into())];
    cfg.will = Some(SnWill::new("w", &b"bye"[..]));
    cfg.gw_add_codec = Some(GwAddCodec {
        encode: |a: &Addr| Bytes::copy_from_slice(&[*a]),
        decode: |b: &[u8]| match b {
            [a] => Some(*a),
            _ => None,
        },
    });
    cfg
}

fn command(c: &mut SnClient<Addr>, now: Instant, k: u8, x: u8) {
    let short = SnTopic::Short([b'a', x]);
    let pq = match x % 4 {
        0 => PublishQoS::AtMostOnce,
        1 => PublishQoS::AtLeastOnce,
        2 => PublishQoS::ExactlyOnce,
        _ => PublishQoS::MinusOne,
    };
    let names = ["a", "b/c", "d", "e", "s/+"];
    let name = names[usize::from(x) % names.len()];
    // Errors are legitimate answers here; only panics and bounds matter.
    let _ = match k {
        0 => c.connect(now, 1 + x % 2).map(|_| ()),
        1 => c.publish(now, short, &b"p"[..], pq, x % 2 == 0).map(|_| ()),
        2 => c
            .publish(now, SnTopic::Name(name.into()), &b"p"[..], pq, false)
            .map(|_| ()),
        3 => c
            .publish(
                now,
                SnTopic::Predefined(u16::from(x % 3)),
                &b"p"[..],
                pq,
                false,
            )
            .map(|_| ()),
        4 => c
            .subscribe(now, SnTopic::Name(name.into()), QoS::AtLeastOnce)
            .map(|_| ()),
        5 => c.subscribe(now, short, QoS::ExactlyOnce).map(|_| ()),
        6 => c.unsubscribe(now, SnTopic::Predefined(1)).map(|_| ()),
        7 => c.register(now, name).map(|_| ()),
        8 => c.sleep(now, u16::from(x % 3)),
        9 => c.wake_once(now),
        10 => c.disconnect(now),
        11 => c.search_gateway(now),
        12 => c
            .update_will_topic(now, "w", QoS::AtLeastOnce, true)
            .map(|_| ()),
        13 => c.update_will_msg(now, &b"m"[..]).map(|_| ()),
        14 => c.clear_will(now).map(|_| ()),
        _ => c
            .publish(
                now,
                SnTopic::Short(*b"zz"),
                Bytes::new(),
                PublishQoS::AtLeastOnce,
                true,
            )
            .map(|_| ()),
    };
}

fn check_bounds(c: &SnClient<Addr>, cfg: &SnClientConfig<Addr>) {
    // `disconnect` is taken even at the limit.
    assert!(
        c.queued_len() <= cfg.max_queued + 1,
        "queue {}",
        c.queued_len()
    );
    assert!(c.topics_len() <= cfg.max_topics);
    assert!(c.gateways().count() <= cfg.max_gateways);
    assert!(c.inbound_qos2_len() <= cfg.max_inbound_qos2);
    // Datagrams are drained after every step; one step queues only a few.
    assert!(
        c.transmits_len() <= cfg.max_queued + 8,
        "outbox {}",
        c.transmits_len()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_input_never_panics_and_stays_bounded(
        seed in any::<u64>(),
        connected_first in any::<bool>(),
        steps in prop::collection::vec(step(), 1..120),
    ) {
        let cfg = small_config(seed);
        let mut c = SnClient::new(cfg.clone()).unwrap();
        let mut now = Instant::ZERO;
        if connected_first {
            // Start from the connected state half the time, so the
            // sequences reach deep into it.
            c.connect(now, 1).unwrap();
            let mut buf = Vec::new();
            Message::ConnAck(ConnAck { return_code: ReturnCode::Accepted })
                .encode(&mut buf)
                .unwrap();
            c.handle_datagram(now, 1, &buf).unwrap();
        }
        let mut since_drain = 0usize;
        for step in steps {
            match step {
                Step::Raw(from, bytes) => {
                    let _ = c.handle_datagram(now, from, &bytes);
                }
                Step::Msg(from, msg) => {
                    let mut buf = Vec::new();
                    msg.encode(&mut buf).unwrap();
                    let _ = c.handle_datagram(now, from, &buf);
                }
                Step::Advance(ms) => {
                    now += Duration::from_millis(ms);
                    c.handle_timeout(now);
                    // Timers make progress: nothing is due at `now` any more.
                    if let Some(next) = c.poll_timeout() {
                        prop_assert!(next > now, "timer stuck at {next:?} (now {now:?})");
                    }
                }
                Step::Command(k, x) => command(&mut c, now, k, x),
                Step::DrainEvents => {
                    while c.poll_event().is_some() {}
                    since_drain = 0;
                }
            }
            // Everything written decodes.
            for _ in 0..64 {
                let mut out = BytesMut::new();
                let Some(t) = c.poll_transmit(now, &mut out) else { break };
                prop_assert_eq!(t.len, out.len());
                prop_assert!(decode_slice(&out).is_ok(), "wrote {:02x?}", &out[..]);
            }
            prop_assert_eq!(c.transmits_len(), 0);
            check_bounds(&c, &cfg);
            // Each input adds a handful of events at most; inbound messages
            // stop at max_events (checked at the end).
            since_drain += 1;
            prop_assert!(
                c.events_len() <= cfg.max_events + 8 * since_drain,
                "events {}", c.events_len()
            );
        }
        // Undrained inbound messages never exceed max_events.
        let mut msgs = 0;
        while let Some(e) = c.poll_event() {
            if matches!(e, SnEvent::Message { .. }) {
                msgs += 1;
            }
        }
        prop_assert!(msgs <= cfg.max_events);
    }
}
