//! [`Store`]: where the router records what a persistent session must not
//! lose, and [`MemoryStore`], the in-memory implementation.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use midge_codec::{Filter, PacketId, Publish, QoS, QosPid};

use crate::event::{InflightMessage, ResumeState};

/// The router's name for a message stored once and referenced from every
/// queue that holds it (see [`Store::push_queued`]). Ids grow; after a
/// restart the router continues from [`Recovered::next_message_id`].
pub type MessageId = u64;

/// The state of a persistent session besides its subscriptions and its
/// queue: what its connection had sent and not finished, and what its
/// client had sent and not released.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionState {
    /// Outbound QoS 1/2 messages awaiting the client's acknowledgement, in
    /// sending order, with the packet ids they went out with
    /// [MQTT-4.4.0-1].
    pub inflight: Vec<InflightMessage>,
    /// Messages the session had taken but not yet sent, oldest first
    /// (recorded by a checkpoint of a connected session; empty when the
    /// router keeps them in the queue instead).
    pub queued: Vec<Publish>,
    /// Inbound QoS 2 packet ids whose PUBREL has not come yet
    /// [MQTT-4.3.3-2].
    pub inbound_qos2: Vec<PacketId>,
}

impl SessionState {
    /// Whether there is nothing in it.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.inflight.is_empty() && self.queued.is_empty() && self.inbound_qos2.is_empty()
    }

    /// The session part of a connection's [`ResumeState`] (its
    /// subscriptions are recorded one by one instead).
    #[must_use]
    pub fn from_resume(state: &ResumeState) -> Self {
        Self {
            inflight: state.inflight.clone(),
            queued: state.queued.clone(),
            inbound_qos2: state.inbound_qos2.clone(),
        }
    }
}

/// One entry of a session's queue, as [`Store::load_queue`] gives it back.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueuedMessage {
    /// Its place in the session's queue (grows with every push).
    pub seq: u64,
    /// The stored message it refers to.
    pub message: MessageId,
    /// The message, with the QoS of this entry.
    pub publish: Publish,
}

impl QueuedMessage {
    /// An entry of a queue.
    #[must_use]
    pub fn new(seq: u64, message: MessageId, publish: Publish) -> Self {
        Self {
            seq,
            message,
            publish,
        }
    }
}

/// The durable side of the router.
///
/// The router keeps its working state in memory and records every change a
/// restart must see; after a restart, [`Router::recover`](crate::Router::recover)
/// reads the records once through [`Store::recover`] and
/// [`Store::load_queue`]. Calls are made in the order the changes happen.
///
/// Recording and making durable are separate: the `save_*`, `push_*` and
/// `remove_*` calls may stay in memory (or in an open transaction) until
/// [`Store::commit`], which the adapter triggers through
/// [`Router::commit`](crate::Router::commit) once per batch or time bound,
/// so that many connections' writes share one sync. A crash loses at most
/// what was recorded after the last successful commit; the router tells
/// the adapter which acknowledgements wait for which commit (see
/// [`Router::commit_ticket`](crate::Router::commit_ticket)).
///
/// What is recorded, for persistent (CleanSession 0) sessions, plus
/// retained messages:
/// - subscriptions with their granted QoS, one by one;
/// - queue entries: a message is stored once under a [`MessageId`] and
///   referenced by `(client id, seq)` from every queue that holds it, with
///   the entry's own QoS; the store drops a message with its last
///   reference;
/// - the [`SessionState`] (inflight messages, unsent messages a connection
///   held, inbound QoS 2 ids), replaced as a whole when a connection ends
///   or is checkpointed;
/// - retained messages by topic.
///
/// Every call may fail; the router counts failures in
/// [`RouterStats::store_failures`](crate::RouterStats::store_failures) and
/// carries on with its in-memory state.
pub trait Store {
    /// Why a call failed.
    type Error: core::fmt::Debug;

