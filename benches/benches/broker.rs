//! Broker core fan-out benchmark: one client publishes, and the message goes
//! through `ServerSession` → `Router` → `ServerSession` to 1, 10 and 1000
//! subscribers, all in memory (no sockets, no threads, no clock).
//!
//! Groups `broker_fanout_qos0` and `broker_fanout_qos1`, one function `midge`
//! per subscriber count; the throughput is the number of deliveries per
//! publish, so criterion's `thrpt` reads as deliveries per second. There is
//! no peer comparison here.
//!
//! One timed iteration is the whole round trip of one publish:
//! - the publisher's session reads one pre-encoded PUBLISH frame (QoS 1
//!   frames carry a rotating packet id, patched into the frame in place);
//! - its `Event::Publish` goes to the router;
//! - every `Action::Deliver` is applied to its subscriber session, whose
//!   bytes are taken with `poll_transmit` into a reused buffer (the
//!   "network"), then cleared;
//! - at QoS 1, each subscriber reads the PUBACK for the packet id found in
//!   its transmitted PUBLISH, so that its inflight window never fills; the
//!   publisher's own PUBACK is drained too.
//!
//! Setup, outside any timing, checks that the system is in a steady state:
//! after 1000 publishes every queue and inflight window is empty and every
//! subscriber received exactly one message per publish. The same run counts
//! heap allocations with a counting global allocator and prints them per
//! publish and per delivery.
//!
//! Nothing here is a test: no timing is asserted.
// The counting allocator needs `unsafe impl GlobalAlloc`; it only forwards.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use midge_broker::router::{Action, AllowAll, ConnId, ConnectRequest, MemoryStore, Router};
use midge_broker::{DeliverOutcome, Event, Instant, RouterConfig, ServerConfig, ServerSession};
use midge_codec::{
    Connect, Decoder, Encode, Filter, MqttString, Packet, PacketId, PubAck, Publish, QoS, QosPid,
    Subscribe, SubscribeFilter, Topic,
};

// ---------------------------------------------------------------------------
// Allocation counting.

/// Counts every allocation (`alloc`, `alloc_zeroed`, `realloc`) and forwards
/// all calls to the system allocator.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards its arguments unchanged to `System`, which
// upholds the `GlobalAlloc` contract; the only addition is a relaxed atomic
// increment, which neither allocates nor touches the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours, passed through.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours, passed through.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours, passed through.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours, passed through.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.load(Ordering::Relaxed)
}

// ---------------------------------------------------------------------------
// Inputs.

/// The topic every publish goes to, and every subscriber's filter.
const TOPIC: &str = "sensors/building-7/floor-3/room-12/temperature";

/// Payload size of the published message, in bytes.
const PAYLOAD_LEN: usize = 64;

/// Publishes run at setup to reach, then check, the steady state.
const STEADY_PUBLISHES: usize = 1000;

/// Subscriber counts.
const FANOUT: [usize; 3] = [1, 10, 1000];

fn pid(value: u16) -> PacketId {
    PacketId::new(value).expect("benchmark packet ids are non-zero")
}

fn encode(packet: &impl Encode) -> Vec<u8> {
    let mut buf = BytesMut::new();
    packet.encode(&mut buf).expect("benchmark packets encode");
    buf.to_vec()
}

/// The packet id of the QoS 1 PUBLISH at the start of `wire`, read the way a
/// client's framing would find it: fixed header, variable-length remaining
/// length, topic length and topic, then the id.
fn publish_packet_id(wire: &[u8]) -> Option<u16> {
    let mut at = 1;
    loop {
        let byte = *wire.get(at)?;
        at += 1;
        if byte & 0x80 == 0 {
            break;
        }
    }
    let topic_len = usize::from(u16::from_be_bytes([*wire.get(at)?, *wire.get(at + 1)?]));
    at += 2 + topic_len;
    Some(u16::from_be_bytes([*wire.get(at)?, *wire.get(at + 1)?]))
}

// ---------------------------------------------------------------------------
// The in-memory broker.

/// One router, the publisher's session (connection 0) and the subscribers'
/// sessions (connections 1..=n), wired together by hand.
struct Fanout {
    now: Instant,
    router: Router<MemoryStore, AllowAll>,
    /// Index = connection id; index 0 is the publisher.
    sessions: Vec<ServerSession>,
    qos: QoS,
    /// The PUBLISH frame the publisher sends; at QoS 1 its packet id sits at
    /// `pid_at..pid_at + 2` and is rewritten before every publish.
    frame: Vec<u8>,
    pid_at: usize,
    next_pid: u16,
    /// The "network": every transmit lands here and is cleared.
    wire: BytesMut,
    /// A subscriber's PUBACK, encoded here before it is read.
    ack: BytesMut,
    /// Deliveries made so far.
    delivered: u64,
}

