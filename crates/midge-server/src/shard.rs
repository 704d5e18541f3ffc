//! A router shard's task: one [`Router`] fed by its connections and by the
//! other shards, handing actions to connection mailboxes and shard messages
//! to the other shards. It never waits on a send.
//!
//! With [`Durability`] on, it also commits its store within the configured
//! bound, holds the acknowledgements that wait for a commit (PUBACK/PUBREC
//! tokens, and SUBACKs with what follows them for their connection), and
//! answers the other shards' commit barriers (see [`crate::durable`]).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use async_channel::{Receiver, Sender};
use futures_lite::StreamExt;
use midge_broker::{
    AckToken, Action, Auth, CommitTicket, ConnId, ConnectRequest, DeliverOutcome, DropReason,
    Event, Instant, ResumeState, Router, ShardMessage, Store,
};
use midge_codec::{Publish, QoS};
use midge_runtime::Duration;
use midge_runtime::Runtime;

use crate::durable::{Durability, Pending};
use crate::metrics::{Control, ShardReport};
use crate::stats::Shared;

/// What a connection tells its shard.
#[derive(Debug)]
pub(crate) enum Input {
    /// The session's CONNECT, with the mailbox for the shard's answers and
    /// the connection's congestion state.
    Connect {
        mailbox: Sender<ToConn>,
        flow: Arc<Flow>,
        request: ConnectRequest,
    },
    /// Any other session event but `Closed` (publish, subscribe,
    /// unsubscribe, drained).
    Event(Event),
    /// The session closed after having been handed to the router.
    Closed {
        publish_will: bool,
        resume: ResumeState,
    },
    /// The session was refused: forget its mailbox (the router never took it).
    Detach,
    /// The state of a connected persistent session that changed, and the
    /// deliveries applied to it since its accept (durable servers only).
    Checkpoint { state: ResumeState, applied: u64 },
}

/// What a shard tells another shard, in FIFO order per sender.
#[derive(Debug)]
pub(crate) enum Peer {
    /// A router's shard message.
    Router(ShardMessage),
    /// Answer `BarrierDone(id)` to shard `from` once everything recorded
    /// here so far is committed.
    Barrier { from: usize, id: u64 },
    /// The answer to a barrier this shard sent.
    BarrierDone(u64),
}

/// A batch of inputs from one connection, in order.
#[derive(Debug)]
pub(crate) enum ToShard {
    One(ConnId, Input),
    Many(ConnId, Vec<Input>),
}

/// What a shard tells a connection.
#[derive(Debug)]
pub(crate) enum ToConn {
    /// A router decision.
    Action { action: Action },
    /// The router has taken the message handed up with this token
    /// (`ServerConfig::ack_after_route`).
    Ack(AckToken),
}

/// A connection's congestion, shared between it and its shard.
///
/// The shard reports each delivery to its router as it hands it to the
/// mailbox (not after the connection applied it): it sees at once how many
/// deliveries wait in the mailbox, where a connection that is slow to be
/// scheduled would learn of them late, after its publishers had sent far
/// more. A delivery counts as congested when `congested` is set (the
/// session is above its high-water mark or the connection holds messages)
/// or when the mailbox holds more deliveries than the session's high-water
/// mark. The shard then sets `reported`, and the connection answers with
/// `Drained` once all of it has drained.
#[derive(Debug, Default)]
pub(crate) struct Flow {
    pub(crate) congested: AtomicBool,
    pub(crate) reported: AtomicBool,
}

/// A connection as its shard knows it.
#[derive(Debug)]
struct Mailbox {
    tx: Sender<ToConn>,
    flow: Arc<Flow>,
}

/// The channels between shards and connections, made once per server run.
#[derive(Debug)]
pub(crate) struct ShardLinks {
    from_conns: Vec<(Sender<ToShard>, Receiver<ToShard>)>,
    from_shards: Vec<(Sender<Peer>, Receiver<Peer>)>,
    /// Statistics requests and the broker's own publications.
    control: Vec<(Sender<Control>, Receiver<Control>)>,
}

impl ShardLinks {
    pub(crate) fn new(shards: usize, queue: usize) -> Self {
        Self {
            from_conns: (0..shards)
                .map(|_| async_channel::bounded(queue.max(1)))
                .collect(),
            from_shards: (0..shards).map(|_| async_channel::unbounded()).collect(),
            control: (0..shards).map(|_| async_channel::unbounded()).collect(),
        }
    }

