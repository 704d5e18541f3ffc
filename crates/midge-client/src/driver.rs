//! The driver task: owns the socket, moves bytes, deadlines and events
//! between it and the session machine, reconnects.

use std::future::pending;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use futures_lite::future::{or, race};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use midge_codec::{Publish, QoS, SubscribeReturnCode};
use midge_runtime::{BrokerUrl, Instant, Runtime};
use midge_session::{AckToken, DisconnectReason, Event};

use crate::client::{Inner, Pending, Shared};
use crate::error::io_error;
use crate::message::{Incoming, Message};
use crate::options::Reconnect;
use crate::transport::{self, ClientStream};
use crate::{ClientError, ConnectOptions};

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Unwritten bytes beyond which the driver stops taking more from the
/// machine.
const WRITE_HIGH_WATER: usize = 64 * 1024;
/// Filters per SUBSCRIBE when subscribing again after a lost session.
const RESUBSCRIBE_CHUNK: usize = 64;

/// The background task of one [`Client`](crate::Client).
pub(crate) struct Driver<R: Runtime> {
    rt: R,
    shared: Arc<Shared>,
    url: BrokerUrl,
    /// The TLS configuration, for `mqtts://` and `wss://`.
    tls: Option<Arc<futures_rustls::rustls::ClientConfig>>,
    reconnect: Reconnect,
    connect_timeout: Duration,
    max_buffered: usize,
    clean_session: bool,
    wake_rx: async_channel::Receiver<()>,
    /// Nudges from [`Messages`](crate::Messages): an acknowledgement to
    /// write, or room to read again.
    nudge_rx: async_channel::Receiver<()>,
    message_tx: async_channel::Sender<Incoming>,
    /// Answers the `connect` call; taken at the first CONNACK (or failure).
    first: Option<async_channel::Sender<Result<(), ClientError>>>,
    /// Set while the driver has stopped reading because too many messages
    /// wait for the application.
    paused: Arc<AtomicBool>,
    /// Every `Client` handle is gone.
    handles_gone: bool,
}

/// What wakes the connection loop.
enum Wakeup {
    Handle,
    HandlesGone,
    Nudge,
    Timer,
    Wrote(usize),
    Flushed,
    Read(usize),
    Closed(Option<io::Error>),
}

/// What to feed the machine on this turn of the loop.
enum Input {
    Nothing,
    Read(usize),
    Timeout,
    TransportClosed,
}

/// How a connection ended.
struct Ended {
    error: ClientError,
    /// The broker accepted the connection before it ended.
    was_connected: bool,
}

