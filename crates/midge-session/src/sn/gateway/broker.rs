//! The broker side of the gateway: the MQTT machines' bytes become
//! [`BrokerOp`]s, their events become MQTT-SN messages.

use super::*;

impl<A: Clone + Ord> Gateway<A> {
    /// The caller opened the connection asked for by [`BrokerOp::Open`]. An
    /// unknown key (closed meanwhile) is ignored.
    pub fn handle_broker_opened(&mut self, now: Instant, key: ConnKey) {
        let Some(&owner) = self.by_conn.get(&key) else {
            return;
        };
        if let Some((mqtt, link)) = self.machine(owner) {
            if link.is_some_and(|l| l.key == key) {
                if let Some(l) = link {
                    l.opened = true;
                }
                let _ = mqtt.connect(now);
            }
        }
        self.service(now, owner);
    }

    /// Bytes read from a broker connection. An unknown key is ignored.
    pub fn handle_broker_read(&mut self, now: Instant, key: ConnKey, bytes: &[u8]) {
        let Some(&owner) = self.by_conn.get(&key) else {
            return;
        };
        if let Some((mqtt, _)) = self.machine(owner) {
            // A protocol error ends the connection inside the machine; its
            // Disconnected event is handled by `service`.
            let _ = mqtt.handle_read(now, bytes);
        }
        self.service(now, owner);
    }

    /// A broker connection closed (or could not be opened). An unknown key is
    /// ignored.
    pub fn handle_broker_closed(&mut self, now: Instant, key: ConnKey) {
        let Some(owner) = self.by_conn.remove(&key) else {
            return;
        };
        if let Some((mqtt, link)) = self.machine(owner) {
            *link = None;
            mqtt.handle_transport_closed(now);
        }
        self.service(now, owner);
        // A connection that failed before CONNECT went out ends nothing inside
        // the MQTT machine; the waiting side is answered here.
        match owner {
            Owner::Client(slot) => {
                if self
                    .clients
                    .get(&slot)
                    .is_some_and(|c| c.state == ClientState::Connecting)
                {
                    if let Some(c) = self.clients.get_mut(&slot) {
                        c.mqtt = None;
                    }
                    self.refuse_connect(slot, ReturnCode::Congestion);
                }
            }
            Owner::MinusOne => {
                if self.minus_one.link.is_none() && self.minus_one.mqtt.is_some() {
                    self.minus_one_failed();
                }
            }
        }
    }

    /// The QoS −1 connection could not be set up: its pending publishes are
    /// dropped; the next QoS −1 publish tries again.
    pub(super) fn minus_one_failed(&mut self) {
        let m = &mut self.minus_one;
        m.mqtt = None;
        m.deadline = None;
        let dropped = m.pending.len();
        m.pending.clear();
        if let Some(l) = m.link.take() {
            self.by_conn.remove(&l.key);
            self.broker_ops.push_back(BrokerOp::Close(l.key));
        }
        for _ in 0..dropped {
            self.event(GatewayEvent::Dropped {
                client_id: None,
                reason: DropReason::BrokerUnavailable,
            });
        }
    }

    pub(super) fn machine(&mut self, owner: Owner) -> Option<(&mut Client, &mut Option<Link>)> {
        match owner {
            Owner::Client(slot) => {
                let c = self.clients.get_mut(&slot)?;
                Some((c.mqtt.as_mut()?, &mut c.link))
            }
            Owner::MinusOne => {
                let m = &mut self.minus_one;
                Some((m.mqtt.as_mut()?, &mut m.link))
            }
        }
    }

    /// Closes an owner's broker connection: `graceful` sends DISCONNECT first.
    pub(super) fn close_link(&mut self, now: Instant, owner: Owner, graceful: bool) {
        let Some((mqtt, link)) = self.machine(owner) else {
            return;
        };
        let Some(l) = link.take() else {
            return;
        };
        let mut buf = BytesMut::new();
        if graceful && l.opened {
            mqtt.disconnect(now);
            while mqtt.poll_transmit(now, &mut buf) > 0 {}
        }
        // The old machine's events are stale now.
        while mqtt.poll_event().is_some() {}
        if let Owner::Client(slot) = owner {
            if let Some(c) = self.clients.get_mut(&slot) {
                c.mqtt = None;
            }
        } else {
            self.minus_one.mqtt = None;
        }
        self.by_conn.remove(&l.key);
        if !buf.is_empty() {
            self.broker_ops
                .push_back(BrokerOp::Write(l.key, buf.freeze()));
        }
        self.broker_ops.push_back(BrokerOp::Close(l.key));
    }

    /// Drains one MQTT machine: its bytes become writes, its events become
    /// SN messages.
    pub(super) fn service(&mut self, now: Instant, owner: Owner) {
        for _ in 0..SERVICE_ROUNDS {
            let Some((mqtt, link)) = self.machine(owner) else {
                return;
            };
            let mut buf = BytesMut::new();
            while mqtt.poll_transmit(now, &mut buf) > 0 {}
            let events: Vec<Event> = core::iter::from_fn(|| mqtt.poll_event()).collect();
            let key = link.map(|l| l.key);
            if let Some(key) = key {
                if !buf.is_empty() {
                    self.broker_ops
                        .push_back(BrokerOp::Write(key, buf.freeze()));
                }
            }
            if events.is_empty() {
                return;
            }
            for e in events {
                match owner {
                    Owner::Client(slot) => self.on_mqtt_event(now, slot, e),
                    Owner::MinusOne => self.on_minus_one_event(now, e),
                }
            }
        }
    }

