//! Deterministic simulation of MQTT-SN clients ↔ the gateway core ↔ the
//! broker core (`midge_broker::ServerSession` + `Router`), all in memory on a
//! virtual clock. SN clients are scripted datagram by datagram with
//! midge-sn-codec; an MQTT observer client (subscribed to `#`) sees what
//! reaches the broker and publishes what SN clients should receive. The link
//! from the gateway to SN clients can lose datagrams (seeded).
//!
//! Test names carry the MQTT-SN 1.2 section that decides the behaviour.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::collections::{BTreeMap, VecDeque};

use bytes::{Bytes, BytesMut};
use midge_broker::{
    Action, Auth, ConnId, ConnectRequest, Event as ServerEvent, MemoryStore, Router, RouterConfig,
    ServerConfig, ServerSession,
};
use midge_codec::QoS as MqttQoS;
use midge_session::sn::gateway::{
    BrokerOp, ClientState, ConnKey, Destination, DropReason, Gateway, GatewayConfig, GatewayEvent,
    PeerError,
};
use midge_session::{Client, ClientConfig, Event as ClientEvent};
use midge_sn_codec::{
    ClientId, ConnAck, Connect, Disconnect, Encapsulated, Message, PingReq, PubAck, PubComp,
    PubRec, PubRel, Publish, PublishQoS, QoS, RegAck, Register, ReturnCode, SearchGw, SubAck,
    Subscribe, SubscribeTopic, Topic, TopicId, TopicName, Unsubscribe, WillMsg, WillMsgUpd,
    WillTopic, WillTopicData, WillTopicUpd,
};
use midge_time::{Duration, Instant};

type Addr = u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Gateway(ConnKey),
    Observer,
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

// ----- 6.1 advertisement and discovery -----

#[test]
fn sn_6_1_advertise_every_t_adv_and_gwinfo_answers_searchgw() {
    let mut config = Sim::config();
    config.t_adv = Some(Duration::from_secs(60));
    config.advertise_jitter = Duration::ZERO;
    config.radius = 1;
    let mut sim = Sim::new(config);
    sim.advance(Duration::from_secs(125));
    let adverts: Vec<_> = sim
        .broadcasts
        .iter()
        .filter_map(|(r, m)| match m {
            Message::Advertise(a) => Some((*r, a.gw_id, a.duration)),
            _ => None,
        })
        .collect();
    assert_eq!(adverts, vec![(1, 7, 60); 3]);

    sim.send(9, SearchGw { radius: 2 });
    assert_eq!(
        sim.broadcasts.last(),
        Some(&(
            2,
            Message::GwInfo(midge_sn_codec::GwInfo {
                gw_id: 7,
                gw_add: Bytes::new()
            })
        ))
    );
}

// ----- 6.2 / 6.3 connection setup, will prompts -----

#[test]
fn sn_6_2_connect_with_will_prompts_then_connack() {
    let mut sim = Sim::new(Sim::config());
    sim.send(1, connect_msg("dev1", true, true, 30));
    assert_eq!(
        sim.recv(1),
        vec![Message::WillTopicReq(midge_sn_codec::WillTopicReq)]
    );
    assert_eq!(sim.gw.client_state("dev1"), Some(ClientState::Prompting));
    sim.send(
        1,
        WillTopic(Some(will_topic("wills/dev1", QoS::AtLeastOnce))),
    );
    assert_eq!(
        sim.recv(1),
        vec![Message::WillMsgReq(midge_sn_codec::WillMsgReq)]
    );
    sim.send(
        1,
        WillMsg {
            will_msg: Bytes::from_static(b"bye"),
        },
    );
    assert_eq!(
        sim.recv(1),
        vec![Message::ConnAck(ConnAck {
            return_code: ReturnCode::Accepted
        })]
    );
    assert_eq!(sim.gw.client_state("dev1"), Some(ClientState::Active));
    assert!(sim.events.iter().any(
        |e| matches!(e, GatewayEvent::ClientConnected { client_id, .. } if client_id == "dev1")
    ));
}

#[test]
fn sn_6_3_empty_willtopic_connects_without_will_and_lost_publishes_nothing() {
    let mut sim = Sim::new(Sim::config());
    sim.send(1, connect_msg("dev1", true, true, 10));
    sim.recv(1);
    sim.send(1, WillTopic(None));
    assert_eq!(
        sim.recv(1),
        vec![Message::ConnAck(ConnAck {
            return_code: ReturnCode::Accepted
        })]
    );
    sim.advance(Duration::from_secs(20));
    assert_eq!(sim.gw.client_state("dev1"), Some(ClientState::Lost));
    assert!(sim.observed.is_empty());
}

#[test]
fn sn_6_2_will_prompt_unanswered_gives_up_after_n_retry() {
    let mut sim = Sim::new(Sim::config());
    sim.send(1, connect_msg("dev1", true, true, 30));
    sim.advance(Duration::from_secs(45));
    let prompts = sim.recv(1);
    assert_eq!(
        prompts.len(),
        4,
        "first prompt and three retransmissions: {prompts:?}"
    );
    assert_eq!(sim.gw.client_state("dev1"), Some(ClientState::Disconnected));
    assert_eq!(sim.gw.broker_connections(), 0);
}

#[test]
fn sn_5_3_1_empty_or_long_client_id_is_not_supported() {
    let mut sim = Sim::new(Sim::config());
    let r = sim.send_raw(
        1,
        connect_msg("abcdefghijklmnopqrstuvwx", false, true, 10).into(),
    );
    assert_eq!(r, Err(PeerError::InvalidClientId));
    assert_eq!(
        sim.recv(1),
        vec![Message::ConnAck(ConnAck {
            return_code: ReturnCode::NotSupported
        })]
    );
    assert_eq!(sim.gw.client_count(), 0);
}

// ----- 6.5 / 6.6 register and publish -----

#[test]
fn sn_6_6_publish_at_qos_0_1_2_reaches_the_broker_once() {
    let mut sim = Sim::new(Sim::config());
    assert_eq!(sim.connect(1, "dev1", true, 60), ReturnCode::Accepted);
    let id = sim.register(1, "sensors/t", 1);
    let t = Topic::TopicId(TopicId(id));

    sim.send(1, publish(t, PublishQoS::AtMostOnce, 0, b"q0"));
    assert!(sim.recv(1).is_empty());

    sim.send(1, publish(t, PublishQoS::AtLeastOnce, 2, b"q1"));
    assert_eq!(
        sim.recv(1),
        vec![Message::PubAck(PubAck {
            topic_id: TopicId(id),
            msg_id: 2,
            return_code: ReturnCode::Accepted
        })]
    );

    sim.send(1, publish(t, PublishQoS::ExactlyOnce, 3, b"q2"));
    assert_eq!(sim.recv(1), vec![Message::PubRec(PubRec { msg_id: 3 })]);
    // A duplicate before PUBREL is acknowledged again, not forwarded again.
    let mut dup = publish(t, PublishQoS::ExactlyOnce, 3, b"q2");
    dup.dup = true;
    sim.send(1, dup);
    assert_eq!(sim.recv(1), vec![Message::PubRec(PubRec { msg_id: 3 })]);
    sim.send(1, PubRel { msg_id: 3 });
    assert_eq!(sim.recv(1), vec![Message::PubComp(PubComp { msg_id: 3 })]);

    let topic = "sensors/t".to_owned();
    assert_eq!(
        sim.observed_payloads(),
        vec![
            (topic.clone(), b"q0".to_vec()),
            (topic.clone(), b"q1".to_vec()),
            (topic, b"q2".to_vec())
        ]
    );
}