impl<R: Runtime> Driver<R> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        rt: R,
        shared: Arc<Shared>,
        options: &ConnectOptions,
        wake_rx: async_channel::Receiver<()>,
        nudge_rx: async_channel::Receiver<()>,
        message_tx: async_channel::Sender<Incoming>,
        first: async_channel::Sender<Result<(), ClientError>>,
        paused: Arc<AtomicBool>,
        tls: Option<Arc<futures_rustls::rustls::ClientConfig>>,
    ) -> Self {
        Self {
            rt,
            shared,
            url: options.url.clone(),
            tls,
            reconnect: options.reconnect,
            connect_timeout: options.connect_timeout,
            max_buffered: options.max_buffered_messages.max(1),
            clean_session: options.config.clean_session,
            wake_rx,
            nudge_rx,
            message_tx,
            first: Some(first),
            paused,
            handles_gone: false,
        }
    }

    /// Runs connections, and the pauses between them, until the client ends.
    pub(crate) async fn run(mut self) {
        let mut failures: u32 = 0;
        let error = loop {
            let ended = self.attempt().await;
            if ended.was_connected {
                failures = 0;
            }
            tracing::debug!(error = %ended.error, "mqtt connection ended");
            if self.first.is_some() || !self.reconnect.enabled || self.stopping() {
                break ended.error;
            }
            match &ended.error {
                ClientError::Disconnected | ClientError::Usage(_) => break ended.error,
                ClientError::Refused(code) if !ClientError::is_retryable_refusal(*code) => {
                    break ended.error
                }
                _ => {}
            }
            let delay = self.reconnect.delay(failures);
            failures = failures.saturating_add(1);
            tracing::debug!(?delay, "reconnecting after a pause");
            if self.pause(delay).await {
                break ClientError::Disconnected;
            }
        };
        self.finish(error);
    }

    /// Whether the application asked to stop.
    fn stopping(&self) -> bool {
        self.handles_gone || self.shared.lock().disconnect_requested
    }

    /// Waits `delay` between connections; `true` when the application asked
    /// to stop meanwhile.
    async fn pause(&mut self, delay: Duration) -> bool {
        let sleep = self.rt.sleep(delay);
        let shared = Arc::clone(&self.shared);
        let wake_rx = self.wake_rx.clone();
        let interrupted = async move {
            loop {
                if wake_rx.recv().await.is_err() {
                    return true;
                }
                if shared.lock().disconnect_requested {
                    return true;
                }
            }
        };
        or(interrupted, async {
            sleep.await;
            false
        })
        .await
    }

    /// One connection: TCP, the transport's handshakes (TLS, WebSocket),
    /// CONNECT, then the loop until it ends.
    async fn attempt(&mut self) -> Ended {
        let deadline = self.rt.now().saturating_add(self.connect_timeout);
        let stream = {
            let shared = Arc::clone(&self.shared);
            let wake_rx = self.wake_rx.clone();
            let stop = async move {
                loop {
                    if wake_rx.recv().await.is_err() || shared.lock().disconnect_requested {
                        return Err(ClientError::Disconnected);
                    }
                }
            };
            let timeout = self.rt.sleep_until(deadline);
            let timeout = async move {
                timeout.await;
                Err(ClientError::Timeout)
            };
            let rt = self.rt.clone();
            let url = self.url.clone();
            let tls = self.tls.clone();
            let open = async move {
                let tcp = open_tcp(rt, url.clone()).await?;
                transport::handshake(tcp, &url, tls.as_ref()).await
            };
            or(stop, or(timeout, open)).await
        };
        let stream = match stream {
            Ok(stream) => stream,
            Err(error) => {
                return Ended {
                    error,
                    was_connected: false,
                }
            }
        };
        tracing::debug!(url = %self.url, "connected, sending CONNECT");
        self.serve(stream, deadline).await
    }

    /// Drives one open connection until it ends.
    async fn serve(
        &mut self,
        stream: ClientStream<R::TcpStream>,
        connack_deadline: Instant,
    ) -> Ended {
        let (mut reader, mut writer) = futures_lite::io::split(stream);
        let mut out = BytesMut::new();
        let mut read_buf = vec![0u8; READ_CHUNK];
        let mut was_connected = false;
        let mut io_failure: Option<ClientError> = None;
        // Written but not yet flushed through the transport (TLS and
        // WebSocket hold what they frame until flushed).
        let mut unflushed = false;
        let shared = Arc::clone(&self.shared);
        {
            let now = self.rt.now();
            let mut inner = shared.lock();
            if let Err(e) = inner.machine.connect(now) {
                return Ended {
                    error: e.into(),
                    was_connected,
                };
            }
        }
        let mut input = Input::Nothing;
        loop {
            let now = self.rt.now();
            let turn = {
                let mut inner = shared.lock();
                match input {
                    Input::Nothing => {}
                    Input::Read(n) => {
                        let bytes = read_buf.get(..n).unwrap_or_default();
                        if let Err(e) = inner.machine.handle_read(now, bytes) {
                            // The machine has ended the connection; its
                            // Disconnected event carries the reason.
                            tracing::warn!(error = %e, "the broker broke the protocol");
                        }
                    }
                    Input::Timeout => inner.machine.handle_timeout(now),
                    Input::TransportClosed => inner.machine.handle_transport_closed(now),
                }
                if self.handles_gone && !inner.disconnect_requested {
                    inner.disconnect_requested = true;
                    inner.machine.disconnect(now);
                }
                let turn = self.pump(&mut inner, now, &mut out);
                was_connected |= inner.connected;
                turn
            };
            if let Some(reason) = turn.ended {
                let error = match reason {
                    DisconnectReason::ClientDisconnect => {
                        // DISCONNECT is in `out`: it must reach the broker.
                        let flush = async {
                            let _ = writer.write_all(&out).await;
                            let _ = writer.close().await;
                        };
                        or(flush, self.rt.sleep(self.connect_timeout)).await;
                        ClientError::Disconnected
                    }
                    DisconnectReason::TransportClosed => {
                        io_failure.take().unwrap_or(ClientError::ConnectionLost)
                    }
                    other => reason_error(other),
                };
                return Ended {
                    error,
                    was_connected,
                };
            }
            let reading = self.update_paused();
            let timer = if was_connected {
                turn.deadline
            } else {
                Some(
                    turn.deadline
                        .map_or(connack_deadline, |d| d.min(connack_deadline)),
                )
            };

            let wakeup = {
                let handles_gone = self.handles_gone;
                let wake_rx = &self.wake_rx;
                let nudge_rx = &self.nudge_rx;
                let rt = &self.rt;
                let out = &out;
                let read_buf = &mut read_buf;
                let reader = &mut reader;
                let writer = &mut writer;
                let wake = async move {
                    if handles_gone {
                        return pending().await;
                    }
                    match wake_rx.recv().await {
                        Ok(()) => Wakeup::Handle,
                        Err(_) => Wakeup::HandlesGone,
                    }
                };
                let nudge = async move {
                    match nudge_rx.recv().await {
                        Ok(()) => Wakeup::Nudge,
                        // `Messages` is gone: nothing more will come.
                        Err(_) => pending().await,
                    }
                };
                let timer = async move {
                    match timer {
                        Some(at) => {
                            rt.sleep_until(at).await;
                            Wakeup::Timer
                        }
                        None => pending().await,
                    }
                };
                let write = async move {
                    if out.is_empty() {
                        if !unflushed {
                            return pending().await;
                        }
                        // Cancel-safe: flushing again does no harm.
                        return match writer.flush().await {
                            Ok(()) => Wakeup::Flushed,
                            Err(e) => Wakeup::Closed(Some(e)),
                        };
                    }
                    match writer.write(out).await {
                        Ok(0) => Wakeup::Closed(Some(io::ErrorKind::WriteZero.into())),
                        Ok(n) => Wakeup::Wrote(n),
                        Err(e) => Wakeup::Closed(Some(e)),
                    }
                };
                let read = async move {
                    if !reading {
                        return pending().await;
                    }
                    match reader.read(read_buf).await {
                        Ok(0) => Wakeup::Closed(None),
                        Ok(n) => Wakeup::Read(n),
                        Err(e) => Wakeup::Closed(Some(e)),
                    }
                };
                // The timer first (it is cheap and rarely ready); the rest
                // raced, so that no busy source starves another.
                or(timer, race(race(write, read), race(nudge, wake))).await
            };

            input = match wakeup {
                Wakeup::Handle | Wakeup::Nudge => Input::Nothing,
                Wakeup::HandlesGone => {
                    self.handles_gone = true;
                    Input::Nothing
                }
                Wakeup::Timer => {
                    if !was_connected && self.rt.now() >= connack_deadline {
                        io_failure = Some(ClientError::Timeout);
                        Input::TransportClosed
                    } else {
                        Input::Timeout
                    }
                }
                Wakeup::Wrote(n) => {
                    out.advance(n);
                    unflushed = true;
                    Input::Nothing
                }
                Wakeup::Flushed => {
                    unflushed = false;
                    Input::Nothing
                }
                Wakeup::Read(n) => Input::Read(n),
                Wakeup::Closed(e) => {
                    io_failure = e.as_ref().map(io_error);
                    Input::TransportClosed
                }
            };
        }
    }

    /// Drains the machine after an input: bytes into `out`, events to their
    /// waiters, and the next deadline.
    fn pump(&mut self, inner: &mut Inner, now: Instant, out: &mut BytesMut) -> Turn {
        let mut ended = None;
        loop {
            // Past the high-water mark the machine keeps what it has to send
            // until the socket has taken some: a QoS 0 delivery resolves
            // only once its bytes are in this buffer.
            if out.len() < WRITE_HIGH_WATER {
                while inner.machine.poll_transmit(now, out) > 0 {}
            }
            let Some(event) = inner.machine.poll_event() else {
                break;
            };
            match event {
                Event::Connected { session_present } => {
                    self.on_connected(inner, now, session_present);
                }
                Event::ConnectionRefused { code } => {
                    tracing::debug!(?code, "the broker refused the connection");
                }
                Event::Delivered { id } => {
                    if let Some(tx) = inner.deliveries.remove(&id) {
                        let _ = tx.try_send(Ok(()));
                    }
                }
                Event::Dropped { id } => {
                    if let Some(tx) = inner.deliveries.remove(&id) {
                        let _ = tx.try_send(Err(ClientError::Dropped));
                    }
                }
                Event::Message { publish, ack } => self.on_message(inner, now, publish, ack),
                Event::Subscribed { id, results } => on_subscribed(inner, id, results),
                Event::Unsubscribed { id } => {
                    if let Some(Pending::Unsubscribe { tx }) = inner.requests.remove(&id) {
                        let _ = tx.try_send(Ok(()));
                    }
                }
                Event::Disconnected { reason } => {
                    inner.connected = false;
                    ended = Some(reason);
                }
                other => tracing::debug!(?other, "unhandled session event"),
            }
        }
        Turn {
            ended,
            deadline: inner.machine.poll_timeout(),
        }
    }

    fn on_connected(&mut self, inner: &mut Inner, now: Instant, session_present: bool) {
        tracing::debug!(session_present, "connection accepted");
        inner.connected = true;
        inner.session_present = session_present;
        inner.stats.connections = inner.stats.connections.saturating_add(1);
        if let Some(first) = self.first.take() {
            let _ = first.try_send(Ok(()));
        } else if !session_present || self.clean_session {
            // The broker has no subscriptions for us: make them again.
            let all: Vec<(String, QoS)> = inner
                .subscriptions
                .iter()
                .map(|(f, q)| (f.clone(), *q))
                .collect();
            for chunk in all.chunks(RESUBSCRIBE_CHUNK) {
                let filters: Vec<(&str, QoS)> =
                    chunk.iter().map(|(f, q)| (f.as_str(), *q)).collect();
                match inner.machine.subscribe(now, &filters) {
                    Ok(id) => {
                        let filters = chunk.iter().map(|(f, _)| f.clone()).collect();
                        inner
                            .requests
                            .insert(id, Pending::Subscribe { tx: None, filters });
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot subscribe again"),
                }
            }
        }
    }

    /// Hands a message to the application, or drops it (QoS 0 over the
    /// limit), or acknowledges it at once (nobody listens any more).
    fn on_message(
        &mut self,
        inner: &mut Inner,
        now: Instant,
        publish: Publish,
        ack: Option<AckToken>,
    ) {
        let qos0 = publish.qos_pid.qos() == QoS::AtMostOnce;
        if qos0 && self.message_tx.len() >= self.max_buffered {
            inner.stats.qos0_dropped = inner.stats.qos0_dropped.saturating_add(1);
            return;
        }
        inner.stats.messages_received = inner.stats.messages_received.saturating_add(1);
        let incoming = Incoming {
            message: Message::from_publish(publish),
            ack,
        };
        if let Err(e) = self.message_tx.try_send(incoming) {
            if let Some(token) = e.into_inner().ack {
                inner.machine.ack(now, token);
            }
        }
    }

    /// Decides whether to read the socket: stop at twice the buffer limit
    /// (only a broker ignoring its inflight window gets there), read again
    /// below the limit. Returns whether to read.
    fn update_paused(&mut self) -> bool {
        let waiting = self.message_tx.len();
        let was_paused = self.paused.load(Ordering::Acquire);
        let paused = if was_paused {
            waiting >= self.max_buffered
        } else {
            waiting >= self.max_buffered.saturating_mul(2)
        };
        if paused != was_paused {
            self.paused.store(paused, Ordering::Release);
            if paused {
                tracing::warn!(
                    waiting,
                    "the application is not taking messages: reading paused"
                );
                let mut inner = self.shared.lock();
                inner.stats.read_pauses = inner.stats.read_pauses.saturating_add(1);
            }
        }
        !paused
    }

    /// The client has ended: everyone waiting learns why.
    fn finish(mut self, error: ClientError) {
        tracing::debug!(%error, "mqtt client ended");
        if let Some(first) = self.first.take() {
            let _ = first.try_send(Err(error.clone()));
        }
        let mut inner = self.shared.lock();
        inner.connected = false;
        inner.ended = Some(error.clone());
        for (_, tx) in inner.deliveries.drain() {
            let _ = tx.try_send(Err(error.clone()));
        }
        for (_, pending) in inner.requests.drain() {
            match pending {
                Pending::Subscribe { tx: Some(tx), .. } => {
                    let _ = tx.try_send(Err(error.clone()));
                }
                Pending::Subscribe { tx: None, .. } => {}
                Pending::Unsubscribe { tx } => {
                    let _ = tx.try_send(Err(error.clone()));
                }
            }
        }
        for tx in inner.closed_waiters.drain(..) {
            let _ = tx.try_send(());
        }
        self.paused.store(false, Ordering::Release);
        // `message_tx` is dropped with `self`: `Messages` ends once drained.
    }
}

