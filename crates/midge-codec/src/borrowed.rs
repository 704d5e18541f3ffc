//! A borrowed view for the hot path: decode a PUBLISH without taking
//! ownership of anything, its topic a `&str` and its payload a `&[u8]` of the
//! caller's buffer.
//!
//! The owned [`Packet`] is what crosses task and thread boundaries (a broker
//! fans one PUBLISH out to many subscribers by cloning `Bytes`); the borrowed
//! view is for code that looks at a packet and is done with it, such as a
//! router that matches the topic and copies the payload once, or a client that
//! hands the payload to a callback. The rules enforced are exactly those of
//! [`Decoder::decode`].

use bytes::Bytes;

use crate::error::{DecodeError, Field};
use crate::header::{peek, PacketType};
use crate::packet::{Packet, Publish, PublishLayout, QosPid};
use crate::types::{check_topic_name, Topic};
use crate::Decoder;

/// A PUBLISH whose topic and payload borrow from the read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishRef<'a> {
    /// DUP flag (never set with QoS 0).
    pub dup: bool,
    /// QoS and packet identifier.
    pub qos_pid: QosPid,
    /// RETAIN flag.
    pub retain: bool,
    /// Topic name, validated like [`Topic`].
    pub topic: &'a str,
    /// Application payload.
    pub payload: &'a [u8],
}

impl PublishRef<'_> {
    /// An owned copy (one allocation for the topic, one for the payload).
    pub fn to_publish(&self) -> Publish {
        Publish {
            dup: self.dup,
            qos_pid: self.qos_pid,
            retain: self.retain,
            topic: Topic::from_checked(self.topic),
            payload: Bytes::copy_from_slice(self.payload),
        }
    }
}

/// A packet decoded by [`Decoder::decode_ref`]: PUBLISH borrowed, everything
/// else owned. Acknowledgements and pings cost no allocation either way;
/// CONNECT, SUBSCRIBE and UNSUBSCRIBE, rare on a connection, are copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketRef<'a> {
    /// A borrowed PUBLISH.
    Publish(PublishRef<'a>),
    /// Any other packet, owned.
    Other(Packet),
}

impl Decoder {
    /// Decodes the packet at the front of `buf` without consuming or copying
    /// it, and returns it with its length in bytes; the caller advances its
    /// buffer by that length. `Ok(None)` means "need more bytes".
    ///
    /// ```
    /// use midge_codec::{Decoder, PacketRef};
    ///
    /// let bytes = [0x30, 0x05, 0x00, 0x01, b'a', b'h', b'i'];
    /// let Some((PacketRef::Publish(p), len)) = Decoder::new().decode_ref(&bytes)? else {
    ///     panic!("a PUBLISH")
    /// };
    /// assert_eq!((p.topic, p.payload, len), ("a", &b"hi"[..], 7));
    /// # Ok::<(), midge_codec::DecodeError>(())
    /// ```
    ///
    /// # Errors
    /// Any [`DecodeError`], as [`Decoder::decode`].
    #[inline]
    pub fn decode_ref<'a>(
        &self,
        buf: &'a [u8],
    ) -> Result<Option<(PacketRef<'a>, usize)>, DecodeError> {
        let Some(header) = peek(buf, self.max_packet_size(), self.protocol())? else {
            return Ok(None);
        };
        let len = header.packet_len();
        let Some(data) = buf.get(..len) else {
            return Ok(None);
        };
        let first = header.first;
        let packet = match first.packet_type {
            PacketType::Publish => {
                let layout = PublishLayout::parse(first, data, header.header_len)?;
                let topic = data.get(layout.topic).unwrap_or_default();
                let topic = core::str::from_utf8(topic).map_err(|_| DecodeError::InvalidUtf8 {
                    field: Field::TopicName,
                })?; // [MQTT-3.3.2-1]
                check_topic_name(topic, Field::TopicName)?; // [MQTT-3.3.2-2]
                PacketRef::Publish(PublishRef {
                    dup: first.flags & 0b1000 != 0,
                    qos_pid: layout.qos_pid,
                    retain: first.flags & 0b0001 != 0,
                    topic,
                    payload: data.get(layout.payload_start..).unwrap_or_default(),
                })
            }
            t if Packet::needs_frame(t) => PacketRef::Other(Packet::decode_frame(
                &header,
                Bytes::copy_from_slice(data),
                self.protocol(),
            )?),
            _ => PacketRef::Other(Packet::decode_slice(&header, data, self.protocol())?),
        };
        Ok(Some((packet, len)))
    }
}
