//! The gateway task and the broker connection tasks.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use async_channel::{Receiver, Sender};
use bytes::{Bytes, BytesMut};
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use midge_runtime::{Instant, Runtime};
use midge_session::sn::gateway::{
    BrokerOp, ConnKey, Destination, Gateway as Core, GatewayEvent, PeerError,
};

use crate::{
    BrokerConnector, Gateway, GatewayOptions, GatewayPersistence, GatewaySnapshot, Shared,
};

/// Bytes read from a broker connection at once.
const READ_CHUNK: usize = 16 * 1024;
/// Receive failures in a row after which the socket counts as broken.
const MAX_RECV_FAILURES: u32 = 100;

type Timer = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What a broker connection task tells the gateway.
enum FromLink {
    Opened(ConnKey),
    Read(ConnKey, Bytes),
    Closed(ConnKey),
    Failed(ConnKey, io::Error),
}

/// What the gateway tells a broker connection task.
enum ToLink {
    Write(Bytes),
    Close,
}

/// What woke the gateway.
enum Wakeup {
    Shutdown,
    Datagram(io::Result<(usize, SocketAddr)>),
    Link(FromLink),
    Timer,
}

pub(crate) struct Driver<R: Runtime, C: BrokerConnector> {
    rt: R,
    socket: R::UdpSocket,
    options: GatewayOptions,
    core: Core<SocketAddr>,
    connector: Arc<C>,
    shared: Arc<Shared>,
    links: BTreeMap<ConnKey, Sender<ToLink>>,
    from_links_tx: Sender<FromLink>,
    from_links: Receiver<FromLink>,
    recv_buf: Box<[u8]>,
    send_buf: BytesMut,
    timer: Option<(Instant, Timer)>,
    persistence: Option<Box<dyn GatewayPersistence>>,
}

impl<R: Runtime, C: BrokerConnector> Driver<R, C> {
    pub(crate) fn new(gateway: Gateway<R, C>) -> Self {
        let Gateway {
            rt,
            socket,
            local: _,
            options,
            core,
            connector,
            shared,
            persistence,
        } = gateway;
        let (from_links_tx, from_links) = async_channel::bounded(options.broker_queue.max(1));
        let recv_buf = vec![0; options.max_datagram_in.clamp(1, 65_535)].into_boxed_slice();
        Self {
            rt,
            socket,
            options,
            core,
            connector,
            shared,
            links: BTreeMap::new(),
            from_links_tx,
            from_links,
            recv_buf,
            send_buf: BytesMut::new(),
            timer: None,
            persistence,
        }
    }

    pub(crate) async fn run(mut self) -> io::Result<()> {
        tracing::info!(
            addr = %R::udp_local_addr(&self.socket).ok().map_or_else(String::new, |a| a.to_string()),
            gateway_id = self.options.config.gateway_id,
            "mqtt-sn gateway listening"
        );
        let mut failures = 0u32;
        let result = loop {
            self.drain().await;
            let wakeup = self.wait().await;
            let now = self.rt.now();
            match wakeup {
                Wakeup::Shutdown => break Ok(()),
                Wakeup::Datagram(Ok((len, from))) => {
                    failures = 0;
                    let datagram = self.recv_buf.get(..len).unwrap_or_default();
                    if let Err(error) = self.core.handle_datagram(now, from, datagram) {
                        log_refused(from, &error);
                    }
                }
                Wakeup::Datagram(Err(error)) => {
                    // ICMP "port unreachable" from an earlier send shows up
                    // here on some systems: not the socket's end.
                    tracing::debug!(%error, "udp receive failed");
                    failures += 1;
                    if failures >= MAX_RECV_FAILURES {
                        break Err(error);
                    }
                }
                Wakeup::Link(message) => self.link_message(now, message),
                Wakeup::Timer => {
                    self.timer = None;
                    self.core.handle_timeout(now);
                }
            }
        };
        // Dropping the senders ends every connection task without an MQTT
        // DISCONNECT: the broker publishes the clients' wills.
        self.links.clear();
        self.shared.closed_tx.close();
        tracing::info!("mqtt-sn gateway stopped");
        result
    }

