//! The Midge async MQTT 3.1.1 client, written once over any
//! [`Runtime`]: connect, publish with a handle to
//! each message's acknowledgement, subscribe, receive a stream of messages,
//! and reconnect by itself. `midge-tokio` and `midge-smol` re-export it as
//! `Client` on their runtime.
//!
//! What it deliberately does not do: any protocol work (the session machine
//! `midge_session::Client` does all of it; this crate moves bytes, deadlines
//! and events between a socket and that machine), persistence of the
//! session to disk, or routing incoming messages to
//! per-subscription handlers (every message arrives in one [`Messages`]).
//!
//! Key types: [`Client`] (a cheap, cloneable handle), [`ConnectOptions`]
//! and [`Reconnect`], [`Delivery`] (the future of one publish), [`Messages`]
//! and [`Message`], [`ClientError`], [`ClientStats`]. The MQTT-SN client
//! lives apart, in [`sn`] ([`sn::SnClient`]).
//!
//! # Transports
//!
//! `mqtt://` is TCP, `mqtts://` TLS 1.2 or 1.3 (rustls; trusted roots,
//! client certificate and `insecure` in [`TlsOptions`]), `ws://` and
//! `wss://` MQTT over WebSocket with the `mqtt` sub-protocol, the URL's path
//! (default `/mqtt`) and binary frames. Certificate files are read by
//! [`Client::connect`], once.
//!
//! # How it runs
//!
//! [`Client::connect`] spawns one driver task on the runtime. The task owns
//! the socket; the session machine sits behind a mutex shared with every
//! handle. A handle method locks it briefly, hands the command to the
//! machine, registers a waiter for the answer, wakes the driver and unlocks;
//! the lock is never held across an `.await`. [`Messages`] acknowledges the
//! same way, before it hands a QoS 1/2 message out, so that acknowledgement
//! is written before anything the application asks for next (a
//! [`Client::disconnect`] right after the last message included). The
//! driver reads the socket
//! into the machine, writes what the machine has to send, runs its timers
//! (keep alive, CONNACK), and passes answers to their waiters and messages
//! to [`Messages`]. Nothing has to be polled by the application for
//! acknowledgements to flow.
//!
//! # Flow control
//!
//! The driver never waits for the application, so publishing from inside
//! the loop that reads [`Messages`] cannot deadlock. Instead:
//!
//! - a QoS 1 or 2 message is acknowledged to the broker only when the
//!   application takes it from [`Messages`]; the broker's inflight window
//!   therefore bounds how many of them wait;
//! - a QoS 0 message that arrives while
//!   [`ConnectOptions::max_buffered_messages`] messages are already waiting
//!   is dropped and counted in [`ClientStats::qos0_dropped`];
//! - only as a last resort, when a broker ignores its window and twice the
//!   limit are waiting, the driver stops reading the socket until the
//!   application has brought the buffer back under the limit (counted in
//!   [`ClientStats::read_pauses`]). Keep alive may then time out, which
//!   ends that connection.
//!
//! Outbound, the session holds at most
//! [`ConnectOptions::with_max_queued`] messages that have not gone out yet
//! (QoS 0 not yet written, QoS 1/2 behind the inflight window); beyond it
//! [`Client::publish`] fails at once with [`UsageError::QueueFull`]. To
//! publish faster than the network allows without losing messages, await
//! the [`Delivery`] of earlier publishes (all, or every n-th) and retry
//! after one resolves.
//!
//! # Reconnection
//!
//! After a lost connection the driver waits a jittered, exponentially
//! growing delay ([`Reconnect`]) and connects again. The session machine
//! keeps QoS 1/2 messages queued or in flight, and resends the unacknowledged
//! ones (with DUP set) when the session is persistent
//! (`clean_session = false`). When the broker says it kept no session, the
//! driver subscribes again to every filter the application subscribed to.
//! A refusal with 0x01, 0x02, 0x04 or 0x05 ends the client with
//! [`ClientError::Refused`]; 0x03 (server unavailable) is retried.
//!
//! # Example
//!
//! ```no_run
//! use midge_client::{Client, ConnectOptions, QoS};
//! use midge_tokio::TokioRuntime;
//!
//! # async fn run() -> Result<(), midge_client::ClientError> {
//! let options = ConnectOptions::new("mqtt://localhost:1883", "sensor-7")?
//!     .with_keep_alive(30);
//! let (client, mut messages) = Client::<TokioRuntime>::connect(options).await?;
//!
//! client.subscribe("commands/sensor-7/#", QoS::AtLeastOnce).await?;
//! client
//!     .publish("sensors/7/temp", "21.5", QoS::AtLeastOnce, false)?
//!     .await?; // resolves at PUBACK
//!
//! while let Some(message) = messages.recv().await {
//!     println!("{}: {:?}", message.topic_str(), message.payload);
//!     if message.payload.as_ref() == b"stop" {
//!         break;
//!     }
//!     // Publishing from here cannot deadlock: `publish` never waits.
//!     let _ = client.publish("acks/sensor-7", message.payload, QoS::AtMostOnce, false)?;
//! }
//! client.disconnect().await?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod client;
mod driver;
mod error;
mod message;
mod options;
pub mod sn;
mod transport;

pub use client::{Client, ClientStats, Delivery};
pub use error::ClientError;
pub use message::{Message, Messages};
pub use options::{ConnectOptions, Reconnect};
pub use transport::TlsOptions;

pub use bytes::Bytes;
pub use midge_codec::{ConnectReturnCode, LastWill, Protocol, QoS, SubscribeReturnCode, Topic};
pub use midge_runtime::{BrokerUrl, Runtime, Scheme};
pub use midge_session::{ClientConfig, ProtocolError, UsageError};
