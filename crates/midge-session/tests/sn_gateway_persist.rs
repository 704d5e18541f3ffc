//! The gateway core's state across a restart: SN clients <-> gateway core
//! <-> broker core (`midge_broker` `ServerSession` + `Router`) in memory on
//! a virtual clock, as in `sn_gateway.rs`, with a "store" (a map of the
//! records `Gateway::poll_persist` hands out) and a restart that drops the
//! gateway, closes its broker connections as a dead process would, and
//! builds a new one with `Gateway::restore` from the store.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    dead_code
)]

use std::collections::{BTreeMap, VecDeque};

use bytes::{Bytes, BytesMut};
use midge_broker::{
    Action, Auth, ConnId, ConnectRequest, Event as ServerEvent, MemoryStore, Router, RouterConfig,
    ServerConfig, ServerSession,
};
use midge_codec::QoS as MqttQoS;
use midge_session::sn::gateway::{
    BrokerOp, ClientRecord, ClientState, ConnKey, Destination, Gateway, GatewayConfig,
    GatewayEvent, PeerError, PersistOp,
};
use midge_session::{Client, ClientConfig, Event as ClientEvent};
use midge_sn_codec::{
    ClientId, Connect, Disconnect, Message, PingReq, PubAck, Publish, PublishQoS, QoS, Register,
    ReturnCode, SubAck, Subscribe, SubscribeTopic, Topic, TopicId, TopicName, WillMsg, WillTopic,
    WillTopicData,
};
use midge_time::{Duration, Instant};

type Addr = u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Gateway(ConnKey),
    Observer,
    /// A connection of a gateway that was restarted.
    Dead,
}

struct Sim {
    now: Instant,
    gw: Gateway<Addr>,
    router: Router<MemoryStore, TestAuth>,
    sessions: BTreeMap<ConnId, (ServerSession, Side)>,
    key_conn: BTreeMap<ConnKey, ConnId>,
    observer: Client,
    observer_conn: Option<ConnId>,
    /// Messages the observer received from the broker.
    observed: Vec<midge_codec::Publish>,
    /// Datagrams delivered to each SN address (forwarder traffic stays
    /// encapsulated).
    inbox: BTreeMap<Addr, VecDeque<Message>>,
    broadcasts: Vec<(u8, Message)>,
    events: Vec<GatewayEvent<Addr>>,
    next_conn: u64,
    /// Each gateway-to-client datagram is lost with probability 1/n.
    loss_one_in: Option<u64>,
    /// The next n gateway-to-client datagrams are lost.
    drop_next: usize,
    rng: u64,
    lost: usize,
    /// What `poll_persist` handed out, applied in order: the durable store.
    store: BTreeMap<String, ClientRecord>,
    /// How many operations `poll_persist` handed out.
    persist_ops: usize,
}

/// Lets everyone in but the client ids listed.
#[derive(Debug, Default)]
struct TestAuth {
    deny: Vec<String>,
    deny_filters: Vec<String>,
}

impl Auth for TestAuth {
    fn connect(
        &mut self,
        client_id: &str,
        _username: Option<&str>,
        _password: Option<&[u8]>,
    ) -> Result<(), midge_codec::ConnectReturnCode> {
        if self.deny.iter().any(|d| d == client_id) {
            Err(midge_codec::ConnectReturnCode::NotAuthorized)
        } else {
            Ok(())
        }
    }

    fn may_publish(&self, _client_id: &str, _username: Option<&str>, _topic: &str) -> bool {
        true
    }

    fn may_subscribe(&self, _client_id: &str, _username: Option<&str>, filter: &str) -> bool {
        !self.deny_filters.iter().any(|f| f == filter)
    }
}

impl Sim {
    fn new(config: GatewayConfig) -> Self {
        Self::with_denied(config, &[])
    }

