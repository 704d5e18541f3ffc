//! What of the gateway survives a restart: per-client records handed out
//! as changes ([`Gateway::poll_persist`]) and read back at start
//! ([`Gateway::restore`]).
//!
//! A record holds what a client depends on across a restart of the
//! gateway: its topic registry (so a PUBLISH with an id it registered
//! earlier still resolves), its will, and, while it sleeps, its sleep
//! duration and the messages buffered for it. Clients with a clean session
//! that are not asleep have nothing worth keeping: their record is deleted.
//! Pre-defined topic ids come from the configuration and need no record.

use core::hash::{Hash, Hasher};

use super::*;

/// A normal topic id of one client's registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicRecord {
    /// The id, 0x0001..=0xFFFE.
    pub id: u16,
    /// The topic name it stands for.
    pub name: String,
    /// The client was told the id (REGACK, SUBACK, or its own REGISTER).
    pub known: bool,
    /// The client refused the gateway's REGISTER for this name.
    pub rejected: bool,
}

/// A client's will, as last set by the prompts or an update.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WillRecord {
    /// The will topic.
    pub topic: String,
    /// Its QoS.
    pub qos: SnQoS,
    /// Whether it is retained.
    pub retain: bool,
    /// The will message.
    pub message: Bytes,
}

/// A message from the broker not yet delivered to the client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BufferedMessage {
    /// The topic name it was published on.
    pub topic: String,
    /// The payload.
    pub data: Bytes,
    /// The QoS it is delivered with.
    pub qos: SnQoS,
    /// The retain flag.
    pub retain: bool,
}

/// Everything kept of one SN client across a restart.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientRecord {
    /// The client id (the key).
    pub client_id: String,
    /// The CleanSession flag of its last CONNECT.
    pub clean_session: bool,
    /// The keep-alive duration of its last CONNECT, in seconds.
    pub keep_alive: u16,
    /// `Some(seconds)` while the client sleeps (asleep or awake).
    pub sleep: Option<u16>,
    /// Its will, if any.
    pub will: Option<WillRecord>,
    /// Its registry of normal topic ids.
    pub topics: Vec<TopicRecord>,
    /// Messages waiting for it, oldest first (a message in flight to it
    /// comes first and is sent again).
    pub buffered: Vec<BufferedMessage>,
}

/// A change of the state kept across restarts (see
/// [`Gateway::poll_persist`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PersistOp {
    /// Store (or replace) the record of `record.client_id`.
    Put(ClientRecord),
    /// Delete the record of this client id.
    Delete(String),
}

/// FNV-1a, 64 bits: a fingerprint to tell whether a record changed. Not
/// keyed: a collision only costs one missed write of a record whose
/// fingerprint equals the old one's, which ordinary edits do not produce.
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn fingerprint(record: &ClientRecord) -> u64 {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    record.hash(&mut h);
    h.finish()
}

impl<A> SnClient<A> {
    /// The record of this client, `None` when nothing of it is worth
    /// keeping (a clean session, not asleep).
    fn record(&self) -> Option<ClientRecord> {
        let asleep = matches!(self.state, ClientState::Asleep | ClientState::Awake);
        if self.clean_session && !asleep {
            return None;
        }
        let will = self.will_topic.as_ref().map(|w| WillRecord {
            topic: w.topic.clone(),
            qos: w.qos,
            retain: w.retain,
            message: self.will_msg.clone(),
        });
        let buffered = self
            .inflight_delivery
            .iter()
            .chain(&self.outbox)
            .map(|d| BufferedMessage {
                topic: d.topic.clone(),
                data: d.data.clone(),
                qos: d.qos,
                retain: d.retain,
            })
            .collect();
        Some(ClientRecord {
            client_id: self.client_id.clone(),
            clean_session: self.clean_session,
            keep_alive: self.keep_alive,
            sleep: asleep.then_some(self.sleep),
            will,
            topics: self.registry.records(),
            buffered,
        })
    }
}

impl<A: Clone + Ord> Gateway<A> {
    /// A gateway starting at `now` with the clients of `records` (as
    /// written from [`Gateway::poll_persist`] before a restart).
    ///
    /// A client that was asleep is asleep again, its sleep timer started
    /// anew at `now`, its buffered messages waiting for it to wake (PINGREQ
    /// with its client id), and its broker connection is asked for at once
    /// ([`BrokerOp::Open`]) so messages for it reach the gateway. Any other
    /// client is remembered as disconnected: its next CONNECT without clean
    /// session finds its topic ids. Addresses are not kept: a client is
    /// reached again once it sends something.
    ///
    /// Records beyond `max_clients`, entries beyond `max_registrations` or
    /// `max_buffered` (plus one: the message that was in flight), invalid
    /// topic names or ids, and repeated client ids are skipped; [`Gateway::client_count`] tells how many were taken.
    ///
    /// # Errors
    /// [`ConfigError`] when the configuration cannot work.
    pub fn restore(
        config: GatewayConfig,
        now: Instant,
        records: impl IntoIterator<Item = ClientRecord>,
    ) -> Result<Self, ConfigError> {
        let mut gw = Self::new(config, now)?;
        for record in records {
            if gw.clients.len() >= gw.config.max_clients {
                break;
            }
            gw.restore_client(now, record);
        }
        Ok(gw)
    }

