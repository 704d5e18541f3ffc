//! What the machine tells its caller: [`Event`] and the ids it carries.

use alloc::vec::Vec;

use midge_codec::{ConnectReturnCode, Publish, SubscribeReturnCode};

use crate::error::ProtocolError;

/// Names one `publish` call; comes back in [`Event::Delivered`] or
/// [`Event::Dropped`]. Unique for the life of a [`Client`](crate::Client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeliveryId(pub(crate) u64);

impl DeliveryId {
    /// The number behind the id (1, 2, 3, … in call order).
    pub const fn get(self) -> u64 {
        self.0
    }
}

/// Names one `subscribe` or `unsubscribe` call; comes back in
/// [`Event::Subscribed`] or [`Event::Unsubscribed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub(crate) u64);

impl RequestId {
    /// The number behind the id (1, 2, 3, … in call order).
    pub const fn get(self) -> u64 {
        self.0
    }
}

/// Handed out with an inbound QoS 1/2 message when manual acknowledgement is
/// on; give it back to [`Client::ack`](crate::Client::ack) once the message
/// is processed. Valid only on the connection that delivered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AckToken {
    pub(crate) connection: u64,
    pub(crate) seq: u64,
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// No PINGRESP came back within the ping timeout.
    KeepAliveTimeout,
    /// No CONNACK came back within the CONNACK timeout.
    ConnAckTimeout,
    /// The server broke the protocol.
    Protocol(ProtocolError),
    /// The caller reported the transport closed.
    TransportClosed,
    /// The caller called `disconnect` and DISCONNECT has been written.
    ClientDisconnect,
    /// The server refused the connection with this code.
    Refused(ConnectReturnCode),
}

/// Something the caller must learn. Drained with
/// [`Client::poll_event`](crate::Client::poll_event).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The server accepted the connection.
    Connected {
        /// Whether the server still held this client's session.
        session_present: bool,
    },
    /// The server refused the connection; a `Disconnected` with
    /// [`DisconnectReason::Refused`] follows.
    ConnectionRefused {
        /// The server's return code.
        code: ConnectReturnCode,
    },
    /// A publish is done: QoS 0 once written by `poll_transmit`, QoS 1 at
    /// PUBACK, QoS 2 at PUBCOMP (or at PUBREC when a clean session ends
    /// before PUBCOMP: the server already owns the message then).
    Delivered {
        /// The id `publish` returned.
        id: DeliveryId,
    },
    /// A publish that will not be completed: a QoS 0 publish still unwritten
    /// when the connection ended, or a QoS 1/2 publish sent on a clean session
    /// that ended before the server acknowledged it (the state that could
    /// resend it is gone, so whether the server got it is unknown).
    Dropped {
        /// The id `publish` returned.
        id: DeliveryId,
    },
    /// An application message from the server. QoS 2 messages are reported
    /// once, however often the server resends them [MQTT-4.3.3-2].
    Message {
        /// The message.
        publish: Publish,
        /// With manual acknowledgement on and QoS 1/2: the token to pass to
        /// `ack`.
        ack: Option<AckToken>,
    },
    /// The server answered a `subscribe`.
    Subscribed {
        /// The id `subscribe` returned.
        id: RequestId,
        /// One result per filter, in order: the granted QoS or a failure.
        results: Vec<SubscribeReturnCode>,
    },
    /// The server answered an `unsubscribe`.
    Unsubscribed {
        /// The id `unsubscribe` returned.
        id: RequestId,
    },
    /// The connection is over; the caller must close the transport (if it
    /// is not closed already) [MQTT-3.14.4-1].
    Disconnected {
        /// Why.
        reason: DisconnectReason,
    },
}