    fn with_denied(config: GatewayConfig, deny: &[&str]) -> Self {
        let auth = TestAuth {
            deny: deny.iter().map(|d| (*d).to_owned()).collect(),
            deny_filters: vec!["secret/#".to_owned(), "vault/x".to_owned()],
        };
        let now = Instant::from_secs(1000);
        let mut sim = Self {
            now,
            gw: Gateway::new(config, now).unwrap(),
            router: Router::new(RouterConfig::default(), MemoryStore::new(), auth),
            sessions: BTreeMap::new(),
            key_conn: BTreeMap::new(),
            observer: Client::new(ClientConfig::new("observer").with_keep_alive(0)).unwrap(),
            observer_conn: None,
            observed: Vec::new(),
            inbox: BTreeMap::new(),
            broadcasts: Vec::new(),
            events: Vec::new(),
            next_conn: 1,
            loss_one_in: None,
            drop_next: 0,
            rng: 0x2545_F491_4F6C_DD1D,
            lost: 0,
            store: BTreeMap::new(),
            persist_ops: 0,
        };
        let conn = sim.open_session(Side::Observer);
        sim.observer_conn = Some(conn);
        sim.observer.connect(sim.now).unwrap();
        sim.run();
        sim.observer
            .subscribe(sim.now, &[("#", MqttQoS::ExactlyOnce)])
            .unwrap();
        sim.run();
        sim
    }

    fn config() -> GatewayConfig {
        let mut c = GatewayConfig::new(7);
        c.t_adv = None;
        c.t_retry = Duration::from_secs(10);
        c.n_retry = 3;
        c
    }

    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    fn open_session(&mut self, side: Side) -> ConnId {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        let session = ServerSession::new(ServerConfig::default(), self.now, conn.0);
        self.sessions.insert(conn, (session, side));
        conn
    }

    /// A datagram from an SN client at `from`.
    fn send_raw(&mut self, from: Addr, message: Message) -> Result<(), PeerError> {
        let mut buf = BytesMut::new();
        message.encode(&mut buf).unwrap();
        let r = self.gw.handle_datagram(self.now, from, &buf);
        self.run();
        r
    }

    fn send(&mut self, from: Addr, message: impl Into<Message>) {
        self.send_raw(from, message.into()).unwrap();
    }

    /// Everything the gateway sent to `addr` since the last call.
    fn recv(&mut self, addr: Addr) -> Vec<Message> {
        self.inbox.entry(addr).or_default().drain(..).collect()
    }

    fn observed_payloads(&self) -> Vec<(String, Vec<u8>)> {
        self.observed
            .iter()
            .map(|p| (p.topic.as_str().to_owned(), p.payload.to_vec()))
            .collect()
    }

    fn publish_from_broker(&mut self, topic: &str, payload: &'static [u8], qos: MqttQoS) {
        self.observer
            .publish(self.now, topic, Bytes::from_static(payload), qos, false)
            .unwrap();
        self.run();
    }

    fn run(&mut self) {
        for _ in 0..10_000 {
            if !self.step() {
                return;
            }
        }
        panic!("the simulation does not settle");
    }

