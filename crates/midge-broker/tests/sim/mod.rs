//! A deterministic simulation of the broker core: `midge-session` clients ↔
//! one `ServerSession` per connection ↔ the `Router`, with packets moved in
//! memory, a virtual clock, and injectable faults (packet duplication, a
//! link cut that loses what is in flight, one-way black holes, and a
//! shuffled service order that reorders traffic between connections).
//! Nothing sleeps and nothing is random unless seeded.
//!
//! Packets within one connection are never reordered or silently lost:
//! MQTT runs over an ordered, reliable transport, so loss is modelled as the
//! connection failing with the packet (`Faults::cut_one_in`).
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::BytesMut;
use midge_broker::router::{
    shard_of, Action, Auth, ConnId, ConnectRequest, MemoryStore, Router, ShardMessage,
};
use midge_broker::{DropReason, Event as ServerEvent, RouterConfig, ServerConfig, ServerSession};
use midge_codec::ConnectReturnCode;
use midge_codec::{Decoder, Packet, Publish, QoS};
use midge_session::{Client, ClientConfig, Event as ClientEvent};
use midge_time::{Duration, Instant};

/// Lets everyone in; publishing to a topic in `deny_publish` is refused.
#[derive(Debug, Clone, Default)]
pub struct SimAuth {
    pub deny_publish: Vec<String>,
}

impl Auth for SimAuth {
    fn connect(
        &mut self,
        _client_id: &str,
        _username: Option<&str>,
        _password: Option<&[u8]>,
    ) -> Result<(), ConnectReturnCode> {
        Ok(())
    }

    fn may_publish(&self, _client_id: &str, _username: Option<&str>, topic: &str) -> bool {
        !self.deny_publish.iter().any(|t| t == topic)
    }

    fn may_subscribe(&self, _client_id: &str, _username: Option<&str>, _filter: &str) -> bool {
        true
    }
}

/// Faults applied to one client's link.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Every PUBLISH, PUBACK, PUBREC, PUBREL and PUBCOMP is sent twice.
    pub duplicate: bool,
    /// Client-to-server packets vanish (the transport stays up).
    pub blackhole_to_server: bool,
    /// Server-to-client packets vanish (the transport stays up).
    pub blackhole_to_client: bool,
    /// Each packet has one chance in `n` to be lost together with the
    /// connection (both ends see the transport close).
    pub cut_one_in: Option<u32>,
    /// A slow reader: the client reads at most this many packets per step,
    /// and its server session is polled for output only while fewer than
    /// [`SOCKET_PACKETS`] wait on the link (a full socket buffer).
    pub read_per_step: Option<usize>,
}

/// Packets a link to a slow reader holds before the server stops writing.
pub const SOCKET_PACKETS: usize = 64;

/// One simulated client.
pub struct Node {
    pub client: Client,
    /// Every event the client reported, in order.
    pub events: Vec<ClientEvent>,
    pub conn: Option<ConnId>,
    pub faults: Faults,
}

struct Link {
    server: ServerSession,
    node: usize,
    to_server: VecDeque<Packet>,
    to_client: VecDeque<Packet>,
    /// The client end closed; close the server end once it has read.
    client_gone: bool,
}

pub struct Sim {
    pub now: Instant,
    /// The router shards (one unless built with `with_shards`).
    pub routers: Vec<Router<MemoryStore, SimAuth>>,
    /// The shard each connection's CONNECT went to.
    conn_shard: BTreeMap<ConnId, usize>,
    pub nodes: Vec<Node>,
    links: BTreeMap<ConnId, Link>,
    server_config: ServerConfig,
    next_conn: u64,
    rng: u64,
    /// Serve connections in a seeded random order on every step, so that
    /// traffic of different connections interleaves differently.
    pub shuffle: bool,
    /// Connections the router paused: their bytes wait on the link.
    pub paused: BTreeSet<ConnId>,
    /// Every `PausePublisher` applied.
    pub pauses: usize,
    /// Every `DeliveryDropped` reported: (target, publisher, reason).
    pub drops: Vec<(ConnId, Option<ConnId>, DropReason)>,
    /// The longest session queue seen right after a delivery, per node.
    pub max_queued: BTreeMap<usize, usize>,
    /// Packets a server session reads from its link per step (a read
    /// buffer); `None` reads everything waiting.
    pub read_budget: Option<usize>,
}

