//! The SN client's errors, split by blame: [`SnUsageError`] (the caller) and
//! [`SnProtocolError`] (the datagram's sender).

use midge_sn_codec::MsgType;

/// The caller asked for something the machine cannot do. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnUsageError {
    /// The client id must be 1 to 23 octets (spec 5.4.4).
    #[error("the client id must be 1 to 23 octets")]
    InvalidClientId,
    /// A configuration value is out of range (the field is named).
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
    /// The topic name is empty, holds wildcards where they are not allowed,
    /// or is not a valid topic.
    #[error("invalid topic name")]
    InvalidTopic,
    /// Topic id 0x0000 and 0xFFFF are reserved (spec 5.3.11).
    #[error("topic id 0x0000 and 0xFFFF are reserved")]
    ReservedTopicId,
    /// QoS −1 publishes carry a pre-defined id or a short name only (spec 6.8).
    #[error("QoS -1 needs a pre-defined topic id or a short topic name")]
    MinusOneNeedsIdTopic,
    /// No gateway address is known to send a QoS −1 publish to.
    #[error("no gateway address is known")]
    NoGateway,
    /// The command needs another state (connected, asleep, ...).
    #[error("not possible in the current state")]
    WrongState,
    /// `connect` was called while connected or connecting.
    #[error("already connected or connecting")]
    AlreadyConnected,
    /// A search is already running.
    #[error("a gateway search is already running")]
    SearchRunning,
    /// The command queue is full.
    #[error("command queue full ({max} waiting)")]
    QueueFull {
        /// The configured `max_queued`.
        max: usize,
    },
    /// The message would not fit in an MQTT-SN datagram (65535 octets).
    #[error("message too long for MQTT-SN")]
    TooLong,
}

/// The datagram broke MQTT-SN. It was dropped; the machine's state did not
/// change (a datagram network carries noise, so one bad datagram does not end
/// a connection).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnProtocolError {
    /// The octets are not a valid MQTT-SN message.
    #[error("malformed datagram: {0}")]
    Decode(#[from] midge_sn_codec::Error),
    /// A message only a client or a forwarder sends (CONNECT, SUBSCRIBE,
    /// an encapsulation, ...) came to the client.
    #[error("a client never receives {0:?}")]
    UnexpectedMessage(MsgType),
    /// A REGISTER from the gateway with a reserved topic id or a topic name
    /// holding wildcards (spec 5.4.10, 6.10).
    #[error("REGISTER with a reserved topic id or a wildcard name")]
    InvalidRegister,
}
