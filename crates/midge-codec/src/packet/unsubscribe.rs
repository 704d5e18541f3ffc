//! UNSUBSCRIBE (client to server): topic filters to remove.

use alloc::vec::Vec;

use bytes::BufMut;

use crate::error::{DecodeError, Field};
use crate::header::{FirstByte, PacketType};
use crate::packet::Body;
use crate::topic::check_topic_filter;
use crate::types::{MqttString, PacketId};
use crate::wire::{field_len, put_field, Reader};

/// UNSUBSCRIBE: a packet identifier and at least one filter [MQTT-3.10.3-2].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet identifier, echoed by UNSUBACK.
    pub packet_id: PacketId,
    /// The filters to remove, compared character by character with existing ones.
    pub filters: Vec<MqttString>,
}

impl Unsubscribe {
    /// An UNSUBSCRIBE.
    pub fn new(packet_id: PacketId, filters: Vec<MqttString>) -> Self {
        Self { packet_id, filters }
    }

    pub(crate) fn decode(_first: FirstByte, mut r: Reader<'_>) -> Result<Self, DecodeError> {
        let packet_id = r.packet_id()?;
        let mut filters = Vec::new();
        while !r.is_empty() {
            let (filter, s) = r.string_with_str(Field::TopicFilter)?; // [MQTT-3.10.3-1]
            check_topic_filter(s)?;
            filters.push(filter);
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
            return Err(DecodeError::EmptyUnsubscribe);
        }
        self.filters
            .iter()
            .try_for_each(|f| check_topic_filter(f.as_str()))
    }

    fn encode_body(&self, buf: &mut impl BufMut) {
        buf.put_u16(self.packet_id.get());
        for f in &self.filters {
            put_field(buf, f.as_bytes());
        }
    }
}
