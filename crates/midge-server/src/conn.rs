//! The accept loop and the connection task: one task per socket, owning the
//! socket and its [`ServerSession`], moving bytes, timers, events and
//! actions between them and its router shard.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_channel::{Receiver, Sender};
use bytes::{Buf, BytesMut};
use futures_lite::{future, AsyncRead, AsyncWrite, AsyncWriteExt, StreamExt};
use midge_broker::{
    shard_of, Action, CloseReason, ConnId, ConnectRequest, DeliverOutcome, Event, Instant,
    ResumeState, ServerSession, SlowSubscriberPolicy,
};
use midge_codec::{MqttString, Publish, QoS};
use midge_runtime::{Duration, Runtime};

use crate::shard::{Flow, Input, ToConn, ToShard};
use crate::stats::{LocalCounts, Shared};
use crate::transport::{Acceptor, ServerStream};
use crate::ServerOptions;

/// Most bytes read from a socket at once.
const READ_CHUNK: usize = 16 * 1024;
/// The read buffer of a new or quiet connection. Reads that fill the
/// buffer double it (up to [`READ_CHUNK`]); a run of [`SHRINK_AFTER`] reads
/// that use less than an eighth of it shrinks it back, so an idle
/// connection holds half a KiB instead of [`READ_CHUNK`].
const READ_MIN: usize = 512;
/// Write-buffer capacity kept once the buffer has drained; a larger one
/// (after a burst) is freed.
const WRITE_KEEP: usize = 64 * 1024;
/// Consecutive small reads before the read buffer shrinks.
const SHRINK_AFTER: u32 = 64;
/// Held deliveries, in multiples of the session's queue limit in messages
/// (bytes are held up to the session's byte limit): what may be in the
/// channels between a publisher and this connection when its pause takes
/// effect.
const HOLD_FACTOR: usize = 4;
/// The most QoS 1/2 PUBLISH packets one read of [`READ_CHUNK`] bytes can
/// hold (the smallest is 7 bytes). With acknowledgements that wait for the
/// router, the session's `max_inbound_unacked` is raised by this much above
/// the point where the connection stops reading, so a read already taken
/// never overflows it.
pub(crate) const PUBLISHES_PER_READ: usize = READ_CHUNK / 7 + 1;
/// Mailbox messages applied per wake-up before the socket gets a turn.
const MAILBOX_BATCH: usize = 128;

type Timer = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The read buffer's next length and small-read count, after a read of `n`
/// bytes into a buffer of `len` with `small_reads` small reads before it.
fn next_read_len(len: usize, n: usize, small_reads: u32) -> (usize, u32) {
    if n == len && len < READ_CHUNK {
        ((len * 2).min(READ_CHUNK), 0)
    } else if len > READ_MIN && n < len / 8 {
        if small_reads + 1 >= SHRINK_AFTER {
            (READ_MIN, 0)
        } else {
            (len, small_reads + 1)
        }
    } else {
        (len, 0)
    }
}

/// `percent` (at most 100) of the session's queue limit in messages.
pub(crate) fn water_mark(config: &midge_broker::ServerConfig, percent: u8) -> usize {
    let percent = usize::from(percent.min(100));
    (config.max_queued_messages / 100)
        .saturating_mul(percent)
        .saturating_add((config.max_queued_messages % 100).saturating_mul(percent) / 100)
}

fn message_bytes(publish: &Publish) -> usize {
    publish.topic.len().saturating_add(publish.payload.len())
}

/// Accepts sockets on one listener until shutdown.
pub(crate) struct AcceptLoop<R: Runtime> {
    pub(crate) rt: R,
    pub(crate) listener: R::TcpListener,
    pub(crate) addr: SocketAddr,
    /// The listener's transport handshake.
    pub(crate) acceptor: Arc<Acceptor>,
    pub(crate) options: Arc<ServerOptions>,
    pub(crate) links: Arc<[Sender<ToShard>]>,
    pub(crate) shared: Arc<Shared>,
    /// Held by this loop and every connection it spawns; the server waits
    /// for all of them to be dropped.
    pub(crate) done: Sender<()>,
}

