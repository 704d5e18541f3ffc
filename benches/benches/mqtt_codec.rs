//! MQTT 3.1.1 codec benchmarks: `midge-codec` side by side with the peer
//! crates `mqttbytes` (0.6, `v4`) and `mqttrs` (0.4).
//!
//! Every case is one criterion group per direction (`decode_<case>`,
//! `encode_<case>`) with one function per implementation (`midge`,
//! `mqttbytes`, `mqttrs`); `cargo xtask bench --report-only` turns the
//! medians into a ratio table.
//!
//! Fairness rules, checked at setup (outside any timed loop):
//! - the input bytes are produced once by midge; each peer must decode them
//!   to a packet with the same fields, and re-encode them to the very same
//!   bytes, or the benchmark refuses to run;
//! - decode: every iteration gets its own fresh copy of the input (a
//!   `BytesMut` for midge and mqttbytes, a `Vec<u8>` for mqttrs, which decodes
//!   from a slice), made by `iter_batched_ref` outside the timing; the
//!   decoded packets are dropped inside the timing, since freeing what a
//!   decoder allocated is part of its cost;
//! - encode: each library encodes its own pre-built packet type into a
//!   buffer reused across iterations (`clear()`ed for `BytesMut`; mqttrs
//!   writes into a `&mut [u8]` and needs no clearing).
//!
//! Nothing here is a test: no timing is asserted.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use midge_codec::{
    Connect, Decoder, Encode, Filter, LastWill, MqttString, Packet, PacketId, PubAck, PubComp,
    PubRec, PubRel, Publish, QoS, QosPid, Subscribe, SubscribeFilter, Topic, Unsubscribe,
};
use mqttbytes::v4 as mb;

/// Largest packet the peers' decoders are told to accept (mqttbytes needs a limit).
const MAX_PACKET: usize = 1 << 20;

/// Number of packets in the mixed stream.
const MIXED_PACKETS: usize = 10_000;

/// Seed of the mixed stream's generator: the stream is the same on every run.
const MIXED_SEED: u64 = 0x6d69_6467_6531_3131;

// ---------------------------------------------------------------------------
// Inputs, built with midge.

fn s(text: &str) -> MqttString {
    MqttString::new(text).expect("benchmark strings are valid MQTT strings")
}

fn t(text: &str) -> Topic {
    Topic::new(text).expect("benchmark topics are valid topic names")
}

fn f(text: &str) -> Filter {
    Filter::new(text).expect("benchmark filters are valid topic filters")
}

fn pid(value: u16) -> PacketId {
    PacketId::new(value).expect("benchmark packet ids are non-zero")
}

/// A payload of `len` bytes with a recognisable pattern.
fn payload(len: usize, salt: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt))
        .collect::<Vec<u8>>()
        .into()
}

/// A CONNECT as a real client sends it: will, user name and password.
fn connect_packet() -> Connect {
    let mut connect = Connect::new(s("midge-bench-client-0001"), 60);
    connect.will = Some(LastWill {
        topic: t("clients/midge-bench-client-0001/status"),
        message: Bytes::from_static(b"offline"),
        qos: QoS::AtLeastOnce,
        retain: true,
    });
    connect.username = Some(s("bench-user"));
    connect.password = Some(Bytes::from_static(b"bench-password"));
    connect
}

fn publish_packet(qos_pid: QosPid, len: usize) -> Publish {
    Publish::new(
        t("sensors/building-7/floor-3/room-12/temperature"),
        qos_pid,
        payload(len, 7),
    )
}