    fn step(&mut self) -> bool {
        let now = self.now;
        let mut progress = false;
        while let Some(op) = self.gw.poll_broker() {
            progress = true;
            match op {
                BrokerOp::Open(key) => {
                    let conn = self.open_session(Side::Gateway(key));
                    self.key_conn.insert(key, conn);
                    self.gw.handle_broker_opened(now, key);
                }
                BrokerOp::Write(key, bytes) => {
                    let conn = self.key_conn[&key];
                    if let Some((s, _)) = self.sessions.get_mut(&conn) {
                        let _ = s.handle_read(now, &bytes);
                    }
                }
                BrokerOp::Close(key) => {
                    if let Some(conn) = self.key_conn.remove(&key) {
                        if let Some((s, _)) = self.sessions.get_mut(&conn) {
                            if !s.is_closed() {
                                s.handle_transport_closed(now);
                            }
                        }
                    }
                }
            }
        }
        loop {
            let mut buf = BytesMut::new();
            let Some(t) = self.gw.poll_transmit(now, &mut buf) else {
                break;
            };
            progress = true;
            assert_eq!(t.len, buf.len());
            let message = midge_sn_codec::decode_slice(&buf).unwrap();
            match t.to {
                Destination::Broadcast { radius } => self.broadcasts.push((radius, message)),
                Destination::Unicast(addr) => {
                    let lose = self.drop_next > 0
                        || self.loss_one_in.is_some_and(|n| self.random() % n == 0);
                    if lose {
                        self.drop_next = self.drop_next.saturating_sub(1);
                        self.lost += 1;
                    } else {
                        self.inbox.entry(addr).or_default().push_back(message);
                    }
                }
            }
        }
        while let Some(e) = self.gw.poll_event() {
            progress = true;
            self.events.push(e);
        }
        while let Some(op) = self.gw.poll_persist() {
            self.persist_ops += 1;
            match op {
                PersistOp::Put(record) => {
                    self.store.insert(record.client_id.clone(), record);
                }
                PersistOp::Delete(id) => {
                    self.store.remove(&id);
                }
                other => panic!("unknown operation {other:?}"),
            }
        }
        // The observer writes.
        let mut buf = BytesMut::new();
        while self.observer.poll_transmit(now, &mut buf) > 0 {}
        if !buf.is_empty() {
            progress = true;
            if let Some((s, _)) = self.observer_conn.and_then(|c| self.sessions.get_mut(&c)) {
                let _ = s.handle_read(now, &buf);
            }
        }
        while let Some(e) = self.observer.poll_event() {
            progress = true;
            if let ClientEvent::Message { publish, .. } = e {
                self.observed.push(publish);
            }
        }
        // The broker sessions write and report.
        let conns: Vec<ConnId> = self.sessions.keys().copied().collect();
        let mut server_events = Vec::new();
        for conn in conns {
            let (session, side) = self.sessions.get_mut(&conn).unwrap();
            let side = *side;
            let mut buf = BytesMut::new();
            while session.poll_transmit(now, &mut buf) > 0 {}
            while let Some(e) = session.poll_event() {
                server_events.push((conn, e));
            }
            if !buf.is_empty() {
                progress = true;
                match side {
                    Side::Gateway(key) => {
                        if self.key_conn.contains_key(&key) {
                            self.gw.handle_broker_read(now, key, &buf);
                        }
                    }
                    Side::Observer => {
                        let _ = self.observer.handle_read(now, &buf);
                    }
                    Side::Dead => {}
                }
            }
        }
        for (conn, event) in server_events {
            progress = true;
            match event {
                ServerEvent::ConnectRequest { .. } => {
                    let request = ConnectRequest::from_event(&event).unwrap();
                    self.router.handle_connect(now, conn, request);
                }
                ServerEvent::Publish { publish, .. } => {
                    self.router.handle_publish(now, conn, publish);
                }
                ServerEvent::Subscribe { packet_id, filters } => {
                    self.router.handle_subscribe(now, conn, packet_id, filters);
                }
                ServerEvent::Unsubscribe { filters, .. } => {
                    self.router.handle_unsubscribe(now, conn, filters);
                }
                ServerEvent::Closed { publish_will, .. } => {
                    if let Some((session, side)) = self.sessions.remove(&conn) {
                        match side {
                            Side::Gateway(key) => {
                                if self.key_conn.remove(&key).is_some() {
                                    self.gw.handle_broker_closed(now, key);
                                }
                            }
                            Side::Observer => self.observer.handle_transport_closed(now),
                            Side::Dead => {}
                        }
                        self.router.handle_closed(
                            now,
                            conn,
                            publish_will,
                            session.into_resume_state(),
                        );
                    }
                }
                _ => {}
            }
            self.apply_actions();
        }
        self.apply_actions();
        progress
    }

