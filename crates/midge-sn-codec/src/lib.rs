//! The MQTT-SN 1.2 wire format: one message per datagram, decoded into owned,
//! typed messages and encoded back with exact lengths.
//!
//! **What it does.** [`decode`] turns one datagram into a [`Message`], checking
//! the Length field against the datagram (both Length forms are accepted) and
//! every field of the message; [`Message::encode`] writes a message into any
//! [`bytes::BufMut`], choosing the one-octet Length form whenever it fits and
//! the three-octet form otherwise. All 27 messages of the specification are
//! covered, plus the forwarder encapsulation. Payloads, client ids, topic names
//! and will messages are [`bytes::Bytes`] slices of the datagram, not copies.
//! No input can make it panic, and it builds without `std` (with `alloc`).
//!
//! **What it deliberately does not do.** No I/O, no state: which message may
//! follow which, retransmission, topic registries, sleeping clients and the
//! meaning of return codes belong to the session layer (`midge-session`). It does
//! not check topic names against the MQTT topic rules (wildcards and the like:
//! `midge-topic` does) nor the 1–23 character client id range (a gateway policy).
//!
//! **Key types.** [`Message`] (one variant per message type, named as in the
//! specification: [`Connect`], [`RegAck`], [`WillTopicReq`], [`GwInfo`], ...),
//! [`Header`] and [`MsgType`], [`Flags`] with [`QoS`], [`PublishQoS`] and
//! [`TopicIdType`], the topic forms [`Topic`], [`SubscribeTopic`] and
//! [`TopicId`], the text fields [`TopicName`] and [`ClientId`], [`ReturnCode`],
//! and [`Error`], which names the message and field at fault.
//!
//! **Decisions the specification leaves open.**
//! - Two-octet fields (Duration, TopicId, MsgId) are read and written
//!   most-significant octet first, like the three-octet Length and like MQTT.
//! - MsgId 0x0000 is refused where a message opens an acknowledged exchange
//!   (REGISTER, SUBSCRIBE, UNSUBSCRIBE, PUBLISH with QoS 1 or 2) and accepted
//!   everywhere else: acknowledgements echo the request, and a PUBACK that
//!   rejects a QoS 0 PUBLISH carries 0x0000.
//! - Client ids, topic names and will topics must be UTF-8, since each becomes
//!   an MQTT field that must be; topic names and will topics must not be empty.
//!   Will messages, publish data and gateway addresses are opaque octets.
//! - Flag bits a message does not use are ignored on decode and written as
//!   zero; reserved values of used fields (TopicIdType 0b11, QoS −1 outside
//!   PUBLISH, ReturnCode 0x04–0xFF, ProtocolId other than 0x01, reserved Ctrl
//!   bits) are errors.
//! - Every rule checked on decode is also checked on encode, so whatever
//!   encodes successfully decodes to an equal message.
//!
//! ```
//! use bytes::Bytes;
//! use midge_sn_codec::{decode, Message, Publish, PublishQoS, Topic};
//!
//! let datagram = Bytes::from_static(&[0x09, 0x0C, 0x62, b'h', b'i', 0x00, 0x00, 0x2A, 0x2B]);
//! let Message::Publish(publish) = decode(&datagram)? else { panic!("not a PUBLISH") };
//! assert_eq!(publish.qos, PublishQoS::MinusOne);
//! assert_eq!(publish.topic, Topic::Short(*b"hi"));
//! assert_eq!(&publish.data[..], &[0x2A, 0x2B]);
//!
//! let mut out = Vec::new();
//! Message::Publish(publish).encode(&mut out)?;
//! assert_eq!(out, datagram);
//! # Ok::<(), midge_sn_codec::Error>(())
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod body;
mod error;
mod flags;
mod header;
mod msg;
mod return_code;
mod topic;

use bytes::{Buf, BufMut, Bytes};

pub use error::Error;
pub use flags::{Flags, PublishQoS, QoS, TopicIdType};
pub use header::{Header, MsgType, LONG_FORM_MARKER, LONG_FORM_MAX, SHORT_FORM_MAX};
pub use msg::advertise::Advertise;
pub use msg::connack::ConnAck;
pub use msg::connect::{Connect, PROTOCOL_ID};
pub use msg::disconnect::Disconnect;
pub use msg::encapsulated::Encapsulated;
pub use msg::gwinfo::GwInfo;
pub use msg::pingreq::PingReq;
pub use msg::pingresp::PingResp;
pub use msg::puback::PubAck;
pub use msg::pubcomp::PubComp;
pub use msg::publish::Publish;
pub use msg::pubrec::PubRec;
pub use msg::pubrel::PubRel;
pub use msg::regack::RegAck;
pub use msg::register::Register;
pub use msg::searchgw::SearchGw;
pub use msg::suback::SubAck;
pub use msg::subscribe::Subscribe;
pub use msg::unsuback::UnsubAck;
pub use msg::unsubscribe::Unsubscribe;
pub use msg::willmsg::WillMsg;
pub use msg::willmsgreq::WillMsgReq;
pub use msg::willmsgresp::WillMsgResp;
pub use msg::willmsgupd::WillMsgUpd;
pub use msg::willtopic::{WillTopic, WillTopicData};
pub use msg::willtopicreq::WillTopicReq;
pub use msg::willtopicresp::WillTopicResp;
pub use msg::willtopicupd::WillTopicUpd;
pub use return_code::ReturnCode;
pub use topic::{ClientId, SubscribeTopic, Topic, TopicId, TopicName};