enum Accepted<S> {
    Socket(std::io::Result<(S, SocketAddr)>),
    Shutdown,
}

impl<R: Runtime> AcceptLoop<R> {
    pub(crate) async fn run(self) {
        let shutdown = self.shared.shutdown_rx.clone();
        loop {
            let accepted = future::or(
                async { Accepted::Socket(self.rt.accept_tcp(&self.listener).await) },
                async {
                    let _ = shutdown.recv().await;
                    Accepted::Shutdown
                },
            )
            .await;
            match accepted {
                Accepted::Shutdown => break,
                Accepted::Socket(Ok((stream, peer))) => self.admit(stream, peer),
                Accepted::Socket(Err(error)) => {
                    // Out of descriptors, say: wait a little rather than spin.
                    tracing::debug!(addr = %self.addr, %error, "accept failed");
                    let _ = future::or(
                        async {
                            self.rt.sleep(Duration::from_millis(50)).await;
                        },
                        async {
                            let _ = shutdown.recv().await;
                        },
                    )
                    .await;
                }
            }
        }
        tracing::debug!(addr = %self.addr, "listener closed");
    }

    fn admit(&self, stream: R::TcpStream, peer: SocketAddr) {
        let counters = &self.shared.stats;
        let open = counters.connections_open.fetch_add(1, Ordering::Relaxed);
        if usize::try_from(open).unwrap_or(usize::MAX) >= self.options.max_connections {
            counters.connections_open.fetch_sub(1, Ordering::Relaxed);
            counters
                .connections_rejected
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "connection limit reached; socket closed");
            drop(stream);
            return;
        }
        counters.connections_total.fetch_add(1, Ordering::Relaxed);
        let listener = self.shared.metrics.listener(self.addr);
        listener.open.fetch_add(1, Ordering::Relaxed);
        listener.total.fetch_add(1, Ordering::Relaxed);
        let id = ConnId(self.shared.next_conn.fetch_add(1, Ordering::Relaxed));
        let rt = self.rt.clone();
        let acceptor = Arc::clone(&self.acceptor);
        let options = Arc::clone(&self.options);
        let links = Arc::clone(&self.links);
        let shared = Arc::clone(&self.shared);
        let done = self.done.clone();
        self.rt.spawn(async move {
            // The transport's handshake runs here, not in the accept loop,
            // so a slow or silent peer holds up no one else.
            let timeout = rt.sleep(options.handshake_timeout);
            let handshake = future::or(async { Some(acceptor.accept(stream).await) }, async {
                timeout.await;
                None
            })
            .await;
            match handshake {
                Some(Ok(accepted)) => {
                    let mut conn =
                        Conn::new(rt, id, peer, accepted.stream, &options, links, shared);
                    conn.cert_username = accepted.cert_username;
                    conn.run().await;
                }
                failed => {
                    let error = match failed {
                        Some(Err(error)) => error.to_string(),
                        _ => "timed out".to_owned(),
                    };
                    tracing::debug!(
                        conn = id.0,
                        %peer,
                        transport = acceptor.name(),
                        %error,
                        "handshake failed; socket closed"
                    );
                    shared
                        .stats
                        .connections_open
                        .fetch_sub(1, Ordering::Relaxed);
                }
            }
            listener.open.fetch_sub(1, Ordering::Relaxed);
            drop(done);
        });
    }
}

/// Who the client is, once it sent CONNECT (for the log lines).
#[derive(Debug, Clone)]
struct ClientInfo {
    client_id: String,
    clean_session: bool,
    keep_alive: u16,
}

/// Where the connection stands with its shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Registration {
    /// No CONNECT handed to a shard.
    None,
    /// CONNECT handed to this shard; not refused.
    Pending(usize),
    /// Accepted by this shard.
    Accepted(usize),
    /// Refused by this shard.
    Refused(usize),
}