#[test]
fn sn_6_6_unknown_topic_id_is_refused_whatever_the_qos() {
    let mut sim = Sim::new(Sim::config());
    sim.connect(1, "dev1", true, 60);
    for (qos, msg_id) in [(PublishQoS::AtMostOnce, 0), (PublishQoS::AtLeastOnce, 5)] {
        sim.send(1, publish(Topic::TopicId(TopicId(42)), qos, msg_id, b"x"));
        assert_eq!(
            sim.recv(1),
            vec![Message::PubAck(PubAck {
                topic_id: TopicId(42),
                msg_id,
                return_code: ReturnCode::InvalidTopicId
            })]
        );
    }
    assert!(sim.observed.is_empty());
}

#[test]
fn sn_6_5_registration_limit_answers_congestion() {
    let mut config = Sim::config();
    config.max_registrations = 1;
    let mut sim = Sim::new(config);
    sim.connect(1, "dev1", true, 60);
    sim.register(1, "a/1", 1);
    assert_eq!(
        sim.register(1, "a/1", 2),
        1,
        "same name, same id, no new entry"
    );
    sim.send(
        1,
        Register {
            topic_id: TopicId(0),
            msg_id: 3,
            topic_name: TopicName::from("a/2"),
        },
    );
    assert_eq!(
        sim.recv(1),
        vec![Message::RegAck(RegAck {
            topic_id: TopicId(0),
            msg_id: 3,
            return_code: ReturnCode::Congestion
        })]
    );
    assert_eq!(sim.gw.registrations("dev1"), Some(1));
}

#[test]
fn sn_6_5_register_of_a_wildcard_name_is_not_supported() {
    let mut sim = Sim::new(Sim::config());
    sim.connect(1, "dev1", true, 60);
    sim.send(
        1,
        Register {
            topic_id: TopicId(0),
            msg_id: 1,
            topic_name: TopicName::from("a/+"),
        },
    );
    assert!(matches!(
        sim.recv(1).as_slice(),
        [Message::RegAck(RegAck {
            return_code: ReturnCode::NotSupported,
            ..
        })]
    ));
}

// ----- 6.7 pre-defined ids and short names -----

#[test]
fn sn_6_7_predefined_and_short_topics_need_no_registration() {
    let config = Sim::config().with_predefined(5, "plant/boiler");
    let mut sim = Sim::new(config);
    sim.connect(1, "dev1", true, 60);
    sim.send(
        1,
        publish(
            Topic::Predefined(TopicId(5)),
            PublishQoS::AtMostOnce,
            0,
            b"p",
        ),
    );
    sim.send(
        1,
        publish(Topic::Short(*b"ab"), PublishQoS::AtMostOnce, 0, b"s"),
    );
    sim.send(
        1,
        publish(
            Topic::Predefined(TopicId(6)),
            PublishQoS::AtLeastOnce,
            9,
            b"x",
        ),
    );
    assert_eq!(
        sim.recv(1),
        vec![Message::PubAck(PubAck {
            topic_id: TopicId(6),
            msg_id: 9,
            return_code: ReturnCode::InvalidTopicId
        })]
    );
    assert_eq!(
        sim.observed_payloads(),
        vec![
            ("plant/boiler".to_owned(), b"p".to_vec()),
            ("ab".to_owned(), b"s".to_vec())
        ]
    );
}

#[test]
fn sn_6_7_subscribe_predefined_and_short_deliver_with_the_same_topic_form() {
    let config = Sim::config().with_predefined(5, "plant/boiler");
    let mut sim = Sim::new(config);
    sim.connect(1, "dev1", true, 60);
    let ack = sim.subscribe(
        1,
        SubscribeTopic::Predefined(TopicId(5)),
        QoS::AtMostOnce,
        1,
    );
    assert_eq!(
        (ack.return_code, ack.topic_id),
        (ReturnCode::Accepted, TopicId(5))
    );
    let ack = sim.subscribe(1, SubscribeTopic::Short(*b"ab"), QoS::AtMostOnce, 2);
    assert_eq!(ack.return_code, ReturnCode::Accepted);
    let ack = sim.subscribe(
        1,
        SubscribeTopic::Predefined(TopicId(77)),
        QoS::AtMostOnce,
        3,
    );
    assert_eq!(ack.return_code, ReturnCode::InvalidTopicId);

    sim.publish_from_broker("plant/boiler", b"hot", MqttQoS::AtMostOnce);
    sim.publish_from_broker("ab", b"short", MqttQoS::AtMostOnce);
    let got = sim.recv(1);
    assert_eq!(
        got,
        vec![
            Message::Publish(publish(
                Topic::Predefined(TopicId(5)),
                PublishQoS::AtMostOnce,
                0,
                b"hot"
            )),
            Message::Publish(publish(
                Topic::Short(*b"ab"),
                PublishQoS::AtMostOnce,
                0,
                b"short"
            )),
        ]
    );
}

// ----- 6.8 QoS -1 -----

#[test]
fn sn_6_8_qos_minus_one_without_connection_is_forwarded_at_qos_0() {
    let config = Sim::config().with_predefined(5, "plant/boiler");
    let mut sim = Sim::new(config);
    sim.send(
        3,
        publish(
            Topic::Predefined(TopicId(5)),
            PublishQoS::MinusOne,
            0,
            b"m1",
        ),
    );
    sim.send(
        4,
        publish(Topic::Short(*b"zz"), PublishQoS::MinusOne, 0, b"m2"),
    );
    assert_eq!(
        sim.send_raw(
            4,
            publish(
                Topic::Predefined(TopicId(9)),
                PublishQoS::MinusOne,
                0,
                b"m3"
            )
            .into()
        ),
        Err(PeerError::UnknownTopic)
    );
    assert!(
        sim.recv(3).is_empty() && sim.recv(4).is_empty(),
        "QoS -1 gets no answer"
    );
    assert_eq!(
        sim.observed_payloads(),
        vec![
            ("plant/boiler".to_owned(), b"m1".to_vec()),
            ("zz".to_owned(), b"m2".to_vec())
        ]
    );
    assert!(sim
        .observed
        .iter()
        .all(|p| p.qos_pid == midge_codec::QosPid::AtMostOnce));
    assert_eq!(sim.gw.client_count(), 0, "no SN session was created");
    assert_eq!(sim.gw.broker_connections(), 1, "one shared connection");
}

