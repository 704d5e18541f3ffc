//! UNSUBSCRIBE (client to server): topic filters to remove.

use alloc::vec::Vec;

use bytes::{BufMut, Bytes};

use crate::error::{DecodeError, Field};
use crate::header::PacketType;
use crate::packet::Body;
use crate::types::{Filter, PacketId};
use crate::wire::{field_len, filter, put_field, Reader};

/// UNSUBSCRIBE: a packet identifier and at least one filter [MQTT-3.10.3-2].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet identifier, echoed by UNSUBACK.
    pub packet_id: PacketId,
    /// The filters to remove, compared character by character with existing ones.
    pub filters: Vec<Filter>,
}

impl Unsubscribe {
    /// An UNSUBSCRIBE.
    pub fn new(packet_id: PacketId, filters: Vec<Filter>) -> Self {
        Self { packet_id, filters }
    }

    pub(crate) fn decode(frame: &Bytes, header_len: usize) -> Result<Self, DecodeError> {
        let mut r = Reader::new(frame, header_len, PacketType::Unsubscribe);
        let packet_id = r.packet_id()?;
        let mut filters = Vec::new();
        while !r.is_empty() {
            let range = r.field(Field::TopicFilter)?;
            filters.push(filter(frame, range)?); // [MQTT-3.10.3-1]
        }
        if filters.is_empty() {
            return Err(DecodeError::EmptyUnsubscribe); // [MQTT-3.10.3-2]
        }
        Ok(Self { packet_id, filters })
    }
}

impl Body for Unsubscribe {
    const PACKET_TYPE: PacketType = PacketType::Unsubscribe;

    fn first_byte(&self) -> u8 {
        0xA2 // [MQTT-3.10.1-1]
    }

    fn remaining_len(&self) -> usize {
        2 + self
            .filters
            .iter()
            .map(|f| field_len(f.len()))
            .sum::<usize>()
    }

    fn validate(&self) -> Result<(), DecodeError> {
        if self.filters.is_empty() {
            return Err(DecodeError::EmptyUnsubscribe); // [MQTT-3.10.3-2]
        }
        Ok(())
    }

    fn encode_body(&self, buf: &mut impl BufMut) {
        buf.put_u16(self.packet_id.get());
        for f in &self.filters {
            put_field(buf, f.as_bytes());
        }
    }
}