impl Fanout {
    fn new(subscribers: usize, qos: QoS) -> Self {
        let now = Instant::from_secs(1000);
        let router = Router::new(RouterConfig::default(), MemoryStore::new(), AllowAll);
        let payload: Bytes = (0..PAYLOAD_LEN)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(7))
            .collect::<Vec<u8>>()
            .into();
        let topic = Topic::new(TOPIC).expect("the benchmark topic is valid");
        let qos_pid = match qos {
            QoS::AtMostOnce => QosPid::AtMostOnce,
            _ => QosPid::AtLeastOnce(pid(1)),
        };
        let frame = encode(&Publish::new(topic, qos_pid, payload));
        let pid_at = frame.len() - PAYLOAD_LEN - 2;
        let mut fanout = Self {
            now,
            router,
            sessions: Vec::with_capacity(subscribers + 1),
            qos,
            frame,
            pid_at,
            next_pid: 1,
            wire: BytesMut::with_capacity(4096),
            ack: BytesMut::with_capacity(16),
            delivered: 0,
        };
        fanout.connect("bench-publisher");
        let filter = Filter::new(TOPIC).expect("the benchmark filter is valid");
        for i in 0..subscribers {
            let conn = fanout.connect(&format!("bench-subscriber-{i:04}"));
            fanout.subscribe(conn, &filter);
        }
        fanout.drain_all();
        fanout
    }

    /// Opens a session, sends CONNECT through it and has the router accept
    /// it; returns its connection.
    fn connect(&mut self, client_id: &str) -> ConnId {
        let conn = ConnId(self.sessions.len() as u64);
        let mut session = ServerSession::new(ServerConfig::default(), self.now, conn.0);
        let id = MqttString::new(client_id).expect("benchmark client ids are valid");
        session
            .handle_read(self.now, &encode(&Connect::new(id, 0)))
            .expect("the session reads CONNECT");
        let event = session.poll_event().expect("CONNECT is handed up");
        let request = ConnectRequest::from_event(&event).expect("a connect request");
        self.sessions.push(session);
        self.router.handle_connect(self.now, conn, request);
        self.apply_setup_actions();
        assert!(self.session(conn).is_connected(), "{client_id} connected");
        conn
    }

    /// Sends SUBSCRIBE for `filter` at the benchmark's QoS through `conn`'s
    /// session and has the router grant it.
    fn subscribe(&mut self, conn: ConnId, filter: &Filter) {
        let subscribe =
            Subscribe::new(pid(1), vec![SubscribeFilter::new(filter.clone(), self.qos)]);
        let now = self.now;
        let session = self.session(conn);
        session
            .handle_read(now, &encode(&subscribe))
            .expect("the session reads SUBSCRIBE");
        match session.poll_event() {
            Some(Event::Subscribe { packet_id, filters }) => {
                self.router
                    .handle_subscribe(self.now, conn, packet_id, filters);
            }
            other => panic!("expected a subscribe event, got {other:?}"),
        }
        self.apply_setup_actions();
        assert_eq!(self.session(conn).subscription_count(), 1);
    }

    fn session(&mut self, conn: ConnId) -> &mut ServerSession {
        self.sessions
            .get_mut(conn.0 as usize)
            .expect("the router only names known connections")
    }

    fn apply_setup_actions(&mut self) {
        let now = self.now;
        while let Some(action) = self.router.poll_action() {
            match action {
                Action::Accept {
                    conn,
                    session_present,
                    resume,
                } => self
                    .session(conn)
                    .accept(now, session_present, resume)
                    .expect("accept"),
                Action::SubAck {
                    conn,
                    packet_id,
                    results,
                } => self
                    .session(conn)
                    .suback(now, packet_id, results)
                    .expect("suback"),
                other => panic!("unexpected action at setup: {other:?}"),
            }
        }
    }

    /// Takes and discards everything every session has to send.
    fn drain_all(&mut self) {
        for session in &mut self.sessions {
            while session.poll_transmit(self.now, &mut self.wire) > 0 {}
            self.wire.clear();
        }
    }

    /// One publish and everything it causes; returns the deliveries made.
    fn publish(&mut self) -> usize {
        let now = self.now;
        if self.qos != QoS::AtMostOnce {
            let [hi, lo] = self.next_pid.to_be_bytes();
            if let Some(slot) = self.frame.get_mut(self.pid_at..self.pid_at + 2) {
                slot.copy_from_slice(&[hi, lo]);
            }
            self.next_pid = self.next_pid.checked_add(1).unwrap_or(1);
        }
        let Some(publisher) = self.sessions.first_mut() else {
            return 0;
        };
        if publisher.handle_read(now, &self.frame).is_err() {
            return 0;
        }
        // The publisher's PUBACK (QoS 1) goes out on its "network".
        while publisher.poll_transmit(now, &mut self.wire) > 0 {}
        self.wire.clear();
        while let Some(event) = publisher.poll_event() {
            if let Event::Publish { publish, .. } = event {
                self.router.handle_publish(now, ConnId(0), publish);
            }
        }
        let mut deliveries = 0;
        while let Some(action) = self.router.poll_action() {
            let Action::Deliver { conn, publish } = action else {
                continue;
            };
            let Some(session) = self.sessions.get_mut(conn.0 as usize) else {
                continue;
            };
            if session.deliver(now, publish) == DeliverOutcome::Sent {
                deliveries += 1;
            }
            while session.poll_transmit(now, &mut self.wire) > 0 {}
            if self.qos != QoS::AtMostOnce {
                if let Some(id) = publish_packet_id(&self.wire).and_then(PacketId::new) {
                    self.ack.clear();
                    if PubAck::new(id).encode(&mut self.ack).is_ok() {
                        let _ = session.handle_read(now, &self.ack);
                    }
                }
            }
            self.wire.clear();
        }
        self.delivered += deliveries as u64;
        deliveries
    }

    /// Runs `STEADY_PUBLISHES` publishes, checks that nothing is left
    /// anywhere, and returns the allocations they made.
    fn steady_state(&mut self, subscribers: usize) -> usize {
        let before = allocations();
        for _ in 0..STEADY_PUBLISHES {
            let made = self.publish();
            assert_eq!(made, subscribers, "every subscriber gets every publish");
        }
        let made = allocations() - before;
        assert!(self.router.poll_action().is_none(), "router drained");
        for (conn, session) in self.sessions.iter_mut().enumerate() {
            assert_eq!(session.inflight_len(), 0, "connection {conn} inflight");
            assert_eq!(session.queued_len(), 0, "connection {conn} queued");
            assert!(session.poll_event().is_none(), "connection {conn} events");
            assert!(session.is_connected(), "connection {conn} still connected");
            assert_eq!(
                session.poll_transmit(self.now, &mut self.wire),
                0,
                "connection {conn} has nothing left to send"
            );
        }
        made
    }
}

