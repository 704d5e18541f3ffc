//! [`Client`], the handle the application holds, and [`Delivery`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use midge_codec::{QoS, SubscribeReturnCode};
use midge_runtime::Runtime;
use midge_session::{DeliveryId, RequestId};

use crate::driver::Driver;
use crate::message::{Clock, Incoming, Messages};
use crate::transport;
use crate::{ClientError, ConnectOptions};

/// A one-shot answer: a channel of capacity one.
pub(crate) type Answer<T> = async_channel::Sender<Result<T, ClientError>>;

/// A subscribe or unsubscribe waiting for the broker's answer.
#[derive(Debug)]
pub(crate) enum Pending {
    /// SUBSCRIBE; `tx` is `None` for the driver's own resubscription.
    Subscribe {
        tx: Option<Answer<Vec<SubscribeReturnCode>>>,
        filters: Vec<String>,
    },
    /// UNSUBSCRIBE.
    Unsubscribe { tx: Answer<()> },
}

/// Counters kept by the async client, with the session machine's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientStats {
    /// Connections the broker accepted (the first one included).
    pub connections: u64,
    /// Application messages received and handed to [`Messages`].
    pub messages_received: u64,
    /// QoS 0 messages dropped because `max_buffered_messages` were already
    /// waiting for the application.
    pub qos0_dropped: u64,
    /// Times the driver stopped reading the socket because the broker sent
    /// QoS 1/2 messages beyond twice `max_buffered_messages` (a broker
    /// ignoring its inflight window).
    pub read_pauses: u64,
    /// Outbound QoS 1/2 messages awaiting their acknowledgement now.
    pub inflight: usize,
    /// Outbound QoS 1/2 messages waiting behind the inflight window now.
    pub queued: usize,
    /// Outbound QoS 0 messages accepted but not yet written now. With
    /// `queued` they are held to
    /// [`ConnectOptions::with_max_queued`](crate::ConnectOptions::with_max_queued).
    pub queued_qos0: usize,
    /// The session machine's counters.
    pub session: midge_session::Stats,
}

/// The state shared by the handles and the driver task.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) machine: midge_session::Client,
    pub(crate) deliveries: HashMap<DeliveryId, Answer<()>>,
    pub(crate) requests: HashMap<RequestId, Pending>,
    /// What the application subscribed to, to subscribe again on a
    /// connection without a session.
    pub(crate) subscriptions: BTreeMap<String, QoS>,
    pub(crate) session_present: bool,
    pub(crate) connected: bool,
    /// Set once the driver has ended: every later call fails with it.
    pub(crate) ended: Option<ClientError>,
    pub(crate) disconnect_requested: bool,
    pub(crate) closed_waiters: Vec<async_channel::Sender<()>>,
    pub(crate) stats: ClientStats,
}

#[derive(Debug)]
pub(crate) struct Shared {
    inner: Mutex<Inner>,
}

