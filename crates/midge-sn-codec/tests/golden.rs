//! Golden byte vectors for every MQTT-SN 1.2 message, both directions, both
//! Length forms, and the flag combinations the specification allows and
//! forbids. Test names carry the section of the specification they check.

// Test helpers outside #[test] functions: a failed expectation should panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use bytes::Bytes;
use midge_sn_codec::*;

/// `bytes` decodes to `msg`, `msg` encodes to `bytes` in `encoded_len` octets,
/// and the same message in the three-octet Length form decodes to `msg` too.
fn golden(bytes: &[u8], msg: impl Into<Message>) {
    let msg = msg.into();
    assert_eq!(decode_slice(bytes), Ok(msg.clone()), "decode {bytes:02x?}");
    let mut out = Vec::new();
    msg.encode(&mut out).unwrap();
    assert_eq!(out, bytes, "encode {msg:?}");
    assert_eq!(msg.encoded_len(), bytes.len());
    if bytes.len() < 256 && msg.msg_type() != MsgType::Encapsulated {
        assert_eq!(
            decode_slice(&long_form(bytes)),
            Ok(msg),
            "long form of {bytes:02x?}"
        );
    }
}

/// Rewrites a message from the one-octet to the three-octet Length form.
fn long_form(short: &[u8]) -> Vec<u8> {
    let total = u16::try_from(short.len() + 2).unwrap();
    let mut v = vec![0x01];
    v.extend_from_slice(&total.to_be_bytes());
    v.extend_from_slice(&short[1..]);
    v
}

fn rejects(bytes: &[u8], err: Error) {
    assert_eq!(decode_slice(bytes), Err(err), "{bytes:02x?}");
}

fn encode_fails(msg: impl Into<Message>, err: Error) {
    let mut out = Vec::new();
    assert_eq!(msg.into().encode(&mut out), Err(err));
    assert!(out.is_empty(), "a failed encode wrote {out:02x?}");
}

fn truncated(message: MsgType, field: &'static str) -> Error {
    Error::Truncated { message, field }
}

fn trailing(message: MsgType, extra: usize) -> Error {
    Error::TrailingBytes { message, extra }
}

// ---- 5.2 header ----------------------------------------------------------

#[test]
fn sn_5_2_1_empty_and_one_octet_datagrams_are_truncated_headers() {
    rejects(&[], Error::TruncatedHeader);
    rejects(&[0x02], Error::TruncatedHeader);
    rejects(&[0x01], Error::TruncatedHeader);
    rejects(&[0x01, 0x00, 0x04], Error::TruncatedHeader);
}

#[test]
fn sn_5_2_1_length_smaller_than_header_is_invalid() {
    rejects(&[0x00, 0x17], Error::InvalidLength { declared: 0 });
    rejects(
        &[0x01, 0x00, 0x03, 0x17],
        Error::InvalidLength { declared: 3 },
    );
    rejects(
        &[0x01, 0x00, 0x00, 0x17],
        Error::InvalidLength { declared: 0 },
    );
}

#[test]
fn sn_5_2_1_length_disagreeing_with_datagram_is_an_error() {
    rejects(
        &[0x03, 0x17],
        Error::LengthMismatch {
            declared: 3,
            actual: 2,
        },
    );
    rejects(
        &[0x02, 0x17, 0x00],
        Error::LengthMismatch {
            declared: 2,
            actual: 3,
        },
    );
    rejects(
        &[0x01, 0x00, 0x05, 0x17],
        Error::LengthMismatch {
            declared: 5,
            actual: 4,
        },
    );
    rejects(
        &[0x01, 0x00, 0x04, 0x17, 0x00],
        Error::LengthMismatch {
            declared: 4,
            actual: 5,
        },
    );
}

#[test]
fn sn_5_2_1_long_form_is_accepted_for_short_messages() {
    assert_eq!(decode_slice(&[0x01, 0x00, 0x04, 0x17]), Ok(PingResp.into()));
}

#[test]
fn sn_5_2_1_length_form_boundary_255_vs_258() {
    // 255 octets: the largest message in the one-octet form.
    let data = Bytes::from(vec![0x5A; 255 - 7]);
    let publish = Publish {
        dup: false,
        qos: PublishQoS::AtMostOnce,
        retain: false,
        topic: Topic::Short(*b"hi"),
        msg_id: 0,
        data: data.clone(),
    };
    let mut short = vec![0xFF, 0x0C, 0x02, b'h', b'i', 0x00, 0x00];
    short.extend_from_slice(&data);
    golden(&short, publish);

    // One more octet of data: the one-octet form cannot count 256, so the
    // three-octet form is used and the total becomes 258.
    let data = Bytes::from(vec![0x5A; 255 - 7 + 1]);
    let publish = Publish {
        dup: false,
        qos: PublishQoS::AtMostOnce,
        retain: false,
        topic: Topic::Short(*b"hi"),
        msg_id: 0,
        data: data.clone(),
    };
    let mut long = vec![0x01, 0x01, 0x02, 0x0C, 0x02, b'h', b'i', 0x00, 0x00];
    long.extend_from_slice(&data);
    assert_eq!(long.len(), 258);
    golden(&long, publish);
}

