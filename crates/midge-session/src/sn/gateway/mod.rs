//! The MQTT-SN 1.2 gateway core: a transparent gateway (spec 4.1) as a
//! sans-IO machine. Each SN client gets its own MQTT connection to the broker,
//! driven by a [`Client`] machine inside the gateway.
//!
//! What it does: the client life cycle of spec 6.14 (active, asleep, awake,
//! lost, disconnected) with keep-alive and sleep supervision (spec 7.2
//! tolerance); CONNECT with will prompts (6.2) and clean-session semantics
//! extended to the will (6.3); will updates (6.4); a topic registry per client
//! (6.5, 7.3) with normal, pre-defined and short topic ids (6.7); PUBLISH at
//! QoS 0, 1, 2 in both directions and QoS −1 through one shared broker
//! connection at QoS 0 (6.8, 7.1); SUBSCRIBE/UNSUBSCRIBE, with a REGISTER from
//! the gateway before the first message on a topic learned through a wildcard
//! (6.9, 6.10); PINGREQ/PINGRESP (6.11); DISCONNECT (6.12); retransmission of
//! the gateway's own requests with T_retry/N_retry (6.13); messages buffered
//! for sleeping clients up to a limit and delivered when they wake (6.14);
//! ADVERTISE every T_ADV and GWINFO answers to SEARCHGW (6.1); forwarder
//! encapsulation (5.5), answering through the same forwarder with the same
//! wireless node id; MQTT return codes and errors mapped to SN return codes.
//!
//! What it deliberately does not do: sockets, timers, threads; it does not
//! aggregate clients onto one broker connection (an aggregating gateway,
//! spec 4.2), write anything to disk (it hands out what to keep, below), or
//! act on SEARCHGW/GWINFO from other gateways (stand-by mode). Messages from the broker are acknowledged to it
//! when they reach the gateway, not when the SN client acknowledges them.
//!
//! # Calling contract
//!
//! Inputs: [`Gateway::handle_datagram`] (one UDP datagram, or whatever carries
//! MQTT-SN), [`Gateway::handle_timeout`] (safe to call early),
//! [`Gateway::handle_broker_opened`], [`Gateway::handle_broker_read`],
//! [`Gateway::handle_broker_closed`]. After each, drain in this order:
//! [`Gateway::poll_broker`] until `None` (open, write to, close broker
//! connections), [`Gateway::poll_transmit`] until `None` (send datagrams),
//! [`Gateway::poll_event`] until `None`, then [`Gateway::poll_timeout`].
//! A caller that keeps state across restarts drains
//! [`Gateway::poll_persist`] until `None` first, and makes what it gives
//! durable before it sends or writes the rest: then nothing the gateway
//! acknowledged (a REGACK, a broker's PUBLISH buffered for a sleeping
//! client) is missing from the store after a crash.
//!
//! # Surviving a restart
//!
//! [`Gateway::poll_persist`] hands out [`PersistOp`]s: one [`ClientRecord`]
//! per client worth keeping (a persistent session, or a sleeping client),
//! written again only when it changed, deleted when nothing of the client
//! is worth keeping any more. A record holds the client's topic registry,
//! its will, and, while it sleeps, its sleep duration and buffered
//! messages. [`Gateway::restore`] builds a gateway from the records:
//! sleeping clients are asleep again (their broker connections are asked
//! for at once), others are remembered as disconnected until they CONNECT
//! again. Pre-defined topic ids come from [`GatewayConfig`] and survive by
//! being configured again. Not kept: client addresses, exchanges in flight
//! in either direction (a delivery in flight to a client goes back to the
//! front of its buffer), the QoS −1 connection.
//!
//! The broker side is abstract: on [`BrokerOp::Open`] the caller opens a
//! connection (TCP to any broker, or an in-memory pipe into a broker core)
//! and reports [`Gateway::handle_broker_opened`] or, on failure,
//! [`Gateway::handle_broker_closed`]. Bytes read go to
//! [`Gateway::handle_broker_read`]. [`BrokerOp::Close`] asks the caller to
//! close; it need not report that close back. Writes must be applied in
//! order and never dropped: they are parts of one MQTT byte stream.
//!
//! # Behaviour worth knowing
//!
//! - A client's QoS 1 PUBLISH gets PUBACK when the broker acknowledged it; a
//!   QoS 2 PUBLISH gets PUBREC when the broker completed the gateway's own
//!   QoS 2 exchange (PUBCOMP), so nothing the client sends next (DISCONNECT
//!   above all) can overtake the gateway's PUBREL; the gateway forwards it
//!   once, and recognises a duplicate by MsgId until PUBREL.
//! - Toward a client, one exchange needing an answer (REGISTER, PUBLISH QoS
//!   1/2, PUBREL, a will prompt) is open at a time, retransmitted every
//!   T_retry with DUP set; QoS 0 messages go back to back. Messages waiting
//!   behind it, or for a sleeping client, count against `max_buffered`.
//! - The topic of a delivery is addressed by the id the client was told
//!   (SUBACK, REGACK), else a pre-defined id, else a short name (two-octet
//!   names), else a new id announced by REGISTER first. After a reconnect
//!   without clean session every id is announced again before use.
//! - A lost client's will is published by the gateway itself (so that will
//!   updates count), then the broker connection is closed with DISCONNECT.
//!   The broker's copy of the will, from the MQTT CONNECT, only matters if
//!   the gateway itself goes away.
//! - A CONNECT without clean session from a client whose broker connection
//!   is still up (asleep, awake, active) reuses it: CONNACK comes at once.
//! - Acknowledgements for nothing the gateway waits for are ignored and
//!   counted ([`GatewayStats::stale_acks`]).
//! - `handle_timeout` and `poll_timeout` walk every client: their cost grows
//!   with `max_clients`.
//!
//! Key types: [`Gateway`], [`GatewayConfig`], [`Peer`], [`Transmit`] and
//! [`Destination`], [`BrokerOp`] and [`ConnKey`], [`GatewayEvent`],
//! [`ClientState`], [`ClientRecord`] and [`PersistOp`], and the errors
//! [`PeerError`] and [`ConfigError`].
//!
//! # Example
//!
//! ```
//! use bytes::BytesMut;
//! use midge_codec::{ConnAck, ConnectReturnCode, Encode};
//! use midge_session::sn::gateway::{BrokerOp, Destination, Gateway, GatewayConfig};
//! use midge_sn_codec::{ClientId, Connect, Message, ReturnCode};
//! use midge_time::Instant;
//!
//! let now = Instant::from_secs(1);
//! let mut gw: Gateway<&str> = Gateway::new(GatewayConfig::new(1), now)?;
//!
//! // An SN client connects (datagram from "node-1").
//! let connect = Message::Connect(Connect {
//!     will: false,
//!     clean_session: true,
//!     duration: 60,
//!     client_id: ClientId::from("sensor-1"),
//! });
//! let mut datagram = BytesMut::new();
//! connect.encode(&mut datagram)?;
//! gw.handle_datagram(now, "node-1", &datagram)?;
//!
//! // The gateway asks for a broker connection; the caller opens it.
//! let Some(BrokerOp::Open(key)) = gw.poll_broker() else { unreachable!() };
//! gw.handle_broker_opened(now, key);
//! let Some(BrokerOp::Write(_, connect_bytes)) = gw.poll_broker() else { unreachable!() };
//! assert_eq!(connect_bytes[0], 0x10); // an MQTT CONNECT, for the broker
//!
//! // The broker accepts; the SN client gets its CONNACK.
//! let mut reply = BytesMut::new();
//! ConnAck::new(ConnectReturnCode::Accepted, false).encode(&mut reply)?;
//! gw.handle_broker_read(now, key, &reply);
//! let mut out = BytesMut::new();
//! let t = gw.poll_transmit(now, &mut out).expect("CONNACK");
//! assert_eq!(t.to, Destination::Unicast("node-1"));
//! let Message::ConnAck(ack) = midge_sn_codec::decode_slice(&out)? else { unreachable!() };
//! assert_eq!(ack.return_code, ReturnCode::Accepted);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod broker;
mod codes;
mod config;
mod deliver;
mod error;
mod event;
mod persist;
mod registry;

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;

