//! The MQTT-SN 1.2 client as a sans-IO state machine: [`SnClient`].
//!
//! What it does: gateway discovery (SEARCHGW after a random delay, sent again
//! at growing intervals; GWINFO and ADVERTISE fill a bounded gateway list,
//! whose advertised entries expire after N_ADV silent periods); CONNECT with
//! the will prompts (WILLTOPICREQ/WILLTOPIC, WILLMSGREQ/WILLMSG); REGISTER and
//! REGACK in both directions (the gateway registers the names matched by a
//! wildcard subscription); PUBLISH on normal, pre-defined and short topic ids
//! at QoS −1, 0, 1 and 2, with a name registered on the fly; SUBSCRIBE and
//! UNSUBSCRIBE by name, pre-defined id and short name; keep alive with
//! PINGREQ; WILLTOPICUPD and WILLMSGUPD; DISCONNECT, sleeping (DISCONNECT with
//! a duration), the awake state (PINGREQ with the client id) and the messages
//! the gateway buffered meanwhile; T_retry/N_retry retransmission, then a
//! switch to the next known gateway; T_WAIT back-off after "rejected:
//! congestion".
//!
//! With a [`GwAddCodec`] configured (the network's GwAdd format), it also reads
//! GWINFO sent by other clients and answers their SEARCHGW after a random
//! delay of up to T_GWINFO, unless some GWINFO is heard first (spec 6.1).
//!
//! What it deliberately does not do: sockets, clocks, sleeping, threads or OS
//! randomness (a seeded generator in the configuration drives the jitter);
//! reconnect after its caller's `disconnect` or a gateway's DISCONNECT (the
//! caller decides); wake itself up before the sleep duration ends (the
//! caller calls [`SnClient::wake_once`] or [`SnClient::connect`]); route
//! inbound messages to subscriptions (each is one [`SnEvent::Message`]).
//!
//! Key types: [`SnClient`], [`SnClientConfig`], [`SnEvent`], [`SnTopic`],
//! [`Transmit`] / [`Destination`], and the errors split by blame,
//! [`SnUsageError`] (the caller) and [`SnProtocolError`] (the peer).
//!
//! # Driving it
//!
//! Inputs: [`SnClient::handle_datagram`], [`SnClient::handle_timeout`] (safe to
//! call early). Commands: [`SnClient::search_gateway`], [`SnClient::connect`],
//! [`SnClient::register`], [`SnClient::publish`], [`SnClient::subscribe`],
//! [`SnClient::unsubscribe`], [`SnClient::update_will_topic`],
//! [`SnClient::clear_will`], [`SnClient::update_will_msg`],
//! [`SnClient::sleep`], [`SnClient::wake_once`], [`SnClient::disconnect`].
//! After every input or command drain, in this order:
//! [`SnClient::poll_transmit`] until `None` (send each datagram where it
//! says), [`SnClient::poll_event`] until `None`, then
//! [`SnClient::poll_timeout`] and arm a timer for it.
//!
//! # Behaviour worth knowing
//!
//! - One request at a time: the spec allows one REGISTER, one QoS 1/2
//!   PUBLISH and one SUBSCRIBE/UNSUBSCRIBE outstanding (6.5, 6.6, 6.9); this
//!   machine goes further and keeps every acknowledged request in one queue,
//!   sent strictly in call order, one awaiting its answer at a time. QoS 0
//!   publishes wait their turn in the same queue, so they never overtake.
//! - `publish`, `register`, `subscribe`, `unsubscribe` and the will updates
//!   are taken in any state; what they send goes out once the client is
//!   connected (QoS −1 excepted: it goes out at once to the current or first
//!   known gateway, spec 6.8). The queue survives the end of a
//!   connection and resumes after the next CONNACK; a name whose id came
//!   from another gateway is registered again.
//! - Datagrams from any address but the current gateway are ignored, except
//!   ADVERTISE, GWINFO and SEARCHGW. A malformed datagram is dropped with an
//!   error and changes nothing.
//! - When N_retry runs out (spec 6.13) the request in flight goes back to the
//!   head of the queue and a CONNECT goes to the next known gateway in list
//!   order; after as many switches as there are known gateways (so the
//!   former gateway comes round again last) the client gives up
//!   ([`SnDisconnectReason::GatewayLost`]). A sleep request in flight then is
//!   dropped: the client is connected again, not asleep.
//! - Topic ids learned from a gateway are kept across a reconnection only if
//!   it is the same gateway and `clean_session` is false.
//! - An inbound PUBLISH on a normal id the client does not know is refused
//!   with PUBACK "invalid topic id" (spec 6.10). A pre-defined id missing from
//!   the configured table is delivered as [`SnTopic::Predefined`]: the
//!   application may know it.
//! - At each limit: a full command queue refuses commands (`QueueFull`); a
//!   full topic table forgets its oldest entry; a full gateway list ignores
//!   newcomers; a full inbound QoS 2 table or event queue leaves an inbound
//!   PUBLISH unacknowledged so the gateway sends it again.
//!
//! # Example
//!
//! ```
//! use bytes::BytesMut;
//! use midge_session::sn::client::{Destination, SnClient, SnClientConfig, SnEvent, SnTopic};
//! use midge_sn_codec::{ConnAck, Message, PublishQoS, ReturnCode};
//! use midge_time::Instant;
//!
//! let gw = "10.0.0.1:1884";
//! let mut client = SnClient::new(SnClientConfig::<&str>::new("sensor-7"))?;
//! let now = Instant::ZERO;
//! let mut out = BytesMut::new();
//!
//! client.connect(now, gw)?;
//! let t = client.poll_transmit(now, &mut out).unwrap(); // CONNECT
//! assert_eq!(t.to, Destination::Unicast(gw));
//!
//! let mut reply = Vec::new();
//! Message::ConnAck(ConnAck { return_code: ReturnCode::Accepted }).encode(&mut reply)?;
//! client.handle_datagram(now, gw, &reply)?;
//! assert_eq!(client.poll_event(), Some(SnEvent::Connected { gateway: gw }));
//!
//! let id = client.publish(now, SnTopic::Short(*b"t1"), &b"21.5"[..], PublishQoS::AtMostOnce, false)?;
//! out.clear();
//! assert!(client.poll_transmit(now, &mut out).is_some()); // PUBLISH on short name "t1"
//! assert_eq!(client.poll_event(), Some(SnEvent::Delivered { id }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod error;
mod event;
mod gateways;
mod registry;

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Debug;

use bytes::{Bytes, BytesMut};
use midge_sn_codec::{
    ClientId, Connect, Disconnect, GwInfo, Message, PingReq, PingResp, PubAck, PubComp, PubRec,
    PubRel, Publish, PublishQoS, QoS, RegAck, Register, ReturnCode, SearchGw, Subscribe,
    SubscribeTopic, Topic, TopicId, TopicName, Unsubscribe, WillMsg, WillMsgUpd, WillTopic,
    WillTopicData, WillTopicUpd,
};
use midge_time::{Duration, Instant};

pub use config::{GwAddCodec, SnClientConfig, SnWill};
pub use error::{SnProtocolError, SnUsageError};
pub use event::{
    DeliveryId, Destination, RequestId, SnDisconnectReason, SnEvent, SnTopic, Transmit,
};

use super::rng::Rng;
use gateways::{advertise_expiry, GatewayList};
use registry::Registry;

/// Largest MQTT-SN datagram (three-octet Length form).
const MAX_DATAGRAM: usize = 0xFFFF;
/// Longest client id (spec 5.4.4).
const MAX_CLIENT_ID: usize = 23;

/// Where the client stands with its gateway (spec 6.14, seen from the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnState {
    /// No connection.
    Disconnected,
    /// CONNECT sent, CONNACK not yet received.
    Connecting,
    /// Connected.
    Active,
    /// Asleep: the gateway buffers messages for the client.
    Asleep,
    /// Awake for one round: PINGREQ with the client id sent, buffered
    /// messages arriving until PINGRESP.
    Awake,
}

