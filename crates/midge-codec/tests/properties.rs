//! Property tests: round trips of arbitrary valid packets, arbitrary bytes
//! never panic, and any split of a valid stream decodes to the same packets.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use bytes::{Bytes, BytesMut};
use midge_codec::{
    ConnAck, Connect, ConnectReturnCode, Decoder, Filter, LastWill, MqttString, Packet, PacketId,
    PacketRef, Protocol, PubAck, PubComp, PubRec, PubRel, Publish, QoS, QosPid, SubAck, Subscribe,
    SubscribeFilter, SubscribeReturnCode, Topic, UnsubAck, Unsubscribe,
};
use proptest::prelude::*;

fn mqtt_string(re: &'static str) -> impl Strategy<Value = MqttString> {
    re.prop_map(|s| MqttString::new(&s).unwrap())
}

/// Topic names: levels of letters, multi-byte characters, spaces and `$`,
/// possibly empty, never a wildcard.
fn topic_name() -> impl Strategy<Value = Topic> {
    prop::string::string_regex("[a-z$é日 ]{0,4}(/[a-zA-Z0-9é日 ]{0,4}){0,4}")
        .unwrap()
        .prop_filter("non-empty", |s: &String| !s.is_empty())
        .prop_map(|s| Topic::new(&s).unwrap())
}

/// Topic filters: topic-name levels mixed with `+`, and an optional final `#`.
fn topic_filter() -> impl Strategy<Value = Filter> {
    (
        prop::collection::vec(prop_oneof!["[a-z$é ]{0,3}", Just("+".to_owned())], 1..5),
        any::<bool>(),
    )
        .prop_map(|(levels, hash)| {
            let mut filter = levels.join("/");
            if hash {
                filter.push_str(if filter.is_empty() { "#" } else { "/#" });
            }
            filter
        })
        .prop_filter("non-empty", |s| !s.is_empty())
        .prop_map(|s| Filter::new(&s).unwrap())
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn packet_id() -> impl Strategy<Value = PacketId> {
    (1..=u16::MAX).prop_map(|v| PacketId::new(v).unwrap())
}

fn payload() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from)
}

fn connect() -> impl Strategy<Value = Connect> {
    (
        prop_oneof![Just(Protocol::V3_1_1), Just(Protocol::V3_1)],
        any::<bool>(),
        any::<u16>(),
        mqtt_string("[a-zA-Z0-9é-]{0,30}"),
        prop::option::of((topic_name(), payload(), qos(), any::<bool>())),
        prop::option::of(mqtt_string("[a-z0-9日]{0,12}")),
        prop::option::of(payload()),
    )
        .prop_map(
            |(protocol, clean_session, keep_alive, client_id, will, username, password)| Connect {
                protocol,
                clean_session,
                keep_alive,
                client_id,
                will: will.map(|(topic, message, qos, retain)| LastWill {
                    topic,
                    message,
                    qos,
                    retain,
                }),
                // A password needs a user name [MQTT-3.1.2-22].
                password: username.as_ref().and(password),
                username,
            },
        )
}

fn publish() -> impl Strategy<Value = Publish> {
    (
        any::<bool>(),
        prop_oneof![
            Just(None),
            packet_id().prop_map(|p| Some(QosPid::AtLeastOnce(p))),
            packet_id().prop_map(|p| Some(QosPid::ExactlyOnce(p))),
        ],
        any::<bool>(),
        topic_name(),
        payload(),
    )
        .prop_map(|(dup, qos_pid, retain, topic, payload)| Publish {
            // DUP only with QoS 1 or 2 [MQTT-3.3.1-2].
            dup: dup && qos_pid.is_some(),
            qos_pid: qos_pid.unwrap_or(QosPid::AtMostOnce),
            retain,
            topic,
            payload,
        })
}

fn return_code() -> impl Strategy<Value = ConnectReturnCode> {
    (0u8..=5).prop_map(|c| ConnectReturnCode::from_u8(c).unwrap())
}

fn packet() -> impl Strategy<Value = Packet> {
    prop_oneof![
        connect().prop_map(Packet::Connect),
        (return_code(), any::<bool>()).prop_map(|(code, sp)| Packet::ConnAck(ConnAck::new(
            code,
            sp && code == ConnectReturnCode::Accepted
        ))),
        publish().prop_map(Packet::Publish),
        packet_id().prop_map(|p| Packet::PubAck(PubAck::new(p))),
        packet_id().prop_map(|p| Packet::PubRec(PubRec::new(p))),
        packet_id().prop_map(|p| Packet::PubRel(PubRel::new(p))),
        packet_id().prop_map(|p| Packet::PubComp(PubComp::new(p))),
        (
            packet_id(),
            prop::collection::vec(
                (topic_filter(), qos()).prop_map(|(f, q)| SubscribeFilter::new(f, q)),
                1..12
            )
        )
            .prop_map(|(p, f)| Packet::Subscribe(Subscribe::new(p, f))),
        (
            packet_id(),
            prop::collection::vec(
                prop_oneof![
                    qos().prop_map(SubscribeReturnCode::Success),
                    Just(SubscribeReturnCode::Failure)
                ],
                1..12
            )
        )
            .prop_map(|(p, c)| Packet::SubAck(SubAck::new(p, c))),
        (packet_id(), prop::collection::vec(topic_filter(), 1..12))
            .prop_map(|(p, f)| Packet::Unsubscribe(Unsubscribe::new(p, f))),
        packet_id().prop_map(|p| Packet::UnsubAck(UnsubAck::new(p))),
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        Just(Packet::Disconnect),
    ]
}

