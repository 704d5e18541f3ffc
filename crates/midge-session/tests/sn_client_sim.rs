//! Deterministic simulation: `SnClient`s ↔ the SN gateway core ↔ the broker
//! core (`ServerSession` + `Router`), all in memory on a virtual clock, with
//! an MQTT observer subscribed to `#` that sees what reaches the broker and
//! publishes what the SN clients should receive. The link can lose datagrams
//! (seeded). Two machines written separately must agree on every exchange.
//!
//! Test names carry the MQTT-SN 1.2 section that decides the behaviour.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use midge_broker::{
    Action, Auth, ConnId, ConnectRequest, Event as ServerEvent, MemoryStore, Router, RouterConfig,
    ServerConfig, ServerSession,
};
use midge_codec::QoS as MqttQoS;
use midge_session::sn::client::{
    Destination, SnClient, SnClientConfig, SnEvent, SnState, SnTopic, SnWill,
};
use midge_session::sn::gateway::{
    BrokerOp, ConnKey, Destination as GwDestination, Gateway, GatewayConfig,
};
use midge_session::{Client, ClientConfig, Event as ClientEvent};
use midge_sn_codec::{PublishQoS, QoS};
use midge_time::{Duration, Instant};

type Addr = u32;
const GW_ADDR: Addr = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Gateway(ConnKey),
    Observer,
}

#[derive(Debug, Default)]
struct OpenAuth;

impl Auth for OpenAuth {
    fn connect(
        &mut self,
        _client_id: &str,
        _username: Option<&str>,
        _password: Option<&[u8]>,
    ) -> Result<(), midge_codec::ConnectReturnCode> {
        Ok(())
    }

    fn may_publish(&self, _client_id: &str, _username: Option<&str>, _topic: &str) -> bool {
        true
    }

    fn may_subscribe(&self, _client_id: &str, _username: Option<&str>, _filter: &str) -> bool {
        true
    }
}

struct Sim {
    now: Instant,
    gw: Gateway<Addr>,
    router: Router<MemoryStore, OpenAuth>,
    sessions: BTreeMap<ConnId, (ServerSession, Side)>,
    key_conn: BTreeMap<ConnKey, ConnId>,
    observer: Client,
    observer_conn: Option<ConnId>,
    observed: Vec<(String, Vec<u8>)>,
    clients: BTreeMap<Addr, SnClient<Addr>>,
    events: BTreeMap<Addr, Vec<SnEvent<Addr>>>,
    next_conn: u64,
    /// Each datagram (either way) is lost with probability 1/n.
    loss_one_in: Option<u64>,
    rng: u64,
    lost: usize,
}