    /// A subscription was made or its QoS replaced.
    ///
    /// # Errors
    /// When the change could not be recorded.
    fn save_subscription(
        &mut self,
        client_id: &str,
        filter: &Filter,
        qos: QoS,
    ) -> Result<(), Self::Error>;
    /// A subscription was removed.
    ///
    /// # Errors
    /// When the change could not be recorded.
    fn remove_subscription(&mut self, client_id: &str, filter: &Filter) -> Result<(), Self::Error>;
    /// The session's inflight, held and inbound QoS 2 state, replacing any
    /// earlier one (an empty state removes the record).
    ///
    /// # Errors
    /// When the change could not be recorded.
    fn save_session_state(
        &mut self,
        client_id: &str,
        state: &SessionState,
    ) -> Result<(), Self::Error>;
    /// Appends an entry at `seq` (greater than any earlier one of this
    /// client, so never one that exists) to the client's queue, referring
    /// to message `message`,
    /// which is `publish` apart from its QoS: the store keeps the message
    /// once, however many queues refer to it, and the entry's QoS with the
    /// entry.
    ///
    /// # Errors
    /// When the change could not be recorded.
    fn push_queued(
        &mut self,
        client_id: &str,
        seq: u64,
        message: MessageId,
        publish: &Publish,
    ) -> Result<(), Self::Error>;
    /// Removes the entry `seq` of the client's queue (delivered, evicted or
    /// moved into the session state); a message no entry refers to any
    /// more is dropped. Removing an absent entry is not an error.
    ///
    /// # Errors
    /// When the change could not be recorded.
    fn remove_queued(&mut self, client_id: &str, seq: u64) -> Result<(), Self::Error>;
    /// Up to `limit` entries of the client's queue with a seq greater than
    /// `after` (all when `None`), oldest first.
    ///
    /// # Errors
    /// When the records cannot be read.
    fn load_queue(
        &self,
        client_id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<QueuedMessage>, Self::Error>;
    /// The session and everything recorded for it are gone.
    ///
    /// # Errors
    /// When the change could not be recorded.
    fn remove_session(&mut self, client_id: &str) -> Result<(), Self::Error>;
    /// A retained message was stored or replaced for its topic.
    ///
    /// # Errors
    /// When the change could not be recorded.
    fn save_retained(&mut self, publish: &Publish) -> Result<(), Self::Error>;
    /// The retained message of `topic` was deleted.
    ///
    /// # Errors
    /// When the change could not be recorded.
    fn remove_retained(&mut self, topic: &str) -> Result<(), Self::Error>;
    /// Makes everything recorded so far durable, as one unit: after a
    /// crash, either all of it or none of it is found again.
    ///
    /// # Errors
    /// When the records could not be made durable; they may then be lost
    /// in a crash, and the acknowledgements waiting for this commit must
    /// not be sent as if they were safe.
    fn commit(&mut self) -> Result<(), Self::Error>;
    /// Everything recorded, except queue contents (read them with
    /// [`Store::load_queue`]), for a router starting up.
    ///
    /// # Errors
    /// When the records cannot be read.
    fn recover(&self) -> Result<Recovered, Self::Error>;
}

/// What a [`Store`] gives back at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovered {
    /// The persistent sessions, each to be restored offline, in client id
    /// order.
    pub sessions: Vec<RecoveredSession>,
    /// The retained messages, in topic order.
    pub retained: Vec<Publish>,
    /// Above every [`MessageId`] in the records.
    pub next_message_id: MessageId,
}

/// One persistent session as a [`Store`] recorded it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveredSession {
    /// The client id.
    pub client_id: String,
    /// Its subscriptions and their granted QoS, in filter order.
    pub subscriptions: Vec<(Filter, QoS)>,
    /// Its inflight, held and inbound QoS 2 state.
    pub state: SessionState,
    /// The number of entries in its queue.
    pub queue_len: usize,
    /// Above every seq in its queue (0 for an empty one).
    pub next_seq: u64,
}

impl RecoveredSession {
    /// A recovered session with nothing in it yet.
    #[must_use]
    pub fn new(client_id: String) -> Self {
        Self {
            client_id,
            ..Self::default()
        }
    }
}

