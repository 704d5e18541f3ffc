//! Typed decode and encode errors.
//!
//! Every decode error is the peer's fault; the MQTT answer to all of them is to
//! close the network connection [MQTT-4.8.0-1], except
//! [`DecodeError::UnsupportedProtocolLevel`], which a server first answers with
//! CONNACK return code 0x01 [MQTT-3.1.2-2]. [`DecodeError::statement`] names the
//! normative statement behind an error where there is one.

use core::fmt;

use midge_topic::TopicError;

use crate::header::PacketType;

/// The packet field an error refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// The fixed header's remaining length.
    RemainingLength,
    /// A packet identifier.
    PacketId,
    /// CONNECT protocol name.
    ProtocolName,
    /// CONNECT protocol level.
    ProtocolLevel,
    /// CONNECT flags byte.
    ConnectFlags,
    /// CONNECT keep alive.
    KeepAlive,
    /// CONNECT client identifier.
    ClientId,
    /// CONNECT will topic.
    WillTopic,
    /// CONNECT will message.
    WillMessage,
    /// CONNECT user name.
    Username,
    /// CONNECT password.
    Password,
    /// CONNACK acknowledge flags.
    ConnAckFlags,
    /// CONNACK return code.
    ReturnCode,
    /// PUBLISH topic name.
    TopicName,
    /// A SUBSCRIBE or UNSUBSCRIBE topic filter.
    TopicFilter,
    /// A SUBSCRIBE requested QoS byte.
    RequestedQoS,
    /// A value given to a constructor outside of any packet.
    Value,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RemainingLength => "remaining length",
            Self::PacketId => "packet identifier",
            Self::ProtocolName => "protocol name",
            Self::ProtocolLevel => "protocol level",
            Self::ConnectFlags => "connect flags",
            Self::KeepAlive => "keep alive",
            Self::ClientId => "client identifier",
            Self::WillTopic => "will topic",
            Self::WillMessage => "will message",
            Self::Username => "user name",
            Self::Password => "password",
            Self::ConnAckFlags => "connect acknowledge flags",
            Self::ReturnCode => "return code",
            Self::TopicName => "topic name",
            Self::TopicFilter => "topic filter",
            Self::RequestedQoS => "requested QoS",
            Self::Value => "value",
        })
    }
}

/// Why bytes received from a peer are not a valid MQTT packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Packet type 0 or 15: reserved, never sent by a conforming peer.
    #[error("reserved packet type {0}")]
    ReservedPacketType(u8),
    /// The four flag bits of the fixed header differ from the ones the packet type
    /// requires [MQTT-2.2.2-1] [MQTT-2.2.2-2].
    #[error("invalid fixed-header flags {flags:#06b} for {packet_type:?} [MQTT-2.2.2-2]")]
    InvalidFlags {
        /// The packet type.
        packet_type: PacketType,
        /// The low nibble of the first byte.
        flags: u8,
    },
    /// PUBLISH with both QoS bits set [MQTT-3.3.1-4].
    #[error("PUBLISH with QoS 3 [MQTT-3.3.1-4]")]
    InvalidQoS,
    /// PUBLISH QoS 0 with the DUP flag set [MQTT-3.3.1-2].
    #[error("PUBLISH QoS 0 with DUP set [MQTT-3.3.1-2]")]
    DupWithQoS0,
    /// The remaining length does not end within four bytes.
    #[error("remaining length longer than four bytes")]
    MalformedRemainingLength,
    /// The whole packet is larger than the configured maximum. Checked before any
    /// byte of the packet is buffered beyond the fixed header.
    #[error("packet of {size} bytes exceeds the maximum of {max}")]
    PacketTooLarge {
        /// Size of the whole packet, fixed header included.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The remaining length ended before a field did.
    #[error("{packet_type:?} ends inside its {field}")]
    Truncated {
        /// The packet being decoded.
        packet_type: PacketType,
        /// The field that did not fit.
        field: Field,
    },
    /// Bytes left over after the last field of a packet.
    #[error("{count} unexpected bytes at the end of {packet_type:?}")]
    TrailingBytes {
        /// The packet being decoded.
        packet_type: PacketType,
        /// How many bytes were left over.
        count: usize,
    },
    /// A packet identifier of zero [MQTT-2.3.1-1].
    #[error("packet identifier 0 in {packet_type:?} [MQTT-2.3.1-1]")]
    ZeroPacketId {
        /// The packet that carried it.
        packet_type: PacketType,
    },
    /// A string that is not well-formed UTF-8 [MQTT-1.5.3-1].
    #[error("{field} is not well-formed UTF-8 [MQTT-1.5.3-1]")]
    InvalidUtf8 {
        /// The field.
        field: Field,
    },
    /// A string containing U+0000 [MQTT-1.5.3-2].
    #[error("{field} contains U+0000 [MQTT-1.5.3-2]")]
    NullCharacter {
        /// The field.
        field: Field,
    },
    /// A string or binary value longer than 65,535 bytes (only from constructors
    /// and encoders: a length prefix cannot express more).
    #[error("{field} longer than 65535 bytes")]
    StringTooLong {
        /// The field.
        field: Field,
    },
    /// CONNECT with a protocol name other than `MQTT` or `MQIsdp` [MQTT-3.1.2-1].
    #[error("unknown protocol name [MQTT-3.1.2-1]")]
    InvalidProtocolName,
    /// CONNECT with a known protocol name but a level this codec does not speak.
    /// A server answers CONNACK 0x01 and closes [MQTT-3.1.2-2].
    #[error("unsupported protocol level {level} [MQTT-3.1.2-2]")]
    UnsupportedProtocolLevel {
        /// The level received.
        level: u8,
    },
    /// CONNECT flags with the reserved bit 0 set [MQTT-3.1.2-3].
    #[error("CONNECT reserved flag set [MQTT-3.1.2-3]")]
    ConnectReservedFlag,
    /// CONNECT with will QoS or will retain set while the will flag is clear
    /// [MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-15].
    #[error("will QoS or will retain set without the will flag [MQTT-3.1.2-13] [MQTT-3.1.2-15]")]
    WillFlagsWithoutWill,
    /// CONNECT with will QoS 3 [MQTT-3.1.2-14].
    #[error("will QoS 3 [MQTT-3.1.2-14]")]
    InvalidWillQoS,
    /// CONNECT with the password flag but not the user name flag [MQTT-3.1.2-22].
    #[error("password flag set without user name flag [MQTT-3.1.2-22]")]
    PasswordWithoutUsername,
    /// CONNACK acknowledge flags with any of bits 7-1 set.
    #[error("CONNACK reserved flag bits set: {0:#04x}")]
    InvalidConnAckFlags(u8),
    /// CONNACK return code outside 0..=5.
    #[error("CONNACK return code {0} is reserved")]
    InvalidConnectReturnCode(u8),
    /// CONNACK refusing the connection yet claiming a session [MQTT-3.2.2-4].
    #[error("CONNACK with session present and a non-zero return code [MQTT-3.2.2-4]")]
    SessionPresentWithRefusal,
    /// SUBSCRIBE without any topic filter [MQTT-3.8.3-3].
    #[error("SUBSCRIBE without a topic filter [MQTT-3.8.3-3]")]
    EmptySubscribe,
    /// UNSUBSCRIBE without any topic filter [MQTT-3.10.3-2].
    #[error("UNSUBSCRIBE without a topic filter [MQTT-3.10.3-2]")]
    EmptyUnsubscribe,
    /// SUBACK without any return code.
    #[error("SUBACK without a return code")]
    EmptySubAck,
    /// SUBSCRIBE requested-QoS byte with reserved bits set or QoS 3 [MQTT-3.8.3-4].
    #[error("invalid requested QoS byte {0:#04x} [MQTT-3.8.3-4]")]
    InvalidRequestedQoS(u8),
    /// SUBACK return code other than 0x00, 0x01, 0x02, 0x80 [MQTT-3.9.3-2].
    #[error("SUBACK return code {0:#04x} is reserved [MQTT-3.9.3-2]")]
    InvalidSubAckReturnCode(u8),
    /// A PUBLISH or will topic that is not a valid topic name (empty, or with a
    /// wildcard) [MQTT-3.3.2-2] [MQTT-4.7.3-1].
    #[error("invalid {field}: {source}")]
    InvalidTopicName {
        /// Which topic.
        field: Field,
        /// The rule it breaks.
        source: TopicError,
    },
    /// A SUBSCRIBE or UNSUBSCRIBE topic filter that breaks the wildcard rules
    /// [MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-4.7.3-1].
    #[error("invalid topic filter: {0}")]
    InvalidTopicFilter(TopicError),
}

