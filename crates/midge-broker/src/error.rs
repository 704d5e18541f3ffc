//! Errors, split by blame: [`ProtocolError`] (the client broke the protocol)
//! and [`UsageError`] (the caller misused the API).

use midge_codec::{ConnectReturnCode, DecodeError, PacketId, PacketType};

/// The client broke the protocol (or a configured limit); the session has
/// closed and emitted [`Event::Closed`](crate::Event::Closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The bytes did not decode; the codec's error names the statement.
    #[error("undecodable input: {0}")]
    Decode(DecodeError),
    /// The first packet on the connection was not CONNECT [MQTT-3.1.0-1].
    #[error("first packet was {0:?}, not CONNECT [MQTT-3.1.0-1]")]
    FirstPacketNotConnect(PacketType),
    /// A second CONNECT arrived on the connection [MQTT-3.1.0-2].
    #[error("second CONNECT on one connection [MQTT-3.1.0-2]")]
    SecondConnect,
    /// An empty client id came with clean session 0; answered with CONNACK
    /// 0x02 [MQTT-3.1.3-8].
    #[error("empty client id with clean session 0 [MQTT-3.1.3-8]")]
    EmptyClientIdWithoutCleanSession,
    /// A packet only a server may send came from the client.
    #[error("{0:?} is never sent by a client [MQTT-4.8.0-1]")]
    UnexpectedPacket(PacketType),
    /// A SUBSCRIBE or UNSUBSCRIBE reused a packet id whose request is still
    /// unanswered [MQTT-2.3.1-2].
    #[error("packet id {0} is still in use [MQTT-2.3.1-2]")]
    PacketIdInUse(PacketId),
    /// More inbound QoS 2 ids awaiting PUBREL than
    /// [`ServerConfig::max_inbound_qos2`](crate::ServerConfig::max_inbound_qos2).
    #[error("more than {max} inbound QoS 2 messages await PUBREL")]
    TooManyInboundQos2 {
        /// The configured limit.
        max: usize,
    },
    /// More inbound publications awaiting the router's acknowledgement than
    /// [`ServerConfig::max_inbound_unacked`](crate::ServerConfig::max_inbound_unacked).
    #[error("more than {max} inbound messages await acknowledgement")]
    TooManyUnacknowledged {
        /// The configured limit.
        max: usize,
    },
    /// More than [`ServerConfig::max_packet_size`](crate::ServerConfig::max_packet_size)
    /// bytes arrived while the CONNECT awaited the router's decision.
    #[error("more than {max} bytes buffered before CONNACK")]
    TooMuchInputBeforeConnAck {
        /// The configured limit.
        max: usize,
    },
}

impl ProtocolError {
    /// The normative statement that decides this error, where there is one.
    pub const fn statement(&self) -> Option<&'static str> {
        match self {
            Self::Decode(e) => match e.statement() {
                Some(s) => Some(s),
                None => Some("MQTT-4.8.0-1"),
            },
            Self::FirstPacketNotConnect(_) => Some("MQTT-3.1.0-1"),
            Self::SecondConnect => Some("MQTT-3.1.0-2"),
            Self::EmptyClientIdWithoutCleanSession => Some("MQTT-3.1.3-8"),
            Self::UnexpectedPacket(_) => Some("MQTT-4.8.0-1"),
            Self::PacketIdInUse(_) => Some("MQTT-2.3.1-2"),
            Self::TooManyInboundQos2 { .. }
            | Self::TooManyUnacknowledged { .. }
            | Self::TooMuchInputBeforeConnAck { .. } => None,
        }
    }
}

/// The caller misused the API; the session's state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// `accept` or `refuse` without a CONNECT awaiting a decision.
    #[error("no CONNECT awaits a decision")]
    NoConnectPending,
    /// `refuse` with [`ConnectReturnCode::Accepted`].
    #[error("refuse needs a non-zero return code, not {0:?}")]
    RefuseWithAccepted(ConnectReturnCode),
    /// `accept` with session present for a clean session [MQTT-3.2.2-1], or
    /// with state to resume for a clean session [MQTT-3.1.2-6].
    #[error("a clean session has no session present and no state to resume [MQTT-3.2.2-1]")]
    CleanSessionWithState,
    /// The resume state names one outbound packet id twice.
    #[error("resume state uses outbound packet id {0} twice")]
    DuplicateResumeId(PacketId),
    /// `suback` for a packet id with no SUBSCRIBE awaiting an answer.
    #[error("no SUBSCRIBE with packet id {0} awaits an answer")]
    UnknownSubscribe(PacketId),
    /// `suback` with a number of codes different from the filters handed up.
    #[error("SUBSCRIBE handed up {expected} filters, got {got} return codes")]
    WrongNumberOfCodes {
        /// Filters in the [`Event::Subscribe`](crate::Event::Subscribe).
        expected: usize,
        /// Codes passed to `suback`.
        got: usize,
    },
    /// `ack` with a token this session has no record of (already used, or
    /// from another connection).
    #[error("unknown acknowledgement token")]
    UnknownAckToken,
    /// The session is closed.
    #[error("the session is closed")]
    Closed,
}