// ----- 6.9 / 6.10 subscribe and the gateway's publish -----

#[test]
fn sn_6_9_subscribe_by_name_returns_its_topic_id_and_unsubscribe_stops_delivery() {
    let mut sim = Sim::new(Sim::config());
    sim.connect(1, "dev1", true, 60);
    let ack = sim.subscribe(1, name("room/temp"), QoS::AtLeastOnce, 1);
    assert_eq!(ack.return_code, ReturnCode::Accepted);
    assert_eq!(ack.qos, QoS::AtLeastOnce);
    assert_ne!(ack.topic_id, TopicId(0));

    sim.publish_from_broker("room/temp", b"21", MqttQoS::AtLeastOnce);
    let got = sim.recv(1);
    let [Message::Publish(p)] = got.as_slice() else {
        panic!("expected one PUBLISH, got {got:?}");
    };
    assert_eq!(
        p.topic,
        Topic::TopicId(ack.topic_id),
        "no REGISTER: SUBACK told the id"
    );
    assert_eq!(p.qos, PublishQoS::AtLeastOnce);
    sim.send(
        1,
        PubAck {
            topic_id: ack.topic_id,
            msg_id: p.msg_id,
            return_code: ReturnCode::Accepted,
        },
    );

    sim.send(
        1,
        Unsubscribe {
            msg_id: 2,
            topic: name("room/temp"),
        },
    );
    assert_eq!(
        sim.recv(1),
        vec![Message::UnsubAck(midge_sn_codec::UnsubAck { msg_id: 2 })]
    );
    sim.publish_from_broker("room/temp", b"22", MqttQoS::AtLeastOnce);
    assert!(sim.recv(1).is_empty());
}

#[test]
fn sn_6_10_wildcard_subscription_gets_gateway_register_before_publish() {
    let mut sim = Sim::new(Sim::config());
    sim.connect(1, "dev1", true, 60);
    let ack = sim.subscribe(1, name("room/+"), QoS::ExactlyOnce, 1);
    assert_eq!(
        (ack.return_code, ack.topic_id),
        (ReturnCode::Accepted, TopicId(0))
    );

    sim.publish_from_broker("room/hall", b"a", MqttQoS::ExactlyOnce);
    let got = sim.recv(1);
    let [Message::Register(r)] = got.as_slice() else {
        panic!("expected REGISTER first, got {got:?}");
    };
    assert_eq!(r.topic_name.as_str(), "room/hall");
    let topic_id = r.topic_id;
    sim.send(
        1,
        RegAck {
            topic_id,
            msg_id: r.msg_id,
            return_code: ReturnCode::Accepted,
        },
    );
    let got = sim.recv(1);
    let [Message::Publish(p)] = got.as_slice() else {
        panic!("expected PUBLISH after REGACK, got {got:?}");
    };
    assert_eq!(
        (p.topic, p.qos),
        (Topic::TopicId(topic_id), PublishQoS::ExactlyOnce)
    );
    sim.send(1, PubRec { msg_id: p.msg_id });
    assert_eq!(
        sim.recv(1),
        vec![Message::PubRel(PubRel { msg_id: p.msg_id })]
    );
    sim.send(1, PubComp { msg_id: p.msg_id });

    // The id is known now: the next message on the topic comes straight.
    sim.publish_from_broker("room/hall", b"b", MqttQoS::AtMostOnce);
    assert_eq!(
        sim.recv(1),
        vec![Message::Publish(publish(
            Topic::TopicId(topic_id),
            PublishQoS::AtMostOnce,
            0,
            b"b"
        ))]
    );
}

#[test]
fn sn_6_10_rejected_register_stops_that_topic() {
    let mut sim = Sim::new(Sim::config());
    sim.connect(1, "dev1", true, 60);
    sim.subscribe(1, name("room/#"), QoS::AtMostOnce, 1);
    sim.publish_from_broker("room/attic", b"a", MqttQoS::AtMostOnce);
    let got = sim.recv(1);
    let [Message::Register(r)] = got.as_slice() else {
        panic!("expected REGISTER, got {got:?}");
    };
    sim.send(
        1,
        RegAck {
            topic_id: r.topic_id,
            msg_id: r.msg_id,
            return_code: ReturnCode::NotSupported,
        },
    );
    sim.publish_from_broker("room/attic", b"b", MqttQoS::AtMostOnce);
    assert!(sim.recv(1).is_empty());
    let rejected = sim
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                GatewayEvent::Dropped {
                    reason: DropReason::RegistrationRejected,
                    ..
                }
            )
        })
        .count();
    assert_eq!(rejected, 2);
}

#[test]
fn sn_6_10_puback_invalid_topic_id_forgets_the_mapping() {
    let mut sim = Sim::new(Sim::config());
    sim.connect(1, "dev1", true, 60);
    let ack = sim.subscribe(1, name("x/y"), QoS::AtLeastOnce, 1);
    assert_eq!(sim.gw.registrations("dev1"), Some(1));
    sim.publish_from_broker("x/y", b"1", MqttQoS::AtLeastOnce);
    let got = sim.recv(1);
    let [Message::Publish(p)] = got.as_slice() else {
        panic!("{got:?}")
    };
    sim.send(
        1,
        PubAck {
            topic_id: ack.topic_id,
            msg_id: p.msg_id,
            return_code: ReturnCode::InvalidTopicId,
        },
    );
    assert_eq!(sim.gw.registrations("dev1"), Some(0));
    // The next message registers the name again.
    sim.publish_from_broker("x/y", b"2", MqttQoS::AtLeastOnce);
    assert!(matches!(sim.recv(1).as_slice(), [Message::Register(_)]));
}

#[test]
fn sn_6_9_subscribe_refusals_map_to_return_codes() {
    let mut config = Sim::config();
    config.max_registrations = 1;
    let mut sim = Sim::new(config);
    sim.connect(1, "dev1", true, 60);
    assert_eq!(
        sim.subscribe(1, name("a/#/b"), QoS::AtMostOnce, 1)
            .return_code,
        ReturnCode::NotSupported
    );
    assert_eq!(
        sim.subscribe(1, name("a"), QoS::AtMostOnce, 2).return_code,
        ReturnCode::Accepted
    );
    assert_eq!(
        sim.subscribe(1, name("b"), QoS::AtMostOnce, 3).return_code,
        ReturnCode::Congestion
    );
}

// ----- 6.11 / 6.12 ping and disconnect -----

#[test]
fn sn_6_11_pingreq_is_answered_and_keeps_the_client_active() {
    let mut sim = Sim::new(Sim::config());
    sim.connect(1, "dev1", true, 10);
    for _ in 0..5 {
        sim.advance(Duration::from_secs(9));
        sim.send(1, PingReq { client_id: None });
        assert_eq!(
            sim.recv(1),
            vec![Message::PingResp(midge_sn_codec::PingResp)]
        );
    }
    assert_eq!(sim.gw.client_state("dev1"), Some(ClientState::Active));
}