fn subscribe_packet() -> Subscribe {
    let filters = [
        ("sensors/building-7/+/+/temperature", QoS::AtLeastOnce),
        ("sensors/building-7/floor-3/#", QoS::AtMostOnce),
        ("alerts/#", QoS::ExactlyOnce),
        ("clients/+/status", QoS::AtLeastOnce),
        ("commands/midge-bench-client-0001/set", QoS::AtLeastOnce),
        ("commands/midge-bench-client-0001/get", QoS::AtMostOnce),
        ("config/midge-bench-client-0001", QoS::ExactlyOnce),
        ("firmware/+/available", QoS::AtLeastOnce),
        ("time/utc", QoS::AtMostOnce),
        ("+/building-7/+/room-12/+", QoS::AtMostOnce),
    ]
    .into_iter()
    .map(|(filter, qos)| SubscribeFilter::new(f(filter), qos))
    .collect();
    Subscribe::new(pid(17), filters)
}

/// SplitMix64: a tiny seeded generator, so the mixed stream needs no extra crate.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform-enough value in `lo..=hi` for a benchmark mix.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// The mixed stream: 70 % PUBLISH (QoS 0 35 %, QoS 1 30 %, QoS 2 5 %) with
/// 16–256 byte payloads on 64 topics, 10 % PUBACK, 3 % each PUBREC, PUBREL,
/// PUBCOMP, 5 % PINGREQ, 3 % SUBSCRIBE (1–3 filters), 3 % UNSUBSCRIBE.
fn mixed_packets() -> Vec<Packet> {
    let kinds = ["temperature", "humidity", "pressure", "co2"];
    let mut rng = SplitMix(MIXED_SEED);
    let mut next_pid: u16 = 0;
    let mut new_pid = move || {
        next_pid = next_pid.checked_add(1).unwrap_or(1);
        pid(next_pid)
    };
    (0..MIXED_PACKETS)
        .map(|_| {
            let roll = rng.range(0, 99);
            let topic = |rng: &mut SplitMix| {
                let kind = kinds[rng.range(0, 3) as usize];
                t(&format!(
                    "site/{}/device-{}/{kind}",
                    rng.range(0, 3),
                    rng.range(0, 3)
                ))
            };
            match roll {
                0..=69 => {
                    let qos_pid = match roll {
                        0..=34 => QosPid::AtMostOnce,
                        35..=64 => QosPid::AtLeastOnce(new_pid()),
                        _ => QosPid::ExactlyOnce(new_pid()),
                    };
                    let topic = topic(&mut rng);
                    let len = rng.range(16, 256) as usize;
                    Packet::Publish(Publish::new(topic, qos_pid, payload(len, roll as u8)))
                }
                70..=79 => Packet::PubAck(PubAck::new(new_pid())),
                80..=82 => Packet::PubRec(PubRec::new(new_pid())),
                83..=85 => Packet::PubRel(PubRel::new(new_pid())),
                86..=88 => Packet::PubComp(PubComp::new(new_pid())),
                89..=93 => Packet::PingReq,
                94..=96 => {
                    let filters = (0..rng.range(1, 3))
                        .map(|i| {
                            let filter =
                                format!("site/{}/+/{}", rng.range(0, 3), kinds[i as usize]);
                            SubscribeFilter::new(f(&filter), QoS::AtLeastOnce)
                        })
                        .collect();
                    Packet::Subscribe(Subscribe::new(new_pid(), filters))
                }
                _ => {
                    let filters = (0..rng.range(1, 3))
                        .map(|_| f(&format!("site/{}/#", rng.range(0, 3))))
                        .collect();
                    Packet::Unsubscribe(Unsubscribe::new(new_pid(), filters))
                }
            }
        })
        .collect()
}

/// One benchmark case: midge's packets and the bytes they encode to.
struct Case {
    name: &'static str,
    packets: Vec<Packet>,
    bytes: Bytes,
}

impl Case {
    fn new(name: &'static str, packets: Vec<Packet>) -> Self {
        let mut buf = BytesMut::new();
        for packet in &packets {
            packet.encode(&mut buf).expect("benchmark packets encode");
        }
        Self {
            name,
            packets,
            bytes: buf.freeze(),
        }
    }

    fn throughput(&self) -> Throughput {
        Throughput::Bytes(self.bytes.len() as u64)
    }

