//! PUBLISH (both directions): an application message.

use core::ops::Range;

use bytes::{Buf, BufMut, Bytes};

use crate::error::{DecodeError, Field};
use crate::header::{FirstByte, PacketType};
use crate::packet::Body;
use crate::types::{PacketId, QoS, Topic};
use crate::wire::{field_len, put_field, topic, Reader};

/// The QoS of a PUBLISH together with its packet identifier: QoS 0 has none,
/// QoS 1 and 2 always have one [MQTT-2.3.1-5], so the two travel as one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QosPid {
    /// QoS 0.
    AtMostOnce,
    /// QoS 1 with its packet identifier.
    AtLeastOnce(PacketId),
    /// QoS 2 with its packet identifier.
    ExactlyOnce(PacketId),
}

impl QosPid {
    /// The QoS.
    #[inline]
    pub const fn qos(self) -> QoS {
        match self {
            Self::AtMostOnce => QoS::AtMostOnce,
            Self::AtLeastOnce(_) => QoS::AtLeastOnce,
            Self::ExactlyOnce(_) => QoS::ExactlyOnce,
        }
    }

    /// The packet identifier, for QoS 1 and 2.
    #[inline]
    pub const fn packet_id(self) -> Option<PacketId> {
        match self {
            Self::AtMostOnce => None,
            Self::AtLeastOnce(pid) | Self::ExactlyOnce(pid) => Some(pid),
        }
    }
}

/// PUBLISH: topic, payload, QoS, DUP and RETAIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// DUP: this may be a re-delivery. Never set with QoS 0 [MQTT-3.3.1-2].
    pub dup: bool,
    /// QoS and packet identifier.
    pub qos_pid: QosPid,
    /// RETAIN flag.
    pub retain: bool,
    /// Topic name: non-empty, no wildcards [MQTT-3.3.2-2].
    pub topic: Topic,
    /// Application payload, possibly empty.
    pub payload: Bytes,
}

impl Publish {
    /// A PUBLISH with DUP and RETAIN clear.
    pub fn new(topic: Topic, qos_pid: QosPid, payload: impl Into<Bytes>) -> Self {
        Self {
            dup: false,
            qos_pid,
            retain: false,
            topic,
            payload: payload.into(),
        }
    }

    /// The QoS.
    #[inline]
    pub fn qos(&self) -> QoS {
        self.qos_pid.qos()
    }

    /// The packet identifier (QoS 1 and 2).
    #[inline]
    pub fn packet_id(&self) -> Option<PacketId> {
        self.qos_pid.packet_id()
    }

    /// Decodes from a whole frame; the payload becomes the tail of `frame`
    /// itself, so only the topic costs a reference-count increment.
    #[inline]
    pub(crate) fn decode(
        first: FirstByte,
        mut frame: Bytes,
        header_len: usize,
    ) -> Result<Self, DecodeError> {
        let layout = PublishLayout::parse(first, &frame, header_len)?;
        // [MQTT-3.3.2-1] UTF-8, [MQTT-3.3.2-2] no wildcards.
        let topic = topic(&frame, layout.topic.clone(), Field::TopicName)?;
        frame.advance(layout.payload_start);
        Ok(Self {
            dup: first.flags & 0b1000 != 0,
            qos_pid: layout.qos_pid,
            retain: first.flags & 0b0001 != 0,
            topic,
            payload: frame,
        })
    }
}

/// Where a PUBLISH keeps its fields: shared by the owned and borrowed decoders.
pub(crate) struct PublishLayout {
    /// Range of the topic name's bytes in the frame.
    pub(crate) topic: Range<usize>,
    /// QoS and packet identifier.
    pub(crate) qos_pid: QosPid,
    /// Offset of the payload in the frame.
    pub(crate) payload_start: usize,
}

impl PublishLayout {
    /// Reads the variable header of the PUBLISH in `data` (the whole frame).
    /// The first byte was validated already: QoS is 0..=2 and DUP is clear for
    /// QoS 0.
    #[inline]
    pub(crate) fn parse(
        first: FirstByte,
        data: &[u8],
        header_len: usize,
    ) -> Result<Self, DecodeError> {
        let mut r = Reader::new(data, header_len, PacketType::Publish);
        let topic = r.field(Field::TopicName)?;
        let qos_pid = match (first.flags >> 1) & 0b11 {
            0 => QosPid::AtMostOnce,
            1 => QosPid::AtLeastOnce(r.packet_id()?),
            _ => QosPid::ExactlyOnce(r.packet_id()?),
        };
        Ok(Self {
            topic,
            qos_pid,
            payload_start: r.position(),
        })
    }
}

impl Body for Publish {
    const PACKET_TYPE: PacketType = PacketType::Publish;

    #[inline]
    fn first_byte(&self) -> u8 {
        0x30 | (u8::from(self.dup) << 3) | (self.qos().as_u8() << 1) | u8::from(self.retain)
    }

    #[inline]
    fn remaining_len(&self) -> usize {
        let pid = if self.packet_id().is_some() { 2 } else { 0 };
        field_len(self.topic.len()) + pid + self.payload.len()
    }

    #[inline]
    fn validate(&self) -> Result<(), DecodeError> {
        if self.dup && self.qos() == QoS::AtMostOnce {
            return Err(DecodeError::DupWithQoS0); // [MQTT-3.3.1-2]
        }
        Ok(())
    }

    #[inline]
    fn encode_body(&self, buf: &mut impl BufMut) {
        put_field(buf, self.topic.as_bytes());
        if let Some(pid) = self.packet_id() {
            buf.put_u16(pid.get());
        }
        buf.put_slice(&self.payload);
    }
}