/// Counters of what the machine dropped or repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SnStats {
    /// Datagrams ignored: from a stranger, out of state, or an answer nothing
    /// waited for.
    pub ignored: u64,
    /// Requests sent again after T_retry.
    pub retransmissions: u64,
    /// Inbound PUBLISHes refused with "invalid topic id".
    pub unknown_topic_ids: u64,
    /// Inbound PUBLISHes left unacknowledged because the event queue or the
    /// inbound QoS 2 table was full.
    pub inbound_refused: u64,
    /// Topic table entries forgotten at the limit.
    pub topics_evicted: u64,
}

/// An outbound publish waiting or in flight.
#[derive(Debug, Clone)]
struct OutPublish {
    id: DeliveryId,
    topic: SnTopic,
    payload: Bytes,
    qos: PublishQoS,
    retain: bool,
    /// Already registered again once after "invalid topic id".
    reregistered: bool,
    /// Sent before (DUP on the next send).
    sent_before: bool,
}

/// A command waiting for its turn.
#[derive(Debug, Clone)]
enum Op {
    Register {
        req: RequestId,
        name: String,
    },
    Publish(OutPublish),
    /// A QoS 2 publish whose PUBREC came: only PUBREL remains.
    Release(OutPublish, u16),
    Subscribe {
        req: RequestId,
        topic: SnTopic,
        qos: QoS,
    },
    Unsubscribe {
        req: RequestId,
        topic: SnTopic,
    },
    WillTopic {
        req: RequestId,
        will: Option<WillTopicData>,
    },
    WillMsg {
        req: RequestId,
        msg: Bytes,
    },
    Sleep {
        duration: u16,
    },
    Disconnect,
}

/// What the request in flight is, and what its answer completes.
#[derive(Debug, Clone)]
enum Pending {
    Register {
        req: Option<RequestId>,
        name: String,
        publish: Option<OutPublish>,
    },
    Publish {
        publish: OutPublish,
        released: bool,
    },
    Subscribe {
        req: RequestId,
        topic: SnTopic,
        qos: QoS,
    },
    Unsubscribe {
        req: RequestId,
        topic: SnTopic,
    },
    WillTopic {
        req: RequestId,
        will: Option<WillTopicData>,
    },
    WillMsg {
        req: RequestId,
        msg: Bytes,
    },
    Sleep {
        duration: u16,
    },
    Disconnect,
}

/// A message supervised by T_retry/N_retry (spec 6.13), or parked for T_WAIT.
#[derive(Debug, Clone)]
struct Retry {
    message: Message,
    sent_at: Instant,
    retries: u8,
    backoff_until: Option<Instant>,
}

impl Retry {
    const fn new(message: Message, now: Instant) -> Self {
        Self {
            message,
            sent_at: now,
            retries: 0,
            backoff_until: None,
        }
    }

    fn deadline(&self, t_retry: Duration) -> Instant {
        self.backoff_until
            .unwrap_or_else(|| self.sent_at.saturating_add(t_retry))
    }
}

#[derive(Debug, Clone)]
struct Exchange {
    pending: Pending,
    msg_id: u16,
    retry: Retry,
}

#[derive(Debug, Clone, Copy)]
enum SearchPhase {
    /// Waiting out the random delay before the first SEARCHGW.
    Delay { send_at: Instant },
    /// SEARCHGW sent; waiting for an answer until `until`.
    Waiting { until: Instant },
}

#[derive(Debug, Clone, Copy)]
struct Search {
    phase: SearchPhase,
    sent: u8,
}

#[derive(Debug, Clone)]
struct Outgoing<A> {
    to: Destination<A>,
    message: Message,
    delivered: Option<DeliveryId>,
}

/// The MQTT-SN client machine. See the [module docs](self) for the calling
/// order and the behaviour at each limit.
#[derive(Debug)]
pub struct SnClient<A> {
    config: SnClientConfig<A>,
    client_id: ClientId,
    state: SnState,
    gateway: Option<A>,
    gateways: GatewayList<A>,
    registry: Registry,
    rng: Rng,
    search: Option<Search>,
    /// A GWINFO this client will broadcast for another's SEARCHGW: when, and
    /// with which radius.
    gwinfo_reply: Option<(Instant, u8)>,
    connecting: Option<Retry>,
    exchange: Option<Exchange>,
    ping: Option<Retry>,
    queue: VecDeque<Op>,
    outbox: VecDeque<Outgoing<A>>,
    events: VecDeque<SnEvent<A>>,
    inbound_qos2: Vec<u16>,
    next_msg_id: u16,
    next_delivery: u64,
    next_request: u64,
    last_sent: Instant,
    switches_left: usize,
    stats: SnStats,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < MAX_DATAGRAM - 16
        && midge_topic::validate_topic_name(name).is_ok()
}

fn valid_filter(name: &str) -> bool {
    !name.is_empty()
        && name.len() < MAX_DATAGRAM - 16
        && midge_topic::validate_topic_filter(name).is_ok()
}

fn has_wildcards(name: &str) -> bool {
    name.contains(['+', '#'])
}

fn sub_topic(topic: &SnTopic) -> SubscribeTopic {
    match topic {
        SnTopic::Name(name) => SubscribeTopic::Name(TopicName::from(name.clone())),
        SnTopic::Predefined(id) => SubscribeTopic::Predefined(TopicId(*id)),
        SnTopic::Short(short) => SubscribeTopic::Short(*short),
    }
}

