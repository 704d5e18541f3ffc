//! Deliveries from the broker to SN clients (spec 6.10, 6.14) and the
//! gateway's own retransmissions (spec 6.13).

use super::*;

impl<A: Clone + Ord> Gateway<A> {
    pub(super) fn enqueue_delivery(
        &mut self,
        now: Instant,
        slot: u64,
        publish: midge_codec::Publish,
    ) {
        let Some(c) = self.clients.get_mut(&slot) else {
            return;
        };
        if c.outbox.len() >= self.config.max_buffered {
            let client_id = c.client_id.clone();
            self.event(GatewayEvent::Dropped {
                client_id: Some(client_id),
                reason: DropReason::BufferFull,
            });
            return;
        }
        let qos = match publish.qos_pid {
            QosPid::AtMostOnce => SnQoS::AtMostOnce,
            QosPid::AtLeastOnce(_) => SnQoS::AtLeastOnce,
            QosPid::ExactlyOnce(_) => SnQoS::ExactlyOnce,
        };
        c.outbox.push_back(Delivery {
            topic: String::from(publish.topic.as_str()),
            data: publish.payload,
            qos,
            retain: publish.retain,
        });
        self.pump(now, slot);
    }

    /// Sends what can be sent to an active or awake client: one exchange at
    /// a time (QoS 0 messages back to back). An awake client with nothing
    /// left gets PINGRESP and is asleep again (spec 6.14).
    pub(super) fn pump(&mut self, now: Instant, slot: u64) {
        self.touched.insert(slot);
        for _ in 0..=self.config.max_buffered {
            let Some(c) = self.clients.get_mut(&slot) else {
                return;
            };
            if !matches!(c.state, ClientState::Active | ClientState::Awake) || c.inflight.is_some()
            {
                return;
            }
            let Some(front_topic) = c.outbox.front().map(|d| d.topic.clone()) else {
                if c.state == ClientState::Awake {
                    c.state = ClientState::Asleep;
                    c.last_heard = now;
                    let peer = c.peer.clone();
                    let (client_id, duration) = (c.client_id.clone(), c.sleep);
                    self.send_to_peer(peer, PingResp.into());
                    self.event(GatewayEvent::ClientAsleep {
                        client_id,
                        duration,
                    });
                }
                return;
            };
            // The id the client was told wins; then the forms that need no
            // registration (spec 6.7); then a REGISTER (spec 6.10).
            let topic = if let Some(id) = c.registry.known_id(&front_topic) {
                Topic::TopicId(TopicId(id))
            } else if let Some(&id) = self.predefined_by_name.get(&front_topic) {
                Topic::Predefined(TopicId(id))
            } else if let Some(short) = short_bytes(&front_topic) {
                Topic::Short(short)
            } else {
                match c.registry.lookup_for_delivery(&front_topic) {
                    Lookup::Known(id) => Topic::TopicId(TopicId(id)),
                    Lookup::NeedsRegister(id) => {
                        let msg_id = c.msg_id();
                        let register = Register {
                            topic_id: TopicId(id),
                            msg_id,
                            topic_name: TopicName::from(front_topic),
                        };
                        if register.encoded_len() > self.config.max_datagram {
                            // The client never learned this id: free it.
                            c.registry.remove(id);
                            self.drop_front(slot, DropReason::TooLong);
                            continue;
                        }
                        self.send_request(
                            now,
                            slot,
                            register.into(),
                            Awaiting::RegAck {
                                msg_id,
                                topic_id: id,
                            },
                        );
                        return;
                    }
                    Lookup::Rejected => {
                        self.drop_front(slot, DropReason::RegistrationRejected);
                        continue;
                    }
                    Lookup::Full => {
                        self.drop_front(slot, DropReason::RegistryFull);
                        continue;
                    }
                }
            };
            let Some(d) = c.outbox.pop_front() else {
                return;
            };
            let msg_id = if d.qos == SnQoS::AtMostOnce {
                0
            } else {
                c.msg_id()
            };
            let publish = Publish {
                dup: false,
                qos: d.qos.into(),
                retain: d.retain,
                topic,
                msg_id,
                data: d.data.clone(),
            };
            if publish.encoded_len() > self.config.max_datagram {
                let client_id = c.client_id.clone();
                self.event(GatewayEvent::Dropped {
                    client_id: Some(client_id),
                    reason: DropReason::TooLong,
                });
                continue;
            }
            let topic_id = match topic {
                Topic::TopicId(id) => Some(id.0),
                _ => None,
            };
            match d.qos {
                SnQoS::AtMostOnce => {
                    let peer = c.peer.clone();
                    self.send_to_peer(peer, publish.into());
                }
                SnQoS::AtLeastOnce => {
                    c.inflight_delivery = Some(d);
                    self.send_request(
                        now,
                        slot,
                        publish.into(),
                        Awaiting::PubAck { msg_id, topic_id },
                    );
                }
                SnQoS::ExactlyOnce => {
                    c.inflight_delivery = Some(d);
                    self.send_request(
                        now,
                        slot,
                        publish.into(),
                        Awaiting::PubRec { msg_id, topic_id },
                    );
                }
            }
        }
    }

    pub(super) fn drop_front(&mut self, slot: u64, reason: DropReason) {
        if let Some(c) = self.clients.get_mut(&slot) {
            c.outbox.pop_front();
            let client_id = c.client_id.clone();
            self.event(GatewayEvent::Dropped {
                client_id: Some(client_id),
                reason,
            });
        }
    }

