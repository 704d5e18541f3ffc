//! Strict validation: every rule the decoder enforces, each test named after
//! the normative statement it checks, plus the decoder's buffering contract.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use bytes::BytesMut;
use common::{decode, decode_err, decode_with, f, hex, pid, s, t};
use midge_codec::{
    parse_first_byte, ConnAck, ConnectReturnCode, DecodeError, Decoder, Encode, EncodeError, Field,
    MqttString, Packet, PacketType, Protocol, Publish, QosPid, SubAck, Subscribe, SubscribeFilter,
    Topic, Unsubscribe,
};
use midge_topic::TopicError;

/// Expected classification of a first byte, written out from Tables 2.1 and 2.2
/// independently of the decoder's own match.
fn expected_first_byte(byte: u8, protocol: Protocol) -> bool {
    let (kind, flags) = (byte >> 4, byte & 0x0F);
    match kind {
        0x03 => {
            let qos = (flags >> 1) & 0b11;
            let dup = flags & 0b1000 != 0;
            qos != 3 && !(qos == 0 && dup)
        }
        0x06 | 0x08 | 0x0A => flags == 0b0010 || (protocol == Protocol::V3_1 && flags == 0b1010),
        0x01..=0x0E => flags == 0,
        _ => false,
    }
}

// covers: MQTT-2.2.2-1
// covers: MQTT-3.3.1-4
/// All 256 first bytes, under both protocol revisions.
#[test]
fn mqtt_2_2_2_2_every_first_byte_classified() {
    let mut valid = 0;
    for byte in 0u8..=0xFF {
        for protocol in [Protocol::V3_1_1, Protocol::V3_1] {
            let got = parse_first_byte(byte, protocol);
            assert_eq!(
                got.is_ok(),
                expected_first_byte(byte, protocol),
                "first byte {byte:#04x} under {protocol:?}: {got:?}"
            );
            if let Ok(first) = got {
                assert_eq!(first.packet_type as u8, byte >> 4);
                if protocol == Protocol::V3_1_1 {
                    valid += 1;
                }
            } else {
                let err = got.unwrap_err();
                let expected_kind = match byte >> 4 {
                    0x00 | 0x0F => matches!(err, DecodeError::ReservedPacketType(_)),
                    0x03 if (byte >> 1) & 0b11 == 3 => err == DecodeError::InvalidQoS,
                    0x03 => err == DecodeError::DupWithQoS0,
                    _ => matches!(err, DecodeError::InvalidFlags { .. }),
                };
                assert!(expected_kind, "{byte:#04x}: {err:?}");
            }
        }
    }
    // 13 fixed first bytes plus 10 PUBLISH combinations.
    assert_eq!(valid, 23);
}

#[test]
fn mqtt_3_6_1_1_pubrel_flags_must_be_0010() {
    for first in [0x60, 0x61, 0x63, 0x64, 0x68, 0x6A, 0x6F] {
        assert!(matches!(
            decode_err(&[first, 0x02, 0x00, 0x01]),
            DecodeError::InvalidFlags {
                packet_type: PacketType::PubRel,
                ..
            }
        ));
    }
}

#[test]
fn mqtt_3_8_1_1_subscribe_flags_must_be_0010() {
    for first in [0x80, 0x81, 0x83, 0x8A] {
        let mut frame = vec![first];
        frame.extend(hex("06 00 0A 00 01 61 00"));
        assert_eq!(
            decode_err(&frame),
            DecodeError::InvalidFlags {
                packet_type: PacketType::Subscribe,
                flags: first & 0x0F
            }
        );
    }
}

#[test]
fn mqtt_3_10_1_1_unsubscribe_flags_must_be_0010() {
    for first in [0xA0, 0xA1, 0xA3, 0xAA] {
        let mut frame = vec![first];
        frame.extend(hex("05 00 0A 00 01 61"));
        assert!(matches!(
            decode_err(&frame),
            DecodeError::InvalidFlags {
                packet_type: PacketType::Unsubscribe,
                ..
            }
        ));
    }
}

