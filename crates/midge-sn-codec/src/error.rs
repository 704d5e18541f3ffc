//! The one error type of the codec.

use crate::header::MsgType;

/// Why a datagram could not be decoded, or a message could not be encoded.
///
/// Every variant that concerns a message names it (`message`) and, where one
/// field is at fault, that field by its name in the specification (`field`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The datagram ends inside the Length or MsgType octets.
    #[error("datagram too short for an MQTT-SN header")]
    TruncatedHeader,
    /// The Length field gives fewer octets than the header it belongs to.
    #[error("Length field {declared} is smaller than the header")]
    InvalidLength {
        /// The value of the Length field.
        declared: usize,
    },
    /// The Length field disagrees with the size of the datagram.
    #[error("Length field says {declared} octets, datagram has {actual}")]
    LengthMismatch {
        /// The value of the Length field.
        declared: usize,
        /// The number of octets actually present.
        actual: usize,
    },
    /// The MsgType octet is reserved (0x03, 0x11, 0x19, 0x1E–0xFD, 0xFF).
    #[error("unknown or reserved MsgType 0x{0:02x}")]
    UnknownMsgType(u8),
    /// The message ends before a field it must carry.
    #[error("{message}: truncated in field {field}")]
    Truncated {
        /// The message being decoded.
        message: MsgType,
        /// The first field that is missing or incomplete.
        field: &'static str,
    },
    /// A fixed-size message, or the fixed part of one, is followed by extra octets.
    #[error("{message}: {extra} unexpected trailing octets")]
    TrailingBytes {
        /// The message being decoded.
        message: MsgType,
        /// How many octets are left over.
        extra: usize,
    },
    /// TopicIdType is 0b11, which the specification reserves.
    #[error("{message}: reserved TopicIdType 0b11")]
    ReservedTopicIdType {
        /// The message carrying the flags.
        message: MsgType,
    },
    /// QoS −1 (0b11) in a message other than PUBLISH.
    #[error("{message}: QoS -1 is only allowed in PUBLISH")]
    QosMinusOneNotAllowed {
        /// The message carrying the flags.
        message: MsgType,
    },
    /// A PUBLISH with QoS −1 names a normal topic id; only pre-defined ids and
    /// short topic names may be used without a connection.
    #[error("PUBLISH: QoS -1 needs a pre-defined topic id or a short topic name")]
    QosMinusOneWithNormalTopicId,
    /// A ReturnCode in the reserved range 0x04–0xFF.
    #[error("{message}: reserved ReturnCode 0x{value:02x}")]
    ReservedReturnCode {
        /// The message carrying the code.
        message: MsgType,
        /// The octet found.
        value: u8,
    },
    /// CONNECT with a ProtocolId other than 0x01.
    #[error("CONNECT: unsupported ProtocolId 0x{0:02x}")]
    UnsupportedProtocolId(u8),
    /// A text field (client id, topic name, will topic) is not UTF-8.
    #[error("{message}: field {field} is not valid UTF-8")]
    InvalidUtf8 {
        /// The message being decoded.
        message: MsgType,
        /// The field at fault.
        field: &'static str,
    },
    /// A field that must hold at least one octet is empty.
    #[error("{message}: field {field} must not be empty")]
    EmptyField {
        /// The message concerned.
        message: MsgType,
        /// The field at fault.
        field: &'static str,
    },
    /// A message that opens an acknowledged exchange carries MsgId 0x0000.
    #[error("{message}: MsgId 0x0000 cannot identify an exchange")]
    ZeroMsgId {
        /// The message concerned.
        message: MsgType,
    },
    /// The reserved bits 7–2 of an encapsulation's Ctrl octet are not zero.
    #[error("encapsulated message: reserved Ctrl bits set (0x{0:02x})")]
    ReservedCtrlBits(u8),
    /// A forwarder radius that does not fit the two bits of the Ctrl octet.
    #[error("encapsulated message: radius {0} does not fit in two bits")]
    RadiusOutOfRange(u8),
    /// An encapsulated message inside another encapsulated message.
    #[error("encapsulated message inside an encapsulated message")]
    NestedEncapsulation,
    /// The encoded message would exceed the 65535 octets the Length field can count.
    #[error("message of {len} octets is too long for the Length field")]
    TooLong {
        /// The length the message would need.
        len: usize,
    },
    /// The output buffer cannot hold the encoded message.
    #[error("output buffer has room for {available} octets, message needs {needed}")]
    BufferTooSmall {
        /// Octets the message needs.
        needed: usize,
        /// Octets the buffer can still take.
        available: usize,
    },
}
