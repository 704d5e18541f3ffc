//! The broker's protocol core for MQTT 3.1.1 (and 3.1): [`ServerSession`],
//! the machine for one client connection, and [`Router`], the machine that
//! routes between sessions.
//!
//! A `ServerSession` is deterministic and does no I/O: it never touches a
//! socket, spawns, sleeps, or reads a clock or OS randomness. Bytes come in as
//! slices, time comes in as a [`midge_time::Instant`] on every call that can
//! change state, and what must go out is handed back as data. The same
//! session therefore runs under an async runtime, a test with a virtual
//! clock, or a fuzzer.
//!
//! What it does: decodes the client's bytes with `midge-codec` and applies
//! the connection's rules — first packet CONNECT [MQTT-3.1.0-1], no second
//! CONNECT [MQTT-3.1.0-2], CONNACK 0x01 for an unsupported protocol level
//! [MQTT-3.1.2-2], client id rules [MQTT-3.1.3-6] [MQTT-3.1.3-8]
//! [MQTT-3.1.3-9], keep alive at one and a half times [MQTT-3.1.2-24],
//! CONNACK's session-present flag, the QoS 1 and 2 handshakes in both
//! directions, the outbound inflight window and queue, PINGRESP, and
//! DISCONNECT discarding the will [MQTT-3.14.4-3]. Every table has a limit in
//! [`ServerConfig`] with a defined behaviour at it.
//!
//! Routing is the [`Router`]'s job (module [`router`]): sessions registry
//! with takeover, subscriptions, retained messages, wills, share groups,
//! authentication and the durable store. It talks to sessions only through
//! typed values, never shared state:
//!
//! - up, the session emits [`Event`]s: [`Event::ConnectRequest`],
//!   [`Event::Publish`], [`Event::Subscribe`], [`Event::Unsubscribe`],
//!   [`Event::Closed`] (which says whether the will is due), which the
//!   adapter hands to the router's `handle_*` methods;
//! - down, the router answers with [`Action`]s the adapter applies:
//!   [`ServerSession::accept`] (with session present and the [`ResumeState`]
//!   of a persistent session) or [`ServerSession::refuse`],
//!   [`ServerSession::suback`], [`ServerSession::deliver`] (whose
//!   [`DeliverOutcome`] allows back-pressure) and [`ServerSession::close`].
//!   With [`ServerConfig::ack_after_route`] the adapter also calls
//!   [`ServerSession::ack`] once the router has taken a message. When a
//!   connection ends, [`ServerSession::into_resume_state`] gives the
//!   persistent state back to the router.
//!
//! The router runs as one instance or as several shards that exchange
//! [`ShardMessage`]s (see [`router`]).
//!
//! # Slow subscribers
//!
//! A subscriber that reads more slowly than its publishers write fills its
//! session's queue. What happens then is [`RouterConfig::slow_subscriber`]:
//! with the default [`SlowSubscriberPolicy::BackPressure`], the publishers
//! feeding a congested session are paused until it drains, so nothing is
//! lost; with [`SlowSubscriberPolicy::Drop`], the session drops at its
//! limits. Either way the queue never exceeds
//! [`ServerConfig::max_queued_messages`] and
//! [`ServerConfig::max_queued_bytes`], and every refused message is counted
//! and reported, as is every message evicted under
//! [`OverflowPolicy::DropOldest`] (the session answers
//! [`DeliverOutcome::QueuedEvictedOldest`]). The adapter's duties:
//!
//! 1. when an [`Event::Publish`] of connection `p` goes to
//!    [`Router::handle_publish`], the [`Action::Deliver`]s drained right
//!    after it were caused by `p`;
//! 2. after applying each `Action::Deliver` to connection `t`, call
//!    [`Router::handle_delivery`] on the router that emitted it, with `t`,
//!    `Some(p)` (or `None` when the delivery followed any other input,
//!    shard messages included), the [`DeliverOutcome`], and
//!    [`ServerSession::is_above_high_water`]; drain the router's actions
//!    (and shard messages) again;
//! 3. on [`Action::PausePublisher`] stop reading `p`'s transport (bytes
//!    already read still go to its session; its outputs and timers run as
//!    usual), and on [`Action::ResumePublisher`] read again;
//! 4. forward a session's [`Event::Drained`] to [`Router::handle_drained`];
//! 5. log [`Action::DeliveryDropped`] (the router has counted it);
//! 6. [`Router::handle_closed`] releases the publishers a closing target
//!    held back and forgets a closing publisher.
//!
//! Pausing stops a whole connection, QoS 0 traffic included. A connection
//! whose own queue is congested is never paused, since its queue drains
//! only as its client's acknowledgements are read.
//!
//! With several router shards the same holds across them: a
//! [`ShardMessage::Deliver`] names its publisher as a [`ShardConn`]; the
//! target's shard remembers it for the [`Action::Deliver`]s it emits (and
//! matches them, in order, with the `handle_delivery` reports that carry
//! `None`) and tells the publisher's shard about a congested target with
//! [`ShardMessage::CongestedBy`], which pauses the publisher there; the
//! target's drain or close sends [`ShardMessage::Drained`], and the
//! publisher resumes when nothing holds it any more. Wills, retained
//! messages and share-group redispatches have no publisher and pause
//! nobody.
//!
//! What the crate deliberately does not do: I/O of any kind, threads or
//! channels; the adapter moves bytes, events, actions and shard messages.
//!
//! # Methods of a session
//!
//! - inputs: [`handle_read`](ServerSession::handle_read),
//!   [`handle_timeout`](ServerSession::handle_timeout) (safe to call early),
//!   [`handle_transport_closed`](ServerSession::handle_transport_closed);
//! - router decisions and commands: `accept`, `refuse`, `suback`, `ack`,
//!   `deliver`, `close`;
//! - outputs, drained after every input or command in this order:
//!   [`poll_transmit`](ServerSession::poll_transmit) until it returns 0,
//!   [`poll_event`](ServerSession::poll_event) until `None`, then
//!   [`poll_timeout`](ServerSession::poll_timeout) to re-arm the timer.
//!
//! After [`Event::Closed`] the session produces nothing new; bytes queued
//! before the close (a refusing CONNACK, say) are still handed out by one last
//! `poll_transmit`, and then the adapter closes the transport.
//!
//! Key types: [`ServerSession`], [`ServerConfig`], [`Event`],
//! [`ResumeState`], [`DeliverOutcome`], [`ProtocolError`], [`UsageError`];
//! for routing [`Router`], [`RouterConfig`], [`SlowSubscriberPolicy`],
//! [`Action`], [`Auth`], [`Store`].
//!
//! ```
//! use bytes::BytesMut;
//! use midge_broker::{Event, ResumeState, ServerConfig, ServerSession};
//! use midge_codec::{Connect, Encode, MqttString};
//! use midge_time::Instant;
//!
//! let now = Instant::from_secs(1);
//! let mut session = ServerSession::new(ServerConfig::default(), now, 7);
//!
//! let mut wire = BytesMut::new();
//! Connect::new(MqttString::from_static("sensor-1").unwrap(), 30)
//!     .encode(&mut wire)
//!     .unwrap();
//! session.handle_read(now, &wire).unwrap();
//!
//! // Nothing goes out before the router decides.
//! let mut out = BytesMut::new();
//! assert_eq!(session.poll_transmit(now, &mut out), 0);
//! let Some(Event::ConnectRequest { client_id, .. }) = session.poll_event() else {
//!     panic!("expected a connect request");
//! };
//! assert_eq!(client_id, "sensor-1");
//!
//! session.accept(now, false, ResumeState::default()).unwrap();
//! assert_eq!(session.poll_transmit(now, &mut out), 4); // CONNACK
//! assert_eq!(&out[..], &[0x20, 0x02, 0x00, 0x00]);
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod config;
mod error;
mod event;
pub mod router;
mod session;

pub use config::{OverflowPolicy, ServerConfig, SlowSubscriberPolicy};
pub use error::{ProtocolError, UsageError};
pub use event::{
    AckToken, CloseReason, DeliverOutcome, DropReason, Event, InflightMessage, ResumeState, Stats,
};
pub use router::{
    shard_of, with_entry_qos, Action, AllowAll, Auth, CommitTicket, ConnId, ConnectRequest,
    MemoryStore, MessageId, QueuedMessage, Recovered, RecoveredSession, Router, RouterConfig,
    RouterStats, SessionState, ShardConn, ShardMessage, Store,
};
pub use session::ServerSession;

/// The time types every call takes, re-exported from `midge-time` for convenience.
pub use midge_time::{Duration, Instant};