#[test]
fn mqtt_3_14_1_1_disconnect_reserved_flags_zero() {
    for first in 0xE1..=0xEF {
        assert!(matches!(
            decode_err(&[first, 0x00]),
            DecodeError::InvalidFlags {
                packet_type: PacketType::Disconnect,
                ..
            }
        ));
    }
    assert_eq!(decode(&[0xE0, 0x00]), Ok(Some(Packet::Disconnect)));
}

#[test]
fn mqtt_3_3_1_2_dup_with_qos0_refused_both_ways() {
    assert_eq!(decode_err(&hex("38 03 00 01 61")), DecodeError::DupWithQoS0);
    let mut publish = Publish::new(t("a"), QosPid::AtMostOnce, &b""[..]);
    publish.dup = true;
    assert_eq!(
        publish.encode(&mut BytesMut::new()),
        Err(EncodeError::Invalid(DecodeError::DupWithQoS0))
    );
}

#[test]
fn mqtt_3_3_1_4_publish_qos3_refused() {
    assert_eq!(
        decode_err(&hex("36 05 00 01 61 00 01")),
        DecodeError::InvalidQoS
    );
    assert_eq!(
        decode_err(&hex("3F 05 00 01 61 00 01")),
        DecodeError::InvalidQoS
    );
}

#[test]
fn mqtt_2_3_1_1_packet_id_zero_refused() {
    let cases: &[(&str, PacketType)] = &[
        ("32 05 00 01 61 00 00", PacketType::Publish),
        ("34 05 00 01 61 00 00", PacketType::Publish),
        ("40 02 00 00", PacketType::PubAck),
        ("50 02 00 00", PacketType::PubRec),
        ("62 02 00 00", PacketType::PubRel),
        ("70 02 00 00", PacketType::PubComp),
        ("82 06 00 00 00 01 61 00", PacketType::Subscribe),
        ("90 03 00 00 00", PacketType::SubAck),
        ("A2 05 00 00 00 01 61", PacketType::Unsubscribe),
        ("B0 02 00 00", PacketType::UnsubAck),
    ];
    for (frame, packet_type) in cases {
        assert_eq!(
            decode_err(&hex(frame)),
            DecodeError::ZeroPacketId {
                packet_type: *packet_type
            },
            "{frame}"
        );
    }
}

// covers: MQTT-3.1.3-4
// covers: MQTT-3.1.3-10
// covers: MQTT-3.1.3-11
// covers: MQTT-3.8.3-1
// covers: MQTT-3.10.3-1
/// Ill-formed UTF-8 in every string field: an overlong encoding, a UTF-16
/// surrogate encoded as UTF-8, a stray continuation byte, a truncated sequence.
#[test]
fn mqtt_1_5_3_1_ill_formed_utf8_refused_in_every_string_field() {
    let bad: [&[u8]; 4] = [&[0xC0, 0xAF], &[0xED, 0xA0, 0x80], &[0x80], &[0xE6, 0x97]];
    for b in bad {
        let n = u8::try_from(b.len()).unwrap();
        // PUBLISH topic.
        let mut frame = vec![0x30, 2 + n, 0x00, n];
        frame.extend(b);
        assert_eq!(
            decode_err(&frame),
            DecodeError::InvalidUtf8 {
                field: Field::TopicName
            }
        );
        // CONNECT client id, will topic, user name.
        let connect = |flags: u8, fields: &[&[u8]]| {
            let mut body = hex("00 04 4D 51 54 54 04");
            body.push(flags);
            body.extend([0x00, 0x3C]);
            for f in fields {
                body.extend([0x00, u8::try_from(f.len()).unwrap()]);
                body.extend(*f);
            }
            let mut frame = vec![0x10, u8::try_from(body.len()).unwrap()];
            frame.extend(body);
            decode_err(&frame)
        };
        assert_eq!(
            connect(0x02, &[b]),
            DecodeError::InvalidUtf8 {
                field: Field::ClientId
            }
        );
        assert_eq!(
            connect(0x06, &[b"c", b, b"m"]),
            DecodeError::InvalidUtf8 {
                field: Field::WillTopic
            }
        );
        assert_eq!(
            connect(0x82, &[b"c", b]),
            DecodeError::InvalidUtf8 {
                field: Field::Username
            }
        );
        // SUBSCRIBE and UNSUBSCRIBE filters.
        let mut frame = vec![0x82, 5 + n, 0x00, 0x01, 0x00, n];
        frame.extend(b);
        frame.push(0x00);
        assert_eq!(
            decode_err(&frame),
            DecodeError::InvalidUtf8 {
                field: Field::TopicFilter
            }
        );
        let mut frame = vec![0xA2, 4 + n, 0x00, 0x01, 0x00, n];
        frame.extend(b);
        assert_eq!(
            decode_err(&frame),
            DecodeError::InvalidUtf8 {
                field: Field::TopicFilter
            }
        );
    }
}

