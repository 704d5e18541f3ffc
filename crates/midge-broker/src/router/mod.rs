//! The [`Router`]: the broker's sessions registry, subscriptions, retained
//! messages and wills, as one sans-IO machine.
//!
//! What it does: takes over a client id that connects again [MQTT-3.1.4-2];
//! keeps persistent sessions (subscriptions, inflight and queued QoS 1/2
//! messages) while they are offline [MQTT-3.1.2-4] [MQTT-3.1.2-5] and
//! discards clean ones [MQTT-3.1.2-6]; matches publications with the
//! `midge-topic` index (so `$` topics escape leading wildcards) and delivers
//! each once per session at the highest granted QoS [MQTT-3.3.5-1]; stores,
//! replaces and deletes retained messages [MQTT-3.3.1-5] [MQTT-3.3.1-10];
//! publishes wills on an abnormal close only [MQTT-3.1.2-8]; shares
//! `$share/{group}/{filter}` subscriptions round robin, connected members
//! first (a share group is a subscription of its own: a member that also
//! holds a plain matching subscription gets both copies; when a clean
//! member's connection ends, the group's messages it had not acknowledged
//! go to another member, while a persistent member keeps them for its
//! return); calls an [`Auth`]
//! hook and records durable state through a [`Store`]. Every table has a
//! limit in [`RouterConfig`], and every drop is counted in [`RouterStats`].
//!
//! What it deliberately does not do: talk to sockets, read a clock, speak
//! the wire protocol (each connection's [`ServerSession`] does that), or
//! run threads and channels: spreading shards over cores is the adapter's
//! business.
//!
//! # Shards
//!
//! With the default [`RouterConfig::shards`] of 1, one `Router` holds
//! everything and never produces a [`ShardMessage`]. With `n` shards, the
//! adapter runs `n` routers (`shard` 0 to `n - 1`) and follows the design of
//! `ARCHITECTURE.md`, "The router across cores":
//!
//! - a CONNECT goes to the shard [`shard_of`] its client id names (a
//!   CONNECT on another shard is refused with 0x03), so takeover stays on
//!   one shard, which owns the session, its offline queue and its will;
//! - every shard keeps a replica of the subscription index: a subscribe or
//!   unsubscribe is applied locally and broadcast;
//! - a publish is matched on its publisher's shard, which sends one
//!   [`ShardMessage::Deliver`] (naming the publisher) per target shard;
//!   channels between two shards must be FIFO, which keeps each
//!   publisher's order per topic [MQTT-4.6.0-5];
//! - back-pressure crosses shards: a target's shard tells a remote
//!   publisher's shard to pause it ([`ShardMessage::CongestedBy`]) and,
//!   once the target drains or closes, to let it go
//!   ([`ShardMessage::Drained`]);
//! - a retained message is stored by the shard that owns its topic, and a
//!   new subscription asks every shard for its matching retained messages;
//! - a share group is served by the shard that owns `group/filter`, which
//!   learns which members are connected from [`ShardMessage::Presence`].
//!
//! After every input the adapter drains [`Router::poll_shard_message`] and
//! hands each message to its addressee's [`Router::handle_shard_message`].
//! Limits such as `max_connections` then apply per shard.
//!
//! # Driving it
//!
//! The adapter gives every connection a [`ConnId`] and forwards each
//! [`Event`] of its [`ServerSession`] to the matching `handle_*` method,
//! then drains [`Router::poll_action`] and applies each [`Action`] to the
//! session it names. [`Action::Close`] (a takeover) must be applied, and
//! the closed session's [`Event::Closed`] forwarded with its
//! [`ServerSession::into_resume_state`]: the new connection's
//! [`Action::Accept`] comes only then, carrying the old connection's
//! inflight state.
//!
//! After applying an [`Action::Deliver`], the adapter reports the outcome
//! with [`Router::handle_delivery`] and forwards a session's
//! [`Event::Drained`] to [`Router::handle_drained`];
//! under [`SlowSubscriberPolicy::BackPressure`] the router answers with
//! [`Action::PausePublisher`] and [`Action::ResumePublisher`] (see the
//! [crate documentation](crate) for the adapter's duties).
//!
//! Routing is synchronous: when `handle_publish` returns, the message has
//! been handed out, queued (and recorded in the [`Store`]) or counted as
//! dropped, or (with several shards) put in shard messages, so a driver
//! using
//! [`ServerConfig::ack_after_route`](crate::ServerConfig::ack_after_route)
//! may acknowledge it once those are handed over (with durability on, once
//! they are also committed: see below).
//!
//! # Durability
//!
//! The router records in its [`Store`] what a restart must find: the
//! subscriptions of persistent sessions, their queues (each message stored
//! once under a [`MessageId`] and referenced from every queue that holds
//! it), the state a connection hands back when it ends (inflight messages
//! with their packet ids, unsent messages, inbound QoS 2 ids), and retained
//! messages. Recording is not yet durability: the adapter makes the records
//! durable with [`Router::commit`], one store commit (one sync) for every
//! change since the last one, on a timer or after a batch. A durable
//! adapter's duties:
//!
//! 1. after [`Router::recover`] at start-up, route as usual;
//! 2. after handing an [`Event::Publish`] carrying an
//!    [`AckToken`](crate::AckToken) to [`Router::handle_publish`], read
//!    [`Router::commit_ticket`]: with `Some(ticket)`, hold the token until
//!    [`Router::is_committed`] says so (the PUBACK or PUBREC waits for the
//!    commit that holds the message); with `None`, acknowledge at once;
//! 3. with [`RouterConfig::record_online`], messages handed to connected
//!    persistent sessions are recorded too; before each commit, call
//!    [`Router::checkpoint`] with
//!    [`ServerSession::resume_snapshot`](crate::ServerSession::resume_snapshot)
//!    and the number of [`Action::Deliver`]s applied to that session since
//!    its accept, for each connected persistent session whose state changed
//!    since its last checkpoint (a packet read or a delivery applied), so
//!    that inflight packet ids, PUBREL state and inbound QoS 2 ids survive a
//!    crash and the records of the deliveries the snapshot holds are
//!    replaced by it;
//! 4. call [`Router::commit`] within the configured bound (for example every
//!    1–5 ms while [`Router::commit_ticket`] is `Some`), then release the
//!    held acknowledgements whose tickets are committed; on an error keep
//!    them held and try again;
//! 5. with [`RouterConfig::offline_memory_messages`], keep calling
//!    [`Router::handle_delivery`] and [`Router::handle_drained`] as for
//!    back-pressure: they pace the streaming of a resumed session's queue
//!    from the store.
//!
//! With several shards, each shard has a store of its own, and a message
//! delivered through another shard is recorded there: the publisher's
//! acknowledgement must also wait for a commit of every shard it sent
//! [`ShardMessage::Deliver`] to, issued after that message (a commit request
//! sent through the same FIFO channels does it).
//!
//! Key types: [`Router`], [`RouterConfig`], [`Action`], [`ConnId`],
//! [`ConnectRequest`], [`RouterStats`], [`Auth`], [`Store`],
//! [`MemoryStore`], [`CommitTicket`], [`ShardMessage`], [`ShardConn`].
//!
//! [`ServerSession`]: crate::ServerSession
//! [`ServerSession::into_resume_state`]: crate::ServerSession::into_resume_state
//! [`Event`]: crate::Event
//! [`Event::Closed`]: crate::Event::Closed
//! [`Event::Drained`]: crate::Event::Drained

mod auth;
mod shard;
mod store;

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::num::NonZeroU16;

use bytes::Bytes;
use midge_codec::{
    ConnectReturnCode, Filter, LastWill, MqttString, PacketId, Publish, QoS, QosPid,
    SubscribeFilter, SubscribeReturnCode,
};
use midge_time::{Duration, Instant};
use midge_topic::{matches_str, SubscriptionFilter, SubscriptionIndex, TopicFilter};

pub use auth::{AllowAll, Auth};
pub use shard::{shard_of, ShardConn, ShardMessage};
pub use store::{
    with_entry_qos, MemoryStore, MessageId, QueuedMessage, Recovered, RecoveredSession,
    SessionState, Store,
};

use crate::config::{OverflowPolicy, SlowSubscriberPolicy};
use crate::event::{DeliverOutcome, DropReason, Event, InflightMessage, ResumeState};