/// `publish` with the QoS `qos`, its packet id (if any) a placeholder.
#[must_use]
pub fn with_entry_qos(mut publish: Publish, qos: QoS) -> Publish {
    let pid = match publish.qos_pid {
        QosPid::AtLeastOnce(p) | QosPid::ExactlyOnce(p) => p,
        QosPid::AtMostOnce => PacketId::from(core::num::NonZeroU16::MIN),
    };
    publish.qos_pid = match qos {
        QoS::AtMostOnce => QosPid::AtMostOnce,
        QoS::AtLeastOnce => QosPid::AtLeastOnce(pid),
        QoS::ExactlyOnce => QosPid::ExactlyOnce(pid),
    };
    publish
}

/// A [`Store`] in memory, for tests and for brokers without persistence.
/// A commit makes nothing more durable here; it is counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryStore {
    subscriptions: BTreeMap<String, BTreeMap<Filter, QoS>>,
    states: BTreeMap<String, SessionState>,
    /// (client, seq) → (message, entry QoS).
    queues: BTreeMap<(String, u64), (MessageId, QoS)>,
    /// message → (the message, references).
    messages: BTreeMap<MessageId, (Publish, usize)>,
    retained: BTreeMap<String, Publish>,
    commits: u64,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The recorded subscriptions of a client, in filter order.
    #[must_use]
    pub fn subscriptions(&self, client_id: &str) -> Vec<(Filter, QoS)> {
        self.subscriptions
            .get(client_id)
            .map(|m| m.iter().map(|(f, q)| (f.clone(), *q)).collect())
            .unwrap_or_default()
    }

    /// The recorded state of a client, if any.
    #[must_use]
    pub fn session_state(&self, client_id: &str) -> Option<&SessionState> {
        self.states.get(client_id)
    }

    /// The messages recorded as queued for a client, oldest first.
    #[must_use]
    pub fn queued(&self, client_id: &str) -> Vec<Publish> {
        self.entries(client_id)
            .filter_map(|(_, (id, qos))| {
                let (p, _) = self.messages.get(id)?;
                Some(with_entry_qos(p.clone(), *qos))
            })
            .collect()
    }

    /// The number of messages stored, each counted once however many
    /// queues refer to it.
    #[must_use]
    pub fn message_count(&self) -> usize {
        self.messages.len()
    }

    /// The number of queue entries, over all clients.
    #[must_use]
    pub fn queue_entry_count(&self) -> usize {
        self.queues.len()
    }

    /// The number of commits made.
    #[must_use]
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// The recorded retained message of `topic`.
    #[must_use]
    pub fn retained(&self, topic: &str) -> Option<&Publish> {
        self.retained.get(topic)
    }

    /// The number of recorded retained messages.
    #[must_use]
    pub fn retained_len(&self) -> usize {
        self.retained.len()
    }

    /// Whether anything is recorded for `client_id`.
    #[must_use]
    pub fn has_session(&self, client_id: &str) -> bool {
        self.subscriptions.contains_key(client_id)
            || self.states.contains_key(client_id)
            || self.entries(client_id).next().is_some()
    }

    fn entries<'a>(
        &'a self,
        client_id: &str,
    ) -> impl Iterator<Item = (u64, &'a (MessageId, QoS))> + 'a {
        let from = (client_id.to_string(), 0);
        let id = client_id.to_string();
        self.queues
            .range(from..)
            .take_while(move |((c, _), _)| *c == id)
            .map(|((_, seq), v)| (*seq, v))
    }

    fn unref(&mut self, message: MessageId) {
        if let Some((_, refs)) = self.messages.get_mut(&message) {
            *refs = refs.saturating_sub(1);
            if *refs == 0 {
                self.messages.remove(&message);
            }
        }
    }
}

impl Store for MemoryStore {
    type Error = core::convert::Infallible;