impl Sim {
    fn new(config: GatewayConfig) -> Self {
        let now = Instant::from_secs(1000);
        let mut sim = Self {
            now,
            gw: Gateway::new(config, now).unwrap(),
            router: Router::new(RouterConfig::default(), MemoryStore::new(), OpenAuth),
            sessions: BTreeMap::new(),
            key_conn: BTreeMap::new(),
            observer: Client::new(ClientConfig::new("observer").with_keep_alive(0)).unwrap(),
            observer_conn: None,
            observed: Vec::new(),
            clients: BTreeMap::new(),
            events: BTreeMap::new(),
            next_conn: 1,
            loss_one_in: None,
            rng: 0x9E37_79B9_7F4A_7C15,
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

    fn gateway_config() -> GatewayConfig {
        let mut c = GatewayConfig::new(7);
        c.t_adv = None;
        c.predefined.insert(0x0101, "pre/one".into());
        c
    }

    fn client_config(id: &str) -> SnClientConfig<Addr> {
        let mut c = SnClientConfig::new(id);
        c.keep_alive = 0;
        c.predefined = vec![(0x0101, "pre/one".into())];
        c
    }

    fn add_client(&mut self, addr: Addr, config: SnClientConfig<Addr>) {
        self.clients.insert(addr, SnClient::new(config).unwrap());
    }

    fn client(&mut self, addr: Addr) -> &mut SnClient<Addr> {
        self.clients.get_mut(&addr).unwrap()
    }

    fn take_events(&mut self, addr: Addr) -> Vec<SnEvent<Addr>> {
        self.events.remove(&addr).unwrap_or_default()
    }

    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    fn lose(&mut self) -> bool {
        let lose = match self.loss_one_in {
            Some(n) => self.random() % n == 0,
            None => false,
        };
        self.lost += usize::from(lose);
        lose
    }

    fn open_session(&mut self, side: Side) -> ConnId {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        let session = ServerSession::new(ServerConfig::default(), self.now, conn.0);
        self.sessions.insert(conn, (session, side));
        conn
    }

    /// Connects client `addr` to the gateway and waits for CONNACK.
    fn connect(&mut self, addr: Addr) {
        let now = self.now;
        self.client(addr).connect(now, GW_ADDR).unwrap();
        self.run();
        let events = self.take_events(addr);
        assert!(
            events.contains(&SnEvent::Connected { gateway: GW_ADDR }),
            "{events:?}"
        );
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
        // The gateway's broker side.
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
        // Gateway → clients.
        loop {
            let mut buf = BytesMut::new();
            let Some(t) = self.gw.poll_transmit(now, &mut buf) else {
                break;
            };
            progress = true;
            let targets: Vec<Addr> = match t.to {
                GwDestination::Unicast(addr) => vec![addr],
                GwDestination::Broadcast { .. } => self.clients.keys().copied().collect(),
            };
            for addr in targets {
                if self.lose() {
                    continue;
                }
                if let Some(c) = self.clients.get_mut(&addr) {
                    c.handle_datagram(now, GW_ADDR, &buf).unwrap();
                }
            }
        }
        while self.gw.poll_event().is_some() {
            progress = true;
        }
        // Clients → gateway (and other clients, for broadcasts).
        let addrs: Vec<Addr> = self.clients.keys().copied().collect();
        for addr in addrs {
            let mut out = Vec::new();
            let c = self.clients.get_mut(&addr).unwrap();
            loop {
                let mut buf = BytesMut::new();
                let Some(t) = c.poll_transmit(now, &mut buf) else {
                    break;
                };
                out.push((t.to, buf));
            }
            let mut evs = Vec::new();
            while let Some(e) = c.poll_event() {
                evs.push(e);
            }
            if !evs.is_empty() {
                progress = true;
                self.events.entry(addr).or_default().extend(evs);
            }
            for (to, buf) in out {
                progress = true;
                match to {
                    Destination::Unicast(GW_ADDR) => {
                        if !self.lose() {
                            let _ = self.gw.handle_datagram(now, addr, &buf);
                        }
                    }
                    Destination::Unicast(_) => {}
                    Destination::Broadcast { .. } => {
                        let _ = self.gw.handle_datagram(now, addr, &buf);
                        for (other, c) in &mut self.clients {
                            if *other != addr {
                                let _ = c.handle_datagram(now, addr, &buf);
                            }
                        }
                    }
                }
            }
        }
        // The observer.
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
                self.observed
                    .push((publish.topic.as_str().to_owned(), publish.payload.to_vec()));
            }
        }
        // The broker sessions.
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
                .chain(self.clients.values().filter_map(SnClient::poll_timeout))
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
                    for c in self.clients.values_mut() {
                        c.handle_timeout(now);
                    }
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
}

fn delivered(events: &[SnEvent<Addr>]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, SnEvent::Delivered { .. }))
        .count()
}

fn messages(events: &[SnEvent<Addr>]) -> Vec<(SnTopic, Vec<u8>)> {
    events
        .iter()
        .filter_map(|e| match e {
            SnEvent::Message { topic, payload, .. } => Some((topic.clone(), payload.to_vec())),
            _ => None,
        })
        .collect()
}

#[test]
fn sn_6_1_search_finds_the_gateway_then_connect() {
    let mut sim = Sim::new(Sim::gateway_config());
    sim.add_client(1, Sim::client_config("finder"));
    let now = sim.now;
    sim.client(1).search_gateway(now).unwrap();
    sim.advance(Duration::from_secs(6));
    let events = sim.take_events(1);
    assert_eq!(
        events,
        vec![SnEvent::GatewayFound {
            gw_id: 7,
            address: GW_ADDR
        }]
    );
    sim.connect(1);
    assert_eq!(sim.client(1).state(), SnState::Active);
}