/// The adapter's name for one connection (one [`ServerSession`](crate::ServerSession)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// The limits and switches of a [`Router`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterConfig {
    /// Connections accepted at once; one more CONNECT is refused with 0x03
    /// (server unavailable), counted in [`RouterStats::refused_connections`].
    /// A takeover of a connected client id does not count as one more.
    /// Default 10 000.
    pub max_connections: usize,
    /// Sessions kept at once, online and offline; a CONNECT that would
    /// create one more is refused with 0x03, counted in
    /// [`RouterStats::refused_connections`]. With `session_expiry`, this
    /// bounds the memory abandoned persistent sessions hold. Default 100 000.
    pub max_sessions: usize,
    /// Subscriptions one client may hold; a new filter beyond it gets 0x80,
    /// counted in [`RouterStats::refused_subscriptions`]. Default 1000.
    pub max_subscriptions_per_client: usize,
    /// Messages kept for one offline persistent session (its queue plus its
    /// inflight messages). At the limit, `offline_overflow` applies.
    /// Default 1000.
    pub max_offline_messages: usize,
    /// Topic and payload bytes kept for one offline session. At the limit,
    /// `offline_overflow` applies. Default 16 MiB.
    pub max_offline_bytes: usize,
    /// Which message goes at a full offline queue: the new one
    /// ([`OverflowPolicy::DropNewest`], counted in
    /// [`RouterStats::offline_dropped_newest`]) or the oldest queued ones
    /// ([`OverflowPolicy::DropOldest`], counted in
    /// [`RouterStats::offline_dropped_oldest`]). Inflight messages are never
    /// evicted. Default `DropNewest`.
    pub offline_overflow: OverflowPolicy,
    /// Whether QoS 0 messages are queued for offline persistent sessions
    /// too. Default false (they are dropped, counted in
    /// [`RouterStats::offline_dropped_qos0`]).
    pub queue_qos0_offline: bool,
    /// Whether clients may publish to topics starting with `$SYS`. When
    /// false (the default), such messages are dropped and counted in
    /// [`RouterStats::sys_publishes_dropped`].
    pub allow_client_sys_publish: bool,
    /// Retained messages kept at once; a retained message for one more topic
    /// is forwarded but not stored, counted in
    /// [`RouterStats::retained_refused`]. Replacing or deleting is always
    /// possible. Default 100 000.
    pub max_retained_messages: usize,
    /// Topic and payload bytes of the retained messages kept at once. A
    /// retained message that does not fit is forwarded but not stored; if it
    /// would have replaced one, that one is deleted rather than left stale.
    /// Both count in [`RouterStats::retained_refused`]. Default 64 MiB.
    pub max_retained_bytes: usize,
    /// How long an abandoned persistent session is kept after its
    /// connection ends; `None` (the default) keeps it until the client
    /// connects with CleanSession 1.
    pub session_expiry: Option<Duration>,
    /// The number of router shards the adapter runs (see
    /// [`Router::poll_shard_message`]); 0 is taken as 1. Default 1: one
    /// router holds everything and never sends a [`ShardMessage`]. With
    /// more, `max_connections`, `max_sessions` and `max_retained_messages`
    /// apply per shard.
    pub shards: u32,
    /// This router's shard number, below `shards`. Default 0.
    pub shard: u32,
    /// What to do about a subscriber that reads more slowly than its
    /// publishers write (see [`Router::handle_delivery`]). Default
    /// [`SlowSubscriberPolicy::BackPressure`]: no message is lost to a
    /// merely slow subscriber.
    pub slow_subscriber: SlowSubscriberPolicy,
    /// Whether the messages handed to a connected persistent session are
    /// recorded in the [`Store`] too (as queue entries, until
    /// [`Router::checkpoint`] or the end of the connection replaces them
    /// with the session's state), so that what a publisher had
    /// acknowledged survives a crash while the subscriber is connected.
    /// Turn it on with a durable store, and then checkpoint connected
    /// persistent sessions before every commit. Default false: connected
    /// sessions' messages live in their `ServerSession` only.
    pub record_online: bool,
    /// Queue entries of one offline persistent session kept in memory (the
    /// oldest ones); the newer ones stay in the [`Store`] only and are
    /// streamed back after the session resumes, this many at a time, as
    /// its connection drains. With a durable store, this bounds the memory
    /// of many offline sessions with long queues. `max_offline_messages`
    /// and `max_offline_bytes` still bound each queue as a whole. Default
    /// `usize::MAX`: everything stays in memory as well.
    pub offline_memory_messages: usize,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_sessions: 100_000,
            max_subscriptions_per_client: 1000,
            max_offline_messages: 1000,
            max_offline_bytes: 16 * 1024 * 1024,
            offline_overflow: OverflowPolicy::DropNewest,
            queue_qos0_offline: false,
            allow_client_sys_publish: false,
            max_retained_messages: 100_000,
            max_retained_bytes: 64 * 1024 * 1024,
            session_expiry: None,
            shards: 1,
            shard: 0,
            slow_subscriber: SlowSubscriberPolicy::BackPressure,
            record_online: false,
            offline_memory_messages: usize::MAX,
        }
    }
}

/// Counters of a [`Router`]: every message or request it does not carry out
/// is counted here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouterStats {
    /// CONNECTs refused for `max_connections` or `max_sessions`.
    pub refused_connections: u64,
    /// CONNECTs refused by [`Auth::connect`].
    pub denied_connections: u64,
    /// Publications dropped because [`Auth::may_publish`] said no.
    pub denied_publishes: u64,
    /// SUBSCRIBE filters refused by [`Auth::may_subscribe`].
    pub denied_subscriptions: u64,
    /// SUBSCRIBE filters refused by `max_subscriptions_per_client` or as
    /// malformed shared subscriptions.
    pub refused_subscriptions: u64,
    /// Client publications to `$SYS` topics dropped.
    pub sys_publishes_dropped: u64,
    /// Retained messages not stored because of `max_retained_messages` or
    /// `max_retained_bytes`.
    pub retained_refused: u64,
    /// New messages dropped at a full offline queue.
    pub offline_dropped_newest: u64,
    /// Queued messages evicted from a full offline queue.
    pub offline_dropped_oldest: u64,
    /// QoS 0 messages not queued for offline sessions.
    pub offline_dropped_qos0: u64,
    /// Persistent sessions removed by `session_expiry`.
    pub expired_sessions: u64,
    /// Wills published.
    pub wills_published: u64,
    /// Messages of a closed clean share-group member sent to another member.
    pub shared_redispatched: u64,
    /// Messages of a closed clean share-group member that no live member
    /// could take; dropped.
    pub shared_lost: u64,
    /// Unacknowledged messages discarded with a clean session.
    pub clean_session_discarded: u64,
    /// [`Store`] calls that failed. The router's own memory stays
    /// authoritative while it runs; what failed to be recorded would be
    /// missing after a restart.
    pub store_failures: u64,
    /// [`Store`] calls made (each a change to be committed).
    pub store_writes: u64,
    /// Successful [`Store::commit`]s through [`Router::commit`].
    pub store_commits: u64,
    /// Queue entries kept in the store only, beyond the in-memory share of
    /// offline queues (see [`RouterConfig::offline_memory_messages`]).
    pub spilled_messages: u64,
    /// Queue entries read back from the store for resumed sessions.
    pub streamed_messages: u64,
    /// Events for connections the router does not know (ignored).
    pub unknown_connections: u64,
    /// CONNECTs refused because the client id belongs to another shard
    /// (the adapter routed it wrongly); answered with 0x03.
    pub wrong_shard: u64,
    /// Messages from another shard for a client this shard no longer has
    /// (its session ended while the message travelled); dropped.
    pub stale_deliveries: u64,
    /// Messages a session refused or evicted (under
    /// [`OverflowPolicy::DropOldest`]), as reported to
    /// [`Router::handle_delivery`] (each also reported as
    /// [`Action::DeliveryDropped`]).
    pub delivery_drops: u64,
    /// [`Action::PausePublisher`] decisions taken.
    pub publisher_pauses: u64,
}

/// The fields of [`Event::ConnectRequest`] the router needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    /// The client id (generated or not).
    pub client_id: MqttString,
    /// The CleanSession flag.
    pub clean_session: bool,
    /// The will, if any.
    pub will: Option<LastWill>,
    /// The user name, if any.
    pub username: Option<MqttString>,
    /// The password, if any.
    pub password: Option<Bytes>,
    /// Whether `username` was set by the adapter from a verified client
    /// certificate (a TLS listener using the certificate's name as the
    /// user name) rather than taken from CONNECT: the router then asks
    /// [`Auth::connect_certified`] instead of [`Auth::connect`].
    pub username_from_certificate: bool,
}

impl ConnectRequest {
    /// A request without will or credentials.
    #[must_use]
    pub fn new(client_id: MqttString, clean_session: bool) -> Self {
        Self {
            client_id,
            clean_session,
            will: None,
            username: None,
            password: None,
            username_from_certificate: false,
        }
    }

    /// The request inside an [`Event::ConnectRequest`]; `None` for any
    /// other event.
    #[must_use]
    pub fn from_event(event: &Event) -> Option<Self> {
        match event {
            Event::ConnectRequest {
                client_id,
                clean_session,
                will,
                username,
                password,
                ..
            } => Some(Self {
                client_id: client_id.clone(),
                clean_session: *clean_session,
                will: will.clone(),
                username: username.clone(),
                password: password.clone(),
                username_from_certificate: false,
            }),
            _ => None,
        }
    }
}

/// A decision for one connection's [`ServerSession`](crate::ServerSession);
/// drain with [`Router::poll_action`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Call [`accept`](crate::ServerSession::accept) with these values.
    Accept {
        /// The connection.
        conn: ConnId,
        /// Whether a stored session was resumed [MQTT-3.2.2-2].
        session_present: bool,
        /// The stored state, queued messages included.
        resume: ResumeState,
    },
    /// Call [`refuse`](crate::ServerSession::refuse) with `code`.
    Refuse {
        /// The connection.
        conn: ConnId,
        /// The CONNACK return code.
        code: ConnectReturnCode,
    },
    /// Call [`suback`](crate::ServerSession::suback).
    SubAck {
        /// The connection.
        conn: ConnId,
        /// The SUBSCRIBE's packet id.
        packet_id: PacketId,
        /// One code per filter handed to [`Router::handle_subscribe`].
        results: Vec<SubscribeReturnCode>,
    },
    /// Call [`deliver`](crate::ServerSession::deliver). The QoS is already
    /// the granted one; its packet id is a placeholder the session replaces.
    Deliver {
        /// The connection.
        conn: ConnId,
        /// The message.
        publish: Publish,
    },
    /// Call [`close`](crate::ServerSession::close) (a takeover), then
    /// forward the session's `Event::Closed` as usual.
    Close {
        /// The connection.
        conn: ConnId,
    },
    /// Stop reading from this connection's transport (under
    /// [`SlowSubscriberPolicy::BackPressure`]), so that the transport's own
    /// flow control slows its client down. Bytes already read are still
    /// handed to its session. Keep polling its session's outputs and
    /// timers: only reading stops.
    PausePublisher {
        /// The publishing connection.
        conn: ConnId,
    },
    /// Read from this connection's transport again, after a
    /// [`Action::PausePublisher`].
    ResumePublisher {
        /// The publishing connection.
        conn: ConnId,
    },
    /// A session refused a message, or evicted an older one for it
    /// ([`DropReason::EvictedOldest`]; see [`Router::handle_delivery`]);
    /// counted in [`RouterStats::delivery_drops`]. Nothing to apply: the
    /// adapter logs it.
    DeliveryDropped {
        /// The connection whose session refused the message.
        conn: ConnId,
        /// The connection that published it, when the adapter knew.
        publisher: Option<ConnId>,
        /// Why it was refused.
        reason: DropReason,
    },
}

/// Where a session's connection stands.
#[derive(Debug, Clone)]
enum Link {
    /// Connected on this connection.
    Online(ConnId),
    /// No connection since this instant (persistent sessions only).
    Offline(Instant),
    /// `old` was told to close; `new` is accepted once it has.
    Handover {
        old: ConnId,
        new: ConnId,
        request: ConnectRequest,
    },
}