use bytes::{Bytes, BytesMut};
use midge_codec::{LastWill, QoS as MqttQoS, QosPid, SubscribeReturnCode};
use midge_sn_codec::{
    Advertise, ClientId, ConnAck, Connect, Disconnect, Encapsulated, GwInfo, Message, MsgType,
    PingReq, PingResp, PubAck, PubComp, PubRec, PubRel, Publish, PublishQoS, QoS as SnQoS, RegAck,
    Register, ReturnCode, SubAck, Subscribe, SubscribeTopic, Topic, TopicId, TopicName, UnsubAck,
    Unsubscribe, WillMsgReq, WillMsgResp, WillTopicData, WillTopicReq, WillTopicResp,
};
use midge_time::{Duration, Instant};
use midge_topic::{validate_topic_filter, validate_topic_name};

use crate::{
    Client, ClientConfig, ConnectionState, DeliveryId, DisconnectReason, Event, RequestId,
};

pub use config::GatewayConfig;
pub use error::{ConfigError, PeerError};
pub use event::{DisconnectCause, DropReason, GatewayEvent};
pub use persist::{BufferedMessage, ClientRecord, PersistOp, TopicRecord, WillRecord};

use super::rng::Rng;
use registry::{Lookup, Registry};

/// Where an SN client is: its network address and, when it talks through a
/// forwarder (spec 5.5), the wireless node id the forwarder gave it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Peer<A> {
    /// The address datagrams come from and go to (the forwarder's, if any).
    pub addr: A,
    /// The wireless node id of an encapsulated client.
    pub node_id: Option<Bytes>,
}

impl<A> Peer<A> {
    /// A client reached directly.
    pub const fn direct(addr: A) -> Self {
        Self {
            addr,
            node_id: None,
        }
    }
}

/// Where a datagram written by [`Gateway::poll_transmit`] goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination<A> {
    /// To one address.
    Unicast(A),
    /// To every node within `radius` hops (0: the whole network).
    Broadcast {
        /// The broadcast radius (spec 5.3.9).
        radius: u8,
    },
}

/// One datagram written into the caller's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit<A> {
    /// Where to send it.
    pub to: Destination<A>,
    /// How many bytes were appended to the buffer.
    pub len: usize,
}

/// Names one broker connection the gateway asked for. Never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnKey(pub u64);

/// What the gateway asks of the broker side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerOp {
    /// Open a new connection to the broker, then call
    /// [`Gateway::handle_broker_opened`] (or `handle_broker_closed` on failure).
    Open(ConnKey),
    /// Write these bytes to the connection, in order.
    Write(ConnKey, Bytes),
    /// Close the connection (after the writes queued before it).
    Close(ConnKey),
}

/// A client's state as the gateway sees it (spec 6.14, plus the two setup
/// phases).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientState {
    /// CONNECT received with the Will flag; asking for will topic and message.
    Prompting,
    /// Waiting for the broker to accept the connection.
    Connecting,
    /// Connected and supervised by its keep alive.
    Active,
    /// Sleeping; messages for it are buffered.
    Asleep,
    /// Woke up (PINGREQ with client id) and is collecting its messages.
    Awake,
    /// Went silent; its will was published.
    Lost,
    /// Disconnected on its request or because the broker link ended.
    Disconnected,
}

/// Counters of things the gateway tolerated or refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GatewayStats {
    /// Datagrams handed to `handle_datagram`.
    pub datagrams_in: u64,
    /// Datagrams refused with a [`PeerError`].
    pub datagrams_refused: u64,
    /// Gateway-to-client retransmissions (spec 6.13).
    pub retransmissions: u64,
    /// Datagrams dropped because the transmit queue was full.
    pub transmits_dropped: u64,
    /// Events dropped because the event queue was full.
    pub events_dropped: u64,
    /// Acknowledgements (REGACK, PUBACK, PUBREC, PUBCOMP) for nothing the
    /// gateway waits for: after a retransmission, duplicates are legitimate.
    pub stale_acks: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum OutTo<A> {
    Peer(Peer<A>),
    Broadcast(u8),
    /// Broadcast through a forwarder: unicast to it, radius in Ctrl.
    ForwarderBroadcast(Peer<A>, u8),
}

/// A message from the broker waiting for delivery to an SN client.
#[derive(Debug, Clone)]
struct Delivery {
    topic: String,
    data: Bytes,
    qos: SnQoS,
    retain: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaiting {
    WillTopic,
    WillMsg,
    RegAck { msg_id: u16, topic_id: u16 },
    PubAck { msg_id: u16, topic_id: Option<u16> },
    PubRec { msg_id: u16, topic_id: Option<u16> },
    PubComp { msg_id: u16 },
}

/// The one gateway-to-client exchange open for a client (spec 6.13).
#[derive(Debug, Clone)]
struct Inflight {
    message: Message,
    awaiting: Awaiting,
    deadline: Instant,
    retries: u8,
}

#[derive(Debug, Clone)]
struct WillData {
    topic: String,
    qos: SnQoS,
    retain: bool,
}

#[derive(Debug, Clone, Copy)]
struct Link {
    key: ConnKey,
    /// The caller reported the connection open.
    opened: bool,
}

#[derive(Debug, Clone, Copy)]
struct SubRequest {
    msg_id: u16,
    topic_id: u16,
    /// `topic_id` is a normal id of the registry, known to the client once
    /// SUBACK accepts.
    normal: bool,
}

/// One SN client.
#[derive(Debug)]
struct SnClient<A> {
    client_id: String,
    /// `None` for a client restored from a snapshot until it is heard from.
    peer: Option<Peer<A>>,
    state: ClientState,
    clean_session: bool,
    keep_alive: u16,
    sleep: u16,
    last_heard: Instant,
    connect_deadline: Option<Instant>,
    will_topic: Option<WillData>,
    will_msg: Bytes,
    /// Will topic received during the prompts, before WILLMSG.
    prompt_topic: Option<WillData>,
    mqtt: Option<Client>,
    link: Option<Link>,
    registry: Registry,
    outbox: VecDeque<Delivery>,
    inflight: Option<Inflight>,
    /// The delivery whose PUBLISH is in flight (kept for a resume).
    inflight_delivery: Option<Delivery>,
    next_msg_id: u16,
    subs: BTreeMap<RequestId, SubRequest>,
    unsubs: BTreeMap<RequestId, u16>,
    qos1: BTreeMap<DeliveryId, (u16, Topic)>,
    /// QoS 2 PUBLISHes forwarded to the broker whose MQTT exchange has not
    /// completed yet: their PUBREC waits for it.
    qos2: BTreeMap<DeliveryId, (u16, Topic)>,
    qos2_in: BTreeSet<u16>,
}

impl<A> SnClient<A> {
    fn msg_id(&mut self) -> u16 {
        let id = self.next_msg_id;
        self.next_msg_id = self.next_msg_id.checked_add(1).unwrap_or(1).max(1);
        id
    }