impl<A: Clone + Eq + Debug> SnClient<A> {
    /// A machine with this configuration, disconnected, with the configured
    /// gateways in its list.
    pub fn new(config: SnClientConfig<A>) -> Result<Self, SnUsageError> {
        if config.client_id.is_empty() || config.client_id.len() > MAX_CLIENT_ID {
            return Err(SnUsageError::InvalidClientId);
        }
        if config.t_retry.is_zero() {
            return Err(SnUsageError::InvalidConfig("t_retry"));
        }
        if config.max_topics == 0 {
            return Err(SnUsageError::InvalidConfig("max_topics"));
        }
        if config.max_inbound_qos2 == 0 {
            return Err(SnUsageError::InvalidConfig("max_inbound_qos2"));
        }
        if config.max_events == 0 {
            return Err(SnUsageError::InvalidConfig("max_events"));
        }
        if config
            .predefined
            .iter()
            .any(|(id, name)| TopicId(*id).is_reserved() || !valid_name(name))
        {
            return Err(SnUsageError::InvalidConfig("predefined"));
        }
        if let Some(will) = &config.will {
            if !valid_name(&will.topic) || will.payload.len() > MAX_DATAGRAM - 8 {
                return Err(SnUsageError::InvalidConfig("will"));
            }
        }
        let client_id = ClientId::from(config.client_id.clone());
        Ok(Self {
            client_id,
            state: SnState::Disconnected,
            gateway: None,
            gateways: GatewayList::new(&config.gateways, config.max_gateways),
            registry: Registry::new(config.max_topics),
            rng: Rng::new(config.seed),
            search: None,
            gwinfo_reply: None,
            connecting: None,
            exchange: None,
            ping: None,
            queue: VecDeque::new(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            inbound_qos2: Vec::new(),
            next_msg_id: 0,
            next_delivery: 0,
            next_request: 0,
            last_sent: Instant::ZERO,
            switches_left: 0,
            stats: SnStats::default(),
            config,
        })
    }

    // ----- getters -----

    /// The configuration.
    pub fn config(&self) -> &SnClientConfig<A> {
        &self.config
    }

    /// Where the client stands.
    pub fn state(&self) -> SnState {
        self.state
    }

    /// The gateway connected, being connected to, or slept with.
    pub fn gateway(&self) -> Option<&A> {
        self.gateway.as_ref()
    }

    /// The known gateways, `(GwId, address)`, in the order they became known.
    pub fn gateways(&self) -> impl Iterator<Item = (u8, &A)> {
        self.gateways.iter().map(|g| (g.gw_id, &g.address))
    }

    /// The topic id registered for `name` with the current gateway, if any.
    pub fn topic_id(&self, name: &str) -> Option<TopicId> {
        self.registry.id_of(name).map(TopicId)
    }

    /// Entries in the topic id table.
    pub fn topics_len(&self) -> usize {
        self.registry.len()
    }

    /// Commands held: waiting, in flight, and publishes not yet written by
    /// `poll_transmit`. Never more than `max_queued` + 1 (a `disconnect` is
    /// always taken).
    pub fn queued_len(&self) -> usize {
        self.queue.len()
            + usize::from(self.exchange.is_some())
            + self.outbox.iter().filter(|o| o.delivered.is_some()).count()
    }

    /// Inbound QoS 2 ids awaiting PUBREL.
    pub fn inbound_qos2_len(&self) -> usize {
        self.inbound_qos2.len()
    }

    /// Events not yet drained.
    pub fn events_len(&self) -> usize {
        self.events.len()
    }

    /// Datagrams not yet drained.
    pub fn transmits_len(&self) -> usize {
        self.outbox.len()
    }

    /// Whether a request awaits its answer.
    pub fn request_in_flight(&self) -> bool {
        self.exchange.is_some()
    }

    /// Counters.
    pub fn stats(&self) -> SnStats {
        self.stats
    }

    // ----- commands -----

    /// Starts a gateway search: SEARCHGW is broadcast after a random delay of
    /// up to T_SEARCHGW (spec 6.1), then again at doubling intervals until a
    /// gateway answers or `searchgw_attempts` were sent ([`SnEvent::SearchFailed`]).
    pub fn search_gateway(&mut self, now: Instant) -> Result<(), SnUsageError> {
        if self.search.is_some() {
            return Err(SnUsageError::SearchRunning);
        }
        if self.config.searchgw_attempts == 0 {
            return Err(SnUsageError::InvalidConfig("searchgw_attempts"));
        }
        let max = u64::try_from(self.config.t_searchgw.as_micros()).unwrap_or(u64::MAX);
        let delay = Duration::from_micros(self.rng.up_to(max));
        self.search = Some(Search {
            phase: SearchPhase::Delay {
                send_at: now.saturating_add(delay),
            },
            sent: 0,
        });
        Ok(())
    }

    /// Sends CONNECT to `gateway` (spec 6.2). Allowed when disconnected,
    /// asleep or awake (spec 6.14: CONNECT makes a sleeping client active).
    pub fn connect(&mut self, now: Instant, gateway: A) -> Result<(), SnUsageError> {
        match self.state {
            SnState::Disconnected | SnState::Asleep | SnState::Awake => {}
            SnState::Connecting | SnState::Active => return Err(SnUsageError::AlreadyConnected),
        }
        // A sleep change or disconnect in flight from the asleep state is
        // overtaken by the CONNECT.
        self.exchange = None;
        self.ping = None;
        self.switches_left = self.gateways.len();
        self.start_connect(now, gateway);
        Ok(())
    }

    /// Registers a topic name (spec 6.5); [`SnEvent::Registered`] or
    /// [`SnEvent::RegisterFailed`] follows. Publishing on a name registers it
    /// by itself; this is for registering ahead.
    pub fn register(&mut self, now: Instant, topic: &str) -> Result<RequestId, SnUsageError> {
        if !valid_name(topic) || has_wildcards(topic) {
            return Err(SnUsageError::InvalidTopic);
        }
        self.check_room()?;
        let req = self.new_request();
        self.queue.push_back(Op::Register {
            req,
            name: String::from(topic),
        });
        self.pump(now);
        Ok(req)
    }

    /// Publishes `payload` on `topic`. QoS −1 goes out at once to the current
    /// or first known gateway, connected or not (spec 6.8), and needs a
    /// pre-defined id or a short name; other levels wait their turn in the
    /// queue, a name being registered first if needed (spec 6.5, 6.6).
    pub fn publish(
        &mut self,
        now: Instant,
        topic: SnTopic,
        payload: impl Into<Bytes>,
        qos: PublishQoS,
        retain: bool,
    ) -> Result<DeliveryId, SnUsageError> {
        let payload = payload.into();
        if payload.len() > MAX_DATAGRAM - 9 {
            return Err(SnUsageError::TooLong);
        }
        match &topic {
            SnTopic::Name(name) if !valid_name(name) || has_wildcards(name) => {
                return Err(SnUsageError::InvalidTopic)
            }
            SnTopic::Name(_) if qos == PublishQoS::MinusOne => {
                return Err(SnUsageError::MinusOneNeedsIdTopic)
            }
            SnTopic::Predefined(id) if TopicId(*id).is_reserved() => {
                return Err(SnUsageError::ReservedTopicId)
            }
            _ => {}
        }
        self.check_room()?;
        if qos == PublishQoS::MinusOne {
            let topic = match topic {
                SnTopic::Predefined(raw) => Topic::Predefined(TopicId(raw)),
                SnTopic::Short(short) => Topic::Short(short),
                SnTopic::Name(_) => return Err(SnUsageError::MinusOneNeedsIdTopic),
            };
            let to = self
                .gateway
                .clone()
                .or_else(|| self.gateways.first().cloned())
                .ok_or(SnUsageError::NoGateway)?;
            let id = self.new_delivery();
            let message = Message::Publish(Publish {
                dup: false,
                qos,
                retain,
                topic,
                msg_id: 0,
                data: payload,
            });
            self.outbox.push_back(Outgoing {
                to: Destination::Unicast(to),
                message,
                delivered: Some(id),
            });
            return Ok(id);
        }
        let id = self.new_delivery();
        self.queue.push_back(Op::Publish(OutPublish {
            id,
            topic,
            payload,
            qos,
            retain,
            reregistered: false,
            sent_before: false,
        }));
        self.pump(now);
        Ok(id)
    }

    /// Subscribes to a name (wildcards allowed), a pre-defined id or a short
    /// name (spec 6.9).
    pub fn subscribe(
        &mut self,
        now: Instant,
        topic: SnTopic,
        qos: QoS,
    ) -> Result<RequestId, SnUsageError> {
        self.check_sub_topic(&topic)?;
        self.check_room()?;
        let req = self.new_request();
        self.queue.push_back(Op::Subscribe { req, topic, qos });
        self.pump(now);
        Ok(req)
    }

    /// Unsubscribes from a name, a pre-defined id or a short name (spec 6.9).
    pub fn unsubscribe(&mut self, now: Instant, topic: SnTopic) -> Result<RequestId, SnUsageError> {
        self.check_sub_topic(&topic)?;
        self.check_room()?;
        let req = self.new_request();
        self.queue.push_back(Op::Unsubscribe { req, topic });
        self.pump(now);
        Ok(req)
    }

    /// Replaces the will topic at the gateway with WILLTOPICUPD (spec 6.4).
    pub fn update_will_topic(
        &mut self,
        now: Instant,
        topic: &str,
        qos: QoS,
        retain: bool,
    ) -> Result<RequestId, SnUsageError> {
        if !valid_name(topic) {
            return Err(SnUsageError::InvalidTopic);
        }
        let will = WillTopicData {
            qos,
            retain,
            topic: TopicName::from(String::from(topic)),
        };
        self.queue_will_topic(now, Some(will))
    }

    /// Deletes the will topic and message at the gateway with an empty
    /// WILLTOPICUPD (spec 6.4).
    pub fn clear_will(&mut self, now: Instant) -> Result<RequestId, SnUsageError> {
        self.queue_will_topic(now, None)
    }

    /// Replaces the will message at the gateway with WILLMSGUPD (spec 6.4).
    pub fn update_will_msg(
        &mut self,
        now: Instant,
        payload: impl Into<Bytes>,
    ) -> Result<RequestId, SnUsageError> {
        let msg = payload.into();
        if msg.len() > MAX_DATAGRAM - 8 {
            return Err(SnUsageError::TooLong);
        }
        self.check_room()?;
        let req = self.new_request();
        self.queue.push_back(Op::WillMsg { req, msg });
        self.pump(now);
        Ok(req)
    }

    /// Asks to sleep for `duration` seconds with DISCONNECT carrying it
    /// (spec 6.14); [`SnEvent::Asleep`] follows the gateway's DISCONNECT.
    /// When connected the request waits its turn behind earlier commands;
    /// asleep or awake it goes at once and changes the sleep duration.
    pub fn sleep(&mut self, now: Instant, duration: u16) -> Result<(), SnUsageError> {
        if duration == 0 {
            return Err(SnUsageError::InvalidConfig("sleep duration"));
        }
        match self.state {
            SnState::Active | SnState::Connecting => {
                self.check_room()?;
                self.queue.push_back(Op::Sleep { duration });
                self.pump(now);
                Ok(())
            }
            // spec 6.14: asleep or awake, a new DISCONNECT with a duration
            // changes the sleep duration (and ends an awake period).
            SnState::Asleep | SnState::Awake if self.exchange.is_none() => {
                self.ping = None;
                self.start_exchange(now, Pending::Sleep { duration });
                Ok(())
            }
            _ => Err(SnUsageError::WrongState),
        }
    }

    /// From the asleep state, wakes up once (spec 6.14): PINGREQ with the
    /// client id; the gateway sends what it buffered, then PINGRESP, and the
    /// client is asleep again ([`SnEvent::AwakeDone`]).
    pub fn wake_once(&mut self, now: Instant) -> Result<(), SnUsageError> {
        if self.state != SnState::Asleep || self.exchange.is_some() {
            return Err(SnUsageError::WrongState);
        }
        self.state = SnState::Awake;
        let ping = Message::PingReq(PingReq {
            client_id: Some(self.client_id.clone()),
        });
        self.send_to_gateway(now, ping.clone());
        self.ping = Some(Retry::new(ping, now));
        Ok(())
    }

    /// Ends the connection with DISCONNECT (spec 6.12). When connected it
    /// waits its turn behind earlier commands; asleep or awake it goes at
    /// once; while connecting the attempt is abandoned without a word to the
    /// gateway. [`SnEvent::Disconnected`] follows.
    pub fn disconnect(&mut self, now: Instant) -> Result<(), SnUsageError> {
        match self.state {
            SnState::Disconnected => Err(SnUsageError::WrongState),
            SnState::Connecting => {
                self.connecting = None;
                self.end(SnDisconnectReason::ClientDisconnect);
                Ok(())
            }
            SnState::Active => {
                if !self.queue.iter().any(|op| matches!(op, Op::Disconnect))
                    && !matches!(
                        self.exchange,
                        Some(Exchange {
                            pending: Pending::Disconnect,
                            ..
                        })
                    )
                {
                    self.queue.push_back(Op::Disconnect);
                }
                self.pump(now);
                Ok(())
            }
            SnState::Asleep | SnState::Awake => {
                self.ping = None;
                self.exchange = None;
                self.start_exchange(now, Pending::Disconnect);
                Ok(())
            }
        }
    }

    // ----- inputs -----

    /// One datagram from `from`. A malformed datagram, or one no client
    /// should receive, is dropped with an error and changes nothing.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: A,
        datagram: &[u8],
    ) -> Result<(), SnProtocolError> {
        let message = midge_sn_codec::decode_slice(datagram)?;
        match message {
            Message::Advertise(adv) => {
                let expires = advertise_expiry(now, adv.duration, self.config.n_adv);
                self.gateway_heard(adv.gw_id, &from, expires);
                Ok(())
            }
            Message::GwInfo(info) => {
                // spec 6.1: any GWINFO heard makes our own answer needless.
                self.gwinfo_reply = None;
                if info.gw_add.is_empty() {
                    self.gateway_heard(info.gw_id, &from, None);
                } else {
                    // Sent by another client: the gateway is at GwAdd.
                    let decoded = self
                        .config
                        .gw_add_codec
                        .and_then(|codec| (codec.decode)(&info.gw_add));
                    match decoded {
                        Some(address) => self.gateway_heard(info.gw_id, &address, None),
                        None => self.stats.ignored += 1,
                    }
                }
                Ok(())
            }
            Message::SearchGw(search) => {
                // spec 6.1: an identical SEARCHGW from another client during
                // our delay counts as our own.
                if let Some(s) = &mut self.search {
                    if matches!(s.phase, SearchPhase::Delay { .. })
                        && search.radius == self.config.radius
                    {
                        s.sent = s.sent.saturating_add(1);
                        s.phase = SearchPhase::Waiting {
                            until: now.saturating_add(self.config.t_searchgw),
                        };
                    }
                }
                // spec 6.1: a client that knows a gateway answers too, after a
                // random delay that leaves the gateways time to answer first.
                if self.config.gw_add_codec.is_some()
                    && self.gateways.len() > 0
                    && self.gwinfo_reply.is_none()
                {
                    let max = u64::try_from(self.config.t_gwinfo.as_micros()).unwrap_or(u64::MAX);
                    let at = now.saturating_add(Duration::from_micros(self.rng.up_to(max)));
                    self.gwinfo_reply = Some((at, search.radius));
                }
                Ok(())
            }
            Message::Connect(_)
            | Message::WillTopic(_)
            | Message::WillMsg(_)
            | Message::Subscribe(_)
            | Message::Unsubscribe(_)
            | Message::WillTopicUpd(_)
            | Message::WillMsgUpd(_)
            | Message::Encapsulated(_) => {
                Err(SnProtocolError::UnexpectedMessage(message.msg_type()))
            }
            other => {
                if self.gateway.as_ref() != Some(&from) || self.state == SnState::Disconnected {
                    self.stats.ignored += 1;
                    return Ok(());
                }
                self.session_message(now, other)
            }
        }
    }

