//! Property tests: every message round-trips, arbitrary datagrams never panic,
//! and forwarder encapsulation round-trips with any wrapped message.

// Test helpers outside #[test] functions: a failed expectation should panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use bytes::Bytes;
use midge_sn_codec::*;
use proptest::prelude::*;

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn text(min: usize, max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), min..max).prop_map(|c| c.into_iter().collect())
}

fn topic_name() -> impl Strategy<Value = TopicName> {
    text(1, 40).prop_map(TopicName::from)
}

fn client_id(min: usize) -> impl Strategy<Value = ClientId> {
    text(min, 24).prop_map(ClientId::from)
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn code() -> impl Strategy<Value = ReturnCode> {
    prop_oneof![
        Just(ReturnCode::Accepted),
        Just(ReturnCode::Congestion),
        Just(ReturnCode::InvalidTopicId),
        Just(ReturnCode::NotSupported),
    ]
}

fn topic_id() -> impl Strategy<Value = TopicId> {
    any::<u16>().prop_map(TopicId)
}

fn nonzero() -> impl Strategy<Value = u16> {
    1..=u16::MAX
}

fn subscribe_topic() -> impl Strategy<Value = SubscribeTopic> {
    prop_oneof![
        topic_name().prop_map(SubscribeTopic::Name),
        topic_id().prop_map(SubscribeTopic::Predefined),
        any::<[u8; 2]>().prop_map(SubscribeTopic::Short),
    ]
}

fn will() -> impl Strategy<Value = Option<WillTopicData>> {
    prop::option::of(
        (qos(), any::<bool>(), topic_name()).prop_map(|(qos, retain, topic)| WillTopicData {
            qos,
            retain,
            topic,
        }),
    )
}

fn publish() -> impl Strategy<Value = Publish> {
    let topic = prop_oneof![
        topic_id().prop_map(Topic::TopicId),
        topic_id().prop_map(Topic::Predefined),
        any::<[u8; 2]>().prop_map(Topic::Short),
    ];
    let qos = prop_oneof![
        Just(PublishQoS::AtMostOnce),
        Just(PublishQoS::AtLeastOnce),
        Just(PublishQoS::ExactlyOnce),
        Just(PublishQoS::MinusOne),
    ];
    // Payloads up to 600 octets cross into the three-octet Length form.
    (
        any::<bool>(),
        qos,
        any::<bool>(),
        topic,
        nonzero(),
        bytes(600),
    )
        .prop_map(|(dup, qos, retain, topic, msg_id, data)| {
            // Keep to what the specification allows: QoS -1 never with a
            // normal topic id; QoS 0 and -1 carry MsgId 0x0000.
            let topic = match (qos, topic) {
                (PublishQoS::MinusOne, Topic::TopicId(id)) => Topic::Predefined(id),
                (_, t) => t,
            };
            let msg_id = if qos.is_acknowledged() { msg_id } else { 0 };
            Publish {
                dup,
                qos,
                retain,
                topic,
                msg_id,
                data,
            }
        })
}

/// Every message but the encapsulation.
fn plain_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u8>(), any::<u16>())
            .prop_map(|(gw_id, duration)| Advertise { gw_id, duration }.into()),
        any::<u8>().prop_map(|radius| SearchGw { radius }.into()),
        (any::<u8>(), bytes(300)).prop_map(|(gw_id, gw_add)| GwInfo { gw_id, gw_add }.into()),
        (any::<bool>(), any::<bool>(), any::<u16>(), client_id(0)).prop_map(
            |(will, clean_session, duration, client_id)| {
                Connect {
                    will,
                    clean_session,
                    duration,
                    client_id,
                }
                .into()
            }
        ),
        code().prop_map(|return_code| ConnAck { return_code }.into()),
        Just(WillTopicReq.into()),
        will().prop_map(|w| WillTopic(w).into()),
        Just(WillMsgReq.into()),
        bytes(300).prop_map(|will_msg| WillMsg { will_msg }.into()),
        (topic_id(), nonzero(), topic_name()).prop_map(|(topic_id, msg_id, topic_name)| Register {
            topic_id,
            msg_id,
            topic_name
        }
        .into()),
        (topic_id(), any::<u16>(), code()).prop_map(|(topic_id, msg_id, return_code)| RegAck {
            topic_id,
            msg_id,
            return_code
        }
        .into()),
        publish().prop_map(Message::from),
        (topic_id(), any::<u16>(), code()).prop_map(|(topic_id, msg_id, return_code)| PubAck {
            topic_id,
            msg_id,
            return_code
        }
        .into()),
        any::<u16>().prop_map(|msg_id| PubComp { msg_id }.into()),
        any::<u16>().prop_map(|msg_id| PubRec { msg_id }.into()),
        any::<u16>().prop_map(|msg_id| PubRel { msg_id }.into()),
        (any::<bool>(), qos(), nonzero(), subscribe_topic()).prop_map(
            |(dup, qos, msg_id, topic)| Subscribe {
                dup,
                qos,
                msg_id,
                topic
            }
            .into()
        ),
        (qos(), topic_id(), any::<u16>(), code()).prop_map(
            |(qos, topic_id, msg_id, return_code)| {
                SubAck {
                    qos,
                    topic_id,
                    msg_id,
                    return_code,
                }
                .into()
            }
        ),
        (nonzero(), subscribe_topic())
            .prop_map(|(msg_id, topic)| Unsubscribe { msg_id, topic }.into()),
        any::<u16>().prop_map(|msg_id| UnsubAck { msg_id }.into()),
        prop::option::of(client_id(1)).prop_map(|client_id| PingReq { client_id }.into()),
        Just(PingResp.into()),
        prop::option::of(any::<u16>()).prop_map(|duration| Disconnect { duration }.into()),
        will().prop_map(|w| WillTopicUpd(w).into()),
        code().prop_map(|return_code| WillTopicResp { return_code }.into()),
        bytes(300).prop_map(|will_msg| WillMsgUpd { will_msg }.into()),
        code().prop_map(|return_code| WillMsgResp { return_code }.into()),
    ]
}