#[test]
fn mqtt_1_5_3_2_null_character_refused() {
    assert_eq!(
        decode_err(&hex("30 05 00 03 61 00 62")),
        DecodeError::NullCharacter {
            field: Field::TopicName
        }
    );
    assert_eq!(
        decode_err(&hex("10 0D 00 04 4D 51 54 54 04 02 00 3C 00 01 00")),
        DecodeError::NullCharacter {
            field: Field::ClientId
        }
    );
    assert!(MqttString::new("a\0b").is_err());
}

/// A leading U+FEFF is an ordinary character: kept, not stripped.
#[test]
fn mqtt_1_5_3_3_byte_order_mark_preserved() {
    let frame = hex("30 06 00 04 EF BB BF 61");
    let Some(Packet::Publish(publish)) = decode(&frame).unwrap() else {
        panic!("not a publish")
    };
    assert_eq!(publish.topic.as_str(), "\u{FEFF}a");
    assert_eq!(publish.topic.as_bytes(), &[0xEF, 0xBB, 0xBF, 0x61]);
    assert_eq!(common::encode(&Packet::Publish(publish)), frame);
}

#[test]
fn mqtt_3_1_2_1_unknown_protocol_name_refused() {
    let frame = hex("10 0C 00 04 4D 51 54 58 04 02 00 3C 00 00");
    assert_eq!(decode_err(&frame), DecodeError::InvalidProtocolName);
    assert_eq!(
        DecodeError::InvalidProtocolName.statement(),
        Some("MQTT-3.1.2-1")
    );
}

/// Levels the codec does not speak come back as their own error, so a server
/// can answer CONNACK 0x01 before closing.
#[test]
fn mqtt_3_1_2_2_unsupported_level_is_distinguished() {
    for (frame, level) in [
        ("10 0C 00 04 4D 51 54 54 05 02 00 3C 00 00", 5),
        ("10 0C 00 04 4D 51 54 54 03 02 00 3C 00 00", 3),
        ("10 0E 00 06 4D 51 49 73 64 70 04 02 00 3C 00 00", 4),
    ] {
        assert_eq!(
            decode_err(&hex(frame)),
            DecodeError::UnsupportedProtocolLevel { level }
        );
    }
}

#[test]
fn mqtt_3_1_2_3_connect_reserved_flag_refused() {
    let frame = hex("10 0C 00 04 4D 51 54 54 04 03 00 3C 00 00");
    assert_eq!(decode_err(&frame), DecodeError::ConnectReservedFlag);
}

// covers: MQTT-3.1.2-11
#[test]
fn mqtt_3_1_2_13_will_qos_without_will_refused() {
    for flags in [0x0A, 0x12] {
        let frame = [
            &hex("10 0C 00 04 4D 51 54 54 04")[..],
            &[flags],
            &hex("00 3C 00 00"),
        ]
        .concat();
        assert_eq!(decode_err(&frame), DecodeError::WillFlagsWithoutWill);
    }
}