/// What one pump found.
struct Turn {
    /// The connection ended, and why.
    ended: Option<DisconnectReason>,
    /// When the machine next needs `handle_timeout`.
    deadline: Option<Instant>,
}

/// Answers a subscribe and forgets refused filters.
fn on_subscribed(
    inner: &mut Inner,
    id: midge_session::RequestId,
    results: Vec<SubscribeReturnCode>,
) {
    let Some(Pending::Subscribe { tx, filters }) = inner.requests.remove(&id) else {
        return;
    };
    for (filter, result) in filters.iter().zip(&results) {
        if *result == SubscribeReturnCode::Failure {
            tracing::debug!(filter, "the broker refused a subscription");
            inner.subscriptions.remove(filter);
        }
    }
    if let Some(tx) = tx {
        let _ = tx.try_send(Ok(results));
    }
}

/// The error a connection ended by the machine maps to.
fn reason_error(reason: DisconnectReason) -> ClientError {
    match reason {
        DisconnectReason::KeepAliveTimeout => ClientError::KeepAliveTimeout,
        DisconnectReason::ConnAckTimeout => ClientError::Timeout,
        DisconnectReason::Protocol(e) => ClientError::Protocol(e),
        DisconnectReason::ClientDisconnect => ClientError::Disconnected,
        DisconnectReason::Refused(code) => ClientError::Refused(code),
        _ => ClientError::ConnectionLost,
    }
}

/// Resolves the broker's host and connects to the first address that
/// answers.
async fn open_tcp<R: Runtime>(rt: R, url: BrokerUrl) -> Result<R::TcpStream, ClientError> {
    let unreachable = |reason: String| ClientError::Unreachable {
        host: url.host.clone(),
        port: url.port,
        reason,
    };
    let addrs: Vec<SocketAddr> = match url.host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, url.port)],
        Err(_) => rt
            .resolve(&url.host, url.port)
            .await
            .map_err(|e| unreachable(e.to_string()))?,
    };
    let mut last = String::from("the host name has no address");
    for addr in addrs {
        match rt.connect_tcp(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => {
                tracing::debug!(%addr, error = %e, "tcp connect failed");
                last = e.to_string();
            }
        }
    }
    Err(unreachable(last))
}