    /// Moves everything the core produced: broker operations, datagrams,
    /// events; then arms the timer.
    async fn drain(&mut self) {
        self.persist();
        while let Some(op) = self.core.poll_broker() {
            self.broker_op(op);
        }
        let now = self.rt.now();
        loop {
            self.send_buf.clear();
            let Some(transmit) = self.core.poll_transmit(now, &mut self.send_buf) else {
                break;
            };
            let datagram = self.send_buf.get(..transmit.len).unwrap_or_default();
            let to = match transmit.to {
                Destination::Unicast(addr) => Some(addr),
                Destination::Broadcast { .. } => self.options.broadcast,
            };
            let Some(to) = to else {
                tracing::trace!("no broadcast address: advertisement not sent");
                continue;
            };
            if let Err(error) = self.rt.send_to(&self.socket, datagram, to).await {
                tracing::debug!(%to, %error, "udp send failed");
            }
        }
        while let Some(event) = self.core.poll_event() {
            log_event(&event);
        }
        let deadline = self.core.poll_timeout();
        match (deadline, &self.timer) {
            (None, _) => self.timer = None,
            (Some(at), Some((armed, _))) if *armed == at => {}
            (Some(at), _) => self.timer = Some((at, Box::pin(self.rt.sleep_until(at)))),
        }
        self.shared.store(GatewaySnapshot {
            clients: self.core.client_count(),
            broker_connections: self.core.broker_connections(),
            stats: self.core.stats(),
        });
    }

    /// Hands the core's changes to the persistence, one commit for all,
    /// before anything is sent.
    fn persist(&mut self) {
        let Some(p) = self.persistence.as_mut() else {
            return;
        };
        let mut changes = 0usize;
        while let Some(op) = self.core.poll_persist() {
            changes += 1;
            if let Err(error) = p.record(&op) {
                tracing::error!(%error, "gateway state not recorded");
            }
        }
        if changes > 0 {
            if let Err(error) = p.commit() {
                tracing::error!(%error, changes, "gateway state not committed");
            }
        }
    }

    async fn wait(&mut self) -> Wakeup {
        let shutdown = self.shared.shutdown_rx.clone();
        let from_links = self.from_links.clone();
        let timer = &mut self.timer;
        let rt = &self.rt;
        let socket = &self.socket;
        let buf = &mut self.recv_buf;
        future::or(
            async {
                let _ = shutdown.recv().await;
                Wakeup::Shutdown
            },
            future::or(
                async {
                    match from_links.recv().await {
                        Ok(message) => Wakeup::Link(message),
                        // The driver holds a sender: never closed.
                        Err(_) => std::future::pending().await,
                    }
                },
                future::or(
                    async {
                        match timer {
                            Some((_, sleep)) => {
                                sleep.as_mut().await;
                                Wakeup::Timer
                            }
                            None => std::future::pending().await,
                        }
                    },
                    async { Wakeup::Datagram(rt.recv_from(socket, buf).await) },
                ),
            ),
        )
        .await
    }

    fn broker_op(&mut self, op: BrokerOp) {
        match op {
            BrokerOp::Open(key) => {
                let (tx, rx) = async_channel::unbounded();
                self.links.insert(key, tx);
                let link = Link {
                    key,
                    connector: Arc::clone(&self.connector),
                    to_gateway: self.from_links_tx.clone(),
                    from_gateway: rx,
                };
                self.rt.spawn(link.run());
            }
            BrokerOp::Write(key, bytes) => {
                if let Some(tx) = self.links.get(&key) {
                    // Unbounded: never waits; fails only once the task ended,
                    // which it reports itself.
                    let _ = tx.try_send(ToLink::Write(bytes));
                }
            }
            BrokerOp::Close(key) => {
                if let Some(tx) = self.links.remove(&key) {
                    let _ = tx.try_send(ToLink::Close);
                }
            }
        }
    }