#[test]
fn sn_6_12_disconnect_is_acknowledged_and_the_will_is_not_published() {
    let mut sim = Sim::new(Sim::config());
    sim.send(1, connect_msg("dev1", true, true, 10));
    sim.send(
        1,
        WillTopic(Some(will_topic("wills/dev1", QoS::AtMostOnce))),
    );
    sim.send(
        1,
        WillMsg {
            will_msg: Bytes::from_static(b"gone"),
        },
    );
    sim.recv(1);
    sim.send(1, Disconnect { duration: None });
    assert_eq!(
        sim.recv(1),
        vec![Message::Disconnect(Disconnect { duration: None })]
    );
    assert_eq!(sim.gw.client_state("dev1"), Some(ClientState::Disconnected));
    sim.advance(Duration::from_secs(60));
    assert!(sim.observed.is_empty(), "{:?}", sim.observed);
    assert_eq!(sim.gw.broker_connections(), 0);
    // spec 6.12: a message from a peer without connection gets DISCONNECT.
    let r = sim.send_raw(
        1,
        publish(Topic::TopicId(TopicId(1)), PublishQoS::AtMostOnce, 0, b"x").into(),
    );
    assert_eq!(
        r,
        Err(PeerError::NotConnected(midge_sn_codec::MsgType::Publish))
    );
    assert_eq!(
        sim.recv(1),
        vec![Message::Disconnect(Disconnect { duration: None })]
    );
}

// ----- 6.13 retransmission -----

#[test]
fn sn_6_13_gateway_retransmits_with_dup_then_client_is_lost_and_will_published() {
    let mut sim = Sim::new(Sim::config());
    sim.send(1, connect_msg("dev1", true, true, 0));
    sim.send(
        1,
        WillTopic(Some(will_topic("wills/dev1", QoS::AtLeastOnce))),
    );
    sim.send(
        1,
        WillMsg {
            will_msg: Bytes::from_static(b"gone"),
        },
    );
    sim.recv(1);
    let ack = sim.subscribe(1, name("cmd"), QoS::AtLeastOnce, 1);
    assert_eq!(ack.return_code, ReturnCode::Accepted);
    sim.publish_from_broker("cmd", b"go", MqttQoS::AtLeastOnce);
    sim.advance(Duration::from_secs(35));
    let got = sim.recv(1);
    assert_eq!(got.len(), 4, "{got:?}");
    for (n, m) in got.iter().enumerate() {
        let Message::Publish(p) = m else {
            panic!("{m:?}")
        };
        assert_eq!(p.dup, n > 0);
    }
    assert_eq!(sim.gw.client_state("dev1"), Some(ClientState::Active));
    sim.advance(Duration::from_secs(10));
    assert_eq!(sim.gw.client_state("dev1"), Some(ClientState::Lost));
    assert_eq!(sim.lost_events("dev1"), 1);
    let will: Vec<_> = sim
        .observed_payloads()
        .into_iter()
        .filter(|(t, _)| t == "wills/dev1")
        .collect();
    assert_eq!(will, vec![("wills/dev1".to_owned(), b"gone".to_vec())]);
}

#[test]
fn sn_6_13_lossy_link_still_delivers_every_qos1_message_once_acknowledged() {
    let mut config = Sim::config();
    config.n_retry = 20;
    config.t_retry = Duration::from_secs(2);
    let mut sim = Sim::new(config);
    sim.connect(1, "dev1", true, 0);
    let ack = sim.subscribe(1, name("feed"), QoS::AtLeastOnce, 1);
    sim.loss_one_in = Some(3);
    let payloads: [&'static [u8]; 6] = [b"0", b"1", b"2", b"3", b"4", b"5"];
    for p in payloads {
        sim.publish_from_broker("feed", p, MqttQoS::AtLeastOnce);
    }
    let mut got: Vec<Vec<u8>> = Vec::new();
    for _ in 0..200 {
        for m in sim.recv(1) {
            if let Message::Publish(p) = m {
                if got.last().map(Vec::as_slice) != Some(&p.data[..]) {
                    got.push(p.data.to_vec());
                }
                sim.send(
                    1,
                    PubAck {
                        topic_id: ack.topic_id,
                        msg_id: p.msg_id,
                        return_code: ReturnCode::Accepted,
                    },
                );
            }
        }
        if got.len() == payloads.len() {
            break;
        }
        sim.advance(Duration::from_secs(2));
    }
    let want: Vec<Vec<u8>> = payloads.iter().map(|p| p.to_vec()).collect();
    assert_eq!(got, want);
    assert!(
        sim.lost > 0,
        "the link lost nothing: the test proved nothing"
    );
    assert!(sim.gw.stats().retransmissions > 0);
}

// ----- 6.14 sleeping clients -----

#[test]
fn sn_6_14_asleep_buffers_and_awake_delivers_then_pingresp() {
    let mut sim = Sim::new(Sim::config());
    sim.connect(1, "dev1", false, 30);
    let ack = sim.subscribe(1, name("inbox"), QoS::AtMostOnce, 1);
    sim.send(
        1,
        Disconnect {
            duration: Some(600),
        },
    );
    assert_eq!(
        sim.recv(1),
        vec![Message::Disconnect(Disconnect { duration: None })]
    );
    assert_eq!(sim.gw.client_state("dev1"), Some(ClientState::Asleep));

    for p in [&b"a"[..], b"b", b"c"] {
        sim.observer
            .publish(
                sim.now,
                "inbox",
                Bytes::copy_from_slice(p),
                MqttQoS::AtMostOnce,
                false,
            )
            .unwrap();
    }
    sim.run();
    assert!(sim.recv(1).is_empty(), "nothing goes to a sleeping client");
    assert_eq!(sim.gw.buffered_len("dev1"), Some(3));
    sim.advance(Duration::from_secs(300));
    assert_eq!(
        sim.gw.client_state("dev1"),
        Some(ClientState::Asleep),
        "the broker link stays up"
    );

    // The client wakes up, from a new address.
    sim.send(
        2,
        PingReq {
            client_id: Some(ClientId::from("dev1")),
        },
    );
    let t = Topic::TopicId(ack.topic_id);
    assert_eq!(
        sim.recv(2),
        vec![
            Message::Publish(publish(t, PublishQoS::AtMostOnce, 0, b"a")),
            Message::Publish(publish(t, PublishQoS::AtMostOnce, 0, b"b")),
            Message::Publish(publish(t, PublishQoS::AtMostOnce, 0, b"c")),
            Message::PingResp(midge_sn_codec::PingResp),
        ]
    );
    assert_eq!(sim.gw.client_state("dev1"), Some(ClientState::Asleep));
    assert!(sim
        .events
        .iter()
        .any(|e| matches!(e, GatewayEvent::ClientAwake { client_id } if client_id == "dev1")));
}

#[test]
fn sn_6_14_awake_waits_for_each_acknowledgement_before_pingresp() {
    let mut sim = Sim::new(Sim::config());
    sim.connect(1, "dev1", false, 30);
    let ack = sim.subscribe(1, name("inbox"), QoS::AtLeastOnce, 1);
    sim.send(
        1,
        Disconnect {
            duration: Some(600),
        },
    );
    sim.recv(1);
    sim.publish_from_broker("inbox", b"a", MqttQoS::AtLeastOnce);
    sim.publish_from_broker("inbox", b"b", MqttQoS::AtLeastOnce);
    sim.send(
        1,
        PingReq {
            client_id: Some(ClientId::from("dev1")),
        },
    );
    for payload in [&b"a"[..], b"b"] {
        let got = sim.recv(1);
        let [Message::Publish(p)] = got.as_slice() else {
            panic!("{got:?}")
        };
        assert_eq!(&p.data[..], payload);
        assert_eq!(sim.gw.client_state("dev1"), Some(ClientState::Awake));
        sim.send(
            1,
            PubAck {
                topic_id: ack.topic_id,
                msg_id: p.msg_id,
                return_code: ReturnCode::Accepted,
            },
        );
    }
    assert_eq!(
        sim.recv(1),
        vec![Message::PingResp(midge_sn_codec::PingResp)]
    );
    assert_eq!(sim.gw.client_state("dev1"), Some(ClientState::Asleep));
}

#[test]
fn sn_6_14_buffer_limit_drops_and_reports() {
    let mut config = Sim::config();
    config.max_buffered = 2;
    let mut sim = Sim::new(config);
    sim.connect(1, "dev1", false, 30);
    sim.subscribe(1, name("inbox"), QoS::AtMostOnce, 1);
    sim.send(
        1,
        Disconnect {
            duration: Some(600),
        },
    );
    for _ in 0..4 {
        sim.publish_from_broker("inbox", b"m", MqttQoS::AtMostOnce);
    }
    assert_eq!(sim.gw.buffered_len("dev1"), Some(2));
    let full = sim
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                GatewayEvent::Dropped {
                    reason: DropReason::BufferFull,
                    ..
                }
            )
        })
        .count();
    assert_eq!(full, 2);
}