    /// One input per iteration: a small case is batched by the many, the
    /// mixed stream (about a megabyte) by the few.
    fn batch_size(&self) -> BatchSize {
        if self.packets.len() > 1 {
            BatchSize::LargeInput
        } else {
            BatchSize::SmallInput
        }
    }
}

// ---------------------------------------------------------------------------
// Decode loops: the same shape for all three, "decode until the buffer is empty".

/// The borrowed view: PUBLISH topic and payload are slices of `buf`, and the
/// loop steps through the buffer by the length each packet reports, as a
/// caller would before advancing its own read buffer.
fn midge_ref_decode_all(buf: &[u8]) -> usize {
    let decoder = Decoder::new();
    let mut count = 0;
    let mut offset = 0;
    while let Some(rest) = buf.get(offset..) {
        if rest.is_empty() {
            break;
        }
        match decoder.decode_ref(rest) {
            Ok(Some((packet, len))) => {
                black_box(packet);
                offset += len;
                count += 1;
            }
            _ => break,
        }
    }
    count
}

fn midge_decode_all(buf: &mut BytesMut) -> usize {
    let mut decoder = Decoder::new();
    let mut count = 0;
    while !buf.is_empty() {
        match decoder.decode(buf) {
            Ok(Some(packet)) => {
                black_box(packet);
                count += 1;
            }
            _ => break,
        }
    }
    count
}

fn mqttbytes_decode_all(buf: &mut BytesMut) -> usize {
    let mut count = 0;
    while !buf.is_empty() {
        match mb::read(buf, MAX_PACKET) {
            Ok(packet) => {
                black_box(packet);
                count += 1;
            }
            Err(_) => break,
        }
    }
    count
}

/// Length of the packet at the front of `buf` (fixed header included).
///
/// `mqttrs::decode_slice` does not say how many bytes it used, so the stream
/// loop reads the remaining length itself to step to the next packet; this
/// costs mqttrs a second pass over one to four header bytes per packet.
fn frame_len(buf: &[u8]) -> Option<usize> {
    let mut len = 0usize;
    for (i, &byte) in buf.iter().skip(1).take(4).enumerate() {
        len |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(i + 2 + len);
        }
    }
    None
}

fn mqttrs_decode_all(buf: &mut Vec<u8>) -> usize {
    let mut rest = buf.as_slice();
    let mut count = 0;
    while !rest.is_empty() {
        match mqttrs::decode_slice(rest) {
            Ok(Some(packet)) => {
                black_box(packet);
                count += 1;
            }
            _ => break,
        }
        match frame_len(rest).and_then(|len| rest.get(len..)) {
            Some(next) => rest = next,
            None => break,
        }
    }
    count
}

// ---------------------------------------------------------------------------
// Encode loops for the mixed stream (single packets use each type's own encoder).

fn mqttbytes_write(packet: &mb::Packet, buf: &mut BytesMut) -> Result<usize, mqttbytes::Error> {
    match packet {
        mb::Packet::Connect(p) => p.write(buf),
        mb::Packet::ConnAck(p) => p.write(buf),
        mb::Packet::Publish(p) => p.write(buf),
        mb::Packet::PubAck(p) => p.write(buf),
        mb::Packet::PubRec(p) => p.write(buf),
        mb::Packet::PubRel(p) => p.write(buf),
        mb::Packet::PubComp(p) => p.write(buf),
        mb::Packet::Subscribe(p) => p.write(buf),
        mb::Packet::SubAck(p) => p.write(buf),
        mb::Packet::Unsubscribe(p) => p.write(buf),
        mb::Packet::UnsubAck(p) => p.write(buf),
        mb::Packet::PingReq => mb::PingReq.write(buf),
        mb::Packet::PingResp => mb::PingResp.write(buf),
        mb::Packet::Disconnect => mb::Disconnect.write(buf),
    }
}