#[test]
fn mqtt_3_1_2_15_will_retain_without_will_refused() {
    let frame = hex("10 0C 00 04 4D 51 54 54 04 22 00 3C 00 00");
    assert_eq!(decode_err(&frame), DecodeError::WillFlagsWithoutWill);
}

#[test]
fn mqtt_3_1_2_14_will_qos3_refused() {
    let frame = hex("10 12 00 04 4D 51 54 54 04 1E 00 3C 00 00 00 01 74 00 01 6D");
    assert_eq!(decode_err(&frame), DecodeError::InvalidWillQoS);
}

#[test]
fn mqtt_3_1_2_22_password_without_username_refused_both_ways() {
    let frame = hex("10 0F 00 04 4D 51 54 54 04 42 00 3C 00 00 00 01 70");
    assert_eq!(decode_err(&frame), DecodeError::PasswordWithoutUsername);
    let mut connect = midge_codec::Connect::new(s("c"), 0);
    connect.password = Some(bytes::Bytes::from_static(b"p"));
    assert_eq!(
        connect.encode(&mut BytesMut::new()),
        Err(EncodeError::Invalid(DecodeError::PasswordWithoutUsername))
    );
}

/// A field the flags announce but the packet does not carry is a truncation;
/// a field the flags do not announce is trailing garbage.
#[test]
fn connect_fields_follow_their_flags() {
    // User name flag set, no user name.
    let frame = hex("10 0D 00 04 4D 51 54 54 04 82 00 3C 00 01 63");
    assert_eq!(
        decode_err(&frame),
        DecodeError::Truncated {
            packet_type: PacketType::Connect,
            field: Field::Username
        }
    );
    // No flags, but a user name follows the client id.
    let frame = hex("10 10 00 04 4D 51 54 54 04 02 00 3C 00 01 63 00 01 75");
    assert_eq!(
        decode_err(&frame),
        DecodeError::TrailingBytes {
            packet_type: PacketType::Connect,
            count: 3
        }
    );
}

#[test]
fn mqtt_3_3_2_2_wildcards_refused_in_publish_and_will_topics() {
    assert!(matches!(
        decode_err(&hex("30 05 00 03 61 2F 2B")),
        DecodeError::InvalidTopicName {
            field: Field::TopicName,
            source: TopicError::WildcardInName
        }
    ));
    assert!(matches!(
        decode_err(&hex("30 03 00 01 23")),
        DecodeError::InvalidTopicName {
            field: Field::TopicName,
            ..
        }
    ));
    let frame = hex("10 12 00 04 4D 51 54 54 04 06 00 3C 00 00 00 01 23 00 01 6D");
    assert!(matches!(
        decode_err(&frame),
        DecodeError::InvalidTopicName {
            field: Field::WillTopic,
            ..
        }
    ));
    // The encoder cannot be handed one: a `Topic` refuses wildcards when built.
    assert!(matches!(
        Topic::new("a/#"),
        Err(DecodeError::InvalidTopicName {
            source: TopicError::WildcardInName,
            ..
        })
    ));
}

#[test]
fn mqtt_4_7_3_1_empty_topic_name_and_filter_refused() {
    assert!(matches!(
        decode_err(&hex("30 02 00 00")),
        DecodeError::InvalidTopicName {
            source: TopicError::Empty,
            ..
        }
    ));
    assert_eq!(
        decode_err(&hex("82 05 00 01 00 00 00")),
        DecodeError::InvalidTopicFilter(TopicError::Empty)
    );
}

#[test]
fn mqtt_4_7_1_2_misplaced_wildcards_refused_in_filters() {
    for filter in ["a/#/b", "a#", "a+/b", "#/"] {
        let bytes = filter.as_bytes();
        let n = u8::try_from(bytes.len()).unwrap();
        let mut frame = vec![0x82, 5 + n, 0x00, 0x01, 0x00, n];
        frame.extend(bytes);
        frame.push(0x01);
        assert!(
            matches!(decode_err(&frame), DecodeError::InvalidTopicFilter(_)),
            "{filter}"
        );
    }
}