    pub(super) fn on_minus_one_event(&mut self, now: Instant, event: Event) {
        match event {
            Event::Connected { .. } => {
                self.minus_one.deadline = None;
                let pending: Vec<_> = self.minus_one.pending.drain(..).collect();
                for (topic, data, retain) in pending {
                    let ok = self.minus_one.mqtt.as_mut().is_some_and(|m| {
                        m.publish(now, &topic, data, MqttQoS::AtMostOnce, retain)
                            .is_ok()
                    });
                    if !ok {
                        self.event(GatewayEvent::Dropped {
                            client_id: None,
                            reason: DropReason::BrokerUnavailable,
                        });
                    }
                }
            }
            Event::Disconnected { .. } => self.minus_one_failed(),
            _ => {}
        }
    }

    pub(super) fn on_mqtt_event(&mut self, now: Instant, slot: u64, event: Event) {
        self.touched.insert(slot);
        match event {
            Event::Connected { .. } => {
                if self
                    .clients
                    .get(&slot)
                    .is_some_and(|c| c.state == ClientState::Connecting)
                {
                    self.accept_connect(now, slot);
                }
            }
            Event::ConnectionRefused { code } => {
                if self
                    .clients
                    .get(&slot)
                    .is_some_and(|c| c.state == ClientState::Connecting)
                {
                    self.refuse_connect(slot, codes::connack(code));
                }
            }
            Event::Delivered { id } | Event::Dropped { id } => {
                let delivered = matches!(event, Event::Delivered { .. });
                let Some(c) = self.clients.get_mut(&slot) else {
                    return;
                };
                if let Some((msg_id, topic)) = c.qos2.remove(&id) {
                    if delivered {
                        self.answer(slot, PubRec { msg_id }.into());
                    } else {
                        // Not handed over: a retransmission is forwarded anew.
                        c.qos2_in.remove(&msg_id);
                        self.answer(
                            slot,
                            PubAck {
                                topic_id: TopicId(u16::from_be_bytes(topic.to_bytes())),
                                msg_id,
                                return_code: ReturnCode::Congestion,
                            }
                            .into(),
                        );
                    }
                } else if let Some((msg_id, topic)) = c.qos1.remove(&id) {
                    let code = if delivered {
                        ReturnCode::Accepted
                    } else {
                        ReturnCode::Congestion
                    };
                    self.answer(
                        slot,
                        PubAck {
                            topic_id: TopicId(u16::from_be_bytes(topic.to_bytes())),
                            msg_id,
                            return_code: code,
                        }
                        .into(),
                    );
                }
            }
            Event::Message { publish, .. } => self.enqueue_delivery(now, slot, publish),
            Event::Subscribed { id, results } => {
                let Some(c) = self.clients.get_mut(&slot) else {
                    return;
                };
                let Some(req) = c.subs.remove(&id) else {
                    return;
                };
                let suback = match results.first() {
                    Some(SubscribeReturnCode::Success(q)) => {
                        // The client learns the id from this SUBACK.
                        if req.normal {
                            c.registry.mark_known(req.topic_id);
                        }
                        SubAck {
                            qos: sn_qos(*q),
                            topic_id: TopicId(req.topic_id),
                            msg_id: req.msg_id,
                            return_code: ReturnCode::Accepted,
                        }
                    }
                    _ => SubAck {
                        qos: SnQoS::AtMostOnce,
                        topic_id: TopicId(0),
                        msg_id: req.msg_id,
                        return_code: ReturnCode::NotSupported,
                    },
                };
                self.answer(slot, suback.into());
            }
            Event::Unsubscribed { id } => {
                if let Some(msg_id) = self
                    .clients
                    .get_mut(&slot)
                    .and_then(|c| c.unsubs.remove(&id))
                {
                    self.answer(slot, UnsubAck { msg_id }.into());
                }
            }
            Event::Disconnected { reason } => self.on_link_down(now, slot, &reason),
        }
    }

    /// The client's MQTT connection ended.
    pub(super) fn on_link_down(&mut self, now: Instant, slot: u64, reason: &DisconnectReason) {
        let Some(c) = self.clients.get_mut(&slot) else {
            return;
        };
        if let Some(l) = c.link.take() {
            self.by_conn.remove(&l.key);
            self.broker_ops.push_back(BrokerOp::Close(l.key));
        }
        let Some(c) = self.clients.get_mut(&slot) else {
            return;
        };
        match c.state {
            ClientState::Connecting => {
                let code = match reason {
                    DisconnectReason::Refused(code) => codes::connack(*code),
                    _ => ReturnCode::Congestion,
                };
                // A refusal was already answered on ConnectionRefused.
                if !matches!(reason, DisconnectReason::Refused(_)) {
                    self.refuse_connect(slot, code);
                }
            }
            ClientState::Active | ClientState::Awake | ClientState::Asleep => {
                let notify = c.state != ClientState::Asleep;
                let peer = c.peer.clone();
                if notify {
                    // spec 6.12: the gateway may end a connection itself.
                    self.send_to_peer(peer, Disconnect { duration: None }.into());
                }
                self.end_session(
                    now,
                    slot,
                    ClientState::Disconnected,
                    DisconnectCause::BrokerLinkLost,
                );
            }
            _ => {}
        }
        if let Some(c) = self.clients.get_mut(&slot) {
            if c.link.is_none() {
                c.mqtt = None;
            }
        }
    }

    /// The next thing to do on the broker side.
    pub fn poll_broker(&mut self) -> Option<BrokerOp> {
        self.broker_ops.pop_front()
    }
}
