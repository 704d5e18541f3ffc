//! [`Client`]: the MQTT 3.1.1 client machine.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;

use bytes::{Bytes, BytesMut};
use midge_codec::{
    ConnAck, Connect, ConnectReturnCode, Decoder, Encode, MqttString, Packet, PacketId, PubAck,
    PubComp, PubRec, PubRel, Publish, QoS, QosPid, SubAck, Subscribe, SubscribeFilter, Unsubscribe,
    MAX_PACKET_SIZE,
};
use midge_time::Instant;
use midge_topic::{validate_topic_filter, validate_topic_name};

use crate::config::ClientConfig;
use crate::error::{ProtocolError, UsageError};
use crate::event::{AckToken, DeliveryId, DisconnectReason, Event, RequestId};

/// Where the machine is in the life of one network connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// No connection. Commands still work: QoS 1/2 publishes and requests wait
    /// for the next one.
    Disconnected,
    /// CONNECT is queued or sent; waiting for CONNACK.
    Connecting,
    /// CONNACK accepted the connection.
    Connected,
    /// `disconnect` queued DISCONNECT; it has not been written yet.
    Disconnecting,
}

/// Counters of things the machine tolerated rather than treated as errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// PUBACK, PUBREC, PUBCOMP, SUBACK or UNSUBACK for a packet id with nothing
    /// waiting for it (or waiting for a different acknowledgement). After a
    /// resend these are legitimate duplicates, so they are ignored.
    pub unexpected_acks: u64,
    /// Inbound QoS 2 PUBLISHes recognised as resends and not delivered again.
    pub duplicate_qos2: u64,
    /// `ack` calls with a token from an earlier connection, ignored.
    pub stale_acks: u64,
}

/// What an outbound QoS 1/2 publish is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// QoS 1, PUBLISH sent (or to be sent): waiting for PUBACK.
    Qos1Sent,
    /// QoS 2, PUBLISH sent (or to be sent): waiting for PUBREC.
    Qos2Sent,
    /// QoS 2, PUBREC received, PUBREL sent (or to be sent): waiting for PUBCOMP.
    Qos2Released,
}

/// An outbound QoS 1/2 publish holding a packet id.
#[derive(Debug, Clone)]
struct Flight {
    /// Ordering key: send order of the PUBLISH, or of the PUBREC for a
    /// PUBREL-stage entry [MQTT-4.6.0-1] [MQTT-4.6.0-4].
    seq: u64,
    id: DeliveryId,
    publish: Publish,
    stage: Stage,
    /// Whether the PUBLISH has been written on some connection: a later copy
    /// is a redelivery and carries DUP [MQTT-3.3.1-1].
    sent: bool,
}

/// A QoS 1/2 publish waiting for room in the window (no packet id yet: the
/// `publish` field carries QoS 0 until one is assigned).
#[derive(Debug, Clone)]
struct Queued {
    id: DeliveryId,
    publish: Publish,
    qos: QoS,
}

/// A SUBSCRIBE or UNSUBSCRIBE awaiting its answer.
#[derive(Debug, Clone)]
struct Request {
    seq: u64,
    id: RequestId,
    /// The packet, sent again as it is on a later connection.
    packet: Packet,
    /// Filters in a SUBSCRIBE (SUBACK must answer each); `None` for UNSUBSCRIBE.
    subscribe_filters: Option<usize>,
}

/// One packet to write on the current connection.
#[derive(Debug, Clone)]
enum Outgoing {
    /// A packet fully formed when queued (CONNECT, acks, PINGREQ, DISCONNECT,
    /// SUBSCRIBE, UNSUBSCRIBE).
    Packet(Packet),
    /// The PUBLISH of the flight holding this id, formed at write time so that
    /// DUP reflects whether it went out before.
    Publish(PacketId),
    /// The PUBREL of the flight holding this id.
    PubRel(PacketId),
    /// A QoS 0 PUBLISH; reported delivered when written.
    Qos0(Publish, DeliveryId),
}

/// An inbound QoS 1/2 PUBLISH whose PUBACK/PUBREC has not been queued yet.
/// Acknowledgements leave in arrival order [MQTT-4.6.0-2] [MQTT-4.6.0-3].
#[derive(Debug, Clone, Copy)]
struct PendingAck {
    seq: u64,
    pid: PacketId,
    qos: QoS,
    done: bool,
}

