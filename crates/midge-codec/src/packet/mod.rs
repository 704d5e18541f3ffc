//! The fourteen control packets, one module each, and the [`Packet`] enum that
//! dispatches between them.

pub(crate) mod ack;
mod connack;
mod connect;
mod disconnect;
mod pingreq;
mod pingresp;
mod puback;
mod pubcomp;
mod publish;
mod pubrec;
mod pubrel;
mod suback;
mod subscribe;
mod unsuback;
mod unsubscribe;

use bytes::{BufMut, Bytes};

pub use connack::{ConnAck, ConnectReturnCode};
pub use connect::{Connect, LastWill};
pub use disconnect::Disconnect;
pub use pingreq::PingReq;
pub use pingresp::PingResp;
pub use puback::PubAck;
pub use pubcomp::PubComp;
pub(crate) use publish::PublishLayout;
pub use publish::{Publish, QosPid};
pub use pubrec::PubRec;
pub use pubrel::PubRel;
pub use suback::{SubAck, SubscribeReturnCode};
pub use subscribe::{Subscribe, SubscribeFilter};
pub use unsuback::UnsubAck;
pub use unsubscribe::Unsubscribe;

use crate::error::{DecodeError, EncodeError};
use crate::header::{
    put_fixed_header, remaining_length_len, FixedHeader, PacketType, MAX_REMAINING_LENGTH,
};
use crate::types::Protocol;
use crate::wire::Reader;

pub(crate) use sealed::Body;

mod sealed {
    use bytes::BufMut;

    use crate::error::DecodeError;
    use crate::header::PacketType;

    /// What every packet module provides to the shared encoder.
    pub trait Body {
        /// The packet's type.
        const PACKET_TYPE: PacketType;
        /// First byte of the fixed header, flags included.
        fn first_byte(&self) -> u8;
        /// Exact length of variable header plus payload.
        fn remaining_len(&self) -> usize;
        /// The checks the decoder would apply, run before encoding.
        fn validate(&self) -> Result<(), DecodeError>;
        /// Writes variable header and payload; the caller has made room.
        fn encode_body(&self, buf: &mut impl BufMut);
    }
}

/// Encoding, shared by every packet type and by [`Packet`].
///
/// `encode` refuses to write a packet a strict decoder would reject, so
/// `decode(encode(p)) == p` for every packet that encodes.
pub trait Encode: Body {
    /// Exact number of bytes [`Encode::encode`] writes.
    #[inline]
    fn encoded_len(&self) -> usize {
        let len = self.remaining_len();
        1 + remaining_length_len(len) + len
    }

    /// Writes the whole packet into `buf` and returns the number of bytes written.
    /// Nothing is written when an error is returned.
    ///
    /// # Errors
    /// [`EncodeError::PacketTooLarge`], [`EncodeError::BufferTooSmall`] or
    /// [`EncodeError::Invalid`] for a packet that breaks a wire rule.
    #[inline]
    fn encode(&self, buf: &mut impl BufMut) -> Result<usize, EncodeError> {
        self.validate()?;
        let len = self.remaining_len();
        if len > MAX_REMAINING_LENGTH {
            return Err(EncodeError::PacketTooLarge(len));
        }
        let needed = 1 + remaining_length_len(len) + len;
        let available = buf.remaining_mut();
        if available < needed {
            return Err(EncodeError::BufferTooSmall { needed, available });
        }
        put_fixed_header(buf, self.first_byte(), len);
        self.encode_body(buf);
        Ok(needed)
    }
}

impl<T: Body> Encode for T {}

/// Any MQTT 3.1.1 / 3.1 control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// CONNECT.
    Connect(Connect),
    /// CONNACK.
    ConnAck(ConnAck),
    /// PUBLISH.
    Publish(Publish),
    /// PUBACK.
    PubAck(PubAck),
    /// PUBREC.
    PubRec(PubRec),
    /// PUBREL.
    PubRel(PubRel),
    /// PUBCOMP.
    PubComp(PubComp),
    /// SUBSCRIBE.
    Subscribe(Subscribe),
    /// SUBACK.
    SubAck(SubAck),
    /// UNSUBSCRIBE.
    Unsubscribe(Unsubscribe),
    /// UNSUBACK.
    UnsubAck(UnsubAck),
    /// PINGREQ.
    PingReq,
    /// PINGRESP.
    PingResp,
    /// DISCONNECT.
    Disconnect,
}

macro_rules! dispatch {
    ($self:ident, $p:ident => $e:expr) => {
        match $self {
            Packet::Connect($p) => $e,
            Packet::ConnAck($p) => $e,
            Packet::Publish($p) => $e,
            Packet::PubAck($p) => $e,
            Packet::PubRec($p) => $e,
            Packet::PubRel($p) => $e,
            Packet::PubComp($p) => $e,
            Packet::Subscribe($p) => $e,
            Packet::SubAck($p) => $e,
            Packet::Unsubscribe($p) => $e,
            Packet::UnsubAck($p) => $e,
            Packet::PingReq => {
                let $p = &PingReq;
                $e
            }
            Packet::PingResp => {
                let $p = &PingResp;
                $e
            }
            Packet::Disconnect => {
                let $p = &Disconnect;
                $e
            }
        }
    };
}

