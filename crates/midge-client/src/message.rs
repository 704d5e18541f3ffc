//! [`Message`] and [`Messages`]: what the broker sends the application.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_lite::Stream;
use midge_codec::{Publish, QoS, Topic};
use midge_runtime::Instant;
use midge_session::AckToken;

use crate::client::Shared;

/// An application message from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Message {
    /// The topic it was published to (a cheap, reference-counted string;
    /// [`Topic::as_str`] borrows it).
    pub topic: Topic,
    /// The payload.
    pub payload: Bytes,
    /// The QoS it was delivered with.
    pub qos: QoS,
    /// Whether it comes from the broker's retained store.
    pub retain: bool,
    /// Whether the broker marked it as a possible redelivery.
    pub dup: bool,
}

impl Message {
    /// The topic as a string slice.
    #[must_use]
    pub fn topic_str(&self) -> &str {
        self.topic.as_str()
    }

    pub(crate) fn from_publish(publish: Publish) -> Self {
        Self {
            qos: publish.qos_pid.qos(),
            topic: publish.topic,
            payload: publish.payload,
            retain: publish.retain,
            dup: publish.dup,
        }
    }
}

/// A message on its way to the application, with the token that
/// acknowledges it to the broker once the application has taken it.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub(crate) message: Message,
    pub(crate) ack: Option<AckToken>,
}

/// The runtime's clock, without the runtime's type.
pub(crate) type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// The messages the broker sends, in arrival order: a
/// [`Stream`](futures_lite::Stream) of [`Message`], also readable with
/// [`Messages::recv`] or handed to a callback with [`Messages::for_each`].
///
/// Ends (`None`) once the client has ended: after
/// [`Client::disconnect`](crate::Client::disconnect), after a fatal error,
/// or when every [`Client`](crate::Client) handle is dropped, once the
/// messages already buffered have been taken.
///
/// A QoS 1 or 2 message is acknowledged to the broker when the application
/// takes it from here, not when it arrives: the broker's inflight window
/// then bounds how many wait. The acknowledgement is handed to the session
/// before the message is returned, so it is written before anything the
/// application asks for afterwards (a publish, or
/// [`Client::disconnect`](crate::Client::disconnect) right after the last
/// message). Dropping `Messages` acknowledges (and discards) the messages
/// still buffered and everything that arrives afterwards.
pub struct Messages {
    rx: Pin<Box<async_channel::Receiver<Incoming>>>,
    /// The session machine, to acknowledge under its lock as every other
    /// command does.
    shared: Arc<Shared>,
    clock: Clock,
    /// Tells the driver there is something to write, or that it may read
    /// again (a pending nudge is enough: capacity one).
    nudge: async_channel::Sender<()>,
    paused: Arc<AtomicBool>,
}

impl std::fmt::Debug for Messages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messages")
            .field("buffered", &self.rx.len())
            .finish_non_exhaustive()
    }
}

impl Messages {
    pub(crate) fn new(
        rx: async_channel::Receiver<Incoming>,
        shared: Arc<Shared>,
        clock: Clock,
        nudge: async_channel::Sender<()>,
        paused: Arc<AtomicBool>,
    ) -> Self {
        Self {
            rx: Box::pin(rx),
            shared,
            clock,
            nudge,
            paused,
        }
    }

    /// The next message, or `None` once the client has ended and the
    /// buffer is empty.
    ///
    /// # Cancel safety
    /// Cancel-safe: a message is taken from the buffer only when this
    /// future completes, so dropping it loses nothing.
    pub async fn recv(&mut self) -> Option<Message> {
        let incoming = self.rx.recv().await.ok()?;
        Some(self.taken(incoming))
    }

    /// A message if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<Message> {
        let incoming = self.rx.try_recv().ok()?;
        Some(self.taken(incoming))
    }

    /// How many messages are waiting.
    #[must_use]
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Whether no message is waiting.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// Calls `f` with every message until the client ends (the callback
    /// form). `f` may publish through a [`Client`](crate::Client) clone:
    /// [`Client::publish`](crate::Client::publish) never waits, so this
    /// cannot deadlock.
    ///
    /// # Cancel safety
    /// Cancel-safe: dropping the future between messages loses none; the
    /// rest stay buffered (but `self` is consumed, so they are acknowledged
    /// and discarded as they arrive, as when `Messages` is dropped).
    pub async fn for_each(mut self, mut f: impl FnMut(Message)) {
        while let Some(message) = self.recv().await {
            f(message);
        }
    }

    /// Acknowledges a message the application has just taken: straight to
    /// the session, so that the acknowledgement is queued before any later
    /// command, then wakes the driver to write it.
    fn taken(&self, incoming: Incoming) -> Message {
        if let Some(token) = incoming.ack {
            let now = (self.clock)();
            // After the client has ended the machine ignores the token.
            self.shared.lock().machine.ack(now, token);
            self.wake_driver();
        } else if self.paused.load(Ordering::Acquire) {
            self.wake_driver();
        }
        incoming.message
    }

    /// A nudge already pending is enough, and a driver that has ended needs
    /// none: a failed send is fine.
    fn wake_driver(&self) {
        let _ = self.nudge.try_send(());
    }
}

impl Drop for Messages {
    /// Acknowledges the QoS 1/2 messages still buffered: nobody will take
    /// them, and unacknowledged they would hold the broker's window.
    fn drop(&mut self) {
        let now = (self.clock)();
        let mut acked = false;
        {
            let mut inner = self.shared.lock();
            while let Ok(incoming) = self.rx.try_recv() {
                if let Some(token) = incoming.ack {
                    inner.machine.ack(now, token);
                    acked = true;
                }
            }
        }
        if acked {
            self.wake_driver();
        }
    }
}

impl Stream for Messages {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        match self.rx.as_mut().poll_next(cx) {
            Poll::Ready(Some(incoming)) => Poll::Ready(Some(self.taken(incoming))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.rx.len(), None)
    }
}
