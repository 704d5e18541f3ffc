//! The async MQTT-SN 1.2 client, written once over any [`Runtime`]:
//! [`SnClient`] talks UDP to one gateway, with a future to await for each
//! publish, registration, subscription, sleep and wake, and a stream of
//! messages ([`SnMessages`]).
//!
//! What it deliberately does not do: protocol work (the sans-IO machine
//! [`midge_session::sn::client::SnClient`] does all of it: retransmission,
//! registration before a publish on a name, will prompts, keep alive,
//! sleeping; this module moves datagrams, deadlines and events between a
//! socket and that machine), reconnect by itself (a lost gateway fails the
//! waiters; [`SnClient::reconnect`] is the caller's choice), gateway
//! discovery through a driver API (broadcast SEARCHGW is sent only to the
//! address given by [`SnConnectOptions::with_broadcast`]), or forwarder
//! encapsulation.
//!
//! Key types: [`SnClient`] (a cheap, cloneable handle), [`SnConnectOptions`],
//! [`SnPending`] (the future of one answer), [`SnMessages`] and
//! [`SnMessage`], [`SnGranted`], [`SnClientError`], [`SnClientStats`].
//!
//! # How it runs
//!
//! [`SnClient::open`] binds a UDP socket and spawns one task on the runtime
//! that owns it; the machine sits behind a mutex shared with every handle,
//! never held across an `.await`. A handle method locks it, gives the
//! command to the machine, registers a waiter for the answer and wakes the
//! task. The task sends what the machine has to send, reads datagrams into
//! it, runs its timer, and hands answers to their waiters and messages to
//! [`SnMessages`]. Nothing has to be polled by the application.
//!
//! Every command returns at once: the returned [`SnPending`] only waits.
//! Dropping it loses nothing (the command stays queued; only its outcome is
//! not reported), so every future here is cancel-safe, and publishing from
//! inside the loop reading [`SnMessages`] cannot deadlock.
//!
//! When the connection ends other than by [`SnClient::disconnect`]
//! (the gateway lost after N_retry, refused, or its DISCONNECT), every
//! waiter fails with that reason. The machine keeps the commands that were
//! queued and sends them after a [`SnClient::reconnect`]; their outcome is
//! then no longer reported. When the last handle is dropped the task
//! disconnects politely (bounded by the retransmission limits) and ends,
//! which ends [`SnMessages`].
//!
//! QoS −1 needs no connection (spec 6.8): after [`SnClient::open`], a
//! publish on a pre-defined id or short name at [`PublishQoS::MinusOne`]
//! goes straight to the gateway.
//!
//! # Example
//!
//! ```no_run
//! use midge_client::sn::{PublishQoS, QoS, SnClient, SnConnectOptions, SnTopic};
//! use midge_tokio::TokioRuntime;
//!
//! # async fn run() -> Result<(), midge_client::sn::SnClientError> {
//! let options = SnConnectOptions::new("udp://127.0.0.1:1884", "sensor-7")?.with_keep_alive(30);
//! let (client, mut messages) = SnClient::<TokioRuntime>::connect(options).await?;
//! client.subscribe(SnTopic::Name("cmd/7/#".into()), QoS::AtLeastOnce)?.await?;
//! client
//!     .publish(SnTopic::Name("temp/7".into()), "21.5", PublishQoS::AtLeastOnce, false)?
//!     .await?; // resolves at PUBACK
//! if let Some(message) = messages.recv().await {
//!     println!("{}: {:?}", message.topic_text(), message.payload);
//! }
//! client.disconnect()?.await?;
//! # Ok(())
//! # }
//! ```

mod driver;
mod error;
mod message;
mod options;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use midge_runtime::Runtime;
use midge_session::sn::client::SnClient as Machine;

pub use error::SnClientError;
pub use message::{SnMessage, SnMessages};
pub use midge_session::sn::client::{SnClientConfig, SnState, SnStats, SnTopic, SnWill};
pub use midge_sn_codec::{PublishQoS, QoS, ReturnCode, TopicId};
pub use options::{SnConnectOptions, DEFAULT_SN_PORT};

use midge_session::sn::client::{DeliveryId, RequestId};

/// A one-shot answer: a channel of capacity one.
type Answer<T> = async_channel::Sender<Result<T, SnClientError>>;