#[test]
fn sn_5_2_1_largest_message_65535_and_first_too_long() {
    let fits = WillMsg {
        will_msg: Bytes::from(vec![0x11; 65535 - 4]),
    };
    let mut out = Vec::new();
    fits.encode(&mut out).unwrap();
    assert_eq!(out.len(), 65535);
    assert_eq!(&out[..4], &[0x01, 0xFF, 0xFF, 0x09]);
    assert_eq!(decode_slice(&out), Ok(fits.into()));

    let too_long = WillMsg {
        will_msg: Bytes::from(vec![0x11; 65535 - 3]),
    };
    encode_fails(too_long, Error::TooLong { len: 65536 });
}

#[test]
fn sn_5_2_2_every_reserved_msg_type_is_rejected() {
    for t in [0x03_u8, 0x11, 0x19, 0xFF].into_iter().chain(0x1E..=0xFD) {
        rejects(&[0x02, t], Error::UnknownMsgType(t));
    }
}

#[test]
fn sn_5_2_2_every_first_octet_and_type_never_panics() {
    for first in 0..=0xFF_u8 {
        for t in 0..=0xFF_u8 {
            let _ = decode_slice(&[first, t]);
            let _ = decode_slice(&[first, t, 0x00, 0x01, 0x02]);
        }
    }
}

#[test]
fn encode_into_a_full_slice_is_an_error_not_a_panic() {
    let mut space = [0_u8; 3];
    let mut buf = &mut space[..];
    let msg: Message = PubRec { msg_id: 1 }.into();
    assert_eq!(
        msg.encode(&mut buf),
        Err(Error::BufferTooSmall {
            needed: 4,
            available: 3
        })
    );
    let mut space = [0_u8; 4];
    let mut buf = &mut space[..];
    msg.encode(&mut buf).unwrap();
    assert_eq!(space, [0x04, 0x0F, 0x00, 0x01]);
}

// ---- 5.4.1 – 5.4.3 discovery ----------------------------------------------

#[test]
fn sn_5_4_1_advertise() {
    golden(
        &[0x05, 0x00, 0x07, 0x03, 0x84],
        Advertise {
            gw_id: 7,
            duration: 900,
        },
    );
    rejects(
        &[0x04, 0x00, 0x07, 0x03],
        truncated(MsgType::Advertise, "Duration"),
    );
    rejects(&[0x02, 0x00], truncated(MsgType::Advertise, "GwId"));
    rejects(
        &[0x06, 0x00, 0x07, 0x03, 0x84, 0x00],
        trailing(MsgType::Advertise, 1),
    );
}

#[test]
fn sn_5_4_2_searchgw() {
    golden(&[0x03, 0x01, 0x00], SearchGw { radius: 0 });
    golden(&[0x03, 0x01, 0x02], SearchGw { radius: 2 });
    rejects(&[0x02, 0x01], truncated(MsgType::SearchGw, "Radius"));
    rejects(&[0x04, 0x01, 0x01, 0x01], trailing(MsgType::SearchGw, 1));
}

#[test]
fn sn_5_4_3_gwinfo_from_gateway_and_from_client() {
    golden(
        &[0x03, 0x02, 0x01],
        GwInfo {
            gw_id: 1,
            gw_add: Bytes::new(),
        },
    );
    golden(
        &[0x05, 0x02, 0x01, 0xC0, 0xA8],
        GwInfo {
            gw_id: 1,
            gw_add: Bytes::from_static(&[0xC0, 0xA8]),
        },
    );
    rejects(&[0x02, 0x02], truncated(MsgType::GwInfo, "GwId"));
}

// ---- 5.4.4 – 5.4.9 connection and will ------------------------------------

fn connect(will: bool, clean_session: bool) -> Connect {
    Connect {
        will,
        clean_session,
        duration: 60,
        client_id: ClientId::from_static("abcd"),
    }
}

#[test]
fn sn_5_4_4_connect_every_will_and_clean_session_combination() {
    for (flags, will, clean) in [
        (0x00, false, false),
        (0x04, false, true),
        (0x08, true, false),
        (0x0C, true, true),
    ] {
        golden(
            &[0x0A, 0x04, flags, 0x01, 0x00, 0x3C, b'a', b'b', b'c', b'd'],
            connect(will, clean),
        );
    }
}

#[test]
fn sn_5_4_4_connect_unused_flags_are_ignored_and_written_as_zero() {
    // DUP, QoS -1, Retain and TopicIdType 0b11 set: none is used by CONNECT.
    let bytes = [0x0A, 0x04, 0xF7, 0x01, 0x00, 0x3C, b'a', b'b', b'c', b'd'];
    assert_eq!(decode_slice(&bytes), Ok(connect(false, true).into()));
}

