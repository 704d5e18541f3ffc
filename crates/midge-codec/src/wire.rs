//! Field-level readers and writers shared by the packet modules.
//!
//! Readers are `nom` complete parsers over the packet body, wrapped so that a
//! short input becomes [`DecodeError::Truncated`] naming the packet and field.
//! Strings and binary fields come back as zero-copy slices of the frame.

use bytes::{BufMut, Bytes};
use nom::number::complete::{be_u16, be_u8};
use nom::IResult;

use crate::error::{DecodeError, Field};
use crate::header::PacketType;
use crate::types::{check_str, MqttString, PacketId};

type NomResult<'a, T> = IResult<&'a [u8], T, nom::error::Error<&'a [u8]>>;

/// A cursor over one packet body, remembering the frame for zero-copy slices.
pub(crate) struct Reader<'a> {
    frame: &'a Bytes,
    input: &'a [u8],
    packet_type: PacketType,
}

impl<'a> Reader<'a> {
    /// `body` must be a sub-slice of `frame`.
    pub(crate) fn new(frame: &'a Bytes, body: &'a [u8], packet_type: PacketType) -> Self {
        Self {
            frame,
            input: body,
            packet_type,
        }
    }

    fn run<T>(
        &mut self,
        field: Field,
        parser: impl FnOnce(&'a [u8]) -> NomResult<'a, T>,
    ) -> Result<T, DecodeError> {
        match parser(self.input) {
            Ok((rest, value)) => {
                self.input = rest;
                Ok(value)
            }
            Err(_) => Err(DecodeError::Truncated {
                packet_type: self.packet_type,
                field,
            }),
        }
    }

    pub(crate) fn u8(&mut self, field: Field) -> Result<u8, DecodeError> {
        self.run(field, be_u8)
    }

    pub(crate) fn u16(&mut self, field: Field) -> Result<u16, DecodeError> {
        self.run(field, be_u16)
    }

    /// A non-zero packet identifier [MQTT-2.3.1-1].
    pub(crate) fn packet_id(&mut self) -> Result<PacketId, DecodeError> {
        let raw = self.u16(Field::PacketId)?;
        PacketId::new(raw).ok_or(DecodeError::ZeroPacketId {
            packet_type: self.packet_type,
        })
    }

    /// A two-byte length prefix and that many bytes, as a slice of the input.
    pub(crate) fn binary_slice(&mut self, field: Field) -> Result<&'a [u8], DecodeError> {
        self.run(field, nom::multi::length_data(be_u16))
    }

    /// A binary field as a zero-copy `Bytes`.
    pub(crate) fn binary(&mut self, field: Field) -> Result<Bytes, DecodeError> {
        let slice = self.binary_slice(field)?;
        Ok(self.frame.slice_ref(slice))
    }

    /// A UTF-8 string field, validated, as a zero-copy [`MqttString`].
    pub(crate) fn string(&mut self, field: Field) -> Result<MqttString, DecodeError> {
        let slice = self.binary_slice(field)?;
        check_str(slice, field)?;
        Ok(MqttString::from_validated(self.frame.slice_ref(slice)))
    }

    /// A UTF-8 string field, validated, with its `&str` for further checks.
    pub(crate) fn string_with_str(
        &mut self,
        field: Field,
    ) -> Result<(MqttString, &'a str), DecodeError> {
        let slice = self.binary_slice(field)?;
        let s = check_str(slice, field)?;
        Ok((MqttString::from_validated(self.frame.slice_ref(slice)), s))
    }

    /// Everything left, as a zero-copy `Bytes`.
    pub(crate) fn rest(&mut self) -> Bytes {
        let rest = core::mem::take(&mut self.input);
        self.frame.slice_ref(rest)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.input.is_empty()
    }

    /// Fails with [`DecodeError::TrailingBytes`] unless the body is used up.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.input.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                packet_type: self.packet_type,
                count: self.input.len(),
            })
        }
    }
}

/// Encoded size of a string or binary field with its length prefix.
#[inline]
pub(crate) const fn field_len(len: usize) -> usize {
    2 + len
}

/// Writes a length-prefixed field. The caller has checked `bytes.len()` fits in
/// sixteen bits.
#[inline]
pub(crate) fn put_field(buf: &mut impl BufMut, bytes: &[u8]) {
    // Checked by `check_field_len` before any byte is written.
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