    fn apply_actions(&mut self) {
        let now = self.now;
        while let Some(action) = self.router.poll_action() {
            match action {
                Action::Accept {
                    conn,
                    session_present,
                    resume,
                } => {
                    if let Some((s, _)) = self.sessions.get_mut(&conn) {
                        s.accept(now, session_present, resume).unwrap();
                    }
                }
                Action::Refuse { conn, code } => {
                    if let Some((s, _)) = self.sessions.get_mut(&conn) {
                        s.refuse(now, code).unwrap();
                    }
                }
                Action::SubAck {
                    conn,
                    packet_id,
                    results,
                } => {
                    if let Some((s, _)) = self.sessions.get_mut(&conn) {
                        let _ = s.suback(now, packet_id, results);
                    }
                }
                Action::Deliver { conn, publish } => {
                    if let Some((s, _)) = self.sessions.get_mut(&conn) {
                        let outcome = s.deliver(now, publish);
                        let above = s.is_above_high_water();
                        self.router.handle_delivery(now, conn, None, outcome, above);
                    }
                }
                Action::Close { conn } => {
                    if let Some((s, _)) = self.sessions.get_mut(&conn) {
                        s.close(now);
                    }
                }
                _ => {}
            }
        }
    }

    /// Advances the virtual clock by `d`, firing every timer on the way.
    fn advance(&mut self, d: Duration) {
        let target = self.now.saturating_add(d);
        for _ in 0..100_000 {
            let next = self
                .sessions
                .values()
                .filter_map(|(s, _)| s.poll_timeout())
                .chain(self.gw.poll_timeout())
                .chain(self.router.poll_timeout())
                .chain(self.observer.poll_timeout())
                .min();
            match next {
                Some(t) if t <= target => {
                    if t > self.now {
                        self.now = t;
                    }
                    let now = self.now;
                    self.gw.handle_timeout(now);
                    for (s, _) in self.sessions.values_mut() {
                        s.handle_timeout(now);
                    }
                    self.router.handle_timeout(now);
                    self.observer.handle_timeout(now);
                    self.run();
                }
                _ => {
                    self.now = target;
                    return;
                }
            }
        }
        panic!("timers do not settle");
    }

    /// CONNECT without will; returns the CONNACK code.
    fn connect(
        &mut self,
        addr: Addr,
        id: &'static str,
        clean: bool,
        keep_alive: u16,
    ) -> ReturnCode {
        self.send(addr, connect_msg(id, false, clean, keep_alive));
        match self.recv(addr).as_slice() {
            [Message::ConnAck(c)] => c.return_code,
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// REGISTER a name; returns the topic id.
    fn register(&mut self, addr: Addr, name: &'static str, msg_id: u16) -> u16 {
        self.send(
            addr,
            Register {
                topic_id: TopicId(0),
                msg_id,
                topic_name: TopicName::from(name),
            },
        );
        match self.recv(addr).as_slice() {
            [Message::RegAck(r)] => {
                assert_eq!(r.msg_id, msg_id);
                assert_eq!(r.return_code, ReturnCode::Accepted);
                r.topic_id.0
            }
            other => panic!("expected REGACK, got {other:?}"),
        }
    }

    fn subscribe(&mut self, addr: Addr, topic: SubscribeTopic, qos: QoS, msg_id: u16) -> SubAck {
        self.send(
            addr,
            Subscribe {
                dup: false,
                qos,
                msg_id,
                topic,
            },
        );
        match self.recv(addr).as_slice() {
            [Message::SubAck(s)] => *s,
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// The gateway process dies (its broker connections drop without
    /// DISCONNECT) and a new one starts from the store, or from nothing
    /// when `restore` is false.
    fn restart(&mut self, restore: bool) {
        let now = self.now;
        let keys: Vec<(ConnKey, ConnId)> = std::mem::take(&mut self.key_conn).into_iter().collect();
        for (_, conn) in keys {
            if let Some((s, side)) = self.sessions.get_mut(&conn) {
                *side = Side::Dead;
                if !s.is_closed() {
                    s.handle_transport_closed(now);
                }
            }
        }
        self.run();
        let config = self.gw.config().clone();
        self.gw = if restore {
            Gateway::restore(config, now, self.store.values().cloned()).unwrap()
        } else {
            Gateway::new(config, now).unwrap()
        };
        self.run();
    }

    fn lost_events(&self, id: &str) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, GatewayEvent::ClientLost { client_id } if client_id == id))
            .count()
    }
}

fn connect_msg(id: &'static str, will: bool, clean: bool, duration: u16) -> Connect {
    Connect {
        will,
        clean_session: clean,
        duration,
        client_id: ClientId::from(id),
    }
}

fn publish(topic: Topic, qos: PublishQoS, msg_id: u16, data: &'static [u8]) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic,
        msg_id,
        data: Bytes::from_static(data),
    }
}