#[test]
fn sn_5_3_8_connect_protocol_id_other_than_one_is_rejected() {
    rejects(
        &[0x07, 0x04, 0x00, 0x02, 0x00, 0x3C, b'a'],
        Error::UnsupportedProtocolId(2),
    );
    rejects(
        &[0x07, 0x04, 0x00, 0x00, 0x00, 0x3C, b'a'],
        Error::UnsupportedProtocolId(0),
    );
}

#[test]
fn sn_5_4_4_connect_truncated_fields_and_bad_client_id() {
    rejects(&[0x02, 0x04], truncated(MsgType::Connect, "Flags"));
    rejects(
        &[0x03, 0x04, 0x00],
        truncated(MsgType::Connect, "ProtocolId"),
    );
    rejects(
        &[0x05, 0x04, 0x00, 0x01, 0x00],
        truncated(MsgType::Connect, "Duration"),
    );
    rejects(
        &[0x07, 0x04, 0x00, 0x01, 0x00, 0x3C, 0xFF],
        Error::InvalidUtf8 {
            message: MsgType::Connect,
            field: "ClientId",
        },
    );
    // An empty client id is the gateway's to judge, not the codec's.
    golden(
        &[0x06, 0x04, 0x04, 0x01, 0x00, 0x00],
        Connect {
            will: false,
            clean_session: true,
            duration: 0,
            client_id: ClientId::default(),
        },
    );
}

#[test]
fn sn_5_4_5_connack_every_return_code_and_reserved_ones() {
    for (code, rc) in [
        (0x00, ReturnCode::Accepted),
        (0x01, ReturnCode::Congestion),
        (0x02, ReturnCode::InvalidTopicId),
        (0x03, ReturnCode::NotSupported),
    ] {
        golden(&[0x03, 0x05, code], ConnAck { return_code: rc });
    }
    for value in 0x04..=0xFF {
        rejects(
            &[0x03, 0x05, value],
            Error::ReservedReturnCode {
                message: MsgType::ConnAck,
                value,
            },
        );
    }
    rejects(&[0x02, 0x05], truncated(MsgType::ConnAck, "ReturnCode"));
    rejects(&[0x04, 0x05, 0x00, 0x00], trailing(MsgType::ConnAck, 1));
}

#[test]
fn sn_5_4_6_and_5_4_8_will_requests_are_header_only() {
    golden(&[0x02, 0x06], WillTopicReq);
    golden(&[0x02, 0x08], WillMsgReq);
    rejects(&[0x03, 0x06, 0x00], trailing(MsgType::WillTopicReq, 1));
    rejects(&[0x03, 0x08, 0x00], trailing(MsgType::WillMsgReq, 1));
}

fn will(qos: QoS, retain: bool, topic: &'static str) -> Option<WillTopicData> {
    Some(WillTopicData {
        qos,
        retain,
        topic: TopicName::from_static(topic),
    })
}

#[test]
fn sn_5_4_7_willtopic_qos_and_retain_combinations() {
    for (flags, qos, retain) in [
        (0x00, QoS::AtMostOnce, false),
        (0x10, QoS::AtMostOnce, true),
        (0x20, QoS::AtLeastOnce, false),
        (0x30, QoS::AtLeastOnce, true),
        (0x40, QoS::ExactlyOnce, false),
        (0x50, QoS::ExactlyOnce, true),
    ] {
        golden(
            &[0x07, 0x07, flags, b'a', b'/', b'b', b'c'],
            WillTopic(will(qos, retain, "a/bc")),
        );
    }
}

#[test]
fn sn_5_4_7_empty_willtopic_deletes_the_will() {
    golden(&[0x02, 0x07], WillTopic(None));
}

#[test]
fn sn_5_4_7_willtopic_forbidden_forms() {
    rejects(
        &[0x04, 0x07, 0x60, b'a'],
        Error::QosMinusOneNotAllowed {
            message: MsgType::WillTopic,
        },
    );
    // Flags without a topic is neither the empty message nor a will topic.
    rejects(
        &[0x03, 0x07, 0x00],
        Error::EmptyField {
            message: MsgType::WillTopic,
            field: "WillTopic",
        },
    );
    rejects(
        &[0x04, 0x07, 0x00, 0xC3],
        Error::InvalidUtf8 {
            message: MsgType::WillTopic,
            field: "WillTopic",
        },
    );
    encode_fails(
        WillTopic(Some(WillTopicData::default())),
        Error::EmptyField {
            message: MsgType::WillTopic,
            field: "WillTopic",
        },
    );
    // DUP, Will, CleanSession and TopicIdType are not used: ignored.
    assert_eq!(
        decode_slice(&[0x04, 0x07, 0x8F, b'a']),
        Ok(WillTopic(will(QoS::AtMostOnce, false, "a")).into())
    );
}

