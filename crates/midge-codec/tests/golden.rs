//! Golden byte vectors: every packet type, decoded and encoded, from the spec's
//! examples (marked) and from frames computed by hand.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{bytes, decode, decode_with, encode, f, golden, hex, pid, s, t};
use midge_codec::{
    ConnAck, Connect, ConnectReturnCode, Decoder, Encode, LastWill, Packet, Protocol, PubAck,
    PubComp, PubRec, PubRel, Publish, QoS, QosPid, SubAck, Subscribe, SubscribeFilter,
    SubscribeReturnCode, UnsubAck, Unsubscribe,
};

// covers: MQTT-3.1.2-9
// covers: MQTT-3.1.2-19
// covers: MQTT-3.1.2-21
// covers: MQTT-3.1.3-3
/// The spec's CONNECT variable header example (`00 04 4D 51 54 54 04 CE 00 0A`:
/// user name, password, will QoS 1, will, clean session; keep alive 10), with a
/// payload holding every optional field in the order the spec fixes.
#[test]
fn mqtt_3_1_3_1_connect_full_payload_in_order() {
    let frame = hex("10 21 00 04 4D 51 54 54 04 CE 00 0A
         00 05 6D 69 64 67 65   00 03 77 2F 74   00 03 62 79 65   00 01 75   00 01 70");
    let connect = Connect {
        protocol: Protocol::V3_1_1,
        clean_session: true,
        keep_alive: 10,
        client_id: s("midge"),
        will: Some(LastWill {
            topic: t("w/t"),
            message: bytes(b"bye"),
            qos: QoS::AtLeastOnce,
            retain: false,
        }),
        username: Some(s("u")),
        password: Some(bytes(b"p")),
    };
    golden(&frame, &Packet::Connect(connect));
}

// covers: MQTT-3.1.2-18
// covers: MQTT-3.1.2-20
#[test]
fn mqtt_3_1_2_11_connect_minimal_without_will_or_credentials() {
    let frame = hex("10 0C 00 04 4D 51 54 54 04 02 00 3C 00 00");
    let mut connect = Connect::new(s(""), 60);
    connect.clean_session = true;
    golden(&frame, &Packet::Connect(connect));
}

#[test]
fn connect_mqtt_3_1_mqisdp_level_3() {
    let frame = hex("10 10 00 06 4D 51 49 73 64 70 03 02 00 3C 00 02 63 31");
    let mut connect = Connect::new(s("c1"), 60);
    connect.protocol = Protocol::V3_1;
    golden(&frame, &Packet::Connect(connect));
}

#[test]
fn connect_will_qos2_retain_and_username_only() {
    // flags 0x80 user | 0x20 will retain | 0x10 will QoS 2 | 0x04 will; clean session 0.
    let frame =
        hex("10 19 00 04 4D 51 54 54 04 B4 FF FF 00 01 63 00 01 74 00 02 00 01 00 03 61 6C 69");
    let connect = Connect {
        protocol: Protocol::V3_1_1,
        clean_session: false,
        keep_alive: 0xFFFF,
        client_id: s("c"),
        will: Some(LastWill {
            topic: t("t"),
            message: bytes(&[0x00, 0x01]),
            qos: QoS::ExactlyOnce,
            retain: true,
        }),
        username: Some(s("ali")),
        password: None,
    };
    golden(&frame, &Packet::Connect(connect));
}

#[test]
fn connack_every_return_code() {
    let codes = [
        (0x00, ConnectReturnCode::Accepted),
        (0x01, ConnectReturnCode::UnacceptableProtocolVersion),
        (0x02, ConnectReturnCode::IdentifierRejected),
        (0x03, ConnectReturnCode::ServerUnavailable),
        (0x04, ConnectReturnCode::BadUsernameOrPassword),
        (0x05, ConnectReturnCode::NotAuthorized),
    ];
    for (byte, code) in codes {
        golden(
            &[0x20, 0x02, 0x00, byte],
            &Packet::ConnAck(ConnAck::new(code, false)),
        );
    }
    golden(
        &hex("20 02 01 00"),
        &Packet::ConnAck(ConnAck::new(ConnectReturnCode::Accepted, true)),
    );
}

// covers: MQTT-2.3.1-5
/// The spec's PUBLISH variable header example: topic `a/b`, packet id 10.
#[test]
fn mqtt_3_3_2_1_publish_topic_then_packet_id() {
    let frame = hex("32 09 00 03 61 2F 62 00 0A 68 69");
    let publish = Publish::new(t("a/b"), QosPid::AtLeastOnce(pid(10)), &b"hi"[..]);
    golden(&frame, &Packet::Publish(publish));

    // QoS 0: no packet identifier field at all.
    let frame = hex("31 05 00 03 61 2F 62");
    let mut publish = Publish::new(t("a/b"), QosPid::AtMostOnce, &b""[..]);
    publish.retain = true;
    golden(&frame, &Packet::Publish(publish));

    // QoS 2, DUP set.
    let frame = hex("3C 07 00 03 61 2F 62 00 01");
    let mut publish = Publish::new(t("a/b"), QosPid::ExactlyOnce(pid(1)), &b""[..]);
    publish.dup = true;
    golden(&frame, &Packet::Publish(publish));
}

/// The spec's UTF-8 example `A` followed by U+2A6D4, as a topic.
#[test]
fn mqtt_1_5_3_1_spec_utf8_example_as_topic() {
    let frame = hex("30 07 00 05 41 F0 AA 9B 94");
    let publish = Publish::new(t("A\u{2A6D4}"), QosPid::AtMostOnce, &b""[..]);
    golden(&frame, &Packet::Publish(publish));
}

#[test]
fn pid_only_packets() {
    golden(&hex("40 02 00 0A"), &Packet::PubAck(PubAck::new(pid(10))));
    golden(&hex("50 02 00 0A"), &Packet::PubRec(PubRec::new(pid(10))));
    golden(&hex("62 02 00 0A"), &Packet::PubRel(PubRel::new(pid(10))));
    golden(
        &hex("70 02 FF FF"),
        &Packet::PubComp(PubComp::new(pid(0xFFFF))),
    );
    golden(
        &hex("B0 02 00 0A"),
        &Packet::UnsubAck(UnsubAck::new(pid(10))),
    );
}

#[test]
fn empty_packets() {
    golden(&hex("C0 00"), &Packet::PingReq);
    golden(&hex("D0 00"), &Packet::PingResp);
    golden(&hex("E0 00"), &Packet::Disconnect);
}

/// The spec's SUBSCRIBE example: packet id 10, `a/b` at QoS 1, `c/d` at QoS 2.
#[test]
fn mqtt_3_8_3_1_subscribe_spec_example() {
    let frame = hex("82 0E 00 0A 00 03 61 2F 62 01 00 03 63 2F 64 02");
    let subscribe = Subscribe::new(
        pid(10),
        vec![
            SubscribeFilter::new(f("a/b"), QoS::AtLeastOnce),
            SubscribeFilter::new(f("c/d"), QoS::ExactlyOnce),
        ],
    );
    golden(&frame, &Packet::Subscribe(subscribe));
}

/// The spec's SUBACK example: QoS 0, QoS 2, failure.
#[test]
fn suback_spec_example() {
    let frame = hex("90 05 00 0A 00 02 80");
    let suback = SubAck::new(
        pid(10),
        vec![
            SubscribeReturnCode::Success(QoS::AtMostOnce),
            SubscribeReturnCode::Success(QoS::ExactlyOnce),
            SubscribeReturnCode::Failure,
        ],
    );
    golden(&frame, &Packet::SubAck(suback));
}

/// The spec's UNSUBSCRIBE example: `a/b` and `c/d`.
#[test]
fn mqtt_3_10_3_1_unsubscribe_spec_example() {
    let frame = hex("A2 0C 00 0A 00 03 61 2F 62 00 03 63 2F 64");
    let unsubscribe = Unsubscribe::new(pid(10), vec![f("a/b"), f("c/d")]);
    golden(&frame, &Packet::Unsubscribe(unsubscribe));
}

/// Wildcard filters and multi-byte filters survive both ways.
#[test]
fn subscribe_wildcards_and_multibyte() {
    let frame = hex("82 11 00 01 00 01 23 00 00 03 2B 2F 2B 01 00 02 C3 A9 02");
    let subscribe = Subscribe::new(
        pid(1),
        vec![
            SubscribeFilter::new(f("#"), QoS::AtMostOnce),
            SubscribeFilter::new(f("+/+"), QoS::AtLeastOnce),
            SubscribeFilter::new(f("é"), QoS::ExactlyOnce),
        ],
    );
    golden(&frame, &Packet::Subscribe(subscribe));
}

/// A publish whose remaining length is exactly `remaining`, topic `a`, QoS 0.
fn publish_with_remaining(remaining: usize) -> Publish {
    Publish::new(t("a"), QosPid::AtMostOnce, vec![0x5A; remaining - 3])
}

/// Remaining-length boundaries (Table 2.4): each size decodes and encodes with
/// the expected length bytes.
#[test]
fn remaining_length_boundaries() {
    let cases: &[(usize, &str)] = &[
        (3, "03"),
        (127, "7F"),
        (128, "80 01"),
        (16_383, "FF 7F"),
        (16_384, "80 80 01"),
        (2_097_151, "FF FF 7F"),
        (2_097_152, "80 80 80 01"),
    ];
    for &(remaining, length_bytes) in cases {
        let publish = publish_with_remaining(remaining);
        let mut expected = vec![0x30];
        expected.extend(hex(length_bytes));
        expected.extend(hex("00 01 61"));
        expected.extend(vec![0x5A; remaining - 3]);
        golden(&expected, &Packet::Publish(publish));
    }
    // Zero: the packets without a body.
    assert_eq!(encode(&Packet::PingReq), hex("C0 00"));
}

/// The spec's own examples of the variable-length encoding: 64 is `40`, 321 is `C1 02`.
#[test]
fn remaining_length_spec_examples() {
    for (remaining, header) in [(64, hex("30 40")), (321, hex("30 C1 02"))] {
        let encoded = encode(&Packet::Publish(publish_with_remaining(remaining)));
        assert_eq!(&encoded[..header.len()], &header[..]);
    }
}

/// The largest remaining length is accepted by the peek (no 256 MiB test buffer
/// needed), and a fifth length byte is refused.
#[test]
fn remaining_length_maximum_and_first_overflow() {
    let header = midge_codec::peek(
        &hex("30 FF FF FF 7F"),
        midge_codec::MAX_PACKET_SIZE,
        Protocol::V3_1_1,
    )
    .unwrap()
    .unwrap();
    assert_eq!(header.remaining_length, 268_435_455);
    assert_eq!(header.header_len, 5);
    assert_eq!(header.packet_len(), midge_codec::MAX_PACKET_SIZE);
    assert_eq!(midge_codec::remaining_length_len(268_435_455), 4);

    // 268,435,456 would need a fifth byte: the continuation bit on the fourth is malformed.
    assert_eq!(
        decode(&hex("30 80 80 80 80 01")),
        Err(midge_codec::DecodeError::MalformedRemainingLength)
    );
    assert_eq!(
        decode(&hex("30 FF FF FF FF")),
        Err(midge_codec::DecodeError::MalformedRemainingLength)
    );
    // Encoding refuses a remaining length past the maximum, writing nothing.
    // (`vec![0; n]` maps zeroed pages lazily, so this costs no real memory.)
    let too_big = Publish::new(
        t("a"),
        QosPid::AtMostOnce,
        vec![0u8; midge_codec::MAX_REMAINING_LENGTH - 2],
    );
    let mut buf = bytes::BytesMut::new();
    assert_eq!(
        too_big.encode(&mut buf),
        Err(midge_codec::EncodeError::PacketTooLarge(
            midge_codec::MAX_REMAINING_LENGTH + 1
        ))
    );
    assert!(buf.is_empty());
}

/// MQTT 3.1 lets PUBREL, SUBSCRIBE and UNSUBSCRIBE carry DUP on a retry; 3.1.1 does not.
#[test]
fn mqtt_3_1_dup_on_retried_pubrel_subscribe_unsubscribe() {
    let pubrel = hex("6A 02 00 0A");
    assert_eq!(
        decode_with(&pubrel, Protocol::V3_1).unwrap(),
        Some(Packet::PubRel(PubRel::new(pid(10))))
    );
    assert!(decode_with(&pubrel, Protocol::V3_1_1).is_err());
    let subscribe = hex("8A 06 00 0A 00 01 61 00");
    assert!(decode_with(&subscribe, Protocol::V3_1).unwrap().is_some());
    assert!(decode_with(&subscribe, Protocol::V3_1_1).is_err());
}

/// A decoder fed a stream of several packets returns them one by one.
#[test]
fn stream_of_packets_in_one_buffer() {
    let mut stream = hex("C0 00 32 09 00 03 61 2F 62 00 0A 68 69 40 02 00 0A");
    stream.extend(hex("E0 00"));
    let mut buf = bytes::BytesMut::from(&stream[..]);
    let mut decoder = Decoder::new();
    let mut packets = Vec::new();
    while let Some(p) = decoder.decode(&mut buf).unwrap() {
        packets.push(p.packet_type());
    }
    use midge_codec::PacketType::*;
    assert_eq!(packets, [PingReq, Publish, PubAck, Disconnect]);
    assert!(buf.is_empty());
}