fn midge_encode_all(packets: &[Packet], buf: &mut BytesMut) -> usize {
    buf.clear();
    for packet in packets {
        let _ = black_box(packet.encode(buf));
    }
    buf.len()
}

fn mqttbytes_encode_all(packets: &[mb::Packet], buf: &mut BytesMut) -> usize {
    buf.clear();
    for packet in packets {
        let _ = black_box(mqttbytes_write(packet, buf));
    }
    buf.len()
}

fn mqttrs_encode_all(packets: &[mqttrs::Packet<'_>], buf: &mut [u8]) -> usize {
    let mut offset = 0;
    for packet in packets {
        let Some(dst) = buf.get_mut(offset..) else {
            break;
        };
        match mqttrs::encode_slice(packet, dst) {
            Ok(written) => offset += written,
            Err(_) => break,
        }
    }
    offset
}

// ---------------------------------------------------------------------------
// Setup checks: the peers must see the same packets in the same bytes.

fn mb_qos(qos: mqttbytes::QoS) -> u8 {
    qos as u8
}

fn rs_qos(qos: mqttrs::QoS) -> u8 {
    match qos {
        mqttrs::QoS::AtMostOnce => 0,
        mqttrs::QoS::AtLeastOnce => 1,
        mqttrs::QoS::ExactlyOnce => 2,
    }
}

/// Whether mqttbytes decoded the same packet as midge, field by field.
fn same_as_mqttbytes(ours: &Packet, theirs: &mb::Packet) -> bool {
    match (ours, theirs) {
        (Packet::Connect(a), mb::Packet::Connect(b)) => {
            let will = match (&a.will, &b.last_will) {
                (None, None) => true,
                (Some(x), Some(y)) => {
                    x.topic == y.topic.as_str()
                        && x.message == y.message
                        && x.qos.as_u8() == mb_qos(y.qos)
                        && x.retain == y.retain
                }
                _ => false,
            };
            let login = match (&a.username, &a.password, &b.login) {
                (None, None, None) => true,
                (Some(user), Some(pass), Some(login)) => {
                    *user == login.username.as_str() && pass == login.password.as_bytes()
                }
                _ => false,
            };
            b.protocol == mqttbytes::Protocol::V4
                && a.keep_alive == b.keep_alive
                && a.client_id == b.client_id.as_str()
                && a.clean_session == b.clean_session
                && will
                && login
        }
        (Packet::Publish(a), mb::Packet::Publish(b)) => {
            a.dup == b.dup
                && a.qos().as_u8() == mb_qos(b.qos)
                && a.retain == b.retain
                && a.topic == b.topic.as_str()
                && a.packet_id().map_or(0, PacketId::get) == b.pkid
                && a.payload == b.payload
        }
        (Packet::PubAck(a), mb::Packet::PubAck(b)) => a.packet_id.get() == b.pkid,
        (Packet::PubRec(a), mb::Packet::PubRec(b)) => a.packet_id.get() == b.pkid,
        (Packet::PubRel(a), mb::Packet::PubRel(b)) => a.packet_id.get() == b.pkid,
        (Packet::PubComp(a), mb::Packet::PubComp(b)) => a.packet_id.get() == b.pkid,
        (Packet::Subscribe(a), mb::Packet::Subscribe(b)) => {
            a.packet_id.get() == b.pkid
                && a.filters.len() == b.filters.len()
                && a.filters
                    .iter()
                    .zip(&b.filters)
                    .all(|(x, y)| x.filter == y.path.as_str() && x.qos.as_u8() == mb_qos(y.qos))
        }
        (Packet::Unsubscribe(a), mb::Packet::Unsubscribe(b)) => {
            a.packet_id.get() == b.pkid
                && a.filters.len() == b.topics.len()
                && a.filters
                    .iter()
                    .zip(&b.topics)
                    .all(|(x, y)| *x == y.as_str())
        }
        (Packet::PingReq, mb::Packet::PingReq) => true,
        _ => false,
    }
}

/// Whether mqttrs decoded the same packet as midge, field by field.
fn same_as_mqttrs(ours: &Packet, theirs: &mqttrs::Packet<'_>) -> bool {
    use mqttrs::Packet as P;
    match (ours, theirs) {
        (Packet::Connect(a), P::Connect(b)) => {
            let will = match (&a.will, &b.last_will) {
                (None, None) => true,
                (Some(x), Some(y)) => {
                    x.topic == y.topic
                        && x.message == y.message
                        && x.qos.as_u8() == rs_qos(y.qos)
                        && x.retain == y.retain
                }
                _ => false,
            };
            b.protocol == mqttrs::Protocol::MQTT311
                && a.keep_alive == b.keep_alive
                && a.client_id == b.client_id
                && a.clean_session == b.clean_session
                && will
                && a.username.as_ref().map(MqttString::as_str) == b.username
                && a.password.as_deref() == b.password
        }
        (Packet::Publish(a), P::Publish(b)) => {
            a.dup == b.dup
                && a.qos().as_u8() == rs_qos(b.qospid.qos())
                && a.retain == b.retain
                && a.topic == b.topic_name
                && a.packet_id().map(PacketId::get) == b.qospid.pid().map(mqttrs::Pid::get)
                && a.payload == b.payload
        }
        (Packet::PubAck(a), P::Puback(b)) => a.packet_id.get() == b.get(),
        (Packet::PubRec(a), P::Pubrec(b)) => a.packet_id.get() == b.get(),
        (Packet::PubRel(a), P::Pubrel(b)) => a.packet_id.get() == b.get(),
        (Packet::PubComp(a), P::Pubcomp(b)) => a.packet_id.get() == b.get(),
        (Packet::Subscribe(a), P::Subscribe(b)) => {
            a.packet_id.get() == b.pid.get()
                && a.filters.len() == b.topics.len()
                && a.filters.iter().zip(&b.topics).all(|(x, y)| {
                    x.filter == y.topic_path.as_str() && x.qos.as_u8() == rs_qos(y.qos)
                })
        }
        (Packet::Unsubscribe(a), P::Unsubscribe(b)) => {
            a.packet_id.get() == b.pid.get()
                && a.filters.len() == b.topics.len()
                && a.filters
                    .iter()
                    .zip(&b.topics)
                    .all(|(x, y)| *x == y.as_str())
        }
        (Packet::PingReq, P::Pingreq) => true,
        _ => false,
    }
}

/// Decodes `case` with mqttbytes, checks every packet against midge's and
/// that re-encoding gives back the same bytes; returns the peer's packets.
fn mqttbytes_packets(case: &Case) -> Vec<mb::Packet> {
    let mut buf = BytesMut::from(&case.bytes[..]);
    let mut packets = Vec::with_capacity(case.packets.len());
    for ours in &case.packets {
        let theirs = mb::read(&mut buf, MAX_PACKET)
            .unwrap_or_else(|e| panic!("{}: mqttbytes cannot decode: {e:?}", case.name));
        assert!(
            same_as_mqttbytes(ours, &theirs),
            "{}: mqttbytes decoded {theirs:?}, midge {ours:?}",
            case.name
        );
        packets.push(theirs);
    }
    assert!(buf.is_empty(), "{}: mqttbytes left bytes over", case.name);
    let mut again = BytesMut::new();
    assert_eq!(mqttbytes_encode_all(&packets, &mut again), case.bytes.len());
    assert!(
        again == case.bytes,
        "{}: mqttbytes encodes different bytes",
        case.name
    );
    packets
}

/// As [`mqttbytes_packets`], for mqttrs (whose packets borrow `bytes`).
fn mqttrs_packets<'a>(case: &Case, bytes: &'a [u8]) -> Vec<mqttrs::Packet<'a>> {
    let mut rest = bytes;
    let mut packets = Vec::with_capacity(case.packets.len());
    for ours in &case.packets {
        let theirs = match mqttrs::decode_slice(rest) {
            Ok(Some(packet)) => packet,
            other => panic!("{}: mqttrs cannot decode: {other:?}", case.name),
        };
        assert!(
            same_as_mqttrs(ours, &theirs),
            "{}: mqttrs decoded {theirs:?}, midge {ours:?}",
            case.name
        );
        packets.push(theirs);
        rest = frame_len(rest)
            .and_then(|len| rest.get(len..))
            .expect("a decoded packet has a length");
    }
    assert!(rest.is_empty(), "{}: mqttrs left bytes over", case.name);
    let mut again = vec![0u8; bytes.len()];
    assert_eq!(mqttrs_encode_all(&packets, &mut again), bytes.len());
    assert!(
        again == bytes,
        "{}: mqttrs encodes different bytes",
        case.name
    );
    packets
}