    fn mqtt_connected(&self) -> bool {
        self.mqtt
            .as_ref()
            .is_some_and(|m| m.state() == ConnectionState::Connected)
    }

    fn supervision_deadline(&self, config: &GatewayConfig) -> Option<Instant> {
        let secs = match self.state {
            ClientState::Active => self.keep_alive,
            ClientState::Asleep => self.sleep,
            _ => return None,
        };
        (secs > 0).then(|| self.last_heard.saturating_add(config.supervision(secs)))
    }

    fn retry_deadline(&self) -> Option<Instant> {
        match self.state {
            ClientState::Prompting | ClientState::Active | ClientState::Awake => {
                self.inflight.as_ref().map(|i| i.deadline)
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Client(u64),
    MinusOne,
}

/// The shared broker connection for QoS −1 publishes (spec 7.1).
#[derive(Debug, Default)]
struct MinusOne {
    mqtt: Option<Client>,
    link: Option<Link>,
    pending: VecDeque<(String, Bytes, bool)>,
    /// The connection must be accepted by then, or the pending publishes
    /// are dropped.
    deadline: Option<Instant>,
}

/// The transparent MQTT-SN gateway. See the module documentation for the
/// calling contract. `A` is the datagram address type (a socket address, a
/// radio address, a test index).
#[derive(Debug)]
pub struct Gateway<A> {
    config: GatewayConfig,
    predefined_by_name: BTreeMap<String, u16>,
    clients: BTreeMap<u64, SnClient<A>>,
    by_id: BTreeMap<String, u64>,
    by_peer: BTreeMap<Peer<A>, u64>,
    by_conn: BTreeMap<ConnKey, Owner>,
    next_slot: u64,
    next_key: u64,
    minus_one: MinusOne,
    transmits: VecDeque<(OutTo<A>, Message)>,
    broker_ops: VecDeque<BrokerOp>,
    events: VecDeque<GatewayEvent<A>>,
    next_advertise: Option<Instant>,
    /// See [`Gateway::set_broker_available`].
    available: bool,
    stats: GatewayStats,
    /// Clients whose persistent state may have changed since the last
    /// [`Gateway::poll_persist`].
    touched: BTreeSet<u64>,
    /// A fingerprint of the record last handed out per client id.
    persisted: BTreeMap<String, u64>,
    /// Client ids removed from the table whose record must be deleted.
    gone: BTreeSet<String>,
}

/// Most rounds of draining one MQTT machine after an input; each round
/// either writes or reports, and the machine's own queues are bounded.
const SERVICE_ROUNDS: usize = 16;

impl<A: Clone + Ord> Gateway<A> {
    /// A gateway starting at `now` (the first ADVERTISE is scheduled from it).
    ///
    /// # Errors
    /// [`ConfigError`] when the configuration cannot work.
    pub fn new(config: GatewayConfig, now: Instant) -> Result<Self, ConfigError> {
        config.check()?;
        let mut rng = Rng::new(config.seed);
        let jitter =
            rng.up_to(u64::try_from(config.advertise_jitter.as_micros()).unwrap_or(u64::MAX));
        let next_advertise = config
            .t_adv
            .map(|_| now.saturating_add(Duration::from_micros(jitter)));
        let predefined_by_name = config
            .predefined
            .iter()
            .map(|(id, name)| (name.clone(), *id))
            .collect();
        Ok(Self {
            config,
            predefined_by_name,
            clients: BTreeMap::new(),
            by_id: BTreeMap::new(),
            by_peer: BTreeMap::new(),
            by_conn: BTreeMap::new(),
            next_slot: 0,
            next_key: 0,
            minus_one: MinusOne::default(),
            transmits: VecDeque::new(),
            broker_ops: VecDeque::new(),
            events: VecDeque::new(),
            next_advertise,
            available: true,
            stats: GatewayStats::default(),
            touched: BTreeSet::new(),
            persisted: BTreeMap::new(),
            gone: BTreeSet::new(),
        })
    }

    // ----- getters -----

    /// The configuration.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> GatewayStats {
        self.stats
    }

    /// Clients known (in any state).
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// The state of the client with this id.
    pub fn client_state(&self, client_id: &str) -> Option<ClientState> {
        self.client_by_id(client_id).map(|c| c.state)
    }

    /// Messages buffered for this client.
    pub fn buffered_len(&self, client_id: &str) -> Option<usize> {
        self.client_by_id(client_id).map(|c| c.outbox.len())
    }

    /// Normal topic ids registered for this client.
    pub fn registrations(&self, client_id: &str) -> Option<usize> {
        self.client_by_id(client_id).map(|c| c.registry.len())
    }

    /// Broker connections open or being opened.
    pub fn broker_connections(&self) -> usize {
        self.by_conn.len()
    }

    /// Datagrams waiting for `poll_transmit`.
    pub fn queued_transmits(&self) -> usize {
        self.transmits.len()
    }

    fn client_by_id(&self, client_id: &str) -> Option<&SnClient<A>> {
        self.by_id.get(client_id).and_then(|s| self.clients.get(s))
    }

    /// Tells the gateway whether the broker is reachable (spec 6.1: a gateway
    /// makes itself known only while it can reach a server). While it is not,
    /// no ADVERTISE goes out and SEARCHGW is not answered; when it is again,
    /// ADVERTISE goes out at once. Available from the start.
    pub fn set_broker_available(&mut self, now: Instant, available: bool) {
        self.available = available;
        self.next_advertise = match (available, self.config.t_adv, self.next_advertise) {
            (true, Some(_), Some(at)) => Some(at),
            (true, Some(_), None) => Some(now),
            _ => None,
        };
    }

    // ----- inputs: datagrams -----

    /// One datagram from `from`. Answers are queued for `poll_transmit`; broker
    /// work for `poll_broker`.
    ///
    /// # Errors
    /// [`PeerError`] when the datagram was malformed, unexpected, or came from
    /// a peer without a session. Whatever answer the specification asks for
    /// is queued first.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: A,
        bytes: &[u8],
    ) -> Result<(), PeerError> {
        self.stats.datagrams_in += 1;
        let result = match midge_sn_codec::decode_slice(bytes) {
            Ok(Message::Encapsulated(Encapsulated {
                node_id, message, ..
            })) => self.handle_message(
                now,
                Peer {
                    addr: from,
                    node_id: Some(node_id),
                },
                *message,
            ),
            Ok(message) => self.handle_message(now, Peer::direct(from), message),
            Err(e) => Err(PeerError::Malformed(e)),
        };
        if result.is_err() {
            self.stats.datagrams_refused += 1;
        }
        result
    }

    fn handle_message(
        &mut self,
        now: Instant,
        peer: Peer<A>,
        message: Message,
    ) -> Result<(), PeerError> {
        let msg_type = message.msg_type();
        match message {
            // spec 6.1: another gateway's or a client's discovery traffic.
            Message::Advertise(_) | Message::GwInfo(_) => Ok(()),
            Message::SearchGw(_) if !self.available => Ok(()),
            Message::SearchGw(s) => {
                let answer = Message::GwInfo(GwInfo {
                    gw_id: self.config.gateway_id,
                    gw_add: Bytes::new(),
                });
                let to = if peer.node_id.is_some() {
                    OutTo::ForwarderBroadcast(peer, s.radius.min(3))
                } else {
                    OutTo::Broadcast(s.radius)
                };
                self.transmit(to, answer);
                Ok(())
            }
            Message::Connect(c) => self.on_connect(now, peer, c),
            Message::Publish(p) if p.qos == PublishQoS::MinusOne => self.on_minus_one(now, p),
            Message::PingReq(PingReq {
                client_id: Some(id),
            }) => self.on_wake(now, peer, &id),
            Message::Disconnect(d) => {
                self.on_disconnect(now, peer, d.duration);
                Ok(())
            }
            Message::ConnAck(_)
            | Message::WillTopicReq(_)
            | Message::WillMsgReq(_)
            | Message::SubAck(_)
            | Message::UnsubAck(_)
            | Message::WillTopicResp(_)
            | Message::WillMsgResp(_)
            | Message::Encapsulated(_) => Err(PeerError::Unexpected(msg_type)),
            other => {
                let Some(&slot) = self.by_peer.get(&peer) else {
                    self.send_to_peer(peer, Disconnect { duration: None }.into());
                    return Err(PeerError::NotConnected(msg_type));
                };
                self.on_session_message(now, slot, other)
            }
        }
    }

    /// Messages from a peer the gateway knows.
    fn on_session_message(
        &mut self,
        now: Instant,
        slot: u64,
        message: Message,
    ) -> Result<(), PeerError> {
        let msg_type = message.msg_type();
        self.touched.insert(slot);
        let Some(c) = self.clients.get_mut(&slot) else {
            return Err(PeerError::NotConnected(msg_type));
        };
        let state = c.state;
        match (state, message) {
            (ClientState::Prompting, Message::WillTopic(w)) => {
                if c.inflight.as_ref().map(|i| i.awaiting) != Some(Awaiting::WillTopic) {
                    return Err(PeerError::Unexpected(msg_type));
                }
                c.last_heard = now;
                c.inflight = None;
                match w.0 {
                    // spec 6.3: an empty WILLTOPIC deletes the will.
                    None => {
                        c.will_topic = None;
                        c.will_msg = Bytes::new();
                        self.open_broker(now, slot);
                    }
                    Some(data) if validate_topic_name(data.topic.as_str()).is_err() => {
                        self.refuse_connect(slot, ReturnCode::NotSupported);
                    }
                    Some(data) => {
                        c.prompt_topic = Some(will_data(&data));
                        self.send_request(now, slot, WillMsgReq.into(), Awaiting::WillMsg);
                    }
                }
                Ok(())
            }
            (ClientState::Prompting, Message::WillMsg(w)) => {
                if c.inflight.as_ref().map(|i| i.awaiting) != Some(Awaiting::WillMsg) {
                    return Err(PeerError::Unexpected(msg_type));
                }
                c.last_heard = now;
                c.inflight = None;
                c.will_topic = c.prompt_topic.take();
                c.will_msg = w.will_msg;
                self.open_broker(now, slot);
                Ok(())
            }
            (ClientState::Prompting | ClientState::Connecting, _)
            | (ClientState::Lost | ClientState::Disconnected, _) => {
                if matches!(state, ClientState::Lost | ClientState::Disconnected) {
                    let peer = c.peer.clone();
                    self.send_to_peer(peer, Disconnect { duration: None }.into());
                    return Err(PeerError::NotConnected(msg_type));
                }
                Err(PeerError::Unexpected(msg_type))
            }
            (_, message) => {
                c.last_heard = now;
                self.on_connected_message(now, slot, message)
            }
        }
    }

    /// Messages from a client in active, asleep or awake state.
    fn on_connected_message(
        &mut self,
        now: Instant,
        slot: u64,
        message: Message,
    ) -> Result<(), PeerError> {
        let msg_type = message.msg_type();
        match message {
            Message::PingReq(_) => {
                let asleep = self
                    .clients
                    .get(&slot)
                    .is_some_and(|c| matches!(c.state, ClientState::Asleep | ClientState::Awake));
                if asleep {
                    self.wake(now, slot);
                } else if let Some(c) = self.clients.get(&slot) {
                    let peer = c.peer.clone();
                    self.send_to_peer(peer, PingResp.into());
                }
                Ok(())
            }
            Message::PingResp(_) => Ok(()),
            Message::Register(r) => {
                self.on_register(slot, r);
                Ok(())
            }
            Message::RegAck(r) => self.on_regack(now, slot, r),
            Message::Publish(p) => {
                self.on_publish(now, slot, p);
                Ok(())
            }
            Message::PubAck(a) => self.on_puback(now, slot, a),
            Message::PubRec(r) => self.on_pubrec(now, slot, r),
            Message::PubComp(r) => self.on_pubcomp(now, slot, r),
            Message::PubRel(r) => {
                if let Some(c) = self.clients.get_mut(&slot) {
                    c.qos2_in.remove(&r.msg_id);
                    let peer = c.peer.clone();
                    // Answered even for an unknown id: the PUBCOMP was lost.
                    self.send_to_peer(peer, PubComp { msg_id: r.msg_id }.into());
                }
                Ok(())
            }
            Message::Subscribe(s) => {
                self.on_subscribe(now, slot, s);
                Ok(())
            }
            Message::Unsubscribe(u) => {
                self.on_unsubscribe(now, slot, u);
                Ok(())
            }
            Message::WillTopicUpd(u) => {
                let code = match u.0 {
                    None => {
                        if let Some(c) = self.clients.get_mut(&slot) {
                            c.will_topic = None;
                            c.will_msg = Bytes::new();
                        }
                        ReturnCode::Accepted
                    }
                    Some(data) if validate_topic_name(data.topic.as_str()).is_err() => {
                        ReturnCode::NotSupported
                    }
                    Some(data) => {
                        if let Some(c) = self.clients.get_mut(&slot) {
                            c.will_topic = Some(will_data(&data));
                        }
                        ReturnCode::Accepted
                    }
                };
                self.answer(slot, WillTopicResp { return_code: code }.into());
                Ok(())
            }
            Message::WillMsgUpd(u) => {
                if let Some(c) = self.clients.get_mut(&slot) {
                    c.will_msg = u.will_msg;
                }
                self.answer(
                    slot,
                    WillMsgResp {
                        return_code: ReturnCode::Accepted,
                    }
                    .into(),
                );
                Ok(())
            }
            // Will answers after the prompts are over: stale retransmissions.
            _ => Err(PeerError::Unexpected(msg_type)),
        }
    }

    // ----- connect (spec 6.2, 6.3) -----

    fn on_connect(&mut self, now: Instant, peer: Peer<A>, c: Connect) -> Result<(), PeerError> {
        let id = c.client_id.as_str();
        if id.is_empty() || id.len() > self.config.max_client_id_len {
            self.send_to_peer(
                peer,
                ConnAck {
                    return_code: ReturnCode::NotSupported,
                }
                .into(),
            );
            return Err(PeerError::InvalidClientId);
        }
        let slot = if let Some(&slot) = self.by_id.get(id) {
            if let Some(existing) = self.clients.get(&slot) {
                // A retransmitted CONNECT while the broker is being asked.
                if existing.state == ClientState::Connecting
                    && existing.peer.as_ref() == Some(&peer)
                {
                    return Ok(());
                }
            }
            slot
        } else {
            let pending = self
                .clients
                .values()
                .filter(|c| matches!(c.state, ClientState::Prompting | ClientState::Connecting))
                .count();
            if pending >= self.config.max_pending_connects || !self.make_room(now) {
                self.send_to_peer(
                    peer,
                    ConnAck {
                        return_code: ReturnCode::Congestion,
                    }
                    .into(),
                );
                return Ok(());
            }
            let slot = self.next_slot;
            self.next_slot += 1;
            self.clients.insert(
                slot,
                SnClient {
                    client_id: String::from(id),
                    peer: None,
                    state: ClientState::Disconnected,
                    clean_session: true,
                    keep_alive: 0,
                    sleep: 0,
                    last_heard: now,
                    connect_deadline: None,
                    will_topic: None,
                    will_msg: Bytes::new(),
                    prompt_topic: None,
                    mqtt: None,
                    link: None,
                    registry: Registry::new(self.config.max_registrations),
                    outbox: VecDeque::new(),
                    inflight: None,
                    inflight_delivery: None,
                    next_msg_id: 1,
                    subs: BTreeMap::new(),
                    unsubs: BTreeMap::new(),
                    qos1: BTreeMap::new(),
                    qos2: BTreeMap::new(),
                    qos2_in: BTreeSet::new(),
                },
            );
            self.by_id.insert(String::from(id), slot);
            slot
        };
        self.rebind(slot, peer);
        self.touched.insert(slot);
        let Some(client) = self.clients.get_mut(&slot) else {
            return Ok(());
        };
        client.clean_session = c.clean_session;
        client.keep_alive = c.duration;
        client.last_heard = now;
        client.prompt_topic = None;
        // A publish in flight goes back to the buffer; it is sent again after
        // CONNACK unless the session is clean.
        let mut overflow = false;
        if let Some(d) = client.inflight_delivery.take() {
            client.outbox.push_front(d);
            // The buffer may have been full behind it: the newest goes.
            if client.outbox.len() > self.config.max_buffered {
                client.outbox.pop_back();
                overflow = true;
            }
        }
        client.inflight = None;
        if overflow {
            let client_id = client.client_id.clone();
            self.event(GatewayEvent::Dropped {
                client_id: Some(client_id),
                reason: DropReason::BufferFull,
            });
        }
        let Some(client) = self.clients.get_mut(&slot) else {
            return Ok(());
        };
        if c.clean_session {
            // spec 6.3: a clean session also forgets the will.
            client.registry.clear();
            client.will_topic = None;
            client.will_msg = Bytes::new();
            client.qos2_in.clear();
            let dropped = client.outbox.len();
            client.outbox.clear();
            let client_id = client.client_id.clone();
            for _ in 0..dropped {
                self.event(GatewayEvent::Dropped {
                    client_id: Some(client_id.clone()),
                    reason: DropReason::SessionEnded,
                });
            }
        } else {
            // spec 6.10: ids are announced again before use.
            client.registry.forget_known();
        }
        if c.will {
            let Some(client) = self.clients.get_mut(&slot) else {
                return Ok(());
            };
            client.state = ClientState::Prompting;
            self.send_request(now, slot, WillTopicReq.into(), Awaiting::WillTopic);
        } else {
            self.open_broker(now, slot);
        }
        Ok(())
    }

    /// Frees a table slot if the table is full, evicting a remembered client
    /// without broker connection (clean sessions first, then the longest
    /// silent). Returns whether there is room.
    fn make_room(&mut self, now: Instant) -> bool {
        if self.clients.len() < self.config.max_clients {
            return true;
        }
        let victim = self
            .clients
            .iter()
            .filter(|(_, c)| {
                matches!(c.state, ClientState::Lost | ClientState::Disconnected) && c.link.is_none()
            })
            .min_by_key(|(_, c)| (!c.clean_session, c.last_heard))
            .map(|(s, _)| *s);
        match victim {
            Some(slot) => {
                if let Some(c) = self.clients.get(&slot) {
                    let client_id = c.client_id.clone();
                    self.event(GatewayEvent::ClientDisconnected {
                        client_id,
                        cause: DisconnectCause::Evicted,
                    });
                }
                self.remove_client(now, slot);
                true
            }
            None => false,
        }
    }

    fn remove_client(&mut self, now: Instant, slot: u64) {
        self.close_link(now, Owner::Client(slot), false);
        if let Some(c) = self.clients.remove(&slot) {
            self.by_id.remove(&c.client_id);
            if let Some(peer) = c.peer.as_ref() {
                if self.by_peer.get(peer) == Some(&slot) {
                    self.by_peer.remove(peer);
                }
            }
            self.touched.remove(&slot);
            if self.persisted.contains_key(&c.client_id) {
                self.gone.insert(c.client_id);
            }
        }
    }

    fn rebind(&mut self, slot: u64, peer: Peer<A>) {
        let Some(c) = self.clients.get_mut(&slot) else {
            return;
        };
        if let Some(old) = c.peer.as_ref() {
            if self.by_peer.get(old) == Some(&slot) {
                self.by_peer.remove(old);
            }
        }
        c.peer = Some(peer.clone());
        self.by_peer.insert(peer, slot);
    }

    /// The will prompts are over (or were not asked for): reuse the broker
    /// connection of a persistent session that is still up, or open one.
    fn open_broker(&mut self, now: Instant, slot: u64) {
        let Some(c) = self.clients.get_mut(&slot) else {
            return;
        };
        if !c.clean_session && c.mqtt_connected() {
            self.accept_connect(now, slot);
            return;
        }
        self.close_link(now, Owner::Client(slot), true);
        if !self.new_link(slot) {
            self.refuse_connect(slot, ReturnCode::NotSupported);
            return;
        }
        let Some(c) = self.clients.get_mut(&slot) else {
            return;
        };
        c.state = ClientState::Connecting;
        c.connect_deadline = Some(now.saturating_add(self.config.broker_connect_timeout));
    }

    /// A new MQTT machine and broker connection for a client (asked for
    /// with [`BrokerOp::Open`]); its open exchanges toward the broker are
    /// forgotten. `false` when the machine refuses the configuration.
    fn new_link(&mut self, slot: u64) -> bool {
        let Some(c) = self.clients.get_mut(&slot) else {
            return false;
        };
        let mut config = ClientConfig::new(c.client_id.clone())
            .with_clean_session(c.clean_session)
            .with_keep_alive(self.config.broker_keep_alive)
            .with_max_queued(self.config.broker_max_queued)
            .with_connack_timeout(self.config.broker_connect_timeout);
        if let Some((user, password)) = &self.config.broker_credentials {
            config = config.with_credentials(user.clone(), password.clone());
        }
        if let Some(will) = last_will(c.will_topic.as_ref(), &c.will_msg) {
            config = config.with_will(will);
        }
        let Ok(mqtt) = Client::new(config) else {
            return false;
        };
        let key = ConnKey(self.next_key);
        self.next_key += 1;
        c.mqtt = Some(mqtt);
        c.link = Some(Link { key, opened: false });
        c.subs.clear();
        c.unsubs.clear();
        c.qos1.clear();
        c.qos2.clear();
        self.by_conn.insert(key, Owner::Client(slot));
        self.broker_ops.push_back(BrokerOp::Open(key));
        true
    }

    fn accept_connect(&mut self, now: Instant, slot: u64) {
        self.touched.insert(slot);
        let Some(c) = self.clients.get_mut(&slot) else {
            return;
        };
        c.state = ClientState::Active;
        c.connect_deadline = None;
        c.last_heard = now;
        let peer = c.peer.clone();
        let client_id = c.client_id.clone();
        self.send_to_peer(
            peer.clone(),
            ConnAck {
                return_code: ReturnCode::Accepted,
            }
            .into(),
        );
        if let Some(peer) = peer {
            self.event(GatewayEvent::ClientConnected { client_id, peer });
        }
        self.pump(now, slot);
    }

    fn refuse_connect(&mut self, slot: u64, code: ReturnCode) {
        self.touched.insert(slot);
        let Some(c) = self.clients.get_mut(&slot) else {
            return;
        };
        c.state = ClientState::Disconnected;
        c.connect_deadline = None;
        c.inflight = None;
        let peer = c.peer.clone();
        let client_id = c.client_id.clone();
        self.send_to_peer(peer, ConnAck { return_code: code }.into());
        self.event(GatewayEvent::ClientDisconnected {
            client_id,
            cause: DisconnectCause::Refused(code),
        });
    }

    // ----- sleep (spec 6.14) -----

    /// PINGREQ with a client id: an asleep client wakes up.
    fn on_wake(&mut self, now: Instant, peer: Peer<A>, id: &ClientId) -> Result<(), PeerError> {
        let slot = self.by_id.get(id.as_str()).copied();
        let state = slot.and_then(|s| self.clients.get(&s)).map(|c| c.state);
        match (slot, state) {
            (Some(slot), Some(ClientState::Asleep | ClientState::Awake)) => {
                self.rebind(slot, peer);
                if let Some(c) = self.clients.get_mut(&slot) {
                    c.last_heard = now;
                }
                self.wake(now, slot);
                Ok(())
            }
            (Some(slot), Some(ClientState::Active)) => {
                self.rebind(slot, peer.clone());
                if let Some(c) = self.clients.get_mut(&slot) {
                    c.last_heard = now;
                }
                self.send_to_peer(peer, PingResp.into());
                Ok(())
            }
            _ => {
                self.send_to_peer(peer, Disconnect { duration: None }.into());
                Err(PeerError::NotConnected(MsgType::PingReq))
            }
        }
    }

    fn wake(&mut self, now: Instant, slot: u64) {
        self.touched.insert(slot);
        let Some(c) = self.clients.get_mut(&slot) else {
            return;
        };
        if c.state == ClientState::Asleep {
            c.state = ClientState::Awake;
            let client_id = c.client_id.clone();
            self.event(GatewayEvent::ClientAwake { client_id });
        }
        // An exchange left open when the client fell asleep goes again now.
        if let Some(c) = self.clients.get_mut(&slot) {
            if let Some(i) = c.inflight.as_mut() {
                i.deadline = now;
            }
        }
        self.retransmit_due(now, slot);
        self.pump(now, slot);
    }

    fn on_disconnect(&mut self, now: Instant, peer: Peer<A>, duration: Option<u16>) {
        let slot = self.by_peer.get(&peer).copied();
        let state = slot.and_then(|s| self.clients.get(&s)).map(|c| c.state);
        // Acknowledged in every case (spec 6.12).
        self.send_to_peer(peer, Disconnect { duration: None }.into());
        let Some(slot) = slot else {
            return;
        };
        self.touched.insert(slot);
        match (state, duration) {
            (Some(ClientState::Active | ClientState::Asleep | ClientState::Awake), Some(d)) => {
                if let Some(c) = self.clients.get_mut(&slot) {
                    c.state = ClientState::Asleep;
                    c.sleep = d;
                    c.last_heard = now;
                    let client_id = c.client_id.clone();
                    self.event(GatewayEvent::ClientAsleep {
                        client_id,
                        duration: d,
                    });
                }
            }
            (Some(ClientState::Lost | ClientState::Disconnected) | None, _) => {}
            _ => self.end_session(
                now,
                slot,
                ClientState::Disconnected,
                DisconnectCause::ClientRequest,
            ),
        }
    }

    /// Ends a client's session: DISCONNECT toward the broker (after its will,
    /// when lost), buffered messages dropped.
    fn end_session(&mut self, now: Instant, slot: u64, state: ClientState, cause: DisconnectCause) {
        self.touched.insert(slot);
        let Some(c) = self.clients.get_mut(&slot) else {
            return;
        };
        c.state = state;
        c.inflight = None;
        c.connect_deadline = None;
        let mut dropped = c.outbox.len();
        c.outbox.clear();
        dropped += usize::from(c.inflight_delivery.take().is_some());
        let client_id = c.client_id.clone();
        let lost = state == ClientState::Lost;
        if let Some(mqtt) = c.mqtt.as_mut() {
            if mqtt.state() == ConnectionState::Connected {
                if lost {
                    // spec 6.14: the will of a lost client is published. The
                    // gateway publishes the current will itself, since a will
                    // update (spec 6.4) cannot reach the broker's copy.
                    if let Some(w) = c.will_topic.as_ref() {
                        let _ = mqtt.publish(
                            now,
                            &w.topic,
                            c.will_msg.clone(),
                            mqtt_qos(w.qos),
                            w.retain,
                        );
                    }
                }
                mqtt.disconnect(now);
            } else {
                // Not (yet) accepted: closing abruptly is all there is.
                self.close_link(now, Owner::Client(slot), false);
            }
        }
        for _ in 0..dropped {
            self.event(GatewayEvent::Dropped {
                client_id: Some(client_id.clone()),
                reason: DropReason::SessionEnded,
            });
        }
        if lost {
            self.event(GatewayEvent::ClientLost { client_id });
        } else {
            self.event(GatewayEvent::ClientDisconnected { client_id, cause });
        }
        self.service(now, Owner::Client(slot));
    }

    // ----- topics (spec 6.5, 6.7, 6.9) -----

    fn on_register(&mut self, slot: u64, r: Register) {
        let Some(c) = self.clients.get_mut(&slot) else {
            return;
        };
        let name = r.topic_name.as_str();
        let (topic_id, code) = if validate_topic_name(name).is_err() {
            (0, ReturnCode::NotSupported)
        } else {
            match c.registry.assign(name, true) {
                Some(id) => (id, ReturnCode::Accepted),
                None => (0, ReturnCode::Congestion),
            }
        };
        self.answer(
            slot,
            RegAck {
                topic_id: TopicId(topic_id),
                msg_id: r.msg_id,
                return_code: code,
            }
            .into(),
        );
    }

    /// The topic name a client's PUBLISH refers to, or the code to refuse it.
    fn resolve(&self, c: &SnClient<A>, topic: Topic) -> Result<String, ReturnCode> {
        match topic {
            Topic::TopicId(id) => c
                .registry
                .name(id.0)
                .map(String::from)
                .ok_or(ReturnCode::InvalidTopicId),
            Topic::Predefined(id) => self
                .config
                .predefined
                .get(&id.0)
                .cloned()
                .ok_or(ReturnCode::InvalidTopicId),
            Topic::Short(bytes) => short_name(bytes).ok_or(ReturnCode::NotSupported),
        }
    }

    fn on_subscribe(&mut self, now: Instant, slot: u64, s: Subscribe) {
        let Some(c) = self.clients.get_mut(&slot) else {
            return;
        };
        if s.dup && c.subs.values().any(|r| r.msg_id == s.msg_id) {
            return; // the answer is on its way
        }
        let refuse = |code| SubAck {
            qos: SnQoS::AtMostOnce,
            topic_id: TopicId(0),
            msg_id: s.msg_id,
            return_code: code,
        };
        let (filter, topic_id, normal) = match &s.topic {
            SubscribeTopic::Name(name) => {
                let name = name.as_str();
                if validate_topic_filter(name).is_err() {
                    self.answer(slot, refuse(ReturnCode::NotSupported).into());
                    return;
                }
                if name.contains(['+', '#']) {
                    // spec 6.9: ids for wildcard matches come by REGISTER.
                    (String::from(name), 0, false)
                } else {
                    match c.registry.assign(name, false) {
                        Some(id) => (String::from(name), id, true),
                        None => {
                            self.answer(slot, refuse(ReturnCode::Congestion).into());
                            return;
                        }
                    }
                }
            }
            SubscribeTopic::Predefined(id) => match self.config.predefined.get(&id.0) {
                Some(name) => (name.clone(), id.0, false),
                None => {
                    self.answer(slot, refuse(ReturnCode::InvalidTopicId).into());
                    return;
                }
            },
            SubscribeTopic::Short(bytes) => match short_name(*bytes) {
                Some(name) => (name, 0, false),
                None => {
                    self.answer(slot, refuse(ReturnCode::NotSupported).into());
                    return;
                }
            },
        };
        let Some(mqtt) = c.mqtt.as_mut() else {
            self.answer(slot, refuse(ReturnCode::Congestion).into());
            return;
        };
        match mqtt.subscribe(now, &[(filter.as_str(), mqtt_qos(s.qos))]) {
            Ok(rid) => {
                c.subs.insert(
                    rid,
                    SubRequest {
                        msg_id: s.msg_id,
                        topic_id,
                        normal,
                    },
                );
            }
            Err(e) => {
                self.answer(slot, refuse(codes::usage_error(&e)).into());
            }
        }
        self.service(now, Owner::Client(slot));
    }

    fn on_unsubscribe(&mut self, now: Instant, slot: u64, u: Unsubscribe) {
        let Some(c) = self.clients.get_mut(&slot) else {
            return;
        };
        let filter = match &u.topic {
            SubscribeTopic::Name(name) => Some(String::from(name.as_str())),
            SubscribeTopic::Predefined(id) => self.config.predefined.get(&id.0).cloned(),
            SubscribeTopic::Short(bytes) => short_name(*bytes),
        };
        let request = match (filter, c.mqtt.as_mut()) {
            (Some(f), Some(mqtt)) => mqtt.unsubscribe(now, &[f.as_str()]).ok(),
            _ => None,
        };
        match request {
            Some(rid) => {
                c.unsubs.insert(rid, u.msg_id);
                self.service(now, Owner::Client(slot));
            }
            // UNSUBACK carries no code: nothing to unsubscribe is done at once.
            None => self.answer(slot, UnsubAck { msg_id: u.msg_id }.into()),
        }
    }

    // ----- client to broker publishes (spec 6.6, 6.8) -----

    fn on_publish(&mut self, now: Instant, slot: u64, p: Publish) {
        let Some(c) = self.clients.get(&slot) else {
            return;
        };
        let reject = |code| PubAck {
            topic_id: TopicId(u16::from_be_bytes(p.topic.to_bytes())),
            msg_id: p.msg_id,
            return_code: code,
        };
        // spec 6.6: a bad topic id is refused whatever the QoS.
        let name = match self.resolve(c, p.topic) {
            Ok(name) => name,
            Err(code) => {
                self.answer(slot, reject(code).into());
                return;
            }
        };
        let Some(c) = self.clients.get_mut(&slot) else {
            return;
        };
        let Some(mqtt) = c.mqtt.as_mut() else {
            self.answer(slot, reject(ReturnCode::Congestion).into());
            return;
        };
        let inflight = c.qos1.len() + c.qos2_in.len();
        match p.qos {
            PublishQoS::AtMostOnce => {
                if let Err(e) = mqtt.publish(now, &name, p.data, MqttQoS::AtMostOnce, p.retain) {
                    self.answer(slot, reject(codes::usage_error(&e)).into());
                    return;
                }
            }
            PublishQoS::AtLeastOnce => {
                if c.qos1.values().any(|(m, _)| *m == p.msg_id) {
                    return; // a retransmission; PUBACK follows the broker's
                }
                if inflight >= self.config.max_client_inflight {
                    self.answer(slot, reject(ReturnCode::Congestion).into());
                    return;
                }
                match mqtt.publish(now, &name, p.data, MqttQoS::AtLeastOnce, p.retain) {
                    Ok(id) => {
                        c.qos1.insert(id, (p.msg_id, p.topic));
                    }
                    Err(e) => {
                        self.answer(slot, reject(codes::usage_error(&e)).into());
                        return;
                    }
                }
            }
            PublishQoS::ExactlyOnce => {
                if c.qos2.values().any(|(m, _)| *m == p.msg_id) {
                    return; // a retransmission; PUBREC follows the broker's PUBCOMP
                }
                if c.qos2_in.contains(&p.msg_id) {
                    // A duplicate of a message already handed over: PUBREC
                    // again, not forwarded twice.
                    self.answer(slot, PubRec { msg_id: p.msg_id }.into());
                } else {
                    if inflight >= self.config.max_client_inflight {
                        self.answer(slot, reject(ReturnCode::Congestion).into());
                        return;
                    }
                    match mqtt.publish(now, &name, p.data, MqttQoS::ExactlyOnce, p.retain) {
                        Ok(id) => {
                            c.qos2.insert(id, (p.msg_id, p.topic));
                            c.qos2_in.insert(p.msg_id);
                        }
                        Err(e) => {
                            self.answer(slot, reject(codes::usage_error(&e)).into());
                            return;
                        }
                    }
                    // PUBREC once the broker has completed its own QoS 2
                    // exchange (PUBCOMP): the message is then the broker's,
                    // and a DISCONNECT that follows cannot overtake the
                    // gateway's PUBREL (a broker such as Mosquitto hands a
                    // QoS 2 message on only at PUBREL).
                }
            }
            PublishQoS::MinusOne => {}
        }
        self.service(now, Owner::Client(slot));
    }

    /// spec 6.8, 7.1: QoS −1 needs no connection; it goes out at QoS 0 on the
    /// gateway's shared broker connection.
    fn on_minus_one(&mut self, now: Instant, p: Publish) -> Result<(), PeerError> {
        let name = match p.topic {
            Topic::Predefined(id) => self.config.predefined.get(&id.0).cloned(),
            Topic::Short(bytes) => short_name(bytes),
            Topic::TopicId(_) => None,
        };
        let Some(name) = name else {
            return Err(PeerError::UnknownTopic);
        };
        let m = &mut self.minus_one;
        if let Some(mqtt) = m
            .mqtt
            .as_mut()
            .filter(|m| m.state() == ConnectionState::Connected)
        {
            if mqtt
                .publish(now, &name, p.data, MqttQoS::AtMostOnce, p.retain)
                .is_err()
            {
                self.event(GatewayEvent::Dropped {
                    client_id: None,
                    reason: DropReason::BrokerUnavailable,
                });
            }
            self.service(now, Owner::MinusOne);
            return Ok(());
        }
        if m.pending.len() >= self.config.max_buffered {
            self.event(GatewayEvent::Dropped {
                client_id: None,
                reason: DropReason::BufferFull,
            });
            return Ok(());
        }
        m.pending.push_back((name, p.data, p.retain));
        if m.link.is_none() {
            let config = ClientConfig::new(self.config.minus_one_client_id.clone())
                .with_keep_alive(self.config.broker_keep_alive)
                .with_connack_timeout(self.config.broker_connect_timeout);
            let config = match &self.config.broker_credentials {
                Some((user, password)) => config.with_credentials(user.clone(), password.clone()),
                None => config,
            };
            if let Ok(mqtt) = Client::new(config) {
                let key = ConnKey(self.next_key);
                self.next_key += 1;
                m.mqtt = Some(mqtt);
                m.link = Some(Link { key, opened: false });
                m.deadline = Some(now.saturating_add(self.config.broker_connect_timeout));
                self.by_conn.insert(key, Owner::MinusOne);
                self.broker_ops.push_back(BrokerOp::Open(key));
            }
        }
        Ok(())
    }

    // ----- time -----

    /// Time has passed: ADVERTISE, supervision of clients (lost), gateway
    /// retransmissions, broker keep alive. Safe to call at any moment.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let (Some(at), Some(t_adv)) = (self.next_advertise, self.config.t_adv) {
            if at <= now {
                let duration = u16::try_from(t_adv.as_secs()).unwrap_or(u16::MAX);
                self.transmit(
                    OutTo::Broadcast(self.config.radius),
                    Advertise {
                        gw_id: self.config.gateway_id,
                        duration,
                    }
                    .into(),
                );
                // Never behind `now`: a late call sends one ADVERTISE, not a burst.
                let mut next = at.saturating_add(t_adv);
                if next <= now {
                    next = now.saturating_add(t_adv);
                }
                self.next_advertise = Some(next);
            }
        }
        let slots: Vec<u64> = self.clients.keys().copied().collect();
        for slot in slots {
            if let Some(c) = self.clients.get_mut(&slot) {
                if let Some(mqtt) = c.mqtt.as_mut() {
                    mqtt.handle_timeout(now);
                }
            }
            self.service(now, Owner::Client(slot));
            let Some(c) = self.clients.get(&slot) else {
                continue;
            };
            if c.supervision_deadline(&self.config)
                .is_some_and(|d| d <= now)
            {
                // spec 6.14: silent past keep alive or sleep: lost.
                self.end_session(
                    now,
                    slot,
                    ClientState::Lost,
                    DisconnectCause::BrokerLinkLost,
                );
                continue;
            }
            if c.state == ClientState::Connecting && c.connect_deadline.is_some_and(|d| d <= now) {
                self.close_link(now, Owner::Client(slot), false);
                self.refuse_connect(slot, ReturnCode::Congestion);
                continue;
            }
            self.retransmit_due(now, slot);
        }
        if let Some(mqtt) = self.minus_one.mqtt.as_mut() {
            mqtt.handle_timeout(now);
        }
        self.service(now, Owner::MinusOne);
        if self.minus_one.deadline.is_some_and(|d| d <= now) {
            self.minus_one_failed();
        }
    }

