//! Durability in the running server: when each router shard commits its
//! [`Store`](midge_broker::Store), and which acknowledgements wait for it.
//!
//! A shard holds the [`AckToken`] of a QoS 1/2 PUBLISH whose routing wrote
//! to its store until a commit covers those writes ([`Router::commit_ticket`]
//! and [`Router::is_committed`](midge_broker::Router::is_committed)). With
//! several shards, a message routed to another shard is recorded in that
//! shard's store, so the publisher's shard also sends each such shard a
//! commit barrier through the same FIFO channel, after the routed message;
//! the target answers it once a commit of its own covers everything it had
//! recorded when the barrier arrived, and the acknowledgement goes only when
//! every barrier is answered and the local commit is done.
//!
//! [`Router::commit_ticket`]: midge_broker::Router::commit_ticket

use std::collections::{BTreeMap, HashMap};

use midge_broker::{AckToken, CommitTicket, ConnId, ResumeState};
use midge_runtime::Duration;

/// How a server commits its stores and whether acknowledgements wait for
/// the disk ([`ServerOptions::durability`](crate::ServerOptions::durability)).
///
/// With any mode but [`Off`](Self::Off), the server turns on
/// `ServerConfig::ack_after_route` and `RouterConfig::record_online`, so
/// that messages handed to connected persistent sessions are recorded too,
/// and checkpoints the state of connected persistent sessions before each
/// commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// No commits while running (one at shutdown) and no waiting: for an
    /// in-memory store. The default.
    #[default]
    Off,
    /// Every QoS 1/2 PUBLISH that wrote to a store is committed on its own
    /// before it is acknowledged (one sync per message); other changes are
    /// committed within [`ALWAYS_BACKGROUND`].
    Always,
    /// Changes are committed within the given bound, many connections'
    /// writes sharing one sync; acknowledgements wait for the commit that
    /// holds their message.
    Batch(Duration),
    /// Changes are committed every given interval, but acknowledgements do
    /// not wait for it: a crash may lose what was acknowledged in the last
    /// interval.
    Never(Duration),
}

/// How soon [`Durability::Always`] commits changes that no acknowledgement
/// waits for (checkpoints, subscriptions, closes).
pub const ALWAYS_BACKGROUND: Duration = Duration::from_millis(2);

impl Durability {
    /// Whether QoS 1/2 acknowledgements wait for a commit.
    #[must_use]
    pub fn acks_wait(self) -> bool {
        matches!(self, Self::Always | Self::Batch(_))
    }

    /// Whether the server records and commits anything while running.
    #[must_use]
    pub fn is_on(self) -> bool {
        !matches!(self, Self::Off)
    }

    /// The longest a recorded change waits for its commit, `None` when
    /// [`Off`](Self::Off).
    #[must_use]
    pub fn bound(self) -> Option<Duration> {
        match self {
            Self::Off => None,
            Self::Always => Some(ALWAYS_BACKGROUND),
            Self::Batch(bound) | Self::Never(bound) => Some(bound),
        }
    }
}

/// An acknowledgement waiting for commits.
#[derive(Debug)]
struct Held {
    conn: ConnId,
    token: AckToken,
    /// The local commit it waits for, if any.
    ticket: Option<CommitTicket>,
    /// Barriers sent to other shards and not answered yet.
    barriers: usize,
}

/// The acknowledgements a shard holds, the barriers other shards asked it
/// to answer, and the checkpoints to apply before its next commit.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    next_id: u64,
    held: BTreeMap<u64, Held>,
    /// Barriers from other shards: answered to `(shard, id)` once `ticket`
    /// is committed here.
    remote: Vec<(CommitTicket, usize, u64)>,
    /// The latest snapshot of each connected persistent session that
    /// changed since the last commit, with its applied-delivery count.
    checkpoints: HashMap<ConnId, (ResumeState, u64)>,
}