/// Decodes one datagram into one message. Same as [`Message::decode`]; the
/// `Bytes` handle is cloned (a reference count), not the octets.
pub fn decode(datagram: &Bytes) -> Result<Message, Error> {
    Message::decode(datagram.clone())
}

/// Decodes one datagram held in a plain slice, copying it once into a `Bytes`
/// that the message's variable fields then share.
pub fn decode_slice(datagram: &[u8]) -> Result<Message, Error> {
    Message::decode(Bytes::copy_from_slice(datagram))
}

macro_rules! messages {
    ($($(#[$doc:meta])* $variant:ident,)*) => {
        /// One MQTT-SN message, as carried by one datagram.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Message {
            $($(#[$doc])* $variant($variant),)*
            /// A message wrapped by a forwarder (0xFE).
            Encapsulated(Encapsulated),
        }

        impl Message {
            /// Decodes one whole datagram.
            ///
            /// The Length field must equal the datagram's size, except for an
            /// encapsulation, whose Length covers only the wrapper and whose
            /// wrapped message must then fill the rest exactly.
            pub fn decode(datagram: Bytes) -> Result<Self, Error> {
                let header = Header::peek(&datagram)?;
                if header.msg_type == MsgType::Encapsulated {
                    if header.length > datagram.len() {
                        return Err(Error::LengthMismatch {
                            declared: header.length,
                            actual: datagram.len(),
                        });
                    }
                    let mut outer = datagram;
                    // In range: checked just above.
                    let inner = outer.split_off(header.length);
                    let body = outer.split_off(header.header_len);
                    return Encapsulated::decode(body, inner).map(Self::Encapsulated);
                }
                if header.length != datagram.len() {
                    return Err(Error::LengthMismatch {
                        declared: header.length,
                        actual: datagram.len(),
                    });
                }
                let mut body = datagram;
                // In range: `Header::peek` guarantees header_len <= length,
                // which equals the datagram's size here.
                body.advance(header.header_len);
                match header.msg_type {
                    $(MsgType::$variant => $variant::decode(body).map(Self::$variant),)*
                    MsgType::Encapsulated => Err(Error::NestedEncapsulation),
                }
            }

            /// Encodes the message into `buf`, header included.
            ///
            /// Fails, writing nothing, if the message breaks a rule the decoder
            /// enforces, is longer than 65535 octets, or does not fit in `buf`.
            pub fn encode(&self, buf: &mut impl BufMut) -> Result<(), Error> {
                match self {
                    $(Self::$variant(m) => m.encode(buf),)*
                    Self::Encapsulated(m) => m.encode(buf),
                }
            }

            /// Octets `encode` writes, header included.
            pub fn encoded_len(&self) -> usize {
                match self {
                    $(Self::$variant(m) => m.encoded_len(),)*
                    Self::Encapsulated(m) => m.encoded_len(),
                }
            }

            /// The MsgType of this message.
            pub const fn msg_type(&self) -> MsgType {
                match self {
                    $(Self::$variant(_) => MsgType::$variant,)*
                    Self::Encapsulated(_) => MsgType::Encapsulated,
                }
            }

            /// Checks what `encode` checks, without writing: the message's own
            /// rules and the limit of the Length field.
            pub(crate) fn check(&self) -> Result<(), Error> {
                let result = match self {
                    $(Self::$variant(m) => body::Body::check(m),)*
                    Self::Encapsulated(_) => Err(Error::NestedEncapsulation),
                };
                result?;
                let len = self.encoded_len();
                if len > LONG_FORM_MAX {
                    return Err(Error::TooLong { len });
                }
                Ok(())
            }
        }

        $(
            impl From<$variant> for Message {
                fn from(m: $variant) -> Self {
                    Self::$variant(m)
                }
            }
        )*
    };
}

impl From<Encapsulated> for Message {
    fn from(m: Encapsulated) -> Self {
        Self::Encapsulated(m)
    }
}

messages! {
    /// ADVERTISE (0x00).
    Advertise,
    /// SEARCHGW (0x01).
    SearchGw,
    /// GWINFO (0x02).
    GwInfo,
    /// CONNECT (0x04).
    Connect,
    /// CONNACK (0x05).
    ConnAck,
    /// WILLTOPICREQ (0x06).
    WillTopicReq,
    /// WILLTOPIC (0x07), including the empty one.
    WillTopic,
    /// WILLMSGREQ (0x08).
    WillMsgReq,
    /// WILLMSG (0x09).
    WillMsg,
    /// REGISTER (0x0A).
    Register,
    /// REGACK (0x0B).
    RegAck,
    /// PUBLISH (0x0C).
    Publish,
    /// PUBACK (0x0D).
    PubAck,
    /// PUBCOMP (0x0E).
    PubComp,
    /// PUBREC (0x0F).
    PubRec,
    /// PUBREL (0x10).
    PubRel,
    /// SUBSCRIBE (0x12).
    Subscribe,
    /// SUBACK (0x13).
    SubAck,
    /// UNSUBSCRIBE (0x14).
    Unsubscribe,
    /// UNSUBACK (0x15).
    UnsubAck,
    /// PINGREQ (0x16).
    PingReq,
    /// PINGRESP (0x17).
    PingResp,
    /// DISCONNECT (0x18).
    Disconnect,
    /// WILLTOPICUPD (0x1A), including the empty one.
    WillTopicUpd,
    /// WILLTOPICRESP (0x1B).
    WillTopicResp,
    /// WILLMSGUPD (0x1C).
    WillMsgUpd,
    /// WILLMSGRESP (0x1D).
    WillMsgResp,
}
