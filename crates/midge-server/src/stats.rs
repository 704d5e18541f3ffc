//! The server's counters: atomics shared by every task, read as a
//! [`ServerStats`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

use async_channel::{Receiver, Sender};

/// A snapshot of a server's counters, from
/// [`ServerHandle::stats`](crate::ServerHandle::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// TCP connections open now (CONNECT received or not).
    pub connections_open: u64,
    /// TCP connections accepted since start (rejected ones excluded).
    pub connections_total: u64,
    /// Sockets closed at once because `max_connections` were open.
    pub connections_rejected: u64,
    /// Connections closed because their client broke the protocol.
    pub protocol_errors: u64,
    /// Application messages received from clients.
    pub messages_received: u64,
    /// Application messages handed to sessions for delivery (sent at once
    /// or queued).
    pub messages_sent: u64,
    /// Deliveries a session refused (full queue, closed session).
    pub messages_dropped: u64,
    /// Wills published (connections that ended without DISCONNECT).
    pub wills_published: u64,
    /// Times a publishing connection stopped being read because a
    /// subscriber it fed was congested (back-pressure).
    pub publisher_pauses: u64,
    /// Bytes read from clients.
    pub bytes_received: u64,
    /// Bytes written to clients.
    pub bytes_sent: u64,
    /// Store commits (each one sync) made by the router shards.
    pub store_commits: u64,
    /// Damaged stores found at start-up, moved aside and salvaged
    /// ([`ServerOptions::store_recoveries`](crate::ServerOptions::store_recoveries)).
    pub store_recoveries: u64,
}

/// The atomics behind [`ServerStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) connections_open: AtomicU64,
    pub(crate) connections_total: AtomicU64,
    pub(crate) connections_rejected: AtomicU64,
    pub(crate) protocol_errors: AtomicU64,
    pub(crate) messages_received: AtomicU64,
    pub(crate) messages_sent: AtomicU64,
    pub(crate) messages_dropped: AtomicU64,
    pub(crate) wills_published: AtomicU64,
    pub(crate) publisher_pauses: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) store_commits: AtomicU64,
    pub(crate) store_recoveries: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> ServerStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ServerStats {
            connections_open: get(&self.connections_open),
            connections_total: get(&self.connections_total),
            connections_rejected: get(&self.connections_rejected),
            protocol_errors: get(&self.protocol_errors),
            messages_received: get(&self.messages_received),
            messages_sent: get(&self.messages_sent),
            messages_dropped: get(&self.messages_dropped),
            wills_published: get(&self.wills_published),
            publisher_pauses: get(&self.publisher_pauses),
            bytes_received: get(&self.bytes_received),
            bytes_sent: get(&self.bytes_sent),
            store_commits: get(&self.store_commits),
            store_recoveries: get(&self.store_recoveries),
        }
    }
}

/// A connection's counts not yet added to the shared [`Counters`], so the
/// hot path touches the shared cache lines once per batch, not per message.
#[derive(Debug, Default)]
pub(crate) struct LocalCounts {
    pub(crate) messages_received: u64,
    pub(crate) messages_sent: u64,
    pub(crate) messages_dropped: u64,
    pub(crate) bytes_received: u64,
    pub(crate) bytes_sent: u64,
}

impl LocalCounts {
    /// Adds the counts to `counters` and resets them.
    pub(crate) fn flush(&mut self, counters: &Counters) {
        let add = |a: &AtomicU64, n: &mut u64| {
            if *n != 0 {
                a.fetch_add(*n, Ordering::Relaxed);
                *n = 0;
            }
        };
        add(&counters.messages_received, &mut self.messages_received);
        add(&counters.messages_sent, &mut self.messages_sent);
        add(&counters.messages_dropped, &mut self.messages_dropped);
        add(&counters.bytes_received, &mut self.bytes_received);
        add(&counters.bytes_sent, &mut self.bytes_sent);
    }
}

/// What every task of one server shares: counters, the shutdown signal and
/// the "run has returned" signal. Both signals are channels that are only
/// ever closed, which wakes every waiter at once.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) stats: Counters,
    pub(crate) shutdown_tx: Sender<()>,
    pub(crate) shutdown_rx: Receiver<()>,
    pub(crate) closed_tx: Sender<()>,
    pub(crate) closed_rx: Receiver<()>,
    pub(crate) next_conn: AtomicU64,
    /// In-memory connections ([`crate::ServerHandle::connect_local`]).
    pub(crate) local: crate::local::LocalEntry,
    pub(crate) metrics: crate::metrics::Registry,
}

impl Shared {
    pub(crate) fn new() -> Self {
        let (shutdown_tx, shutdown_rx) = async_channel::bounded(1);
        let (closed_tx, closed_rx) = async_channel::bounded(1);
        Self {
            stats: Counters::default(),
            shutdown_tx,
            shutdown_rx,
            closed_tx,
            closed_rx,
            next_conn: AtomicU64::new(1),
            local: crate::local::LocalEntry::default(),
            metrics: crate::metrics::Registry::default(),
        }
    }
}
