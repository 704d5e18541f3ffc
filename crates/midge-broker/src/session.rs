//! [`ServerSession`]: the broker's machine for one network connection.

use alloc::collections::{BTreeSet, VecDeque};
use alloc::format;
use alloc::vec::Vec;

use bytes::BytesMut;
use midge_codec::{
    ConnAck, Connect, ConnectReturnCode, DecodeError, Decoder, Encode, Filter, MqttString, Packet,
    PacketId, PingResp, Protocol, PubAck, PubComp, PubRec, PubRel, Publish, QoS, QosPid, SubAck,
    Subscribe, SubscribeFilter, SubscribeReturnCode, UnsubAck, Unsubscribe, MAX_REMAINING_LENGTH,
};
use midge_time::{Duration, Instant};

use crate::config::{percent_of, OverflowPolicy, ServerConfig};
use crate::error::{ProtocolError, UsageError};
use crate::event::{
    AckToken, CloseReason, DeliverOutcome, DropReason, Event, InflightMessage, ResumeState, Stats,
};

/// Where the connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Transport open, no CONNECT yet; closes at `deadline`.
    AwaitingConnect { deadline: Instant },
    /// CONNECT handed up; waiting for `accept` or `refuse`.
    AwaitingDecision,
    /// CONNACK 0x00 sent.
    Connected,
    /// Nothing more is processed or produced.
    Closed,
}

/// An outbound QoS 1/2 message awaiting the client.
#[derive(Debug, Clone)]
struct Outbound {
    pid: PacketId,
    stage: Stage,
}

#[derive(Debug, Clone)]
enum Stage {
    /// QoS 1, sent, awaiting PUBACK.
    Qos1Sent(Publish),
    /// QoS 2, sent, awaiting PUBREC.
    Qos2Sent(Publish),
    /// QoS 2, PUBREL sent, awaiting PUBCOMP.
    Released,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AckKind {
    PubAck,
    PubRec,
}

/// An acknowledgement of an inbound PUBLISH, waiting for its turn (and, with
/// `ack_after_route`, for the router's `ack`).
#[derive(Debug, Clone, Copy)]
struct PendingAck {
    seq: u64,
    pid: PacketId,
    kind: AckKind,
    ready: bool,
}

/// A SUBSCRIBE handed up and awaiting `suback`.
#[derive(Debug, Clone)]
struct PendingSubscribe {
    pid: PacketId,
    /// One slot per filter of the SUBSCRIBE: `Some` when the session already
    /// decided (over the limit), `None` when the router's answer goes there.
    codes: Vec<Option<SubscribeReturnCode>>,
    /// The filters handed up, and whether each holds a reservation against
    /// the subscription limit.
    forwarded: Vec<(Filter, bool)>,
}

/// The broker's protocol machine for one client connection.
///
/// See the [crate documentation](crate) for the method taxonomy and the order
/// in which the caller drains the outputs.
#[derive(Debug)]
pub struct ServerSession {
    config: ServerConfig,
    state: State,
    decoder: Decoder,
    rx: BytesMut,
    out: BytesMut,
    events: VecDeque<Event>,
    id_seed: u64,
    client_id: Option<MqttString>,
    clean_session: bool,
    has_will: bool,
    keep_alive: u16,
    last_received: Instant,
    next_pid: u16,
    inflight: VecDeque<Outbound>,
    /// QoS 1/2 messages waiting for the window, CONNACK or the transport.
    queue: VecDeque<Publish>,
    /// QoS 0 messages waiting for CONNACK or the transport.
    queue0: VecDeque<Publish>,
    queued_bytes: usize,
    inbound_qos2: BTreeSet<PacketId>,
    pending_acks: VecDeque<PendingAck>,
    next_seq: u64,
    subscriptions: BTreeSet<Filter>,
    pending_subscribes: Vec<PendingSubscribe>,
    reserved_subscriptions: usize,
    /// Whether the queue went above its high-water mark and has not yet
    /// drained to its low-water mark.
    congested: bool,
    stats: Stats,
}

impl ServerSession {
    /// A session for a transport that opened at `now`. The connect timeout is
    /// armed; `id_seed` makes a generated client id unique (pass a counter or
    /// a random value: the session never reads OS randomness).
    pub fn new(config: ServerConfig, now: Instant, id_seed: u64) -> Self {
        let mut config = config;
        config.max_inflight = config.max_inflight.clamp(1, usize::from(u16::MAX));
        config.max_inbound_unacked = config.max_inbound_unacked.max(1);
        config.max_unsent_bytes = config.max_unsent_bytes.max(1);
        let decoder = Decoder::new().with_max_packet_size(config.max_packet_size);
        let deadline = now.saturating_add(config.connect_timeout);
        Self {
            config,
            state: State::AwaitingConnect { deadline },
            decoder,
            rx: BytesMut::new(),
            out: BytesMut::new(),
            events: VecDeque::new(),
            id_seed,
            client_id: None,
            clean_session: true,
            has_will: false,
            keep_alive: 0,
            last_received: now,
            next_pid: 0,
            inflight: VecDeque::new(),
            queue: VecDeque::new(),
            queue0: VecDeque::new(),
            queued_bytes: 0,
            inbound_qos2: BTreeSet::new(),
            pending_acks: VecDeque::new(),
            next_seq: 0,
            subscriptions: BTreeSet::new(),
            pending_subscribes: Vec::new(),
            reserved_subscriptions: 0,
            congested: false,
            stats: Stats::default(),
        }
    }