#[derive(Debug, Clone)]
struct Session {
    clean: bool,
    link: Link,
    username: Option<String>,
    will: Option<LastWill>,
    subs: BTreeMap<Filter, QoS>,
    /// Offline state: inflight, queued, inbound QoS 2 ids. The first
    /// `offline.queued.len() - queue_refs.len()` queued messages are held
    /// in the recorded [`SessionState`]; the others are queue entries.
    offline: ResumeState,
    offline_bytes: usize,
    /// The store's (seq, message) of the last queued messages.
    queue_refs: VecDeque<(u64, MessageId)>,
    /// Queue entries recorded for messages handed to the connection since
    /// the session state was last recorded: (the number of `Deliver`
    /// actions emitted for the connection up to and including this one, 0
    /// for those handed over with the accept; seq).
    journal: Vec<(u64, u64)>,
    /// `Deliver` actions emitted for the current connection.
    delivered: u64,
    /// The next queue seq.
    next_seq: u64,
    /// Queue entries newer than the in-memory ones, kept in the store
    /// only, and their bytes (part of `offline_bytes`).
    spilled: usize,
    spilled_bytes: usize,
    /// While a resumed session's spilled entries are streamed to it.
    stream: Option<Stream>,
}

/// Streaming a resumed session's spilled queue entries.
#[derive(Debug, Clone, Copy)]
struct Stream {
    /// The seq of the last entry handed out.
    after: Option<u64>,
    /// Deliveries handed out and not yet reported.
    unreported: usize,
}

impl Session {
    fn new(clean: bool, link: Link) -> Self {
        Self {
            clean,
            link,
            username: None,
            will: None,
            subs: BTreeMap::new(),
            offline: ResumeState::default(),
            offline_bytes: 0,
            queue_refs: VecDeque::new(),
            journal: Vec::new(),
            delivered: 0,
            next_seq: 0,
            spilled: 0,
            spilled_bytes: 0,
            stream: None,
        }
    }

    /// How many of the first queued messages the recorded state holds.
    fn held(&self) -> usize {
        self.offline
            .queued
            .len()
            .saturating_sub(self.queue_refs.len())
    }

    /// The state record of an offline session.
    fn held_state(&self) -> SessionState {
        let mut state = SessionState::default();
        state.inflight.clone_from(&self.offline.inflight);
        state.inbound_qos2.clone_from(&self.offline.inbound_qos2);
        state.queued = self
            .offline
            .queued
            .iter()
            .take(self.held())
            .cloned()
            .collect();
        state
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq = seq.saturating_add(1);
        seq
    }

