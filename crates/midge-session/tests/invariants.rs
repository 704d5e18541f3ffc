//! Property tests: the client against a model server under random
//! interleavings of commands, server answers (delayed, duplicated, lost with
//! the connection), reconnects and clock jumps.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::{Bytes, BytesMut};
use midge_codec::{
    ConnAck, ConnectReturnCode, Decoder, Packet, PacketId, PubAck, PubComp, PubRec, PubRel,
    Publish, QoS, QosPid, SubAck, SubscribeReturnCode, UnsubAck,
};
use midge_session::{Client, ClientConfig, DeliveryId, Event};
use midge_time::{Duration, Instant};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Publish(u8, bool),
    Subscribe,
    Unsubscribe,
    /// The server answers up to n of its pending replies.
    ServerReply(u8),
    /// The server repeats an answer it already gave.
    ServerDuplicate(u8),
    /// The server publishes a message to the client.
    ServerPublish(u8),
    /// The transport breaks; everything in transit is lost.
    Close,
    /// The server loses its session state before the next reconnect.
    ServerForgets,
    Reconnect,
    Disconnect,
    Ack(u8),
    /// Time passes (milliseconds).
    Advance(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, any::<bool>()).prop_map(|(q, r)| Op::Publish(q, r)),
        1 => Just(Op::Subscribe),
        1 => Just(Op::Unsubscribe),
        6 => (1u8..6).prop_map(Op::ServerReply),
        1 => any::<u8>().prop_map(Op::ServerDuplicate),
        2 => (0u8..3).prop_map(Op::ServerPublish),
        1 => Just(Op::Close),
        1 => Just(Op::ServerForgets),
        2 => Just(Op::Reconnect),
        1 => Just(Op::Disconnect),
        1 => any::<u8>().prop_map(Op::Ack),
        2 => prop_oneof![0u32..2_000, 0u32..200_000].prop_map(Op::Advance),
    ]
}

fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

/// What the client has in use, as seen on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    Qos1,
    Qos2,
    /// PUBREC delivered: the client must never send this PUBLISH again.
    Qos2Released,
    Subscribe(usize),
    Unsubscribe,
}

/// A server message being sent to the client.
#[derive(Debug, Clone)]
struct ServerMsg {
    msg: u64,
    qos: QoS,
    /// PUBREC seen: now releasing.
    released: bool,
}

struct World {
    client: Client,
    persistent: bool,
    manual: bool,
    now: Instant,
    connected: bool,
    /// DISCONNECT was written: nothing more may come until `connect`.
    closed_by_client: bool,
    server_forgets: bool,
    /// Client packet ids in use (from the wire's point of view).
    in_use: BTreeMap<u16, Use>,
    /// Server replies waiting to be sent to the client.
    replies: VecDeque<Packet>,
    /// Every reply ever sent, for duplicates.
    history: Vec<Packet>,
    /// Server session: messages to the client awaiting PUBACK/PUBREC/PUBCOMP.
    server_out: BTreeMap<u16, ServerMsg>,
    server_next_pid: u16,
    next_msg: u64,
    /// Inbound: times the client reported each message.
    received: BTreeMap<u64, u32>,
    /// Messages whose exactly-once promise still stands (QoS 2, the server never forgot).
    qos2_sent: BTreeSet<u64>,
    qos1_sent: BTreeSet<u64>,
    /// Outbound: every delivery id and its terminal events.
    deliveries: BTreeMap<DeliveryId, (QoS, u32)>,
    tokens: Vec<midge_session::AckToken>,
    decoder: Decoder,
}