    // ----- inputs -------------------------------------------------------

    /// Bytes read from the transport.
    ///
    /// Decodes and applies every whole packet in them. Input after a CONNECT
    /// is buffered, unprocessed, until the router's decision [MQTT-3.1.4-5];
    /// input after the session closed is ignored.
    ///
    /// # Errors
    /// A [`ProtocolError`] when the client broke the protocol or a limit; the
    /// session is then closed and [`Event::Closed`] is queued.
    pub fn handle_read(&mut self, now: Instant, bytes: &[u8]) -> Result<(), ProtocolError> {
        if self.state == State::Closed {
            return Ok(());
        }
        self.stats.bytes_in = self.stats.bytes_in.saturating_add(bytes.len() as u64);
        self.rx.extend_from_slice(bytes);
        self.process_input(now)
    }

    /// Timers: the connect timeout and keep alive [MQTT-3.1.2-24]. Safe to
    /// call at any time; does nothing before the deadline of
    /// [`poll_timeout`](Self::poll_timeout).
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::AwaitingConnect { deadline } if now >= deadline => {
                self.close_with(CloseReason::ConnectTimeout);
            }
            State::Connected if self.keep_alive_deadline().is_some_and(|d| now >= d) => {
                self.close_with(CloseReason::KeepAliveTimeout);
            }
            _ => {}
        }
    }

    /// The transport closed (or failed). Without a prior DISCONNECT the will,
    /// if any, is to be published [MQTT-3.1.2-8].
    pub fn handle_transport_closed(&mut self, _now: Instant) {
        self.close_with(CloseReason::TransportClosed);
    }

    // ----- router decisions ---------------------------------------------

    /// Accepts the pending CONNECT: sends CONNACK 0x00 with `session_present`
    /// [MQTT-3.2.2-2] [MQTT-3.2.2-3] (always 0 for an MQTT 3.1 client, whose
    /// CONNACK has no such flag), then resends `resume`'s inflight
    /// messages with DUP 1 and their ids, in order [MQTT-4.4.0-1], then its
    /// queued messages within the window, then processes input that arrived
    /// meanwhile (a protocol error there closes the session with
    /// [`Event::Closed`]).
    ///
    /// # Errors
    /// [`UsageError`] when no CONNECT is pending, for session present or a
    /// non-empty `resume` with a clean session [MQTT-3.2.2-1], or for a
    /// `resume` that uses one outbound packet id twice.
    pub fn accept(
        &mut self,
        now: Instant,
        session_present: bool,
        resume: ResumeState,
    ) -> Result<(), UsageError> {
        self.expect_decision()?;
        if self.clean_session && (session_present || !resume.is_empty()) {
            return Err(UsageError::CleanSessionWithState);
        }
        let mut seen = BTreeSet::new();
        for m in &resume.inflight {
            let pid = match m {
                InflightMessage::Publish(p) => p.packet_id(),
                InflightMessage::PubRel(pid) => Some(*pid),
            };
            if let Some(pid) = pid {
                if !seen.insert(pid) {
                    return Err(UsageError::DuplicateResumeId(pid));
                }
            }
        }

        self.state = State::Connected;
        self.last_received = now;
        // MQTT 3.1 has no session-present flag: its CONNACK flags byte is all
        // reserved, and a strict 3.1 client rejects a set bit.
        let session_present = session_present && self.decoder.protocol() != Protocol::V3_1;
        // [MQTT-3.2.0-1] CONNACK is the first thing the client hears from us.
        self.send(&ConnAck::new(ConnectReturnCode::Accepted, session_present));

        for m in resume.inflight {
            match m {
                InflightMessage::Publish(mut p) => {
                    let stage = match p.qos_pid {
                        QosPid::AtMostOnce => continue,
                        QosPid::AtLeastOnce(pid) => (pid, Stage::Qos1Sent(p.clone())),
                        QosPid::ExactlyOnce(pid) => (pid, Stage::Qos2Sent(p.clone())),
                    };
                    // [MQTT-3.3.1-1] a redelivery carries DUP.
                    p.dup = true;
                    self.send(&p);
                    self.inflight.push_back(Outbound {
                        pid: stage.0,
                        stage: stage.1,
                    });
                }
                InflightMessage::PubRel(pid) => {
                    self.send(&PubRel::new(pid));
                    self.inflight.push_back(Outbound {
                        pid,
                        stage: Stage::Released,
                    });
                }
            }
        }
        self.inbound_qos2 = resume.inbound_qos2.into_iter().collect();
        self.subscriptions = resume.subscriptions.into_iter().collect();

        // Messages from the previous connection are older than those
        // delivered while the CONNECT awaited this decision.
        let early = core::mem::take(&mut self.queue);
        let early0 = core::mem::take(&mut self.queue0);
        self.queued_bytes = 0;
        for p in resume.queued.into_iter().chain(early).chain(early0) {
            let _ = self.deliver(now, p);
        }
        let _ = self.process_input(now);
        Ok(())
    }

    /// Refuses the pending CONNECT with `code` (session present 0
    /// [MQTT-3.2.2-4]) and closes [MQTT-3.2.2-5].
    ///
    /// # Errors
    /// [`UsageError`] when no CONNECT is pending or `code` is `Accepted`.
    pub fn refuse(&mut self, _now: Instant, code: ConnectReturnCode) -> Result<(), UsageError> {
        self.expect_decision()?;
        if code == ConnectReturnCode::Accepted {
            return Err(UsageError::RefuseWithAccepted(code));
        }
        self.refuse_now(code);
        Ok(())
    }

    /// The router's answer to [`Event::Subscribe`]: one code per filter it
    /// was given, in order. The session sends the SUBACK with the request's
    /// packet id [MQTT-3.8.4-2] and one code per filter of the original
    /// SUBSCRIBE, in order [MQTT-3.8.4-5] [MQTT-3.9.3-1].
    ///
    /// # Errors
    /// [`UsageError`] for an unknown packet id, a wrong number of codes, or a
    /// closed session.
    pub fn suback(
        &mut self,
        _now: Instant,
        packet_id: PacketId,
        results: Vec<SubscribeReturnCode>,
    ) -> Result<(), UsageError> {
        if self.state == State::Closed {
            return Err(UsageError::Closed);
        }
        let index = self
            .pending_subscribes
            .iter()
            .position(|p| p.pid == packet_id)
            .ok_or(UsageError::UnknownSubscribe(packet_id))?;
        let expected = self
            .pending_subscribes
            .get(index)
            .map_or(0, |p| p.forwarded.len());
        if results.len() != expected {
            return Err(UsageError::WrongNumberOfCodes {
                expected,
                got: results.len(),
            });
        }
        let pending = self.pending_subscribes.swap_remove(index);
        for ((filter, reserved), code) in pending.forwarded.into_iter().zip(&results) {
            if reserved {
                self.reserved_subscriptions = self.reserved_subscriptions.saturating_sub(1);
            }
            if matches!(code, SubscribeReturnCode::Success(_)) {
                self.subscriptions.insert(filter);
            }
        }
        let mut results = results.into_iter();
        let codes = pending
            .codes
            .into_iter()
            .map(|slot| {
                slot.or_else(|| results.next())
                    .unwrap_or(SubscribeReturnCode::Failure)
            })
            .collect();
        self.send(&SubAck::new(packet_id, codes));
        Ok(())
    }

    /// Releases the PUBACK or PUBREC of an inbound message handed up with
    /// `token` (see [`ServerConfig::ack_after_route`]). Acknowledgements
    /// leave in the order their PUBLISH packets arrived.
    ///
    /// # Errors
    /// [`UsageError::UnknownAckToken`] for a token not pending here, and
    /// [`UsageError::Closed`] after close.
    pub fn ack(&mut self, _now: Instant, token: AckToken) -> Result<(), UsageError> {
        if self.state == State::Closed {
            return Err(UsageError::Closed);
        }
        let entry = self
            .pending_acks
            .iter_mut()
            .find(|a| a.seq == token.seq && !a.ready)
            .ok_or(UsageError::UnknownAckToken)?;
        entry.ready = true;
        self.flush_acks();
        Ok(())
    }

    /// Hands the client an application message. The router has already
    /// chosen topic, payload, retain and the QoS (downgraded to the granted
    /// one); the session assigns a packet id not in use [MQTT-2.3.1-4] and
    /// clears DUP [MQTT-3.3.1-3].
    ///
    /// Once connected, a message is encoded at once while fewer than
    /// [`ServerConfig::max_unsent_bytes`] wait for `poll_transmit` and, for
    /// QoS 1/2, while [`ServerConfig::max_inflight`] has room; otherwise it
    /// queues behind the earlier messages of its QoS, so each QoS keeps the
    /// router's delivery order [MQTT-4.6.0-6] (QoS 0 is not held back by the
    /// inflight window). Before CONNACK everything queues. At the queue's
    /// limits, [`ServerConfig::overflow_policy`] applies; QoS 0 is always
    /// dropped there.
    ///
    /// After the call, [`is_above_high_water`](Self::is_above_high_water)
    /// tells whether the queue is congested; once it drains to its low-water
    /// mark the session emits [`Event::Drained`].
    pub fn deliver(&mut self, now: Instant, publish: Publish) -> DeliverOutcome {
        let outcome = self.deliver_one(now, publish);
        if self.is_above_high_water() {
            self.congested = true;
        }
        outcome
    }

    fn deliver_one(&mut self, _now: Instant, publish: Publish) -> DeliverOutcome {
        if self.state == State::Closed {
            self.stats.dropped_closed += 1;
            return DeliverOutcome::Dropped(DropReason::Closed);
        }
        let mut publish = publish;
        publish.dup = false;
        let too_large = publish
            .topic
            .len()
            .saturating_add(publish.payload.len())
            .saturating_add(4)
            > MAX_REMAINING_LENGTH;
        if too_large {
            self.stats.dropped_invalid += 1;
            return DeliverOutcome::Dropped(DropReason::Invalid);
        }
        if self.state == State::Connected && self.out.len() < self.config.max_unsent_bytes {
            if publish.qos() == QoS::AtMostOnce {
                if self.queue0.is_empty() {
                    publish.qos_pid = QosPid::AtMostOnce;
                    self.send(&publish);
                    return DeliverOutcome::Sent;
                }
            } else if self.queue.is_empty() && self.inflight.len() < self.config.max_inflight {
                if let Some(pid) = self.free_packet_id() {
                    self.send_tracked(pid, publish);
                    return DeliverOutcome::Sent;
                }
            }
        }
        self.enqueue(publish)
    }

    /// Closes the session from the server's side, for example when the same
    /// client id connects again [MQTT-3.1.4-2]. The will is reported as due
    /// (the router decides).
    pub fn close(&mut self, _now: Instant) {
        self.close_with(CloseReason::ServerClosed);
    }

    // ----- outputs ------------------------------------------------------

    /// Appends the bytes to send to `buf` and returns how many; 0 when there
    /// is nothing. Call after every input until it returns 0, or until the
    /// transport cannot take more: each call first moves queued messages out
    /// (up to about [`ServerConfig::max_unsent_bytes`]), so a caller that
    /// stops calling while its socket is full keeps the rest queued and
    /// bounded.
    pub fn poll_transmit(&mut self, _now: Instant, buf: &mut BytesMut) -> usize {
        self.release();
        let n = self.out.len();
        if n > 0 {
            buf.extend_from_slice(&self.out);
            self.out.clear();
            self.stats.bytes_out = self.stats.bytes_out.saturating_add(n as u64);
        }
        n
    }

    /// The next event for the router or adapter; call until `None`.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due; `None` when
    /// no timer runs (closed, awaiting the router, or keep alive 0).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::AwaitingConnect { deadline } => Some(deadline),
            State::Connected => self.keep_alive_deadline(),
            State::AwaitingDecision | State::Closed => None,
        }
    }

    /// Gives back the persistent part of the session for the next
    /// connection: outbound inflight messages in sending order, queued QoS
    /// 1/2 messages, inbound QoS 2 ids awaiting PUBREL, and subscriptions.
    pub fn into_resume_state(self) -> ResumeState {
        let inflight = self
            .inflight
            .into_iter()
            .map(|o| match o.stage {
                Stage::Qos1Sent(p) | Stage::Qos2Sent(p) => InflightMessage::Publish(p),
                Stage::Released => InflightMessage::PubRel(o.pid),
            })
            .collect();
        ResumeState {
            inflight,
            queued: self
                .queue
                .into_iter()
                .filter(|p| p.qos() != QoS::AtMostOnce)
                .collect(),
            inbound_qos2: self.inbound_qos2.into_iter().collect(),
            subscriptions: self.subscriptions.into_iter().collect(),
        }
    }

    /// What [`into_resume_state`](Self::into_resume_state) would give back
    /// now, leaving the session as it is: for a durable adapter to
    /// checkpoint a connected persistent session
    /// ([`Router::checkpoint`](crate::Router::checkpoint)).
    pub fn resume_snapshot(&self) -> ResumeState {
        let inflight = self
            .inflight
            .iter()
            .map(|o| match &o.stage {
                Stage::Qos1Sent(p) | Stage::Qos2Sent(p) => InflightMessage::Publish(p.clone()),
                Stage::Released => InflightMessage::PubRel(o.pid),
            })
            .collect();
        ResumeState {
            inflight,
            queued: self
                .queue
                .iter()
                .filter(|p| p.qos() != QoS::AtMostOnce)
                .cloned()
                .collect(),
            inbound_qos2: self.inbound_qos2.iter().copied().collect(),
            subscriptions: self.subscriptions.iter().cloned().collect(),
        }
    }

    // ----- observers ----------------------------------------------------

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The configuration in force.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The client id (generated when the client sent an empty one), once a
    /// CONNECT was accepted for decision.
    pub fn client_id(&self) -> Option<&MqttString> {
        self.client_id.as_ref()
    }

    /// Whether CONNACK 0x00 was sent and the session is not closed.
    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// Whether the session is closed.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Outbound QoS 1/2 messages awaiting the client's acknowledgement.
    pub fn inflight_len(&self) -> usize {
        self.inflight.len()
    }

    /// Packet ids of the outbound messages awaiting acknowledgement, in
    /// sending order.
    pub fn inflight_ids(&self) -> impl Iterator<Item = PacketId> + '_ {
        self.inflight.iter().map(|o| o.pid)
    }

    /// Messages waiting in the queue.
    pub fn queued_len(&self) -> usize {
        self.queue.len().saturating_add(self.queue0.len())
    }

    /// Topic and payload bytes waiting in the queue.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Whether the queue holds more messages or bytes than its high-water
    /// mark ([`ServerConfig::high_water_percent`] of the queue limits). The
    /// adapter reports it to
    /// [`Router::handle_delivery`](crate::Router::handle_delivery) after
    /// every [`deliver`](Self::deliver).
    #[must_use]
    pub fn is_above_high_water(&self) -> bool {
        let c = &self.config;
        self.queued_len() > percent_of(c.max_queued_messages, c.high_water_percent)
            || self.queued_bytes > percent_of(c.max_queued_bytes, c.high_water_percent)
    }

    /// Whether the queue is at or below its low-water mark
    /// ([`ServerConfig::low_water_percent`], at most the high-water one).
    fn is_at_low_water(&self) -> bool {
        let c = &self.config;
        let low = c.low_water_percent.min(c.high_water_percent);
        self.queued_len() <= percent_of(c.max_queued_messages, low)
            && self.queued_bytes <= percent_of(c.max_queued_bytes, low)
    }

    /// The number of subscriptions counted against the per-client limit.
    pub fn subscription_count(&self) -> usize {
        self.subscriptions.len()
    }

    // ----- internals ----------------------------------------------------

    fn expect_decision(&self) -> Result<(), UsageError> {
        match self.state {
            State::AwaitingDecision => Ok(()),
            State::Closed => Err(UsageError::Closed),
            _ => Err(UsageError::NoConnectPending),
        }
    }

    fn keep_alive_deadline(&self) -> Option<Instant> {
        if self.keep_alive == 0 {
            return None;
        }
        let percent = u64::from(self.config.keep_alive_percent.max(100));
        // seconds * 1_000_000 µs * percent / 100
        let micros = u64::from(self.keep_alive) * 10_000 * percent;
        Some(
            self.last_received
                .saturating_add(Duration::from_micros(micros)),
        )
    }

    fn send<P: Encode>(&mut self, packet: &P) {
        if self.state == State::Closed {
            return;
        }
        // Everything the session encodes was validated when it was created
        // (a delivered topic and size are checked in `deliver`), and a
        // `BytesMut` grows as needed, so this cannot fail; should it, the
        // packet is not sent rather than half-written.
        let _ = packet.encode(&mut self.out);
    }

    fn close_with(&mut self, reason: CloseReason) {
        if self.state == State::Closed {
            return;
        }
        let publish_will = self.has_will
            && self.state == State::Connected
            && reason != CloseReason::ClientDisconnect;
        self.state = State::Closed;
        self.rx = BytesMut::new();
        self.events.push_back(Event::Closed {
            reason,
            publish_will,
        });
    }

    fn fail(&mut self, error: ProtocolError) -> Result<(), ProtocolError> {
        self.close_with(CloseReason::Protocol(error.clone()));
        Err(error)
    }

    fn refuse_now(&mut self, code: ConnectReturnCode) {
        self.send(&ConnAck::new(code, false));
        self.close_with(CloseReason::Refused(code));
    }

    fn process_input(&mut self, now: Instant) -> Result<(), ProtocolError> {
        loop {
            match self.state {
                State::Closed => return Ok(()),
                State::AwaitingDecision => {
                    if self.rx.len() > self.config.max_packet_size {
                        return self.fail(ProtocolError::TooMuchInputBeforeConnAck {
                            max: self.config.max_packet_size,
                        });
                    }
                    return Ok(());
                }
                State::AwaitingConnect { .. } | State::Connected => {}
            }
            let packet = match self.decoder.decode(&mut self.rx) {
                Ok(Some(packet)) => packet,
                Ok(None) => return Ok(()),
                Err(error) => return self.decode_failed(error),
            };
            self.stats.packets_in += 1;
            self.last_received = now;
            self.on_packet(packet)?;
        }
    }

    fn decode_failed(&mut self, error: DecodeError) -> Result<(), ProtocolError> {
        if matches!(error, DecodeError::UnsupportedProtocolLevel { .. })
            && matches!(self.state, State::AwaitingConnect { .. })
        {
            // [MQTT-3.1.2-2] answer 0x01, then close.
            self.send(&ConnAck::new(
                ConnectReturnCode::UnacceptableProtocolVersion,
                false,
            ));
        }
        // Any other malformed packet, CONNECT included, closes without
        // CONNACK [MQTT-3.1.4-1].
        self.fail(ProtocolError::Decode(error))
    }

    fn on_packet(&mut self, packet: Packet) -> Result<(), ProtocolError> {
        if matches!(self.state, State::AwaitingConnect { .. }) {
            return match packet {
                Packet::Connect(connect) => self.on_connect(connect),
                other => self.fail(ProtocolError::FirstPacketNotConnect(other.packet_type())),
            };
        }
        match packet {
            Packet::Connect(_) => self.fail(ProtocolError::SecondConnect),
            Packet::Publish(publish) => self.on_publish(publish),
            Packet::PubAck(ack) => {
                self.on_puback(ack.packet_id);
                Ok(())
            }
            Packet::PubRec(rec) => {
                self.on_pubrec(rec.packet_id);
                Ok(())
            }
            Packet::PubRel(rel) => {
                // [MQTT-4.3.3-2] release the id and answer PUBCOMP, known or not
                // (after a resume the id may already be gone).
                self.inbound_qos2.remove(&rel.packet_id);
                self.send(&PubComp::new(rel.packet_id));
                Ok(())
            }
            Packet::PubComp(comp) => {
                self.on_pubcomp(comp.packet_id);
                Ok(())
            }
            Packet::Subscribe(subscribe) => self.on_subscribe(subscribe),
            Packet::Unsubscribe(unsubscribe) => {
                self.on_unsubscribe(unsubscribe);
                Ok(())
            }
            Packet::PingReq => {
                self.send(&PingResp); // [MQTT-3.12.4-1]
                Ok(())
            }
            Packet::Disconnect => {
                // [MQTT-3.14.4-3] the will is discarded.
                self.close_with(CloseReason::ClientDisconnect);
                Ok(())
            }
            other @ (Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp) => self.fail(ProtocolError::UnexpectedPacket(other.packet_type())),
        }
    }

    fn on_connect(&mut self, connect: Connect) -> Result<(), ProtocolError> {
        self.decoder.set_protocol(connect.protocol);
        let (client_id, assigned) = if connect.client_id.is_empty() {
            if !connect.clean_session {
                // [MQTT-3.1.3-8] 0x02, then close.
                self.send(&ConnAck::new(ConnectReturnCode::IdentifierRejected, false));
                return self.fail(ProtocolError::EmptyClientIdWithoutCleanSession);
            }
            if !self.config.allow_zero_length_client_id {
                // [MQTT-3.1.3-9]
                self.refuse_now(ConnectReturnCode::IdentifierRejected);
                return Ok(());
            }
            // [MQTT-3.1.3-6] a unique id, used as if the client had sent it.
            (self.generated_client_id(), true)
        } else if connect.client_id.len() > self.config.max_client_id_len {
            // [MQTT-3.1.3-9]
            self.refuse_now(ConnectReturnCode::IdentifierRejected);
            return Ok(());
        } else {
            (connect.client_id, false)
        };
        self.clean_session = connect.clean_session;
        self.has_will = connect.will.is_some();
        self.keep_alive = connect.keep_alive;
        self.client_id = Some(client_id.clone());
        self.state = State::AwaitingDecision;
        self.events.push_back(Event::ConnectRequest {
            client_id,
            assigned_client_id: assigned,
            clean_session: connect.clean_session,
            keep_alive: connect.keep_alive,
            will: connect.will,
            username: connect.username,
            password: connect.password,
            protocol: connect.protocol,
        });
        Ok(())
    }

    fn generated_client_id(&self) -> MqttString {
        let id = format!("{}{:016x}", self.config.client_id_prefix, self.id_seed);
        // A prefix that is not a valid MQTT string (U+0000) is left out; the
        // hex digits alone always are one.
        MqttString::new(&id)
            .or_else(|_| MqttString::new(&format!("{:016x}", self.id_seed)))
            .unwrap_or_default()
    }

    fn on_publish(&mut self, publish: Publish) -> Result<(), ProtocolError> {
        match publish.qos_pid {
            QosPid::AtMostOnce => {
                self.events.push_back(Event::Publish { publish, ack: None });
            }
            QosPid::AtLeastOnce(pid) => {
                // [MQTT-4.3.2-2] every QoS 1 PUBLISH is a new publication.
                let token = self.queue_ack(pid, AckKind::PubAck, !self.config.ack_after_route)?;
                let ack = self.config.ack_after_route.then_some(token);
                self.events.push_back(Event::Publish { publish, ack });
                self.flush_acks();
            }
            QosPid::ExactlyOnce(pid) => {
                if self.inbound_qos2.contains(&pid) {
                    // [MQTT-4.3.3-2] a resend before PUBREL: PUBREC again,
                    // never a second onward delivery. If the first PUBREC
                    // still waits for the router, it will answer this too.
                    let waiting = self
                        .pending_acks
                        .iter()
                        .any(|a| a.pid == pid && a.kind == AckKind::PubRec && !a.ready);
                    if !waiting {
                        self.queue_ack(pid, AckKind::PubRec, true)?;
                        self.flush_acks();
                    }
                    return Ok(());
                }
                if self.inbound_qos2.len() >= self.config.max_inbound_qos2 {
                    return self.fail(ProtocolError::TooManyInboundQos2 {
                        max: self.config.max_inbound_qos2,
                    });
                }
                let token = self.queue_ack(pid, AckKind::PubRec, !self.config.ack_after_route)?;
                self.inbound_qos2.insert(pid);
                let ack = self.config.ack_after_route.then_some(token);
                self.events.push_back(Event::Publish { publish, ack });
                self.flush_acks();
            }
        }
        Ok(())
    }

    fn queue_ack(
        &mut self,
        pid: PacketId,
        kind: AckKind,
        ready: bool,
    ) -> Result<AckToken, ProtocolError> {
        if self.pending_acks.len() >= self.config.max_inbound_unacked {
            let max = self.config.max_inbound_unacked;
            self.fail(ProtocolError::TooManyUnacknowledged { max })?;
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.pending_acks.push_back(PendingAck {
            seq,
            pid,
            kind,
            ready,
        });
        Ok(AckToken { seq })
    }

    /// Sends acknowledgements from the front while they are ready, so they
    /// leave in the order their PUBLISH packets arrived [MQTT-4.6.0-2]
    /// [MQTT-4.6.0-3].
    fn flush_acks(&mut self) {
        while let Some(front) = self.pending_acks.front().copied() {
            if !front.ready {
                break;
            }
            self.pending_acks.pop_front();
            match front.kind {
                AckKind::PubAck => self.send(&PubAck::new(front.pid)),
                AckKind::PubRec => self.send(&PubRec::new(front.pid)),
            }
        }
    }

    fn on_subscribe(&mut self, subscribe: Subscribe) -> Result<(), ProtocolError> {
        let pid = subscribe.packet_id;
        if self.pending_subscribes.iter().any(|p| p.pid == pid) {
            return self.fail(ProtocolError::PacketIdInUse(pid));
        }
        if self.pending_subscribes.len() >= self.config.max_inbound_unacked {
            let max = self.config.max_inbound_unacked;
            return self.fail(ProtocolError::TooManyUnacknowledged { max });
        }
        let mut codes = Vec::with_capacity(subscribe.filters.len());
        let mut forwarded: Vec<(Filter, bool)> = Vec::new();
        let mut to_router: Vec<SubscribeFilter> = Vec::new();
        for f in subscribe.filters {
            let known = self.subscriptions.contains(&f.filter)
                || forwarded.iter().any(|(x, _)| *x == f.filter);
            let room = self
                .subscriptions
                .len()
                .saturating_add(self.reserved_subscriptions)
                < self.config.max_subscriptions_per_client;
            if known || room {
                if !known {
                    self.reserved_subscriptions += 1;
                }
                codes.push(None);
                forwarded.push((f.filter.clone(), !known));
                to_router.push(f);
            } else {
                self.stats.refused_subscriptions += 1;
                codes.push(Some(SubscribeReturnCode::Failure));
            }
        }
        if to_router.is_empty() {
            // [MQTT-3.8.4-1] answered even when every filter is refused.
            let codes = codes.into_iter().flatten().collect();
            self.send(&SubAck::new(pid, codes));
            return Ok(());
        }
        self.pending_subscribes.push(PendingSubscribe {
            pid,
            codes,
            forwarded,
        });
        self.events.push_back(Event::Subscribe {
            packet_id: pid,
            filters: to_router,
        });
        Ok(())
    }

    fn on_unsubscribe(&mut self, unsubscribe: Unsubscribe) {
        // [MQTT-3.10.4-1] exact matches only.
        for f in &unsubscribe.filters {
            self.subscriptions.remove(f);
        }
        // [MQTT-3.10.4-4] [MQTT-3.10.4-5] always answered, with the same id.
        self.send(&UnsubAck::new(unsubscribe.packet_id));
        self.events.push_back(Event::Unsubscribe {
            packet_id: unsubscribe.packet_id,
            filters: unsubscribe.filters,
        });
    }

    fn on_puback(&mut self, pid: PacketId) {
        let found = self
            .inflight
            .iter()
            .position(|o| o.pid == pid && matches!(o.stage, Stage::Qos1Sent(_)));
        match found {
            Some(index) => {
                self.inflight.remove(index);
                self.release();
            }
            None => self.stats.unknown_acks += 1,
        }
    }

    fn on_pubrec(&mut self, pid: PacketId) {
        let found = self
            .inflight
            .iter_mut()
            .find(|o| o.pid == pid && matches!(o.stage, Stage::Qos2Sent(_) | Stage::Released));
        match found {
            Some(entry) => {
                entry.stage = Stage::Released;
                // [MQTT-4.6.0-4] PUBRELs leave in the order PUBRECs came.
                self.send(&PubRel::new(pid));
            }
            None => self.stats.unknown_acks += 1,
        }
    }

    fn on_pubcomp(&mut self, pid: PacketId) {
        let found = self
            .inflight
            .iter()
            .position(|o| o.pid == pid && matches!(o.stage, Stage::Released));
        match found {
            Some(index) => {
                self.inflight.remove(index);
                self.release();
            }
            None => self.stats.unknown_acks += 1,
        }
    }

    /// A packet id no outbound message uses [MQTT-2.3.1-4].
    fn free_packet_id(&mut self) -> Option<PacketId> {
        for _ in 0..=u16::MAX {
            self.next_pid = self.next_pid.wrapping_add(1);
            let Some(pid) = PacketId::new(self.next_pid) else {
                continue;
            };
            if !self.inflight.iter().any(|o| o.pid == pid) {
                return Some(pid);
            }
        }
        None
    }

    fn send_tracked(&mut self, pid: PacketId, mut publish: Publish) {
        let stage = if publish.qos() == QoS::ExactlyOnce {
            publish.qos_pid = QosPid::ExactlyOnce(pid);
            Stage::Qos2Sent(publish.clone())
        } else {
            publish.qos_pid = QosPid::AtLeastOnce(pid);
            Stage::Qos1Sent(publish.clone())
        };
        self.send(&publish);
        self.inflight.push_back(Outbound { pid, stage });
    }

    /// Moves queued messages out while the transport buffer and (for QoS
    /// 1/2) the window have room; reports [`Event::Drained`] when a
    /// congested queue reached its low-water mark.
    fn release(&mut self) {
        self.release_queued();
        if self.congested && self.state != State::Closed && self.is_at_low_water() {
            self.congested = false;
            self.events.push_back(Event::Drained);
        }
    }

    fn release_queued(&mut self) {
        while self.state == State::Connected && self.out.len() < self.config.max_unsent_bytes {
            let window_open = self.inflight.len() < self.config.max_inflight;
            let pid = if window_open && !self.queue.is_empty() {
                self.free_packet_id()
            } else {
                None
            };
            if let Some(pid) = pid {
                let Some(publish) = self.queue.pop_front() else {
                    return;
                };
                self.queued_bytes = self.queued_bytes.saturating_sub(message_size(&publish));
                self.send_tracked(pid, publish);
            } else if let Some(publish) = self.queue0.pop_front() {
                self.queued_bytes = self.queued_bytes.saturating_sub(message_size(&publish));
                self.send(&publish);
            } else {
                return;
            }
        }
    }

    fn enqueue(&mut self, publish: Publish) -> DeliverOutcome {
        let size = message_size(&publish);
        let mut evicted: u32 = 0;
        let fits = |s: &Self| {
            s.queue.len().saturating_add(s.queue0.len()) < s.config.max_queued_messages
                && s.queued_bytes.saturating_add(size) <= s.config.max_queued_bytes
        };
        if !fits(self) {
            let can_evict = publish.qos() != QoS::AtMostOnce
                && self.config.overflow_policy == OverflowPolicy::DropOldest
                && self.config.max_queued_messages > 0
                && size <= self.config.max_queued_bytes;
            if !can_evict {
                if publish.qos() == QoS::AtMostOnce {
                    self.stats.dropped_qos0 += 1;
                } else {
                    self.stats.dropped_queue_full += 1;
                }
                return DeliverOutcome::Dropped(DropReason::QueueFull);
            }
            while !fits(self) {
                let Some(old) = self.queue.pop_front().or_else(|| self.queue0.pop_front()) else {
                    break;
                };
                self.queued_bytes = self.queued_bytes.saturating_sub(message_size(&old));
                self.stats.dropped_oldest += 1;
                evicted = evicted.saturating_add(1);
            }
        }
        self.queued_bytes = self.queued_bytes.saturating_add(size);
        if publish.qos() == QoS::AtMostOnce {
            self.queue0.push_back(publish);
        } else {
            self.queue.push_back(publish);
        }
        if evicted > 0 {
            DeliverOutcome::QueuedEvictedOldest(evicted)
        } else {
            DeliverOutcome::Queued
        }
    }
}

/// What a message counts against [`ServerConfig::max_queued_bytes`].
fn message_size(publish: &Publish) -> usize {
    publish.topic.len().saturating_add(publish.payload.len())
}