#[test]
fn sn_5_4_9_willmsg_any_octets_even_none() {
    golden(
        &[0x05, 0x09, b'b', b'y', 0xFF],
        WillMsg {
            will_msg: Bytes::from_static(b"by\xFF"),
        },
    );
    golden(&[0x02, 0x09], WillMsg::default());
}

// ---- 5.4.10 – 5.4.14 registration and publish ------------------------------

#[test]
fn sn_5_4_10_register_from_client_and_from_gateway() {
    golden(
        &[0x0A, 0x0A, 0x00, 0x00, 0x00, 0x01, b'a', b'/', b'b', b'c'],
        Register {
            topic_id: TopicId::NONE,
            msg_id: 1,
            topic_name: TopicName::from_static("a/bc"),
        },
    );
    golden(
        &[0x08, 0x0A, 0x00, 0x2A, 0x12, 0x34, 0xC3, 0xA9],
        Register {
            topic_id: TopicId(42),
            msg_id: 0x1234,
            topic_name: TopicName::from_static("é"),
        },
    );
}

#[test]
fn sn_5_4_10_register_forbidden_forms() {
    rejects(
        &[0x06, 0x0A, 0x00, 0x00, 0x00, 0x01],
        Error::EmptyField {
            message: MsgType::Register,
            field: "TopicName",
        },
    );
    rejects(
        &[0x07, 0x0A, 0x00, 0x00, 0x00, 0x00, b'a'],
        Error::ZeroMsgId {
            message: MsgType::Register,
        },
    );
    rejects(
        &[0x07, 0x0A, 0x00, 0x00, 0x00, 0x01, 0x80],
        Error::InvalidUtf8 {
            message: MsgType::Register,
            field: "TopicName",
        },
    );
    rejects(
        &[0x05, 0x0A, 0x00, 0x00, 0x00],
        truncated(MsgType::Register, "MsgId"),
    );
    rejects(&[0x03, 0x0A, 0x00], truncated(MsgType::Register, "TopicId"));
    encode_fails(
        Register {
            topic_id: TopicId(1),
            msg_id: 0,
            topic_name: TopicName::from_static("a"),
        },
        Error::ZeroMsgId {
            message: MsgType::Register,
        },
    );
}

#[test]
fn sn_5_4_11_regack() {
    golden(
        &[0x07, 0x0B, 0x00, 0x05, 0x00, 0x01, 0x00],
        RegAck {
            topic_id: TopicId(5),
            msg_id: 1,
            return_code: ReturnCode::Accepted,
        },
    );
    golden(
        &[0x07, 0x0B, 0x00, 0x00, 0x00, 0x01, 0x01],
        RegAck {
            topic_id: TopicId::NONE,
            msg_id: 1,
            return_code: ReturnCode::Congestion,
        },
    );
    rejects(
        &[0x06, 0x0B, 0x00, 0x05, 0x00, 0x01],
        truncated(MsgType::RegAck, "ReturnCode"),
    );
    rejects(
        &[0x08, 0x0B, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00],
        trailing(MsgType::RegAck, 1),
    );
    rejects(
        &[0x07, 0x0B, 0x00, 0x05, 0x00, 0x01, 0x04],
        Error::ReservedReturnCode {
            message: MsgType::RegAck,
            value: 4,
        },
    );
}

fn publish(dup: bool, qos: PublishQoS, retain: bool, topic: Topic, msg_id: u16) -> Publish {
    Publish {
        dup,
        qos,
        retain,
        topic,
        msg_id,
        data: Bytes::from_static(&[0xAA, 0xBB]),
    }
}

#[test]
fn sn_5_4_12_publish_every_allowed_flag_combination() {
    let topics = [
        (0x00, Topic::TopicId(TopicId(0x0102)), [0x01, 0x02]),
        (0x01, Topic::Predefined(TopicId(0x0102)), [0x01, 0x02]),
        (0x02, Topic::Short(*b"hi"), *b"hi"),
    ];
    let qoses = [
        (0x00, PublishQoS::AtMostOnce),
        (0x20, PublishQoS::AtLeastOnce),
        (0x40, PublishQoS::ExactlyOnce),
        (0x60, PublishQoS::MinusOne),
    ];
    for (tbits, topic, tbytes) in topics {
        for (qbits, qos) in qoses {
            if qos == PublishQoS::MinusOne && tbits == 0x00 {
                continue;
            }
            for (dbit, dup) in [(0x00, false), (0x80, true)] {
                for (rbit, retain) in [(0x00, false), (0x10, true)] {
                    let flags = dbit | qbits | rbit | tbits;
                    let msg_id: u16 = if qos.is_acknowledged() { 0x1234 } else { 0 };
                    let [m0, m1] = msg_id.to_be_bytes();
                    golden(
                        &[0x09, 0x0C, flags, tbytes[0], tbytes[1], m0, m1, 0xAA, 0xBB],
                        publish(dup, qos, retain, topic, msg_id),
                    );
                }
            }
        }
    }
}