/// The sans-IO MQTT 3.1.1 client. See the crate documentation for the
/// calling contract.
///
/// One `Client` outlives many network connections: its session (QoS 1/2
/// messages in flight in either direction) carries over from one to the
/// next when `clean_session` is false.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    connect_packet: Connect,
    decoder: Decoder,
    state: ConnectionState,
    /// Counts connections; tags [`AckToken`]s.
    connection: u64,
    read_buf: BytesMut,
    outgoing: VecDeque<Outgoing>,
    /// How many entries of `outgoing` are QoS 0 publishes: with `queue`,
    /// held to `max_queued`.
    outgoing_qos0: usize,
    events: VecDeque<Event>,

    flights: BTreeMap<PacketId, Flight>,
    queue: VecDeque<Queued>,
    requests: BTreeMap<PacketId, Request>,
    /// Inbound QoS 2 ids delivered to the application and not yet released
    /// by PUBREL [MQTT-4.3.3-2].
    inbound_qos2: BTreeSet<PacketId>,
    pending_acks: VecDeque<PendingAck>,

    next_pid: u16,
    next_delivery: u64,
    next_request: u64,
    next_seq: u64,

    connack_deadline: Option<Instant>,
    last_sent: Instant,
    ping_deadline: Option<Instant>,
    stats: Stats,
}

impl Client {
    /// A machine for this configuration, in [`ConnectionState::Disconnected`].
    ///
    /// # Errors
    /// [`UsageError::EmptyClientIdNeedsCleanSession`] [MQTT-3.1.3-7],
    /// [`UsageError::InvalidInflightWindow`], or
    /// [`UsageError::InvalidConnect`] when the settings cannot form a valid
    /// CONNECT.
    pub fn new(config: ClientConfig) -> Result<Self, UsageError> {
        if config.client_id.is_empty() && !config.clean_session {
            return Err(UsageError::EmptyClientIdNeedsCleanSession);
        }
        if config.inflight_window == 0 {
            return Err(UsageError::InvalidInflightWindow);
        }
        let client_id = MqttString::new(&config.client_id).map_err(UsageError::InvalidString)?;
        let username = config
            .username
            .as_deref()
            .map(MqttString::new)
            .transpose()
            .map_err(UsageError::InvalidString)?;
        let connect_packet = Connect {
            protocol: config.protocol,
            clean_session: config.clean_session,
            keep_alive: config.keep_alive,
            client_id,
            will: config.will.clone(),
            username,
            password: config.password.clone(),
        };
        // Encoding once proves every later encode of this CONNECT succeeds.
        let mut scratch = BytesMut::with_capacity(connect_packet.encoded_len());
        connect_packet
            .encode(&mut scratch)
            .map_err(UsageError::InvalidConnect)?;
        let mut decoder = Decoder::new().with_max_packet_size(config.max_packet_size);
        decoder.set_protocol(config.protocol);
        Ok(Self {
            config,
            connect_packet,
            decoder,
            state: ConnectionState::Disconnected,
            connection: 0,
            read_buf: BytesMut::new(),
            outgoing: VecDeque::new(),
            outgoing_qos0: 0,
            events: VecDeque::new(),
            flights: BTreeMap::new(),
            queue: VecDeque::new(),
            requests: BTreeMap::new(),
            inbound_qos2: BTreeSet::new(),
            pending_acks: VecDeque::new(),
            next_pid: 1,
            next_delivery: 1,
            next_request: 1,
            next_seq: 0,
            connack_deadline: None,
            last_sent: Instant::ZERO,
            ping_deadline: None,
            stats: Stats::default(),
        })
    }

    // ----- getters -----

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The connection state.
    pub fn state(&self) -> ConnectionState {
        self.state
    }

    /// Outbound QoS 1/2 publishes holding a packet id (at most the window).
    pub fn inflight_len(&self) -> usize {
        self.flights.len()
    }

    /// QoS 1/2 publishes waiting for room in the window or for a connection.
    pub fn queued_len(&self) -> usize {
        self.queue.len()
    }

    /// QoS 0 publishes accepted but not yet written by
    /// [`Client::poll_transmit`]. With [`Client::queued_len`] they are held
    /// to [`ClientConfig::max_queued`].
    pub fn queued_qos0_len(&self) -> usize {
        self.outgoing_qos0
    }

    /// Subscribe/unsubscribe requests awaiting their answer.
    pub fn pending_requests(&self) -> usize {
        self.requests.len()
    }

    /// Inbound QoS 2 packet ids awaiting PUBREL.
    pub fn inbound_qos2_len(&self) -> usize {
        self.inbound_qos2.len()
    }

    /// Tolerated oddities, counted.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    // ----- inputs -----

