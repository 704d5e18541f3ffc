//! The Midge broker server: TCP listeners, one task per connection driving a
//! [`midge_broker::ServerSession`], and router shards each driving a
//! [`midge_broker::Router`], written once over any [`Runtime`].
//!
//! What it does: binds the listeners of [`ServerOptions`] (IPv4 and IPv6;
//! plain TCP, TLS, WebSocket and WebSocket over TLS, see [`ListenerKind`]),
//! accepts connections up to [`ServerOptions::max_connections`] (one more
//! socket is closed at once and counted), and moves bytes, deadlines,
//! events, actions and shard messages between sockets and the sans-IO cores
//! exactly as `midge-broker`'s documentation prescribes: back-pressure on
//! publishers ([`midge_broker::Action::PausePublisher`] stops reading a
//! socket), delivery reports, drained queues, takeover and resume state.
//! [`ServerHandle::shutdown`] stops the server gracefully.
//!
//! What it deliberately does not do: speak MQTT itself (every protocol
//! decision is the cores'), or install signal handlers or logging
//! subscribers (that is the `midged` binary's business; it calls
//! [`ServerHandle::reload_tls`] on SIGHUP).
//!
//! # Transports
//!
//! TLS (rustls, TLS 1.2 and 1.3 only) and WebSocket (the spec's section 6,
//! sub-protocol `mqtt`, binary frames) wrap the accepted TCP socket; the
//! handshake runs in the connection's task, bounded by
//! [`ServerOptions::handshake_timeout`], and a failed one closes the socket
//! without disturbing anything else. With [`TlsOptions::cn_as_username`] the
//! client certificate's common name replaces the CONNECT user name in what
//! the router's [`Auth`] sees.
//!
//! # Tasks and channels
//!
//! - **Router shards**: [`ServerOptions::shards`] tasks, each owning one
//!   `Router` (`shard_of(client_id)` picks the shard of a client). A shard
//!   has two inboxes: a bounded one for its connections, whose senders wait
//!   when it is full (natural back-pressure on publishers), and an unbounded
//!   one for the other shards, FIFO per sender. After every input a shard
//!   hands its shard messages to the other shards and its actions to the
//!   connections' mailboxes; neither send ever waits.
//! - **Connections**: one task per socket, owning the socket, a read buffer,
//!   a bounded write buffer ([`ServerOptions::max_write_buffer`]) and the
//!   `ServerSession`. Its mailbox (shard to connection) is unbounded; the
//!   router's back-pressure policy bounds what goes into it.
//!
//! A shard never waits on anyone, so waiting connections always make
//! progress: no cycle of blocking sends exists.
//!
//! # Back-pressure in flight
//!
//! A pause takes a few hops (the subscriber's shard, the publisher's
//! shard, the publisher's connection), and what the publisher sent
//! meanwhile is already in the channels. Two things keep that from
//! overflowing a subscriber under
//! [`SlowSubscriberPolicy::BackPressure`](midge_broker::SlowSubscriberPolicy):
//!
//! - the shard reports each delivery to its router
//!   ([`Router::handle_delivery`]) as it hands it to the connection's
//!   mailbox, counting the connection as congested when its session is
//!   above its high-water mark or when its mailbox holds more deliveries
//!   than that mark. A connection that is slow to be scheduled thus pauses
//!   its publishers at once, not after it has caught up. (The outcome
//!   reported is "queued"; a message the session then drops at its hard
//!   limits is counted in [`ServerStats::messages_dropped`], not in the
//!   router's own counters.) The connection answers every congestion so
//!   reported with one `Drained` once its session, its held messages and
//!   its mailbox are back at the low-water mark;
//! - a congested connection holds further deliveries (in order, up to four
//!   times the session's queue limit in messages and once its limit in
//!   bytes) and hands them to its session as it drains; beyond that the
//!   session's limits decide.
//!
//! The bounded shard inbox ([`ServerOptions::shard_queue`]) keeps the
//! amount in flight small.
//!
//! Deliveries that reach a connection after its session closed (and before
//! its shard learnt of the close) are not lost for a persistent session:
//! QoS 1 and 2 messages join the resume state the router keeps.
//!
//! # Shutdown
//!
//! [`ServerHandle::shutdown`] stops the listeners and closes every
//! connection from the server's side **without publishing wills**: a will
//! tells the others that a client vanished, while a broker going away is
//! seen by every client at once. Persistent sessions are still handed back
//! to their router (so a durable [`Store`] records them). Each connection
//! flushes what its session had already produced (bounded by
//! [`ServerOptions::close_timeout`]) and closes its socket; then the shards
//! stop and [`Server::run`] returns.
//!
//! # Durability
//!
//! With a durable [`Store`] (one per shard, made by
//! [`Server::bind_with`]'s `parts`) and [`ServerOptions::durability`] set,
//! each shard does what `midge-broker`'s router documentation asks of a
//! durable adapter: every router recovers before anything is served;
//! connections of persistent sessions send their
//! [`ServerSession::resume_snapshot`](midge_broker::ServerSession::resume_snapshot)
//! with the count of deliveries applied since their accept whenever it
//! changed, and the shard checkpoints the latest ones before each commit;
//! the shard commits within the [`Durability`] bound while anything waits,
//! and holds each QoS 1/2 acknowledgement until the commit that holds its
//! message ([`Durability::Always`] commits each such message on its own,
//! [`Durability::Never`] does not hold). A message routed to another shard
//! is recorded there, so the publisher's shard also sends that shard a
//! commit barrier behind it (same FIFO channel) and releases the
//! acknowledgement once every barrier is answered. A failed commit keeps
//! everything held and is retried on the next tick. Shards commit once more
//! as they stop. Commits and the damaged stores the caller reports
//! ([`ServerOptions::store_recoveries`]) are counted in [`ServerStats`],
//! `/metrics` and `$SYS/broker/store/...`.
//!
//! A SUBACK waits for the commit too when the subscription was recorded
//! (with `Always` and `Batch`), and whatever follows it for that connection
//! (its retained messages) waits behind it, in order. Not waited for: a
//! session's own state while connected (inflight packet ids, what its
//! client acknowledged) is committed within the bound, so a crash inside
//! that window may deliver a message again.
//!
//! # Metrics and `$SYS`
//!
//! Connections count into shared atomics; each shard keeps its router's
//! counters and answers a snapshot request on a channel of its own, so
//! nothing on the message path locks or waits for a reader.
//! [`ServerHandle::metrics`] gathers them into a [`MetricsSnapshot`],
//! served as Prometheus text by a [`MetricsEndpoint`] and published every
//! [`ServerOptions::sys_interval`] as retained `$SYS/broker/...` messages
//! (the broker's own publications, through
//! [`Router::handle_internal_publish`]).
//!
//! Key types: [`Server`], [`ServerOptions`], [`ServerHandle`],
//! [`ServerStats`], [`MetricsSnapshot`], [`MetricsEndpoint`],
//! [`Durability`].
#![forbid(unsafe_code)]