fn will_topic(name: &'static str, qos: QoS) -> WillTopicData {
    WillTopicData {
        qos,
        retain: false,
        topic: TopicName::from(name),
    }
}

fn name(s: &'static str) -> SubscribeTopic {
    SubscribeTopic::Name(TopicName::from(s))
}

fn puback(msgs: &[Message]) -> Vec<(u16, ReturnCode)> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::PubAck(a) => Some((a.msg_id, a.return_code)),
            _ => None,
        })
        .collect()
}

fn sleep_for(sim: &mut Sim, addr: Addr, secs: u16) {
    sim.send(
        addr,
        Disconnect {
            duration: Some(secs),
        },
    );
    assert_eq!(
        sim.recv(addr),
        vec![Message::Disconnect(Disconnect { duration: None })]
    );
    assert_eq!(sim.gw.client_state("dev1"), Some(ClientState::Asleep));
}

/// spec 6.5, 6.3: a client that registered a topic and comes back without
/// clean session publishes with its old id, across a gateway restart.
#[test]
fn sn_6_5_registered_topic_id_survives_restart_for_a_persistent_session() {
    let mut sim = Sim::new(Sim::config());
    assert_eq!(sim.connect(1, "dev1", false, 60), ReturnCode::Accepted);
    let id = sim.register(1, "plant/temp", 1);
    assert_eq!(sim.store["dev1"].topics.len(), 1, "recorded at REGACK");
    sim.restart(true);
    assert_eq!(sim.gw.client_state("dev1"), Some(ClientState::Disconnected));
    assert_eq!(sim.gw.registrations("dev1"), Some(1));

    assert_eq!(sim.connect(1, "dev1", false, 60), ReturnCode::Accepted);
    sim.send(
        1,
        publish(
            Topic::TopicId(TopicId(id)),
            PublishQoS::AtLeastOnce,
            7,
            b"21.5",
        ),
    );
    assert_eq!(puback(&sim.recv(1)), vec![(7, ReturnCode::Accepted)]);
    assert_eq!(
        sim.observed_payloads(),
        vec![("plant/temp".to_owned(), b"21.5".to_vec())]
    );
    // A new REGISTER does not reuse the restored id for another name.
    let other = sim.register(1, "plant/hum", 2);
    assert_ne!(other, id);
}

/// The control for the test above: without the records, the old id is
/// unknown after a restart.
#[test]
fn sn_6_6_without_restore_the_old_topic_id_is_refused() {
    let mut sim = Sim::new(Sim::config());
    sim.connect(1, "dev1", false, 60);
    let id = sim.register(1, "plant/temp", 1);
    sim.restart(false);
    sim.connect(1, "dev1", false, 60);
    sim.send(
        1,
        publish(
            Topic::TopicId(TopicId(id)),
            PublishQoS::AtLeastOnce,
            7,
            b"x",
        ),
    );
    assert_eq!(puback(&sim.recv(1)), vec![(7, ReturnCode::InvalidTopicId)]);
}