#[test]
fn mqtt_3_2_2_4_session_present_with_refusal_refused_both_ways() {
    assert_eq!(
        decode_err(&hex("20 02 01 05")),
        DecodeError::SessionPresentWithRefusal
    );
    let connack = ConnAck::new(ConnectReturnCode::NotAuthorized, true);
    assert!(connack.encode(&mut BytesMut::new()).is_err());
}

#[test]
fn connack_reserved_bits_and_codes_refused() {
    assert_eq!(
        decode_err(&hex("20 02 02 00")),
        DecodeError::InvalidConnAckFlags(0x02)
    );
    for code in 6..=255u8 {
        assert_eq!(
            decode_err(&[0x20, 0x02, 0x00, code]),
            DecodeError::InvalidConnectReturnCode(code)
        );
    }
    // MQTT 3.1 has no session present flag: the whole byte is reserved.
    assert_eq!(
        decode_with(&hex("20 02 01 00"), Protocol::V3_1),
        Err(DecodeError::InvalidConnAckFlags(0x01))
    );
}

#[test]
fn mqtt_3_8_3_3_empty_subscribe_refused_both_ways() {
    assert_eq!(decode_err(&hex("82 02 00 01")), DecodeError::EmptySubscribe);
    let subscribe = Subscribe::new(pid(1), vec![]);
    assert_eq!(
        subscribe.encode(&mut BytesMut::new()),
        Err(EncodeError::Invalid(DecodeError::EmptySubscribe))
    );
}

#[test]
fn mqtt_3_8_3_4_requested_qos_reserved_bits_refused() {
    for qos in [0x03, 0x04, 0x40, 0x80, 0xFF] {
        let frame = [&hex("82 06 00 01 00 01 61")[..], &[qos]].concat();
        assert_eq!(decode_err(&frame), DecodeError::InvalidRequestedQoS(qos));
    }
    // A filter without its QoS byte is a truncation.
    assert_eq!(
        decode_err(&hex("82 05 00 01 00 01 61")),
        DecodeError::Truncated {
            packet_type: PacketType::Subscribe,
            field: Field::RequestedQoS
        }
    );
    let ok = Subscribe::new(
        pid(1),
        vec![SubscribeFilter::new(f("a"), midge_codec::QoS::ExactlyOnce)],
    );
    assert_eq!(
        decode(&common::encode(&Packet::Subscribe(ok.clone()))),
        Ok(Some(Packet::Subscribe(ok)))
    );
}

#[test]
fn mqtt_3_9_3_2_reserved_suback_codes_refused() {
    for code in (0x03..=0xFF).filter(|c| *c != 0x80) {
        assert_eq!(
            decode_err(&[0x90, 0x03, 0x00, 0x01, code]),
            DecodeError::InvalidSubAckReturnCode(code)
        );
    }
    assert_eq!(decode_err(&hex("90 02 00 01")), DecodeError::EmptySubAck);
    assert!(SubAck::new(pid(1), vec![])
        .encode(&mut BytesMut::new())
        .is_err());
}

#[test]
fn mqtt_3_10_3_2_empty_unsubscribe_refused_both_ways() {
    assert_eq!(
        decode_err(&hex("A2 02 00 01")),
        DecodeError::EmptyUnsubscribe
    );
    let unsubscribe = Unsubscribe::new(pid(1), vec![]);
    assert!(unsubscribe.encode(&mut BytesMut::new()).is_err());
}

#[test]
fn fixed_size_packets_refuse_other_lengths() {
    for frame in [
        "40 03 00 01 00",
        "40 01 00",
        "C0 01 00",
        "D0 01 00",
        "E0 01 00",
        "20 03 00 00 00",
        "20 01 00",
    ] {
        let err = decode_err(&hex(frame));
        assert!(
            matches!(
                err,
                DecodeError::TrailingBytes { .. } | DecodeError::Truncated { .. }
            ),
            "{frame}: {err:?}"
        );
    }
}