impl Shared {
    /// Locks the state. A panic while holding the lock cannot leave it
    /// half-changed in a way that matters more than stopping would, so a
    /// poisoned lock is used as it is.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A handle to an MQTT connection driven by a background task. Cheap to
/// clone; every clone drives the same connection. When the last clone is
/// dropped the client disconnects politely and the task ends.
///
/// Create one with [`Client::connect`] (the runtime you are running on) or
/// [`Client::connect_with`].
pub struct Client<R: Runtime> {
    rt: R,
    shared: Arc<Shared>,
    wake: async_channel::Sender<()>,
}

impl<R: Runtime> Clone for Client<R> {
    fn clone(&self) -> Self {
        Self {
            rt: self.rt.clone(),
            shared: Arc::clone(&self.shared),
            wake: self.wake.clone(),
        }
    }
}

impl<R: Runtime> fmt::Debug for Client<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.shared.lock();
        f.debug_struct("Client")
            .field("client_id", &inner.machine.config().client_id)
            .field("connected", &inner.connected)
            .field("ended", &inner.ended)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> Client<R> {
    /// Connects on the runtime the caller is running on
    /// ([`Runtime::current`]) and resolves once the broker has accepted the
    /// connection. Returns the handle and the stream of incoming messages.
    ///
    /// The first attempt is not retried: if the broker cannot be reached,
    /// refuses the connection (any return code) or does not answer within
    /// [`ConnectOptions::connect_timeout`], that error is returned. Later
    /// lost connections are retried as [`ConnectOptions::reconnect`] says.
    ///
    /// # Errors
    /// [`ClientError::Tls`] (certificate files, handshake),
    /// [`ClientError::WebSocket`], [`ClientError::Usage`] (a
    /// configuration the session refuses), [`ClientError::Unreachable`],
    /// [`ClientError::Timeout`], [`ClientError::Refused`],
    /// [`ClientError::Io`], [`ClientError::Protocol`].
    ///
    /// # Cancel safety
    /// Cancel-safe: dropping the future stops the attempt (politely, if the
    /// connection was already open) and leaves nothing behind.
    ///
    /// # Panics
    /// When [`Runtime::current`] does: tokio's outside a tokio runtime.
    pub async fn connect(options: ConnectOptions) -> Result<(Self, Messages), ClientError> {
        Self::connect_with(R::current(), options).await
    }

    /// As [`Client::connect`], on the given runtime.
    ///
    /// # Errors
    /// As [`Client::connect`].
    ///
    /// # Cancel safety
    /// As [`Client::connect`].
    pub async fn connect_with(
        rt: R,
        options: ConnectOptions,
    ) -> Result<(Self, Messages), ClientError> {
        // Certificate files are read once, here, so a bad one fails the
        // call rather than every reconnection.
        let tls = if options.url.scheme.is_tls() {
            Some(transport::client_config(
                &options.tls.clone().unwrap_or_default(),
            )?)
        } else {
            None
        };
        let mut config = options.config.clone();
        config.manual_acks = true;
        config.connack_timeout = options.connect_timeout;
        let machine = midge_session::Client::new(config)?;
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                machine,
                deliveries: HashMap::new(),
                requests: HashMap::new(),
                subscriptions: BTreeMap::new(),
                session_present: false,
                connected: false,
                ended: None,
                disconnect_requested: false,
                closed_waiters: Vec::new(),
                stats: ClientStats::default(),
            }),
        });
        let (wake_tx, wake_rx) = async_channel::bounded(1);
        let (nudge_tx, nudge_rx) = async_channel::bounded::<()>(1);
        let (message_tx, message_rx) = async_channel::unbounded::<Incoming>();
        let (first_tx, first_rx) = async_channel::bounded(1);
        let paused = Arc::new(AtomicBool::new(false));
        let client = Self {
            rt: rt.clone(),
            shared: Arc::clone(&shared),
            wake: wake_tx,
        };
        let clock: Clock = {
            let rt = rt.clone();
            Arc::new(move || rt.now())
        };
        let messages = Messages::new(
            message_rx,
            Arc::clone(&shared),
            clock,
            nudge_tx,
            Arc::clone(&paused),
        );
        let driver = Driver::new(
            rt.clone(),
            shared,
            &options,
            wake_rx,
            nudge_rx,
            message_tx,
            first_tx,
            paused,
            tls,
        );
        rt.spawn(driver.run());
        match first_rx.recv().await {
            Ok(Ok(())) => Ok((client, messages)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ClientError::Disconnected),
        }
    }

    /// Publishes a message. Never waits: the message is handed to the
    /// session at once and the returned [`Delivery`] resolves when it is
    /// done (QoS 0: written to the connection's buffer; QoS 1: PUBACK;
    /// QoS 2: PUBCOMP). Dropping the `Delivery` does not cancel the publish.
    ///
    /// QoS 1/2 messages published while the connection is down (or the
    /// inflight window is full) wait in the session's queue and go out on
    /// the next connection. QoS 0 needs a live connection.
    ///
    /// # Back-pressure
    ///
    /// What waits in the client is bounded: QoS 0 messages not yet written
    /// to the connection and QoS 1/2 messages behind the inflight window
    /// count together against
    /// [`ConnectOptions::with_max_queued`](crate::ConnectOptions::with_max_queued)
    /// (default 1000). At the limit `publish` fails at once with
    /// [`UsageError::QueueFull`](midge_session::UsageError::QueueFull) and
    /// nothing is kept. An application that may publish faster than the
    /// network takes it either awaits each [`Delivery`] (or every n-th, to
    /// keep up to n in the air), or, on `QueueFull`, awaits an earlier
    /// `Delivery` and publishes again.
    ///
    /// # Errors
    /// At once, with nothing sent: [`ClientError::Usage`] for a bad topic,
    /// an oversized payload, a full queue
    /// ([`UsageError::QueueFull`](midge_session::UsageError::QueueFull)) or
    /// QoS 0 without a connection
    /// ([`UsageError::NotConnected`](midge_session::UsageError::NotConnected));
    /// the client's final error once it has ended.
    pub fn publish(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        qos: QoS,
        retain: bool,
    ) -> Result<Delivery, ClientError> {
        let now = self.rt.now();
        let (tx, rx) = async_channel::bounded(1);
        let id = {
            let mut inner = self.shared.lock();
            check_open(&inner)?;
            let id = inner.machine.publish(now, topic, payload, qos, retain)?;
            inner.deliveries.insert(id, tx);
            id
        };
        self.wake();
        Ok(Delivery::new(id.get(), rx))
    }

    /// Subscribes to one filter and returns the QoS the broker granted.
    ///
    /// The subscription is remembered: after a reconnection where the
    /// broker kept no session, the client subscribes again by itself.
    ///
    /// # Errors
    /// [`ClientError::SubscriptionRefused`] when the broker answers 0x80;
    /// [`ClientError::Usage`] for a bad filter or too many pending requests;
    /// the client's final error if it ends before the answer.
    ///
    /// # Cancel safety
    /// The SUBSCRIBE is sent whether or not the future is polled to the
    /// end; dropping it only discards the answer.
    pub async fn subscribe(&self, filter: &str, qos: QoS) -> Result<QoS, ClientError> {
        let codes = self.subscribe_many(&[(filter, qos)]).await?;
        match codes.first() {
            Some(SubscribeReturnCode::Success(granted)) => Ok(*granted),
            _ => Err(ClientError::SubscriptionRefused {
                filter: filter.to_owned(),
            }),
        }
    }

    /// Subscribes to several filters in one SUBSCRIBE and returns the
    /// broker's answer for each, in order (a refused filter is
    /// [`SubscribeReturnCode::Failure`], not an error).
    ///
    /// # Errors
    /// [`ClientError::Usage`] for no filters, a bad filter or too many
    /// pending requests; the client's final error if it ends before the
    /// answer.
    ///
    /// # Cancel safety
    /// As [`Client::subscribe`].
    pub async fn subscribe_many(
        &self,
        filters: &[(&str, QoS)],
    ) -> Result<Vec<SubscribeReturnCode>, ClientError> {
        let now = self.rt.now();
        let (tx, rx) = async_channel::bounded(1);
        {
            let mut inner = self.shared.lock();
            check_open(&inner)?;
            let id = inner.machine.subscribe(now, filters)?;
            for (filter, qos) in filters {
                inner.subscriptions.insert((*filter).to_owned(), *qos);
            }
            let filters = filters.iter().map(|(f, _)| (*f).to_owned()).collect();
            inner.requests.insert(
                id,
                Pending::Subscribe {
                    tx: Some(tx),
                    filters,
                },
            );
        }
        self.wake();
        rx.recv().await.unwrap_or(Err(ClientError::Disconnected))
    }

    /// Removes subscriptions; resolves at the broker's UNSUBACK.
    ///
    /// # Errors
    /// [`ClientError::Usage`] for no filters, a bad filter or too many
    /// pending requests; the client's final error if it ends before the
    /// answer.
    ///
    /// # Cancel safety
    /// The UNSUBSCRIBE is sent whether or not the future is polled to the
    /// end; dropping it only discards the answer.
    pub async fn unsubscribe(&self, filters: &[&str]) -> Result<(), ClientError> {
        let now = self.rt.now();
        let (tx, rx) = async_channel::bounded(1);
        {
            let mut inner = self.shared.lock();
            check_open(&inner)?;
            let id = inner.machine.unsubscribe(now, filters)?;
            for filter in filters {
                inner.subscriptions.remove(*filter);
            }
            inner.requests.insert(id, Pending::Unsubscribe { tx });
        }
        self.wake();
        rx.recv().await.unwrap_or(Err(ClientError::Disconnected))
    }

    /// Ends the client politely: whatever the session has ready to send is
    /// written, then DISCONNECT, then the connection is closed and the
    /// driver task ends; resolves when it has. Messages still waiting for
    /// room in the inflight window, or for their acknowledgement, are not
    /// waited for: await their [`Delivery`] first if they matter. Every
    /// waiting `Delivery` and request then fails with
    /// [`ClientError::Disconnected`], and [`Messages`] ends once drained.
    ///
    /// Calling it on a client that has already ended does nothing.
    ///
    /// # Errors
    /// None today; the `Result` leaves room for transports whose closing can
    /// fail.
    ///
    /// # Cancel safety
    /// The disconnection goes ahead whether or not the future is polled to
    /// the end; dropping it only stops waiting for it.
    pub async fn disconnect(&self) -> Result<(), ClientError> {
        let now = self.rt.now();
        let (tx, rx) = async_channel::bounded(1);
        {
            let mut inner = self.shared.lock();
            if inner.ended.is_some() {
                return Ok(());
            }
            inner.disconnect_requested = true;
            inner.machine.disconnect(now);
            inner.closed_waiters.push(tx);
        }
        self.wake();
        // The driver answers, or drops the sender, when it ends.
        let _ = rx.recv().await;
        Ok(())
    }

    /// Whether the broker said it still held this client's session when it
    /// accepted the latest connection.
    #[must_use]
    pub fn session_present(&self) -> bool {
        self.shared.lock().session_present
    }

    /// Whether a connection is up (accepted by the broker) right now.
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.shared.lock().connected
    }

    /// The error the client ended with, or `None` while it runs.
    #[must_use]
    pub fn ended(&self) -> Option<ClientError> {
        self.shared.lock().ended.clone()
    }

    /// Counters: connections, messages, drops, and the session's own.
    #[must_use]
    pub fn stats(&self) -> ClientStats {
        let inner = self.shared.lock();
        ClientStats {
            inflight: inner.machine.inflight_len(),
            queued: inner.machine.queued_len(),
            queued_qos0: inner.machine.queued_qos0_len(),
            session: inner.machine.stats(),
            ..inner.stats
        }
    }

    /// Tells the driver there is something to do. A wake already pending is
    /// enough, so a full channel is fine.
    fn wake(&self) {
        let _ = self.wake.try_send(());
    }
}