/// What the gateway granted for a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnGranted {
    /// The granted QoS.
    pub qos: QoS,
    /// The topic id for a name without wildcards; 0x0000 otherwise
    /// (spec 6.9).
    pub topic_id: TopicId,
}

/// Counters of the async client, with the machine's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnClientStats {
    /// Connections the gateway accepted.
    pub connections: u64,
    /// Messages handed to [`SnMessages`].
    pub messages_received: u64,
    /// Messages dropped because [`SnMessages`] was full.
    pub messages_dropped: u64,
    /// Datagrams the machine refused as malformed or unexpected.
    pub malformed: u64,
    /// The machine's counters.
    pub machine: SnStats,
}

/// A request waiting for the gateway.
#[derive(Debug)]
enum Waiter {
    Register(Answer<TopicId>),
    Subscribe(Answer<SnGranted>),
    Done(Answer<()>),
}

/// The state shared by the handles and the task.
#[derive(Debug)]
struct Inner {
    machine: Machine<SocketAddr>,
    deliveries: HashMap<DeliveryId, Answer<()>>,
    requests: HashMap<RequestId, Waiter>,
    connects: Vec<Answer<()>>,
    sleeps: Vec<Answer<()>>,
    wakes: Vec<Answer<bool>>,
    disconnects: Vec<Answer<()>>,
    /// Set once the task has ended: every later call fails with it.
    ended: Option<SnClientError>,
    stats: SnClientStats,
}

impl Inner {
    /// Fails every waiter except deliveries and requests, which stay with
    /// the commands the machine keeps, unless `all`.
    fn fail_waiters(&mut self, error: &SnClientError, all: bool) {
        let fail = |tx: Answer<()>| drop(tx.try_send(Err(error.clone())));
        self.connects.drain(..).for_each(fail);
        self.sleeps.drain(..).for_each(fail);
        self.disconnects.drain(..).for_each(fail);
        for tx in self.wakes.drain(..) {
            drop(tx.try_send(Err(error.clone())));
        }
        if all {
            for (_, tx) in self.deliveries.drain() {
                drop(tx.try_send(Err(error.clone())));
            }
            for (_, waiter) in self.requests.drain() {
                fail_waiter(waiter, error.clone());
            }
        }
    }
}

fn fail_waiter(waiter: Waiter, error: SnClientError) {
    match waiter {
        Waiter::Register(tx) => drop(tx.try_send(Err(error))),
        Waiter::Subscribe(tx) => drop(tx.try_send(Err(error))),
        Waiter::Done(tx) => drop(tx.try_send(Err(error))),
    }
}

#[derive(Debug)]
struct Shared {
    inner: Mutex<Inner>,
}

impl Shared {
    /// Locks the state. A panic while holding the lock cannot leave it
    /// half-changed in a way that matters more than stopping would, so a
    /// poisoned lock is used as it is.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The future of one answer from the gateway (or the machine). Dropping it
/// loses nothing but the report of the outcome.
#[must_use = "an SnPending does nothing unless awaited; dropping it only forgoes the outcome"]
pub struct SnPending<T> {
    future: Pin<Box<dyn Future<Output = Result<T, SnClientError>> + Send>>,
}

impl<T: Send + 'static> SnPending<T> {
    fn new() -> (Answer<T>, Self) {
        let (tx, rx) = async_channel::bounded(1);
        let future = Box::pin(async move { rx.recv().await.unwrap_or(Err(SnClientError::Closed)) });
        (tx, Self { future })
    }
}

impl<T> Future for SnPending<T> {
    type Output = Result<T, SnClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.future.as_mut().poll(cx)
    }
}

impl<T> fmt::Debug for SnPending<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SnPending")
    }
}

/// A handle to an MQTT-SN client driven by a background task. Cheap to
/// clone; every clone drives the same client. When the last clone is
/// dropped the client disconnects and the task ends.
pub struct SnClient<R: Runtime> {
    rt: R,
    shared: Arc<Shared>,
    wake: async_channel::Sender<()>,
    gateway: SocketAddr,
    local: SocketAddr,
}

impl<R: Runtime> Clone for SnClient<R> {
    fn clone(&self) -> Self {
        Self {
            rt: self.rt.clone(),
            shared: Arc::clone(&self.shared),
            wake: self.wake.clone(),
            gateway: self.gateway,
            local: self.local,
        }
    }
}