#[test]
fn sn_6_8_publish_qos_minus_one_needs_predefined_or_short_topic() {
    rejects(
        &[0x07, 0x0C, 0x60, 0x00, 0x05, 0x00, 0x00],
        Error::QosMinusOneWithNormalTopicId,
    );
    encode_fails(
        publish(
            false,
            PublishQoS::MinusOne,
            false,
            Topic::TopicId(TopicId(5)),
            0,
        ),
        Error::QosMinusOneWithNormalTopicId,
    );
    golden(
        &[0x07, 0x0C, 0x61, 0x00, 0x05, 0x00, 0x00],
        Publish {
            data: Bytes::new(),
            ..publish(
                false,
                PublishQoS::MinusOne,
                false,
                Topic::Predefined(TopicId(5)),
                0,
            )
        },
    );
}

#[test]
fn sn_5_3_4_publish_reserved_topic_id_type_is_rejected() {
    for flags in [0x03, 0x23, 0x63, 0xF3] {
        rejects(
            &[0x07, 0x0C, flags, 0x00, 0x05, 0x00, 0x01],
            Error::ReservedTopicIdType {
                message: MsgType::Publish,
            },
        );
    }
}

#[test]
fn sn_5_4_12_publish_zero_msg_id_only_without_acknowledgement() {
    rejects(
        &[0x07, 0x0C, 0x20, 0x00, 0x05, 0x00, 0x00],
        Error::ZeroMsgId {
            message: MsgType::Publish,
        },
    );
    rejects(
        &[0x07, 0x0C, 0x40, 0x00, 0x05, 0x00, 0x00],
        Error::ZeroMsgId {
            message: MsgType::Publish,
        },
    );
    // QoS 0 with a non-zero MsgId is kept as received.
    golden(
        &[0x07, 0x0C, 0x00, 0x00, 0x05, 0x00, 0x09],
        Publish {
            data: Bytes::new(),
            ..publish(
                false,
                PublishQoS::AtMostOnce,
                false,
                Topic::TopicId(TopicId(5)),
                9,
            )
        },
    );
    encode_fails(
        publish(
            false,
            PublishQoS::ExactlyOnce,
            false,
            Topic::Short(*b"ab"),
            0,
        ),
        Error::ZeroMsgId {
            message: MsgType::Publish,
        },
    );
}

#[test]
fn sn_5_4_12_publish_unused_flags_ignored_and_truncation() {
    // Will and CleanSession set: not used by PUBLISH.
    assert_eq!(
        decode_slice(&[0x09, 0x0C, 0x0C, 0x01, 0x02, 0x00, 0x00, 0xAA, 0xBB]),
        Ok(publish(
            false,
            PublishQoS::AtMostOnce,
            false,
            Topic::TopicId(TopicId(0x0102)),
            0
        )
        .into())
    );
    rejects(&[0x02, 0x0C], truncated(MsgType::Publish, "Flags"));
    rejects(
        &[0x04, 0x0C, 0x00, 0x01],
        truncated(MsgType::Publish, "TopicId"),
    );
    rejects(
        &[0x06, 0x0C, 0x00, 0x01, 0x02, 0x00],
        truncated(MsgType::Publish, "MsgId"),
    );
}

#[test]
fn sn_5_4_12_publish_data_is_a_slice_of_the_datagram() {
    let datagram = Bytes::from(vec![0x09, 0x0C, 0x02, b'h', b'i', 0x00, 0x00, 0xAA, 0xBB]);
    let Ok(Message::Publish(p)) = decode(&datagram) else {
        panic!("not a PUBLISH")
    };
    assert_eq!(p.data.as_ptr(), datagram[7..].as_ptr());
}

#[test]
fn sn_5_4_13_puback() {
    golden(
        &[0x07, 0x0D, 0x00, 0x05, 0x12, 0x34, 0x00],
        PubAck {
            topic_id: TopicId(5),
            msg_id: 0x1234,
            return_code: ReturnCode::Accepted,
        },
    );
    // Rejecting a QoS 0 PUBLISH: MsgId 0x0000 is echoed.
    golden(
        &[0x07, 0x0D, 0x00, 0x05, 0x00, 0x00, 0x02],
        PubAck {
            topic_id: TopicId(5),
            msg_id: 0,
            return_code: ReturnCode::InvalidTopicId,
        },
    );
    rejects(
        &[0x05, 0x0D, 0x00, 0x05, 0x00],
        truncated(MsgType::PubAck, "MsgId"),
    );
    rejects(
        &[0x07, 0x0D, 0x00, 0x05, 0x00, 0x00, 0x80],
        Error::ReservedReturnCode {
            message: MsgType::PubAck,
            value: 0x80,
        },
    );
}