    pub(super) fn on_regack(
        &mut self,
        now: Instant,
        slot: u64,
        r: RegAck,
    ) -> Result<(), PeerError> {
        let Some(c) = self.clients.get_mut(&slot) else {
            return Ok(());
        };
        let Some(Awaiting::RegAck { msg_id, topic_id }) = c.inflight.as_ref().map(|i| i.awaiting)
        else {
            self.stats.stale_acks += 1;
            return Ok(());
        };
        if msg_id != r.msg_id {
            self.stats.stale_acks += 1;
            return Ok(());
        }
        c.inflight = None;
        match r.return_code {
            ReturnCode::Accepted => c.registry.mark_known(topic_id),
            // spec 6.10: refusing a REGISTER unsubscribes from that name.
            ReturnCode::InvalidTopicId | ReturnCode::NotSupported => {
                c.registry.mark_rejected(topic_id);
                self.drop_front(slot, DropReason::RegistrationRejected);
            }
            ReturnCode::Congestion => {
                self.drop_front(slot, DropReason::RejectedByClient(ReturnCode::Congestion));
            }
        }
        self.pump(now, slot);
        Ok(())
    }

    pub(super) fn on_puback(
        &mut self,
        now: Instant,
        slot: u64,
        a: PubAck,
    ) -> Result<(), PeerError> {
        let Some(c) = self.clients.get_mut(&slot) else {
            return Ok(());
        };
        let Some(Awaiting::PubAck { msg_id, topic_id } | Awaiting::PubRec { msg_id, topic_id }) =
            c.inflight.as_ref().map(|i| i.awaiting)
        else {
            self.stats.stale_acks += 1;
            return Ok(());
        };
        if msg_id != a.msg_id {
            self.stats.stale_acks += 1;
            return Ok(());
        }
        c.inflight = None;
        c.inflight_delivery = None;
        if a.return_code != ReturnCode::Accepted {
            // spec 6.10: an unknown id makes the gateway drop its mapping.
            if a.return_code == ReturnCode::InvalidTopicId {
                if let Some(id) = topic_id {
                    c.registry.remove(id);
                }
            }
            let client_id = c.client_id.clone();
            self.event(GatewayEvent::Dropped {
                client_id: Some(client_id),
                reason: DropReason::RejectedByClient(a.return_code),
            });
        }
        self.pump(now, slot);
        Ok(())
    }

    pub(super) fn on_pubrec(
        &mut self,
        now: Instant,
        slot: u64,
        r: PubRec,
    ) -> Result<(), PeerError> {
        let Some(c) = self.clients.get_mut(&slot) else {
            return Ok(());
        };
        match c.inflight.as_ref().map(|i| i.awaiting) {
            Some(Awaiting::PubRec { msg_id, .. } | Awaiting::PubComp { msg_id })
                if msg_id == r.msg_id =>
            {
                c.inflight_delivery = None;
                self.send_request(
                    now,
                    slot,
                    PubRel { msg_id }.into(),
                    Awaiting::PubComp { msg_id },
                );
                Ok(())
            }
            _ => {
                self.stats.stale_acks += 1;
                Ok(())
            }
        }
    }

    pub(super) fn on_pubcomp(
        &mut self,
        now: Instant,
        slot: u64,
        r: PubComp,
    ) -> Result<(), PeerError> {
        let Some(c) = self.clients.get_mut(&slot) else {
            return Ok(());
        };
        match c.inflight.as_ref().map(|i| i.awaiting) {
            Some(Awaiting::PubComp { msg_id }) if msg_id == r.msg_id => {
                c.inflight = None;
                self.pump(now, slot);
                Ok(())
            }
            _ => {
                self.stats.stale_acks += 1;
                Ok(())
            }
        }
    }

    /// Sends a message that expects an answer and supervises it (spec 6.13).
    pub(super) fn send_request(
        &mut self,
        now: Instant,
        slot: u64,
        message: Message,
        awaiting: Awaiting,
    ) {
        let Some(c) = self.clients.get_mut(&slot) else {
            return;
        };
        c.inflight = Some(Inflight {
            message: message.clone(),
            awaiting,
            deadline: now.saturating_add(self.config.t_retry),
            retries: 0,
        });
        let peer = c.peer.clone();
        self.send_to_peer(peer, message);
    }

    /// Resends the open exchange of a client if its timer ran out, or gives
    /// up after N_retry retransmissions.
    pub(super) fn retransmit_due(&mut self, now: Instant, slot: u64) {
        let Some(c) = self.clients.get_mut(&slot) else {
            return;
        };
        if c.retry_deadline().is_none_or(|d| d > now) {
            return;
        }
        let Some(i) = c.inflight.as_mut() else {
            return;
        };
        if i.retries >= self.config.n_retry {
            let client_id = c.client_id.clone();
            c.inflight = None;
            if c.state == ClientState::Prompting {
                c.state = ClientState::Disconnected;
                self.event(GatewayEvent::ClientDisconnected {
                    client_id,
                    cause: DisconnectCause::PromptTimeout,
                });
            } else {
                let had_delivery = c.inflight_delivery.take().is_some();
                if had_delivery {
                    self.event(GatewayEvent::Dropped {
                        client_id: Some(client_id),
                        reason: DropReason::RetriesExhausted,
                    });
                }
                // spec 6.13 seen from the gateway: a client that answers
                // nothing after N_retry retransmissions is lost.
                self.end_session(
                    now,
                    slot,
                    ClientState::Lost,
                    DisconnectCause::BrokerLinkLost,
                );
            }
            return;
        }
        i.retries += 1;
        i.deadline = now.saturating_add(self.config.t_retry);
        if let Message::Publish(p) = &mut i.message {
            p.dup = true;
        }
        let message = i.message.clone();
        let peer = c.peer.clone();
        self.stats.retransmissions += 1;
        self.send_to_peer(peer, message);
    }
}
