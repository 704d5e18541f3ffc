//! PINGRESP (server to client): answer to PINGREQ.

use crate::header::PacketType;
use crate::packet::ack::empty_packet;

empty_packet!(
    /// PINGRESP (server to client): answer to PINGREQ.
    PingResp,
    PacketType::PingResp,
    0xD0
);