#[test]
fn sn_5_4_14_pubrec_pubrel_pubcomp() {
    golden(&[0x04, 0x0E, 0x12, 0x34], PubComp { msg_id: 0x1234 });
    golden(&[0x04, 0x0F, 0x12, 0x34], PubRec { msg_id: 0x1234 });
    golden(&[0x04, 0x10, 0x12, 0x34], PubRel { msg_id: 0x1234 });
    golden(&[0x04, 0x10, 0x00, 0x00], PubRel { msg_id: 0 });
    rejects(&[0x03, 0x0E, 0x12], truncated(MsgType::PubComp, "MsgId"));
    rejects(
        &[0x05, 0x0F, 0x12, 0x34, 0x00],
        trailing(MsgType::PubRec, 1),
    );
    rejects(&[0x02, 0x10], truncated(MsgType::PubRel, "MsgId"));
}

// ---- 5.4.15 – 5.4.18 subscriptions -----------------------------------------

#[test]
fn sn_5_4_15_subscribe_by_name_predefined_and_short_at_each_qos() {
    for (qbits, qos) in [
        (0x00, QoS::AtMostOnce),
        (0x20, QoS::AtLeastOnce),
        (0x40, QoS::ExactlyOnce),
    ] {
        for (dbit, dup) in [(0x00, false), (0x80, true)] {
            let f = qbits | dbit;
            golden(
                &[0x09, 0x12, f, 0x00, 0x07, b'a', b'/', b'#', b'+'],
                Subscribe {
                    dup,
                    qos,
                    msg_id: 7,
                    topic: SubscribeTopic::Name(TopicName::from_static("a/#+")),
                },
            );
            golden(
                &[0x07, 0x12, f | 0x01, 0x00, 0x07, 0x00, 0x09],
                Subscribe {
                    dup,
                    qos,
                    msg_id: 7,
                    topic: SubscribeTopic::Predefined(TopicId(9)),
                },
            );
            golden(
                &[0x07, 0x12, f | 0x02, 0x00, 0x07, b'h', b'i'],
                Subscribe {
                    dup,
                    qos,
                    msg_id: 7,
                    topic: SubscribeTopic::Short(*b"hi"),
                },
            );
        }
    }
}

#[test]
fn sn_5_4_15_subscribe_forbidden_forms() {
    rejects(
        &[0x07, 0x12, 0x03, 0x00, 0x07, 0x00, 0x09],
        Error::ReservedTopicIdType {
            message: MsgType::Subscribe,
        },
    );
    rejects(
        &[0x07, 0x12, 0x61, 0x00, 0x07, 0x00, 0x09],
        Error::QosMinusOneNotAllowed {
            message: MsgType::Subscribe,
        },
    );
    rejects(
        &[0x05, 0x12, 0x00, 0x00, 0x07],
        Error::EmptyField {
            message: MsgType::Subscribe,
            field: "TopicName",
        },
    );
    rejects(
        &[0x06, 0x12, 0x00, 0x00, 0x00, b'a'],
        Error::ZeroMsgId {
            message: MsgType::Subscribe,
        },
    );
    rejects(
        &[0x06, 0x12, 0x01, 0x00, 0x07, 0x00],
        truncated(MsgType::Subscribe, "TopicId"),
    );
    rejects(
        &[0x08, 0x12, 0x02, 0x00, 0x07, b'h', b'i', b'!'],
        trailing(MsgType::Subscribe, 1),
    );
    rejects(
        &[0x06, 0x12, 0x00, 0x00, 0x07, 0xFE],
        Error::InvalidUtf8 {
            message: MsgType::Subscribe,
            field: "TopicName",
        },
    );
    encode_fails(
        Subscribe {
            dup: false,
            qos: QoS::AtMostOnce,
            msg_id: 1,
            topic: SubscribeTopic::Name(TopicName::default()),
        },
        Error::EmptyField {
            message: MsgType::Subscribe,
            field: "TopicName",
        },
    );
}

#[test]
fn sn_5_4_16_suback() {
    golden(
        &[0x08, 0x13, 0x20, 0x00, 0x09, 0x00, 0x07, 0x00],
        SubAck {
            qos: QoS::AtLeastOnce,
            topic_id: TopicId(9),
            msg_id: 7,
            return_code: ReturnCode::Accepted,
        },
    );
    golden(
        &[0x08, 0x13, 0x40, 0x00, 0x00, 0x00, 0x07, 0x03],
        SubAck {
            qos: QoS::ExactlyOnce,
            topic_id: TopicId::NONE,
            msg_id: 7,
            return_code: ReturnCode::NotSupported,
        },
    );
    rejects(
        &[0x08, 0x13, 0x60, 0x00, 0x09, 0x00, 0x07, 0x00],
        Error::QosMinusOneNotAllowed {
            message: MsgType::SubAck,
        },
    );
    rejects(
        &[0x07, 0x13, 0x20, 0x00, 0x09, 0x00, 0x07],
        truncated(MsgType::SubAck, "ReturnCode"),
    );
}