/// spec 6.14: messages buffered for a sleeping client before a restart are
/// delivered when it wakes after it, and its broker connection is opened
/// again at restore so new messages are buffered too.
#[test]
fn sn_6_14_buffered_messages_of_a_sleeping_client_survive_restart() {
    let mut sim = Sim::new(Sim::config());
    sim.connect(1, "dev1", false, 30);
    let ack = sim.subscribe(1, name("inbox"), QoS::AtLeastOnce, 1);
    sleep_for(&mut sim, 1, 3600);
    sim.publish_from_broker("inbox", b"one", MqttQoS::AtLeastOnce);
    sim.publish_from_broker("inbox", b"two", MqttQoS::AtMostOnce);
    assert_eq!(sim.gw.buffered_len("dev1"), Some(2));
    assert_eq!(sim.store["dev1"].buffered.len(), 2);
    assert_eq!(sim.store["dev1"].sleep, Some(3600));

    sim.restart(true);
    assert_eq!(sim.gw.client_state("dev1"), Some(ClientState::Asleep));
    assert_eq!(sim.gw.buffered_len("dev1"), Some(2));
    assert_eq!(sim.gw.broker_connections(), 1, "asleep: link reopened");
    sim.publish_from_broker("inbox", b"three", MqttQoS::AtMostOnce);
    assert_eq!(sim.gw.buffered_len("dev1"), Some(3));

    // Wakes from another address.
    sim.send(
        2,
        PingReq {
            client_id: Some(ClientId::from("dev1")),
        },
    );
    let t = Topic::TopicId(ack.topic_id);
    let mut first = publish(t, PublishQoS::AtLeastOnce, 1, b"one");
    let got = sim.recv(2);
    let [Message::Publish(p)] = got.as_slice() else {
        panic!("expected one QoS 1 PUBLISH, got {got:?}");
    };
    first.msg_id = p.msg_id;
    assert_eq!(*p, first, "the id the client learned from SUBACK is used");
    sim.send(
        2,
        PubAck {
            topic_id: ack.topic_id,
            msg_id: p.msg_id,
            return_code: ReturnCode::Accepted,
        },
    );
    assert_eq!(
        sim.recv(2),
        vec![
            Message::Publish(publish(t, PublishQoS::AtMostOnce, 0, b"two")),
            Message::Publish(publish(t, PublishQoS::AtMostOnce, 0, b"three")),
            Message::PingResp(midge_sn_codec::PingResp),
        ]
    );
    assert_eq!(sim.gw.buffered_len("dev1"), Some(0));
    assert!(sim.store["dev1"].buffered.is_empty(), "delivery recorded");
}

/// The control: without the records the sleeping client is unknown after a
/// restart; its PINGREQ is answered with DISCONNECT.
#[test]
fn sn_6_14_without_restore_a_sleeping_client_is_unknown() {
    let mut sim = Sim::new(Sim::config());
    sim.connect(1, "dev1", false, 30);
    sim.subscribe(1, name("inbox"), QoS::AtLeastOnce, 1);
    sleep_for(&mut sim, 1, 3600);
    sim.publish_from_broker("inbox", b"one", MqttQoS::AtLeastOnce);
    sim.restart(false);
    sim.send_raw(
        1,
        PingReq {
            client_id: Some(ClientId::from("dev1")),
        }
        .into(),
    )
    .unwrap_err();
    assert_eq!(
        sim.recv(1),
        vec![Message::Disconnect(Disconnect { duration: None })]
    );
}