    fn link_message(&mut self, now: Instant, message: FromLink) {
        match message {
            FromLink::Opened(key) => {
                if self.connector.failure_means_unreachable() {
                    self.core.set_broker_available(now, true);
                }
                self.core.handle_broker_opened(now, key);
            }
            FromLink::Read(key, bytes) => self.core.handle_broker_read(now, key, &bytes),
            FromLink::Closed(key) => {
                self.links.remove(&key);
                self.core.handle_broker_closed(now, key);
            }
            FromLink::Failed(key, error) => {
                tracing::warn!(%error, "broker connection failed");
                self.links.remove(&key);
                if self.connector.failure_means_unreachable() {
                    self.core.set_broker_available(now, false);
                }
                self.core.handle_broker_closed(now, key);
            }
        }
    }
}

fn log_refused(from: SocketAddr, error: &PeerError) {
    tracing::debug!(%from, %error, "datagram refused");
}

fn log_event(event: &GatewayEvent<SocketAddr>) {
    match event {
        GatewayEvent::ClientConnected { client_id, peer } => {
            tracing::info!(%client_id, addr = %peer.addr, forwarded = peer.node_id.is_some(), "sn client connected");
        }
        GatewayEvent::ClientDisconnected { client_id, cause } => {
            tracing::info!(%client_id, ?cause, "sn client disconnected");
        }
        GatewayEvent::ClientLost { client_id } => {
            tracing::info!(%client_id, "sn client lost; will published");
        }
        GatewayEvent::ClientAsleep {
            client_id,
            duration,
        } => {
            tracing::info!(%client_id, duration, "sn client asleep");
        }
        GatewayEvent::ClientAwake { client_id } => {
            tracing::debug!(%client_id, "sn client awake");
        }
        GatewayEvent::Dropped { client_id, reason } => {
            tracing::debug!(
                client_id = client_id.as_deref().unwrap_or("-"),
                ?reason,
                "message for an sn client dropped"
            );
        }
        other => tracing::debug!(?other, "gateway event"),
    }
}

/// One broker connection's task.
struct Link<C: BrokerConnector> {
    key: ConnKey,
    connector: Arc<C>,
    to_gateway: Sender<FromLink>,
    from_gateway: Receiver<ToLink>,
}

/// How the connection attempt ended.
enum Attempt<S> {
    Connected(io::Result<S>),
    /// The gateway closed the connection (or went away) first.
    Abandoned,
}

impl<C: BrokerConnector> Link<C> {
    async fn run(self) {
        let Self {
            key,
            connector,
            to_gateway,
            from_gateway,
        } = self;
        let mut early: Vec<Bytes> = Vec::new();
        // Writes cannot come before `Opened` (the core writes only to open
        // connections), but a Close can: it abandons the attempt.
        let attempt = future::or(
            async { Attempt::Connected(connector.connect().await) },
            async {
                loop {
                    match from_gateway.recv().await {
                        Ok(ToLink::Write(bytes)) => early.push(bytes),
                        Ok(ToLink::Close) | Err(_) => return Attempt::Abandoned,
                    }
                }
            },
        )
        .await;
        let stream = match attempt {
            Attempt::Connected(Ok(stream)) => stream,
            Attempt::Connected(Err(error)) => {
                let _ = to_gateway.send(FromLink::Failed(key, error)).await;
                return;
            }
            Attempt::Abandoned => return,
        };
        if to_gateway.send(FromLink::Opened(key)).await.is_err() {
            return;
        }
        let (mut reader, mut writer) = futures_lite::io::split(stream);
        let reading = async {
            let mut buf = vec![0; READ_CHUNK];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        let bytes = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                        if to_gateway.send(FromLink::Read(key, bytes)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        };
        let writing = async {
            for bytes in early.drain(..) {
                if writer.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            loop {
                match from_gateway.recv().await {
                    Ok(ToLink::Write(bytes)) => {
                        if writer.write_all(&bytes).await.is_err() {
                            return;
                        }
                        // Flush once the queue is empty: batches writes.
                        if from_gateway.is_empty() && writer.flush().await.is_err() {
                            return;
                        }
                    }
                    Ok(ToLink::Close) => {
                        let _ = writer.flush().await;
                        let _ = writer.close().await;
                        return;
                    }
                    // The gateway stopped: drop the stream as it is.
                    Err(_) => return,
                }
            }
        };
        future::or(reading, writing).await;
        let _ = to_gateway.send(FromLink::Closed(key)).await;
    }
}
