//! SUBSCRIBE (client to server): topic filters with their requested QoS.

use alloc::vec::Vec;

use bytes::{BufMut, Bytes};

use crate::error::{DecodeError, Field};
use crate::header::PacketType;
use crate::packet::Body;
use crate::types::{Filter, PacketId, QoS};
use crate::wire::{field_len, filter, put_field, Reader};

/// One topic filter of a SUBSCRIBE and the maximum QoS asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeFilter {
    /// The topic filter; wildcards allowed.
    pub filter: Filter,
    /// Requested (maximum) QoS.
    pub qos: QoS,
}

impl SubscribeFilter {
    /// A filter with its requested QoS.
    pub const fn new(filter: Filter, qos: QoS) -> Self {
        Self { filter, qos }
    }
}

/// SUBSCRIBE: a packet identifier and at least one filter [MQTT-3.8.3-3].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet identifier, echoed by SUBACK.
    pub packet_id: PacketId,
    /// The filters, in order; SUBACK answers in the same order.
    pub filters: Vec<SubscribeFilter>,
}

impl Subscribe {
    /// A SUBSCRIBE.
    pub fn new(packet_id: PacketId, filters: Vec<SubscribeFilter>) -> Self {
        Self { packet_id, filters }
    }

    pub(crate) fn decode(frame: &Bytes, header_len: usize) -> Result<Self, DecodeError> {
        let mut r = Reader::new(frame, header_len, PacketType::Subscribe);
        let packet_id = r.packet_id()?;
        let mut filters = Vec::new();
        while !r.is_empty() {
            let range = r.field(Field::TopicFilter)?;
            let raw = r.u8(Field::RequestedQoS)?;
            let filter = filter(frame, range)?; // [MQTT-3.8.3-1]
                                                // [MQTT-3.8.3-4]: the upper six bits are reserved and QoS 3 does not exist.
            let qos = QoS::from_u8(raw).ok_or(DecodeError::InvalidRequestedQoS(raw))?;
            filters.push(SubscribeFilter { filter, qos });
        }
        if filters.is_empty() {
            return Err(DecodeError::EmptySubscribe); // [MQTT-3.8.3-3]
        }
        Ok(Self { packet_id, filters })
    }
}

impl Body for Subscribe {
    const PACKET_TYPE: PacketType = PacketType::Subscribe;

    fn first_byte(&self) -> u8 {
        0x82 // [MQTT-3.8.1-1]
    }

    fn remaining_len(&self) -> usize {
        2 + self
            .filters
            .iter()
            .map(|f| field_len(f.filter.len()) + 1)
            .sum::<usize>()
    }

    fn validate(&self) -> Result<(), DecodeError> {
        if self.filters.is_empty() {
            return Err(DecodeError::EmptySubscribe); // [MQTT-3.8.3-3]
        }
        Ok(())
    }

    fn encode_body(&self, buf: &mut impl BufMut) {
        buf.put_u16(self.packet_id.get());
        for f in &self.filters {
            put_field(buf, f.filter.as_bytes());
            buf.put_u8(f.qos.as_u8());
        }
    }
}
