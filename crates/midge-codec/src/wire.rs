//! Field-level readers and writers shared by the packet modules.
//!
//! [`Reader`] walks one packet with `nom` complete parsers; a short input
//! becomes [`DecodeError::Truncated`] naming the packet and field. String and
//! binary fields are returned as ranges of the frame, which the packets whose
//! fields outlive the read buffer (CONNECT, PUBLISH, SUBSCRIBE, UNSUBSCRIBE)
//! turn into zero-copy `Bytes` slices. The other packets are parsed straight
//! from the read buffer, without a frame.

use core::ops::Range;

use bytes::{BufMut, Bytes};
use nom::number::complete::{be_u16, be_u8};
use nom::IResult;

use crate::error::{DecodeError, Field};
use crate::header::PacketType;
use crate::types::{Filter, MqttString, PacketId, Topic};

type NomResult<'a, T> = IResult<&'a [u8], T, nom::error::Error<&'a [u8]>>;

/// A cursor over one whole packet (fixed header included, so positions are
/// positions in the frame).
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    packet_type: PacketType,
}

impl<'a> Reader<'a> {
    /// A reader over `data`, a whole packet, starting at `start` (the end of the
    /// fixed header).
    #[inline]
    pub(crate) fn new(data: &'a [u8], start: usize, packet_type: PacketType) -> Self {
        Self {
            data,
            pos: start,
            packet_type,
        }
    }

    #[inline]
    fn rest(&self) -> &'a [u8] {
        self.data.get(self.pos..).unwrap_or_default()
    }

    #[inline]
    fn run<T>(
        &mut self,
        field: Field,
        parser: impl FnOnce(&'a [u8]) -> NomResult<'a, T>,
    ) -> Result<T, DecodeError> {
        let input = self.rest();
        match parser(input) {
            Ok((rest, value)) => {
                self.pos += input.len() - rest.len();
                Ok(value)
            }
            Err(_) => Err(self.truncated(field)),
        }
    }

    #[inline]
    fn truncated(&self, field: Field) -> DecodeError {
        DecodeError::Truncated {
            packet_type: self.packet_type,
            field,
        }
    }

    #[inline]
    pub(crate) fn u8(&mut self, field: Field) -> Result<u8, DecodeError> {
        self.run(field, be_u8)
    }

    #[inline]
    pub(crate) fn u16(&mut self, field: Field) -> Result<u16, DecodeError> {
        self.run(field, be_u16)
    }

    /// A non-zero packet identifier [MQTT-2.3.1-1].
    #[inline]
    pub(crate) fn packet_id(&mut self) -> Result<PacketId, DecodeError> {
        let raw = self.u16(Field::PacketId)?;
        PacketId::new(raw).ok_or(DecodeError::ZeroPacketId {
            packet_type: self.packet_type,
        })
    }

    /// A two-byte length prefix and that many bytes: the range of the bytes.
    #[inline]
    pub(crate) fn field(&mut self, field: Field) -> Result<Range<usize>, DecodeError> {
        let len = usize::from(self.u16(field)?);
        let start = self.pos;
        let end = start + len;
        if end > self.data.len() {
            return Err(self.truncated(field));
        }
        self.pos = end;
        Ok(start..end)
    }

    /// Position of the next unread byte.
    #[inline]
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// Fails with [`DecodeError::TrailingBytes`] unless the packet is used up.
    #[inline]
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        let count = self.rest().len();
        if count == 0 {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                packet_type: self.packet_type,
                count,
            })
        }
    }
}

/// A binary field of `frame`, zero-copy.
#[inline]
pub(crate) fn binary(frame: &Bytes, range: Range<usize>) -> Bytes {
    frame.slice(range)
}

/// A UTF-8 string field of `frame`, validated, zero-copy.
#[inline]
pub(crate) fn string(
    frame: &Bytes,
    range: Range<usize>,
    field: Field,
) -> Result<MqttString, DecodeError> {
    MqttString::from_bytes(frame.slice(range), field)
}

/// A topic name field of `frame`, validated, zero-copy.
#[inline]
pub(crate) fn topic(
    frame: &Bytes,
    range: Range<usize>,
    field: Field,
) -> Result<Topic, DecodeError> {
    Topic::from_bytes(frame.slice(range), field)
}

/// A topic filter field of `frame`, validated, zero-copy.
#[inline]
pub(crate) fn filter(frame: &Bytes, range: Range<usize>) -> Result<Filter, DecodeError> {
    Filter::from_bytes(frame.slice(range))
}

/// Encoded size of a string or binary field with its length prefix.
#[inline]
pub(crate) const fn field_len(len: usize) -> usize {
    2 + len
}

/// Writes a length-prefixed field. The caller has checked `bytes.len()` fits in
/// sixteen bits (strings by construction, binary fields in `validate`).
#[inline]
pub(crate) fn put_field(buf: &mut impl BufMut, bytes: &[u8]) {
    #[allow(clippy::cast_possible_truncation)]
    buf.put_u16(bytes.len() as u16);
    buf.put_slice(bytes);
}

/// Refuses a binary field too long for its two-byte prefix.
#[inline]
pub(crate) fn check_field_len(bytes: &[u8], field: Field) -> Result<(), DecodeError> {
    if bytes.len() > crate::types::MAX_STRING_LEN {
        Err(DecodeError::StringTooLong { field })
    } else {
        Ok(())
    }
}