    /// The caller has just opened a transport: queues CONNECT and waits for
    /// CONNACK. With `clean_session` the previous session, if any, is
    /// forgotten now.
    ///
    /// # Errors
    /// [`UsageError::AlreadyConnected`] unless the state is
    /// [`ConnectionState::Disconnected`].
    pub fn connect(&mut self, now: Instant) -> Result<(), UsageError> {
        if self.state != ConnectionState::Disconnected {
            return Err(UsageError::AlreadyConnected);
        }
        self.connection = self.connection.wrapping_add(1);
        self.read_buf.clear();
        // Empty already: the connection that ended took every QoS 0 publish
        // with it (reported dropped).
        self.outgoing.clear();
        self.outgoing_qos0 = 0;
        self.pending_acks.clear();
        if self.config.clean_session {
            self.inbound_qos2.clear();
        }
        self.outgoing.push_back(Outgoing::Packet(Packet::Connect(
            self.connect_packet.clone(),
        )));
        self.state = ConnectionState::Connecting;
        self.connack_deadline = Some(now + self.config.connack_timeout);
        self.ping_deadline = None;
        self.last_sent = now;
        Ok(())
    }

    /// Bytes read from the transport. Every whole packet is decoded and acted
    /// on; a partial packet waits for more bytes. Bytes arriving while no
    /// connection is open (or after `disconnect`) are ignored.
    ///
    /// # Errors
    /// A [`ProtocolError`] when the server broke the protocol. The machine has
    /// then ended the connection (an [`Event::Disconnected`] is queued); the
    /// caller must close the transport [MQTT-4.8.0-1].
    pub fn handle_read(&mut self, now: Instant, bytes: &[u8]) -> Result<(), ProtocolError> {
        if !matches!(
            self.state,
            ConnectionState::Connecting | ConnectionState::Connected
        ) {
            return Ok(());
        }
        self.read_buf.extend_from_slice(bytes);
        loop {
            let packet = match self.decoder.decode(&mut self.read_buf) {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(()),
                Err(e) => return Err(self.fail(now, ProtocolError::Decode(e))),
            };
            if let Err(e) = self.handle_packet(now, packet) {
                return Err(self.fail(now, e));
            }
            if !matches!(
                self.state,
                ConnectionState::Connecting | ConnectionState::Connected
            ) {
                // A refusing CONNACK ended the connection: what follows it is
                // not looked at.
                return Ok(());
            }
        }
    }