#[test]
fn sn_6_14_asleep_past_its_duration_is_lost_and_its_will_published() {
    let mut sim = Sim::new(Sim::config());
    sim.send(1, connect_msg("dev1", true, true, 30));
    sim.send(
        1,
        WillTopic(Some(will_topic("wills/dev1", QoS::AtMostOnce))),
    );
    sim.send(
        1,
        WillMsg {
            will_msg: Bytes::from_static(b"zzz"),
        },
    );
    sim.send(
        1,
        Disconnect {
            duration: Some(100),
        },
    );
    sim.recv(1);
    // 100 s plus 10 % tolerance (spec 7.2).
    sim.advance(Duration::from_secs(109));
    assert_eq!(sim.gw.client_state("dev1"), Some(ClientState::Asleep));
    sim.advance(Duration::from_secs(2));
    assert_eq!(sim.gw.client_state("dev1"), Some(ClientState::Lost));
    assert_eq!(
        sim.observed_payloads(),
        vec![("wills/dev1".to_owned(), b"zzz".to_vec())]
    );
}

#[test]
fn sn_6_14_active_past_keep_alive_is_lost() {
    let mut sim = Sim::new(Sim::config());
    sim.connect(1, "dev1", true, 20);
    sim.advance(Duration::from_secs(29));
    assert_eq!(sim.gw.client_state("dev1"), Some(ClientState::Active));
    sim.advance(Duration::from_secs(2));
    assert_eq!(sim.gw.client_state("dev1"), Some(ClientState::Lost));
    assert_eq!(sim.lost_events("dev1"), 1);
}

#[test]
fn sn_6_14_connect_from_asleep_returns_to_active_and_delivers_buffered() {
    let mut sim = Sim::new(Sim::config());
    sim.connect(1, "dev1", false, 30);
    sim.subscribe(1, name("inbox"), QoS::AtMostOnce, 1);
    sim.send(
        1,
        Disconnect {
            duration: Some(600),
        },
    );
    sim.recv(1);
    sim.publish_from_broker("inbox", b"kept", MqttQoS::AtMostOnce);
    sim.send(1, connect_msg("dev1", false, false, 30));
    // The registry is announced again after a reconnect (spec 6.10).
    let got = sim.recv(1);
    let [Message::ConnAck(ConnAck {
        return_code: ReturnCode::Accepted,
    }), Message::Register(r)] = got.as_slice()
    else {
        panic!("{got:?}")
    };
    sim.send(
        1,
        RegAck {
            topic_id: r.topic_id,
            msg_id: r.msg_id,
            return_code: ReturnCode::Accepted,
        },
    );
    let got = sim.recv(1);
    assert!(
        matches!(got.as_slice(), [Message::Publish(p)] if &p.data[..] == b"kept"),
        "{got:?}"
    );
    assert_eq!(sim.gw.client_state("dev1"), Some(ClientState::Active));
}

// ----- 6.4 will update -----

#[test]
fn sn_6_4_will_update_is_acknowledged_and_used_when_lost() {
    let mut sim = Sim::new(Sim::config());
    sim.send(1, connect_msg("dev1", true, true, 10));
    sim.send(1, WillTopic(Some(will_topic("wills/old", QoS::AtMostOnce))));
    sim.send(
        1,
        WillMsg {
            will_msg: Bytes::from_static(b"old"),
        },
    );
    sim.recv(1);
    sim.send(
        1,
        WillTopicUpd(Some(will_topic("wills/new", QoS::AtLeastOnce))),
    );
    sim.send(
        1,
        WillMsgUpd {
            will_msg: Bytes::from_static(b"new"),
        },
    );
    assert_eq!(
        sim.recv(1),
        vec![
            Message::WillTopicResp(midge_sn_codec::WillTopicResp {
                return_code: ReturnCode::Accepted
            }),
            Message::WillMsgResp(midge_sn_codec::WillMsgResp {
                return_code: ReturnCode::Accepted
            }),
        ]
    );
    sim.advance(Duration::from_secs(20));
    assert_eq!(sim.gw.client_state("dev1"), Some(ClientState::Lost));
    assert_eq!(
        sim.observed_payloads(),
        vec![("wills/new".to_owned(), b"new".to_vec())]
    );
}

#[test]
fn sn_6_4_empty_willtopicupd_deletes_the_will() {
    let mut sim = Sim::new(Sim::config());
    sim.send(1, connect_msg("dev1", true, true, 10));
    sim.send(1, WillTopic(Some(will_topic("wills/x", QoS::AtMostOnce))));
    sim.send(
        1,
        WillMsg {
            will_msg: Bytes::from_static(b"x"),
        },
    );
    sim.send(1, WillTopicUpd(None));
    sim.advance(Duration::from_secs(20));
    assert_eq!(sim.gw.client_state("dev1"), Some(ClientState::Lost));
    assert!(sim.observed.is_empty(), "{:?}", sim.observed);
}