#[test]
fn sn_5_4_17_unsubscribe_by_name_predefined_and_short() {
    golden(
        &[0x06, 0x14, 0x00, 0x00, 0x08, b'x'],
        Unsubscribe {
            msg_id: 8,
            topic: SubscribeTopic::Name(TopicName::from_static("x")),
        },
    );
    golden(
        &[0x07, 0x14, 0x01, 0x00, 0x08, 0x00, 0x09],
        Unsubscribe {
            msg_id: 8,
            topic: SubscribeTopic::Predefined(TopicId(9)),
        },
    );
    golden(
        &[0x07, 0x14, 0x02, 0x00, 0x08, b'h', b'i'],
        Unsubscribe {
            msg_id: 8,
            topic: SubscribeTopic::Short(*b"hi"),
        },
    );
    // QoS and DUP are not used by UNSUBSCRIBE: ignored, even QoS -1.
    assert_eq!(
        decode_slice(&[0x06, 0x14, 0xE0, 0x00, 0x08, b'x']),
        Ok(Unsubscribe {
            msg_id: 8,
            topic: SubscribeTopic::Name(TopicName::from_static("x"))
        }
        .into())
    );
    rejects(
        &[0x07, 0x14, 0x03, 0x00, 0x08, 0x00, 0x09],
        Error::ReservedTopicIdType {
            message: MsgType::Unsubscribe,
        },
    );
    rejects(
        &[0x06, 0x14, 0x00, 0x00, 0x00, b'x'],
        Error::ZeroMsgId {
            message: MsgType::Unsubscribe,
        },
    );
}

#[test]
fn sn_5_4_18_unsuback() {
    golden(&[0x04, 0x15, 0x00, 0x08], UnsubAck { msg_id: 8 });
    rejects(&[0x03, 0x15, 0x00], truncated(MsgType::UnsubAck, "MsgId"));
}

// ---- 5.4.19 – 5.4.25 keep-alive, disconnect, will updates -------------------

#[test]
fn sn_5_4_19_pingreq_with_and_without_client_id() {
    golden(&[0x02, 0x16], PingReq { client_id: None });
    golden(
        &[0x05, 0x16, b'a', b'b', b'c'],
        PingReq {
            client_id: Some(ClientId::from_static("abc")),
        },
    );
    rejects(
        &[0x03, 0x16, 0xFF],
        Error::InvalidUtf8 {
            message: MsgType::PingReq,
            field: "ClientId",
        },
    );
}

#[test]
fn sn_5_4_20_pingresp() {
    golden(&[0x02, 0x17], PingResp);
    rejects(&[0x03, 0x17, 0x00], trailing(MsgType::PingResp, 1));
}

#[test]
fn sn_5_4_21_disconnect_with_and_without_duration() {
    golden(&[0x02, 0x18], Disconnect { duration: None });
    golden(
        &[0x04, 0x18, 0x0E, 0x10],
        Disconnect {
            duration: Some(3600),
        },
    );
    rejects(
        &[0x03, 0x18, 0x0E],
        truncated(MsgType::Disconnect, "Duration"),
    );
    rejects(
        &[0x05, 0x18, 0x0E, 0x10, 0x00],
        trailing(MsgType::Disconnect, 1),
    );
}

#[test]
fn sn_5_4_22_willtopicupd_and_its_empty_form() {
    golden(
        &[0x05, 0x1A, 0x10, b'a', b'b'],
        WillTopicUpd(will(QoS::AtMostOnce, true, "ab")),
    );
    golden(
        &[0x05, 0x1A, 0x40, b'a', b'b'],
        WillTopicUpd(will(QoS::ExactlyOnce, false, "ab")),
    );
    golden(&[0x02, 0x1A], WillTopicUpd(None));
    rejects(
        &[0x05, 0x1A, 0x70, b'a', b'b'],
        Error::QosMinusOneNotAllowed {
            message: MsgType::WillTopicUpd,
        },
    );
    rejects(
        &[0x03, 0x1A, 0x00],
        Error::EmptyField {
            message: MsgType::WillTopicUpd,
            field: "WillTopic",
        },
    );
}

#[test]
fn sn_5_4_23_willmsgupd() {
    golden(
        &[0x04, 0x1C, b'h', b'i'],
        WillMsgUpd {
            will_msg: Bytes::from_static(b"hi"),
        },
    );
    golden(&[0x02, 0x1C], WillMsgUpd::default());
}

#[test]
fn sn_5_4_24_and_5_4_25_will_responses() {
    golden(
        &[0x03, 0x1B, 0x00],
        WillTopicResp {
            return_code: ReturnCode::Accepted,
        },
    );
    golden(
        &[0x03, 0x1D, 0x03],
        WillMsgResp {
            return_code: ReturnCode::NotSupported,
        },
    );
    rejects(
        &[0x03, 0x1B, 0x04],
        Error::ReservedReturnCode {
            message: MsgType::WillTopicResp,
            value: 4,
        },
    );
    rejects(&[0x02, 0x1D], truncated(MsgType::WillMsgResp, "ReturnCode"));
}

// ---- 5.5 forwarder encapsulation ------------------------------------------