/// Fails once the client has ended or is being disconnected.
fn check_open(inner: &Inner) -> Result<(), ClientError> {
    if let Some(e) = &inner.ended {
        return Err(e.clone());
    }
    if inner.disconnect_requested {
        return Err(ClientError::Disconnected);
    }
    Ok(())
}

/// The completion of one [`Client::publish`]: a future that resolves to
/// `Ok(())` when the message is done (QoS 0: written to the connection's
/// buffer; QoS 1: PUBACK; QoS 2: PUBCOMP), or to the error that ended it
/// ([`ClientError::Dropped`], or the client's final error).
///
/// Dropping it does not cancel the publish. Awaiting it is cancel-safe.
pub struct Delivery {
    id: u64,
    future: Pin<Box<dyn Future<Output = Result<(), ClientError>> + Send>>,
}

impl Delivery {
    fn new(id: u64, rx: async_channel::Receiver<Result<(), ClientError>>) -> Self {
        Self {
            id,
            future: Box::pin(
                async move { rx.recv().await.unwrap_or(Err(ClientError::Disconnected)) },
            ),
        }
    }

    /// The number of this publish (1, 2, 3, … in call order on one client).
    #[must_use]
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Future for Delivery {
    type Output = Result<(), ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.future.as_mut().poll(cx)
    }
}
