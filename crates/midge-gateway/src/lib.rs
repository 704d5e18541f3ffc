//! The Midge MQTT-SN gateway as a program part: one UDP socket, the sans-IO
//! gateway core ([`midge_session::sn::gateway::Gateway`]) and one MQTT
//! connection per SN client toward a broker, written once over any
//! [`Runtime`].
//!
//! What it does: binds a UDP socket (IPv4 or IPv6), feeds every datagram to
//! the core, sends what the core answers, arms one timer at the core's next
//! deadline, and opens, writes and closes the broker connections the core
//! asks for through a [`BrokerConnector`]: [`TcpConnector`] reaches any MQTT
//! broker by TCP (the standalone `midge gateway`), [`LocalConnector`] opens
//! in-memory connections into a `midge_server::Server` (the gateway inside
//! `midged`, where SN clients and MQTT clients share topics, retained
//! messages and sessions). ADVERTISE and broadcast GWINFO go to an optional
//! broadcast or multicast address. Client life-cycle events are logged with
//! `tracing`.
//!
//! What it deliberately does not do: any MQTT-SN or MQTT protocol decision
//! (the core makes them all), choose where the core's state is kept (a
//! [`GatewayPersistence`] given to [`Gateway::with_persistence`] does; without
//! one, topic registries and the messages buffered for sleeping clients
//! live in memory and are lost on restart), install logging subscribers, or
//! listen on more than one socket.
//!
//! # Persistence
//!
//! With a [`GatewayPersistence`], the gateway starts from the records it
//! was given ([`gateway::Gateway::restore`]) and, after every input, hands
//! each change the core reports ([`gateway::Gateway::poll_persist`]) to
//! [`GatewayPersistence::record`] and then calls
//! [`GatewayPersistence::commit`] once, before it sends any answer or
//! writes to the broker: what a client or the broker was told is durable
//! first. The calls are synchronous, on the gateway's task (an `fsync` per
//! input that changed something: a REGISTER, a message buffered for a
//! sleeping client, a client falling asleep; keep-alive traffic writes
//! nothing). A failing store is logged and the gateway carries on.
//!
//! # Tasks
//!
//! [`Gateway::run`] owns the socket and the core. Each broker connection is
//! a task of its own: it connects, then forwards what it reads to the
//! gateway through one bounded channel (a slow gateway slows the broker
//! down, never the other way round) and writes, in order, what the gateway
//! sends it through an unbounded channel (the core bounds what it writes).
//! The gateway never waits on a connection task.
//!
//! # Shutdown
//!
//! [`GatewayHandle::shutdown`] stops the loop; every broker connection is
//! then dropped without an MQTT DISCONNECT, so the broker publishes the wills
//! the SN clients registered (the gateway going away looks to the broker
//! like each client vanishing).
//!
//! Key types: [`Gateway`], [`GatewayOptions`], [`GatewayHandle`],
//! [`BrokerConnector`], [`TcpConnector`], [`LocalConnector`],
//! [`GatewayPersistence`].
#![forbid(unsafe_code)]

mod connector;
mod driver;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use midge_runtime::Runtime;
use midge_session::sn::gateway::{
    ClientRecord, Gateway as Core, GatewayConfig, GatewayStats, PersistOp,
};

pub use connector::{BrokerConnector, LocalConnector, TcpConnector};
pub use midge_session::sn::gateway;

/// Where a [`Gateway`] listens and how it behaves. `Default` gives a gateway
/// with id 1 on 127.0.0.1:1884, no broadcast address, and the core's
/// default limits.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// The UDP address to listen on (port 0 picks a free port, see
    /// [`Gateway::local_addr`]). Default 127.0.0.1:1884.
    pub listen: SocketAddr,
    /// Where ADVERTISE and broadcast GWINFO go: a broadcast address (for
    /// example 255.255.255.255:1884) or a multicast group and port. `None`
    /// (the default) sends none; clients then need the gateway's address.
    pub broadcast: Option<SocketAddr>,
    /// Joins the multicast group of [`broadcast`](Self::broadcast) (if it is
    /// one) so SEARCHGW sent to the group reaches the gateway. Default true.
    pub join_multicast: bool,
    /// The core's identity, timers and limits.
    pub config: GatewayConfig,
    /// Longest datagram read; longer ones are truncated by the operating
    /// system and then refused by the decoder. Default 65 535.
    pub max_datagram_in: usize,
    /// Messages from broker connections waiting for the gateway; beyond,
    /// the connections wait. Default 256.
    pub broker_queue: usize,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 1884)),
            broadcast: None,
            join_multicast: true,
            config: GatewayConfig::new(1),
            max_datagram_in: 65_535,
            broker_queue: 256,
        }
    }
}

/// Where a [`Gateway`] keeps the state that survives a restart (see the
/// [crate documentation](crate#persistence)). Both calls run on the
/// gateway's task and may block it briefly.
pub trait GatewayPersistence: Send + 'static {
    /// Records one change; it need not be durable before
    /// [`commit`](Self::commit).
    ///
    /// # Errors
    /// When the change cannot be recorded; the gateway logs it.
    fn record(&mut self, op: &PersistOp) -> io::Result<()>;

    /// Makes every change recorded so far durable.
    ///
    /// # Errors
    /// When the changes cannot be made durable; the gateway logs it.
    fn commit(&mut self) -> io::Result<()>;
}