/// The decode loops themselves must see every packet of the case.
fn check_decode_loops(case: &Case) {
    let n = case.packets.len();
    let mut buf = BytesMut::from(&case.bytes[..]);
    assert_eq!(midge_decode_all(&mut buf), n, "{}: midge", case.name);
    let mut buf = BytesMut::from(&case.bytes[..]);
    assert_eq!(
        mqttbytes_decode_all(&mut buf),
        n,
        "{}: mqttbytes",
        case.name
    );
    let mut vec = case.bytes.to_vec();
    assert_eq!(mqttrs_decode_all(&mut vec), n, "{}: mqttrs", case.name);
    assert_eq!(
        midge_ref_decode_all(&case.bytes),
        n,
        "{}: midge_ref",
        case.name
    );
    let mut buf = BytesMut::from(&case.bytes[..]);
    let mut decoder = Decoder::new();
    for ours in &case.packets {
        assert_eq!(decoder.decode(&mut buf).ok().flatten().as_ref(), Some(ours));
    }
}

// ---------------------------------------------------------------------------
// The benchmarks.

fn bench_decode(c: &mut Criterion, case: &Case) {
    check_decode_loops(case);
    let mut group = c.benchmark_group(format!("decode_{}", case.name));
    group.throughput(case.throughput());
    let template = BytesMut::from(&case.bytes[..]);
    let vec = case.bytes.to_vec();
    let size = case.batch_size();
    group.bench_function("midge", |b| {
        b.iter_batched_ref(|| template.clone(), midge_decode_all, size);
    });
    group.bench_function("midge_ref", |b| {
        b.iter_batched_ref(|| vec.clone(), |v| midge_ref_decode_all(v), size);
    });
    group.bench_function("mqttbytes", |b| {
        b.iter_batched_ref(|| template.clone(), mqttbytes_decode_all, size);
    });
    group.bench_function("mqttrs", |b| {
        b.iter_batched_ref(|| vec.clone(), mqttrs_decode_all, size);
    });
    group.finish();
}