mod conn;
mod durable;
mod http;
mod local;
mod metrics;
mod shard;
mod stats;
mod sys;
mod transport;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use midge_broker::{AllowAll, Auth, MemoryStore, Router, RouterConfig, ServerConfig, Store};
use midge_runtime::{Duration, Runtime};

pub use durable::{Durability, ALWAYS_BACKGROUND};
pub use http::MetricsEndpoint;
pub use local::LocalStream;
pub use metrics::{ListenerReport, MetricsSnapshot, ShardReport, DROP_REASONS};
pub use stats::ServerStats;
pub use transport::{Listener, ListenerKind, TlsOptions, TransportError};

use crate::shard::ShardLinks;
use crate::stats::Shared;
use crate::transport::{Acceptor, TlsHolder};

/// How a [`Server`] listens and what limits it keeps. `Default` gives a
/// server on 127.0.0.1:1883 with the cores' default limits.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The addresses to listen on, IPv4 and IPv6; port 0 picks a free port
    /// (see [`Server::local_addrs`]). Default `[127.0.0.1:1883]`. These
    /// speak MQTT over plain TCP; other transports go in
    /// [`transports`](Self::transports).
    pub listeners: Vec<SocketAddr>,
    /// More listeners, each with its transport: TLS, WebSocket, WebSocket
    /// over TLS (or plain TCP). Bound after [`listeners`](Self::listeners).
    /// Default none.
    pub transports: Vec<Listener>,
    /// How long an accepted socket may take over its TLS handshake and
    /// WebSocket upgrade; the socket is closed after that. Default 10 s.
    pub handshake_timeout: Duration,
    /// The router's limits. Its `shards` and `shard` fields are set by the
    /// server from [`ServerOptions::shards`].
    pub router: RouterConfig,
    /// The limits of each connection's session.
    pub session: ServerConfig,
    /// Router shards; 0 (the default) means one per available core.
    pub shards: usize,
    /// Open TCP connections, whether they sent CONNECT or not; a socket
    /// accepted beyond it is closed at once and counted in
    /// [`ServerStats::connections_rejected`]. Default 10 000.
    pub max_connections: usize,
    /// Bytes per connection taken from the session but not yet written to
    /// the socket. Above it the connection stops taking more (and stops
    /// reading its client) until the socket drains; the session's own
    /// queue limits apply meanwhile. Default 256 KiB.
    pub max_write_buffer: usize,
    /// Messages a shard's inbox from its connections holds; a connection
    /// whose shard is that far behind waits. Default 64.
    pub shard_queue: usize,
    /// How long a closing connection may take to write out what its session
    /// produced before the socket is dropped regardless. Default 5 s.
    pub close_timeout: Duration,
    /// How often the broker publishes its `$SYS/broker/...` topics
    /// (retained, see [`MetricsSnapshot::sys_topics`]); zero turns them
    /// off. Default 10 s.
    pub sys_interval: Duration,
    /// When the router shards commit their stores and whether QoS 1/2
    /// acknowledgements wait for it (see [`Durability`]). Any mode but
    /// `Off` turns on [`ServerConfig::ack_after_route`] and
    /// [`RouterConfig::record_online`]. Default `Off` (for
    /// [`MemoryStore`]).
    pub durability: Durability,
    /// Damaged stores the caller found, moved aside and salvaged while
    /// opening them, counted from the start in
    /// [`ServerStats::store_recoveries`] (and `$SYS/broker/store/recoveries`).
    /// Default 0.
    pub store_recoveries: u64,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            listeners: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 1883))],
            transports: Vec::new(),
            handshake_timeout: Duration::from_secs(10),
            router: RouterConfig::default(),
            session: ServerConfig::default(),
            shards: 0,
            max_connections: 10_000,
            max_write_buffer: 256 * 1024,
            shard_queue: 64,
            close_timeout: Duration::from_secs(5),
            sys_interval: Duration::from_secs(10),
            durability: Durability::Off,
            store_recoveries: 0,
        }
    }
}