fn split(bytes: &mut BytesMut, decoder: &mut Decoder) -> Vec<Packet> {
    let mut out = Vec::new();
    while let Some(p) = decoder.decode(bytes).expect("peer sent undecodable bytes") {
        out.push(p);
    }
    out
}

fn encode(packet: &Packet) -> BytesMut {
    let mut buf = BytesMut::new();
    packet.encode(&mut buf).unwrap();
    buf
}

fn duplicable(p: &Packet) -> bool {
    matches!(
        p,
        Packet::Publish(_)
            | Packet::PubAck(_)
            | Packet::PubRec(_)
            | Packet::PubRel(_)
            | Packet::PubComp(_)
    )
}

impl Sim {
    pub fn new(router: RouterConfig, server: ServerConfig) -> Self {
        Self::with_shards(1, router, server)
    }

    /// A simulation whose router is split into `n` shards exchanging shard
    /// messages over FIFO channels.
    pub fn with_shards(n: u32, router: RouterConfig, server: ServerConfig) -> Self {
        let routers = (0..n.max(1))
            .map(|shard| {
                let config = RouterConfig {
                    shards: n.max(1),
                    shard,
                    ..router.clone()
                };
                Router::new(config, MemoryStore::new(), SimAuth::default())
            })
            .collect();
        Self {
            now: Instant::from_secs(1000),
            routers,
            conn_shard: BTreeMap::new(),
            nodes: Vec::new(),
            links: BTreeMap::new(),
            server_config: server,
            next_conn: 1,
            rng: 0x9E37_79B9_7F4A_7C15,
            shuffle: false,
            paused: BTreeSet::new(),
            pauses: 0,
            drops: Vec::new(),
            max_queued: BTreeMap::new(),
            read_budget: None,
        }
    }

    /// Shard 0, the whole router unless built with `with_shards`.
    pub fn router(&self) -> &Router<MemoryStore, SimAuth> {
        &self.routers[0]
    }

