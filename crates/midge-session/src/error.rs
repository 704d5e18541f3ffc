//! The two error types, split by blame: [`UsageError`] (the caller misused the
//! API) and [`ProtocolError`] (the server broke MQTT).

use midge_codec::{DecodeError, EncodeError, PacketType};
use midge_topic::TopicError;

/// The caller asked for something the machine cannot do. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// An empty client id asks the server to invent one, which only works
    /// with a clean session [MQTT-3.1.3-7].
    #[error("an empty client id needs clean_session = true [MQTT-3.1.3-7]")]
    EmptyClientIdNeedsCleanSession,
    /// The configuration would produce a CONNECT that a strict server rejects
    /// (bad client id, will topic, user name, or a password without a user name).
    #[error("invalid CONNECT: {0}")]
    InvalidConnect(EncodeError),
    /// The inflight window must be at least 1.
    #[error("the inflight window must be between 1 and 65535")]
    InvalidInflightWindow,
    /// The command needs an accepted connection (QoS 0 publish).
    #[error("not connected")]
    NotConnected,
    /// `connect` was called while a connection is open or being opened.
    #[error("a connection is already open")]
    AlreadyConnected,
    /// The publish topic is not a valid topic name.
    #[error("invalid topic name: {0}")]
    InvalidTopicName(TopicError),
    /// A subscribe or unsubscribe filter is not a valid topic filter.
    #[error("invalid topic filter: {0}")]
    InvalidTopicFilter(TopicError),
    /// A string could not be carried by MQTT.
    #[error("invalid string: {0}")]
    InvalidString(DecodeError),
    /// A subscribe or unsubscribe without any filter.
    #[error("subscribe and unsubscribe need at least one filter")]
    NoFilters,
    /// The packet would be larger than MQTT can carry.
    #[error("packet of {size} bytes is larger than MQTT allows")]
    PacketTooLarge {
        /// Size the packet would have.
        size: usize,
    },
    /// `max_queued` publishes already wait to go out (QoS 1/2 behind a full
    /// inflight window, QoS 0 not yet written). Write what `poll_transmit`
    /// gives, or wait for a `Delivered` event, then publish again.
    #[error("publish queue full ({max} waiting)")]
    QueueFull {
        /// The configured `max_queued`.
        max: usize,
    },
    /// Too many subscribe/unsubscribe requests are waiting for their answer.
    #[error("too many pending subscribe/unsubscribe requests ({max})")]
    TooManyRequests {
        /// The configured `max_pending_requests`.
        max: usize,
    },
    /// Every packet identifier is in use [MQTT-2.3.1-2].
    #[error("every packet identifier is in use")]
    NoPacketId,
}

/// The server broke the protocol. The machine has already ended the
/// connection (an [`Event::Disconnected`](crate::Event::Disconnected) with
/// [`DisconnectReason::Protocol`](crate::DisconnectReason::Protocol) is queued);
/// the caller must close the transport [MQTT-4.8.0-1].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The bytes are not a valid MQTT packet.
    #[error("malformed packet: {0}")]
    Decode(#[from] DecodeError),
    /// The server's first packet was not CONNACK [MQTT-3.2.0-1].
    #[error("expected CONNACK first, got {0:?} [MQTT-3.2.0-1]")]
    ConnAckExpected(PacketType),
    /// A second CONNACK on the same connection.
    #[error("second CONNACK on one connection")]
    DuplicateConnAck,
    /// A packet only a client may send (CONNECT, SUBSCRIBE, UNSUBSCRIBE,
    /// PINGREQ, DISCONNECT) came from the server.
    #[error("the server sent {0:?}, which only clients send")]
    UnexpectedPacket(PacketType),
    /// A clean-session CONNACK claimed a stored session [MQTT-3.2.2-1].
    #[error("session present on a clean session [MQTT-3.2.2-1]")]
    SessionPresentOnCleanSession,
    /// SUBACK with a different number of codes than the SUBSCRIBE had filters
    /// [MQTT-3.8.4-5].
    #[error("SUBACK has {got} return codes for {expected} filters [MQTT-3.8.4-5]")]
    SubAckCountMismatch {
        /// Filters in the SUBSCRIBE.
        expected: usize,
        /// Codes in the SUBACK.
        got: usize,
    },
}

impl ProtocolError {
    /// The normative statement that decides this error, where one does.
    pub const fn statement(&self) -> Option<&'static str> {
        match self {
            Self::Decode(e) => e.statement(),
            Self::ConnAckExpected(_) => Some("MQTT-3.2.0-1"),
            Self::SessionPresentOnCleanSession => Some("MQTT-3.2.2-1"),
            Self::SubAckCountMismatch { .. } => Some("MQTT-3.8.4-5"),
            Self::DuplicateConnAck | Self::UnexpectedPacket(_) => None,
        }
    }
}
