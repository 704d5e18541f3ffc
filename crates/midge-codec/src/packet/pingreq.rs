//! PINGREQ (client to server): keep-alive probe.

use crate::header::PacketType;
use crate::packet::ack::empty_packet;

empty_packet!(
    /// PINGREQ (client to server): keep-alive probe.
    PingReq,
    PacketType::PingReq,
    0xC0
);
