//! The task of one [`SnClient`](super::SnClient): owns the UDP socket and
//! moves datagrams, deadlines and events between it and the machine.

use std::future::pending;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_lite::future::or;
use midge_runtime::{Instant, Runtime};
use midge_session::sn::client::{Destination, SnDisconnectReason, SnEvent, SnState};
use midge_sn_codec::ReturnCode;

use super::{Inner, Shared, SnClientError, SnGranted, SnMessage, Waiter};

/// Largest datagram read (the three-octet Length form's maximum).
const MAX_DATAGRAM: usize = 0xFFFF;
/// Socket errors in a row after which the task gives up.
const MAX_CONSECUTIVE_ERRORS: u32 = 64;

pub(super) struct Driver<R: Runtime> {
    pub(super) rt: R,
    pub(super) socket: R::UdpSocket,
    pub(super) shared: Arc<Shared>,
    pub(super) wake_rx: async_channel::Receiver<()>,
    pub(super) message_tx: async_channel::Sender<SnMessage>,
    pub(super) broadcast: Option<SocketAddr>,
}

/// What ended a wait.
enum Wakeup {
    Timer,
    Handle,
    HandlesGone,
    Datagram(io::Result<(usize, SocketAddr)>),
}

/// What one drain of the machine produced.
struct Drained {
    datagrams: Vec<(Destination<SocketAddr>, Bytes)>,
    events: Vec<SnEvent<SocketAddr>>,
    deadline: Option<Instant>,
    state: SnState,
}

impl<R: Runtime> Driver<R> {
    pub(super) async fn run(self) {
        let error = self.serve().await;
        let mut inner = self.shared.lock();
        inner.ended = Some(error.clone());
        inner.fail_waiters(&error, true);
        // Dropping `self` closes the message channel: `SnMessages` ends.
    }

    /// The loop; returns the error every later call fails with.
    async fn serve(&self) -> SnClientError {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut out = BytesMut::new();
        let mut closing = false;
        let mut errors = 0u32;
        loop {
            let drained = self.drain(&mut out);
            for (to, datagram) in &drained.datagrams {
                let to = match to {
                    Destination::Unicast(addr) => *addr,
                    Destination::Broadcast { .. } => match self.broadcast {
                        Some(addr) => addr,
                        None => {
                            tracing::debug!("no broadcast address: SEARCHGW not sent");
                            continue;
                        }
                    },
                };
                if let Err(e) = self.rt.send_to(&self.socket, datagram, to).await {
                    // A datagram network loses datagrams; the machine
                    // retransmits what needs it.
                    tracing::debug!(%to, error = %e, "send failed");
                }
            }
            {
                let mut inner = self.shared.lock();
                for event in drained.events {
                    self.dispatch(&mut inner, event);
                }
            }
            if closing && drained.state == SnState::Disconnected {
                return SnClientError::Closed;
            }
            let deadline = drained.deadline;
            let timer = async {
                match deadline {
                    Some(at) => self.rt.sleep_until(at).await,
                    None => pending::<()>().await,
                }
                Wakeup::Timer
            };
            let handle = async {
                if closing {
                    pending::<()>().await;
                }
                match self.wake_rx.recv().await {
                    Ok(()) => Wakeup::Handle,
                    Err(_) => Wakeup::HandlesGone,
                }
            };
            let datagram =
                async { Wakeup::Datagram(self.rt.recv_from(&self.socket, &mut buf).await) };
            let wakeup = or(timer, or(handle, datagram)).await;
            let now = self.rt.now();
            match wakeup {
                Wakeup::Timer => self.shared.lock().machine.handle_timeout(now),
                Wakeup::Handle => {}
                Wakeup::HandlesGone => {
                    closing = true;
                    let mut inner = self.shared.lock();
                    if inner.machine.state() != SnState::Disconnected {
                        // Refused only when already disconnected.
                        let _ = inner.machine.disconnect(now);
                    }
                }
                Wakeup::Datagram(Ok((len, from))) => {
                    errors = 0;
                    let datagram = buf.get(..len).unwrap_or_default();
                    let mut inner = self.shared.lock();
                    if let Err(e) = inner.machine.handle_datagram(now, from, datagram) {
                        inner.stats.malformed += 1;
                        tracing::debug!(%from, error = %e, "datagram dropped");
                    }
                }
                Wakeup::Datagram(Err(e)) => {
                    errors += 1;
                    tracing::debug!(error = %e, "receive failed");
                    if errors >= MAX_CONSECUTIVE_ERRORS {
                        return SnClientError::Io(e.to_string());
                    }
                }
            }
        }
    }