impl Pending {
    /// Holds `token` until `ticket` is committed and `barriers` barriers
    /// are answered; returns the id the barriers carry.
    pub(crate) fn hold(
        &mut self,
        conn: ConnId,
        token: AckToken,
        ticket: Option<CommitTicket>,
        barriers: usize,
    ) -> u64 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.held.insert(
            id,
            Held {
                conn,
                token,
                ticket,
                barriers,
            },
        );
        id
    }

    /// One barrier of acknowledgement `id` was answered.
    pub(crate) fn barrier_done(&mut self, id: u64) {
        if let Some(held) = self.held.get_mut(&id) {
            held.barriers = held.barriers.saturating_sub(1);
        }
    }

    /// A barrier from shard `from` that waits for `ticket` here.
    pub(crate) fn remote_barrier(&mut self, ticket: CommitTicket, from: usize, id: u64) {
        self.remote.push((ticket, from, id));
    }

    /// Takes the acknowledgements that may go now, in the order they were
    /// held.
    pub(crate) fn ready_acks(
        &mut self,
        committed: impl Fn(CommitTicket) -> bool,
    ) -> Vec<(ConnId, AckToken)> {
        let ready: Vec<u64> = self
            .held
            .iter()
            .filter(|(_, h)| h.barriers == 0 && h.ticket.is_none_or(&committed))
            .map(|(id, _)| *id)
            .collect();
        ready
            .into_iter()
            .filter_map(|id| self.held.remove(&id))
            .map(|h| (h.conn, h.token))
            .collect()
    }

    /// Takes the remote barriers whose tickets are committed: `(shard, id)`.
    pub(crate) fn ready_barriers(
        &mut self,
        committed: impl Fn(CommitTicket) -> bool,
    ) -> Vec<(usize, u64)> {
        let mut ready = Vec::new();
        self.remote.retain(|(ticket, from, id)| {
            if committed(*ticket) {
                ready.push((*from, *id));
                false
            } else {
                true
            }
        });
        ready
    }

    /// Keeps the latest checkpoint of `conn`.
    pub(crate) fn checkpoint(&mut self, conn: ConnId, state: ResumeState, applied: u64) {
        self.checkpoints.insert(conn, (state, applied));
    }

    /// Forgets the checkpoint of a connection that closed (its close hands
    /// the router its whole state).
    pub(crate) fn forget(&mut self, conn: ConnId) {
        self.checkpoints.remove(&conn);
    }

    /// Takes the checkpoints to apply before a commit.
    pub(crate) fn take_checkpoints(&mut self) -> Vec<(ConnId, (ResumeState, u64))> {
        self.checkpoints.drain().collect()
    }

    /// Whether anything waits for a commit here.
    pub(crate) fn waiting(&self) -> bool {
        !self.held.is_empty() || !self.remote.is_empty() || !self.checkpoints.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_modes_say_whether_acks_wait() {
        assert!(!Durability::Off.acks_wait());
        assert!(Durability::Always.acks_wait());
        assert!(Durability::Batch(Duration::from_millis(2)).acks_wait());
        assert!(!Durability::Never(Duration::from_millis(2)).acks_wait());
        assert_eq!(Durability::Off.bound(), None);
        assert!(Durability::Never(Duration::from_millis(5)).is_on());
    }

    #[test]
    fn checkpoints_keep_the_latest_and_are_forgotten_on_close() {
        let mut pending = Pending::default();
        assert!(!pending.waiting());
        pending.checkpoint(ConnId(1), ResumeState::default(), 3);
        pending.checkpoint(ConnId(1), ResumeState::default(), 5);
        pending.checkpoint(ConnId(2), ResumeState::default(), 1);
        assert!(pending.waiting());
        pending.forget(ConnId(2));
        let taken = pending.take_checkpoints();
        assert_eq!(taken.len(), 1);
        assert_eq!(
            taken.first().map(|(c, (_, n))| (*c, *n)),
            Some((ConnId(1), 5))
        );
        assert!(!pending.waiting());
    }
}
