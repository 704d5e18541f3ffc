//! SUBACK (server to client): one return code per requested filter.

use alloc::vec::Vec;

use bytes::BufMut;

use crate::error::{DecodeError, Field};
use crate::header::{FirstByte, PacketType};
use crate::packet::Body;
use crate::types::{PacketId, QoS};
use crate::wire::Reader;

/// The answer to one filter of a SUBSCRIBE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscribeReturnCode {
    /// Subscribed with this maximum QoS (0x00, 0x01, 0x02).
    Success(QoS),
    /// 0x80: the subscription was refused.
    Failure,
}

impl SubscribeReturnCode {
    /// The code for a byte, or `None` for the reserved values [MQTT-3.9.3-2].
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            0x80 => Some(Self::Failure),
            v => match QoS::from_u8(v) {
                Some(qos) => Some(Self::Success(qos)),
                None => None,
            },
        }
    }

    /// The byte on the wire.
    pub const fn as_u8(self) -> u8 {
        match self {
            Self::Success(qos) => qos.as_u8(),
            Self::Failure => 0x80,
        }
    }
}

/// SUBACK: the SUBSCRIBE's packet identifier and one code per filter, in order
/// [MQTT-3.8.4-5] [MQTT-3.9.3-1].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// Packet identifier of the SUBSCRIBE being answered.
    pub packet_id: PacketId,
    /// Return codes, one per filter of the SUBSCRIBE.
    pub return_codes: Vec<SubscribeReturnCode>,
}

impl SubAck {
    /// A SUBACK.
    pub fn new(packet_id: PacketId, return_codes: Vec<SubscribeReturnCode>) -> Self {
        Self {
            packet_id,
            return_codes,
        }
    }

    pub(crate) fn decode(_first: FirstByte, mut r: Reader<'_>) -> Result<Self, DecodeError> {
        let packet_id = r.packet_id()?;
        let mut return_codes = Vec::new();
        while !r.is_empty() {
            let raw = r.u8(Field::ReturnCode)?;
            let code = SubscribeReturnCode::from_u8(raw)
                .ok_or(DecodeError::InvalidSubAckReturnCode(raw))?;
            return_codes.push(code);
        }
        if return_codes.is_empty() {
            return Err(DecodeError::EmptySubAck);
        }
        Ok(Self {
            packet_id,
            return_codes,
        })
    }
}

impl Body for SubAck {
    const PACKET_TYPE: PacketType = PacketType::SubAck;

    fn first_byte(&self) -> u8 {
        0x90
    }

    fn remaining_len(&self) -> usize {
        2 + self.return_codes.len()
    }

    fn validate(&self) -> Result<(), DecodeError> {
        if self.return_codes.is_empty() {
            return Err(DecodeError::EmptySubAck);
        }
        Ok(())
    }

    fn encode_body(&self, buf: &mut impl BufMut) {
        buf.put_u16(self.packet_id.get());
        for code in &self.return_codes {
            buf.put_u8(code.as_u8());
        }
    }
}