#[test]
fn sn_6_6_publishes_on_every_topic_form_and_qos_reach_the_broker() {
    let mut sim = Sim::new(Sim::gateway_config());
    sim.add_client(1, Sim::client_config("pub"));
    sim.connect(1);
    let now = sim.now;
    let c = sim.client(1);
    let name = |s: &str| SnTopic::Name(s.into());
    c.publish(now, name("a/b"), &b"q0"[..], PublishQoS::AtMostOnce, false)
        .unwrap();
    c.publish(now, name("a/b"), &b"q1"[..], PublishQoS::AtLeastOnce, false)
        .unwrap();
    c.publish(now, name("a/c"), &b"q2"[..], PublishQoS::ExactlyOnce, false)
        .unwrap();
    c.publish(
        now,
        SnTopic::Predefined(0x0101),
        &b"pre"[..],
        PublishQoS::AtLeastOnce,
        false,
    )
    .unwrap();
    c.publish(
        now,
        SnTopic::Short(*b"sh"),
        &b"short"[..],
        PublishQoS::ExactlyOnce,
        false,
    )
    .unwrap();
    sim.run();
    let events = sim.take_events(1);
    assert_eq!(delivered(&events), 5, "{events:?}");
    assert_eq!(
        sim.observed,
        vec![
            ("a/b".to_owned(), b"q0".to_vec()),
            ("a/b".to_owned(), b"q1".to_vec()),
            ("a/c".to_owned(), b"q2".to_vec()),
            ("pre/one".to_owned(), b"pre".to_vec()),
            ("sh".to_owned(), b"short".to_vec()),
        ]
    );
}

#[test]
fn sn_6_8_qos_minus_one_without_a_connection_reaches_the_broker() {
    let mut sim = Sim::new(Sim::gateway_config());
    let mut cfg = Sim::client_config("tiny");
    cfg.gateways = vec![(7, GW_ADDR)];
    sim.add_client(1, cfg);
    let now = sim.now;
    sim.client(1)
        .publish(
            now,
            SnTopic::Predefined(0x0101),
            &b"m1"[..],
            PublishQoS::MinusOne,
            false,
        )
        .unwrap();
    sim.run();
    assert_eq!(sim.observed, vec![("pre/one".to_owned(), b"m1".to_vec())]);
}

#[test]
fn sn_6_10_wildcard_subscription_gets_register_then_messages_by_name() {
    let mut sim = Sim::new(Sim::gateway_config());
    sim.add_client(1, Sim::client_config("sub"));
    sim.connect(1);
    let now = sim.now;
    sim.client(1)
        .subscribe(now, SnTopic::Name("news/+".into()), QoS::AtLeastOnce)
        .unwrap();
    sim.client(1)
        .subscribe(now, SnTopic::Name("exact".into()), QoS::ExactlyOnce)
        .unwrap();
    sim.run();
    let events = sim.take_events(1);
    assert!(
        events
            .iter()
            .filter(|e| matches!(e, SnEvent::Subscribed { .. }))
            .count()
            == 2,
        "{events:?}"
    );
    sim.publish_from_broker("news/a", b"1", MqttQoS::AtLeastOnce);
    sim.publish_from_broker("news/b", b"2", MqttQoS::AtMostOnce);
    sim.publish_from_broker("exact", b"3", MqttQoS::ExactlyOnce);
    sim.publish_from_broker("news/a", b"4", MqttQoS::AtLeastOnce);
    let events = sim.take_events(1);
    assert_eq!(
        messages(&events),
        vec![
            (SnTopic::Name("news/a".into()), b"1".to_vec()),
            (SnTopic::Name("news/b".into()), b"2".to_vec()),
            (SnTopic::Name("exact".into()), b"3".to_vec()),
            (SnTopic::Name("news/a".into()), b"4".to_vec()),
        ]
    );
    assert_eq!(sim.client(1).stats().unknown_topic_ids, 0);
}

#[test]
fn sn_6_14_sleeping_client_collects_what_the_gateway_buffered() {
    let mut sim = Sim::new(Sim::gateway_config());
    sim.add_client(1, Sim::client_config("sleepy"));
    sim.connect(1);
    let now = sim.now;
    sim.client(1)
        .subscribe(now, SnTopic::Short(*b"zz"), QoS::AtLeastOnce)
        .unwrap();
    sim.run();
    sim.take_events(1);
    let now = sim.now;
    sim.client(1).sleep(now, 600).unwrap();
    sim.run();
    assert_eq!(sim.take_events(1), vec![SnEvent::Asleep { duration: 600 }]);
    sim.publish_from_broker("zz", b"while asleep 1", MqttQoS::AtLeastOnce);
    sim.publish_from_broker("zz", b"while asleep 2", MqttQoS::AtMostOnce);
    assert_eq!(
        sim.take_events(1),
        vec![],
        "nothing reaches a sleeping client"
    );
    sim.advance(Duration::from_secs(300));
    let now = sim.now;
    sim.client(1).wake_once(now).unwrap();
    sim.run();
    let events = sim.take_events(1);
    assert_eq!(
        messages(&events),
        vec![
            (SnTopic::Short(*b"zz"), b"while asleep 1".to_vec()),
            (SnTopic::Short(*b"zz"), b"while asleep 2".to_vec()),
        ]
    );
    assert_eq!(events.last(), Some(&SnEvent::AwakeDone { complete: true }));
    assert_eq!(sim.client(1).state(), SnState::Asleep);
}