    fn online(&self) -> Option<ConnId> {
        match self.link {
            Link::Online(conn) => Some(conn),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct ShareGroup {
    /// Members and their granted QoS, in subscription order.
    members: Vec<(String, QoS)>,
    /// Round-robin position.
    next: usize,
}

/// The broker's router, or one shard of it (see the module documentation).
#[derive(Debug)]
pub struct Router<S: Store, A: Auth> {
    config: RouterConfig,
    store: S,
    auth: A,
    sessions: BTreeMap<String, Session>,
    conns: BTreeMap<ConnId, String>,
    index: SubscriptionIndex<String, QoS>,
    /// Share groups by (group, filter).
    groups: BTreeMap<(String, String), ShareGroup>,
    /// The filters of the share groups; the key is the group name.
    shared_index: SubscriptionIndex<String, ()>,
    retained: BTreeMap<String, Publish>,
    /// Topic and payload bytes in `retained`.
    retained_bytes: usize,
    /// Share-group members that are connected, on any shard.
    members_online: BTreeSet<String>,
    actions: VecDeque<Action>,
    outbox: VecDeque<(u32, ShardMessage)>,
    /// Back-pressure: each publisher connection and the congested target
    /// connections it fed.
    feeds: BTreeMap<ConnId, BTreeSet<ConnId>>,
    /// Back-pressure: each congested target connection and the publisher
    /// connections that fed it while congested.
    congested: BTreeMap<ConnId, BTreeSet<ConnId>>,
    /// Publisher connections told to pause and not yet resumed.
    paused: BTreeSet<ConnId>,
    /// Back-pressure across shards, on a target's shard: each congested
    /// target connection and the other shards' publishers it holds back.
    remote_fed: BTreeMap<ConnId, BTreeSet<ShardConn>>,
    /// Back-pressure across shards, on a publisher's shard: each publisher
    /// connection and the other shards' congested targets holding it back.
    held_remotely: BTreeMap<ConnId, BTreeSet<ShardConn>>,
    /// With several shards: per target connection, the publisher of each
    /// [`Action::Deliver`] not produced by `handle_publish` and not yet
    /// reported to `handle_delivery`, oldest first.
    origins: BTreeMap<ConnId, VecDeque<Option<ShardConn>>>,
    /// The connection whose publish is being routed (inside
    /// `handle_publish`).
    publishing: Option<ConnId>,
    /// The publisher of the shard message being handled.
    origin: Option<ShardConn>,
    /// The next [`MessageId`], and the last message given one (shared by
    /// every queue it goes to).
    next_message_id: MessageId,
    last_message: Option<(MessageId, Publish)>,
    /// `stats.store_writes` at the last successful commit.
    committed: u64,
    stats: RouterStats,
}

/// A point in the router's stream of [`Store`] changes, from
/// [`Router::commit_ticket`]: an acknowledgement that waits for it may be
/// sent once [`Router::is_committed`] says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommitTicket(u64);

impl RouterStats {
    /// Counts a store call.
    fn record<E>(&mut self, result: Result<(), E>) {
        self.store_writes = self.store_writes.saturating_add(1);
        self.store_failures = self.store_failures.saturating_add(failed(result));
    }
}

/// The id of `publish` for the store: the last message's when it is the
/// same message (fan-out), a new one otherwise.
fn message_id(
    next: &mut MessageId,
    last: &mut Option<(MessageId, Publish)>,
    publish: &Publish,
) -> MessageId {
    if let Some((id, p)) = last {
        if p.topic == publish.topic && p.retain == publish.retain && p.payload == publish.payload {
            return *id;
        }
    }
    let id = *next;
    *next = id.saturating_add(1);
    *last = Some((id, publish.clone()));
    id
}

/// Unreported deliveries whose publisher a target's queue remembers (see
/// `Router::note_origin`).
const MAX_PENDING_ORIGINS: usize = 65_536;

/// The packet id of a message the router hands out; the session assigns
/// the real one.
fn placeholder_pid() -> PacketId {
    PacketId::from(NonZeroU16::MIN)
}

fn with_qos(mut publish: Publish, qos: QoS) -> Publish {
    publish.dup = false;
    publish.qos_pid = match qos {
        QoS::AtMostOnce => QosPid::AtMostOnce,
        QoS::AtLeastOnce => QosPid::AtLeastOnce(placeholder_pid()),
        QoS::ExactlyOnce => QosPid::ExactlyOnce(placeholder_pid()),
    };
    publish
}

/// 1 for a failed store call, 0 otherwise.
fn failed<E>(result: Result<(), E>) -> u64 {
    u64::from(result.is_err())
}

fn message_bytes(publish: &Publish) -> usize {
    publish.topic.len().saturating_add(publish.payload.len())
}

fn state_bytes(state: &ResumeState) -> usize {
    let inflight = state.inflight.iter().map(|m| match m {
        InflightMessage::Publish(p) => message_bytes(p),
        InflightMessage::PubRel(_) => 0,
    });
    inflight
        .chain(state.queued.iter().map(message_bytes))
        .fold(0, usize::saturating_add)
}

impl<S: Store, A: Auth> Router<S, A> {
    /// A router with no sessions.
    pub fn new(config: RouterConfig, store: S, auth: A) -> Self {
        Self {
            config,
            store,
            auth,
            sessions: BTreeMap::new(),
            conns: BTreeMap::new(),
            index: SubscriptionIndex::new(),
            groups: BTreeMap::new(),
            shared_index: SubscriptionIndex::new(),
            retained: BTreeMap::new(),
            retained_bytes: 0,
            members_online: BTreeSet::new(),
            actions: VecDeque::new(),
            outbox: VecDeque::new(),
            feeds: BTreeMap::new(),
            congested: BTreeMap::new(),
            paused: BTreeSet::new(),
            remote_fed: BTreeMap::new(),
            held_remotely: BTreeMap::new(),
            origins: BTreeMap::new(),
            publishing: None,
            origin: None,
            next_message_id: 0,
            last_message: None,
            committed: 0,
            stats: RouterStats::default(),
        }
    }

    // ----- shards -------------------------------------------------------

    fn shards(&self) -> u32 {
        self.config.shards.max(1)
    }

    fn me(&self) -> u32 {
        self.config.shard
    }

    /// The shard that owns a client's session.
    fn client_shard(&self, client_id: &str) -> u32 {
        shard_of(client_id, self.shards())
    }

    /// The shard that owns a share group.
    fn group_shard(&self, key: &(String, String)) -> u32 {
        let mut name = String::with_capacity(key.0.len() + key.1.len() + 1);
        name.push_str(&key.0);
        name.push('/');
        name.push_str(&key.1);
        shard_of(&name, self.shards())
    }

    /// Queues `message` for every other shard.
    fn broadcast(&mut self, message: &ShardMessage) {
        let me = self.me();
        for shard in (0..self.shards()).filter(|s| *s != me) {
            self.outbox.push_back((shard, message.clone()));
        }
    }

    /// Tells every shard whether a share-group member is connected.
    fn set_presence(&mut self, client_id: &str, online: bool) {
        let changed = if online {
            self.members_online.insert(client_id.to_string())
        } else {
            self.members_online.remove(client_id)
        };
        if changed {
            self.broadcast(&ShardMessage::Presence {
                client_id: client_id.to_string(),
                online,
            });
        }
    }

    /// A message from another shard. Safe with any content: what does not
    /// concern this shard is ignored or counted.
    pub fn handle_shard_message(&mut self, now: Instant, message: ShardMessage) {
        match message {
            ShardMessage::Subscribed {
                client_id,
                filter,
                qos,
            } => {
                self.index_add(&client_id, &filter, qos);
                if filter.as_str().starts_with("$share/") {
                    self.members_online.insert(client_id);
                }
            }
            ShardMessage::Unsubscribed { client_id, filter } => {
                self.unindex(&client_id, &filter);
            }
            ShardMessage::Presence { client_id, online } => {
                if online {
                    self.members_online.insert(client_id);
                } else {
                    self.members_online.remove(&client_id);
                }
            }
            ShardMessage::Deliver {
                publish,
                targets,
                publisher,
            } => {
                self.origin = publisher;
                for (client_id, qos) in targets {
                    if self.sessions.contains_key(&client_id) {
                        let out = with_qos(publish.clone(), qos);
                        self.deliver_to(now, &client_id, out);
                    } else {
                        self.stats.stale_deliveries += 1;
                    }
                }
                self.origin = None;
            }
            ShardMessage::Retain { publish } => self.retain(&publish),
            ShardMessage::RetainedQuery {
                client_id,
                filter,
                qos,
            } => self.send_retained(now, &client_id, &filter, qos),
            ShardMessage::Shared {
                group,
                filter,
                publish,
                exclude,
                publisher,
            } => {
                self.origin = publisher;
                self.dispatch_shared(now, &(group, filter), publish, exclude.as_deref());
                self.origin = None;
            }
            ShardMessage::CongestedBy { publisher, target } => {
                if self.config.slow_subscriber == SlowSubscriberPolicy::BackPressure
                    && self.conns.contains_key(&publisher)
                {
                    self.held_remotely
                        .entry(publisher)
                        .or_default()
                        .insert(target);
                    self.update_pause(publisher);
                }
            }
            ShardMessage::Drained { publisher, target } => {
                if let Some(targets) = self.held_remotely.get_mut(&publisher) {
                    targets.remove(&target);
                    if targets.is_empty() {
                        self.held_remotely.remove(&publisher);
                    }
                    self.update_pause(publisher);
                }
            }
        }
    }

    /// The next message for another shard, as (shard number, message); call
    /// until `None` after every input. Never produces anything with one
    /// shard.
    pub fn poll_shard_message(&mut self) -> Option<(u32, ShardMessage)> {
        self.outbox.pop_front()
    }

    /// Hands `publish` to clients wherever their sessions live.
    fn send_to(&mut self, now: Instant, publish: &Publish, targets: BTreeMap<String, QoS>) {
        let mut remote: BTreeMap<u32, Vec<(String, QoS)>> = BTreeMap::new();
        for (client, qos) in targets {
            let shard = self.client_shard(&client);
            if shard == self.me() {
                self.deliver_to(now, &client, with_qos(publish.clone(), qos));
            } else {
                remote.entry(shard).or_default().push((client, qos));
            }
        }
        let publisher = self.current_publisher();
        for (shard, targets) in remote {
            self.outbox.push_back((
                shard,
                ShardMessage::Deliver {
                    publish: publish.clone(),
                    targets,
                    publisher,
                },
            ));
        }
    }

    /// Rebuilds, after a restart, what the [`Store`] recorded: persistent
    /// sessions come back offline (as if their connections had just ended
    /// at `now`) with their subscriptions and queued messages, and retained
    /// messages come back. Call once, before any connection; with several
    /// shards, on every shard before any shard message moves (the restored
    /// subscriptions are broadcast). Sessions this router already holds are
    /// left alone.
    ///
    /// # Errors
    /// The store's error when it cannot give its records back; nothing is
    /// restored then.
    pub fn recover(&mut self, now: Instant) -> Result<(), S::Error> {
        let recovered = self.store.recover()?;
        self.next_message_id = self.next_message_id.max(recovered.next_message_id);
        for r in recovered.sessions {
            if self.sessions.contains_key(&r.client_id) {
                continue;
            }
            let mut session = Session::new(false, Link::Offline(now));
            session.next_seq = r.next_seq;
            session.offline.inflight = r.state.inflight;
            session.offline.queued = r.state.queued;
            session.offline.inbound_qos2 = r.state.inbound_qos2;
            if r.queue_len > 0 {
                let limit = self.config.offline_memory_messages.max(1);
                match self.store.load_queue(&r.client_id, None, limit) {
                    Ok(entries) => {
                        let loaded = entries.len();
                        let mut bytes = 0usize;
                        for e in entries {
                            bytes = bytes.saturating_add(message_bytes(&e.publish));
                            session.queue_refs.push_back((e.seq, e.message));
                            session.offline.queued.push(e.publish);
                        }
                        // The rest stays in the store; its size is
                        // estimated from the loaded share.
                        session.spilled = r.queue_len.saturating_sub(loaded);
                        session.spilled_bytes =
                            (bytes / loaded.max(1)).saturating_mul(session.spilled);
                    }
                    Err(_) => self.stats.store_failures += 1,
                }
            }
            session.offline_bytes =
                state_bytes(&session.offline).saturating_add(session.spilled_bytes);
            for (filter, qos) in r.subscriptions {
                self.index_add(&r.client_id, &filter, qos);
                self.broadcast(&ShardMessage::Subscribed {
                    client_id: r.client_id.clone(),
                    filter: filter.clone(),
                    qos,
                });
                session.subs.insert(filter, qos);
            }
            // A recovered share-group member is offline, whatever the
            // Subscribed messages made the other shards assume.
            if session
                .subs
                .keys()
                .any(|f| f.as_str().starts_with("$share/"))
            {
                self.members_online.insert(r.client_id.clone());
                self.set_presence(&r.client_id, false);
            }
            self.sessions.insert(r.client_id, session);
        }
        for p in recovered.retained {
            let bytes = message_bytes(&p);
            if let Some(old) = self.retained.insert(p.topic.as_str().to_string(), p) {
                self.retained_bytes = self.retained_bytes.saturating_sub(message_bytes(&old));
            }
            self.retained_bytes = self.retained_bytes.saturating_add(bytes);
        }
        Ok(())
    }

    // ----- inputs -------------------------------------------------------

    /// A connection's [`Event::ConnectRequest`]. Answers with
    /// [`Action::Refuse`], [`Action::Accept`], or, when the client id is
    /// connected elsewhere, [`Action::Close`] for the earlier connection
    /// [MQTT-3.1.4-2] with the `Accept` following its close. The earlier
    /// connection's will is not published then: the client is still there,
    /// and its new CONNECT brings the will that counts.
    pub fn handle_connect(&mut self, now: Instant, conn: ConnId, request: ConnectRequest) {
        let client_id = request.client_id.as_str().to_string();
        if self.client_shard(&client_id) != self.me() {
            self.stats.wrong_shard += 1;
            self.actions.push_back(Action::Refuse {
                conn,
                code: ConnectReturnCode::ServerUnavailable,
            });
            return;
        }
        let existing = self.sessions.get(&client_id).map(|s| s.link.clone());
        let takeover = matches!(
            existing,
            Some(Link::Online(_)) | Some(Link::Handover { .. })
        );
        let new_session = existing.is_none();
        if (!takeover && self.conns.len() >= self.config.max_connections)
            || (new_session && self.sessions.len() >= self.config.max_sessions)
        {
            self.stats.refused_connections += 1;
            self.actions.push_back(Action::Refuse {
                conn,
                code: ConnectReturnCode::ServerUnavailable,
            });
            return;
        }
        let verdict = match (&request.username, request.username_from_certificate) {
            (Some(name), true) => self.auth.connect_certified(&client_id, name.as_str()),
            (username, _) => self.auth.connect(
                &client_id,
                username.as_ref().map(MqttString::as_str),
                request.password.as_deref(),
            ),
        };
        if let Err(code) = verdict {
            self.stats.denied_connections += 1;
            let code = if code == ConnectReturnCode::Accepted {
                ConnectReturnCode::NotAuthorized
            } else {
                code
            };
            self.actions.push_back(Action::Refuse { conn, code });
            return;
        }
        self.conns.insert(conn, client_id.clone());
        match existing {
            Some(Link::Online(old)) => {
                if let Some(session) = self.sessions.get_mut(&client_id) {
                    session.link = Link::Handover {
                        old,
                        new: conn,
                        request,
                    };
                    // The old connection's will is superseded by the new
                    // CONNECT: a takeover is not an abnormal end of the
                    // client's presence.
                    session.will = None;
                }
                self.set_presence(&client_id, false);
                self.actions.push_back(Action::Close { conn: old });
            }
            Some(Link::Handover { old, new, .. }) => {
                // A third connection while the second waits: the second
                // is closed unanswered, the third waits instead.
                self.conns.remove(&new);
                if let Some(session) = self.sessions.get_mut(&client_id) {
                    session.link = Link::Handover {
                        old,
                        new: conn,
                        request,
                    };
                }
                self.actions.push_back(Action::Close { conn: new });
            }
            Some(Link::Offline(_)) | None => self.complete_connect(now, conn, request),
        }
    }

    /// Sets up the session of an admitted CONNECT and answers `Accept`.
    fn complete_connect(&mut self, now: Instant, conn: ConnId, request: ConnectRequest) {
        let client_id = request.client_id.as_str().to_string();
        let previous = self.sessions.remove(&client_id);
        let mut session_present = false;
        let mut session = match previous {
            Some(old) if !request.clean_session && !old.clean => {
                // [MQTT-3.1.2-4] the stored session resumes.
                session_present = true;
                old
            }
            Some(old) => {
                // [MQTT-3.1.2-6] clean session: the old state goes.
                self.discard_session(now, &client_id, old);
                Session::new(request.clean_session, Link::Online(conn))
            }
            None => Session::new(request.clean_session, Link::Online(conn)),
        };
        session.clean = request.clean_session;
        session.link = Link::Online(conn);
        session.username = request.username.as_ref().map(|u| u.as_str().to_string());
        session.will = request.will;
        let mut resume = core::mem::take(&mut session.offline);
        session.offline_bytes = 0;
        // The queue entries move to the connection with the messages; they
        // stay recorded until the session's state replaces them.
        let moved = core::mem::take(&mut session.queue_refs);
        let last_moved = moved.back().map(|(seq, _)| *seq);
        session.delivered = 0;
        session
            .journal
            .extend(moved.into_iter().map(|(seq, _)| (0, seq)));
        session.spilled_bytes = 0;
        if session_present && session.spilled > 0 {
            session.stream = Some(Stream {
                after: last_moved,
                unreported: 0,
            });
        }
        if session_present {
            resume.subscriptions = session.subs.keys().cloned().collect();
        } else {
            resume = ResumeState::default();
        }
        let shared_member = session
            .subs
            .keys()
            .any(|f| f.as_str().starts_with("$share/"));
        if shared_member {
            self.set_presence(&client_id, true);
        }
        self.sessions.insert(client_id.clone(), session);
        self.actions.push_back(Action::Accept {
            conn,
            session_present,
            resume,
        });
        self.stream_next(&client_id);
    }

    /// Hands the next chunk of a resumed session's spilled queue entries
    /// to its connection, unless the previous chunk is still unreported.
    fn stream_next(&mut self, client_id: &str) {
        let chunk = self.config.offline_memory_messages.max(1);
        let Some(session) = self.sessions.get_mut(client_id) else {
            return;
        };
        let (Some(conn), Some(mut stream)) = (session.online(), session.stream) else {
            return;
        };
        if stream.unreported > 0 {
            return;
        }
        let entries = match self.store.load_queue(client_id, stream.after, chunk) {
            Ok(entries) => entries,
            Err(_) => {
                // What could not be read is lost; the session goes on.
                self.stats.store_failures += 1;
                Vec::new()
            }
        };
        let mut handed = 0usize;
        for e in entries {
            session.delivered = session.delivered.saturating_add(1);
            session.journal.push((session.delivered, e.seq));
            stream.after = Some(e.seq);
            session.spilled = session.spilled.saturating_sub(1);
            self.actions.push_back(Action::Deliver {
                conn,
                publish: e.publish,
            });
            handed += 1;
        }
        stream.unreported = handed;
        self.stats.streamed_messages = self
            .stats
            .streamed_messages
            .saturating_add(u64::try_from(handed).unwrap_or(u64::MAX));
        if handed == 0 || session.spilled == 0 {
            // Everything is out, in order, ahead of any later delivery.
            session.spilled = 0;
            session.stream = None;
        } else {
            session.stream = Some(stream);
        }
        for _ in 0..handed {
            self.note_origin(conn);
        }
    }

    /// Removes a session's subscriptions and stored state; its unacknowledged
    /// messages are redispatched to other share-group members or counted.
    fn discard_session(&mut self, now: Instant, client_id: &str, session: Session) {
        let pending = session.offline.clone();
        self.redispatch(now, client_id, &session, pending);
        for filter in session.subs.keys() {
            self.unsubscribe_everywhere(client_id, filter);
        }
        self.set_presence(client_id, false);
        self.stats.record(self.store.remove_session(client_id));
    }

    /// A connection's [`Event::Publish`]: route the message.
    pub fn handle_publish(&mut self, now: Instant, conn: ConnId, publish: Publish) {
        let Some(client_id) = self.conns.get(&conn).cloned() else {
            self.stats.unknown_connections += 1;
            return;
        };
        let username = self
            .sessions
            .get(&client_id)
            .and_then(|s| s.username.clone());
        self.publishing = Some(conn);
        self.route(now, &client_id, username.as_deref(), publish);
        self.publishing = None;
    }

    /// A message the broker itself publishes (its `$SYS/broker/...`
    /// statistics, say): stored if retained and fanned out like a client's
    /// message, but exempt from the `$SYS` rule
    /// ([`RouterConfig::allow_client_sys_publish`] restrains clients only)
    /// and from [`Auth::may_publish`], and with no publisher to pause.
    /// Readers are still filtered: [`Auth::may_subscribe`] decides who may
    /// subscribe to the topic, and wildcards at the first level do not
    /// match `$` topics [MQTT-4.7.2-1]. Any shard may take it (the retained
    /// copy goes to the shard owning the topic).
    pub fn handle_internal_publish(&mut self, now: Instant, publish: Publish) {
        self.publishing = None;
        self.retain_and_fan_out(now, publish);
    }

    /// Applies the `$SYS` rule, authorisation and the retained store, then
    /// fans the message out.
    fn route(&mut self, now: Instant, client_id: &str, username: Option<&str>, publish: Publish) {
        let topic = publish.topic.as_str();
        if !self.config.allow_client_sys_publish && (topic == "$SYS" || topic.starts_with("$SYS/"))
        {
            self.stats.sys_publishes_dropped += 1;
            return;
        }
        if !self.auth.may_publish(client_id, username, topic) {
            self.stats.denied_publishes += 1;
            return;
        }
        self.retain_and_fan_out(now, publish);
    }

    /// Stores a retained message (here or on its owner shard), then fans
    /// the message out.
    fn retain_and_fan_out(&mut self, now: Instant, publish: Publish) {
        if publish.retain {
            let owner = shard_of(publish.topic.as_str(), self.shards());
            if owner == self.me() {
                self.retain(&publish);
            } else {
                self.outbox.push_back((
                    owner,
                    ShardMessage::Retain {
                        publish: publish.clone(),
                    },
                ));
            }
        }
        self.fan_out(now, publish);
    }

    /// [MQTT-3.3.1-5] store or replace, [MQTT-3.3.1-10] [MQTT-3.3.1-11]
    /// delete on an empty payload.
    fn retain(&mut self, publish: &Publish) {
        let topic = publish.topic.as_str();
        if publish.payload.is_empty() {
            self.forget_retained(topic);
            return;
        }
        let old_bytes = self.retained.get(topic).map_or(0, message_bytes);
        let fits_bytes = self
            .retained_bytes
            .saturating_sub(old_bytes)
            .saturating_add(message_bytes(publish))
            <= self.config.max_retained_bytes;
        let fits_count = self.retained.contains_key(topic)
            || self.retained.len() < self.config.max_retained_messages;
        if !fits_bytes || !fits_count {
            self.stats.retained_refused += 1;
            self.forget_retained(topic);
            return;
        }
        let mut stored = with_qos(publish.clone(), publish.qos());
        stored.retain = true;
        self.stats.record(self.store.save_retained(&stored));
        self.retained_bytes = self
            .retained_bytes
            .saturating_sub(old_bytes)
            .saturating_add(message_bytes(&stored));
        self.retained.insert(topic.to_string(), stored);
    }

    /// Deletes the retained message of `topic`, if any.
    fn forget_retained(&mut self, topic: &str) {
        if let Some(old) = self.retained.remove(topic) {
            self.retained_bytes = self.retained_bytes.saturating_sub(message_bytes(&old));
            self.stats.record(self.store.remove_retained(topic));
        }
    }

    /// Delivers to every matching session once, at the highest QoS its
    /// matching subscriptions grant [MQTT-3.3.5-1], with RETAIN 0
    /// [MQTT-3.3.1-9]; each matching share group (a subscription of its own)
    /// gets one copy for one member.
    fn fan_out(&mut self, now: Instant, mut publish: Publish) {
        publish.retain = false;
        let topic = publish.topic.as_str();
        let qos = publish.qos();
        let mut targets: BTreeMap<String, QoS> = BTreeMap::new();
        self.index.for_each_match(topic, |client, granted, _| {
            let q = qos.min(*granted);
            let entry = targets.entry(client.clone()).or_insert(q);
            *entry = (*entry).max(q);
        });
        let mut groups: Vec<(String, String)> = Vec::new();
        self.shared_index
            .for_each_match(topic, |group, (), filter| {
                groups.push((group.clone(), filter.as_str().to_string()));
            });
        self.send_to(now, &publish, targets);
        for key in groups {
            self.share(now, key, publish.clone(), None);
        }
    }

    /// Has the owner of a share group pick the member for `publish`.
    fn share(
        &mut self,
        now: Instant,
        key: (String, String),
        publish: Publish,
        exclude: Option<&str>,
    ) {
        let owner = self.group_shard(&key);
        if owner == self.me() {
            self.dispatch_shared(now, &key, publish, exclude);
        } else {
            self.outbox.push_back((
                owner,
                ShardMessage::Shared {
                    group: key.0,
                    filter: key.1,
                    publish,
                    exclude: exclude.map(ToString::to_string),
                    publisher: self.current_publisher(),
                },
            ));
        }
    }

    /// On the group's owner shard: picks the member and delivers.
    fn dispatch_shared(
        &mut self,
        now: Instant,
        key: &(String, String),
        mut publish: Publish,
        exclude: Option<&str>,
    ) {
        publish.retain = false;
        match self.pick_member(key, exclude) {
            Some((member, granted)) => {
                if exclude.is_some() {
                    self.stats.shared_redispatched += 1;
                }
                let q = publish.qos().min(granted);
                let mut targets = BTreeMap::new();
                targets.insert(member, q);
                self.send_to(now, &publish, targets);
            }
            None => self.stats.shared_lost += 1,
        }
    }

    /// The next member of a share group, connected members first, round
    /// robin; `exclude` is never picked.
    fn pick_member(
        &mut self,
        key: &(String, String),
        exclude: Option<&str>,
    ) -> Option<(String, QoS)> {
        let online = &self.members_online;
        let group = self.groups.get_mut(key)?;
        let n = group.members.len();
        if n == 0 {
            return None;
        }
        let eligible = |live_only: bool, (member, _): &(String, QoS)| {
            exclude != Some(member.as_str()) && (!live_only || online.contains(member))
        };
        for live_only in [true, false] {
            for step in 0..n {
                let i = (group.next + step) % n;
                if let Some(m) = group.members.get(i) {
                    if eligible(live_only, m) {
                        group.next = (i + 1) % n;
                        return Some(m.clone());
                    }
                }
            }
        }
        None
    }

    /// Hands `publish` to the client's connection, or queues it while the
    /// session is offline [MQTT-3.1.2-5].
    fn deliver_to(&mut self, _now: Instant, client_id: &str, publish: Publish) {
        let Some(session) = self.sessions.get_mut(client_id) else {
            return;
        };
        if session.online().is_some()
            && session.stream.is_some()
            && publish.qos() != QoS::AtMostOnce
        {
            // Older messages are still being streamed from the store: this
            // one waits behind them, in the store [MQTT-4.6.0-5].
            let seq = session.take_seq();
            let id = message_id(&mut self.next_message_id, &mut self.last_message, &publish);
            self.stats
                .record(self.store.push_queued(client_id, seq, id, &publish));
            session.spilled = session.spilled.saturating_add(1);
            self.stats.spilled_messages += 1;
            return;
        }
        if let Some(conn) = session.online() {
            session.delivered = session.delivered.saturating_add(1);
            if self.config.record_online && !session.clean && publish.qos() != QoS::AtMostOnce {
                let seq = session.take_seq();
                session.journal.push((session.delivered, seq));
                let id = message_id(&mut self.next_message_id, &mut self.last_message, &publish);
                self.stats
                    .record(self.store.push_queued(client_id, seq, id, &publish));
            }
            self.actions.push_back(Action::Deliver { conn, publish });
            self.note_origin(conn);
            return;
        }
        if publish.qos() == QoS::AtMostOnce && !self.config.queue_qos0_offline {
            self.stats.offline_dropped_qos0 += 1;
            return;
        }
        let size = message_bytes(&publish);
        let max_msgs = self.config.max_offline_messages;
        let max_bytes = self.config.max_offline_bytes;
        let fits = |s: &Session| {
            s.offline
                .queued
                .len()
                .saturating_add(s.offline.inflight.len())
                .saturating_add(s.spilled)
                < max_msgs
                && s.offline_bytes.saturating_add(size) <= max_bytes
        };
        if !fits(session) {
            if self.config.offline_overflow == OverflowPolicy::DropOldest {
                while !fits(session) && session.offline.queued.is_empty() && session.spilled > 0 {
                    // Nothing in memory: the oldest entry is in the store.
                    let oldest = self.store.load_queue(client_id, None, 1);
                    let Some(e) = oldest.ok().and_then(|mut v| v.pop()) else {
                        self.stats.store_failures += 1;
                        break;
                    };
                    let size = message_bytes(&e.publish);
                    session.spilled -= 1;
                    session.spilled_bytes = session.spilled_bytes.saturating_sub(size);
                    session.offline_bytes = session.offline_bytes.saturating_sub(size);
                    self.stats
                        .record(self.store.remove_queued(client_id, e.seq));
                    self.stats.offline_dropped_oldest += 1;
                }
                while !fits(session) && !session.offline.queued.is_empty() {
                    let held = session.held();
                    let old = session.offline.queued.remove(0);
                    session.offline_bytes =
                        session.offline_bytes.saturating_sub(message_bytes(&old));
                    if held > 0 {
                        let state = session.held_state();
                        self.stats
                            .record(self.store.save_session_state(client_id, &state));
                    } else if let Some((seq, _)) = session.queue_refs.pop_front() {
                        self.stats.record(self.store.remove_queued(client_id, seq));
                    }
                    self.stats.offline_dropped_oldest += 1;
                }
            }
            if !fits(session) {
                self.stats.offline_dropped_newest += 1;
                return;
            }
        }
        session.offline_bytes = session.offline_bytes.saturating_add(size);
        let seq = session.take_seq();
        let id = message_id(&mut self.next_message_id, &mut self.last_message, &publish);
        self.stats
            .record(self.store.push_queued(client_id, seq, id, &publish));
        if session.spilled > 0 || session.queue_refs.len() >= self.config.offline_memory_messages {
            // Beyond the in-memory share: in the store only.
            session.spilled += 1;
            session.spilled_bytes = session.spilled_bytes.saturating_add(size);
            self.stats.spilled_messages += 1;
            return;
        }
        session.queue_refs.push_back((seq, id));
        session.offline.queued.push(publish);
    }

    /// A connection's [`Event::Subscribe`]: answers [`Action::SubAck`], then
    /// delivers the retained messages of each granted plain filter with
    /// RETAIN 1 [MQTT-3.3.1-6] [MQTT-3.3.1-8], also when the filter
    /// replaced an identical one [MQTT-3.8.4-3].
    pub fn handle_subscribe(
        &mut self,
        now: Instant,
        conn: ConnId,
        packet_id: PacketId,
        filters: Vec<SubscribeFilter>,
    ) {
        let Some(client_id) = self.conns.get(&conn).cloned() else {
            self.stats.unknown_connections += 1;
            return;
        };
        let mut results = Vec::with_capacity(filters.len());
        let mut retained_for: Vec<(TopicFilter, QoS)> = Vec::new();
        for request in filters {
            let code = self.subscribe_one(&client_id, &request, &mut retained_for);
            results.push(code);
        }
        self.actions.push_back(Action::SubAck {
            conn,
            packet_id,
            results,
        });
        for (filter, granted) in retained_for {
            self.send_retained(now, &client_id, filter.as_str(), granted);
            self.broadcast(&ShardMessage::RetainedQuery {
                client_id: client_id.clone(),
                filter: filter.as_str().to_string(),
                qos: granted,
            });
        }
    }

    /// Sends the retained messages this shard holds that match `filter`.
    fn send_retained(&mut self, now: Instant, client_id: &str, filter: &str, granted: QoS) {
        let hits: Vec<Publish> = self
            .retained
            .iter()
            .filter(|(topic, _)| matches_str(filter, topic))
            .map(|(_, p)| p.clone())
            .collect();
        for p in hits {
            let mut targets = BTreeMap::new();
            targets.insert(client_id.to_string(), p.qos().min(granted));
            self.send_to(now, &p, targets);
        }
    }

    fn subscribe_one(
        &mut self,
        client_id: &str,
        request: &SubscribeFilter,
        retained_for: &mut Vec<(TopicFilter, QoS)>,
    ) -> SubscribeReturnCode {
        let Some(session) = self.sessions.get(client_id) else {
            return SubscribeReturnCode::Failure;
        };
        let raw = request.filter.as_str();
        if !self
            .auth
            .may_subscribe(client_id, session.username.as_deref(), raw)
        {
            self.stats.denied_subscriptions += 1;
            return SubscribeReturnCode::Failure;
        }
        let Ok(parsed) = SubscriptionFilter::parse(raw) else {
            self.stats.refused_subscriptions += 1;
            return SubscribeReturnCode::Failure;
        };
        let known = session.subs.contains_key(&request.filter);
        if !known && session.subs.len() >= self.config.max_subscriptions_per_client {
            self.stats.refused_subscriptions += 1;
            return SubscribeReturnCode::Failure;
        }
        let clean = session.clean;
        let qos = request.qos;
        match parsed {
            SubscriptionFilter::Shared(_) => {
                self.members_online.insert(client_id.to_string());
            }
            SubscriptionFilter::Plain(filter) => retained_for.push((filter, qos)),
            _ => {
                self.stats.refused_subscriptions += 1;
                return SubscribeReturnCode::Failure;
            }
        }
        self.index_add(client_id, &request.filter, qos);
        self.broadcast(&ShardMessage::Subscribed {
            client_id: client_id.to_string(),
            filter: request.filter.clone(),
            qos,
        });
        if let Some(session) = self.sessions.get_mut(client_id) {
            session.subs.insert(request.filter.clone(), qos);
        }
        if !clean {
            self.stats.record(
                self.store
                    .save_subscription(client_id, &request.filter, qos),
            );
        }
        SubscribeReturnCode::Success(qos)
    }

    /// Adds (or replaces) one subscription in the indexes, for a client of
    /// any shard.
    fn index_add(&mut self, client_id: &str, filter: &Filter, qos: QoS) {
        match SubscriptionFilter::parse(filter.as_str()) {
            Ok(SubscriptionFilter::Plain(f)) => {
                self.index.insert(&f, client_id.to_string(), qos);
            }
            Ok(SubscriptionFilter::Shared(shared)) => {
                let key = (
                    shared.group().to_string(),
                    shared.filter().as_str().to_string(),
                );
                self.shared_index.insert(shared.filter(), key.0.clone(), ());
                let group = self.groups.entry(key).or_insert(ShareGroup {
                    members: Vec::new(),
                    next: 0,
                });
                match group.members.iter_mut().find(|(m, _)| m == client_id) {
                    Some(member) => member.1 = qos,
                    None => group.members.push((client_id.to_string(), qos)),
                }
            }
            _ => {}
        }
    }

    /// Removes one subscription from the indexes of every shard (not from
    /// the session).
    fn unsubscribe_everywhere(&mut self, client_id: &str, filter: &Filter) {
        self.unindex(client_id, filter);
        self.broadcast(&ShardMessage::Unsubscribed {
            client_id: client_id.to_string(),
            filter: filter.clone(),
        });
    }

    /// Removes one subscription from this shard's indexes.
    fn unindex(&mut self, client_id: &str, filter: &Filter) {
        match SubscriptionFilter::parse(filter.as_str()) {
            Ok(SubscriptionFilter::Plain(f)) => {
                self.index.remove(&f, &client_id.to_string());
            }
            Ok(SubscriptionFilter::Shared(shared)) => {
                let key = (
                    shared.group().to_string(),
                    shared.filter().as_str().to_string(),
                );
                let empty = match self.groups.get_mut(&key) {
                    Some(group) => {
                        group.members.retain(|(m, _)| m != client_id);
                        if group.next >= group.members.len() {
                            group.next = 0;
                        }
                        group.members.is_empty()
                    }
                    None => false,
                };
                if empty {
                    self.groups.remove(&key);
                    self.shared_index.remove(shared.filter(), &key.0);
                }
            }
            _ => {}
        }
    }

    /// A connection's [`Event::Unsubscribe`]: removes the exact matches.
    pub fn handle_unsubscribe(&mut self, _now: Instant, conn: ConnId, filters: Vec<Filter>) {
        let Some(client_id) = self.conns.get(&conn).cloned() else {
            self.stats.unknown_connections += 1;
            return;
        };
        for filter in filters {
            let removed = self
                .sessions
                .get_mut(&client_id)
                .and_then(|s| s.subs.remove(&filter).map(|_| s.clean));
            if let Some(clean) = removed {
                self.unsubscribe_everywhere(&client_id, &filter);
                if !clean {
                    self.stats
                        .record(self.store.remove_subscription(&client_id, &filter));
                }
            }
        }
    }

    /// A connection's [`Event::Closed`], with
    /// [`ServerSession::into_resume_state`](crate::ServerSession::into_resume_state).
    /// Publishes the will when `publish_will` [MQTT-3.1.2-8] and forgets it
    /// either way [MQTT-3.1.2-10]; keeps a persistent session's state
    /// offline and discards a clean one [MQTT-3.1.2-6]; after a takeover,
    /// carries the state over to the new connection and accepts it.
    pub fn handle_closed(
        &mut self,
        now: Instant,
        conn: ConnId,
        publish_will: bool,
        resume: ResumeState,
    ) {
        self.forget_flow(conn);
        let Some(client_id) = self.conns.remove(&conn) else {
            self.stats.unknown_connections += 1;
            return;
        };
        let Some(mut session) = self.sessions.remove(&client_id) else {
            return;
        };
        match session.link.clone() {
            Link::Handover { old, new, request } if old == conn => {
                // Messages queued during the handover are newer than the
                // old connection's.
                let mut merged = resume;
                merged.subscriptions.clear();
                if !session.clean {
                    self.record_closed(&client_id, &mut session, &merged);
                }
                session.stream = None;
                let gap = core::mem::take(&mut session.offline.queued);
                merged.queued.extend(gap);
                session.offline = merged;
                session.offline_bytes =
                    state_bytes(&session.offline).saturating_add(session.spilled_bytes);
                session.link = Link::Offline(now);
                if session.clean {
                    // The old session ends with its connection.
                    self.discard_session(now, &client_id, session);
                } else {
                    self.sessions.insert(client_id, session);
                }
                self.complete_connect(now, new, request);
            }
            Link::Online(current) if current == conn => {
                let will = session.will.take();
                session.link = Link::Offline(now);
                let username = session.username.clone();
                if session.clean {
                    let mut pending = resume;
                    pending.subscriptions.clear();
                    session.offline = pending;
                    self.discard_session(now, &client_id, session);
                } else {
                    let mut state = resume;
                    state.subscriptions.clear();
                    self.record_closed(&client_id, &mut session, &state);
                    session.stream = None;
                    state.queued.append(&mut session.offline.queued);
                    session.offline_bytes =
                        state_bytes(&state).saturating_add(session.spilled_bytes);
                    session.offline = state;
                    self.sessions.insert(client_id.clone(), session);
                    self.set_presence(&client_id, false);
                }
                if let (true, Some(will)) = (publish_will, will) {
                    self.stats.wills_published += 1;
                    let mut publish = Publish::new(will.topic, QosPid::AtMostOnce, will.message);
                    publish = with_qos(publish, will.qos);
                    publish.retain = will.retain;
                    self.route(now, &client_id, username.as_deref(), publish);
                }
            }
            Link::Handover { old, new, .. } if new == conn => {
                // The waiting connection went away before it was accepted:
                // the old one's close, still to come, ends the session as
                // usual (its will was already dropped by the takeover).
                session.link = Link::Online(old);
                self.sessions.insert(client_id, session);
            }
            _ => {
                // A stale connection of this client (already replaced).
                self.stats.unknown_connections += 1;
                self.sessions.insert(client_id, session);
            }
        }
    }

    /// Sends the unacknowledged messages of a clean session that ended to
    /// other members of its share groups; the rest are counted as discarded.
    /// A message is taken as the group's when its topic matches one of the
    /// session's shared filters and none of its plain ones (a session's
    /// messages do not say which subscription brought them).
    fn redispatch(
        &mut self,
        now: Instant,
        client_id: &str,
        session: &Session,
        pending: ResumeState,
    ) {
        let shared: Vec<(String, String)> = session
            .subs
            .keys()
            .filter_map(|f| match SubscriptionFilter::parse(f.as_str()) {
                Ok(SubscriptionFilter::Shared(s)) => {
                    Some((s.group().to_string(), s.filter().as_str().to_string()))
                }
                _ => None,
            })
            .collect();
        let plain: Vec<&Filter> = session
            .subs
            .keys()
            .filter(|f| !f.as_str().starts_with("$share/"))
            .collect();
        let messages = pending
            .inflight
            .into_iter()
            .filter_map(|m| match m {
                InflightMessage::Publish(p) => Some(p),
                InflightMessage::PubRel(_) => None,
            })
            .chain(pending.queued);
        for publish in messages {
            let topic = publish.topic.as_str();
            let own = plain.iter().any(|f| matches_str(f.as_str(), topic));
            let group = shared
                .iter()
                .find(|(_, filter)| matches_str(filter, topic))
                .cloned();
            match group {
                Some(key) if !own => self.share(now, key, publish, Some(client_id)),
                _ => self.stats.clean_session_discarded += 1,
            }
        }
    }

    /// Records the state a persistent session's connection handed back
    /// (`state`, without the messages the router queued meanwhile) and
    /// drops the queue entries of what the connection had been handed.
    fn record_closed(&mut self, client_id: &str, session: &mut Session, state: &ResumeState) {
        let record = SessionState::from_resume(state);
        self.stats
            .record(self.store.save_session_state(client_id, &record));
        self.drop_journal(client_id, session, u64::MAX);
    }

    /// Drops the queue entries of the deliveries up to the `applied`-th.
    fn drop_journal(&mut self, client_id: &str, session: &mut Session, applied: u64) {
        let journal = core::mem::take(&mut session.journal);
        for (index, seq) in journal {
            if index <= applied {
                self.stats.record(self.store.remove_queued(client_id, seq));
            } else {
                session.journal.push((index, seq));
            }
        }
    }

    // ----- durability ---------------------------------------------------

    /// Records the current state of a connected persistent session, so
    /// that a crash from now on resumes it with these inflight messages
    /// (same packet ids), unsent messages and inbound QoS 2 ids; the queue
    /// entries of the messages it had been handed when `state` was taken
    /// are dropped, since `state` holds them now.
    ///
    /// `state` is [`ServerSession::resume_snapshot`](crate::ServerSession::resume_snapshot),
    /// and `applied` the number of [`Action::Deliver`]s for `conn` that
    /// had been applied to that session (since its [`Action::Accept`]) when
    /// the snapshot was taken: deliveries still on their way keep their
    /// records. Call it for connections whose session changed, before
    /// [`Router::commit`]; with [`RouterConfig::record_online`] off it is
    /// needed only to make inbound QoS 2 ids and inflight state survive a
    /// crash. Clean sessions and unknown connections are ignored.
    pub fn checkpoint(&mut self, _now: Instant, conn: ConnId, state: &ResumeState, applied: u64) {
        let Some(client_id) = self.conns.get(&conn).cloned() else {
            self.stats.unknown_connections += 1;
            return;
        };
        let Some(mut session) = self.sessions.remove(&client_id) else {
            return;
        };
        if !session.clean && session.online() == Some(conn) {
            let record = SessionState::from_resume(state);
            self.stats
                .record(self.store.save_session_state(&client_id, &record));
            self.drop_journal(&client_id, &mut session, applied);
        }
        self.sessions.insert(client_id, session);
    }

    /// The commit that the changes recorded so far wait for, or `None`
    /// when everything recorded is committed. After
    /// [`handle_publish`](Self::handle_publish) of a QoS 1/2 message whose
    /// acknowledgement waits ([`ServerConfig::ack_after_route`](crate::ServerConfig::ack_after_route)),
    /// a durable adapter holds the [`AckToken`](crate::AckToken) until
    /// [`is_committed`](Self::is_committed) is true for this ticket.
    #[must_use]
    pub fn commit_ticket(&self) -> Option<CommitTicket> {
        (self.stats.store_writes > self.committed).then_some(CommitTicket(self.stats.store_writes))
    }

    /// Whether the changes up to `ticket` are committed.
    #[must_use]
    pub fn is_committed(&self, ticket: CommitTicket) -> bool {
        ticket.0 <= self.committed
    }

    /// Makes every change recorded so far durable with one
    /// [`Store::commit`] (none when nothing is pending). Returns the ticket
    /// now committed (acknowledgements waiting for it or an earlier one may
    /// go), or `None` when there was nothing to commit.
    ///
    /// # Errors
    /// The store's error; the changes stay pending (the next call tries
    /// again) and the failure is counted in
    /// [`RouterStats::store_failures`].
    pub fn commit(&mut self) -> Result<Option<CommitTicket>, S::Error> {
        let target = self.stats.store_writes;
        if target <= self.committed {
            return Ok(None);
        }
        match self.store.commit() {
            Ok(()) => {
                self.committed = target;
                self.stats.store_commits = self.stats.store_commits.saturating_add(1);
                Ok(Some(CommitTicket(target)))
            }
            Err(e) => {
                self.stats.store_failures = self.stats.store_failures.saturating_add(1);
                Err(e)
            }
        }
    }

    /// Removes persistent sessions offline for longer than
    /// [`RouterConfig::session_expiry`]. Safe to call at any time.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(expiry) = self.config.session_expiry else {
            return;
        };
        let expired: Vec<String> = self
            .sessions
            .iter()
            .filter_map(|(id, s)| match s.link {
                Link::Offline(since) if since.saturating_add(expiry) <= now => Some(id.clone()),
                _ => None,
            })
            .collect();
        for id in expired {
            if let Some(session) = self.sessions.remove(&id) {
                self.stats.expired_sessions += 1;
                self.discard_session(now, &id, session);
            }
        }
    }

    // ----- slow subscribers ---------------------------------------------

    /// What became of an [`Action::Deliver`]: the adapter calls this after
    /// every [`ServerSession::deliver`](crate::ServerSession::deliver), with
    /// the outcome and
    /// [`ServerSession::is_above_high_water`](crate::ServerSession::is_above_high_water)
    /// read right after it. `publisher` is the connection whose
    /// [`Event::Publish`] was being handled when the action came out (the
    /// [`handle_publish`](Self::handle_publish) call it followed); `None`
    /// for anything else (wills, retained messages, offline queues, shard
    /// messages).
    ///
    /// With several shards, a report with `None` is matched with the
    /// oldest unreported [`Action::Deliver`] this router emitted for
    /// `target` outside `handle_publish`; when that one came from another
    /// shard's publisher, a congested target pauses that publisher through
    /// [`ShardMessage::CongestedBy`]. So report every delivery to the
    /// router that emitted it, in the order its actions came out for that
    /// target.
    ///
    /// A dropped message, and each message evicted for a newer one
    /// ([`DeliverOutcome::QueuedEvictedOldest`]), is counted and reported as
    /// [`Action::DeliveryDropped`], under any policy. Under
    /// [`SlowSubscriberPolicy::BackPressure`], a congested target pauses
    /// the publisher ([`Action::PausePublisher`]) until every congested
    /// target it fed has drained ([`handle_drained`](Self::handle_drained))
    /// or closed. A connection that is itself congested is never paused
    /// (its queue drains only as its client's acknowledgements are read),
    /// so two connections feeding each other cannot stall for good.
    pub fn handle_delivery(
        &mut self,
        _now: Instant,
        target: ConnId,
        publisher: Option<ConnId>,
        outcome: DeliverOutcome,
        above_high_water: bool,
    ) {
        let origin = if publisher.is_none() {
            self.take_origin(target)
        } else {
            None
        };
        self.stream_reported(target, true, above_high_water);
        match outcome {
            DeliverOutcome::Dropped(reason) => {
                self.stats.delivery_drops += 1;
                self.actions.push_back(Action::DeliveryDropped {
                    conn: target,
                    publisher,
                    reason,
                });
            }
            DeliverOutcome::QueuedEvictedOldest(evicted) => {
                // The evicted messages came from publishers the router no
                // longer knows, so none is named.
                for _ in 0..evicted {
                    self.stats.delivery_drops += 1;
                    self.actions.push_back(Action::DeliveryDropped {
                        conn: target,
                        publisher: None,
                        reason: DropReason::EvictedOldest,
                    });
                }
            }
            _ => {}
        }
        if self.config.slow_subscriber != SlowSubscriberPolicy::BackPressure || !above_high_water {
            return;
        }
        // A publisher of this shard whose message came back through another
        // shard (a share group owned there) is held here like a local one.
        let (publisher, remote) = match origin {
            Some(o) if o.shard == self.me() => (Some(o.conn), None),
            Some(o) => (publisher, Some(o)),
            None => (publisher, None),
        };
        let publisher = publisher.filter(|p| self.conns.contains_key(p));
        let fed_by = self.congested.entry(target).or_default();
        if let Some(p) = publisher {
            fed_by.insert(p);
            self.feeds.entry(p).or_default().insert(target);
        }
        if let Some(o) = remote {
            let known = self.conns.contains_key(&target);
            if known && self.remote_fed.entry(target).or_default().insert(o) {
                let me = self.me();
                self.outbox.push_back((
                    o.shard,
                    ShardMessage::CongestedBy {
                        publisher: o.conn,
                        target: ShardConn {
                            shard: me,
                            conn: target,
                        },
                    },
                ));
            }
        }
        self.update_pause(target);
        if let Some(p) = publisher {
            self.update_pause(p);
        }
    }

    /// A session's [`Event::Drained`]: its queue is back at its low-water
    /// mark, so the publishers it held back may resume once nothing else
    /// holds them ([`Action::ResumePublisher`]). With several shards, call
    /// it on the shard that holds the target's session (the one whose
    /// [`Action::Deliver`]s reached it); calling it on others does no harm.
    /// Unknown or not congested targets are ignored.
    pub fn handle_drained(&mut self, _now: Instant, target: ConnId) {
        self.stream_reported(target, false, false);
        self.release_remote(target);
        let Some(fed_by) = self.congested.remove(&target) else {
            return;
        };
        for p in &fed_by {
            self.unfeed(*p, target);
        }
        for p in fed_by {
            self.update_pause(p);
        }
        self.update_pause(target);
    }

    /// A delivery to `target` was reported (or its queue drained): the
    /// next streamed chunk goes once the last one is reported and the
    /// session is not congested.
    fn stream_reported(&mut self, target: ConnId, delivery: bool, above_high_water: bool) {
        let Some(client_id) = self.conns.get(&target).cloned() else {
            return;
        };
        let Some(session) = self.sessions.get_mut(&client_id) else {
            return;
        };
        let Some(stream) = session.stream.as_mut() else {
            return;
        };
        if delivery {
            stream.unreported = stream.unreported.saturating_sub(1);
        }
        if stream.unreported == 0 && !above_high_water {
            self.stream_next(&client_id);
        }
    }

    /// Whether `conn` is paused (an [`Action::PausePublisher`] not yet
    /// followed by its [`Action::ResumePublisher`]).
    #[must_use]
    pub fn is_paused(&self, conn: ConnId) -> bool {
        self.paused.contains(&conn)
    }

    /// How many connections are paused.
    #[must_use]
    pub fn paused_count(&self) -> usize {
        self.paused.len()
    }

    /// Removes `target` from the congested targets `publisher` fed.
    fn unfeed(&mut self, publisher: ConnId, target: ConnId) {
        if let Some(targets) = self.feeds.get_mut(&publisher) {
            targets.remove(&target);
            if targets.is_empty() {
                self.feeds.remove(&publisher);
            }
        }
    }

    /// Tells the other shards' publishers that `target` held back that it
    /// no longer does.
    fn release_remote(&mut self, target: ConnId) {
        let Some(publishers) = self.remote_fed.remove(&target) else {
            return;
        };
        let me = self.me();
        for o in publishers {
            self.outbox.push_back((
                o.shard,
                ShardMessage::Drained {
                    publisher: o.conn,
                    target: ShardConn {
                        shard: me,
                        conn: target,
                    },
                },
            ));
        }
    }

    /// Whether the publishers of deliveries must be remembered for
    /// [`handle_delivery`](Self::handle_delivery): only with several shards
    /// under back-pressure.
    fn tracks_origins(&self) -> bool {
        self.shards() > 1 && self.config.slow_subscriber == SlowSubscriberPolicy::BackPressure
    }

    /// The publisher to name in a shard message sent now.
    fn current_publisher(&self) -> Option<ShardConn> {
        let me = self.me();
        self.publishing
            .map(|conn| ShardConn { shard: me, conn })
            .or(self.origin)
    }

    /// Remembers who caused the [`Action::Deliver`] to `conn` just queued,
    /// unless `handle_publish` did (the adapter names that publisher).
    fn note_origin(&mut self, conn: ConnId) {
        if !self.tracks_origins() || self.publishing.is_some() {
            return;
        }
        let origin = self.origin;
        let pending = self.origins.entry(conn).or_default();
        if pending.len() >= MAX_PENDING_ORIGINS {
            // An adapter that does not report its deliveries: keep memory
            // bounded rather than the attribution exact.
            pending.pop_front();
        }
        pending.push_back(origin);
    }

    /// The publisher of the oldest unreported delivery to `target`.
    fn take_origin(&mut self, target: ConnId) -> Option<ShardConn> {
        let pending = self.origins.get_mut(&target)?;
        let origin = pending.pop_front().flatten();
        if pending.is_empty() {
            self.origins.remove(&target);
        }
        origin
    }

    /// Pauses or resumes `conn` as its state now asks: paused while it fed
    /// a congested target (here or on another shard), is connected here,
    /// and is not congested itself.
    fn update_pause(&mut self, conn: ConnId) {
        let hold = (self.feeds.contains_key(&conn) || self.held_remotely.contains_key(&conn))
            && !self.congested.contains_key(&conn)
            && self.conns.contains_key(&conn);
        if hold && self.paused.insert(conn) {
            self.stats.publisher_pauses += 1;
            self.actions.push_back(Action::PausePublisher { conn });
        } else if !hold && self.paused.remove(&conn) {
            self.actions.push_back(Action::ResumePublisher { conn });
        }
    }

    /// A connection ended: forget it as a publisher, and release the
    /// publishers it held back as a congested target.
    fn forget_flow(&mut self, conn: ConnId) {
        self.paused.remove(&conn);
        self.held_remotely.remove(&conn);
        self.origins.remove(&conn);
        self.release_remote(conn);
        if let Some(targets) = self.feeds.remove(&conn) {
            for t in targets {
                if let Some(fed_by) = self.congested.get_mut(&t) {
                    fed_by.remove(&conn);
                }
            }
        }
        if let Some(fed_by) = self.congested.remove(&conn) {
            for p in &fed_by {
                self.unfeed(*p, conn);
            }
            for p in fed_by {
                self.update_pause(p);
            }
        }
    }

    // ----- outputs ------------------------------------------------------

    /// The next decision to apply; call until `None` after every input.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due (the
    /// earliest session expiry); `None` when nothing expires.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let expiry = self.config.session_expiry?;
        self.sessions
            .values()
            .filter_map(|s| match s.link {
                Link::Offline(since) => Some(since.saturating_add(expiry)),
                _ => None,
            })
            .min()
    }

