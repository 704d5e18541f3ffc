//! The ReturnCode octet.

use crate::{Error, MsgType};

/// The answer carried by CONNACK, REGACK, PUBACK, SUBACK, WILLTOPICRESP and
/// WILLMSGRESP. Values 0x04–0xFF are reserved and refused on decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ReturnCode {
    /// 0x00: accepted.
    #[default]
    Accepted,
    /// 0x01: rejected, congestion (retry after T_WAIT).
    Congestion,
    /// 0x02: rejected, invalid topic id.
    InvalidTopicId,
    /// 0x03: rejected, not supported.
    NotSupported,
}

impl ReturnCode {
    /// The octet on the wire.
    pub const fn to_u8(self) -> u8 {
        match self {
            Self::Accepted => 0x00,
            Self::Congestion => 0x01,
            Self::InvalidTopicId => 0x02,
            Self::NotSupported => 0x03,
        }
    }

    /// Reads the octet; reserved values are an error naming `message`.
    pub const fn from_u8(value: u8, message: MsgType) -> Result<Self, Error> {
        match value {
            0x00 => Ok(Self::Accepted),
            0x01 => Ok(Self::Congestion),
            0x02 => Ok(Self::InvalidTopicId),
            0x03 => Ok(Self::NotSupported),
            _ => Err(Error::ReservedReturnCode { message, value }),
        }
    }

    /// Whether the request was accepted.
    pub const fn is_accepted(self) -> bool {
        matches!(self, Self::Accepted)
    }
}