// ----- 5.5 forwarder encapsulation -----

fn encapsulate(node: &'static [u8], message: impl Into<Message>) -> Message {
    Message::Encapsulated(Encapsulated {
        radius: 0,
        node_id: Bytes::from_static(node),
        message: Box::new(message.into()),
    })
}

#[test]
fn sn_5_5_forwarded_clients_are_answered_through_the_forwarder_with_their_node_id() {
    let mut sim = Sim::new(Sim::config());
    sim.send(
        50,
        encapsulate(b"\x01\x02", connect_msg("n1", false, true, 60)),
    );
    sim.send(50, encapsulate(b"\x03", connect_msg("n2", false, true, 60)));
    let got = sim.recv(50);
    let ack = |node: &'static [u8]| {
        encapsulate(
            node,
            ConnAck {
                return_code: ReturnCode::Accepted,
            },
        )
    };
    assert_eq!(got, vec![ack(b"\x01\x02"), ack(b"\x03")]);
    assert_eq!(sim.gw.client_state("n1"), Some(ClientState::Active));
    assert_eq!(sim.gw.client_state("n2"), Some(ClientState::Active));

    // Each node's registry is its own (spec 7.3).
    sim.send(
        50,
        encapsulate(
            b"\x03",
            Register {
                topic_id: TopicId(0),
                msg_id: 1,
                topic_name: TopicName::from("n2/topic"),
            },
        ),
    );
    let got = sim.recv(50);
    let [Message::Encapsulated(e)] = got.as_slice() else {
        panic!("{got:?}")
    };
    assert_eq!(&e.node_id[..], b"\x03");
    let Message::RegAck(r) = &*e.message else {
        panic!("{e:?}")
    };
    assert_eq!(sim.gw.registrations("n1"), Some(0));

    // A forwarded SEARCHGW is answered through the forwarder, radius in Ctrl.
    sim.send(50, encapsulate(b"\x09", SearchGw { radius: 2 }));
    let got = sim.recv(50);
    let [Message::Encapsulated(e)] = got.as_slice() else {
        panic!("{got:?}")
    };
    assert_eq!((e.radius, &e.node_id[..]), (2, &b"\x09"[..]));

    sim.send(
        50,
        encapsulate(
            b"\x03",
            publish(
                Topic::TopicId(r.topic_id),
                PublishQoS::AtMostOnce,
                0,
                b"via fwd",
            ),
        ),
    );
    assert_eq!(
        sim.observed_payloads(),
        vec![("n2/topic".to_owned(), b"via fwd".to_vec())]
    );
}

// ----- limits -----

#[test]
fn client_limit_answers_congestion_and_evicts_only_remembered_clients() {
    let mut config = Sim::config();
    config.max_clients = 2;
    let mut sim = Sim::new(config);
    assert_eq!(sim.connect(1, "a", true, 60), ReturnCode::Accepted);
    assert_eq!(sim.connect(2, "b", true, 60), ReturnCode::Accepted);
    assert_eq!(sim.connect(3, "c", true, 60), ReturnCode::Congestion);
    assert_eq!(sim.gw.client_count(), 2);
    sim.send(2, Disconnect { duration: None });
    sim.recv(2);
    assert_eq!(sim.connect(3, "c", true, 60), ReturnCode::Accepted);
    assert_eq!(
        sim.gw.client_state("b"),
        None,
        "the disconnected record made room"
    );
    assert!(sim.events.iter().any(|e| matches!(
        e,
        GatewayEvent::ClientDisconnected {
            client_id,
            cause: midge_session::sn::gateway::DisconnectCause::Evicted,
        } if client_id == "b"
    )));
    assert_eq!(sim.gw.client_count(), 2);
}

#[test]
fn sn_6_12_broker_link_lost_sends_disconnect_to_the_client() {
    let mut sim = Sim::new(Sim::config());
    sim.connect(1, "dev1", true, 60);
    let conns: Vec<ConnId> = sim
        .sessions
        .iter()
        .filter(|(_, (_, side))| matches!(side, Side::Gateway(_)))
        .map(|(c, _)| *c)
        .collect();
    for conn in conns {
        let (s, _) = sim.sessions.get_mut(&conn).unwrap();
        s.close(sim.now);
    }
    sim.run();
    assert_eq!(
        sim.recv(1),
        vec![Message::Disconnect(Disconnect { duration: None })]
    );
    assert_eq!(sim.gw.client_state("dev1"), Some(ClientState::Disconnected));
    assert_eq!(sim.gw.broker_connections(), 0);
}

#[test]
fn sn_6_2_broker_refusal_maps_to_connack_not_supported() {
    let mut sim = Sim::with_denied(Sim::config(), &["intruder"]);
    assert_eq!(
        sim.connect(1, "intruder", true, 60),
        ReturnCode::NotSupported
    );
    assert_eq!(
        sim.gw.client_state("intruder"),
        Some(ClientState::Disconnected)
    );
    assert_eq!(sim.gw.broker_connections(), 0);
    assert!(sim.events.iter().any(|e| matches!(
        e,
        GatewayEvent::ClientDisconnected {
            cause: midge_session::sn::gateway::DisconnectCause::Refused(ReturnCode::NotSupported),
            ..
        }
    )));
}

#[test]
fn sn_6_3_persistent_session_keeps_the_will_when_reconnecting_without_will_flag() {
    let mut sim = Sim::new(Sim::config());
    sim.send(1, connect_msg("dev1", true, false, 10));
    sim.send(
        1,
        WillTopic(Some(will_topic("wills/dev1", QoS::AtMostOnce))),
    );
    sim.send(
        1,
        WillMsg {
            will_msg: Bytes::from_static(b"kept will"),
        },
    );
    sim.send(1, Disconnect { duration: None });
    sim.recv(1);
    // CleanSession=false, Will=false: the stored will stays (no prompts).
    assert_eq!(sim.connect(1, "dev1", false, 10), ReturnCode::Accepted);
    sim.advance(Duration::from_secs(16));
    assert_eq!(sim.gw.client_state("dev1"), Some(ClientState::Lost));
    assert_eq!(
        sim.observed_payloads(),
        vec![("wills/dev1".to_owned(), b"kept will".to_vec())]
    );

    // CleanSession=true, Will=false: the will is gone.
    sim.observed.clear();
    assert_eq!(sim.connect(1, "dev1", true, 10), ReturnCode::Accepted);
    sim.advance(Duration::from_secs(16));
    assert_eq!(sim.gw.client_state("dev1"), Some(ClientState::Lost));
    assert!(sim.observed.is_empty(), "{:?}", sim.observed);
}