impl<R: Runtime> fmt::Debug for SnClient<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.shared.lock();
        f.debug_struct("SnClient")
            .field("client_id", &inner.machine.config().client_id)
            .field("gateway", &self.gateway)
            .field("state", &inner.machine.state())
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> SnClient<R> {
    /// Opens a client on the runtime the caller runs on and connects it;
    /// resolves at CONNACK (after the will prompts if a will is set).
    ///
    /// # Errors
    /// As [`SnClient::open_with`], then [`SnClientError::Refused`] or
    /// [`SnClientError::GatewayLost`] when the gateway refuses or never
    /// answers (after N_retry retransmissions).
    pub async fn connect(options: SnConnectOptions) -> Result<(Self, SnMessages), SnClientError> {
        Self::connect_with(R::current(), options).await
    }

    /// [`SnClient::connect`] on the runtime `rt`.
    ///
    /// # Errors
    /// As [`SnClient::connect`].
    pub async fn connect_with(
        rt: R,
        options: SnConnectOptions,
    ) -> Result<(Self, SnMessages), SnClientError> {
        let (client, messages) = Self::open_with(rt, options).await?;
        client.reconnect()?.await?;
        Ok((client, messages))
    }

    /// Binds the socket and starts the task without connecting: QoS −1
    /// publishes work at once; [`SnClient::reconnect`] connects.
    ///
    /// # Errors
    /// [`SnClientError::Usage`] for a bad client id or configuration,
    /// [`SnClientError::Unresolved`] or [`SnClientError::Io`] when the
    /// gateway's name does not resolve or the socket cannot be bound.
    pub async fn open(options: SnConnectOptions) -> Result<(Self, SnMessages), SnClientError> {
        Self::open_with(R::current(), options).await
    }

    /// [`SnClient::open`] on the runtime `rt`.
    ///
    /// # Errors
    /// As [`SnClient::open`].
    pub async fn open_with(
        rt: R,
        options: SnConnectOptions,
    ) -> Result<(Self, SnMessages), SnClientError> {
        let SnConnectOptions {
            host,
            port,
            bind,
            broadcast,
            max_buffered,
            mut config,
        } = options;
        let addrs = rt
            .resolve(&host, port)
            .await
            .map_err(|e| SnClientError::Unresolved {
                host: host.clone(),
                reason: e.to_string(),
            })?;
        let gateway = addrs
            .first()
            .copied()
            .ok_or_else(|| SnClientError::Unresolved {
                host: host.clone(),
                reason: "no address".to_owned(),
            })?;
        config.gateways.insert(0, (0, gateway));
        let machine = Machine::new(config)?;
        let bind = bind.unwrap_or_else(|| {
            let unspecified: std::net::IpAddr = if gateway.is_ipv4() {
                std::net::Ipv4Addr::UNSPECIFIED.into()
            } else {
                std::net::Ipv6Addr::UNSPECIFIED.into()
            };
            SocketAddr::new(unspecified, 0)
        });
        let socket = rt
            .bind_udp(bind)
            .await
            .map_err(|e| SnClientError::Io(e.to_string()))?;
        let local = R::udp_local_addr(&socket).map_err(|e| SnClientError::Io(e.to_string()))?;
        if broadcast.is_some() {
            R::set_udp_broadcast(&socket, true).map_err(|e| SnClientError::Io(e.to_string()))?;
        }
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                machine,
                deliveries: HashMap::new(),
                requests: HashMap::new(),
                connects: Vec::new(),
                sleeps: Vec::new(),
                wakes: Vec::new(),
                disconnects: Vec::new(),
                ended: None,
                stats: SnClientStats::default(),
            }),
        });
        let (wake, wake_rx) = async_channel::bounded(1);
        let (message_tx, message_rx) = async_channel::bounded(max_buffered.max(1));
        let task = driver::Driver {
            rt: rt.clone(),
            socket,
            shared: Arc::clone(&shared),
            wake_rx,
            message_tx,
            broadcast,
        };
        rt.spawn(task.run());
        let client = Self {
            rt,
            shared,
            wake,
            gateway,
            local,
        };
        Ok((client, SnMessages { rx: message_rx }))
    }

    /// Runs `f` on the machine under the lock, then wakes the task.
    fn command<T>(
        &self,
        f: impl FnOnce(&mut Inner, midge_runtime::Instant) -> Result<T, SnClientError>,
    ) -> Result<T, SnClientError> {
        let result = {
            let mut inner = self.shared.lock();
            if let Some(e) = &inner.ended {
                return Err(e.clone());
            }
            f(&mut inner, self.rt.now())
        };
        // A full channel already holds a wake-up for the task.
        let _ = self.wake.try_send(());
        result
    }

    /// Sends CONNECT to the gateway: the first connection of an
    /// [`open`](SnClient::open)ed client, again after a disconnect or a lost
    /// gateway, or from the asleep state (spec 6.14: CONNECT makes a
    /// sleeping client active). Resolves at CONNACK.
    ///
    /// # Errors
    /// At once: [`SnClientError::Usage`] when already connected or
    /// connecting. Awaited: [`SnClientError::Refused`],
    /// [`SnClientError::GatewayLost`], or [`SnClientError::Disconnected`] if
    /// [`SnClient::disconnect`] abandoned the attempt.
    pub fn reconnect(&self) -> Result<SnPending<()>, SnClientError> {
        let gateway = self.gateway;
        self.command(|inner, now| {
            inner.machine.connect(now, gateway)?;
            let (tx, pending) = SnPending::new();
            inner.connects.push(tx);
            Ok(pending)
        })
    }

    /// Publishes `payload` on `topic`. Resolves when the message is done:
    /// QoS −1 and 0 once sent, QoS 1 at PUBACK, QoS 2 at PUBCOMP. A name is
    /// registered first if the client has no id for it (spec 6.5). QoS −1
    /// takes a pre-defined id or a short name and needs no connection.
    ///
    /// # Errors
    /// At once: [`SnClientError::Usage`] (bad topic, queue full, QoS −1 on
    /// a name, ...). Awaited: [`SnClientError::Dropped`] when the gateway
    /// refused the registration or the publish, or the reason the
    /// connection ended.
    pub fn publish(
        &self,
        topic: SnTopic,
        payload: impl Into<Bytes>,
        qos: PublishQoS,
        retain: bool,
    ) -> Result<SnPending<()>, SnClientError> {
        let payload = payload.into();
        self.command(|inner, now| {
            let id = inner.machine.publish(now, topic, payload, qos, retain)?;
            let (tx, pending) = SnPending::new();
            inner.deliveries.insert(id, tx);
            Ok(pending)
        })
    }

    /// Registers a topic name ahead of publishing on it (spec 6.5);
    /// resolves to the id the gateway assigned.
    ///
    /// # Errors
    /// At once: [`SnClientError::Usage`]. Awaited:
    /// [`SnClientError::Rejected`] with the gateway's code.
    pub fn register(&self, topic: &str) -> Result<SnPending<TopicId>, SnClientError> {
        self.command(|inner, now| {
            let id = inner.machine.register(now, topic)?;
            let (tx, pending) = SnPending::new();
            inner.requests.insert(id, Waiter::Register(tx));
            Ok(pending)
        })
    }

    /// Subscribes to a name (wildcards allowed), a pre-defined id or a short
    /// name (spec 6.9); resolves to what the gateway granted.
    ///
    /// # Errors
    /// At once: [`SnClientError::Usage`]. Awaited:
    /// [`SnClientError::Rejected`] with the gateway's code.
    pub fn subscribe(
        &self,
        topic: SnTopic,
        qos: QoS,
    ) -> Result<SnPending<SnGranted>, SnClientError> {
        self.command(|inner, now| {
            let id = inner.machine.subscribe(now, topic, qos)?;
            let (tx, pending) = SnPending::new();
            inner.requests.insert(id, Waiter::Subscribe(tx));
            Ok(pending)
        })
    }

    /// Unsubscribes (spec 6.9); resolves at UNSUBACK.
    ///
    /// # Errors
    /// At once: [`SnClientError::Usage`].
    pub fn unsubscribe(&self, topic: SnTopic) -> Result<SnPending<()>, SnClientError> {
        self.command(|inner, now| {
            let id = inner.machine.unsubscribe(now, topic)?;
            let (tx, pending) = SnPending::new();
            inner.requests.insert(id, Waiter::Done(tx));
            Ok(pending)
        })
    }

    /// Replaces the will topic at the gateway (WILLTOPICUPD, spec 6.4).
    ///
    /// # Errors
    /// At once: [`SnClientError::Usage`]. Awaited:
    /// [`SnClientError::Rejected`] with the gateway's code.
    pub fn update_will_topic(
        &self,
        topic: &str,
        qos: QoS,
        retain: bool,
    ) -> Result<SnPending<()>, SnClientError> {
        self.command(|inner, now| {
            let id = inner.machine.update_will_topic(now, topic, qos, retain)?;
            let (tx, pending) = SnPending::new();
            inner.requests.insert(id, Waiter::Done(tx));
            Ok(pending)
        })
    }

    /// Replaces the will message at the gateway (WILLMSGUPD, spec 6.4).
    ///
    /// # Errors
    /// As [`SnClient::update_will_topic`].
    pub fn update_will_msg(
        &self,
        payload: impl Into<Bytes>,
    ) -> Result<SnPending<()>, SnClientError> {
        let payload = payload.into();
        self.command(|inner, now| {
            let id = inner.machine.update_will_msg(now, payload)?;
            let (tx, pending) = SnPending::new();
            inner.requests.insert(id, Waiter::Done(tx));
            Ok(pending)
        })
    }

    /// Deletes the will at the gateway (empty WILLTOPICUPD, spec 6.4).
    ///
    /// # Errors
    /// As [`SnClient::update_will_topic`].
    pub fn clear_will(&self) -> Result<SnPending<()>, SnClientError> {
        self.command(|inner, now| {
            let id = inner.machine.clear_will(now)?;
            let (tx, pending) = SnPending::new();
            inner.requests.insert(id, Waiter::Done(tx));
            Ok(pending)
        })
    }

    /// Goes to sleep for `secs` seconds (DISCONNECT with a duration, spec
    /// 6.14); the gateway buffers messages meanwhile. Resolves when the
    /// gateway confirmed. Call [`SnClient::wake_once`] before the duration
    /// ends to collect what it buffered and keep the client asleep, or
    /// [`SnClient::reconnect`] to become active.
    ///
    /// # Errors
    /// At once: [`SnClientError::Usage`] (a zero duration, not connected).
    /// Awaited: the reason the connection ended.
    pub fn sleep(&self, secs: u16) -> Result<SnPending<()>, SnClientError> {
        self.command(|inner, now| {
            inner.machine.sleep(now, secs)?;
            let (tx, pending) = SnPending::new();
            inner.sleeps.push(tx);
            Ok(pending)
        })
    }

    /// From the asleep state, wakes once (PINGREQ with the client id): the
    /// buffered messages arrive in [`SnMessages`], then the gateway's
    /// PINGRESP puts the client back to sleep. Resolves to `true` at
    /// PINGRESP, `false` if N_retry PINGREQs went unanswered.
    ///
    /// # Errors
    /// At once: [`SnClientError::Usage`] when not asleep.
    pub fn wake_once(&self) -> Result<SnPending<bool>, SnClientError> {
        self.command(|inner, now| {
            inner.machine.wake_once(now)?;
            let (tx, pending) = SnPending::new();
            inner.wakes.push(tx);
            Ok(pending)
        })
    }

    /// Ends the connection with DISCONNECT (spec 6.12), after the commands
    /// queued before it. Resolves when the gateway answered (or did not,
    /// after N_retry retransmissions). The task keeps running: QoS −1
    /// publishes and [`SnClient::reconnect`] still work.
    ///
    /// # Errors
    /// At once: [`SnClientError::Usage`] when not connected.
    pub fn disconnect(&self) -> Result<SnPending<()>, SnClientError> {
        self.command(|inner, now| {
            inner.machine.disconnect(now)?;
            let (tx, pending) = SnPending::new();
            inner.disconnects.push(tx);
            Ok(pending)
        })
    }

    /// Where the client stands with its gateway.
    #[must_use]
    pub fn state(&self) -> SnState {
        self.shared.lock().machine.state()
    }

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> SnClientStats {
        let inner = self.shared.lock();
        SnClientStats {
            machine: inner.machine.stats(),
            ..inner.stats
        }
    }

    /// The id the gateway assigned to a topic name, if the client knows it.
    #[must_use]
    pub fn topic_id(&self, name: &str) -> Option<TopicId> {
        self.shared.lock().machine.topic_id(name)
    }

    /// The gateway's address.
    #[must_use]
    pub fn gateway(&self) -> SocketAddr {
        self.gateway
    }

    /// The local address of the client's socket.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}