impl World {
    fn new(persistent: bool, manual: bool, window: u16) -> Self {
        let config = ClientConfig::new("prop")
            .with_clean_session(!persistent)
            .with_keep_alive(30)
            .with_inflight_window(window)
            .with_max_queued(8)
            .with_manual_acks(manual);
        Self {
            client: Client::new(config).unwrap(),
            persistent,
            manual,
            now: Instant::from_secs(1),
            connected: false,
            closed_by_client: false,
            server_forgets: false,
            in_use: BTreeMap::new(),
            replies: VecDeque::new(),
            history: Vec::new(),
            server_out: BTreeMap::new(),
            server_next_pid: 1,
            next_msg: 0,
            received: BTreeMap::new(),
            qos2_sent: BTreeSet::new(),
            qos1_sent: BTreeSet::new(),
            deliveries: BTreeMap::new(),
            tokens: Vec::new(),
            decoder: Decoder::new(),
        }
    }

    /// Drains the client: transmit, events; checks the invariants on the way.
    fn drain(&mut self) {
        let mut buf = BytesMut::new();
        let count = self.client.poll_transmit(self.now, &mut buf);
        let mut packets = Vec::new();
        while let Some(p) = self
            .decoder
            .decode(&mut buf)
            .expect("the client only writes valid packets")
        {
            packets.push(p);
        }
        assert!(buf.is_empty());
        assert_eq!(count, packets.len());
        if !packets.is_empty() {
            assert!(!self.closed_by_client, "wrote {packets:?} after DISCONNECT");
        }
        let n = packets.len();
        for (i, packet) in packets.into_iter().enumerate() {
            if packet == Packet::Disconnect {
                assert_eq!(i + 1, n, "DISCONNECT must be the last packet");
                self.closed_by_client = true;
                self.connected = false;
            }
            if self.connected {
                self.server_receive(packet);
            }
        }
        while let Some(event) = self.client.poll_event() {
            self.event(event);
        }
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Delivered { id } | Event::Dropped { id } => {
                let entry = self.deliveries.get_mut(&id).expect("known delivery id");
                entry.1 += 1;
                assert_eq!(entry.1, 1, "delivery {id:?} finished twice");
                if let Event::Dropped { .. } = event {
                    assert!(
                        !self.persistent || entry.0 == QoS::AtMostOnce,
                        "persistent sessions never drop QoS 1/2"
                    );
                }
            }
            Event::Message { publish, ack } => {
                let msg = u64::from_be_bytes(publish.payload[..8].try_into().unwrap());
                *self.received.entry(msg).or_default() += 1;
                if let Some(t) = ack {
                    self.tokens.push(t);
                }
            }
            Event::Disconnected { .. } => {
                self.connected = false;
                if !self.persistent {
                    // Clean session: the client forgot its flights.
                    self.in_use
                        .retain(|_, u| matches!(u, Use::Subscribe(_) | Use::Unsubscribe));
                }
            }
            _ => {}
        }
    }

    /// The model server receives one client packet.
    fn server_receive(&mut self, packet: Packet) {
        match packet {
            Packet::Publish(p) => {
                assert!(!(p.dup && p.qos() == QoS::AtMostOnce));
                match p.qos_pid {
                    QosPid::AtMostOnce => {}
                    QosPid::AtLeastOnce(id) | QosPid::ExactlyOnce(id) => {
                        let kind = if p.qos() == QoS::AtLeastOnce {
                            Use::Qos1
                        } else {
                            Use::Qos2
                        };
                        match self.in_use.get(&id.get()) {
                            None => {
                                assert!(!p.dup, "DUP on a first send of {id}");
                                self.in_use.insert(id.get(), kind);
                            }
                            Some(k) => {
                                assert!(p.dup, "id {id} reused while in flight");
                                assert_eq!(*k, kind);
                            }
                        }
                        self.replies.push_back(if kind == Use::Qos1 {
                            Packet::PubAck(PubAck::new(id))
                        } else {
                            Packet::PubRec(PubRec::new(id))
                        });
                    }
                }
            }
            Packet::PubRel(r) => {
                assert_eq!(
                    self.in_use.get(&r.packet_id.get()),
                    Some(&Use::Qos2Released)
                );
                self.replies
                    .push_back(Packet::PubComp(PubComp::new(r.packet_id)));
            }
            Packet::Subscribe(s) => {
                let id = s.packet_id.get();
                let expected = Use::Subscribe(s.filters.len());
                assert!(self.in_use.get(&id).is_none_or(|u| *u == expected));
                self.in_use.insert(id, expected);
                let codes = s
                    .filters
                    .iter()
                    .map(|f| SubscribeReturnCode::Success(f.qos))
                    .collect();
                self.replies
                    .push_back(Packet::SubAck(SubAck::new(s.packet_id, codes)));
            }
            Packet::Unsubscribe(u) => {
                let id = u.packet_id.get();
                assert!(self.in_use.get(&id).is_none_or(|k| *k == Use::Unsubscribe));
                self.in_use.insert(id, Use::Unsubscribe);
                self.replies
                    .push_back(Packet::UnsubAck(UnsubAck::new(u.packet_id)));
            }
            Packet::PingReq => self.replies.push_back(Packet::PingResp),
            Packet::PubAck(a) => {
                if let Some(m) = self.server_out.get(&a.packet_id.get()) {
                    if m.qos == QoS::AtLeastOnce {
                        self.server_out.remove(&a.packet_id.get());
                    }
                }
            }
            Packet::PubRec(r) => {
                if let Some(m) = self.server_out.get_mut(&r.packet_id.get()) {
                    if m.qos == QoS::ExactlyOnce {
                        m.released = true;
                        self.replies
                            .push_back(Packet::PubRel(PubRel::new(r.packet_id)));
                    }
                }
            }
            Packet::PubComp(c) => {
                if self
                    .server_out
                    .get(&c.packet_id.get())
                    .is_some_and(|m| m.released)
                {
                    self.server_out.remove(&c.packet_id.get());
                }
            }
            Packet::Connect(_) | Packet::Disconnect => {}
            other => panic!("client sent {other:?}"),
        }
    }

    /// Sends one server packet to the client; keeps the model's view of the
    /// client's ids in step with what the client frees.
    fn send_to_client(&mut self, packet: Packet) {
        if !self.connected {
            return;
        }
        match &packet {
            Packet::PubAck(a) if self.in_use.get(&a.packet_id.get()) == Some(&Use::Qos1) => {
                self.in_use.remove(&a.packet_id.get());
            }
            Packet::PubRec(r) if self.in_use.get(&r.packet_id.get()) == Some(&Use::Qos2) => {
                self.in_use.insert(r.packet_id.get(), Use::Qos2Released);
            }
            Packet::PubComp(c)
                if self.in_use.get(&c.packet_id.get()) == Some(&Use::Qos2Released) =>
            {
                self.in_use.remove(&c.packet_id.get());
            }
            Packet::SubAck(s) => {
                if let Some(Use::Subscribe(n)) = self.in_use.get(&s.packet_id.get()) {
                    if *n == s.return_codes.len() {
                        self.in_use.remove(&s.packet_id.get());
                    }
                }
            }
            Packet::UnsubAck(u)
                if self.in_use.get(&u.packet_id.get()) == Some(&Use::Unsubscribe) =>
            {
                self.in_use.remove(&u.packet_id.get());
            }
            _ => {}
        }
        let mut buf = BytesMut::new();
        packet.encode(&mut buf).unwrap();
        self.history.push(packet);
        self.client
            .handle_read(self.now, &buf)
            .expect("the model server follows the protocol");
    }

    fn server_publish(&mut self, qos: QoS) {
        if !self.connected {
            return;
        }
        let msg = self.next_msg;
        self.next_msg += 1;
        let mut payload = msg.to_be_bytes().to_vec();
        payload.extend_from_slice(b"payload");
        let qos_pid = match qos {
            QoS::AtMostOnce => QosPid::AtMostOnce,
            _ => {
                let mut id = self.server_next_pid;
                while self.server_out.contains_key(&id) {
                    id = id.checked_add(1).unwrap_or(1);
                }
                self.server_next_pid = id.checked_add(1).unwrap_or(1);
                self.server_out.insert(
                    id,
                    ServerMsg {
                        msg,
                        qos,
                        released: false,
                    },
                );
                if qos == QoS::AtLeastOnce {
                    self.qos1_sent.insert(msg);
                    QosPid::AtLeastOnce(pid(id))
                } else {
                    self.qos2_sent.insert(msg);
                    QosPid::ExactlyOnce(pid(id))
                }
            }
        };
        let publish = Publish::new(
            "to/client".try_into().unwrap(),
            qos_pid,
            Bytes::from(payload),
        );
        self.send_to_client(Packet::Publish(publish));
    }

    fn reconnect(&mut self) {
        if self.client.connect(self.now).is_err() {
            return;
        }
        self.closed_by_client = false;
        self.connected = true;
        self.replies.clear();
        self.decoder = Decoder::new();
        let session_present = self.persistent && !self.server_forgets;
        if !session_present {
            // A fresh server session: its outbound messages are gone, and so
            // is the exactly-once promise for them.
            for m in self.server_out.values() {
                self.qos1_sent.remove(&m.msg);
            }
            self.server_out.clear();
        }
        self.server_forgets = false;
        self.drain(); // CONNECT
        self.send_to_client(Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::Accepted,
            session_present,
        )));
        // The server resends its own unacknowledged messages.
        let resend: Vec<(u16, ServerMsg)> = self
            .server_out
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        for (id, m) in resend {
            let packet = if m.released {
                Packet::PubRel(PubRel::new(pid(id)))
            } else {
                let mut payload = m.msg.to_be_bytes().to_vec();
                payload.extend_from_slice(b"payload");
                let qos_pid = if m.qos == QoS::AtLeastOnce {
                    QosPid::AtLeastOnce(pid(id))
                } else {
                    QosPid::ExactlyOnce(pid(id))
                };
                let mut p = Publish::new(
                    "to/client".try_into().unwrap(),
                    qos_pid,
                    Bytes::from(payload),
                );
                p.dup = true;
                Packet::Publish(p)
            };
            self.send_to_client(packet);
        }
    }

    fn close(&mut self) {
        self.client.handle_transport_closed(self.now);
        self.connected = false;
        self.replies.clear();
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Publish(q, retain) => {
                let qos = QoS::from_u8(q).unwrap();
                if let Ok(id) = self
                    .client
                    .publish(self.now, "from/client", &b"m"[..], qos, retain)
                {
                    assert!(self.deliveries.insert(id, (qos, 0)).is_none());
                }
            }
            Op::Subscribe => {
                let _ = self.client.subscribe(
                    self.now,
                    &[("a/+", QoS::AtLeastOnce), ("b/#", QoS::ExactlyOnce)],
                );
            }
            Op::Unsubscribe => {
                let _ = self.client.unsubscribe(self.now, &["a/+"]);
            }
            Op::ServerReply(n) => {
                for _ in 0..n {
                    if let Some(p) = self.replies.pop_front() {
                        self.send_to_client(p);
                    }
                }
            }
            Op::ServerDuplicate(i) => {
                if !self.history.is_empty() {
                    let p = self.history[usize::from(i) % self.history.len()].clone();
                    // A duplicate CONNACK would be a real violation; skip it.
                    // Duplicate PUBLISH/PUBREL are only repeated while the
                    // server still holds that message.
                    let keep = match &p {
                        // A repeated CONNACK is a real violation; a repeated
                        // SUBACK may meet a request reusing the id with another
                        // filter count, also a violation. Not sent.
                        Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) => false,
                        Packet::Publish(pb) => pb.packet_id().is_some_and(|id| {
                            self.server_out.get(&id.get()).is_some_and(|m| {
                                !m.released && pb.payload[..8] == m.msg.to_be_bytes()
                            })
                        }),
                        Packet::PubRel(r) => self
                            .server_out
                            .get(&r.packet_id.get())
                            .is_some_and(|m| m.released),
                        _ => true,
                    };
                    if keep {
                        let p = match p {
                            Packet::Publish(mut pb) => {
                                pb.dup = pb.qos() != QoS::AtMostOnce;
                                Packet::Publish(pb)
                            }
                            other => other,
                        };
                        self.send_to_client(p);
                    }
                }
            }
            Op::ServerPublish(q) => self.server_publish(QoS::from_u8(q).unwrap()),
            Op::Close => self.close(),
            Op::ServerForgets => self.server_forgets = true,
            Op::Reconnect => {
                if !self.connected {
                    self.close();
                    self.reconnect();
                }
            }
            Op::Disconnect => self.client.disconnect(self.now),
            Op::Ack(i) => {
                if !self.tokens.is_empty() {
                    let t = self.tokens[usize::from(i) % self.tokens.len()];
                    self.client.ack(self.now, t);
                }
            }
            Op::Advance(ms) => {
                self.now += Duration::from_millis(u64::from(ms));
                self.client.handle_timeout(self.now);
                self.drain();
                // After a timeout call the next deadline lies ahead.
                if let Some(t) = self.client.poll_timeout() {
                    assert!(t > self.now, "poll_timeout {t:?} not after {:?}", self.now);
                }
            }
        }
        self.drain();
        if self.client.state() == midge_session::ConnectionState::Connected {
            assert!(
                self.client.poll_timeout().is_some(),
                "keep alive runs a timer"
            );
        }
    }

    /// Heals the world: reconnect, ack everything, until nothing moves.
    fn settle(&mut self) {
        self.server_forgets = false;
        for t in std::mem::take(&mut self.tokens) {
            self.client.ack(self.now, t);
        }
        self.drain();
        if !self.connected {
            self.close();
            self.reconnect();
            self.drain();
        }
        for _ in 0..10_000 {
            for t in std::mem::take(&mut self.tokens) {
                self.client.ack(self.now, t);
            }
            self.drain();
            match self.replies.pop_front() {
                Some(p) => self.send_to_client(p),
                None => {
                    if self.client.queued_len() == 0
                        && self.client.inflight_len() == 0
                        && self.client.pending_requests() == 0
                        && self.server_out.is_empty()
                        && self.tokens.is_empty()
                    {
                        return;
                    }
                    // Something waits on a lost packet: reconnect.
                    self.close();
                    self.reconnect();
                }
            }
        }
        panic!("the world did not settle");
    }
}