#[test]
fn sn_6_6_qos2_pubrec_waits_for_the_brokers_pubcomp() {
    // The gateway answers a QoS 2 PUBLISH only once its own QoS 2 exchange
    // with the broker is complete, so a DISCONNECT right after the client's
    // exchange can never overtake the gateway's PUBREL to the broker (a
    // broker may hand the message on only at PUBREL).
    let mut sim = Sim::new(Sim::config());
    sim.connect(1, "dev1", true, 60);
    let id = sim.register(1, "q/2", 1);
    let mut buf = BytesMut::new();
    Message::from(publish(
        Topic::TopicId(TopicId(id)),
        PublishQoS::ExactlyOnce,
        5,
        b"x",
    ))
    .encode(&mut buf)
    .unwrap();
    let now = sim.now;
    sim.gw.handle_datagram(now, 1, &buf).unwrap();
    let mut out = BytesMut::new();
    assert!(
        sim.gw.poll_transmit(now, &mut out).is_none(),
        "PUBREC before the broker completed its exchange"
    );
    sim.run();
    assert_eq!(sim.recv(1), vec![Message::PubRec(PubRec { msg_id: 5 })]);
    sim.send(1, PubRel { msg_id: 5 });
    assert_eq!(sim.recv(1), vec![Message::PubComp(PubComp { msg_id: 5 })]);
    assert_eq!(
        sim.observed_payloads(),
        vec![("q/2".to_owned(), b"x".to_vec())]
    );
}

#[test]
fn sn_6_6_open_exchanges_beyond_the_limit_get_congestion() {
    let mut config = Sim::config();
    config.max_client_inflight = 1;
    let mut sim = Sim::new(config);
    sim.connect(1, "dev1", true, 60);
    let id = sim.register(1, "q/2", 1);
    let t = Topic::TopicId(TopicId(id));
    sim.send(1, publish(t, PublishQoS::ExactlyOnce, 2, b"first"));
    assert_eq!(sim.recv(1), vec![Message::PubRec(PubRec { msg_id: 2 })]);
    // No PUBREL yet: the exchange is still open.
    sim.send(1, publish(t, PublishQoS::ExactlyOnce, 3, b"second"));
    assert_eq!(
        sim.recv(1),
        vec![Message::PubAck(PubAck {
            topic_id: TopicId(id),
            msg_id: 3,
            return_code: ReturnCode::Congestion
        })]
    );
    sim.send(1, PubRel { msg_id: 2 });
    sim.recv(1);
    sim.send(1, publish(t, PublishQoS::ExactlyOnce, 4, b"third"));
    assert_eq!(sim.recv(1), vec![Message::PubRec(PubRec { msg_id: 4 })]);
    let payloads: Vec<Vec<u8>> = sim
        .observed_payloads()
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(payloads, vec![b"first".to_vec(), b"third".to_vec()]);
}

#[test]
fn sn_6_6_retain_flag_is_carried_both_ways() {
    let mut sim = Sim::new(Sim::config());
    sim.connect(1, "pub", true, 60);
    let mut p = publish(Topic::Short(*b"rt"), PublishQoS::AtLeastOnce, 1, b"last");
    p.retain = true;
    sim.send(1, p);
    assert!(
        matches!(sim.recv(1).as_slice(), [Message::PubAck(a)] if a.return_code == ReturnCode::Accepted)
    );
    assert_eq!(
        sim.observed_payloads(),
        vec![("rt".to_owned(), b"last".to_vec())]
    );

    sim.connect(2, "sub", true, 60);
    sim.send(
        2,
        Subscribe {
            dup: false,
            qos: QoS::AtMostOnce,
            msg_id: 1,
            topic: SubscribeTopic::Short(*b"rt"),
        },
    );
    let got = sim.recv(2);
    assert!(matches!(got.first(), Some(Message::SubAck(_))), "{got:?}");
    let Some(Message::Publish(r)) = got.get(1) else {
        panic!("expected the retained message after SUBACK: {got:?}");
    };
    assert!(r.retain);
    assert_eq!((&r.data[..], r.topic), (&b"last"[..], Topic::Short(*b"rt")));
}

#[test]
fn sn_6_14_sleep_duration_can_change_and_disconnect_from_awake_ends_the_session() {
    let mut sim = Sim::new(Sim::config());
    sim.connect(1, "dev1", false, 30);
    sim.send(1, Disconnect { duration: Some(20) });
    sim.send(
        1,
        Disconnect {
            duration: Some(200),
        },
    );
    sim.recv(1);
    // The new duration (plus 10 %) supervises now, not the first one.
    sim.advance(Duration::from_secs(100));
    assert_eq!(sim.gw.client_state("dev1"), Some(ClientState::Asleep));
    sim.send(
        1,
        PingReq {
            client_id: Some(ClientId::from("dev1")),
        },
    );
    assert_eq!(
        sim.recv(1),
        vec![Message::PingResp(midge_sn_codec::PingResp)]
    );
    sim.send(1, Disconnect { duration: None });
    assert_eq!(
        sim.recv(1),
        vec![Message::Disconnect(Disconnect { duration: None })]
    );
    assert_eq!(sim.gw.client_state("dev1"), Some(ClientState::Disconnected));
    assert_eq!(sim.gw.broker_connections(), 0);
}

#[test]
fn sn_6_9_broker_refusing_a_subscription_maps_to_not_supported() {
    let mut sim = Sim::new(Sim::config());
    sim.connect(1, "dev1", true, 60);
    let ack = sim.subscribe(1, name("secret/#"), QoS::AtLeastOnce, 4);
    assert_eq!(
        ack,
        SubAck {
            qos: QoS::AtMostOnce,
            topic_id: TopicId(0),
            msg_id: 4,
            return_code: ReturnCode::NotSupported
        }
    );
}

#[test]
fn sn_6_10_an_id_refused_by_the_broker_is_never_used_without_register() {
    let mut sim = Sim::new(Sim::config());
    sim.connect(1, "dev1", true, 60);
    let wide = sim.subscribe(1, name("vault/+"), QoS::AtMostOnce, 1);
    assert_eq!(wide.return_code, ReturnCode::Accepted);
    let refused = sim.subscribe(1, name("vault/x"), QoS::AtMostOnce, 2);
    assert_eq!(refused.return_code, ReturnCode::NotSupported);
    sim.publish_from_broker("vault/x", b"v", MqttQoS::AtMostOnce);
    assert!(
        matches!(sim.recv(1).as_slice(), [Message::Register(r)] if r.topic_name.as_str() == "vault/x"),
        "the client never learned an id for vault/x"
    );
}

