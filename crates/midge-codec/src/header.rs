//! The fixed header: packet type, flags and remaining length, and the cheap
//! peek that tells whether a whole packet has arrived.

use bytes::BufMut;

use crate::error::DecodeError;
use crate::types::{Protocol, QoS};

/// Largest remaining length four bytes can express.
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// Largest whole packet: one type byte, four length bytes, the maximum remaining length.
pub const MAX_PACKET_SIZE: usize = 1 + 4 + MAX_REMAINING_LENGTH;

/// The fourteen MQTT control packet types (values 1..=14; 0 and 15 are reserved).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketType {
    /// Client request to connect.
    Connect = 0x01,
    /// Connect acknowledgement.
    ConnAck = 0x02,
    /// Publish message.
    Publish = 0x03,
    /// QoS 1 publish acknowledgement.
    PubAck = 0x04,
    /// QoS 2 publish received.
    PubRec = 0x05,
    /// QoS 2 publish release.
    PubRel = 0x06,
    /// QoS 2 publish complete.
    PubComp = 0x07,
    /// Subscribe request.
    Subscribe = 0x08,
    /// Subscribe acknowledgement.
    SubAck = 0x09,
    /// Unsubscribe request.
    Unsubscribe = 0x0A,
    /// Unsubscribe acknowledgement.
    UnsubAck = 0x0B,
    /// Ping request.
    PingReq = 0x0C,
    /// Ping response.
    PingResp = 0x0D,
    /// Client is disconnecting.
    Disconnect = 0x0E,
}

impl PacketType {
    /// The flag nibble every packet type except PUBLISH must carry
    /// (Table 2.2): 0b0010 for PUBREL, SUBSCRIBE and UNSUBSCRIBE, zero otherwise.
    pub const fn required_flags(self) -> u8 {
        match self {
            Self::PubRel | Self::Subscribe | Self::Unsubscribe => 0b0010,
            _ => 0b0000,
        }
    }
}

/// What the first byte says, once validated: the packet type and its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstByte {
    /// Packet type.
    pub packet_type: PacketType,
    /// The low nibble, already checked against the type's rules.
    pub flags: u8,
}

/// Validates the first byte of a fixed header.
///
/// For PUBLISH the flags are DUP, QoS and RETAIN; QoS 3 is refused
/// [MQTT-3.3.1-4] and so is DUP on QoS 0 [MQTT-3.3.1-2]. Every other type has a
/// fixed flag nibble [MQTT-2.2.2-1] and anything else is a protocol violation
/// [MQTT-2.2.2-2]. MQTT 3.1 let PUBREL, SUBSCRIBE and UNSUBSCRIBE carry QoS 1
/// with the DUP bit on a retry, so for [`Protocol::V3_1`] that one extra value
/// (0b1010) is accepted for those three.
///
/// # Errors
/// [`DecodeError::ReservedPacketType`], [`DecodeError::InvalidFlags`],
/// [`DecodeError::InvalidQoS`], [`DecodeError::DupWithQoS0`].
pub fn parse_first_byte(byte: u8, protocol: Protocol) -> Result<FirstByte, DecodeError> {
    let flags = byte & 0x0F;
    let packet_type = match byte >> 4 {
        0x01 => PacketType::Connect,
        0x02 => PacketType::ConnAck,
        0x03 => PacketType::Publish,
        0x04 => PacketType::PubAck,
        0x05 => PacketType::PubRec,
        0x06 => PacketType::PubRel,
        0x07 => PacketType::PubComp,
        0x08 => PacketType::Subscribe,
        0x09 => PacketType::SubAck,
        0x0A => PacketType::Unsubscribe,
        0x0B => PacketType::UnsubAck,
        0x0C => PacketType::PingReq,
        0x0D => PacketType::PingResp,
        0x0E => PacketType::Disconnect,
        other => return Err(DecodeError::ReservedPacketType(other)),
    };
    if packet_type == PacketType::Publish {
        let qos = QoS::from_u8((flags >> 1) & 0b11).ok_or(DecodeError::InvalidQoS)?;
        if qos == QoS::AtMostOnce && flags & 0b1000 != 0 {
            return Err(DecodeError::DupWithQoS0);
        }
    } else {
        let required = packet_type.required_flags();
        let v31_retry = protocol == Protocol::V3_1 && required == 0b0010 && flags == 0b1010;
        if flags != required && !v31_retry {
            return Err(DecodeError::InvalidFlags { packet_type, flags });
        }
    }
    Ok(FirstByte { packet_type, flags })
}

/// A complete, validated fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader {
    /// Packet type and flags.
    pub first: FirstByte,
    /// Bytes after the fixed header.
    pub remaining_length: usize,
    /// Bytes of the fixed header itself (2..=5).
    pub header_len: usize,
}

impl FixedHeader {
    /// Size of the whole packet.
    #[inline]
    pub const fn packet_len(&self) -> usize {
        self.header_len + self.remaining_length
    }
}

/// Peeks at the start of `buf` for a fixed header.
///
/// Returns `Ok(None)` while the fixed header itself is incomplete, and the
/// header once it is complete, whether or not the rest of the packet has
/// arrived (compare [`FixedHeader::packet_len`] with `buf.len()`). The first
/// byte is validated as soon as it is there, and the packet size is checked
/// against `max_packet_size` as soon as the remaining length is known, so a
/// hostile peer is refused before the caller buffers anything for it.
///
/// # Errors
/// Those of [`parse_first_byte`], [`DecodeError::MalformedRemainingLength`]
/// and [`DecodeError::PacketTooLarge`].
#[inline]
pub fn peek(
    buf: &[u8],
    max_packet_size: usize,
    protocol: Protocol,
) -> Result<Option<FixedHeader>, DecodeError> {
    let Some((&first, rest)) = buf.split_first() else {
        return Ok(None);
    };
    let first = parse_first_byte(first, protocol)?;
    let mut remaining_length: usize = 0;
    for (i, &byte) in rest.iter().take(4).enumerate() {
        remaining_length |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            let header_len = i + 2;
            let size = header_len + remaining_length;
            if size > max_packet_size {
                return Err(DecodeError::PacketTooLarge {
                    size,
                    max: max_packet_size,
                });
            }
            return Ok(Some(FixedHeader {
                first,
                remaining_length,
                header_len,
            }));
        }
    }
    if rest.len() >= 4 {
        Err(DecodeError::MalformedRemainingLength)
    } else {
        Ok(None)
    }
}

/// Number of bytes the remaining-length field takes for `len`.
#[inline]
pub const fn remaining_length_len(len: usize) -> usize {
    if len < 0x80 {
        1
    } else if len < 0x4000 {
        2
    } else if len < 0x20_0000 {
        3
    } else {
        4
    }
}

/// Writes the fixed header with one `put_slice`. `len` must be at most
/// [`MAX_REMAINING_LENGTH`] (checked by the caller).
#[inline]
pub(crate) fn put_fixed_header(buf: &mut impl BufMut, first: u8, mut len: usize) {
    let mut header = [first, 0, 0, 0, 0];
    let mut n = 1;
    for slot in header.iter_mut().skip(1) {
        // Masked to seven bits, so the truncation is exact.
        #[allow(clippy::cast_possible_truncation)]
        let mut byte = (len & 0x7F) as u8;
        len >>= 7;
        if len > 0 {
            byte |= 0x80;
        }
        *slot = byte;
        n += 1;
        if len == 0 {
            break;
        }
    }
    buf.put_slice(header.get(..n).unwrap_or(&header));
}