    fn save_subscription(
        &mut self,
        client_id: &str,
        filter: &Filter,
        qos: QoS,
    ) -> Result<(), Self::Error> {
        self.subscriptions
            .entry(client_id.to_string())
            .or_default()
            .insert(filter.clone(), qos);
        Ok(())
    }

    fn remove_subscription(&mut self, client_id: &str, filter: &Filter) -> Result<(), Self::Error> {
        if let Some(m) = self.subscriptions.get_mut(client_id) {
            m.remove(filter);
            if m.is_empty() {
                self.subscriptions.remove(client_id);
            }
        }
        Ok(())
    }

    fn save_session_state(
        &mut self,
        client_id: &str,
        state: &SessionState,
    ) -> Result<(), Self::Error> {
        if state.is_empty() {
            self.states.remove(client_id);
        } else {
            self.states.insert(client_id.to_string(), state.clone());
        }
        Ok(())
    }

    fn push_queued(
        &mut self,
        client_id: &str,
        seq: u64,
        message: MessageId,
        publish: &Publish,
    ) -> Result<(), Self::Error> {
        let key = (client_id.to_string(), seq);
        if let Some((old, _)) = self.queues.remove(&key) {
            self.unref(old);
        }
        self.queues.insert(key, (message, publish.qos()));
        self.messages
            .entry(message)
            .or_insert_with(|| (publish.clone(), 0))
            .1 += 1;
        Ok(())
    }

    fn remove_queued(&mut self, client_id: &str, seq: u64) -> Result<(), Self::Error> {
        if let Some((message, _)) = self.queues.remove(&(client_id.to_string(), seq)) {
            self.unref(message);
        }
        Ok(())
    }

    fn load_queue(
        &self,
        client_id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<QueuedMessage>, Self::Error> {
        Ok(self
            .entries(client_id)
            .filter(|(seq, _)| after.is_none_or(|a| *seq > a))
            .filter_map(|(seq, (id, qos))| {
                let (p, _) = self.messages.get(id)?;
                Some(QueuedMessage::new(
                    seq,
                    *id,
                    with_entry_qos(p.clone(), *qos),
                ))
            })
            .take(limit)
            .collect())
    }

    fn remove_session(&mut self, client_id: &str) -> Result<(), Self::Error> {
        self.subscriptions.remove(client_id);
        self.states.remove(client_id);
        let seqs: Vec<u64> = self.entries(client_id).map(|(s, _)| s).collect();
        for seq in seqs {
            self.remove_queued(client_id, seq)?;
        }
        Ok(())
    }

    fn save_retained(&mut self, publish: &Publish) -> Result<(), Self::Error> {
        self.retained
            .insert(publish.topic.as_str().to_string(), publish.clone());
        Ok(())
    }

    fn remove_retained(&mut self, topic: &str) -> Result<(), Self::Error> {
        self.retained.remove(topic);
        Ok(())
    }

    fn commit(&mut self) -> Result<(), Self::Error> {
        self.commits = self.commits.saturating_add(1);
        Ok(())
    }

    fn recover(&self) -> Result<Recovered, Self::Error> {
        let ids: BTreeSet<&String> = self
            .subscriptions
            .keys()
            .chain(self.states.keys())
            .chain(self.queues.keys().map(|(c, _)| c))
            .collect();
        let sessions = ids
            .into_iter()
            .map(|id| {
                let mut s = RecoveredSession::new(id.clone());
                s.subscriptions = self.subscriptions(id);
                s.state = self.states.get(id).cloned().unwrap_or_default();
                let seqs: Vec<u64> = self.entries(id).map(|(seq, _)| seq).collect();
                s.queue_len = seqs.len();
                s.next_seq = seqs.last().map_or(0, |l| l.saturating_add(1));
                s
            })
            .collect();
        Ok(Recovered {
            sessions,
            retained: self.retained.values().cloned().collect(),
            next_message_id: self
                .messages
                .keys()
                .next_back()
                .map_or(0, |l| l.saturating_add(1)),
        })
    }
}