impl Registration {
    fn shard(self) -> Option<usize> {
        match self {
            Self::None => None,
            Self::Pending(s) | Self::Accepted(s) | Self::Refused(s) => Some(s),
        }
    }
}

/// One connection's task state.
pub(crate) struct Conn<R: Runtime> {
    rt: R,
    id: ConnId,
    peer: SocketAddr,
    stream: ServerStream<R::TcpStream>,
    /// Written to the stream but not yet flushed through its transport
    /// (TLS and WebSocket buffer what they frame).
    unflushed: bool,
    /// The client certificate's common name, sent to the router as the
    /// user name in place of the CONNECT one (see
    /// [`TlsOptions::cn_as_username`](crate::TlsOptions::cn_as_username)).
    cert_username: Option<String>,
    session: ServerSession,
    links: Arc<[Sender<ToShard>]>,
    shared: Arc<Shared>,
    shutdown: Pin<Box<Receiver<()>>>,
    mailbox_tx: Sender<ToConn>,
    mailbox: Pin<Box<Receiver<ToConn>>>,
    read_buf: Box<[u8]>,
    /// Consecutive reads that used less than an eighth of `read_buf`.
    small_reads: u32,
    write_buf: BytesMut,
    max_write: usize,
    close_timeout: Duration,
    timer: Option<(Instant, Timer)>,
    outgoing: Vec<Input>,
    /// Deliveries that came while the session was above its high-water
    /// mark under back-pressure: kept here (up to `hold_limit`, in order)
    /// until the session is below it again, because everything already in
    /// the channels from a publisher arrives before its pause takes effect
    /// and would otherwise overflow the session's queue.
    held: VecDeque<Publish>,
    /// Deliveries `held` takes; 0 when the router drops rather than pauses.
    hold_limit: usize,
    /// Topic and payload bytes in `held`, and the most it takes.
    held_bytes: usize,
    hold_bytes_limit: usize,
    /// Congestion shared with the shard, which reports deliveries.
    flow: Arc<Flow>,
    /// The last value stored in `flow.congested`.
    flow_congested: bool,
    /// Whether the session is at its low-water mark (its own `Drained`
    /// came, or it never went above its high-water mark since).
    session_low: bool,
    /// Deliveries waiting in the mailbox at or below which the connection
    /// may count as drained: the session's low-water mark in messages.
    backlog_low: usize,
    counts: LocalCounts,
    registration: Registration,
    client: Option<ClientInfo>,
    /// Reading stopped by the router (`PausePublisher`).
    paused: bool,
    /// The socket ended or failed: no more reading or writing.
    broken: bool,
    /// The server is shutting down: no will for this close.
    shutting_down: bool,
    /// The session's `Closed` event, once it came.
    closed: Option<(CloseReason, bool)>,
    /// The server is durable: a persistent session's state is sent to the
    /// shard as a checkpoint whenever it changed.
    durable: bool,
    /// Deliveries handed to the session since its accept.
    applied: u64,
    /// QoS 1/2 messages handed to the shard whose acknowledgement has not
    /// come back yet (with `ack_after_route`).
    awaiting_acks: usize,
    /// Reading stops while `awaiting_acks` is at this (0: never): a client
    /// with a wide inflight window waits for the commits instead of
    /// overflowing the session's limit.
    ack_pause_at: usize,
    /// The session may have changed since the last checkpoint.
    dirty: bool,
}

