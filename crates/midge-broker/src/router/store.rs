//! [`Store`]: where the router records what a persistent session must not
//! lose, and [`MemoryStore`], the in-memory implementation.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use midge_codec::{Filter, Publish, QoS};

use crate::event::ResumeState;

/// The durable side of the router. The router keeps everything in memory as
/// well and reads the store only once, through [`Store::recover`] when
/// [`Router::recover`](crate::Router::recover) is called after a restart.
/// Calls are made in the order the changes happen.
///
/// What a store can give back is what it was told: subscriptions, the
/// offline state of sessions that were offline, and retained messages. The
/// inflight messages of a session that was connected at the moment of a
/// crash live in its `ServerSession` and are not recorded.
///
/// The router calls it for persistent (CleanSession 0) sessions only, plus
/// for retained messages, at these points:
/// - a subscription is made or replaced, or removed;
/// - a QoS 1/2 message (or QoS 0 when configured) is queued for an offline
///   session, or evicted from that queue by the overflow policy;
/// - a connection of a persistent session ends: its inflight and queued
///   messages and inbound QoS 2 ids are saved as the offline snapshot;
/// - a session resumes (the snapshot moves to the connection) or ends.
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
    /// A persistent session went offline with this state (its
    /// `subscriptions` field is left empty: subscriptions are saved one by
    /// one). Replaces any earlier snapshot.
    ///
    /// # Errors
    /// When the change could not be recorded.
    fn save_offline(&mut self, client_id: &str, state: &ResumeState) -> Result<(), Self::Error>;
    /// A message was appended to an offline session's queue.
    ///
    /// # Errors
    /// When the change could not be recorded.
    fn push_queued(&mut self, client_id: &str, publish: &Publish) -> Result<(), Self::Error>;
    /// The oldest queued message of an offline session was evicted.
    ///
    /// # Errors
    /// When the change could not be recorded.
    fn pop_queued(&mut self, client_id: &str) -> Result<(), Self::Error>;
    /// The offline snapshot was handed to a new connection.
    ///
    /// # Errors
    /// When the change could not be recorded.
    fn take_offline(&mut self, client_id: &str) -> Result<(), Self::Error>;
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
    /// Everything recorded, for a router starting up.
    ///
    /// # Errors
    /// When the records cannot be read.
    fn recover(&self) -> Result<Recovered, Self::Error>;
}

/// What a [`Store`] gives back at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovered {
    /// The persistent sessions, each to be restored offline.
    pub sessions: Vec<RecoveredSession>,
    /// The retained messages.
    pub retained: Vec<Publish>,
}

/// One persistent session as a [`Store`] recorded it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveredSession {
    /// The client id.
    pub client_id: String,
    /// Its subscriptions and their granted QoS.
    pub subscriptions: Vec<(Filter, QoS)>,
    /// Its offline state (inflight, queued and inbound QoS 2 ids; the
    /// `subscriptions` field is not used).
    pub state: ResumeState,
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

/// A [`Store`] in memory, for tests and for brokers without persistence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryStore {
    subscriptions: BTreeMap<String, BTreeMap<Filter, QoS>>,
    offline: BTreeMap<String, ResumeState>,
    queued: BTreeMap<String, VecDeque<Publish>>,
    retained: BTreeMap<String, Publish>,
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

    /// The recorded offline snapshot of a client, if any.
    #[must_use]
    pub fn offline(&self, client_id: &str) -> Option<&ResumeState> {
        self.offline.get(client_id)
    }

    /// The messages recorded as queued for an offline client, oldest first.
    #[must_use]
    pub fn queued(&self, client_id: &str) -> Vec<Publish> {
        self.queued
            .get(client_id)
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
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
            || self.offline.contains_key(client_id)
            || self.queued.contains_key(client_id)
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

    fn save_offline(&mut self, client_id: &str, state: &ResumeState) -> Result<(), Self::Error> {
        self.offline.insert(client_id.to_string(), state.clone());
        self.queued.remove(client_id);
        Ok(())
    }

    fn push_queued(&mut self, client_id: &str, publish: &Publish) -> Result<(), Self::Error> {
        self.queued
            .entry(client_id.to_string())
            .or_default()
            .push_back(publish.clone());
        Ok(())
    }

    fn pop_queued(&mut self, client_id: &str) -> Result<(), Self::Error> {
        // The snapshot's own queue is older than the pushed messages.
        if let Some(state) = self.offline.get_mut(client_id) {
            if !state.queued.is_empty() {
                state.queued.remove(0);
                return Ok(());
            }
        }
        if let Some(q) = self.queued.get_mut(client_id) {
            q.pop_front();
        }
        Ok(())
    }

    fn take_offline(&mut self, client_id: &str) -> Result<(), Self::Error> {
        self.offline.remove(client_id);
        self.queued.remove(client_id);
        Ok(())
    }

    fn remove_session(&mut self, client_id: &str) -> Result<(), Self::Error> {
        self.subscriptions.remove(client_id);
        self.offline.remove(client_id);
        self.queued.remove(client_id);
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

    fn recover(&self) -> Result<Recovered, Self::Error> {
        let mut sessions: BTreeMap<&str, RecoveredSession> = BTreeMap::new();
        let ids = self
            .subscriptions
            .keys()
            .chain(self.offline.keys())
            .chain(self.queued.keys());
        for id in ids {
            sessions
                .entry(id.as_str())
                .or_insert_with(|| RecoveredSession::new(id.clone()));
        }
        for (id, session) in &mut sessions {
            session.subscriptions = self.subscriptions(id);
            if let Some(state) = self.offline.get(*id) {
                session.state = state.clone();
            }
            session.state.queued.extend(self.queued(id));
        }
        Ok(Recovered {
            sessions: sessions.into_values().collect(),
            retained: self.retained.values().cloned().collect(),
        })
    }
}