    // ----- outputs -----

    /// Writes the next datagram into `buf` (appending) and says where it
    /// goes; `None` when nothing waits.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut BytesMut) -> Option<Transmit<A>> {
        let _ = now;
        while let Some((to, message)) = self.transmits.pop_front() {
            let (to, message) = match to {
                OutTo::Broadcast(radius) => (Destination::Broadcast { radius }, message),
                OutTo::Peer(Peer {
                    addr,
                    node_id: Some(node_id),
                }) => (Destination::Unicast(addr), wrap(node_id, 0, message)),
                OutTo::Peer(Peer {
                    addr,
                    node_id: None,
                }) => (Destination::Unicast(addr), message),
                OutTo::ForwarderBroadcast(peer, radius) => match peer.node_id {
                    Some(node_id) => (
                        Destination::Unicast(peer.addr),
                        wrap(node_id, radius, message),
                    ),
                    None => (Destination::Unicast(peer.addr), message),
                },
            };
            let before = buf.len();
            if message.encode(buf).is_ok() {
                return Some(Transmit {
                    to,
                    len: buf.len() - before,
                });
            }
            buf.truncate(before);
        }
        None
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<GatewayEvent<A>> {
        self.events.pop_front()
    }

    /// When [`Gateway::handle_timeout`] is next due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let clients = self.clients.values().flat_map(|c| {
            [
                c.supervision_deadline(&self.config),
                c.retry_deadline(),
                c.connect_deadline
                    .filter(|_| c.state == ClientState::Connecting),
                c.mqtt.as_ref().and_then(Client::poll_timeout),
            ]
        });
        clients
            .chain([
                self.next_advertise,
                self.minus_one.deadline,
                self.minus_one.mqtt.as_ref().and_then(Client::poll_timeout),
            ])
            .flatten()
            .min()
    }

    // ----- helpers -----

    fn answer(&mut self, slot: u64, message: Message) {
        if let Some(c) = self.clients.get(&slot) {
            let peer = c.peer.clone();
            self.send_to_peer(peer, message);
        }
    }

    /// A datagram to one client; nothing for a restored client not heard
    /// from yet (its address is not known).
    fn send_to_peer(&mut self, peer: impl Into<Option<Peer<A>>>, message: Message) {
        if let Some(peer) = peer.into() {
            self.transmit(OutTo::Peer(peer), message);
        }
    }

    fn transmit(&mut self, to: OutTo<A>, message: Message) {
        if self.transmits.len() >= self.config.max_queued_transmits {
            self.stats.transmits_dropped += 1;
            return;
        }
        self.transmits.push_back((to, message));
    }

    fn event(&mut self, event: GatewayEvent<A>) {
        if self.events.len() >= self.config.max_queued_events {
            self.events.pop_front();
            self.stats.events_dropped += 1;
        }
        self.events.push_back(event);
    }
}