impl<R: Runtime> Conn<R> {
    pub(crate) fn new(
        rt: R,
        id: ConnId,
        peer: SocketAddr,
        stream: ServerStream<R::TcpStream>,
        options: &ServerOptions,
        links: Arc<[Sender<ToShard>]>,
        shared: Arc<Shared>,
    ) -> Self {
        let now = rt.now();
        let session = ServerSession::new(options.session.clone(), now, id.0);
        let (mailbox_tx, mailbox) = async_channel::unbounded();
        let shutdown = Box::pin(shared.shutdown_rx.clone());
        let mailbox = Box::pin(mailbox);
        Self {
            rt,
            id,
            peer,
            stream,
            unflushed: false,
            cert_username: None,
            session,
            links,
            shared,
            shutdown,
            mailbox_tx,
            mailbox,
            read_buf: vec![0; READ_MIN].into_boxed_slice(),
            small_reads: 0,
            write_buf: BytesMut::new(),
            max_write: options.max_write_buffer.max(1),
            close_timeout: options.close_timeout,
            timer: None,
            outgoing: Vec::new(),
            held: VecDeque::new(),
            hold_limit: if options.router.slow_subscriber == SlowSubscriberPolicy::BackPressure {
                options
                    .session
                    .max_queued_messages
                    .saturating_mul(HOLD_FACTOR)
            } else {
                0
            },
            held_bytes: 0,
            hold_bytes_limit: options.session.max_queued_bytes,
            flow: Arc::new(Flow::default()),
            flow_congested: false,
            session_low: true,
            backlog_low: water_mark(
                &options.session,
                options
                    .session
                    .low_water_percent
                    .min(options.session.high_water_percent),
            ),
            counts: LocalCounts::default(),
            registration: Registration::None,
            client: None,
            paused: false,
            broken: false,
            shutting_down: false,
            closed: None,
            durable: options.durability.is_on(),
            applied: 0,
            awaiting_acks: 0,
            ack_pause_at: if options.session.ack_after_route {
                options
                    .session
                    .max_inbound_unacked
                    .saturating_sub(PUBLISHES_PER_READ)
                    .max(1)
            } else {
                0
            },
            dirty: false,
        }
    }

    pub(crate) async fn run(mut self) {
        tracing::debug!(conn = self.id.0, peer = %self.peer, "socket accepted");
        loop {
            self.drain_session();
            self.checkpoint();
            self.flush_outgoing().await;
            self.counts.flush(&self.shared.stats);
            if self.closed.is_some() {
                break;
            }
            std::future::poll_fn(|cx| self.poll_io(cx)).await;
        }
        self.finish().await;
    }