#[test]
fn sn_6_7_the_id_from_suback_wins_over_short_and_predefined_forms() {
    let config = Sim::config().with_predefined(5, "plant/boiler");
    let mut sim = Sim::new(config);
    sim.connect(1, "dev1", true, 60);
    let short = sim.subscribe(1, name("ab"), QoS::AtMostOnce, 1);
    let pre = sim.subscribe(1, name("plant/boiler"), QoS::AtMostOnce, 2);
    assert_ne!(short.topic_id, TopicId(0));
    assert_ne!(pre.topic_id, short.topic_id);
    sim.publish_from_broker("ab", b"1", MqttQoS::AtMostOnce);
    sim.publish_from_broker("plant/boiler", b"2", MqttQoS::AtMostOnce);
    assert_eq!(
        sim.recv(1),
        vec![
            Message::Publish(publish(
                Topic::TopicId(short.topic_id),
                PublishQoS::AtMostOnce,
                0,
                b"1"
            )),
            Message::Publish(publish(
                Topic::TopicId(pre.topic_id),
                PublishQoS::AtMostOnce,
                0,
                b"2"
            )),
        ]
    );
}

fn dropped(sim: &Sim, reason: DropReason) -> usize {
    sim.events
        .iter()
        .filter(|e| matches!(e, GatewayEvent::Dropped { reason: r, .. } if *r == reason))
        .count()
}

#[test]
fn sn_6_10_delivery_needing_an_id_beyond_the_registry_limit_is_dropped() {
    let mut config = Sim::config();
    config.max_registrations = 1;
    let mut sim = Sim::new(config);
    sim.connect(1, "dev1", true, 60);
    sim.subscribe(1, name("w/+"), QoS::AtMostOnce, 1);
    sim.publish_from_broker("w/a", b"1", MqttQoS::AtMostOnce);
    let got = sim.recv(1);
    let [Message::Register(r)] = got.as_slice() else {
        panic!("{got:?}")
    };
    sim.send(
        1,
        RegAck {
            topic_id: r.topic_id,
            msg_id: r.msg_id,
            return_code: ReturnCode::Accepted,
        },
    );
    assert_eq!(sim.recv(1).len(), 1, "w/a delivered");
    sim.publish_from_broker("w/b", b"2", MqttQoS::AtMostOnce);
    assert!(sim.recv(1).is_empty());
    assert_eq!(dropped(&sim, DropReason::RegistryFull), 1);
    assert_eq!(sim.gw.registrations("dev1"), Some(1));
}

#[test]
fn sn_6_10_message_too_long_for_a_datagram_is_dropped_silently() {
    let mut config = Sim::config();
    config.max_datagram = 32;
    let mut sim = Sim::new(config);
    sim.connect(1, "dev1", true, 60);
    sim.subscribe(1, SubscribeTopic::Short(*b"lg"), QoS::AtMostOnce, 1);
    sim.publish_from_broker(
        "lg",
        b"this payload is far too long for 32 octets",
        MqttQoS::AtMostOnce,
    );
    sim.publish_from_broker("lg", b"fits", MqttQoS::AtMostOnce);
    assert_eq!(
        sim.recv(1),
        vec![Message::Publish(publish(
            Topic::Short(*b"lg"),
            PublishQoS::AtMostOnce,
            0,
            b"fits"
        ))]
    );
    assert_eq!(dropped(&sim, DropReason::TooLong), 1);
}

// ----- end to end under loss (property) -----

/// A scripted SN publisher that retries every step until the expected answer
/// arrives (spec 6.13 on the client side). Datagrams to the gateway are lost
/// with probability 1/`loss`, answers likewise (the simulation's downlink).
/// Returns whether every exchange completed.
fn publish_reliably(sim: &mut Sim, seed: u64, loss: u64, topic: Topic, qos_list: &[u8]) -> bool {
    let mut rng = seed | 1;
    let mut lossy_send = |sim: &mut Sim, m: Message| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        if rng % loss != 0 {
            let _ = sim.send_raw(1, m);
        }
    };
    sim.loss_one_in = Some(loss);
    for (i, q) in qos_list.iter().enumerate() {
        let msg_id = u16::try_from(i + 1).unwrap();
        let data = Bytes::from(format!("m{i}"));
        let qos = match q % 3 {
            0 => PublishQoS::AtMostOnce,
            1 => PublishQoS::AtLeastOnce,
            _ => PublishQoS::ExactlyOnce,
        };
        let mut p = Publish {
            dup: false,
            qos,
            retain: false,
            topic,
            msg_id: if qos == PublishQoS::AtMostOnce {
                0
            } else {
                msg_id
            },
            data,
        };
        if qos == PublishQoS::AtMostOnce {
            lossy_send(sim, p.into());
            continue;
        }
        let mut released = false;
        let mut done = false;
        for _ in 0..60 {
            let m = if released {
                PubRel { msg_id }.into()
            } else {
                Message::Publish(p.clone())
            };
            lossy_send(sim, m);
            p.dup = true;
            for answer in sim.recv(1) {
                match answer {
                    Message::PubAck(a) if a.msg_id == msg_id => done = true,
                    Message::PubRec(r) if r.msg_id == msg_id => released = true,
                    Message::PubComp(c) if c.msg_id == msg_id => done = true,
                    _ => {}
                }
            }
            if done {
                break;
            }
        }
        if !done {
            return false;
        }
    }
    sim.loss_one_in = None;
    true
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    #[test]
    fn sn_6_6_qos_holds_end_to_end_over_a_lossy_link(
        seed in proptest::prelude::any::<u64>(),
        loss in 2u64..6,
        qos_list in proptest::collection::vec(0u8..3, 1..12),
    ) {
        let mut sim = Sim::new(Sim::config());
        sim.rng = seed | 1;
        assert_eq!(sim.connect(1, "pub", true, 0), ReturnCode::Accepted);
        let topic = Topic::TopicId(TopicId(sim.register(1, "e2e/t", 1)));
        proptest::prop_assert!(publish_reliably(&mut sim, seed, loss, topic, &qos_list));
        let observed = sim.observed_payloads();
        for (i, q) in qos_list.iter().enumerate() {
            let want = format!("m{i}").into_bytes();
            let n = observed.iter().filter(|(_, p)| *p == want).count();
            match q % 3 {
                0 => proptest::prop_assert!(n <= 1),
                1 => proptest::prop_assert!(n >= 1),
                _ => proptest::prop_assert_eq!(n, 1, "QoS 2 message {} arrived {} times", i, n),
            }
        }
    }
}

#[test]
fn sn_6_10_topic_name_too_long_for_register_is_dropped_and_frees_its_id() {
    let mut config = Sim::config();
    config.max_datagram = 24;
    let mut sim = Sim::new(config);
    sim.connect(1, "dev1", true, 60);
    sim.subscribe(1, name("#"), QoS::AtMostOnce, 1);
    sim.publish_from_broker("a/rather/long/topic/name/here", b"x", MqttQoS::AtMostOnce);
    assert!(sim.recv(1).is_empty());
    assert_eq!(dropped(&sim, DropReason::TooLong), 1);
    assert_eq!(sim.gw.registrations("dev1"), Some(0));
}