fn wrap(node_id: Bytes, radius: u8, message: Message) -> Message {
    Message::Encapsulated(Encapsulated {
        radius,
        node_id,
        message: Box::new(message),
    })
}

fn will_data(data: &WillTopicData) -> WillData {
    WillData {
        topic: String::from(data.topic.as_str()),
        qos: data.qos,
        retain: data.retain,
    }
}

fn last_will(topic: Option<&WillData>, message: &Bytes) -> Option<LastWill> {
    let w = topic?;
    Some(LastWill {
        topic: midge_codec::Topic::new(&w.topic).ok()?,
        message: message.clone(),
        qos: mqtt_qos(w.qos),
        retain: w.retain,
    })
}

const fn mqtt_qos(q: SnQoS) -> MqttQoS {
    match q {
        SnQoS::AtMostOnce => MqttQoS::AtMostOnce,
        SnQoS::AtLeastOnce => MqttQoS::AtLeastOnce,
        SnQoS::ExactlyOnce => MqttQoS::ExactlyOnce,
    }
}

const fn sn_qos(q: MqttQoS) -> SnQoS {
    match q {
        MqttQoS::AtMostOnce => SnQoS::AtMostOnce,
        MqttQoS::AtLeastOnce => SnQoS::AtLeastOnce,
        MqttQoS::ExactlyOnce => SnQoS::ExactlyOnce,
    }
}

/// A two-octet short topic name as a topic name, if it is a valid one.
fn short_name(bytes: [u8; 2]) -> Option<String> {
    let s = core::str::from_utf8(&bytes).ok()?;
    validate_topic_name(s).ok()?;
    Some(String::from(s))
}

/// A topic name of exactly two octets travels as a short name (spec 6.7).
fn short_bytes(name: &str) -> Option<[u8; 2]> {
    name.as_bytes().try_into().ok()
}

#[cfg(test)]
mod tests;