    /// Takes the session's outputs: bytes (up to the write buffer's limit),
    /// events (for the shard), and the next deadline.
    fn drain_session(&mut self) {
        let now = self.rt.now();
        if !self.held.is_empty() && !self.session.is_closed() {
            self.release_held(now, false);
        }
        while self.write_buf.len() < self.max_write {
            if self.session.poll_transmit(now, &mut self.write_buf) == 0 {
                break;
            }
        }
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::ConnectRequest { .. } => self.connect_request(&event),
                Event::Closed {
                    reason,
                    publish_will,
                } => {
                    self.closed = Some((reason, publish_will));
                }
                Event::Publish { ref ack, .. } => {
                    if ack.is_some() {
                        self.awaiting_acks += 1;
                    }
                    self.counts.messages_received += 1;
                    self.outgoing.push(Input::Event(event));
                }
                // The connection reports its own drain (below), which
                // includes the session's.
                Event::Drained => self.session_low = true,
                other => self.outgoing.push(Input::Event(other)),
            }
        }
        self.update_flow();
        // While paused, this connection does not read its client, so it
        // cannot tell whether the client is silent: the keep-alive clock
        // stops. On resume, what the client sent meanwhile is read before
        // the timer is armed again.
        let deadline = if self.paused {
            None
        } else {
            self.session.poll_timeout()
        };
        match deadline {
            None => self.timer = None,
            Some(deadline) => {
                let rearm = self.timer.as_ref().is_none_or(|(at, _)| deadline < *at);
                if rearm {
                    self.timer = Some((deadline, Box::pin(self.rt.sleep_until(deadline))));
                }
            }
        }
    }

    /// Sends the shard this persistent session's state when it may have
    /// changed (durable servers only), so its next commit holds it.
    fn checkpoint(&mut self) {
        if !self.durable || !self.dirty || self.session.is_closed() {
            return;
        }
        let persistent = self.client.as_ref().is_some_and(|c| !c.clean_session);
        if !persistent || !matches!(self.registration, Registration::Accepted(_)) {
            return;
        }
        self.dirty = false;
        self.outgoing.push(Input::Checkpoint {
            state: self.session.resume_snapshot(),
            applied: self.applied,
        });
    }

    /// Tells the shard whether this connection is congested (its session
    /// above its high-water mark, or messages held), and sends `Drained`
    /// once a congestion the shard reported to the router is over: the
    /// session back at its low-water mark, nothing held, and the mailbox
    /// backlog at that mark too. Every congestion reported is followed by
    /// one such `Drained`, without which the router would keep the
    /// publishers paused.
    fn update_flow(&mut self) {
        let congested = !self.session_low || !self.held.is_empty();
        if congested != self.flow_congested {
            self.flow_congested = congested;
            self.flow.congested.store(congested, Ordering::SeqCst);
        }
        let drained = !congested
            && !self.session.is_above_high_water()
            && self.mailbox.len() <= self.backlog_low;
        if drained && self.flow.reported.swap(false, Ordering::SeqCst) {
            self.outgoing.push(Input::Event(Event::Drained));
        }
    }

    fn connect_request(&mut self, event: &Event) {
        let Some(mut request) = ConnectRequest::from_event(event) else {
            return;
        };
        if let Some(name) = &self.cert_username {
            match MqttString::new(name) {
                Ok(name) => {
                    request.username = Some(name);
                    request.username_from_certificate = true;
                }
                // A CN no MQTT string can hold: no user name at all, rather
                // than the one the client chose.
                Err(_) => request.username = None,
            }
        }
        if let Event::ConnectRequest {
            client_id,
            clean_session,
            keep_alive,
            ..
        } = event
        {
            self.client = Some(ClientInfo {
                client_id: client_id.as_str().to_owned(),
                clean_session: *clean_session,
                keep_alive: *keep_alive,
            });
        }
        let shards = u32::try_from(self.links.len()).unwrap_or(u32::MAX);
        let shard = usize::try_from(shard_of(request.client_id.as_str(), shards)).unwrap_or(0);
        self.registration = Registration::Pending(shard);
        self.outgoing.push(Input::Connect {
            mailbox: self.mailbox_tx.clone(),
            flow: Arc::clone(&self.flow),
            request,
        });
    }

    /// Sends the collected inputs to the shard in one message; waits while
    /// the shard's inbox is full (back-pressure on this client).
    async fn flush_outgoing(&mut self) {
        if self.outgoing.is_empty() {
            return;
        }
        let Some(tx) = self
            .registration
            .shard()
            .and_then(|s| self.links.get(s))
            .cloned()
        else {
            self.outgoing.clear();
            return;
        };
        let message = if self.outgoing.len() == 1 {
            match self.outgoing.pop() {
                Some(input) => ToShard::One(self.id, input),
                None => return,
            }
        } else {
            ToShard::Many(self.id, std::mem::take(&mut self.outgoing))
        };
        if tx.send(message).await.is_err() {
            tracing::debug!(conn = self.id.0, "router shard gone");
        }
    }

    /// Moves whatever is ready: shutdown, socket writes, mailbox, socket
    /// reads, the timer. `Ready` after any progress.
    fn poll_io(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut progress = false;
        let now = self.rt.now();

        if !self.shutting_down && self.shutdown.as_mut().poll_next(cx).is_ready() {
            self.shutting_down = true;
            self.session.close(now);
            progress = true;
        }

        progress |= self.poll_write(cx, now);

        for _ in 0..MAILBOX_BATCH {
            match self.mailbox.as_mut().poll_next(cx) {
                Poll::Ready(Some(message)) => {
                    self.apply(now, message);
                    progress = true;
                }
                Poll::Ready(None) | Poll::Pending => break,
            }
        }

        let may_read = !self.paused
            && (self.ack_pause_at == 0 || self.awaiting_acks < self.ack_pause_at)
            && !self.broken
            && !self.session.is_closed()
            && self.write_buf.len() < self.max_write;
        if may_read {
            match Pin::new(&mut self.stream).poll_read(cx, &mut self.read_buf) {
                Poll::Ready(Ok(0)) => {
                    self.transport_closed(now, None);
                    progress = true;
                }
                Poll::Ready(Ok(n)) => {
                    self.counts.bytes_received += n as u64;
                    self.dirty = true;
                    if let Some(bytes) = self.read_buf.get(..n) {
                        if let Err(error) = self.session.handle_read(now, bytes) {
                            self.shared
                                .stats
                                .protocol_errors
                                .fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(conn = self.id.0, peer = %self.peer, %error, "protocol error");
                        }
                    }
                    self.resize_read_buf(n);
                    progress = true;
                }
                Poll::Ready(Err(error)) => {
                    self.transport_closed(now, Some(error));
                    progress = true;
                }
                Poll::Pending => {}
            }
        }

        if let Some((_, timer)) = self.timer.as_mut() {
            if timer.as_mut().poll(cx).is_ready() {
                self.timer = None;
                self.session.handle_timeout(now);
                progress = true;
            }
        }

        if progress {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Writes the buffer out as far as the socket takes it; whether anything
    /// was written (or the socket failed).
    fn poll_write(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let mut progress = false;
        while !self.write_buf.is_empty() && !self.broken {
            match Pin::new(&mut self.stream).poll_write(cx, &self.write_buf) {
                Poll::Ready(Ok(0)) => {
                    self.transport_closed(now, None);
                    progress = true;
                }
                Poll::Ready(Ok(n)) => {
                    self.write_buf.advance(n.min(self.write_buf.len()));
                    if self.write_buf.is_empty() && self.write_buf.capacity() > WRITE_KEEP {
                        // A burst is over: give its buffer back.
                        self.write_buf = BytesMut::new();
                    }
                    self.counts.bytes_sent += n as u64;
                    self.unflushed = true;
                    progress = true;
                }
                Poll::Ready(Err(error)) => {
                    self.transport_closed(now, Some(error));
                    progress = true;
                }
                Poll::Pending => break,
            }
        }
        if self.unflushed && !self.broken {
            match Pin::new(&mut self.stream).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(error)) => {
                    self.transport_closed(now, Some(error));
                    progress = true;
                }
                Poll::Pending => {}
            }
        }
        progress
    }

    /// Grows the read buffer after a read that filled it and shrinks it
    /// after a run of small reads (see [`READ_MIN`]).
    fn resize_read_buf(&mut self, n: usize) {
        let (len, small_reads) = next_read_len(self.read_buf.len(), n, self.small_reads);
        if len != self.read_buf.len() {
            self.read_buf = vec![0; len].into_boxed_slice();
        }
        self.small_reads = small_reads;
    }

    fn transport_closed(&mut self, now: Instant, error: Option<std::io::Error>) {
        if let Some(error) = error {
            tracing::debug!(conn = self.id.0, peer = %self.peer, %error, "socket error");
        }
        self.broken = true;
        self.write_buf.clear();
        self.session.handle_transport_closed(now);
    }

    /// Hands a routed message to the session, or, while the session is
    /// congested under back-pressure, holds it (see [`Conn::held`]). The
    /// shard has reported the delivery already; what the session does with
    /// it is counted here.
    fn deliver(&mut self, now: Instant, publish: Publish) {
        if self.session.is_closed() {
            // Closed by a takeover or a shutdown a moment ago: QoS 1/2
            // messages join the resume state (see `finish`), so a
            // persistent session keeps them.
            if publish.qos() == QoS::AtMostOnce {
                self.counts.messages_dropped += 1;
            } else {
                self.held.push_back(publish);
            }
            return;
        }
        // Whatever fits goes in first, so a message is held only while the
        // session is above its high-water mark.
        if !self.held.is_empty() && !self.session.is_closed() {
            self.release_held(now, false);
        }
        let hold = self.hold_limit > 0
            && self.session.is_above_high_water()
            && self.held.len() < self.hold_limit
            && self.held_bytes < self.hold_bytes_limit
            && !self.session.is_closed();
        if hold {
            self.held_bytes = self.held_bytes.saturating_add(message_bytes(&publish));
            self.held.push_back(publish);
            self.session_low = false;
            return;
        }
        // Whatever is held goes first, so the router's order is kept.
        self.release_held(now, true);
        self.applied += 1;
        self.dirty = true;
        let outcome = self.session.deliver(now, publish);
        self.count(outcome);
    }

    fn count(&mut self, outcome: DeliverOutcome) {
        match outcome {
            DeliverOutcome::Dropped(reason) => {
                self.counts.messages_dropped += 1;
                tracing::debug!(conn = self.id.0, ?reason, "delivery dropped");
            }
            DeliverOutcome::QueuedEvictedOldest(evicted) => {
                self.counts.messages_sent += 1;
                self.counts.messages_dropped += u64::from(evicted);
                tracing::debug!(conn = self.id.0, evicted, "queued messages evicted");
            }
            _ => self.counts.messages_sent += 1,
        }
        if self.session.is_above_high_water() {
            self.session_low = false;
        }
    }

    /// Moves held messages into the session while it has room (or all of
    /// them with `force`).
    fn release_held(&mut self, now: Instant, force: bool) {
        while force || !self.session.is_above_high_water() {
            let Some(publish) = self.held.pop_front() else {
                break;
            };
            self.held_bytes = self.held_bytes.saturating_sub(message_bytes(&publish));
            self.applied += 1;
            self.dirty = true;
            let outcome = self.session.deliver(now, publish);
            self.count(outcome);
        }
    }

    /// Applies one message from the shard to the session.
    fn apply(&mut self, now: Instant, message: ToConn) {
        let action = match message {
            ToConn::Ack(token) => {
                self.dirty = true;
                self.awaiting_acks = self.awaiting_acks.saturating_sub(1);
                if let Err(error) = self.session.ack(now, token) {
                    tracing::debug!(conn = self.id.0, %error, "ack not applied");
                }
                return;
            }
            ToConn::Action { action } => {
                if let Action::Deliver { publish, .. } = action {
                    self.deliver(now, publish);
                    return;
                }
                action
            }
        };
        let result = match action {
            Action::Accept {
                session_present,
                resume,
                ..
            } => {
                if let Some(shard) = self.registration.shard() {
                    self.registration = Registration::Accepted(shard);
                }
                // Deliveries are counted from the accept on (see
                // `Router::checkpoint`).
                self.applied = 0;
                self.dirty = true;
                if let Some(client) = &self.client {
                    tracing::info!(
                        client_id = %client.client_id,
                        peer = %self.peer,
                        clean_session = client.clean_session,
                        keep_alive = client.keep_alive,
                        session_present,
                        "client connected"
                    );
                }
                self.session.accept(now, session_present, resume)
            }
            Action::Refuse { code, .. } => {
                if let Some(shard) = self.registration.shard() {
                    self.registration = Registration::Refused(shard);
                }
                tracing::debug!(conn = self.id.0, peer = %self.peer, ?code, "connection refused");
                self.session.refuse(now, code)
            }
            Action::SubAck {
                packet_id, results, ..
            } => self.session.suback(now, packet_id, results),
            Action::Close { .. } => {
                self.session.close(now);
                Ok(())
            }
            Action::PausePublisher { .. } => {
                tracing::debug!(conn = self.id.0, "publisher paused");
                if !self.paused {
                    self.shared
                        .stats
                        .publisher_pauses
                        .fetch_add(1, Ordering::Relaxed);
                }
                self.paused = true;
                Ok(())
            }
            Action::ResumePublisher { .. } => {
                tracing::debug!(conn = self.id.0, "publisher resumed");
                self.paused = false;
                Ok(())
            }
            other => {
                tracing::debug!(conn = self.id.0, action = ?other, "action ignored");
                Ok(())
            }
        };
        if let Err(error) = result {
            // The router and the session disagree: end the connection
            // rather than guess.
            tracing::debug!(conn = self.id.0, %error, "router decision not applied; closing");
            self.session.close(now);
        }
    }

    /// After the session's `Closed`: tell the shard, write out the last
    /// bytes, close the socket.
    async fn finish(mut self) {
        let now = self.rt.now();
        while self.session.poll_transmit(now, &mut self.write_buf) != 0 {}
        let (reason, publish_will) = self
            .closed
            .take()
            .unwrap_or((CloseReason::ServerClosed, false));
        match self.registration {
            Registration::Pending(_) | Registration::Accepted(_) => {
                let config = self.session.config().clone();
                let session =
                    std::mem::replace(&mut self.session, ServerSession::new(config, now, 0));
                let mut resume: ResumeState = session.into_resume_state();
                self.held_bytes = 0;
                resume.queued.extend(
                    std::mem::take(&mut self.held)
                        .into_iter()
                        .filter(|p| p.qos() != QoS::AtMostOnce),
                );
                // Deliveries that reached the mailbox after the session
                // closed: QoS 1/2 ones join the resume state (the shard does
                // the same with any that come later), so a persistent
                // session keeps them.
                self.mailbox.close();
                while let Ok(message) = self.mailbox.try_recv() {
                    if let ToConn::Action {
                        action: Action::Deliver { publish, .. },
                        ..
                    } = message
                    {
                        if publish.qos() == QoS::AtMostOnce {
                            self.counts.messages_dropped += 1;
                        } else {
                            resume.queued.push(publish);
                        }
                    }
                }
                self.outgoing.push(Input::Closed {
                    // A shutting-down server publishes no wills (see the
                    // crate documentation).
                    publish_will: publish_will && !self.shutting_down,
                    resume,
                });
            }
            Registration::Refused(_) => self.outgoing.push(Input::Detach),
            Registration::None => {}
        }
        self.flush_outgoing().await;

        if !self.broken {
            let timeout = self.close_timeout;
            let rt = self.rt.clone();
            let write_buf = std::mem::take(&mut self.write_buf);
            let stream = &mut self.stream;
            let flushed = future::or(
                async move {
                    let written = stream.write_all(&write_buf).await.map(|()| write_buf.len());
                    let _ = stream.close().await;
                    written.ok()
                },
                async move {
                    rt.sleep(timeout).await;
                    None
                },
            )
            .await;
            if let Some(n) = flushed {
                self.counts.bytes_sent += n as u64;
            }
        }
        self.counts.flush(&self.shared.stats);
        self.shared
            .stats
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
        match &self.client {
            Some(client) if matches!(self.registration, Registration::Accepted(_)) => {
                tracing::info!(
                    client_id = %client.client_id,
                    peer = %self.peer,
                    ?reason,
                    "client disconnected"
                );
            }
            _ => {
                tracing::debug!(conn = self.id.0, peer = %self.peer, ?reason, "socket closed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_buffer_grows_when_filled_and_shrinks_when_quiet() {
        let (mut len, mut small) = (READ_MIN, 0);
        // Full reads double it up to the cap.
        for _ in 0..10 {
            (len, small) = next_read_len(len, len, small);
        }
        assert_eq!(len, READ_CHUNK);
        // A half-full read keeps it and resets the count.
        (len, small) = next_read_len(len, len / 2, 5);
        assert_eq!((len, small), (READ_CHUNK, 0));
        // A run of small reads shrinks it, not one read sooner.
        for _ in 0..SHRINK_AFTER - 1 {
            (len, small) = next_read_len(len, 10, small);
        }
        assert_eq!(len, READ_CHUNK);
        (len, small) = next_read_len(len, 10, small);
        assert_eq!((len, small), (READ_MIN, 0));
        // At the minimum, small reads change nothing.
        assert_eq!(next_read_len(READ_MIN, 1, 0), (READ_MIN, 0));
    }
}