/// A string length running past the end of the packet is a truncation, never a
/// read into the next packet.
#[test]
fn string_length_past_end_of_packet() {
    let mut buf = BytesMut::from(&hex("30 03 00 05 61 C0 00")[..]);
    assert_eq!(
        Decoder::new().decode(&mut buf),
        Err(DecodeError::Truncated {
            packet_type: PacketType::Publish,
            field: Field::TopicName
        })
    );
}

/// Incomplete input is "need more bytes", never an error, and leaves the
/// buffer as it was.
#[test]
fn incomplete_input_needs_more_bytes() {
    let frame = hex("32 09 00 03 61 2F 62 00 0A 68 69");
    for cut in 0..frame.len() {
        let mut buf = BytesMut::from(&frame[..cut]);
        assert_eq!(Decoder::new().decode(&mut buf), Ok(None), "cut at {cut}");
        assert_eq!(&buf[..], &frame[..cut]);
    }
}

/// An oversized packet is refused from its fixed header alone, before the
/// decoder reserves any room for it.
#[test]
fn packet_too_large_refused_before_buffering() {
    let mut decoder = Decoder::new().with_max_packet_size(1024);
    // A PUBLISH announcing 200 MB; only the fixed header has arrived.
    let mut buf = BytesMut::with_capacity(8);
    buf.extend_from_slice(&hex("30 80 80 80 60"));
    let capacity = buf.capacity();
    assert_eq!(
        decoder.decode(&mut buf),
        Err(DecodeError::PacketTooLarge {
            size: 5 + 0x0C00_0000,
            max: 1024
        })
    );
    assert_eq!(buf.capacity(), capacity);
    // The limit counts the whole packet: 1024 bytes pass, 1025 do not.
    let ok = Publish::new(t("a"), QosPid::AtMostOnce, vec![0u8; 1024 - 3 - 3]);
    assert_eq!(ok.encoded_len(), 1024);
    let mut buf = BytesMut::new();
    ok.encode(&mut buf).unwrap();
    assert!(decoder.decode(&mut buf).unwrap().is_some());
    let big = Publish::new(t("a"), QosPid::AtMostOnce, vec![0u8; 1024 - 3 - 2]);
    let mut buf = BytesMut::new();
    big.encode(&mut buf).unwrap();
    assert!(matches!(
        decoder.decode(&mut buf),
        Err(DecodeError::PacketTooLarge { size: 1025, .. })
    ));
}

/// A partly received large packet reserves a bounded amount ahead, not the
/// whole announced size.
#[test]
fn partial_packet_reserves_bounded_room() {
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&hex("30 FF FF FF 7F"));
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert!(buf.capacity() <= 128 * 1024, "reserved {}", buf.capacity());
}

/// Encoding into a fixed slice that is too small fails cleanly and writes nothing.
#[test]
fn encode_into_too_small_slice() {
    let publish = Publish::new(t("a/b"), QosPid::AtLeastOnce(pid(1)), &b"hello"[..]);
    let mut storage = [0u8; 8];
    let mut slice = &mut storage[..];
    assert_eq!(
        publish.encode(&mut slice),
        Err(EncodeError::BufferTooSmall {
            needed: 14,
            available: 8
        })
    );
    assert_eq!(storage, [0u8; 8]);
    let mut storage = [0u8; 14];
    let mut slice = &mut storage[..];
    assert_eq!(publish.encode(&mut slice), Ok(14));
}

#[test]
fn errors_name_their_statement() {
    assert_eq!(DecodeError::InvalidQoS.statement(), Some("MQTT-3.3.1-4"));
    assert_eq!(
        DecodeError::UnsupportedProtocolLevel { level: 5 }.statement(),
        Some("MQTT-3.1.2-2")
    );
    assert_eq!(DecodeError::MalformedRemainingLength.statement(), None);
    let text = DecodeError::EmptySubscribe.to_string();
    assert!(text.contains("[MQTT-3.8.3-3]"), "{text}");
}