    fn restore_client(&mut self, now: Instant, r: ClientRecord) {
        let id = r.client_id.as_str();
        if id.is_empty() || id.len() > self.config.max_client_id_len || self.by_id.contains_key(id)
        {
            return;
        }
        let mut registry = Registry::new(self.config.max_registrations);
        for t in &r.topics {
            if validate_topic_name(&t.name).is_ok() {
                registry.restore(t.id, &t.name, t.known, t.rejected);
            }
        }
        let outbox: VecDeque<Delivery> = r
            .buffered
            .into_iter()
            .filter(|m| validate_topic_name(&m.topic).is_ok())
            // A full buffer plus the message that was in flight.
            .take(self.config.max_buffered.saturating_add(1))
            .map(|m| Delivery {
                topic: m.topic,
                data: m.data,
                qos: m.qos,
                retain: m.retain,
            })
            .collect();
        let (will_topic, will_msg) = match r.will {
            Some(w) if validate_topic_name(&w.topic).is_ok() => (
                Some(WillData {
                    topic: w.topic,
                    qos: w.qos,
                    retain: w.retain,
                }),
                w.message,
            ),
            _ => (None, Bytes::new()),
        };
        let (state, sleep) = match r.sleep {
            Some(d) => (ClientState::Asleep, d),
            None => (ClientState::Disconnected, 0),
        };
        let slot = self.next_slot;
        self.next_slot += 1;
        self.clients.insert(
            slot,
            SnClient {
                client_id: r.client_id.clone(),
                peer: None,
                state,
                clean_session: r.clean_session,
                keep_alive: r.keep_alive,
                sleep,
                last_heard: now,
                connect_deadline: None,
                will_topic,
                will_msg,
                prompt_topic: None,
                mqtt: None,
                link: None,
                registry,
                outbox,
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
        self.by_id.insert(r.client_id, slot);
        if state == ClientState::Asleep && !self.new_link(slot) {
            // The machine refused its configuration: nothing can reach it.
            self.end_session(
                now,
                slot,
                ClientState::Disconnected,
                DisconnectCause::BrokerLinkLost,
            );
        }
        // What was read is what is stored: no write back unless it changes.
        let record = self.clients.get(&slot).and_then(SnClient::record);
        if let (Some(c), Some(record)) = (self.clients.get(&slot), record) {
            self.persisted
                .insert(c.client_id.clone(), fingerprint(&record));
        }
        self.touched.insert(slot);
    }

    /// The next change of the state kept across restarts, `None` when all
    /// were handed out. Drain it after each input, before the other
    /// outputs, and make what it gives durable, in order, before sending
    /// them (one batch per input, for example). A caller that keeps nothing
    /// need not call it.
    ///
    /// The gateway notes which clients an input touched and, here, compares
    /// each one's record with the one handed out last (by a fingerprint), so
    /// only real changes come out: a REGISTER, a will update, a client
    /// falling asleep or waking, a message buffered for or delivered to a
    /// client with a record, a clean session ending one. Memory for this is
    /// one fingerprint per recorded client.
    pub fn poll_persist(&mut self) -> Option<PersistOp> {
        loop {
            if let Some(id) = self.gone.pop_first() {
                if self.by_id.contains_key(&id) {
                    continue; // back under another slot: that slot decides
                }
                if self.persisted.remove(&id).is_some() {
                    return Some(PersistOp::Delete(id));
                }
                continue;
            }
            let slot = self.touched.pop_first()?;
            let Some(c) = self.clients.get(&slot) else {
                continue;
            };
            match c.record() {
                Some(record) => {
                    let print = fingerprint(&record);
                    if self.persisted.get(&record.client_id) != Some(&print) {
                        self.persisted.insert(record.client_id.clone(), print);
                        return Some(PersistOp::Put(record));
                    }
                }
                None => {
                    if self.persisted.remove(&c.client_id).is_some() {
                        return Some(PersistOp::Delete(c.client_id.clone()));
                    }
                }
            }
        }
    }

    /// The records of every client worth keeping, as
    /// [`Gateway::poll_persist`] would write them: a full snapshot, for a
    /// store that is rewritten whole or checked against the changes.
    #[must_use]
    pub fn export(&self) -> Vec<ClientRecord> {
        self.clients.values().filter_map(SnClient::record).collect()
    }
}