#[test]
fn sn_5_5_encapsulated_message_both_directions() {
    golden(
        &[0x05, 0xFE, 0x01, 0xAA, 0xBB, 0x04, 0x0E, 0x12, 0x34],
        Encapsulated {
            radius: 1,
            node_id: Bytes::from_static(&[0xAA, 0xBB]),
            message: Box::new(PubComp { msg_id: 0x1234 }.into()),
        },
    );
    // The wrapped message may itself use the three-octet Length form.
    let data = vec![0x5A; 300];
    let inner = Publish {
        dup: false,
        qos: PublishQoS::MinusOne,
        retain: false,
        topic: Topic::Short(*b"hi"),
        msg_id: 0,
        data: Bytes::from(data.clone()),
    };
    let mut bytes = vec![
        0x04, 0xFE, 0x00, 0x07, 0x01, 0x01, 0x35, 0x0C, 0x62, b'h', b'i', 0x00, 0x00,
    ];
    bytes.extend_from_slice(&data);
    golden(
        &bytes,
        Encapsulated {
            radius: 0,
            node_id: Bytes::from_static(&[7]),
            message: Box::new(inner.into()),
        },
    );
}

#[test]
fn sn_5_5_encapsulated_outer_length_in_long_form_is_accepted() {
    let bytes = [0x01, 0x00, 0x06, 0xFE, 0x02, 0x07, 0x02, 0x17];
    assert_eq!(
        decode_slice(&bytes),
        Ok(Encapsulated {
            radius: 2,
            node_id: Bytes::from_static(&[7]),
            message: Box::new(PingResp.into())
        }
        .into())
    );
}

#[test]
fn sn_5_5_encapsulated_forbidden_forms() {
    rejects(
        &[0x04, 0xFE, 0x04, 0x07, 0x02, 0x17],
        Error::ReservedCtrlBits(0x04),
    );
    rejects(
        &[0x03, 0xFE, 0x00, 0x02, 0x17],
        Error::EmptyField {
            message: MsgType::Encapsulated,
            field: "WirelessNodeId",
        },
    );
    rejects(
        &[0x02, 0xFE, 0x02, 0x17],
        truncated(MsgType::Encapsulated, "Ctrl"),
    );
    rejects(
        &[0x09, 0xFE, 0x00, 0x07],
        Error::LengthMismatch {
            declared: 9,
            actual: 4,
        },
    );
    rejects(&[0x04, 0xFE, 0x00, 0x07], Error::TruncatedHeader);
    rejects(
        &[0x04, 0xFE, 0x00, 0x07, 0x03, 0x17],
        Error::LengthMismatch {
            declared: 3,
            actual: 2,
        },
    );
    rejects(
        &[0x04, 0xFE, 0x00, 0x07, 0x04, 0xFE, 0x00, 0x07, 0x02, 0x17],
        Error::NestedEncapsulation,
    );
    encode_fails(
        Encapsulated {
            radius: 0,
            node_id: Bytes::from_static(&[1]),
            message: Box::new(
                Encapsulated {
                    radius: 0,
                    node_id: Bytes::from_static(&[1]),
                    message: Box::new(PingResp.into()),
                }
                .into(),
            ),
        },
        Error::NestedEncapsulation,
    );
    encode_fails(
        Encapsulated {
            radius: 4,
            node_id: Bytes::from_static(&[1]),
            message: Box::new(PingResp.into()),
        },
        Error::RadiusOutOfRange(4),
    );
}

#[test]
fn sn_5_5_deeply_nested_encapsulation_does_not_recurse() {
    let mut bytes = Vec::new();
    for _ in 0..20_000 {
        bytes.extend_from_slice(&[0x04, 0xFE, 0x00, 0x07]);
    }
    bytes.extend_from_slice(&[0x02, 0x17]);
    rejects(&bytes, Error::NestedEncapsulation);
}

// ---- flags helpers -----------------------------------------------------------

#[test]
fn sn_5_3_4_flags_bit_positions() {
    let f = Flags::EMPTY
        .with_dup(true)
        .with_qos(PublishQoS::MinusOne)
        .with_retain(true)
        .with_will(true)
        .with_clean_session(true)
        .with_topic_id_type(TopicIdType::Short);
    assert_eq!(f.0, 0xFE);
    assert!(f.dup() && f.retain() && f.will() && f.clean_session());
    assert_eq!(f.publish_qos(), PublishQoS::MinusOne);
    assert_eq!(
        Flags(0x03).topic_id_type(MsgType::Publish),
        Err(Error::ReservedTopicIdType {
            message: MsgType::Publish
        })
    );
    assert_eq!(Flags(0x40).qos(MsgType::SubAck), Ok(QoS::ExactlyOnce));
    assert_eq!(Flags(0xFE).with_dup(false).with_will(false).0, 0x76);
}

#[test]
fn sn_5_3_11_topic_id_reserved_values() {
    assert!(TopicId(0x0000).is_reserved());
    assert!(TopicId(0xFFFF).is_reserved());
    assert!(!TopicId(0x0001).is_reserved());
}
