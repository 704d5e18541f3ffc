//! The MQTT 3.1.1 (and 3.1) client as a sans-IO state machine: fully
//! deterministic, it performs no I/O and never reads a clock. The caller
//! feeds it bytes, the current time and commands, and gets back bytes to
//! write, events for the application, and the instant it next needs a call.
//!
//! What it does: CONNECT with every option and CONNACK with every return code;
//! PUBLISH at QoS 0, 1 and 2 in both directions, with packet ids that are
//! never reused while in flight, an inflight window and a bounded queue
//! behind it; inbound QoS 2 delivered to the application exactly once;
//! optional manual acknowledgement that still acknowledges in arrival order;
//! SUBSCRIBE/UNSUBSCRIBE; keep alive (PINGREQ when idle, the connection
//! declared dead when PINGRESP is late); session resume on reconnect.
//!
//! What it deliberately does not do: open sockets, spawn tasks, sleep, read
//! time, reconnect by itself (the caller decides when and calls
//! [`Client::connect`] again), persist the session to disk, or route inbound
//! messages to subscriptions (every message is one [`Event::Message`]). It
//! builds without `std` (needs `alloc`) and uses no `unsafe`.
//!
//! Key types: [`Client`] (the machine), [`ClientConfig`], [`Event`],
//! [`DeliveryId`] / [`RequestId`] / [`AckToken`], and the two error types
//! split by blame: [`UsageError`] (the caller) and [`ProtocolError`] (the
//! server).
//!
//! # MQTT-SN
//!
//! The [`sn`] module holds the MQTT-SN 1.2 machines, built on
//! `midge-sn-codec` with the same sans-IO shape (datagrams in with their
//! sender, addressed datagrams out): [`sn::client::SnClient`], the client
//! (gateway discovery, will prompts, topic registration, QoS −1 to 2,
//! sleeping, retransmission and gateway switch, congestion back-off).
//!
//! [`sn::gateway::Gateway`] is the transparent gateway core: one [`Client`]
//! per SN client toward the broker, whose bytes the caller carries
//! ([`sn::gateway::BrokerOp`] out, `handle_broker_*` in), so the same core
//! runs inside a broker (piped into its sessions in memory) or in front of
//! any broker over TCP. It keeps each client's state (active, asleep, awake,
//! lost, disconnected), will, topic registry and buffered messages, answers
//! discovery, unwraps forwarder traffic, and holds every table to a limit of
//! [`sn::gateway::GatewayConfig`].
//!
//! # Methods
//!
//! - getters: [`Client::state`], [`Client::inflight_len`], [`Client::stats`], …
//! - inputs, `handle_*`: [`Client::handle_read`] (bytes from the transport),
//!   [`Client::handle_timeout`] (safe to call early or spuriously),
//!   [`Client::handle_transport_closed`];
//! - commands: [`Client::connect`] (a transport was just opened),
//!   [`Client::publish`], [`Client::subscribe`], [`Client::unsubscribe`],
//!   [`Client::ack`], [`Client::disconnect`];
//! - outputs, `poll_*`: [`Client::poll_transmit`], [`Client::poll_event`],
//!   [`Client::poll_timeout`].
//!
//! Every state-changing call takes `now`, an [`Instant`] from whatever clock
//! the caller uses. After every input or command, drain the outputs in this
//! order: call `poll_transmit` until it writes nothing and send the bytes,
//! then `poll_event` until `None`, then `poll_timeout` and arm a timer for it.
//!
//! # Behaviour worth knowing
//!
//! - A QoS 0 publish is reported [`Event::Delivered`] when `poll_transmit`
//!   writes it; QoS 1 at PUBACK, QoS 2 at PUBCOMP.
//! - An acknowledgement (PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK) for a
//!   packet id nothing waits for is ignored and counted in
//!   [`Stats::unexpected_acks`]: after a resend, duplicates are legitimate.
//! - On reconnect with `clean_session = false`, every unacknowledged QoS 1/2
//!   PUBLISH (DUP set if it went out before) and every pending PUBREL is sent
//!   again in its original order with its original id, before anything new
//!   [MQTT-4.4.0-1]. If the server answers "no session present", the
//!   outbound side is still resent, but the inbound QoS 2 ids awaiting PUBREL
//!   are forgotten: the server has forgotten them too, and a new message
//!   reusing such an id must not be mistaken for a duplicate.
//! - A QoS 0 publish still unwritten when a connection ends is reported
//!   [`Event::Dropped`].
//! - Publishes held before they go out are bounded: QoS 0 ones not yet
//!   written and QoS 1/2 ones behind the window count together against
//!   [`ClientConfig::max_queued`], and `publish` answers
//!   [`UsageError::QueueFull`] at the limit, so a caller that publishes
//!   faster than its transport writes cannot grow memory without bound.
//! - With `clean_session = true` the session ends with the connection:
//!   publishes never written go back to the queue for the next connection,
//!   written ones end in [`Event::Dropped`] (or `Delivered` if PUBREC came).
//! - Unanswered SUBSCRIBE/UNSUBSCRIBE requests are sent again after the next
//!   CONNACK, with the same id.
//! - Bytes read while no connection is open, or after `disconnect`, are
//!   ignored.
//!
//! # Example
//!
//! ```
//! use bytes::BytesMut;
//! use midge_codec::{ConnAck, ConnectReturnCode, Encode, PacketId, PubAck, QoS};
//! use midge_session::{Client, ClientConfig, Event};
//! use midge_time::{Duration, Instant};
//!
//! let mut client = Client::new(ClientConfig::new("sensor-7"))?;
//! let mut now = Instant::ZERO;
//! let mut out = BytesMut::new();
//!
//! client.connect(now)?; // the caller has just opened a TCP connection
//! assert_eq!(client.poll_transmit(now, &mut out), 1); // CONNECT
//!
//! // The server answers.
//! let mut server = BytesMut::new();
//! ConnAck::new(ConnectReturnCode::Accepted, false).encode(&mut server)?;
//! now += Duration::from_millis(20);
//! client.handle_read(now, &server)?;
//! assert_eq!(client.poll_event(), Some(Event::Connected { session_present: false }));
//!
//! let id = client.publish(now, "sensors/7/temp", &b"21.5"[..], QoS::AtLeastOnce, false)?;
//! out.clear();
//! assert_eq!(client.poll_transmit(now, &mut out), 1); // PUBLISH, packet id 1
//!
//! server.clear();
//! PubAck::new(PacketId::new(1).unwrap()).encode(&mut server)?;
//! client.handle_read(now, &server)?;
//! assert_eq!(client.poll_event(), Some(Event::Delivered { id }));
//!
//! // Keep alive: 60 s after the last packet written, a PINGREQ is due.
//! assert_eq!(client.poll_timeout(), Some(now + Duration::from_secs(60)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod client;
mod config;
mod error;
mod event;
pub mod sn;

pub use client::{Client, ConnectionState, Stats};
pub use config::ClientConfig;
pub use error::{ProtocolError, UsageError};
pub use event::{AckToken, DeliveryId, DisconnectReason, Event, RequestId};
pub use midge_time::Instant;