    /// Time has passed. Safe to call at any moment, early or late: sends
    /// PINGREQ once nothing has been written for the keep alive interval
    /// [MQTT-3.1.2-23], ends the connection when PINGRESP or CONNACK is
    /// overdue.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            ConnectionState::Connecting => {
                if self.connack_deadline.is_some_and(|d| now >= d) {
                    self.end_connection(now, DisconnectReason::ConnAckTimeout);
                }
            }
            ConnectionState::Connected => {
                if let Some(deadline) = self.ping_deadline {
                    if now >= deadline {
                        self.end_connection(now, DisconnectReason::KeepAliveTimeout);
                    }
                } else if let Some(interval) = self.config.keep_alive_interval() {
                    if now >= self.last_sent + interval && !self.has_pingreq_queued() {
                        self.outgoing.push_back(Outgoing::Packet(Packet::PingReq));
                        self.ping_deadline = Some(now + self.config.effective_ping_timeout());
                    }
                }
            }
            ConnectionState::Disconnected | ConnectionState::Disconnecting => {}
        }
    }

    /// The transport is gone (closed by either side or failed). The session
    /// is kept for the next connection when `clean_session` is false and
    /// discarded otherwise. Nothing happens if the machine had already ended
    /// the connection itself.
    pub fn handle_transport_closed(&mut self, now: Instant) {
        if self.state != ConnectionState::Disconnected {
            self.end_connection(now, DisconnectReason::TransportClosed);
        }
    }

    // ----- commands -----

    /// Publishes a message and returns the id that [`Event::Delivered`] will
    /// carry.
    ///
    /// QoS 0 needs an accepted connection and is reported delivered once
    /// written. QoS 1/2 go out at once if the inflight window has room and a
    /// connection is up; otherwise they wait in the queue, also across
    /// reconnects.
    ///
    /// Memory is bounded: QoS 0 publishes not yet written and QoS 1/2
    /// publishes waiting behind the window count together against
    /// [`ClientConfig::max_queued`]; at the limit `publish` refuses with
    /// [`UsageError::QueueFull`] (except a QoS 1/2 publish that goes
    /// straight into a window with room). The caller applies back-pressure
    /// by writing what [`Client::poll_transmit`] gives it, or by waiting
    /// for [`Event::Delivered`], before publishing again.
    ///
    /// # Errors
    /// [`UsageError::InvalidTopicName`], [`UsageError::PacketTooLarge`],
    /// [`UsageError::NotConnected`] (QoS 0 only), [`UsageError::QueueFull`].
    pub fn publish(
        &mut self,
        now: Instant,
        topic: &str,
        payload: impl Into<Bytes>,
        qos: QoS,
        retain: bool,
    ) -> Result<DeliveryId, UsageError> {
        validate_topic_name(topic).map_err(UsageError::InvalidTopicName)?;
        let topic = topic.try_into().map_err(UsageError::InvalidString)?;
        // [MQTT-4.3.1-1]: built with DUP clear; QoS 0 keeps it so.
        let mut publish = Publish::new(topic, QosPid::AtMostOnce, payload);
        publish.retain = retain;
        // Two more bytes for the packet id of QoS 1/2.
        let size = publish.encoded_len() + 2;
        if size > MAX_PACKET_SIZE {
            return Err(UsageError::PacketTooLarge { size });
        }
        let _ = now;
        let queue_full =
            self.queue.len().saturating_add(self.outgoing_qos0) >= self.config.max_queued;
        if qos == QoS::AtMostOnce {
            if self.state != ConnectionState::Connected {
                return Err(UsageError::NotConnected);
            }
            if queue_full {
                return Err(UsageError::QueueFull {
                    max: self.config.max_queued,
                });
            }
            let id = self.new_delivery_id();
            self.outgoing.push_back(Outgoing::Qos0(publish, id));
            self.outgoing_qos0 += 1;
            return Ok(id);
        }
        let window_has_room = self.state == ConnectionState::Connected
            && self.queue.is_empty()
            && self.flights.len() < usize::from(self.config.inflight_window);
        if !window_has_room && queue_full {
            return Err(UsageError::QueueFull {
                max: self.config.max_queued,
            });
        }
        let id = self.new_delivery_id();
        self.queue.push_back(Queued { id, publish, qos });
        self.fill_window();
        Ok(id)
    }

    /// Subscribes to topic filters, each with its maximum QoS. Sent at once
    /// when connected, otherwise right after the next CONNACK; a request left
    /// unanswered when a connection ends is sent again on the next one.
    ///
    /// # Errors
    /// [`UsageError::NoFilters`], [`UsageError::InvalidTopicFilter`],
    /// [`UsageError::TooManyRequests`], [`UsageError::NoPacketId`].
    pub fn subscribe(
        &mut self,
        now: Instant,
        filters: &[(&str, QoS)],
    ) -> Result<RequestId, UsageError> {
        if filters.is_empty() {
            return Err(UsageError::NoFilters);
        }
        for (filter, _) in filters {
            validate_topic_filter(filter).map_err(UsageError::InvalidTopicFilter)?;
        }
        let mut list = Vec::with_capacity(filters.len());
        for (filter, qos) in filters {
            let filter = (*filter).try_into().map_err(UsageError::InvalidString)?;
            list.push(SubscribeFilter::new(filter, *qos));
        }
        let count = list.len();
        self.request(now, Some(count), |pid| {
            Packet::Subscribe(Subscribe::new(pid, list))
        })
    }

    /// Removes subscriptions. Sent like [`Client::subscribe`].
    ///
    /// # Errors
    /// As [`Client::subscribe`].
    pub fn unsubscribe(&mut self, now: Instant, filters: &[&str]) -> Result<RequestId, UsageError> {
        if filters.is_empty() {
            return Err(UsageError::NoFilters);
        }
        for filter in filters {
            validate_topic_filter(filter).map_err(UsageError::InvalidTopicFilter)?;
        }
        let list = filters
            .iter()
            .map(|f| (*f).try_into())
            .collect::<Result<Vec<_>, _>>()
            .map_err(UsageError::InvalidString)?;
        self.request(now, None, |pid| {
            Packet::Unsubscribe(Unsubscribe::new(pid, list))
        })
    }

    /// Ends the connection politely: queues DISCONNECT after whatever is
    /// already queued. Once it is written nothing more goes out
    /// [MQTT-3.14.4-2], and [`Event::Disconnected`] with
    /// [`DisconnectReason::ClientDisconnect`] tells the caller to close the
    /// transport [MQTT-3.14.4-1]. Does nothing unless connecting or connected.
    pub fn disconnect(&mut self, now: Instant) {
        let _ = now;
        if matches!(
            self.state,
            ConnectionState::Connecting | ConnectionState::Connected
        ) {
            self.outgoing
                .push_back(Outgoing::Packet(Packet::Disconnect));
            self.state = ConnectionState::Disconnecting;
            self.ping_deadline = None;
            self.connack_deadline = None;
        }
    }

    /// Acknowledges an inbound message delivered with a token (manual
    /// acknowledgement). Acknowledgements still leave in the order the
    /// messages arrived: a later one waits for every earlier one
    /// [MQTT-4.6.0-2] [MQTT-4.6.0-3]. A token from an earlier connection, or
    /// given twice, is ignored (counted in [`Stats::stale_acks`]).
    pub fn ack(&mut self, now: Instant, token: AckToken) {
        let _ = now;
        if token.connection != self.connection || self.state != ConnectionState::Connected {
            self.stats.stale_acks += 1;
            return;
        }
        match self.pending_acks.iter_mut().find(|p| p.seq == token.seq) {
            Some(p) if !p.done => p.done = true,
            _ => {
                self.stats.stale_acks += 1;
                return;
            }
        }
        self.flush_acks();
    }

    // ----- outputs -----

    /// Appends every packet waiting to be written to `buf` and returns how
    /// many were written (0: nothing to send). Writing is what makes a QoS 0
    /// publish [`Event::Delivered`] and a DISCONNECT final.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut BytesMut) -> usize {
        let mut count = 0;
        while let Some(out) = self.outgoing.pop_front() {
            let written = match out {
                Outgoing::Packet(packet) => {
                    let disconnect = packet == Packet::Disconnect;
                    let ok = packet.encode(buf).is_ok();
                    if disconnect {
                        count += usize::from(ok);
                        self.last_sent = now;
                        // [MQTT-3.14.4-2]: nothing after DISCONNECT.
                        self.end_connection(now, DisconnectReason::ClientDisconnect);
                        return count;
                    }
                    ok
                }
                Outgoing::Publish(pid) => match self.flights.get_mut(&pid) {
                    Some(flight) if flight.stage != Stage::Qos2Released => {
                        let mut publish = flight.publish.clone();
                        // [MQTT-3.3.1-1]: a copy of a PUBLISH already sent is a redelivery.
                        publish.dup = flight.sent;
                        flight.sent = true;
                        publish.encode(buf).is_ok()
                    }
                    _ => false,
                },
                Outgoing::PubRel(pid) => match self.flights.get(&pid) {
                    Some(flight) if flight.stage == Stage::Qos2Released => {
                        PubRel::new(pid).encode(buf).is_ok()
                    }
                    _ => false,
                },
                Outgoing::Qos0(publish, id) => {
                    self.outgoing_qos0 = self.outgoing_qos0.saturating_sub(1);
                    let ok = publish.encode(buf).is_ok();
                    self.events.push_back(Event::Delivered { id });
                    ok
                }
            };
            count += usize::from(written);
        }
        if count > 0 {
            self.last_sent = now;
        }
        count
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Client::handle_timeout`] is next due, or `None` when no timer
    /// runs (no connection, or keep alive off and connected).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            ConnectionState::Connecting => self.connack_deadline,
            ConnectionState::Connected => match self.ping_deadline {
                Some(deadline) => Some(deadline),
                None => self
                    .config
                    .keep_alive_interval()
                    .map(|interval| self.last_sent + interval),
            },
            ConnectionState::Disconnected | ConnectionState::Disconnecting => None,
        }
    }

    // ----- internals -----

    fn new_delivery_id(&mut self) -> DeliveryId {
        let id = DeliveryId(self.next_delivery);
        self.next_delivery += 1;
        id
    }

    fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn has_pingreq_queued(&self) -> bool {
        self.outgoing
            .iter()
            .any(|o| matches!(o, Outgoing::Packet(Packet::PingReq)))
    }

    /// A packet id not held by any flight or request [MQTT-2.3.1-2].
    fn allocate_pid(&mut self) -> Option<PacketId> {
        for _ in 0..=u16::MAX {
            let candidate = PacketId::new(self.next_pid);
            self.next_pid = self.next_pid.checked_add(1).unwrap_or(1);
            if let Some(pid) = candidate {
                if !self.flights.contains_key(&pid) && !self.requests.contains_key(&pid) {
                    return Some(pid);
                }
            }
        }
        None
    }

    /// Registers a SUBSCRIBE (`subscribe_filters = Some(n)`) or UNSUBSCRIBE
    /// (`None`) built by `build` around a fresh id.
    fn request(
        &mut self,
        now: Instant,
        subscribe_filters: Option<usize>,
        build: impl FnOnce(PacketId) -> Packet,
    ) -> Result<RequestId, UsageError> {
        let _ = now;
        if self.requests.len() >= self.config.max_pending_requests {
            return Err(UsageError::TooManyRequests {
                max: self.config.max_pending_requests,
            });
        }
        let pid = self.allocate_pid().ok_or(UsageError::NoPacketId)?;
        let packet = build(pid);
        let size = packet.encoded_len();
        if size > MAX_PACKET_SIZE {
            return Err(UsageError::PacketTooLarge { size });
        }
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let seq = self.next_seq();
        if self.state == ConnectionState::Connected {
            self.outgoing.push_back(Outgoing::Packet(packet.clone()));
        }
        self.requests.insert(
            pid,
            Request {
                seq,
                id,
                packet,
                subscribe_filters,
            },
        );
        Ok(id)
    }

    /// Moves queued publishes into the window while it has room and a
    /// connection is up; each gets a fresh packet id and DUP clear
    /// [MQTT-4.3.2-1] [MQTT-4.3.3-1].
    fn fill_window(&mut self) {
        if self.state != ConnectionState::Connected {
            return;
        }
        while self.flights.len() < usize::from(self.config.inflight_window) {
            let Some(pid) = (if self.queue.is_empty() {
                None
            } else {
                self.allocate_pid()
            }) else {
                return;
            };
            let Some(q) = self.queue.pop_front() else {
                return;
            };
            let (qos_pid, stage) = if q.qos == QoS::ExactlyOnce {
                (QosPid::ExactlyOnce(pid), Stage::Qos2Sent)
            } else {
                (QosPid::AtLeastOnce(pid), Stage::Qos1Sent)
            };
            let mut publish = q.publish;
            publish.qos_pid = qos_pid;
            let seq = self.next_seq();
            self.flights.insert(
                pid,
                Flight {
                    seq,
                    id: q.id,
                    publish,
                    stage,
                    sent: false,
                },
            );
            self.outgoing.push_back(Outgoing::Publish(pid));
        }
    }

    /// Queues the acknowledgements at the front of the arrival-ordered list
    /// that are ready; stops at the first one still waiting for the
    /// application [MQTT-4.6.0-2] [MQTT-4.6.0-3].
    fn flush_acks(&mut self) {
        while let Some(front) = self.pending_acks.front() {
            if !front.done {
                return;
            }
            let pid = front.pid;
            let packet = if front.qos == QoS::ExactlyOnce {
                Packet::PubRec(PubRec::new(pid))
            } else {
                Packet::PubAck(PubAck::new(pid))
            };
            self.pending_acks.pop_front();
            self.outgoing.push_back(Outgoing::Packet(packet));
        }
    }

    /// Ends the connection for a protocol error and returns the error.
    fn fail(&mut self, now: Instant, error: ProtocolError) -> ProtocolError {
        self.end_connection(now, DisconnectReason::Protocol(error.clone()));
        error
    }

    /// The connection is over, for any reason: nothing more is written on it,
    /// the caller learns why, and the session is kept or discarded as
    /// `clean_session` says.
    fn end_connection(&mut self, now: Instant, reason: DisconnectReason) {
        let _ = now;
        self.state = ConnectionState::Disconnected;
        self.events.push_back(Event::Disconnected { reason });
        // QoS 0 publishes not written yet never will be: say so.
        self.outgoing_qos0 = 0;
        for out in core::mem::take(&mut self.outgoing) {
            if let Outgoing::Qos0(_, id) = out {
                self.events.push_back(Event::Dropped { id });
            }
        }
        self.read_buf.clear();
        self.pending_acks.clear();
        self.connack_deadline = None;
        self.ping_deadline = None;
        if self.config.clean_session {
            self.discard_session();
        }
    }

    /// Clean session: the server forgets everything, so does the client.
    /// Publishes never written go back to the head of the queue for the next
    /// connection; ones written are reported [`Event::Dropped`] (or
    /// [`Event::Delivered`] if PUBREC already came back).
    fn discard_session(&mut self) {
        self.inbound_qos2.clear();
        let mut flights: Vec<Flight> = core::mem::take(&mut self.flights).into_values().collect();
        flights.sort_by_key(|f| f.seq);
        let mut unsent = Vec::new();
        for flight in flights {
            if !flight.sent {
                unsent.push(flight);
            } else if flight.stage == Stage::Qos2Released {
                self.events.push_back(Event::Delivered { id: flight.id });
            } else {
                self.events.push_back(Event::Dropped { id: flight.id });
            }
        }
        for flight in unsent.into_iter().rev() {
            let qos = flight.publish.qos();
            let mut publish = flight.publish;
            publish.qos_pid = QosPid::AtMostOnce;
            publish.dup = false;
            self.queue.push_front(Queued {
                id: flight.id,
                publish,
                qos,
            });
        }
    }

    fn handle_packet(&mut self, now: Instant, packet: Packet) -> Result<(), ProtocolError> {
        if self.state == ConnectionState::Connecting {
            return match packet {
                Packet::ConnAck(connack) => {
                    if self.config.clean_session && connack.session_present {
                        // [MQTT-3.2.2-1]: a clean session has nothing stored.
                        return Err(ProtocolError::SessionPresentOnCleanSession);
                    }
                    self.handle_connack(now, connack);
                    Ok(())
                }
                // [MQTT-3.2.0-1]
                other => Err(ProtocolError::ConnAckExpected(other.packet_type())),
            };
        }
        match packet {
            Packet::ConnAck(_) => Err(ProtocolError::DuplicateConnAck),
            Packet::Publish(publish) => {
                self.handle_publish(publish);
                Ok(())
            }
            Packet::PubAck(ack) => {
                self.finish_flight(ack.packet_id, Stage::Qos1Sent);
                Ok(())
            }
            Packet::PubRec(rec) => {
                self.handle_pubrec(rec.packet_id);
                Ok(())
            }
            Packet::PubComp(comp) => {
                self.finish_flight(comp.packet_id, Stage::Qos2Released);
                Ok(())
            }
            Packet::PubRel(rel) => {
                // [MQTT-4.3.3-2]: release the id, answer PUBCOMP (also for an
                // id we no longer hold: the server may be resending).
                self.inbound_qos2.remove(&rel.packet_id);
                self.outgoing
                    .push_back(Outgoing::Packet(Packet::PubComp(PubComp::new(
                        rel.packet_id,
                    ))));
                Ok(())
            }
            Packet::SubAck(suback) => self.handle_suback(suback),
            Packet::UnsubAck(unsuback) => {
                match self.requests.get(&unsuback.packet_id) {
                    Some(Request {
                        subscribe_filters: None,
                        id,
                        ..
                    }) => {
                        let id = *id;
                        self.requests.remove(&unsuback.packet_id);
                        self.events.push_back(Event::Unsubscribed { id });
                    }
                    _ => self.stats.unexpected_acks += 1,
                }
                Ok(())
            }
            Packet::PingResp => {
                self.ping_deadline = None;
                Ok(())
            }
            other @ (Packet::Connect(_)
            | Packet::Subscribe(_)
            | Packet::Unsubscribe(_)
            | Packet::PingReq
            | Packet::Disconnect) => Err(ProtocolError::UnexpectedPacket(other.packet_type())),
        }
    }

    fn handle_connack(&mut self, now: Instant, connack: ConnAck) {
        if connack.code != ConnectReturnCode::Accepted {
            self.events
                .push_back(Event::ConnectionRefused { code: connack.code });
            self.end_connection(now, DisconnectReason::Refused(connack.code));
            return;
        }
        self.state = ConnectionState::Connected;
        self.connack_deadline = None;
        self.events.push_back(Event::Connected {
            session_present: connack.session_present,
        });
        if !connack.session_present {
            // The server holds no session: its half of any inbound QoS 2
            // exchange is gone, and a new message may reuse one of those ids.
            self.inbound_qos2.clear();
        }
        // [MQTT-4.4.0-1] [MQTT-4.6.0-1]: resend what is unacknowledged, in
        // the original order, with the same ids, before anything new.
        let mut order: Vec<(u64, PacketId, Stage)> = self
            .flights
            .iter()
            .map(|(pid, f)| (f.seq, *pid, f.stage))
            .collect();
        order.sort_unstable_by_key(|(seq, _, _)| *seq);
        for (_, pid, stage) in order {
            self.outgoing.push_back(if stage == Stage::Qos2Released {
                Outgoing::PubRel(pid)
            } else {
                Outgoing::Publish(pid)
            });
        }
        let mut requests: Vec<(u64, PacketId)> =
            self.requests.iter().map(|(pid, r)| (r.seq, *pid)).collect();
        requests.sort_unstable();
        for (_, pid) in requests {
            if let Some(r) = self.requests.get(&pid) {
                self.outgoing.push_back(Outgoing::Packet(r.packet.clone()));
            }
        }
        self.fill_window();
    }

    fn handle_publish(&mut self, publish: Publish) {
        let manual = self.config.manual_acks;
        match publish.qos_pid {
            QosPid::AtMostOnce => self.events.push_back(Event::Message { publish, ack: None }),
            QosPid::AtLeastOnce(pid) => {
                // [MQTT-4.3.2-2]: every QoS 1 PUBLISH is delivered and is
                // answered with a PUBACK carrying its id. One whose id still
                // waits for its PUBACK here can only be the server's resend
                // (it may not reuse an id we have not acknowledged): it is
                // delivered again with the same token, and adds no second
                // entry, which keeps the list bounded by the id space.
                let existing = self
                    .pending_acks
                    .iter()
                    .find(|p| p.pid == pid && p.qos == QoS::AtLeastOnce)
                    .map(|p| {
                        (!p.done).then_some(AckToken {
                            connection: self.connection,
                            seq: p.seq,
                        })
                    });
                let ack = match existing {
                    Some(token) => token,
                    None => self.push_pending_ack(pid, QoS::AtLeastOnce, !manual),
                };
                self.events.push_back(Event::Message { publish, ack });
                self.flush_acks();
            }
            QosPid::ExactlyOnce(pid) => {
                if self.inbound_qos2.contains(&pid) {
                    // [MQTT-4.3.3-2]: a resend before PUBREL; answer again,
                    // deliver nothing. If the first copy's PUBREC is still
                    // waiting for the application, that one will do.
                    self.stats.duplicate_qos2 += 1;
                    let waiting = self
                        .pending_acks
                        .iter()
                        .any(|p| p.pid == pid && p.qos == QoS::ExactlyOnce);
                    if !waiting {
                        self.push_pending_ack(pid, QoS::ExactlyOnce, true);
                    }
                } else {
                    self.inbound_qos2.insert(pid);
                    let ack = self.push_pending_ack(pid, QoS::ExactlyOnce, !manual);
                    self.events.push_back(Event::Message { publish, ack });
                }
                self.flush_acks();
            }
        }
    }

    fn push_pending_ack(&mut self, pid: PacketId, qos: QoS, done: bool) -> Option<AckToken> {
        let seq = self.next_seq();
        self.pending_acks.push_back(PendingAck {
            seq,
            pid,
            qos,
            done,
        });
        (!done).then_some(AckToken {
            connection: self.connection,
            seq,
        })
    }

    /// PUBACK or PUBCOMP: the flight waiting for exactly that ends, its id is
    /// free again [MQTT-2.3.1-3], and the window takes the next queued one.
    fn finish_flight(&mut self, pid: PacketId, stage: Stage) {
        match self.flights.get(&pid) {
            Some(flight) if flight.stage == stage => {
                let id = flight.id;
                self.flights.remove(&pid);
                self.events.push_back(Event::Delivered { id });
                self.fill_window();
            }
            _ => self.stats.unexpected_acks += 1,
        }
    }

    /// PUBREC: the server owns the message now; never resend the PUBLISH,
    /// send PUBREL, in PUBREC arrival order [MQTT-4.3.3-1] [MQTT-4.6.0-4].
    fn handle_pubrec(&mut self, pid: PacketId) {
        let seq = self.next_seq();
        match self.flights.get_mut(&pid) {
            Some(flight) if flight.stage == Stage::Qos2Sent => {
                flight.stage = Stage::Qos2Released;
                flight.sent = true;
                flight.seq = seq;
                self.outgoing.push_back(Outgoing::PubRel(pid));
            }
            Some(flight) if flight.stage == Stage::Qos2Released => {
                // A repeated PUBREC: the server has not seen our PUBREL.
                self.outgoing.push_back(Outgoing::PubRel(pid));
            }
            _ => self.stats.unexpected_acks += 1,
        }
    }

    fn handle_suback(&mut self, suback: SubAck) -> Result<(), ProtocolError> {
        match self.requests.get(&suback.packet_id) {
            Some(Request {
                subscribe_filters: Some(expected),
                id,
                ..
            }) => {
                if *expected != suback.return_codes.len() {
                    return Err(ProtocolError::SubAckCountMismatch {
                        expected: *expected,
                        got: suback.return_codes.len(),
                    });
                }
                let id = *id;
                self.requests.remove(&suback.packet_id);
                self.events.push_back(Event::Subscribed {
                    id,
                    results: suback.return_codes,
                });
            }
            _ => self.stats.unexpected_acks += 1,
        }
        Ok(())
    }
}