impl DecodeError {
    /// The normative statement that decides this error, where one does.
    pub const fn statement(&self) -> Option<&'static str> {
        Some(match self {
            Self::InvalidFlags { .. } => "MQTT-2.2.2-2",
            Self::InvalidQoS => "MQTT-3.3.1-4",
            Self::DupWithQoS0 => "MQTT-3.3.1-2",
            Self::ZeroPacketId { .. } => "MQTT-2.3.1-1",
            Self::InvalidUtf8 { .. } => "MQTT-1.5.3-1",
            Self::NullCharacter { .. } => "MQTT-1.5.3-2",
            Self::InvalidProtocolName => "MQTT-3.1.2-1",
            Self::UnsupportedProtocolLevel { .. } => "MQTT-3.1.2-2",
            Self::ConnectReservedFlag => "MQTT-3.1.2-3",
            Self::WillFlagsWithoutWill => "MQTT-3.1.2-11",
            Self::InvalidWillQoS => "MQTT-3.1.2-14",
            Self::PasswordWithoutUsername => "MQTT-3.1.2-22",
            Self::SessionPresentWithRefusal => "MQTT-3.2.2-4",
            Self::EmptySubscribe => "MQTT-3.8.3-3",
            Self::EmptyUnsubscribe => "MQTT-3.10.3-2",
            Self::InvalidRequestedQoS(_) => "MQTT-3.8.3-4",
            Self::InvalidSubAckReturnCode(_) => "MQTT-3.9.3-2",
            Self::InvalidTopicName { .. } => "MQTT-3.3.2-2",
            Self::InvalidTopicFilter(_) => "MQTT-4.7.1-2",
            _ => return None,
        })
    }
}

/// Why a packet cannot be encoded. Every variant is the caller's fault: the
/// encoder refuses to put a packet on the wire that a strict peer would reject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The packet's remaining length would exceed 268,435,455 bytes.
    #[error("remaining length {0} exceeds 268435455")]
    PacketTooLarge(usize),
    /// The destination buffer cannot hold the packet.
    #[error("buffer has room for {available} bytes, packet needs {needed}")]
    BufferTooSmall {
        /// Bytes the packet needs.
        needed: usize,
        /// Bytes the buffer can take.
        available: usize,
    },
    /// A field of the packet breaks a rule the decoder would enforce.
    #[error("invalid packet: {0}")]
    Invalid(#[from] DecodeError),
}