impl ServerOptions {
    /// The number of router shards this configuration runs (at least 1).
    #[must_use]
    pub fn shard_count(&self) -> u32 {
        let n = if self.shards == 0 {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            self.shards
        };
        u32::try_from(n).unwrap_or(u32::MAX).max(1)
    }
}

/// A bound broker server; [`run`](Self::run) serves until
/// [`ServerHandle::shutdown`].
///
/// `S` and `A` are the router's [`Store`] and [`Auth`]; [`Server::bind`]
/// uses [`MemoryStore`] and [`AllowAll`], [`Server::bind_with`] takes any.
pub struct Server<R: Runtime, S: Store = MemoryStore, A: Auth = AllowAll> {
    rt: R,
    options: ServerOptions,
    listeners: Vec<(R::TcpListener, SocketAddr, Arc<Acceptor>)>,
    routers: Vec<Router<S, A>>,
    shared: Arc<Shared>,
}

impl<R: Runtime, S: Store, A: Auth> std::fmt::Debug for Server<R, S, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field(
                "local_addrs",
                &self
                    .listeners
                    .iter()
                    .map(|(_, a, _)| *a)
                    .collect::<Vec<_>>(),
            )
            .field("shards", &self.routers.len())
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> Server<R> {
    /// Binds every listener of `options` now (so port 0 is resolved when
    /// this returns), with an in-memory store and no access control.
    /// Cancel-safe: dropping the future closes what it bound.
    ///
    /// # Errors
    /// The first listener that cannot be bound.
    pub async fn bind(rt: R, options: ServerOptions) -> io::Result<Self> {
        Self::bind_with(rt, options, |_| (MemoryStore::new(), AllowAll)).await
    }
}

