//! MQTT-SN 1.2 codec benchmarks: `midge-sn-codec` side by side with the peer
//! crate `mqtt-sn` (0.2, which reads and writes through the `byte` crate's
//! traits).
//!
//! Cases: PUBLISH (short topic name, QoS 1, 32-octet payload), REGISTER and
//! CONNECT. One criterion group per direction and case, named
//! `sn_<decode|encode>_<case>`, with one function per implementation
//! (`midge`, `mqtt-sn`).
//!
//! Fairness rules, checked at setup (outside any timed loop):
//! - the input datagram is produced once by midge; the peer must decode it to
//!   the same field values and re-encode it to the very same octets, or the
//!   benchmark refuses to run;
//! - decode: midge decodes from a `Bytes` (a reference-count clone per
//!   iteration, as a receive loop would hand it over), the peer from a `&[u8]`;
//!   decoded messages are dropped inside the timing;
//! - encode: both write into the same 128-octet stack buffer; the peer's
//!   writer takes its message by value, so each iteration gets a clone made
//!   outside the timing (`iter_batched`), while midge encodes from a reference.
//!
//! The peer keeps payloads and names in fixed-capacity UTF-8 strings, so the
//! payload here is ASCII. Nothing here is a test: no timing is asserted.

use std::hint::black_box;

use byte::BytesExt;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use midge_sn_codec::{
    decode, ClientId, Connect, Message, Publish, PublishQoS, Register, Topic, TopicId, TopicName,
};
use mqtt_sn as peer;

const BUF: usize = 128;

fn midge_messages() -> Vec<(&'static str, Message)> {
    let payload: String = (0..32).map(|i| char::from(b'a' + (i % 26))).collect();
    vec![
        (
            "publish",
            Publish {
                dup: false,
                qos: PublishQoS::AtLeastOnce,
                retain: false,
                topic: Topic::Short(*b"t1"),
                msg_id: 0x1234,
                data: Bytes::from(payload),
            }
            .into(),
        ),
        (
            "register",
            Register {
                topic_id: TopicId::NONE,
                msg_id: 0x0007,
                topic_name: TopicName::from_static("sensors/room-1/temperature"),
            }
            .into(),
        ),
        (
            "connect",
            Connect {
                will: true,
                clean_session: true,
                duration: 60,
                client_id: ClientId::from_static("midge-bench-client-01"),
            }
            .into(),
        ),
    ]
}

/// Decodes with the peer and checks it saw the same fields as midge.
fn peer_decode_checked(bytes: &[u8], midge: &Message) -> peer::Message {
    let decoded: peer::Message = bytes.read(&mut 0).expect("peer decodes the datagram");
    match (midge, &decoded) {
        (Message::Publish(m), peer::Message::Publish(p)) => {
            assert_eq!(p.flags.qos(), 1);
            assert_eq!(p.flags.topic_id_type(), 2);
            assert_eq!(p.topic_id.to_be_bytes(), *b"t1");
            assert_eq!(p.msg_id, m.msg_id);
            assert_eq!(p.data.as_bytes(), &m.data[..]);
        }
        (Message::Register(m), peer::Message::Register(p)) => {
            assert_eq!(p.topic_id, m.topic_id.0);
            assert_eq!(p.msg_id, m.msg_id);
            assert_eq!(p.topic_name.as_str(), m.topic_name.as_str());
        }
        (Message::Connect(m), peer::Message::Connect(p)) => {
            assert_eq!(p.flags.will(), m.will);
            assert_eq!(p.flags.clean_session(), m.clean_session);
            assert_eq!(p.duration, m.duration);
            assert_eq!(p.client_id.as_str(), m.client_id.as_str());
        }
        _ => panic!("peer decoded a different message type: {decoded:?}"),
    }
    decoded
}

fn peer_encode(msg: peer::Message, buf: &mut [u8; BUF]) -> usize {
    let mut len = 0;
    buf.write(&mut len, msg).expect("peer encodes");
    len
}

fn midge_encode(msg: &Message, buf: &mut [u8; BUF]) -> usize {
    let mut out = &mut buf[..];
    msg.encode(&mut out).expect("midge encodes");
    BUF - out.len()
}

fn benches(c: &mut Criterion) {
    for (case, msg) in midge_messages() {
        let mut scratch = [0_u8; BUF];
        let len = midge_encode(&msg, &mut scratch);
        let datagram = Bytes::copy_from_slice(&scratch[..len]);
        assert_eq!(
            decode(&datagram).expect("midge decodes its own output"),
            msg
        );

        let peer_msg = peer_decode_checked(&datagram, &msg);
        let mut peer_buf = [0_u8; BUF];
        let peer_len = peer_encode(peer_msg.clone(), &mut peer_buf);
        assert_eq!(
            &peer_buf[..peer_len],
            &datagram[..],
            "peer re-encodes to the same octets"
        );

        let mut group = c.benchmark_group(format!("sn_decode_{case}"));
        group.bench_function("midge", |b| {
            b.iter(|| decode(black_box(&datagram)));
        });
        let raw: Vec<u8> = datagram.to_vec();
        group.bench_function("mqtt-sn", |b| {
            b.iter(|| black_box(&raw[..]).read::<peer::Message>(&mut 0));
        });
        group.finish();

        let mut group = c.benchmark_group(format!("sn_encode_{case}"));
        group.bench_function("midge", |b| {
            let mut buf = [0_u8; BUF];
            b.iter(|| midge_encode(black_box(&msg), &mut buf));
        });
        group.bench_function("mqtt-sn", |b| {
            let mut buf = [0_u8; BUF];
            b.iter_batched(
                || peer_msg.clone(),
                |m| peer_encode(m, &mut buf),
                BatchSize::SmallInput,
            );
        });
        group.finish();
    }
}

criterion_group!(sn_codec, benches);
criterion_main!(sn_codec);