/// Encode of one packet: midge and mqttbytes through the packet's own type,
/// mqttrs through its only entry point, `encode_slice(&Packet)`.
fn bench_encode_one<T: Encode>(
    c: &mut Criterion,
    case: &Case,
    ours: &T,
    theirs: impl Fn(&mb::Packet, &mut BytesMut) -> Result<usize, mqttbytes::Error>,
) {
    let mb_packets = mqttbytes_packets(case);
    let rs_bytes = case.bytes.to_vec();
    let rs_packets = mqttrs_packets(case, &rs_bytes);
    let (Some(mb_packet), Some(rs_packet)) = (mb_packets.first(), rs_packets.first()) else {
        panic!("{}: one packet expected", case.name);
    };
    let len = case.bytes.len();
    let mut check = BytesMut::new();
    assert_eq!(ours.encode(&mut check).ok(), Some(len));
    assert!(
        check == case.bytes,
        "{}: midge encodes differently",
        case.name
    );

    let mut group = c.benchmark_group(format!("encode_{}", case.name));
    group.throughput(case.throughput());
    group.bench_function("midge", |b| {
        let mut buf = BytesMut::with_capacity(len);
        b.iter(|| {
            buf.clear();
            let _ = black_box(black_box(ours).encode(&mut buf));
        });
    });
    group.bench_function("mqttbytes", |b| {
        let mut buf = BytesMut::with_capacity(len);
        b.iter(|| {
            buf.clear();
            let _ = black_box(theirs(black_box(mb_packet), &mut buf));
        });
    });
    group.bench_function("mqttrs", |b| {
        let mut buf = vec![0u8; len];
        b.iter(|| {
            let _ = black_box(mqttrs::encode_slice(black_box(rs_packet), &mut buf));
        });
    });
    group.finish();
}