impl<R, S, A> Server<R, S, A>
where
    R: Runtime,
    S: Store + Send + 'static,
    A: Auth + Send + 'static,
{
    /// Like [`Server::bind`], with the store and auth of each router shard
    /// made by `parts(shard)`. Each router recovers what its store holds
    /// ([`Router::recover`]) before anything is served. Cancel-safe, as
    /// [`Server::bind`].
    ///
    /// # Errors
    /// The first listener that cannot be bound, certificate files that
    /// cannot be used (kind `InvalidInput`, wrapping a [`TransportError`]),
    /// or a store that cannot recover.
    pub async fn bind_with<F>(rt: R, mut options: ServerOptions, mut parts: F) -> io::Result<Self>
    where
        F: FnMut(u32) -> (S, A),
    {
        if options.durability.is_on() {
            // Acknowledgements wait for the router (and, with `Always` and
            // `Batch`, for the commit); messages handed to connected
            // persistent sessions are recorded, so a crash loses none.
            options.session.ack_after_route = true;
            options.router.record_online = true;
        }
        if options.session.ack_after_route {
            // A connection stops reading at the configured limit of
            // unacknowledged messages, and the session takes one more read's
            // worth above it (see `conn::PUBLISHES_PER_READ`).
            options.session.max_inbound_unacked = options
                .session
                .max_inbound_unacked
                .saturating_add(conn::PUBLISHES_PER_READ);
        }
        let mut kinds = Vec::with_capacity(options.listeners.len() + options.transports.len());
        kinds.extend(options.listeners.iter().map(|addr| (*addr, Acceptor::Tcp)));
        for listener in &options.transports {
            let acceptor = Acceptor::new(&listener.kind)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            kinds.push((listener.addr, acceptor));
        }
        let mut listeners = Vec::with_capacity(kinds.len());
        for (addr, acceptor) in kinds {
            let listener = rt.bind_tcp(addr).await?;
            let local = R::listener_addr(&listener)?;
            listeners.push((listener, local, Arc::new(acceptor)));
        }
        let shards = options.shard_count();
        let now = rt.now();
        let mut routers = Vec::new();
        for shard in 0..shards {
            let mut config = options.router.clone();
            config.shards = shards;
            config.shard = shard;
            let (store, auth) = parts(shard);
            let mut router = Router::new(config, store, auth);
            router
                .recover(now)
                .map_err(|e| io::Error::other(format!("store recovery failed: {e:?}")))?;
            routers.push(router);
        }
        let shared = Arc::new(Shared::new());
        shared.stats.store_recoveries.store(
            options.store_recoveries,
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(Self {
            rt,
            options,
            listeners,
            routers,
            shared,
        })
    }

    /// The addresses the listeners are bound to, in the order of
    /// [`ServerOptions::listeners`] followed by those of
    /// [`ServerOptions::transports`].
    #[must_use]
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().map(|(_, addr, _)| *addr).collect()
    }

    /// A handle to stop the server and read its counters; cheap to clone.
    #[must_use]
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: Arc::clone(&self.shared),
            tls: self
                .listeners
                .iter()
                .filter_map(|(_, _, acceptor)| acceptor.tls().cloned())
                .collect(),
        }
    }

    /// Serves until [`ServerHandle::shutdown`], then shuts down gracefully
    /// (see the [crate documentation](crate)) and returns.
    ///
    /// Not cancel-safe: dropping the future leaves the spawned tasks
    /// running until a shutdown.
    ///
    /// # Errors
    /// None at present; the `Result` leaves room for listener failures
    /// that cannot be recovered from.
    pub async fn run(self) -> io::Result<()> {
        let Self {
            rt,
            options,
            listeners,
            routers,
            shared,
        } = self;
        let links = ShardLinks::new(routers.len(), options.shard_queue);
        shared.metrics.start(links.control(), &rt);
        let (shards_done_tx, shards_done_rx) = async_channel::bounded::<()>(1);
        let backlog_high = conn::water_mark(&options.session, options.session.high_water_percent);
        for (index, router) in routers.into_iter().enumerate() {
            let task = shard::ShardTask::new(
                rt.clone(),
                router,
                &links,
                index,
                backlog_high,
                Arc::clone(&shared),
                options.durability,
            );
            let done = shards_done_tx.clone();
            rt.spawn(async move {
                task.run().await;
                drop(done);
            });
        }
        drop(shards_done_tx);
        for (_, addr, _) in &listeners {
            // Listed from the start, before any connection.
            shared.metrics.listener(*addr);
        }
        if !options.sys_interval.is_zero() {
            rt.spawn(sys::run(
                rt.clone(),
                Arc::clone(&shared),
                options.sys_interval,
            ));
        }

        let (conns_done_tx, conns_done_rx) = async_channel::bounded::<()>(1);
        let options = Arc::new(options);
        for (listener, addr, acceptor) in listeners {
            tracing::info!(%addr, transport = acceptor.name(), "listening");
            let accept = conn::AcceptLoop {
                rt: rt.clone(),
                listener,
                addr,
                acceptor,
                options: Arc::clone(&options),
                links: links.to_shards(),
                shared: Arc::clone(&shared),
                done: conns_done_tx.clone(),
            };
            rt.spawn(accept.run());
        }
        shared.local.open(
            rt.clone(),
            Arc::clone(&options),
            links.to_shards(),
            &shared,
            conns_done_tx.clone(),
        );
        drop(conns_done_tx);

        // The shutdown channel carries no messages: it is only ever closed.
        let _ = shared.shutdown_rx.recv().await;
        tracing::info!("shutting down");
        shared.local.close();
        // Every accept loop and connection holds a sender; all are gone
        // once the last connection has closed.
        let _ = conns_done_rx.recv().await;
        links.close();
        let _ = shards_done_rx.recv().await;
        shared.closed_tx.close();
        tracing::info!("shut down");
        Ok(())
    }
}

