//! The incremental decoder: bytes in a growing buffer in, whole packets out.

use bytes::{Buf, BytesMut};

use crate::error::DecodeError;
use crate::header::{peek, MAX_PACKET_SIZE};
use crate::packet::Packet;
use crate::types::Protocol;

/// How much room [`Decoder::decode`] reserves ahead for a partly received
/// packet. Reserving the whole announced size would let a peer make us
/// allocate up to the maximum packet size by sending five bytes.
const RESERVE_AHEAD: usize = 64 * 1024;

/// Decodes MQTT packets from a byte stream.
///
/// Feed it the connection's read buffer after every read; each call returns
/// at most one packet and removes exactly that packet's bytes from the buffer.
///
/// ```
/// use bytes::{Buf, BytesMut};
/// use midge_codec::{Decoder, Packet};
///
/// let mut decoder = Decoder::new();
/// let mut buf = BytesMut::from(&[0xC0u8][..]); // PINGREQ, first byte only
/// assert_eq!(decoder.decode(&mut buf), Ok(None)); // need more bytes
/// buf.extend_from_slice(&[0x00]);
/// assert_eq!(decoder.decode(&mut buf), Ok(Some(Packet::PingReq)));
/// assert!(buf.is_empty());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoder {
    max_packet_size: usize,
    protocol: Protocol,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder for MQTT 3.1.1 that accepts packets up to the protocol's
    /// own limit ([`MAX_PACKET_SIZE`], 256 MiB). Servers should set a smaller
    /// limit with [`Decoder::with_max_packet_size`].
    pub const fn new() -> Self {
        Self {
            max_packet_size: MAX_PACKET_SIZE,
            protocol: Protocol::V3_1_1,
        }
    }

    /// Sets the largest whole packet (fixed header included) this decoder accepts.
    #[must_use]
    pub const fn with_max_packet_size(mut self, max: usize) -> Self {
        self.max_packet_size = max;
        self
    }

    /// The largest whole packet this decoder accepts.
    pub const fn max_packet_size(&self) -> usize {
        self.max_packet_size
    }

    /// Sets the protocol revision in force, once CONNECT has settled it. Only a
    /// few flag rules differ between 3.1 and 3.1.1; CONNECT itself decodes
    /// under either setting.
    pub fn set_protocol(&mut self, protocol: Protocol) {
        self.protocol = protocol;
    }

    /// The protocol revision in force.
    pub const fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Decodes one packet from the front of `buf`.
    ///
    /// `Ok(None)` means "need more bytes": `buf` is left as it was (it may have
    /// gained capacity). `Ok(Some(packet))` removes exactly that packet's bytes.
    /// After an error the connection must be closed [MQTT-4.8.0-1]; the buffer's
    /// contents are then meaningless.
    ///
    /// # Errors
    /// Any [`DecodeError`].
    #[inline]
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let Some(header) = peek(buf, self.max_packet_size, self.protocol)? else {
            return Ok(None);
        };
        let len = header.packet_len();
        if buf.len() < len {
            buf.reserve((len - buf.len()).min(RESERVE_AHEAD));
            return Ok(None);
        }
        if Packet::needs_frame(header.first.packet_type) {
            let frame = buf.split_to(len).freeze();
            Packet::decode_frame(&header, frame, self.protocol).map(Some)
        } else {
            let packet =
                Packet::decode_slice(&header, buf.get(..len).unwrap_or_default(), self.protocol)?;
            buf.advance(len);
            Ok(Some(packet))
        }
    }
}