fn decoder_for(packet: &Packet) -> Decoder {
    let mut decoder = Decoder::new();
    if let Packet::Connect(c) = packet {
        decoder.set_protocol(c.protocol);
    }
    decoder
}

/// Decodes everything in `buf`, stopping at the first error or "need more".
fn drain(
    decoder: &mut Decoder,
    buf: &mut BytesMut,
) -> Result<Vec<Packet>, midge_codec::DecodeError> {
    let mut out = Vec::new();
    while let Some(p) = decoder.decode(buf)? {
        out.push(p);
    }
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn roundtrip_every_valid_packet(packet in packet()) {
        let mut buf = BytesMut::new();
        let written = packet.encode(&mut buf).unwrap();
        prop_assert_eq!(written, buf.len());
        prop_assert_eq!(packet.encoded_len(), buf.len());
        let decoded = decoder_for(&packet).decode(&mut buf).unwrap();
        prop_assert_eq!(decoded, Some(packet));
        prop_assert!(buf.is_empty());
    }

    /// Whatever the bytes, the decoder returns packets, "need more" or an
    /// error, never panics, and only ever consumes whole packets; whatever it
    /// accepts re-encodes to something it accepts again as the same packet.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), v31 in any::<bool>()) {
        let mut decoder = Decoder::new();
        if v31 {
            decoder.set_protocol(Protocol::V3_1);
        }
        let mut buf = BytesMut::from(&bytes[..]);
        for _ in 0..bytes.len() + 1 {
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(Some(packet)) => {
                    prop_assert!(buf.len() < before);
                    let mut again = BytesMut::new();
                    packet.encode(&mut again).unwrap();
                    prop_assert_eq!(decoder.decode(&mut again).unwrap(), Some(packet));
                }
                Ok(None) | Err(_) => break,
            }
        }
    }

    /// Arbitrary bytes after a valid first byte and length, so that the body
    /// parsers (not only the header check) see random input.
    #[test]
    fn arbitrary_bodies_never_panic(first in any::<u8>(), body in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut frame = vec![first, u8::try_from(body.len().min(127)).unwrap()];
        frame.extend(body.iter().take(127));
        let mut buf = BytesMut::from(&frame[..]);
        let _ = Decoder::new().decode(&mut buf);
    }

    /// A valid stream fed in arbitrary chunks decodes to the same packets as
    /// the stream fed whole.
    #[test]
    fn chunked_stream_decodes_the_same(
        packets in prop::collection::vec(packet().prop_filter("3.1.1 only", |p| !matches!(p, Packet::Connect(c) if c.protocol == Protocol::V3_1)), 1..20),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..30),
    ) {
        let mut stream = BytesMut::new();
        for p in &packets {
            p.encode(&mut stream).unwrap();
        }
        let stream = stream.freeze();
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.push(0);
        points.push(stream.len());
        points.sort_unstable();
        points.dedup();

        let mut decoder = Decoder::new();
        let mut buf = BytesMut::new();
        let mut decoded = Vec::new();
        for pair in points.windows(2) {
            buf.extend_from_slice(&stream[pair[0]..pair[1]]);
            decoded.extend(drain(&mut decoder, &mut buf).unwrap());
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(decoded, packets);
    }

    /// The borrowed decoder agrees with the owned one on any input: the same
    /// packets, the same lengths, the same errors.
    #[test]
    fn borrowed_decode_agrees_with_owned(
        packets in prop::collection::vec(packet().prop_filter("3.1.1 only", |p| !matches!(p, Packet::Connect(c) if c.protocol == Protocol::V3_1)), 0..6),
        noise in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut stream = BytesMut::new();
        for p in &packets {
            p.encode(&mut stream).unwrap();
        }
        stream.extend_from_slice(&noise);
        let bytes = stream.to_vec();
        let decoder = Decoder::new();
        let mut owned = Decoder::new();
        let mut offset = 0;
        for _ in 0..=packets.len() + noise.len() {
            let borrowed = decoder.decode_ref(&bytes[offset..]);
            let before = stream.len();
            let expected = owned.decode(&mut stream);
            match (borrowed, expected) {
                (Ok(Some((packet_ref, len))), Ok(Some(packet))) => {
                    prop_assert_eq!(len, before - stream.len());
                    let as_owned = match packet_ref {
                        PacketRef::Publish(p) => Packet::Publish(p.to_publish()),
                        PacketRef::Other(p) => p,
                    };
                    prop_assert_eq!(as_owned, packet);
                    offset += len;
                }
                (Ok(None), Ok(None)) => break,
                (Err(a), Err(b)) => {
                    prop_assert_eq!(a, b);
                    break;
                }
                (a, b) => prop_assert!(false, "borrowed {:?} but owned {:?}", a, b),
            }
        }
    }
}