impl Packet {
    /// The packet's type.
    pub const fn packet_type(&self) -> PacketType {
        match self {
            Self::Connect(_) => PacketType::Connect,
            Self::ConnAck(_) => PacketType::ConnAck,
            Self::Publish(_) => PacketType::Publish,
            Self::PubAck(_) => PacketType::PubAck,
            Self::PubRec(_) => PacketType::PubRec,
            Self::PubRel(_) => PacketType::PubRel,
            Self::PubComp(_) => PacketType::PubComp,
            Self::Subscribe(_) => PacketType::Subscribe,
            Self::SubAck(_) => PacketType::SubAck,
            Self::Unsubscribe(_) => PacketType::Unsubscribe,
            Self::UnsubAck(_) => PacketType::UnsubAck,
            Self::PingReq => PacketType::PingReq,
            Self::PingResp => PacketType::PingResp,
            Self::Disconnect => PacketType::Disconnect,
        }
    }

    /// Parses one whole frame whose fixed header has been peeked already.
    /// `frame` holds exactly `header.packet_len()` bytes; the decoded packet's
    /// strings and payload are slices of it.
    ///
    /// # Errors
    /// Any [`DecodeError`] about the variable header or payload.
    #[inline]
    pub fn decode_frame(
        header: &FixedHeader,
        frame: Bytes,
        protocol: Protocol,
    ) -> Result<Self, DecodeError> {
        let first = header.first;
        match first.packet_type {
            PacketType::Connect => Ok(Self::Connect(Connect::decode(&frame, header.header_len)?)),
            PacketType::Publish => Ok(Self::Publish(Publish::decode(
                first,
                frame,
                header.header_len,
            )?)),
            PacketType::Subscribe => Ok(Self::Subscribe(Subscribe::decode(
                &frame,
                header.header_len,
            )?)),
            PacketType::Unsubscribe => Ok(Self::Unsubscribe(Unsubscribe::decode(
                &frame,
                header.header_len,
            )?)),
            _ => Self::decode_slice(header, &frame, protocol),
        }
    }

    /// Parses a packet that holds no strings or payload (every type except
    /// CONNECT, PUBLISH, SUBSCRIBE and UNSUBSCRIBE) straight from a slice, so the
    /// decoder need not split a frame off its buffer for it.
    #[inline]
    pub(crate) fn decode_slice(
        header: &FixedHeader,
        data: &[u8],
        protocol: Protocol,
    ) -> Result<Self, DecodeError> {
        let first = header.first;
        let r = Reader::new(data, header.header_len, first.packet_type);
        Ok(match first.packet_type {
            PacketType::ConnAck => Self::ConnAck(ConnAck::decode(first, r, protocol)?),
            PacketType::PubAck => Self::PubAck(PubAck::decode(first, r)?),
            PacketType::PubRec => Self::PubRec(PubRec::decode(first, r)?),
            PacketType::PubRel => Self::PubRel(PubRel::decode(first, r)?),
            PacketType::PubComp => Self::PubComp(PubComp::decode(first, r)?),
            PacketType::SubAck => Self::SubAck(SubAck::decode(first, r)?),
            PacketType::UnsubAck => Self::UnsubAck(UnsubAck::decode(first, r)?),
            PacketType::PingReq => {
                PingReq::decode(first, r)?;
                Self::PingReq
            }
            PacketType::PingResp => {
                PingResp::decode(first, r)?;
                Self::PingResp
            }
            PacketType::Disconnect => {
                Disconnect::decode(first, r)?;
                Self::Disconnect
            }
            // Packets with strings go through `decode_frame`, which never
            // sends them here; answering with a truncation keeps this total.
            PacketType::Connect
            | PacketType::Publish
            | PacketType::Subscribe
            | PacketType::Unsubscribe => {
                return Err(DecodeError::Truncated {
                    packet_type: first.packet_type,
                    field: crate::error::Field::Value,
                })
            }
        })
    }

    /// Whether decoding this packet type needs a frame (it carries strings or
    /// a payload that the packet keeps).
    #[inline]
    pub(crate) const fn needs_frame(packet_type: PacketType) -> bool {
        matches!(
            packet_type,
            PacketType::Connect
                | PacketType::Publish
                | PacketType::Subscribe
                | PacketType::Unsubscribe
        )
    }

    /// Exact number of bytes [`Packet::encode`] writes.
    #[inline]
    pub fn encoded_len(&self) -> usize {
        dispatch!(self, p => p.encoded_len())
    }

    /// Writes the packet into `buf`; see [`Encode::encode`].
    ///
    /// # Errors
    /// As [`Encode::encode`].
    #[inline]
    pub fn encode(&self, buf: &mut impl BufMut) -> Result<usize, EncodeError> {
        dispatch!(self, p => p.encode(buf))
    }
}

macro_rules! from_packet {
    ($($name:ident),*) => {
        $(impl From<$name> for Packet {
            fn from(p: $name) -> Self {
                Self::$name(p)
            }
        })*
    };
}

from_packet!(
    Connect,
    ConnAck,
    Publish,
    PubAck,
    PubRec,
    PubRel,
    PubComp,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck
);

impl From<PingReq> for Packet {
    fn from(_: PingReq) -> Self {
        Self::PingReq
    }
}

impl From<PingResp> for Packet {
    fn from(_: PingResp) -> Self {
        Self::PingResp
    }
}

impl From<Disconnect> for Packet {
    fn from(_: Disconnect) -> Self {
        Self::Disconnect
    }
}