/// Checks, once per QoS, the path `publish` takes by hand: the subscriber
/// transmits a PUBLISH that decodes to the published topic, payload and QoS,
/// the hand-read packet id agrees with the decoder's, and the PUBACK built
/// from it empties the subscriber's inflight window.
fn check_delivery(qos: QoS) {
    let mut fanout = Fanout::new(1, qos);
    let now = fanout.now;
    let sent = Decoder::new()
        .decode(&mut BytesMut::from(&fanout.frame[..]))
        .expect("the frame decodes");
    let Some(Packet::Publish(sent)) = sent else {
        panic!("the frame is a PUBLISH");
    };
    let publisher = fanout.sessions.first_mut().expect("a publisher");
    publisher
        .handle_read(now, &fanout.frame)
        .expect("PUBLISH read");
    let Some(Event::Publish { publish, .. }) = publisher.poll_event() else {
        panic!("PUBLISH handed up");
    };
    fanout.router.handle_publish(now, ConnId(0), publish);
    let Some(Action::Deliver { conn, publish }) = fanout.router.poll_action() else {
        panic!("one delivery");
    };
    assert!(fanout.router.poll_action().is_none(), "only one delivery");
    let subscriber = fanout.session(conn);
    assert_eq!(subscriber.deliver(now, publish), DeliverOutcome::Sent);
    let mut wire = BytesMut::new();
    while subscriber.poll_transmit(now, &mut wire) > 0 {}
    let raw = wire.to_vec();
    let Ok(Some(Packet::Publish(received))) = Decoder::new().decode(&mut wire) else {
        panic!("the subscriber transmits a PUBLISH");
    };
    assert!(wire.is_empty(), "and nothing else");
    assert_eq!(received.topic, sent.topic);
    assert_eq!(received.payload, sent.payload);
    assert_eq!(received.qos(), qos);
    if qos == QoS::AtMostOnce {
        assert_eq!(received.packet_id(), None);
        return;
    }
    let id = received.packet_id().expect("a QoS 1 PUBLISH has an id");
    assert_eq!(publish_packet_id(&raw), Some(id.get()));
    assert_eq!(subscriber.inflight_len(), 1);
    subscriber
        .handle_read(now, &encode(&PubAck::new(id)))
        .expect("PUBACK read");
    assert_eq!(subscriber.inflight_len(), 0);
}

fn fanout(c: &mut Criterion) {
    for (group_name, qos) in [
        ("broker_fanout_qos0", QoS::AtMostOnce),
        ("broker_fanout_qos1", QoS::AtLeastOnce),
    ] {
        check_delivery(qos);
        let mut group = c.benchmark_group(group_name);
        group.sample_size(30);
        for n in FANOUT {
            let mut fanout = Fanout::new(n, qos);
            // Warm up buffers and maps, then measure the steady state.
            let _ = fanout.steady_state(n);
            let made = fanout.steady_state(n);
            let per_publish = made as f64 / STEADY_PUBLISHES as f64;
            println!(
                "{group_name}/midge/{n}: {per_publish:.2} allocations per publish, \
                 {:.3} per delivery",
                per_publish / n as f64
            );
            group.throughput(Throughput::Elements(n as u64));
            group.bench_function(BenchmarkId::new("midge", n), |b| {
                b.iter(|| black_box(fanout.publish()));
            });
            assert!(fanout.delivered > 0);
        }
        group.finish();
    }
}

criterion_group!(benches, fanout);
criterion_main!(benches);