/// Stops a [`Server`] and reads its counters; cheap to clone, usable from
/// any task or thread.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
    /// The TLS settings of every TLS and WSS listener.
    tls: Arc<[Arc<TlsHolder>]>,
}

impl ServerHandle {
    /// Starts a graceful shutdown (see the [crate documentation](crate));
    /// [`Server::run`] returns once it is complete. Calling it again does
    /// nothing.
    pub fn shutdown(&self) {
        self.shared.shutdown_tx.close();
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    #[must_use]
    pub fn is_shutting_down(&self) -> bool {
        self.shared.shutdown_tx.is_closed()
    }

    /// Reads the certificate, key and client CA files of every TLS and WSS
    /// listener again. New handshakes use the new files; open connections
    /// keep the session they negotiated. All files are read before any
    /// listener changes, so on an error no listener has changed. Returns
    /// how many listeners were reloaded.
    ///
    /// # Errors
    /// The first file that cannot be used.
    pub fn reload_tls(&self) -> Result<usize, TransportError> {
        let fresh = self
            .tls
            .iter()
            .map(|holder| holder.prepare().map(|config| (holder, config)))
            .collect::<Result<Vec<_>, _>>()?;
        for (holder, config) in &fresh {
            holder.install(Arc::clone(config));
        }
        Ok(fresh.len())
    }

    /// A snapshot of the counters.
    #[must_use]
    pub fn stats(&self) -> ServerStats {
        self.shared.stats.snapshot()
    }

    /// A snapshot of everything the server counts: [`stats`](Self::stats)
    /// plus each router shard's counters and gauges (asked of the shard on
    /// a channel of its own: a busy shard answers a little later) and each
    /// listener's connections. Before [`Server::run`] and after the shards
    /// stopped, the shard part is empty. Cancel-safe.
    pub async fn metrics(&self) -> MetricsSnapshot {
        metrics::collect(&self.shared).await
    }

    /// Completes when [`Server::run`] has finished its shutdown (at once if
    /// it has); never, if `run` is never called. Cancel-safe.
    pub async fn closed(&self) {
        // Only ever closed, never sent to.
        let _ = self.shared.closed_rx.recv().await;
    }
}