/// A bound MQTT-SN gateway; [`run`](Self::run) serves until
/// [`GatewayHandle::shutdown`].
pub struct Gateway<R: Runtime, C: BrokerConnector> {
    rt: R,
    socket: R::UdpSocket,
    local: SocketAddr,
    options: GatewayOptions,
    core: Core<SocketAddr>,
    connector: Arc<C>,
    shared: Arc<Shared>,
    persistence: Option<Box<dyn GatewayPersistence>>,
}

impl<R: Runtime, C: BrokerConnector> std::fmt::Debug for Gateway<R, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("local_addr", &self.local)
            .field("gateway_id", &self.options.config.gateway_id)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime, C: BrokerConnector> Gateway<R, C> {
    /// Checks the configuration and binds the UDP socket now (so port 0 is
    /// resolved when this returns); allows broadcast when
    /// [`GatewayOptions::broadcast`] is set and joins its multicast group.
    ///
    /// # Errors
    /// A configuration the core refuses (kind `InvalidInput`), or a socket
    /// that cannot be bound or configured.
    pub async fn bind(rt: R, options: GatewayOptions, connector: C) -> io::Result<Self> {
        let core = Core::new(options.config.clone(), rt.now()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("gateway configuration: {e}"),
            )
        })?;
        let socket = rt.bind_udp(options.listen).await?;
        let local = R::udp_local_addr(&socket)?;
        if let Some(to) = options.broadcast {
            if is_multicast(to.ip()) {
                if options.join_multicast {
                    R::join_multicast(&socket, to.ip())?;
                }
            } else {
                R::set_udp_broadcast(&socket, true)?;
            }
        }
        Ok(Self {
            rt,
            socket,
            local,
            options,
            core,
            connector: Arc::new(connector),
            shared: Arc::new(Shared::new()),
            persistence: None,
        })
    }

    /// Starts from `records` (what `persistence` held at the last stop) and
    /// hands every later change to `persistence`. Sleeping clients are
    /// asleep again and their broker connections open when
    /// [`run`](Self::run) starts; see [`gateway::Gateway::restore`].
    ///
    /// # Errors
    /// A configuration the core refuses (kind `InvalidInput`).
    pub fn with_persistence(
        mut self,
        records: Vec<ClientRecord>,
        persistence: impl GatewayPersistence,
    ) -> io::Result<Self> {
        self.core =
            Core::restore(self.options.config.clone(), self.rt.now(), records).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("gateway configuration: {e}"),
                )
            })?;
        self.persistence = Some(Box::new(persistence));
        Ok(self)
    }

    /// SN clients the gateway knows (restored ones included).
    #[must_use]
    pub fn client_count(&self) -> usize {
        self.core.client_count()
    }

    /// The address the UDP socket is bound to.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// A handle to stop the gateway and read its counters; cheap to clone.
    #[must_use]
    pub fn handle(&self) -> GatewayHandle {
        GatewayHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Serves until [`GatewayHandle::shutdown`], then drops every broker
    /// connection and returns.
    ///
    /// Not cancel-safe: dropping the future drops the core and its state;
    /// the broker connection tasks end as they notice.
    ///
    /// # Errors
    /// A UDP socket that fails for good (receiving fails repeatedly).
    pub async fn run(self) -> io::Result<()> {
        driver::Driver::new(self).run().await
    }
}

fn is_multicast(ip: IpAddr) -> bool {
    ip.is_multicast()
}

/// A snapshot of what a running [`Gateway`] holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GatewaySnapshot {
    /// SN clients known, in any state.
    pub clients: usize,
    /// Broker connections open or being opened.
    pub broker_connections: usize,
    /// The core's counters.
    pub stats: GatewayStats,
}

/// State shared between a gateway and its handles.
#[derive(Debug)]
struct Shared {
    shutdown_tx: async_channel::Sender<()>,
    shutdown_rx: async_channel::Receiver<()>,
    closed_tx: async_channel::Sender<()>,
    closed_rx: async_channel::Receiver<()>,
    snapshot: Mutex<GatewaySnapshot>,
}

impl Shared {
    fn new() -> Self {
        // Neither channel carries messages: they are only ever closed.
        let (shutdown_tx, shutdown_rx) = async_channel::bounded(1);
        let (closed_tx, closed_rx) = async_channel::bounded(1);
        Self {
            shutdown_tx,
            shutdown_rx,
            closed_tx,
            closed_rx,
            snapshot: Mutex::new(GatewaySnapshot::default()),
        }
    }

    fn store(&self, snapshot: GatewaySnapshot) {
        *self.snapshot.lock().unwrap_or_else(PoisonError::into_inner) = snapshot;
    }
}

/// Stops a [`Gateway`] and reads what it holds; cheap to clone, usable from
/// any task or thread.
#[derive(Debug, Clone)]
pub struct GatewayHandle {
    shared: Arc<Shared>,
}

impl GatewayHandle {
    /// Stops the gateway (see the [crate documentation](crate)); calling it
    /// again does nothing.
    pub fn shutdown(&self) {
        self.shared.shutdown_tx.close();
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    #[must_use]
    pub fn is_shutting_down(&self) -> bool {
        self.shared.shutdown_tx.is_closed()
    }

    /// What the gateway held after its last turn.
    #[must_use]
    pub fn snapshot(&self) -> GatewaySnapshot {
        *self
            .shared
            .snapshot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Completes when [`Gateway::run`] has returned (at once if it has);
    /// never, if `run` is never called. Cancel-safe.
    pub async fn closed(&self) {
        let _ = self.shared.closed_rx.recv().await;
    }
}