    /// The senders a connection uses, by shard number.
    pub(crate) fn to_shards(&self) -> Arc<[Sender<ToShard>]> {
        self.from_conns.iter().map(|(tx, _)| tx.clone()).collect()
    }

    /// The senders of the shards' control channels, by shard number.
    pub(crate) fn control(&self) -> Vec<Sender<Control>> {
        self.control.iter().map(|(tx, _)| tx.clone()).collect()
    }

    /// Closes every inbox; each shard finishes what is queued and stops.
    pub(crate) fn close(&self) {
        for (tx, _) in &self.control {
            tx.close();
        }
        for (tx, _) in &self.from_conns {
            tx.close();
        }
        for (tx, _) in &self.from_shards {
            tx.close();
        }
    }
}

/// Inputs handled per wake-up before the shard yields.
const BATCH: usize = 64;

type Timer = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One router shard and its channels.
pub(crate) struct ShardTask<R: Runtime, S: Store, A: Auth> {
    rt: R,
    index: usize,
    router: Router<S, A>,
    from_conns: Option<Pin<Box<Receiver<ToShard>>>>,
    from_shards: Option<Pin<Box<Receiver<Peer>>>>,
    /// Closed with the other inboxes; not waited on for stopping.
    control: Option<Pin<Box<Receiver<Control>>>>,
    peers: Vec<Sender<Peer>>,
    mailboxes: HashMap<ConnId, Mailbox>,
    /// Mailbox backlog above which a connection counts as congested.
    backlog_high: usize,
    /// QoS 1/2 messages routed to a connection after it stopped taking
    /// deliveries and before its `Closed` arrived; they join its resume
    /// state, so a persistent session loses nothing in that gap.
    orphans: HashMap<ConnId, Vec<Publish>>,
    timer: Option<(Instant, Timer)>,
    /// Whether the router's deadline may have moved earlier. Its only
    /// deadline is the expiry of offline persistent sessions, which starts
    /// when a connection closes; any other change can only make it later,
    /// and an early `handle_timeout` is harmless. So `poll_timeout`, which
    /// looks at every session, runs after a close or a timeout only, not
    /// after every message.
    timer_stale: bool,
    shared: Arc<Shared>,
    durability: Durability,
    /// Held acknowledgements, barriers to answer, checkpoints to apply.
    pending: Pending,
    /// The next commit, armed while something waits for one.
    commit_timer: Option<Timer>,
    /// The shards that received a shard message since this was cleared
    /// (the targets of the publish being routed).
    touched: BTreeSet<usize>,
    /// Connections whose SUBACK waits for a commit (the subscription it
    /// confirms is recorded): it and everything after it for that
    /// connection wait here, in order.
    gates: HashMap<ConnId, Gate>,
}

/// Messages for one connection held behind a SUBACK until `ticket` is
/// committed.
#[derive(Debug)]
struct Gate {
    ticket: CommitTicket,
    queue: VecDeque<ToConn>,
}