fn check(ops: Vec<Op>, persistent: bool, manual: bool, window: u16) {
    let mut w = World::new(persistent, manual, window);
    w.reconnect();
    w.drain();
    for op in ops {
        w.apply(op);
    }
    w.settle();
    // Every publish finished exactly once.
    for (id, (qos, done)) in &w.deliveries {
        assert_eq!(*done, 1, "{id:?} ({qos:?}) finished {done} times");
    }
    // Inbound: QoS 2 never twice; QoS 1/2 whose server session survived at least once.
    for (msg, n) in &w.received {
        if w.qos2_sent.contains(msg) {
            assert!(*n <= 1, "QoS 2 message {msg} delivered {n} times");
        }
    }
    for msg in &w.qos1_sent {
        if w.persistent {
            assert!(
                w.received.get(msg).copied().unwrap_or(0) >= 1,
                "QoS 1 message {msg} lost"
            );
        }
    }
    assert!(w.manual || w.tokens.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    // covers: MQTT-2.3.1-3, MQTT-3.3.1-1, MQTT-4.3.3-2, MQTT-4.4.0-1, MQTT-3.14.4-2
    #[test]
    fn mqtt_2_3_1_2_session_invariants_persistent(
        ops in proptest::collection::vec(op(), 0..120),
        manual in any::<bool>(),
        window in 1u16..5,
    ) {
        check(ops, true, manual, window);
    }

    // covers: MQTT-4.3.1-1, MQTT-3.14.4-2
    #[test]
    fn mqtt_2_3_1_2_session_invariants_clean(
        ops in proptest::collection::vec(op(), 0..120),
        manual in any::<bool>(),
        window in 1u16..5,
    ) {
        check(ops, false, manual, window);
    }
}

/// A connected client and the encoded bytes of a CONNACK.
fn connected_client() -> (Client, Instant) {
    let now = Instant::from_secs(5);
    let mut client = Client::new(ClientConfig::new("bytes").with_clean_session(false)).unwrap();
    client.connect(now).unwrap();
    let mut buf = BytesMut::new();
    client.poll_transmit(now, &mut buf);
    let mut connack = BytesMut::new();
    Packet::ConnAck(ConnAck::new(ConnectReturnCode::Accepted, false))
        .encode(&mut connack)
        .unwrap();
    client.handle_read(now, &connack).unwrap();
    (client, now)
}

fn drain_all(client: &mut Client, now: Instant) -> (Vec<u8>, Vec<Event>) {
    let mut buf = BytesMut::new();
    while client.poll_transmit(now, &mut buf) > 0 {}
    let events = std::iter::from_fn(|| client.poll_event()).collect();
    (buf.to_vec(), events)
}

fn server_stream() -> impl Strategy<Value = Vec<u8>> {
    let packet = prop_oneof![
        (0u8..3, 1u16..6, any::<bool>()).prop_map(|(q, id, dup)| {
            let qos_pid = match q {
                0 => QosPid::AtMostOnce,
                1 => QosPid::AtLeastOnce(pid(id)),
                _ => QosPid::ExactlyOnce(pid(id)),
            };
            let mut p = Publish::new("s/t".try_into().unwrap(), qos_pid, &b"xyz"[..]);
            p.dup = dup && q > 0;
            Packet::Publish(p)
        }),
        (1u16..6).prop_map(|id| Packet::PubRel(PubRel::new(pid(id)))),
        (1u16..6).prop_map(|id| Packet::PubAck(PubAck::new(pid(id)))),
        (1u16..6).prop_map(|id| Packet::PubComp(PubComp::new(pid(id)))),
        Just(Packet::PingResp),
    ];
    proptest::collection::vec(packet, 0..20).prop_map(|packets| {
        let mut buf = BytesMut::new();
        for p in packets {
            p.encode(&mut buf).unwrap();
        }
        buf.to_vec()
    })
}

proptest! {
    /// Any split of the server's byte stream yields the same output.
    #[test]
    fn chunking_does_not_change_behaviour(
        stream in server_stream(),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        let (mut whole, now) = connected_client();
        whole.handle_read(now, &stream).unwrap();
        let expected = drain_all(&mut whole, now);

        let (mut split, now) = connected_client();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
        cuts.sort_unstable();
        let mut start = 0;
        for cut in cuts.into_iter().chain([stream.len()]) {
            split.handle_read(now, &stream[start..cut]).unwrap();
            start = cut;
        }
        prop_assert_eq!(drain_all(&mut split, now), expected);
    }

    /// Arbitrary bytes and clock jumps never panic the machine, and after an
    /// error it writes nothing more.
    #[test]
    fn arbitrary_bytes_never_panic(
        chunks in proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..64), 0u64..100_000_000),
            0..16,
        ),
    ) {
        let (mut client, mut now) = connected_client();
        client.publish(now, "a", &b"x"[..], QoS::ExactlyOnce, false).unwrap();
        drain_all(&mut client, now);
        for (bytes, micros) in chunks {
            now += Duration::from_micros(micros);
            client.handle_timeout(now);
            let failed = client.handle_read(now, &bytes).is_err();
            let (out, events) = drain_all(&mut client, now);
            if failed {
                prop_assert!(out.is_empty());
                let disconnected = events
                    .iter()
                    .any(|e| matches!(e, Event::Disconnected { .. }));
                prop_assert!(disconnected);
                prop_assert_eq!(client.poll_timeout(), None);
            }
        }
    }
}