    /// The shard holding `client_id`'s session.
    pub fn router_of(&self, client_id: &str) -> &Router<MemoryStore, SimAuth> {
        let n = u32::try_from(self.routers.len()).unwrap();
        &self.routers[shard_of(client_id, n) as usize]
    }

    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = seed | 1;
        self
    }

    fn random(&mut self) -> u64 {
        // xorshift64
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// Adds a client; returns its index.
    pub fn add(&mut self, config: ClientConfig) -> usize {
        self.nodes.push(Node {
            client: Client::new(config).unwrap(),
            events: Vec::new(),
            conn: None,
            faults: Faults::default(),
        });
        self.nodes.len() - 1
    }

    /// Opens a transport for client `i` and sends CONNECT; runs to idle.
    pub fn connect(&mut self, i: usize) {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        let server = ServerSession::new(self.server_config.clone(), self.now, conn.0);
        self.links.insert(
            conn,
            Link {
                server,
                node: i,
                to_server: VecDeque::new(),
                to_client: VecDeque::new(),
                client_gone: false,
            },
        );
        let node = &mut self.nodes[i];
        node.conn = Some(conn);
        node.client.connect(self.now).unwrap();
        self.run();
    }

    /// Whether client `i` is connected (CONNACK accepted).
    pub fn is_connected(&self, i: usize) -> bool {
        self.nodes[i].client.state() == midge_session::ConnectionState::Connected
    }

    /// The transport of client `i` fails: both ends see it close, and
    /// whatever was in flight is lost.
    pub fn cut(&mut self, i: usize) {
        if let Some(conn) = self.nodes[i].conn.take() {
            self.nodes[i].client.handle_transport_closed(self.now);
            if let Some(link) = self.links.get_mut(&conn) {
                link.to_server.clear();
                link.to_client.clear();
                link.server.handle_transport_closed(self.now);
            }
        }
        self.run();
    }

    /// Client `i` sends DISCONNECT and closes.
    pub fn disconnect(&mut self, i: usize) {
        self.nodes[i].client.disconnect(self.now);
        self.run();
    }

    pub fn publish(&mut self, i: usize, topic: &str, payload: &[u8], qos: QoS, retain: bool) {
        self.publish_later(i, topic, payload, qos, retain);
        self.run();
    }

    /// Hands a message to client `i` without running the simulation, so
    /// that many can be queued at once.
    pub fn publish_later(&mut self, i: usize, topic: &str, payload: &[u8], qos: QoS, retain: bool) {
        let payload = bytes::Bytes::copy_from_slice(payload);
        self.nodes[i]
            .client
            .publish(self.now, topic, payload, qos, retain)
            .unwrap();
    }

    pub fn subscribe(&mut self, i: usize, filters: &[(&str, QoS)]) {
        self.nodes[i].client.subscribe(self.now, filters).unwrap();
        self.run();
    }

    pub fn unsubscribe(&mut self, i: usize, filters: &[&str]) {
        self.nodes[i].client.unsubscribe(self.now, filters).unwrap();
        self.run();
    }

    /// The application messages client `i` received, in order.
    pub fn messages(&self, i: usize) -> Vec<Publish> {
        self.nodes[i]
            .events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Message { publish, .. } => Some(publish.clone()),
                _ => None,
            })
            .collect()
    }

    /// The payloads client `i` received, in order.
    pub fn payloads(&self, i: usize) -> Vec<Vec<u8>> {
        self.messages(i)
            .iter()
            .map(|p| p.payload.to_vec())
            .collect()
    }

    /// Forgets the events recorded for client `i`.
    pub fn clear_events(&mut self, i: usize) {
        self.nodes[i].events.clear();
    }

    /// Advances the virtual clock by `d`, firing every timer on the way.
    pub fn advance(&mut self, d: Duration) {
        let target = self.now.saturating_add(d);
        loop {
            let next = self
                .nodes
                .iter()
                .filter(|n| n.conn.is_some())
                .filter_map(|n| n.client.poll_timeout())
                .chain(self.links.values().filter_map(|l| l.server.poll_timeout()))
                .chain(self.routers.iter().filter_map(Router::poll_timeout))
                .min();
            match next {
                Some(t) if t <= target => {
                    if t > self.now {
                        self.now = t;
                    }
                    let now = self.now;
                    for n in &mut self.nodes {
                        if n.conn.is_some() {
                            n.client.handle_timeout(now);
                        }
                    }
                    for l in self.links.values_mut() {
                        l.server.handle_timeout(now);
                    }
                    for r in &mut self.routers {
                        r.handle_timeout(now);
                    }
                    self.run();
                }
                _ => break,
            }
        }
        self.now = target;
    }

    /// Moves packets, events and actions until nothing changes.
    pub fn run(&mut self) {
        for _ in 0..100_000 {
            if !self.step() {
                return;
            }
        }
        panic!("the simulation does not settle");
    }

    /// Runs at most `n` steps; returns whether it settled.
    pub fn run_steps(&mut self, n: usize) -> bool {
        for _ in 0..n {
            if !self.step() {
                return true;
            }
        }
        false
    }

    /// The connection of client `i`, if connected.
    pub fn conn(&self, i: usize) -> Option<ConnId> {
        self.nodes[i].conn
    }

    fn faulty(&mut self, i: usize, packets: Vec<Packet>, to_server: bool) -> (Vec<Packet>, bool) {
        let faults = self.nodes[i].faults.clone();
        if (to_server && faults.blackhole_to_server) || (!to_server && faults.blackhole_to_client) {
            return (Vec::new(), false);
        }
        let mut out = Vec::new();
        for p in packets {
            if let Some(n) = faults.cut_one_in {
                if n > 0 && self.random() % u64::from(n) == 0 {
                    return (out, true);
                }
            }
            if faults.duplicate && duplicable(&p) {
                out.push(p.clone());
            }
            out.push(p);
        }
        (out, false)
    }

    /// `items` in a seeded random order when `shuffle` is on.
    fn order<T>(&mut self, mut items: Vec<T>) -> Vec<T> {
        if self.shuffle {
            for k in (1..items.len()).rev() {
                let j = usize::try_from(self.random() % (k as u64 + 1)).unwrap();
                items.swap(k, j);
            }
        }
        items
    }

    fn step(&mut self) -> bool {
        let now = self.now;
        let mut progress = false;
        let mut cuts = Vec::new();

        // Clients write.
        let node_order = self.order((0..self.nodes.len()).collect());
        for i in node_order {
            let mut buf = BytesMut::new();
            while self.nodes[i].client.poll_transmit(now, &mut buf) > 0 {}
            let packets = split(&mut buf, &mut Decoder::new());
            let events: Vec<_> =
                core::iter::from_fn(|| self.nodes[i].client.poll_event()).collect();
            let gone = events
                .iter()
                .any(|e| matches!(e, ClientEvent::Disconnected { .. }));
            progress |= !packets.is_empty() || !events.is_empty();
            self.nodes[i].events.extend(events);
            let Some(conn) = self.nodes[i].conn else {
                continue;
            };
            let (packets, cut) = self.faulty(i, packets, true);
            if let Some(link) = self.links.get_mut(&conn) {
                link.to_server.extend(packets);
                if gone {
                    link.client_gone = true;
                    self.nodes[i].conn = None;
                }
            }
            if cut {
                cuts.push(i);
            }
        }

        // Servers read, write and report.
        let mut events = Vec::new();
        let conns: Vec<ConnId> = self.links.keys().copied().collect();
        let conns = self.order(conns);
        for conn in &conns {
            let Some(link) = self.links.get_mut(conn) else {
                continue;
            };
            let mut budget = self.read_budget.unwrap_or(usize::MAX);
            while budget > 0 && !self.paused.contains(conn) {
                let Some(p) = link.to_server.pop_front() else {
                    break;
                };
                budget -= 1;
                progress = true;
                let _ = link.server.handle_read(now, &encode(&p));
            }
            if link.client_gone && !link.server.is_closed() {
                progress = true;
                link.server.handle_transport_closed(now);
            }
            let node = link.node;
            let socket_full = self.nodes[node].faults.read_per_step.is_some()
                && link.to_client.len() >= SOCKET_PACKETS;
            let mut buf = BytesMut::new();
            if !socket_full {
                while link.server.poll_transmit(now, &mut buf) > 0 {}
            }
            let packets = split(&mut buf, &mut Decoder::new());
            while let Some(e) = link.server.poll_event() {
                progress = true;
                events.push((*conn, e));
            }
            if !packets.is_empty() {
                progress = true;
                let (packets, cut) = self.faulty(node, packets, false);
                if let Some(link) = self.links.get_mut(conn) {
                    link.to_client.extend(packets);
                }
                if cut {
                    cuts.push(node);
                }
            }
        }

        // Clients read.
        for (conn, link) in &mut self.links {
            let node = &mut self.nodes[link.node];
            if node.conn != Some(*conn) {
                link.to_client.clear();
                continue;
            }
            let mut budget = node.faults.read_per_step.unwrap_or(usize::MAX);
            while budget > 0 {
                let Some(p) = link.to_client.pop_front() else {
                    break;
                };
                budget -= 1;
                progress = true;
                let _ = node.client.handle_read(now, &encode(&p));
            }
        }

        // The router hears the sessions' events. The actions that follow a
        // publish were caused by its publisher.
        let mut actions: VecDeque<(usize, Option<ConnId>, Action)> = VecDeque::new();
        let n = u32::try_from(self.routers.len()).unwrap();
        for (conn, event) in events {
            if event == ServerEvent::Drained {
                for r in &mut self.routers {
                    r.handle_drained(now, conn);
                }
                continue;
            }
            let publisher = matches!(event, ServerEvent::Publish { .. }).then_some(conn);
            if let ServerEvent::ConnectRequest { client_id, .. } = &event {
                self.conn_shard
                    .insert(conn, shard_of(client_id.as_str(), n) as usize);
            }
            // A connection closed before its CONNECT goes to shard 0, which
            // ignores it (and counts it).
            let shard = self.conn_shard.get(&conn).copied().unwrap_or(0);
            let router = &mut self.routers[shard];
            match event {
                ServerEvent::ConnectRequest { .. } => {
                    let request = ConnectRequest::from_event(&event).unwrap();
                    router.handle_connect(now, conn, request);
                }
                ServerEvent::Publish { publish, .. } => {
                    router.handle_publish(now, conn, publish);
                }
                ServerEvent::Subscribe { packet_id, filters } => {
                    router.handle_subscribe(now, conn, packet_id, filters);
                }
                ServerEvent::Unsubscribe { filters, .. } => {
                    router.handle_unsubscribe(now, conn, filters);
                }
                ServerEvent::Closed { publish_will, .. } => {
                    if let Some(link) = self.links.remove(&conn) {
                        let node = &mut self.nodes[link.node];
                        if node.conn == Some(conn) {
                            for p in &link.to_client {
                                let _ = node.client.handle_read(now, &encode(p));
                            }
                            node.client.handle_transport_closed(now);
                            node.conn = None;
                        }
                        let resume = link.server.into_resume_state();
                        router.handle_closed(now, conn, publish_will, resume);
                    }
                    self.paused.remove(&conn);
                }
                other => panic!("unexpected server event {other:?}"),
            }
            for (r, router) in self.routers.iter_mut().enumerate() {
                while let Some(a) = router.poll_action() {
                    actions.push_back((r, publisher, a));
                }
            }
        }

        // The shards talk (FIFO), then the sessions apply the decisions.
        let mut wire: VecDeque<(usize, ShardMessage)> = VecDeque::new();
        loop {
            for r in &mut self.routers {
                while let Some((to, m)) = r.poll_shard_message() {
                    wire.push_back((to as usize, m));
                }
            }
            let Some((to, m)) = wire.pop_front() else {
                break;
            };
            progress = true;
            self.routers[to].handle_shard_message(now, m);
        }
        for (r, router) in self.routers.iter_mut().enumerate() {
            while let Some(a) = router.poll_action() {
                actions.push_back((r, None, a));
            }
        }
        while let Some((r, publisher, action)) = actions.pop_front() {
            progress = true;
            match action {
                Action::Accept {
                    conn,
                    session_present,
                    resume,
                } => {
                    if let Some(l) = self.links.get_mut(&conn) {
                        l.server.accept(now, session_present, resume).unwrap();
                    }
                }
                Action::Refuse { conn, code } => {
                    if let Some(l) = self.links.get_mut(&conn) {
                        l.server.refuse(now, code).unwrap();
                    }
                }
                Action::SubAck {
                    conn,
                    packet_id,
                    results,
                } => {
                    if let Some(l) = self.links.get_mut(&conn) {
                        let _ = l.server.suback(now, packet_id, results);
                    }
                }
                Action::Deliver { conn, publish } => {
                    if let Some(l) = self.links.get_mut(&conn) {
                        let outcome = l.server.deliver(now, publish);
                        let above = l.server.is_above_high_water();
                        let seen = self.max_queued.entry(l.node).or_default();
                        *seen = (*seen).max(l.server.queued_len());
                        let router = &mut self.routers[r];
                        router.handle_delivery(now, conn, publisher, outcome, above);
                        while let Some(a) = router.poll_action() {
                            actions.push_back((r, None, a));
                        }
                    }
                }
                Action::PausePublisher { conn } => {
                    self.pauses += 1;
                    assert!(self.paused.insert(conn), "paused twice");
                }
                Action::ResumePublisher { conn } => {
                    assert!(self.paused.remove(&conn), "resumed while not paused");
                }
                Action::DeliveryDropped {
                    conn,
                    publisher,
                    reason,
                } => self.drops.push((conn, publisher, reason)),
                Action::Close { conn } => {
                    if let Some(l) = self.links.get_mut(&conn) {
                        l.server.close(now);
                    }
                }
                other => panic!("unexpected action {other:?}"),
            }
        }

        for i in cuts {
            if let Some(conn) = self.nodes[i].conn.take() {
                progress = true;
                self.nodes[i].client.handle_transport_closed(now);
                if let Some(link) = self.links.get_mut(&conn) {
                    link.to_server.clear();
                    link.to_client.clear();
                    link.server.handle_transport_closed(now);
                }
            }
        }
        progress
    }
}