impl<R, S, A> ShardTask<R, S, A>
where
    R: Runtime,
    S: Store + Send + 'static,
    A: Auth + Send + 'static,
{
    pub(crate) fn new(
        rt: R,
        router: Router<S, A>,
        links: &ShardLinks,
        index: usize,
        backlog_high: usize,
        shared: Arc<Shared>,
        durability: Durability,
    ) -> Self {
        Self {
            rt,
            index,
            router,
            from_conns: links
                .from_conns
                .get(index)
                .map(|(_, rx)| Box::pin(rx.clone())),
            from_shards: links
                .from_shards
                .get(index)
                .map(|(_, rx)| Box::pin(rx.clone())),
            control: links.control.get(index).map(|(_, rx)| Box::pin(rx.clone())),
            peers: links.from_shards.iter().map(|(tx, _)| tx.clone()).collect(),
            mailboxes: HashMap::new(),
            backlog_high,
            orphans: HashMap::new(),
            timer: None,
            timer_stale: false,
            shared,
            durability,
            pending: Pending::default(),
            commit_timer: None,
            touched: BTreeSet::new(),
            gates: HashMap::new(),
        }
    }

    /// Serves until both inboxes are closed and empty.
    pub(crate) async fn run(mut self) {
        tracing::debug!(shard = self.index, "router shard started");
        // Recovery may have queued shard messages.
        self.drain(self.rt.now(), None);
        self.arm_timer();
        while std::future::poll_fn(|cx| self.poll_step(cx)).await {
            if self.timer_stale {
                self.timer_stale = false;
                self.arm_timer();
            }
            self.arm_commit();
        }
        // Everything the connections handed back at shutdown is recorded:
        // make it durable.
        if self.durability.is_on() {
            self.commit_now();
        } else if let Err(error) = self.router.commit() {
            tracing::warn!(shard = self.index, ?error, "final store commit failed");
        }
        let stats = self.router.stats();
        tracing::debug!(shard = self.index, ?stats, "router shard stopped");
        // Keep the shared state alive until the end (counters).
        drop(self.shared);
    }

    /// Handles what is ready: `Ready(true)` after progress, `Ready(false)`
    /// once both inboxes are closed and empty.
    fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let mut progress = false;
        let mut now = None;
        // Shard messages first: they are never waited on, so keep them short.
        for _ in 0..BATCH {
            let Some(rx) = self.from_shards.as_mut() else {
                break;
            };
            match rx.as_mut().poll_next(cx) {
                Poll::Ready(Some(message)) => {
                    let t = *now.get_or_insert_with(|| self.rt.now());
                    self.peer(t, message);
                    progress = true;
                }
                Poll::Ready(None) => {
                    self.from_shards = None;
                }
                Poll::Pending => break,
            }
        }
        for _ in 0..BATCH {
            let Some(rx) = self.from_conns.as_mut() else {
                break;
            };
            match rx.as_mut().poll_next(cx) {
                Poll::Ready(Some(message)) => {
                    let t = *now.get_or_insert_with(|| self.rt.now());
                    match message {
                        ToShard::One(conn, input) => self.input(t, conn, input),
                        ToShard::Many(conn, inputs) => {
                            for input in inputs {
                                self.input(t, conn, input);
                            }
                        }
                    }
                    progress = true;
                }
                Poll::Ready(None) => {
                    self.from_conns = None;
                }
                Poll::Pending => break,
            }
        }
        // After the connections' inputs, so a report reflects what they
        // had queued (up to a batch) before it was asked for.
        for _ in 0..BATCH {
            let Some(rx) = self.control.as_mut() else {
                break;
            };
            match rx.as_mut().poll_next(cx) {
                Poll::Ready(Some(control)) => {
                    let t = *now.get_or_insert_with(|| self.rt.now());
                    self.control(t, control);
                    progress = true;
                }
                Poll::Ready(None) => self.control = None,
                Poll::Pending => break,
            }
        }
        if let Some((_, timer)) = self.timer.as_mut() {
            if timer.as_mut().poll(cx).is_ready() {
                self.timer = None;
                let t = *now.get_or_insert_with(|| self.rt.now());
                self.router.handle_timeout(t);
                self.drain(t, None);
                self.timer_stale = true;
                progress = true;
            }
        }
        if let Some(timer) = self.commit_timer.as_mut() {
            if timer.as_mut().poll(cx).is_ready() {
                self.commit_timer = None;
                self.commit_now();
                progress = true;
            }
        }
        if progress {
            Poll::Ready(true)
        } else if self.from_conns.is_none() && self.from_shards.is_none() {
            Poll::Ready(false)
        } else {
            Poll::Pending
        }
    }

    /// Re-arms the timer when the router's deadline is earlier than the one
    /// armed (a later deadline waits for the armed one: an early
    /// `handle_timeout` is harmless).
    fn arm_timer(&mut self) {
        match self.router.poll_timeout() {
            None => self.timer = None,
            Some(deadline) => {
                let rearm = self.timer.as_ref().is_none_or(|(at, _)| deadline < *at);
                if rearm {
                    self.timer = Some((deadline, Box::pin(self.rt.sleep_until(deadline))));
                }
            }
        }
    }

    fn input(&mut self, now: Instant, conn: ConnId, input: Input) {
        match input {
            Input::Connect {
                mailbox,
                flow,
                request,
            } => {
                self.mailboxes.insert(conn, Mailbox { tx: mailbox, flow });
                self.router.handle_connect(now, conn, request);
                self.drain(now, None);
            }
            Input::Event(Event::Publish { publish, ack }) => {
                self.touched.clear();
                self.router.handle_publish(now, conn, publish);
                // The deliveries drained right after a publish are its own.
                self.drain(now, Some(conn));
                if let Some(token) = ack {
                    self.acknowledge(conn, token);
                }
            }
            Input::Event(Event::Subscribe { packet_id, filters }) => {
                self.router.handle_subscribe(now, conn, packet_id, filters);
                self.drain(now, None);
                if self.durability == Durability::Always && self.gates.contains_key(&conn) {
                    self.commit_now();
                }
            }
            Input::Event(Event::Unsubscribe { filters, .. }) => {
                self.router.handle_unsubscribe(now, conn, filters);
                self.drain(now, None);
            }
            Input::Event(Event::Drained) => {
                self.router.handle_drained(now, conn);
                self.drain(now, None);
            }
            Input::Event(other) => {
                tracing::debug!(shard = self.index, ?conn, event = ?other, "event not for the router");
            }
            Input::Closed {
                publish_will,
                resume,
            } => {
                let mut resume = resume;
                self.pending.forget(conn);
                // Deliveries held behind a SUBACK never reached the
                // connection: QoS 1/2 ones join its resume state.
                if let Some(gate) = self.gates.remove(&conn) {
                    for message in gate.queue {
                        if let ToConn::Action {
                            action: Action::Deliver { publish, .. },
                        } = message
                        {
                            if publish.qos() != QoS::AtMostOnce {
                                resume.queued.push(publish);
                            }
                        }
                    }
                }
                if let Some(late) = self.orphans.remove(&conn) {
                    resume.queued.extend(late);
                }
                let wills = self.router.stats().wills_published;
                self.router.handle_closed(now, conn, publish_will, resume);
                self.timer_stale = true;
                let published = self.router.stats().wills_published.saturating_sub(wills);
                if published != 0 {
                    self.shared
                        .stats
                        .wills_published
                        .fetch_add(published, Ordering::Relaxed);
                }
                self.drain(now, None);
                self.mailboxes.remove(&conn);
            }
            Input::Detach => {
                self.mailboxes.remove(&conn);
                self.orphans.remove(&conn);
                self.gates.remove(&conn);
            }
            Input::Checkpoint { state, applied } => {
                if self.durability.is_on() && self.mailboxes.contains_key(&conn) {
                    self.pending.checkpoint(conn, state, applied);
                }
            }
        }
    }

    /// A message from another shard.
    fn peer(&mut self, now: Instant, message: Peer) {
        match message {
            Peer::Router(message) => {
                self.router.handle_shard_message(now, message);
                self.drain(now, None);
            }
            Peer::Barrier { from, id } => match self.router.commit_ticket() {
                // Whatever the sender routed here before the barrier is
                // committed already (or wrote nothing).
                None => {
                    self.send_peer(from, Peer::BarrierDone(id));
                }
                Some(ticket) => {
                    self.pending.remote_barrier(ticket, from, id);
                    if self.durability == Durability::Always {
                        self.commit_now();
                    }
                }
            },
            Peer::BarrierDone(id) => {
                self.pending.barrier_done(id);
                self.release();
            }
        }
    }

    /// Sends the acknowledgement of a publish just routed, at once or once
    /// the commits it waits for are done.
    fn acknowledge(&mut self, conn: ConnId, token: AckToken) {
        if !self.durability.acks_wait() {
            self.send_ack(conn, token);
            return;
        }
        let ticket = self.router.commit_ticket();
        let targets: Vec<usize> = std::mem::take(&mut self.touched)
            .into_iter()
            .filter(|s| *s != self.index)
            .collect();
        if ticket.is_none() && targets.is_empty() {
            self.send_ack(conn, token);
            return;
        }
        let id = self.pending.hold(conn, token, ticket, targets.len());
        for target in targets {
            // After the routed messages, in the same FIFO channel.
            if !self.send_peer(
                target,
                Peer::Barrier {
                    from: self.index,
                    id,
                },
            ) {
                self.pending.barrier_done(id);
            }
        }
        if ticket.is_some() && self.durability == Durability::Always {
            self.commit_now();
        }
    }

    /// Applies the pending checkpoints, commits, and releases what the
    /// commit covers; on a failure everything stays held and the next
    /// commit is armed.
    fn commit_now(&mut self) {
        let now = self.rt.now();
        for (conn, (state, applied)) in self.pending.take_checkpoints() {
            self.router.checkpoint(now, conn, &state, applied);
        }
        match self.router.commit() {
            Ok(Some(_)) => {
                self.shared
                    .stats
                    .store_commits
                    .fetch_add(1, Ordering::Relaxed);
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(shard = self.index, ?error, "store commit failed; retrying");
            }
        }
        // Checkpoints may have routed nothing, but keep the drain rule.
        self.drain(now, None);
        self.release();
    }

    /// Sends the acknowledgements and barrier answers the commits so far
    /// allow.
    fn release(&mut self) {
        self.open_gates();
        let router = &self.router;
        let acks = self.pending.ready_acks(|t| router.is_committed(t));
        let barriers = self.pending.ready_barriers(|t| router.is_committed(t));
        for (conn, token) in acks {
            self.send_ack(conn, token);
        }
        for (shard, id) in barriers {
            self.send_peer(shard, Peer::BarrierDone(id));
        }
    }

    /// Arms the commit timer while something waits for a commit.
    fn arm_commit(&mut self) {
        let Some(bound) = self.durability.bound() else {
            return;
        };
        if self.commit_timer.is_some() {
            return;
        }
        if self.router.commit_ticket().is_some() || self.pending.waiting() || !self.gates.is_empty()
        {
            let at = self.rt.now() + bound.max(Duration::from_micros(100));
            self.commit_timer = Some(Box::pin(self.rt.sleep_until(at)));
        }
    }

    fn send_ack(&mut self, conn: ConnId, token: AckToken) {
        let now = self.rt.now();
        self.send(now, conn, ToConn::Ack(token));
    }

    /// Sends to another shard; whether it was taken.
    fn send_peer(&self, shard: usize, message: Peer) -> bool {
        self.peers
            .get(shard)
            .is_some_and(|tx| tx.try_send(message).is_ok())
    }

    /// Hands out everything the router produced: shard messages to the other
    /// shards, actions to the connections. `publisher` tags the deliveries
    /// when the input was that connection's publish.
    fn drain(&mut self, now: Instant, publisher: Option<ConnId>) {
        loop {
            while let Some((shard, message)) = self.router.poll_shard_message() {
                let target = usize::try_from(shard).ok();
                let sent = target
                    .and_then(|s| self.peers.get(s))
                    .map(|tx| tx.try_send(Peer::Router(message)).is_ok());
                if let (Some(target), Some(true)) = (target, sent) {
                    self.touched.insert(target);
                }
                if sent != Some(true) {
                    tracing::debug!(shard = self.index, to = shard, "shard message not sent");
                }
            }
            let Some(action) = self.router.poll_action() else {
                break;
            };
            let conn = match &action {
                Action::Accept { conn, .. }
                | Action::Refuse { conn, .. }
                | Action::SubAck { conn, .. }
                | Action::Deliver { conn, .. }
                | Action::Close { conn }
                | Action::PausePublisher { conn }
                | Action::ResumePublisher { conn } => *conn,
                Action::DeliveryDropped {
                    conn,
                    publisher,
                    reason,
                } => {
                    tracing::debug!(
                        shard = self.index,
                        ?conn,
                        ?publisher,
                        ?reason,
                        "delivery dropped"
                    );
                    continue;
                }
                other => {
                    tracing::debug!(shard = self.index, action = ?other, "unknown action ignored");
                    continue;
                }
            };
            let Action::Deliver { .. } = action else {
                if matches!(action, Action::SubAck { .. }) && self.durability.acks_wait() {
                    // The SUBACK confirms a subscription the store has
                    // recorded: it waits for the commit, and what follows
                    // for this connection (its retained messages) waits
                    // behind it.
                    if let Some(ticket) = self.router.commit_ticket() {
                        let gate = self.gates.entry(conn).or_insert_with(|| Gate {
                            ticket,
                            queue: VecDeque::new(),
                        });
                        gate.ticket = gate.ticket.max(ticket);
                        gate.queue.push_back(ToConn::Action { action });
                        continue;
                    }
                }
                self.send(now, conn, ToConn::Action { action });
                continue;
            };
            let Some(mailbox) = self.mailboxes.get(&conn) else {
                self.undeliverable(now, conn, publisher);
                continue;
            };
            let gated = self.gates.get_mut(&conn);
            let sent = match gated {
                Some(gate) => {
                    gate.queue.push_back(ToConn::Action { action });
                    Ok(())
                }
                None => mailbox.tx.try_send(ToConn::Action { action }),
            };
            let (outcome, above) = match sent {
                Ok(()) => {
                    let above = mailbox.flow.congested.load(Ordering::SeqCst)
                        || mailbox.tx.len() > self.backlog_high;
                    if above {
                        mailbox.flow.reported.store(true, Ordering::SeqCst);
                    }
                    (DeliverOutcome::Queued, above)
                }
                // The connection is closing: it no longer takes deliveries,
                // and its `Closed` is on the way.
                Err(refused) => match refused.into_inner() {
                    ToConn::Action {
                        action: Action::Deliver { publish, .. },
                    } if publish.qos() != QoS::AtMostOnce => {
                        self.orphans.entry(conn).or_default().push(publish);
                        (DeliverOutcome::Queued, false)
                    }
                    _ => (DeliverOutcome::Dropped(DropReason::Closed), false),
                },
            };
            self.router
                .handle_delivery(now, conn, publisher, outcome, above);
        }
    }

    /// A statistics request or a message the broker publishes itself.
    fn control(&mut self, now: Instant, control: Control) {
        match control {
            Control::Report(reply) => {
                let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
                let report = ShardReport {
                    shard: u32::try_from(self.index).unwrap_or(u32::MAX),
                    router: *self.router.stats(),
                    sessions: count(self.router.session_count()),
                    clients_connected: count(self.router.connection_count()),
                    subscriptions: count(self.router.subscription_count()),
                    retained: count(self.router.retained_len()),
                    paused_publishers: count(self.router.paused_count()),
                    inbox_depth: count(self.from_conns.as_ref().map_or(0, |rx| rx.len())),
                    peer_inbox_depth: count(self.from_shards.as_ref().map_or(0, |rx| rx.len())),
                    mailbox_depth: count(self.mailboxes.values().map(|m| m.tx.len()).sum()),
                };
                // The asker may have given up; nothing to do then.
                let _ = reply.try_send(report);
            }
            Control::Publish(publish) => {
                self.router.handle_internal_publish(now, publish);
                self.drain(now, None);
            }
        }
    }

    /// A delivery for a connection without a mailbox: counted and reported
    /// to the router as dropped, which keeps its reports in order.
    fn undeliverable(&mut self, now: Instant, conn: ConnId, publisher: Option<ConnId>) {
        self.shared
            .stats
            .messages_dropped
            .fetch_add(1, Ordering::Relaxed);
        self.router.handle_delivery(
            now,
            conn,
            publisher,
            DeliverOutcome::Dropped(DropReason::Closed),
            false,
        );
    }

    fn send(&mut self, _now: Instant, conn: ConnId, message: ToConn) {
        if let Some(gate) = self.gates.get_mut(&conn) {
            gate.queue.push_back(message);
            return;
        }
        if let Some(mailbox) = self.mailboxes.get(&conn) {
            // Unbounded: fails only when the connection is gone.
            let _ = mailbox.tx.try_send(message);
        }
    }

    /// Opens the gates whose commit is done: their messages go to the
    /// mailboxes, in order.
    fn open_gates(&mut self) {
        let router = &self.router;
        let open: Vec<ConnId> = self
            .gates
            .iter()
            .filter(|(_, gate)| router.is_committed(gate.ticket))
            .map(|(conn, _)| *conn)
            .collect();
        for conn in open {
            let Some(gate) = self.gates.remove(&conn) else {
                continue;
            };
            let Some(mailbox) = self.mailboxes.get(&conn) else {
                continue;
            };
            for message in gate.queue {
                // Unbounded: fails only when the connection is closing;
                // QoS 1/2 deliveries then join its resume state as in
                // `drain`.
                if let Err(refused) = mailbox.tx.try_send(message) {
                    if let ToConn::Action {
                        action: Action::Deliver { publish, .. },
                    } = refused.into_inner()
                    {
                        if publish.qos() != QoS::AtMostOnce {
                            self.orphans.entry(conn).or_default().push(publish);
                        }
                    }
                }
            }
        }
    }
}