fn bench_encode_all(c: &mut Criterion, case: &Case) {
    let mb_packets = mqttbytes_packets(case);
    let rs_bytes = case.bytes.to_vec();
    let rs_packets = mqttrs_packets(case, &rs_bytes);
    let len = case.bytes.len();
    let mut check = BytesMut::new();
    assert_eq!(midge_encode_all(&case.packets, &mut check), len);

    let mut group = c.benchmark_group(format!("encode_{}", case.name));
    group.throughput(case.throughput());
    group.bench_function("midge", |b| {
        let mut buf = BytesMut::with_capacity(len);
        b.iter(|| midge_encode_all(black_box(&case.packets), &mut buf));
    });
    group.bench_function("mqttbytes", |b| {
        let mut buf = BytesMut::with_capacity(len);
        b.iter(|| mqttbytes_encode_all(black_box(&mb_packets), &mut buf));
    });
    group.bench_function("mqttrs", |b| {
        let mut buf = vec![0u8; len];
        b.iter(|| mqttrs_encode_all(black_box(&rs_packets), &mut buf));
    });
    group.finish();
}

fn connect(c: &mut Criterion) {
    let packet = connect_packet();
    let case = Case::new("connect", vec![Packet::Connect(packet.clone())]);
    bench_decode(c, &case);
    bench_encode_one(c, &case, &packet, |p, buf| match p {
        mb::Packet::Connect(p) => p.write(buf),
        _ => Err(mqttbytes::Error::IncorrectPacketFormat),
    });
}

fn publish(c: &mut Criterion) {
    let cases = [
        ("publish_qos0_64b", QosPid::AtMostOnce, 64),
        ("publish_qos0_1kib", QosPid::AtMostOnce, 1024),
        ("publish_qos1_64b", QosPid::AtLeastOnce(pid(4242)), 64),
        ("publish_qos1_1kib", QosPid::AtLeastOnce(pid(4242)), 1024),
    ];
    for (name, qos_pid, len) in cases {
        let packet = publish_packet(qos_pid, len);
        let case = Case::new(name, vec![Packet::Publish(packet.clone())]);
        bench_decode(c, &case);
        bench_encode_one(c, &case, &packet, |p, buf| match p {
            mb::Packet::Publish(p) => p.write(buf),
            _ => Err(mqttbytes::Error::IncorrectPacketFormat),
        });
    }
}

fn subscribe(c: &mut Criterion) {
    let packet = subscribe_packet();
    let case = Case::new("subscribe_10", vec![Packet::Subscribe(packet.clone())]);
    bench_decode(c, &case);
    bench_encode_one(c, &case, &packet, |p, buf| match p {
        mb::Packet::Subscribe(p) => p.write(buf),
        _ => Err(mqttbytes::Error::IncorrectPacketFormat),
    });
}

fn mixed(c: &mut Criterion) {
    let case = Case::new("mixed_10k", mixed_packets());
    bench_decode(c, &case);
    bench_encode_all(c, &case);
}

criterion_group!(benches, connect, publish, subscribe, mixed);
criterion_main!(benches);
