//! The gateway's errors, split by blame: [`ConfigError`] (the caller's
//! configuration) and [`PeerError`] (an SN peer broke MQTT-SN or has no
//! session for what it sent).

use midge_sn_codec::MsgType;

/// The configuration cannot work. Returned by
/// [`Gateway::new`](super::Gateway::new).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A limit or timer that must be positive is zero (or too small).
    #[error("{0} must be positive")]
    ZeroLimit(&'static str),
    /// A pre-defined topic uses a reserved id (0x0000 or 0xFFFF, spec 5.3.11).
    #[error("pre-defined topic id 0x{0:04x} is reserved")]
    ReservedTopicId(u16),
    /// A pre-defined topic's name is not a valid MQTT topic name.
    #[error("pre-defined topic id {0} has an invalid topic name")]
    InvalidPredefinedTopic(u16),
    /// The QoS −1 connection needs a client id.
    #[error("the QoS -1 connection needs a client id")]
    EmptyMinusOneClientId,
}

/// A datagram the gateway could not act on as its sender meant. Returned by
/// [`Gateway::handle_datagram`](super::Gateway::handle_datagram) after
/// whatever answer the specification asks for has been queued (a DISCONNECT
/// to a peer without session, say); the gateway state is consistent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// The datagram is not a valid MQTT-SN message.
    #[error("malformed datagram: {0}")]
    Malformed(#[from] midge_sn_codec::Error),
    /// A message a client never sends to a gateway (CONNACK, SUBACK, …), or
    /// one that does not fit the client's current state (a WILLMSG nobody
    /// asked for).
    #[error("unexpected {0} from a client")]
    Unexpected(MsgType),
    /// A message that needs a connection came from a peer the gateway has no
    /// active session for; it was answered with DISCONNECT (spec 6.12).
    #[error("{0} from a peer without a connection")]
    NotConnected(MsgType),
    /// The client id of CONNECT is empty or too long (spec 5.3.1); CONNACK
    /// "rejected: not supported" was sent.
    #[error("client id empty or too long")]
    InvalidClientId,
    /// A QoS −1 PUBLISH with an unknown pre-defined id or an invalid short
    /// topic name (spec 6.8); nothing can be answered.
    #[error("QoS -1 publish to an unknown topic")]
    UnknownTopic,
}