/// A sleeping clean-session client is kept while it sleeps (its buffered
/// messages and will); a clean CONNECT deletes its record.
#[test]
fn sn_6_3_clean_session_records_only_while_asleep() {
    let mut sim = Sim::new(Sim::config());
    sim.send(1, connect_msg("dev1", true, true, 30));
    assert_eq!(
        sim.recv(1),
        vec![Message::WillTopicReq(midge_sn_codec::WillTopicReq)]
    );
    sim.send(
        1,
        WillTopic(Some(will_topic("dev1/status", QoS::AtLeastOnce))),
    );
    sim.send(
        1,
        WillMsg {
            will_msg: Bytes::from_static(b"gone"),
        },
    );
    assert!(matches!(
        sim.recv(1).as_slice(),
        [Message::WillMsgReq(_), Message::ConnAck(_)]
    ));
    assert!(sim.store.is_empty(), "clean and active: nothing kept");
    sleep_for(&mut sim, 1, 60);
    let record = sim.store["dev1"].clone();
    assert!(record.clean_session);
    let will = record.will.unwrap();
    assert_eq!(will.topic, "dev1/status");
    assert_eq!(&will.message[..], b"gone");

    sim.restart(true);
    assert_eq!(sim.gw.client_state("dev1"), Some(ClientState::Asleep));
    // Past its sleep duration the restored client is lost: its will goes.
    sim.advance(Duration::from_secs(200));
    assert_eq!(sim.lost_events("dev1"), 1);
    assert!(sim
        .observed_payloads()
        .contains(&("dev1/status".to_owned(), b"gone".to_vec())));
    assert!(
        !sim.store.contains_key("dev1"),
        "lost clean session: deleted"
    );
}

/// Only changes come out of `poll_persist`: keep-alive traffic writes
/// nothing, and a restored gateway does not write back what it read.
#[test]
fn persist_ops_only_for_changes() {
    let mut sim = Sim::new(Sim::config());
    sim.connect(1, "dev1", false, 60);
    sim.register(1, "a", 1);
    let before = sim.persist_ops;
    for _ in 0..5 {
        sim.send(1, PingReq { client_id: None });
        assert_eq!(
            sim.recv(1),
            vec![Message::PingResp(midge_sn_codec::PingResp)]
        );
    }
    assert_eq!(sim.persist_ops, before, "PINGREQ changes nothing kept");
    sim.register(1, "b", 2);
    assert_eq!(sim.persist_ops, before + 1);
    assert_eq!(
        sim.gw.export(),
        sim.store.values().cloned().collect::<Vec<_>>()
    );

    let stored = sim.store.clone();
    sim.restart(true);
    assert_eq!(sim.persist_ops, before + 1, "restore writes nothing back");
    assert_eq!(sim.store, stored);
    // A clean CONNECT ends the persistent session: the record goes.
    sim.connect(1, "dev1", true, 60);
    assert!(sim.store.is_empty());
    assert_eq!(sim.gw.registrations("dev1"), Some(0));
}

/// Records that do not fit the configuration are trimmed, not refused.
#[test]
fn restore_skips_what_the_configuration_does_not_allow() {
    let mut config = Sim::config();
    config.max_clients = 2;
    config.max_registrations = 1;
    config.max_buffered = 1;
    let msg = |t: &str| midge_session::sn::gateway::BufferedMessage {
        topic: t.to_owned(),
        data: Bytes::from_static(b"x"),
        qos: QoS::AtMostOnce,
        retain: false,
    };
    let topic = |id, name: &str| midge_session::sn::gateway::TopicRecord {
        id,
        name: name.to_owned(),
        known: true,
        rejected: false,
    };
    let record = |id: &str| ClientRecord {
        client_id: id.to_owned(),
        clean_session: false,
        keep_alive: 10,
        sleep: None,
        will: None,
        topics: vec![
            topic(0, "zero"),
            topic(3, "a/#"),
            topic(4, "ok"),
            topic(5, "more"),
        ],
        buffered: vec![msg("bad/+"), msg("m1"), msg("m2"), msg("m3")],
    };
    let records = vec![
        record(""),
        record("c1"),
        record("c1"),
        record("c2"),
        record("c3"),
    ];
    let gw: Gateway<u32> = Gateway::restore(config, Instant::from_secs(1), records).unwrap();
    assert_eq!(gw.client_count(), 2);
    assert_eq!(gw.registrations("c1"), Some(1));
    assert_eq!(
        gw.buffered_len("c2"),
        Some(2),
        "full, plus the one in flight"
    );
    assert_eq!(gw.client_state("c3"), None);
    let exported = gw.export();
    assert_eq!(exported[0].topics, vec![topic(4, "ok")]);
    assert_eq!(exported[0].buffered, vec![msg("m1"), msg("m2")]);
}
