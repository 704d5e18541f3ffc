//! CONNACK (server to client): the answer to CONNECT.

use bytes::BufMut;

use crate::error::{DecodeError, Field};
use crate::header::{FirstByte, PacketType};
use crate::packet::Body;
use crate::types::Protocol;
use crate::wire::Reader;

/// CONNACK return codes (Table 3.1). Values 6..=255 are reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ConnectReturnCode {
    /// 0x00: connection accepted.
    Accepted = 0x00,
    /// 0x01: the server does not speak the requested protocol level.
    UnacceptableProtocolVersion = 0x01,
    /// 0x02: the client identifier is well-formed UTF-8 but not allowed.
    IdentifierRejected = 0x02,
    /// 0x03: the MQTT service is unavailable.
    ServerUnavailable = 0x03,
    /// 0x04: the user name or password is malformed.
    BadUsernameOrPassword = 0x04,
    /// 0x05: the client is not authorised to connect.
    NotAuthorized = 0x05,
}

impl ConnectReturnCode {
    /// The code for a byte, or `None` for a reserved value.
    pub const fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            0x00 => Self::Accepted,
            0x01 => Self::UnacceptableProtocolVersion,
            0x02 => Self::IdentifierRejected,
            0x03 => Self::ServerUnavailable,
            0x04 => Self::BadUsernameOrPassword,
            0x05 => Self::NotAuthorized,
            _ => return None,
        })
    }
}

/// CONNACK: whether the connection is accepted and whether the server holds
/// a session for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnAck {
    /// Session present flag; always false when the connection is refused
    /// [MQTT-3.2.2-4], and always false in MQTT 3.1, which has no such flag.
    pub session_present: bool,
    /// The return code.
    pub code: ConnectReturnCode,
}

impl ConnAck {
    /// A CONNACK with the given code and session flag.
    pub const fn new(code: ConnectReturnCode, session_present: bool) -> Self {
        Self {
            session_present,
            code,
        }
    }

    pub(crate) fn decode(
        _first: FirstByte,
        mut r: Reader<'_>,
        protocol: Protocol,
    ) -> Result<Self, DecodeError> {
        let flags = r.u8(Field::ConnAckFlags)?;
        // Bits 7-1 are reserved in 3.1.1; in 3.1 the whole byte is.
        let reserved = match protocol {
            Protocol::V3_1 => 0xFF,
            _ => 0xFE,
        };
        if flags & reserved != 0 {
            return Err(DecodeError::InvalidConnAckFlags(flags));
        }
        let raw = r.u8(Field::ReturnCode)?;
        let code =
            ConnectReturnCode::from_u8(raw).ok_or(DecodeError::InvalidConnectReturnCode(raw))?;
        let session_present = flags & 0x01 != 0;
        if session_present && code != ConnectReturnCode::Accepted {
            return Err(DecodeError::SessionPresentWithRefusal); // [MQTT-3.2.2-4]
        }
        r.finish()?;
        Ok(Self {
            session_present,
            code,
        })
    }
}

impl Body for ConnAck {
    const PACKET_TYPE: PacketType = PacketType::ConnAck;

    fn first_byte(&self) -> u8 {
        0x20
    }

    fn remaining_len(&self) -> usize {
        2
    }

    fn validate(&self) -> Result<(), DecodeError> {
        if self.session_present && self.code != ConnectReturnCode::Accepted {
            return Err(DecodeError::SessionPresentWithRefusal); // [MQTT-3.2.2-4]
        }
        Ok(())
    }

    fn encode_body(&self, buf: &mut impl BufMut) {
        buf.put_u8(u8::from(self.session_present));
        buf.put_u8(self.code as u8);
    }
}