    // ----- observers ----------------------------------------------------

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> &RouterStats {
        &self.stats
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, for example to read it for a dump; changes made through
    /// it bypass the router's records and commit tickets.
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// The authorisation hook.
    #[must_use]
    pub fn auth(&self) -> &A {
        &self.auth
    }

    /// The authorisation hook, for example to reload its rules.
    pub fn auth_mut(&mut self) -> &mut A {
        &mut self.auth
    }

    /// The number of sessions, online and offline.
    #[must_use]
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The number of connections the router knows.
    #[must_use]
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Whether `client_id` has a session (online or offline).
    #[must_use]
    pub fn has_session(&self, client_id: &str) -> bool {
        self.sessions.contains_key(client_id)
    }

    /// Messages held for the client's offline session (inflight and queued).
    #[must_use]
    pub fn offline_len(&self, client_id: &str) -> usize {
        self.sessions.get(client_id).map_or(0, |s| {
            s.offline
                .queued
                .len()
                .saturating_add(s.offline.inflight.len())
                .saturating_add(s.spilled)
        })
    }

    /// Messages of the client's offline session held in memory (inflight
    /// and queued): at most [`RouterConfig::offline_memory_messages`] queue
    /// entries plus the state its last connection handed back; the rest of
    /// [`offline_len`](Self::offline_len) is in the store only.
    #[must_use]
    pub fn offline_memory_len(&self, client_id: &str) -> usize {
        self.sessions.get(client_id).map_or(0, |s| {
            s.offline
                .queued
                .len()
                .saturating_add(s.offline.inflight.len())
        })
    }

    /// The client's subscriptions and their granted QoS, in filter order.
    #[must_use]
    pub fn subscriptions(&self, client_id: &str) -> Vec<(Filter, QoS)> {
        self.sessions
            .get(client_id)
            .map(|s| s.subs.iter().map(|(f, q)| (f.clone(), *q)).collect())
            .unwrap_or_default()
    }

    /// The retained message of `topic`.
    #[must_use]
    pub fn retained(&self, topic: &str) -> Option<&Publish> {
        self.retained.get(topic)
    }

    /// The number of retained messages.
    #[must_use]
    pub fn retained_len(&self) -> usize {
        self.retained.len()
    }

    /// The number of subscriptions held by this router's sessions, online
    /// and offline (one per client and filter, share-group memberships
    /// included). With several shards, each shard counts the sessions it
    /// owns, so the sum over shards counts each subscription once. It
    /// visits every session: meant for statistics, not for every message.
    #[must_use]
    pub fn subscription_count(&self) -> usize {
        self.sessions.values().map(|s| s.subs.len()).sum()
    }
}