    /// Timers: SEARCHGW, gateway expiry, retransmission, back-off, keep
    /// alive. Safe to call at any time; does only what is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        for gone in self.gateways.expire(now) {
            self.events.push_back(SnEvent::GatewayExpired {
                gw_id: gone.gw_id,
                address: gone.address,
            });
        }
        self.search_timeout(now);
        self.gwinfo_timeout(now);
        let t_retry = self.config.t_retry;
        let n_retry = self.config.n_retry;

        if let Some(retry) = &mut self.connecting {
            if retry.deadline(t_retry) <= now {
                if retry.backoff_until.take().is_some() {
                    retry.retries = 0;
                } else if retry.retries >= n_retry {
                    self.lose_gateway(now);
                    return;
                } else {
                    retry.retries += 1;
                    self.stats.retransmissions += 1;
                }
                retry.sent_at = now;
                let message = retry.message.clone();
                self.send_to_gateway(now, message);
            }
        }

        if let Some(ex) = &mut self.exchange {
            if ex.retry.deadline(t_retry) <= now {
                if ex.retry.backoff_until.take().is_some() {
                    ex.retry.retries = 0;
                } else if ex.retry.retries >= n_retry {
                    if matches!(ex.pending, Pending::Disconnect) {
                        // Nobody answers the goodbye: the client is gone anyway.
                        self.exchange = None;
                        self.end(SnDisconnectReason::ClientDisconnect);
                    } else {
                        self.lose_gateway(now);
                    }
                    return;
                } else {
                    ex.retry.retries += 1;
                    self.stats.retransmissions += 1;
                    set_dup(&mut ex.retry.message);
                }
                ex.retry.sent_at = now;
                let message = ex.retry.message.clone();
                self.send_to_gateway(now, message);
            }
        }

        if let Some(ping) = &mut self.ping {
            if ping.deadline(t_retry) <= now {
                if ping.retries >= n_retry {
                    self.ping = None;
                    if self.state == SnState::Awake {
                        // spec 6.14: stop trying and go back to sleep.
                        self.state = SnState::Asleep;
                        self.events
                            .push_back(SnEvent::AwakeDone { complete: false });
                    } else {
                        self.lose_gateway(now);
                    }
                    return;
                }
                ping.retries += 1;
                ping.sent_at = now;
                self.stats.retransmissions += 1;
                let message = ping.message.clone();
                self.send_to_gateway(now, message);
            }
        }

        if let Some(due) = self.keep_alive_due() {
            if due <= now {
                // spec 6.11: a PINGREQ in every keep alive period.
                let ping = Message::PingReq(PingReq { client_id: None });
                self.send_to_gateway(now, ping.clone());
                self.ping = Some(Retry::new(ping, now));
            }
        }
    }

    // ----- outputs -----

    /// Writes the next datagram into `buf` (appended) and says where it goes;
    /// `None` when nothing is waiting.
    pub fn poll_transmit(&mut self, _now: Instant, buf: &mut BytesMut) -> Option<Transmit<A>> {
        while let Some(out) = self.outbox.pop_front() {
            let before = buf.len();
            match out.message.encode(buf) {
                Ok(()) => {
                    if let Some(id) = out.delivered {
                        self.events.push_back(SnEvent::Delivered { id });
                    }
                    return Some(Transmit {
                        to: out.to,
                        len: buf.len() - before,
                    });
                }
                Err(_) => {
                    // Checked at the command; kept so nothing can panic.
                    buf.truncate(before);
                    if let Some(id) = out.delivered {
                        self.events.push_back(SnEvent::Dropped { id });
                    }
                }
            }
        }
        None
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<SnEvent<A>> {
        self.events.pop_front()
    }

    /// When `handle_timeout` is next due, if anything waits on time.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let t_retry = self.config.t_retry;
        let search = self.search.map(|s| match s.phase {
            SearchPhase::Delay { send_at } => send_at,
            SearchPhase::Waiting { until } => until,
        });
        [
            self.gateways.next_expiry(),
            search,
            self.gwinfo_reply.map(|(at, _)| at),
            self.connecting.as_ref().map(|r| r.deadline(t_retry)),
            self.exchange.as_ref().map(|e| e.retry.deadline(t_retry)),
            self.ping.as_ref().map(|r| r.deadline(t_retry)),
            self.keep_alive_due(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ----- internals -----

    fn check_room(&self) -> Result<(), SnUsageError> {
        if self.queued_len() >= self.config.max_queued {
            return Err(SnUsageError::QueueFull {
                max: self.config.max_queued,
            });
        }
        Ok(())
    }

    fn check_sub_topic(&self, topic: &SnTopic) -> Result<(), SnUsageError> {
        match topic {
            SnTopic::Name(name) if !valid_filter(name) => Err(SnUsageError::InvalidTopic),
            SnTopic::Predefined(id) if TopicId(*id).is_reserved() => {
                Err(SnUsageError::ReservedTopicId)
            }
            _ => Ok(()),
        }
    }

    fn queue_will_topic(
        &mut self,
        now: Instant,
        will: Option<WillTopicData>,
    ) -> Result<RequestId, SnUsageError> {
        self.check_room()?;
        let req = self.new_request();
        self.queue.push_back(Op::WillTopic { req, will });
        self.pump(now);
        Ok(req)
    }

    fn new_request(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    fn new_delivery(&mut self) -> DeliveryId {
        self.next_delivery += 1;
        DeliveryId(self.next_delivery)
    }

    fn new_msg_id(&mut self) -> u16 {
        self.next_msg_id = self.next_msg_id.checked_add(1).unwrap_or(1);
        self.next_msg_id
    }

    fn keep_alive_due(&self) -> Option<Instant> {
        if self.state != SnState::Active || self.ping.is_some() || self.config.keep_alive == 0 {
            return None;
        }
        Some(
            self.last_sent
                .saturating_add(Duration::from_secs(u64::from(self.config.keep_alive))),
        )
    }

    fn send_to_gateway(&mut self, now: Instant, message: Message) {
        self.send_publish_to_gateway(now, message, None);
    }

    /// Queues a datagram for the current gateway; `delivered` names the
    /// publish reported done once it is written.
    fn send_publish_to_gateway(
        &mut self,
        now: Instant,
        message: Message,
        delivered: Option<DeliveryId>,
    ) {
        let Some(to) = self.gateway.clone() else {
            // Only reachable without a gateway, where nothing is sent.
            if let Some(id) = delivered {
                self.events.push_back(SnEvent::Dropped { id });
            }
            return;
        };
        self.last_sent = now;
        self.outbox.push_back(Outgoing {
            to: Destination::Unicast(to),
            message,
            delivered,
        });
    }

    fn gateway_heard(&mut self, gw_id: u8, from: &A, expires: Option<Instant>) {
        if self.gateways.heard(gw_id, from, expires) {
            self.events.push_back(SnEvent::GatewayFound {
                gw_id,
                address: from.clone(),
            });
        }
        // Any gateway heard ends a search.
        self.search = None;
    }

    fn search_timeout(&mut self, now: Instant) {
        let Some(search) = self.search else {
            return;
        };
        let due = match search.phase {
            SearchPhase::Delay { send_at } => send_at,
            SearchPhase::Waiting { until } => until,
        };
        if due > now {
            return;
        }
        if search.sent >= self.config.searchgw_attempts {
            self.search = None;
            self.events.push_back(SnEvent::SearchFailed);
            return;
        }
        // spec 6.1: the wait for an answer doubles at every attempt.
        let wait = self
            .config
            .t_searchgw
            .saturating_mul(1u32 << u32::from(search.sent.min(16)));
        self.search = Some(Search {
            phase: SearchPhase::Waiting {
                until: now.saturating_add(wait),
            },
            sent: search.sent.saturating_add(1),
        });
        self.outbox.push_back(Outgoing {
            to: Destination::Broadcast {
                radius: self.config.radius,
            },
            message: Message::SearchGw(SearchGw {
                radius: self.config.radius,
            }),
            delivered: None,
        });
    }

    /// Broadcasts the GWINFO answer that is due, naming the current gateway
    /// or else the first known one.
    fn gwinfo_timeout(&mut self, now: Instant) {
        let Some((at, radius)) = self.gwinfo_reply else {
            return;
        };
        if at > now {
            return;
        }
        self.gwinfo_reply = None;
        let Some(codec) = self.config.gw_add_codec else {
            return;
        };
        let chosen = self
            .gateways
            .iter()
            .find(|g| Some(&g.address) == self.gateway.as_ref())
            .or_else(|| self.gateways.iter().next());
        let Some(gateway) = chosen else {
            return;
        };
        let message = Message::GwInfo(GwInfo {
            gw_id: gateway.gw_id,
            gw_add: (codec.encode)(&gateway.address),
        });
        self.outbox.push_back(Outgoing {
            to: Destination::Broadcast { radius },
            message,
            delivered: None,
        });
    }

    fn start_connect(&mut self, now: Instant, gateway: A) {
        let same = self.gateway.as_ref() == Some(&gateway);
        if !same || self.config.clean_session {
            self.registry.clear();
        }
        if self.config.clean_session {
            self.inbound_qos2.clear();
        }
        self.gateway = Some(gateway);
        self.state = SnState::Connecting;
        let connect = Message::Connect(Connect {
            will: self.config.will.is_some(),
            clean_session: self.config.clean_session,
            duration: self.config.keep_alive,
            client_id: self.client_id.clone(),
        });
        self.send_to_gateway(now, connect.clone());
        self.connecting = Some(Retry::new(connect, now));
    }

    /// Puts the request in flight back at the head of the queue, so it is
    /// sent again after the next CONNACK.
    fn requeue_exchange(&mut self) {
        let Some(ex) = self.exchange.take() else {
            return;
        };
        let op = match ex.pending {
            Pending::Register {
                publish: Some(p), ..
            } => Some(Op::Publish(p)),
            Pending::Register {
                req: Some(req),
                name,
                publish: None,
            } => Some(Op::Register { req, name }),
            Pending::Register { .. } | Pending::Sleep { .. } | Pending::Disconnect => None,
            Pending::Publish {
                publish,
                released: true,
            } => Some(Op::Release(publish, ex.msg_id)),
            Pending::Publish { mut publish, .. } => {
                publish.sent_before = true;
                Some(Op::Publish(publish))
            }
            Pending::Subscribe { req, topic, qos } => Some(Op::Subscribe { req, topic, qos }),
            Pending::Unsubscribe { req, topic } => Some(Op::Unsubscribe { req, topic }),
            Pending::WillTopic { req, will } => Some(Op::WillTopic { req, will }),
            Pending::WillMsg { req, msg } => Some(Op::WillMsg { req, msg }),
        };
        if let Some(op) = op {
            self.queue.push_front(op);
        }
    }

    /// spec 6.13: N_retry retransmissions unanswered. Try the next gateway,
    /// or give up.
    fn lose_gateway(&mut self, now: Instant) {
        self.connecting = None;
        self.ping = None;
        self.requeue_exchange();
        let Some(lost) = self.gateway.clone() else {
            self.end(SnDisconnectReason::GatewayLost);
            return;
        };
        self.events.push_back(SnEvent::GatewayLost {
            gateway: lost.clone(),
        });
        match self.gateways.next_after(&lost) {
            Some(next) if self.switches_left > 0 => {
                self.switches_left -= 1;
                self.start_connect(now, next);
            }
            _ => self.end(SnDisconnectReason::GatewayLost),
        }
    }

    fn end(&mut self, reason: SnDisconnectReason) {
        self.requeue_exchange();
        self.connecting = None;
        self.ping = None;
        self.state = SnState::Disconnected;
        self.events.push_back(SnEvent::Disconnected { reason });
    }

    fn start_exchange(&mut self, now: Instant, pending: Pending) {
        self.start_exchange_with(now, pending, None);
    }

    /// Sends the request for `pending` and supervises it; `reuse_id` keeps the
    /// MsgId of an exchange resumed after a reconnection (PUBREL).
    fn start_exchange_with(&mut self, now: Instant, pending: Pending, reuse_id: Option<u16>) {
        let (msg_id, message) = match &pending {
            Pending::Register { name, .. } => {
                let msg_id = self.new_msg_id();
                let message = Message::Register(Register {
                    topic_id: TopicId::NONE,
                    msg_id,
                    topic_name: TopicName::from(name.clone()),
                });
                (msg_id, message)
            }
            Pending::Publish { publish, released } => {
                // The topic is resolved by `pump` before it starts a publish.
                let topic = self.resolve(&publish.topic).unwrap_or(Topic::Short([0, 0]));
                let msg_id = match reuse_id {
                    Some(id) => id,
                    None => self.new_msg_id(),
                };
                let message = if *released {
                    Message::PubRel(PubRel { msg_id })
                } else {
                    Message::Publish(Publish {
                        dup: publish.sent_before,
                        qos: publish.qos,
                        retain: publish.retain,
                        topic,
                        msg_id,
                        data: publish.payload.clone(),
                    })
                };
                (msg_id, message)
            }
            Pending::Subscribe { topic, qos, .. } => {
                let msg_id = self.new_msg_id();
                let message = Message::Subscribe(Subscribe {
                    dup: false,
                    qos: *qos,
                    msg_id,
                    topic: sub_topic(topic),
                });
                (msg_id, message)
            }
            Pending::Unsubscribe { topic, .. } => {
                let msg_id = self.new_msg_id();
                let message = Message::Unsubscribe(Unsubscribe {
                    msg_id,
                    topic: sub_topic(topic),
                });
                (msg_id, message)
            }
            Pending::WillTopic { will, .. } => {
                (0, Message::WillTopicUpd(WillTopicUpd(will.clone())))
            }
            Pending::WillMsg { msg, .. } => (
                0,
                Message::WillMsgUpd(WillMsgUpd {
                    will_msg: msg.clone(),
                }),
            ),
            Pending::Sleep { duration } => (
                0,
                Message::Disconnect(Disconnect {
                    duration: Some(*duration),
                }),
            ),
            Pending::Disconnect => (0, Message::Disconnect(Disconnect { duration: None })),
        };
        self.send_to_gateway(now, message.clone());
        self.exchange = Some(Exchange {
            pending,
            msg_id,
            retry: Retry::new(message, now),
        });
    }

    /// The wire topic for an outbound publish, if it can be sent now.
    fn resolve(&self, topic: &SnTopic) -> Option<Topic> {
        match topic {
            SnTopic::Name(name) => self
                .registry
                .id_of(name)
                .map(|id| Topic::TopicId(TopicId(id))),
            SnTopic::Predefined(id) => Some(Topic::Predefined(TopicId(*id))),
            SnTopic::Short(short) => Some(Topic::Short(*short)),
        }
    }

    /// Sends queued commands while connected and no request is in flight.
    fn pump(&mut self, now: Instant) {
        while self.state == SnState::Active && self.exchange.is_none() {
            let Some(op) = self.queue.pop_front() else {
                return;
            };
            match op {
                Op::Publish(publish) => {
                    let Some(topic) = self.resolve(&publish.topic) else {
                        let SnTopic::Name(name) = &publish.topic else {
                            continue;
                        };
                        let name = name.clone();
                        self.start_exchange(
                            now,
                            Pending::Register {
                                req: None,
                                name,
                                publish: Some(publish),
                            },
                        );
                        continue;
                    };
                    if publish.qos.is_acknowledged() {
                        self.start_exchange(
                            now,
                            Pending::Publish {
                                publish,
                                released: false,
                            },
                        );
                    } else {
                        let message = Message::Publish(Publish {
                            dup: false,
                            qos: publish.qos,
                            retain: publish.retain,
                            topic,
                            msg_id: 0,
                            data: publish.payload,
                        });
                        self.send_publish_to_gateway(now, message, Some(publish.id));
                    }
                }
                Op::Release(publish, msg_id) => {
                    self.start_exchange_with(
                        now,
                        Pending::Publish {
                            publish,
                            released: true,
                        },
                        Some(msg_id),
                    );
                }
                Op::Register { req, name } => {
                    if let Some(id) = self.registry.id_of(&name) {
                        self.events.push_back(SnEvent::Registered {
                            id: Some(req),
                            topic: name,
                            topic_id: TopicId(id),
                        });
                    } else {
                        self.start_exchange(
                            now,
                            Pending::Register {
                                req: Some(req),
                                name,
                                publish: None,
                            },
                        );
                    }
                }
                Op::Subscribe { req, topic, qos } => {
                    self.start_exchange(now, Pending::Subscribe { req, topic, qos });
                }
                Op::Unsubscribe { req, topic } => {
                    self.start_exchange(now, Pending::Unsubscribe { req, topic });
                }
                Op::WillTopic { req, will } => {
                    self.start_exchange(now, Pending::WillTopic { req, will });
                }
                Op::WillMsg { req, msg } => self.start_exchange(now, Pending::WillMsg { req, msg }),
                Op::Sleep { duration } => self.start_exchange(now, Pending::Sleep { duration }),
                Op::Disconnect => self.start_exchange(now, Pending::Disconnect),
            }
        }
    }

    /// spec 6.5, 6.6, 6.9: "rejected: congestion" parks the request for T_WAIT.
    fn back_off(&mut self, now: Instant) {
        let retry_at = now.saturating_add(self.config.t_wait);
        if let Some(ex) = &mut self.exchange {
            ex.retry.backoff_until = Some(retry_at);
            ex.retry.retries = 0;
            self.events.push_back(SnEvent::Congestion { retry_at });
        }
    }

    /// The answer to the request in flight, if `msg_id` and `matches` fit.
    fn answers(&self, msg_id: Option<u16>, matches: impl Fn(&Pending) -> bool) -> bool {
        self.exchange
            .as_ref()
            .is_some_and(|ex| msg_id.is_none_or(|id| id == ex.msg_id) && matches(&ex.pending))
    }

    fn session_message(&mut self, now: Instant, message: Message) -> Result<(), SnProtocolError> {
        match message {
            Message::ConnAck(ack) => {
                self.on_connack(now, ack.return_code);
                Ok(())
            }
            Message::WillTopicReq(_) => {
                if let Some(retry) = &mut self.connecting {
                    // spec 6.2: the will topic, when the gateway asks for it.
                    let data = self.config.will.as_ref().map(|w| WillTopicData {
                        qos: w.qos,
                        retain: w.retain,
                        topic: TopicName::from(w.topic.clone()),
                    });
                    let message = Message::WillTopic(WillTopic(data));
                    *retry = Retry::new(message.clone(), now);
                    self.send_to_gateway(now, message);
                } else {
                    self.stats.ignored += 1;
                }
                Ok(())
            }
            Message::WillMsgReq(_) => {
                if let Some(retry) = &mut self.connecting {
                    let will_msg = self
                        .config
                        .will
                        .as_ref()
                        .map(|w| w.payload.clone())
                        .unwrap_or_default();
                    let message = Message::WillMsg(WillMsg { will_msg });
                    *retry = Retry::new(message.clone(), now);
                    self.send_to_gateway(now, message);
                } else {
                    self.stats.ignored += 1;
                }
                Ok(())
            }
            Message::RegAck(ack) => {
                self.on_regack(now, ack);
                Ok(())
            }
            Message::PubAck(ack) => {
                self.on_puback(now, ack);
                Ok(())
            }
            Message::PubRec(rec) => {
                self.on_pubrec(now, rec.msg_id);
                Ok(())
            }
            Message::PubComp(comp) => {
                if self.answers(Some(comp.msg_id), |p| {
                    matches!(p, Pending::Publish { released: true, .. })
                }) {
                    if let Some(Exchange {
                        pending: Pending::Publish { publish, .. },
                        ..
                    }) = self.exchange.take()
                    {
                        self.events.push_back(SnEvent::Delivered { id: publish.id });
                    }
                    self.pump(now);
                } else {
                    self.stats.ignored += 1;
                }
                Ok(())
            }
            Message::PubRel(rel) => {
                // Inbound QoS 2, last step: forget the id, confirm.
                self.inbound_qos2.retain(|id| *id != rel.msg_id);
                self.send_to_gateway(now, Message::PubComp(PubComp { msg_id: rel.msg_id }));
                Ok(())
            }
            Message::Publish(publish) => {
                self.on_publish(now, publish);
                Ok(())
            }
            Message::Register(reg) => self.on_register(now, reg),
            Message::SubAck(ack) => {
                if !self.answers(Some(ack.msg_id), |p| matches!(p, Pending::Subscribe { .. })) {
                    self.stats.ignored += 1;
                    return Ok(());
                }
                if ack.return_code == ReturnCode::Congestion {
                    self.back_off(now);
                    return Ok(());
                }
                if let Some(Exchange {
                    pending: Pending::Subscribe { req, topic, .. },
                    ..
                }) = self.exchange.take()
                {
                    if ack.return_code.is_accepted() {
                        // spec 6.9: a name without wildcards gets its id here.
                        if let SnTopic::Name(name) = &topic {
                            if !has_wildcards(name) && !ack.topic_id.is_reserved() {
                                self.remember(ack.topic_id.0, name);
                            }
                        }
                        self.events.push_back(SnEvent::Subscribed {
                            id: req,
                            qos: ack.qos,
                            topic_id: ack.topic_id,
                        });
                    } else {
                        self.events.push_back(SnEvent::SubscribeRejected {
                            id: req,
                            code: ack.return_code,
                        });
                    }
                }
                self.pump(now);
                Ok(())
            }
            Message::UnsubAck(ack) => {
                if self.answers(Some(ack.msg_id), |p| {
                    matches!(p, Pending::Unsubscribe { .. })
                }) {
                    if let Some(Exchange {
                        pending: Pending::Unsubscribe { req, .. },
                        ..
                    }) = self.exchange.take()
                    {
                        self.events.push_back(SnEvent::Unsubscribed { id: req });
                    }
                    self.pump(now);
                } else {
                    self.stats.ignored += 1;
                }
                Ok(())
            }
            Message::WillTopicResp(resp) => {
                self.on_will_resp(now, resp.return_code, true);
                Ok(())
            }
            Message::WillMsgResp(resp) => {
                self.on_will_resp(now, resp.return_code, false);
                Ok(())
            }
            Message::PingReq(_) => {
                // spec 6.11: answer the gateway we are connected to.
                if matches!(self.state, SnState::Active | SnState::Awake) {
                    self.send_to_gateway(now, Message::PingResp(PingResp));
                } else {
                    self.stats.ignored += 1;
                }
                Ok(())
            }
            Message::PingResp(_) => {
                if self.ping.take().is_none() {
                    self.stats.ignored += 1;
                } else if self.state == SnState::Awake {
                    // spec 6.14: PINGRESP closes the awake period.
                    self.state = SnState::Asleep;
                    self.events.push_back(SnEvent::AwakeDone { complete: true });
                }
                Ok(())
            }
            Message::Disconnect(_) => {
                self.on_disconnect();
                Ok(())
            }
            other => {
                // Discovery messages and client-only messages are handled
                // before this point.
                Err(SnProtocolError::UnexpectedMessage(other.msg_type()))
            }
        }
    }

    fn remember(&mut self, id: u16, name: &str) {
        if self.registry.insert(id, name) {
            self.stats.topics_evicted += 1;
        }
    }

    fn on_connack(&mut self, now: Instant, code: ReturnCode) {
        let Some(retry) = &mut self.connecting else {
            self.stats.ignored += 1;
            return;
        };
        match code {
            ReturnCode::Accepted => {
                self.connecting = None;
                self.state = SnState::Active;
                self.switches_left = self.gateways.len();
                if let Some(gateway) = self.gateway.clone() {
                    self.events.push_back(SnEvent::Connected { gateway });
                }
                self.pump(now);
            }
            ReturnCode::Congestion => {
                // Send CONNECT again after T_WAIT (the will prompts follow again).
                let retry_at = now.saturating_add(self.config.t_wait);
                let connect = Message::Connect(Connect {
                    will: self.config.will.is_some(),
                    clean_session: self.config.clean_session,
                    duration: self.config.keep_alive,
                    client_id: self.client_id.clone(),
                });
                *retry = Retry::new(connect, now);
                retry.backoff_until = Some(retry_at);
                self.events.push_back(SnEvent::Congestion { retry_at });
            }
            other => {
                self.connecting = None;
                self.end(SnDisconnectReason::Refused(other));
            }
        }
    }

    fn on_regack(&mut self, now: Instant, ack: RegAck) {
        if !self.answers(Some(ack.msg_id), |p| matches!(p, Pending::Register { .. })) {
            self.stats.ignored += 1;
            return;
        }
        if ack.return_code == ReturnCode::Congestion {
            self.back_off(now);
            return;
        }
        let Some(Exchange {
            pending: Pending::Register { req, name, publish },
            ..
        }) = self.exchange.take()
        else {
            return;
        };
        if ack.return_code.is_accepted() && !ack.topic_id.is_reserved() {
            self.remember(ack.topic_id.0, &name);
            self.events.push_back(SnEvent::Registered {
                id: req,
                topic: name,
                topic_id: ack.topic_id,
            });
            if let Some(publish) = publish {
                self.queue.push_front(Op::Publish(publish));
            }
        } else {
            let code = if ack.return_code.is_accepted() {
                ReturnCode::InvalidTopicId
            } else {
                ack.return_code
            };
            if let Some(id) = req {
                self.events.push_back(SnEvent::RegisterFailed { id, code });
            }
            if let Some(publish) = publish {
                self.events.push_back(SnEvent::Dropped { id: publish.id });
            }
        }
        self.pump(now);
    }

    fn on_puback(&mut self, now: Instant, ack: PubAck) {
        let ours = self.answers(Some(ack.msg_id), |p| {
            matches!(
                p,
                Pending::Publish {
                    released: false,
                    ..
                }
            )
        });
        if !ours {
            // spec 6.6: a QoS 0 publish may be refused too; an invalid normal
            // id is forgotten so the next publish registers again.
            if ack.return_code == ReturnCode::InvalidTopicId {
                self.registry.remove_id(ack.topic_id.0);
            } else {
                self.stats.ignored += 1;
            }
            return;
        }
        if ack.return_code == ReturnCode::Congestion {
            self.back_off(now);
            return;
        }
        let Some(Exchange {
            pending: Pending::Publish { mut publish, .. },
            ..
        }) = self.exchange.take()
        else {
            return;
        };
        match ack.return_code {
            ReturnCode::Accepted if publish.qos == PublishQoS::AtLeastOnce => {
                self.events.push_back(SnEvent::Delivered { id: publish.id });
            }
            ReturnCode::InvalidTopicId if !publish.reregistered => {
                if let SnTopic::Name(name) = &publish.topic {
                    // spec 6.6: register the name again, then publish.
                    if let Some(id) = self.registry.id_of(name) {
                        self.registry.remove_id(id);
                    }
                    publish.reregistered = true;
                    self.queue.push_front(Op::Publish(publish));
                } else {
                    // spec 6.7: nothing to register for a pre-defined id.
                    self.events.push_back(SnEvent::Dropped { id: publish.id });
                }
            }
            _ => self.events.push_back(SnEvent::Dropped { id: publish.id }),
        }
        self.pump(now);
    }

    fn on_pubrec(&mut self, now: Instant, msg_id: u16) {
        let Some(ex) = &mut self.exchange else {
            self.stats.ignored += 1;
            return;
        };
        let Pending::Publish { publish, released } = &mut ex.pending else {
            self.stats.ignored += 1;
            return;
        };
        if ex.msg_id != msg_id || publish.qos != PublishQoS::ExactlyOnce {
            self.stats.ignored += 1;
            return;
        }
        // The first PUBREC moves on to PUBREL; a repeated one (our PUBREL was
        // lost) gets PUBREL again.
        *released = true;
        let message = Message::PubRel(PubRel { msg_id });
        ex.retry = Retry::new(message.clone(), now);
        self.send_to_gateway(now, message);
    }

    fn on_will_resp(&mut self, now: Instant, code: ReturnCode, topic: bool) {
        let fits = self.answers(None, |p| {
            if topic {
                matches!(p, Pending::WillTopic { .. })
            } else {
                matches!(p, Pending::WillMsg { .. })
            }
        });
        if !fits {
            self.stats.ignored += 1;
            return;
        }
        if code == ReturnCode::Congestion {
            self.back_off(now);
            return;
        }
        if let Some(ex) = self.exchange.take() {
            if let Pending::WillTopic { req, .. } | Pending::WillMsg { req, .. } = ex.pending {
                self.events
                    .push_back(SnEvent::WillUpdated { id: req, code });
            }
        }
        self.pump(now);
    }

    fn on_disconnect(&mut self) {
        match self.exchange.as_ref().map(|ex| &ex.pending) {
            Some(Pending::Sleep { duration }) => {
                let duration = *duration;
                self.exchange = None;
                self.ping = None;
                self.state = SnState::Asleep;
                self.events.push_back(SnEvent::Asleep { duration });
            }
            Some(Pending::Disconnect) => {
                self.exchange = None;
                self.end(SnDisconnectReason::ClientDisconnect);
            }
            _ => {
                // spec 6.12: the gateway ended the connection on its own.
                self.end(SnDisconnectReason::GatewayDisconnect);
            }
        }
    }

    fn on_register(&mut self, now: Instant, reg: Register) -> Result<(), SnProtocolError> {
        if !matches!(self.state, SnState::Active | SnState::Awake) {
            self.stats.ignored += 1;
            return Ok(());
        }
        let name = reg.topic_name.as_str();
        if reg.topic_id.is_reserved() || has_wildcards(name) {
            let ack = RegAck {
                topic_id: reg.topic_id,
                msg_id: reg.msg_id,
                return_code: ReturnCode::NotSupported,
            };
            self.send_to_gateway(now, Message::RegAck(ack));
            return Err(SnProtocolError::InvalidRegister);
        }
        // spec 6.10: the gateway tells the id it will publish this name with.
        let name = String::from(name);
        self.remember(reg.topic_id.0, &name);
        let ack = RegAck {
            topic_id: reg.topic_id,
            msg_id: reg.msg_id,
            return_code: ReturnCode::Accepted,
        };
        self.send_to_gateway(now, Message::RegAck(ack));
        self.awake_activity(now);
        Ok(())
    }

    /// spec 6.14: while awake, any message but PINGRESP restarts T_retry.
    fn awake_activity(&mut self, now: Instant) {
        if self.state == SnState::Awake {
            if let Some(ping) = &mut self.ping {
                ping.sent_at = now;
            }
        }
    }

    fn on_publish(&mut self, now: Instant, publish: Publish) {
        if !matches!(self.state, SnState::Active | SnState::Awake) {
            self.stats.ignored += 1;
            return;
        }
        self.awake_activity(now);
        let topic = match publish.topic {
            Topic::TopicId(id) => match self.registry.name_of(id.0) {
                Some(name) => SnTopic::Name(String::from(name)),
                None => {
                    // spec 6.10: an unknown id is refused so the gateway can
                    // fix its assignment.
                    self.stats.unknown_topic_ids += 1;
                    let ack = PubAck {
                        topic_id: id,
                        msg_id: publish.msg_id,
                        return_code: ReturnCode::InvalidTopicId,
                    };
                    self.send_to_gateway(now, Message::PubAck(ack));
                    return;
                }
            },
            Topic::Predefined(id) => self
                .config
                .predefined
                .iter()
                .find(|(raw, _)| *raw == id.0)
                .map_or(SnTopic::Predefined(id.0), |(_, name)| {
                    SnTopic::Name(name.clone())
                }),
            Topic::Short(short) => SnTopic::Short(short),
        };
        let duplicate_qos2 =
            publish.qos == PublishQoS::ExactlyOnce && self.inbound_qos2.contains(&publish.msg_id);
        if !duplicate_qos2 {
            let qos2_full = publish.qos == PublishQoS::ExactlyOnce
                && self.inbound_qos2.len() >= self.config.max_inbound_qos2;
            if self.events.len() >= self.config.max_events || qos2_full {
                // Left unacknowledged: the gateway sends it again later.
                self.stats.inbound_refused += 1;
                return;
            }
            self.events.push_back(SnEvent::Message {
                topic,
                payload: publish.data,
                qos: publish.qos,
                retain: publish.retain,
            });
        }
        let raw_topic = publish.topic;
        match publish.qos {
            PublishQoS::AtLeastOnce => {
                let ack = PubAck {
                    topic_id: TopicId(u16::from_be_bytes(raw_topic.to_bytes())),
                    msg_id: publish.msg_id,
                    return_code: ReturnCode::Accepted,
                };
                self.send_to_gateway(now, Message::PubAck(ack));
            }
            PublishQoS::ExactlyOnce => {
                if !duplicate_qos2 {
                    self.inbound_qos2.push(publish.msg_id);
                }
                self.send_to_gateway(
                    now,
                    Message::PubRec(PubRec {
                        msg_id: publish.msg_id,
                    }),
                );
            }
            PublishQoS::AtMostOnce | PublishQoS::MinusOne => {}
        }
    }
}

/// Marks a retransmitted PUBLISH or SUBSCRIBE as a duplicate.
fn set_dup(message: &mut Message) {
    match message {
        Message::Publish(p) => p.dup = true,
        Message::Subscribe(s) => s.dup = true,
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sn_6_13_retransmitted_publish_and_subscribe_carry_dup() {
        let mut p = Message::Publish(Publish {
            dup: false,
            qos: PublishQoS::AtLeastOnce,
            retain: false,
            topic: Topic::Short(*b"ab"),
            msg_id: 1,
            data: Bytes::new(),
        });
        set_dup(&mut p);
        assert!(matches!(p, Message::Publish(Publish { dup: true, .. })));
        let mut s = Message::Subscribe(Subscribe {
            dup: false,
            qos: QoS::AtMostOnce,
            msg_id: 1,
            topic: SubscribeTopic::Short(*b"ab"),
        });
        set_dup(&mut s);
        assert!(matches!(s, Message::Subscribe(Subscribe { dup: true, .. })));
        let mut r = Message::PubRel(PubRel { msg_id: 1 });
        set_dup(&mut r);
        assert_eq!(r, Message::PubRel(PubRel { msg_id: 1 }));
    }

    #[test]
    fn retry_deadline_is_t_retry_after_sending_or_the_back_off_end() {
        let mut r = Retry::new(Message::PingResp(PingResp), Instant::from_secs(5));
        assert_eq!(r.deadline(Duration::from_secs(10)), Instant::from_secs(15));
        r.backoff_until = Some(Instant::from_secs(400));
        assert_eq!(r.deadline(Duration::from_secs(10)), Instant::from_secs(400));
    }

    #[test]
    fn topic_checks() {
        assert!(valid_name("a/b"));
        assert!(!valid_name(""));
        assert!(!valid_name("a/+"));
        assert!(valid_filter("a/+"));
        assert!(valid_filter("#"));
        assert!(!valid_filter("a#"));
        assert!(has_wildcards("a/#"));
        assert!(!has_wildcards("a/b"));
    }

    #[test]
    fn message_ids_skip_zero_when_they_wrap() {
        let mut c = SnClient::<u8>::new(SnClientConfig::new("x")).unwrap();
        c.next_msg_id = 0xFFFE;
        assert_eq!(c.new_msg_id(), 0xFFFF);
        assert_eq!(c.new_msg_id(), 1);
    }

    #[test]
    fn sn_6_3_zero_limits_that_would_stall_the_client_are_refused() {
        let mut cfg = SnClientConfig::<u8>::new("x");
        cfg.max_events = 0;
        assert_eq!(
            SnClient::new(cfg).err(),
            Some(SnUsageError::InvalidConfig("max_events"))
        );
        let mut cfg = SnClientConfig::<u8>::new("x");
        cfg.t_retry = Duration::ZERO;
        assert_eq!(
            SnClient::new(cfg).err(),
            Some(SnUsageError::InvalidConfig("t_retry"))
        );
    }
}