fn encapsulated() -> impl Strategy<Value = Encapsulated> {
    (
        0..=3_u8,
        prop::collection::vec(any::<u8>(), 1..300),
        plain_message(),
    )
        .prop_map(|(radius, node_id, message)| Encapsulated {
            radius,
            node_id: Bytes::from(node_id),
            message: Box::new(message),
        })
}

fn round_trip(msg: &Message) -> Result<(), TestCaseError> {
    let mut out = Vec::new();
    msg.encode(&mut out)
        .map_err(|e| TestCaseError::fail(format!("encode: {e}")))?;
    prop_assert_eq!(out.len(), msg.encoded_len());
    // The shorter Length form whenever the message (or wrapper) fits in it.
    if msg.msg_type() != MsgType::Encapsulated {
        prop_assert_eq!(out[0] == 0x01, out.len() > 255);
    }
    prop_assert_eq!(&decode(&Bytes::from(out))?, msg);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn every_message_round_trips(msg in plain_message()) {
        round_trip(&msg)?;
    }

    #[test]
    fn encapsulated_round_trips_with_any_inner_message(msg in encapsulated()) {
        round_trip(&Message::from(msg))?;
    }

    #[test]
    fn arbitrary_datagrams_never_panic_and_accepted_ones_re_encode(data in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(msg) = decode_slice(&data) {
            round_trip(&msg)?;
        }
    }

    #[test]
    fn datagrams_with_a_valid_header_never_panic(t in any::<u8>(), body in prop::collection::vec(any::<u8>(), 0..300), long in any::<bool>()) {
        let mut data = if long {
            let total = u16::try_from(body.len() + 4).unwrap();
            let [hi, lo] = total.to_be_bytes();
            vec![0x01, hi, lo, t]
        } else {
            vec![u8::try_from(body.len() + 2).unwrap_or(0), t]
        };
        data.extend_from_slice(&body);
        if let Ok(msg) = decode_slice(&data) {
            round_trip(&msg)?;
        }
    }

    #[test]
    fn truncating_a_valid_message_never_panics(msg in plain_message(), cut in any::<prop::sample::Index>()) {
        let mut out = Vec::new();
        msg.encode(&mut out).unwrap();
        let cut = cut.index(out.len());
        prop_assert!(decode_slice(&out[..cut]).is_err());
    }
}