#[test]
fn sn_6_2_will_is_published_when_the_client_goes_silent() {
    let mut sim = Sim::new(Sim::gateway_config());
    let mut cfg = Sim::client_config("mortal");
    cfg.keep_alive = 10;
    cfg.will = Some(SnWill::new("wills/mortal", &b"gone"[..]));
    sim.add_client(1, cfg);
    sim.connect(1);
    // The device dies: nothing more from it.
    sim.clients.remove(&1);
    sim.advance(Duration::from_secs(60));
    assert_eq!(
        sim.observed,
        vec![("wills/mortal".to_owned(), b"gone".to_vec())]
    );
}

#[test]
fn sn_6_13_a_lossy_link_still_delivers_every_qos1_publish() {
    let mut sim = Sim::new(Sim::gateway_config());
    let mut cfg = Sim::client_config("lossy");
    cfg.n_retry = 10;
    sim.add_client(1, cfg);
    sim.connect(1);
    sim.loss_one_in = Some(4);
    let now = sim.now;
    let mut ids = Vec::new();
    for i in 0..20u8 {
        let payload = Bytes::from(vec![b'0' + i % 10]);
        ids.push(
            sim.client(1)
                .publish(
                    now,
                    SnTopic::Name("lossy/t".into()),
                    payload,
                    PublishQoS::AtLeastOnce,
                    false,
                )
                .unwrap(),
        );
    }
    sim.run();
    sim.advance(Duration::from_secs(3600));
    let events = sim.take_events(1);
    assert_eq!(delivered(&events), 20, "{events:?}");
    assert!(
        sim.lost > 0,
        "the link lost nothing: the test proves nothing"
    );
    // At least once: every payload arrived, in order of first arrival.
    let mut firsts: Vec<Vec<u8>> = Vec::new();
    for (topic, payload) in &sim.observed {
        assert_eq!(topic, "lossy/t");
        if firsts.last() != Some(payload) {
            firsts.push(payload.clone());
        }
    }
    let expected: Vec<Vec<u8>> = (0..20u8).map(|i| vec![b'0' + i % 10]).collect();
    assert_eq!(firsts, expected);
}

/// Seeded loss in both directions, N_retry generous enough that no exchange
/// gives up: every QoS 2 publish reaches the broker exactly once, every QoS 1
/// publish at least once, in order, and each is reported `Delivered`.
#[test]
fn sn_6_13_lossy_links_keep_qos2_exactly_once_for_many_seeds() {
    for seed in 1..=24u64 {
        let mut sim = Sim::new(Sim::gateway_config());
        let mut cfg = Sim::client_config("seeded");
        cfg.n_retry = 30;
        cfg.seed = seed;
        sim.add_client(1, cfg);
        sim.connect(1);
        sim.rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        sim.loss_one_in = Some(3 + seed % 4);
        let now = sim.now;
        for i in 0..8u8 {
            let qos = if i % 2 == 0 {
                PublishQoS::ExactlyOnce
            } else {
                PublishQoS::AtLeastOnce
            };
            let topic = SnTopic::Name(format!("seed/{}", i % 3));
            sim.client(1)
                .publish(now, topic, Bytes::from(vec![i]), qos, false)
                .unwrap();
        }
        sim.run();
        sim.advance(Duration::from_secs(6 * 3600));
        let events = sim.take_events(1);
        assert_eq!(delivered(&events), 8, "seed {seed}: {events:?}");
        let mut seen: Vec<u8> = Vec::new();
        for (topic, payload) in &sim.observed {
            let i = payload[0];
            assert_eq!(topic, &format!("seed/{}", i % 3), "seed {seed}");
            if i % 2 == 0 {
                assert!(!seen.contains(&i), "seed {seed}: QoS 2 message {i} twice");
            }
            if seen.last() != Some(&i) {
                seen.push(i);
            }
        }
        assert_eq!(seen, (0..8).collect::<Vec<u8>>(), "seed {seed}");
        assert!(sim.lost > 0, "seed {seed}: nothing lost, nothing proven");
    }
}