    /// Takes the datagrams, events and next deadline from the machine, in
    /// the order its documentation asks.
    fn drain(&self, out: &mut BytesMut) -> Drained {
        let mut inner = self.shared.lock();
        let now = self.rt.now();
        let mut datagrams = Vec::new();
        loop {
            out.clear();
            match inner.machine.poll_transmit(now, out) {
                Some(transmit) => datagrams.push((transmit.to, out.split().freeze())),
                None => break,
            }
        }
        let mut events = Vec::new();
        while let Some(event) = inner.machine.poll_event() {
            events.push(event);
        }
        Drained {
            datagrams,
            events,
            deadline: inner.machine.poll_timeout(),
            state: inner.machine.state(),
        }
    }

    /// Hands one event to its waiter or to the message stream.
    fn dispatch(&self, inner: &mut Inner, event: SnEvent<SocketAddr>) {
        match event {
            SnEvent::Connected { gateway } => {
                tracing::debug!(%gateway, "connected");
                inner.stats.connections += 1;
                for tx in inner.connects.drain(..) {
                    let _ = tx.try_send(Ok(()));
                }
            }
            SnEvent::Disconnected { reason } => {
                tracing::debug!(?reason, "disconnected");
                let error = SnClientError::from_reason(&reason);
                if reason == SnDisconnectReason::ClientDisconnect {
                    for tx in inner.disconnects.drain(..) {
                        let _ = tx.try_send(Ok(()));
                    }
                    inner.fail_waiters(&error, false);
                } else {
                    inner.fail_waiters(&error, true);
                }
            }
            SnEvent::Delivered { id } => {
                if let Some(tx) = inner.deliveries.remove(&id) {
                    let _ = tx.try_send(Ok(()));
                }
            }
            SnEvent::Dropped { id } => {
                if let Some(tx) = inner.deliveries.remove(&id) {
                    let _ = tx.try_send(Err(SnClientError::Dropped));
                }
            }
            SnEvent::Registered {
                id: Some(id),
                topic_id,
                ..
            } => {
                if let Some(Waiter::Register(tx)) = inner.requests.remove(&id) {
                    let _ = tx.try_send(Ok(topic_id));
                }
            }
            SnEvent::RegisterFailed { id, code } => answer_code(inner, id, code),
            SnEvent::Subscribed { id, qos, topic_id } => {
                if let Some(Waiter::Subscribe(tx)) = inner.requests.remove(&id) {
                    let _ = tx.try_send(Ok(SnGranted { qos, topic_id }));
                }
            }
            SnEvent::SubscribeRejected { id, code } => answer_code(inner, id, code),
            SnEvent::Unsubscribed { id } => answer_code(inner, id, ReturnCode::Accepted),
            SnEvent::WillUpdated { id, code } => answer_code(inner, id, code),
            SnEvent::Asleep { duration } => {
                tracing::debug!(duration, "asleep");
                for tx in inner.sleeps.drain(..) {
                    let _ = tx.try_send(Ok(()));
                }
            }
            SnEvent::AwakeDone { complete } => {
                for tx in inner.wakes.drain(..) {
                    let _ = tx.try_send(Ok(complete));
                }
            }
            SnEvent::Message {
                topic,
                payload,
                qos,
                retain,
            } => {
                let message = SnMessage {
                    topic,
                    payload,
                    qos,
                    retain,
                };
                if self.message_tx.try_send(message).is_ok() {
                    inner.stats.messages_received += 1;
                } else {
                    inner.stats.messages_dropped += 1;
                }
            }
            other => tracing::debug!(event = ?other, "event"),
        }
    }
}

/// Answers a request with `Ok` for an accepted code, else
/// [`SnClientError::Rejected`].
fn answer_code(inner: &mut Inner, id: midge_session::sn::client::RequestId, code: ReturnCode) {
    let Some(waiter) = inner.requests.remove(&id) else {
        return;
    };
    let error = SnClientError::Rejected(code);
    match waiter {
        Waiter::Done(tx) if code == ReturnCode::Accepted => drop(tx.try_send(Ok(()))),
        other => super::fail_waiter(other, error),
    }
}
