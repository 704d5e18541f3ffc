//! PUBACK (both directions): acknowledges a QoS 1 PUBLISH.

use crate::header::PacketType;
use crate::packet::ack::pid_only_packet;

pid_only_packet!(
    /// PUBACK (both directions): acknowledges a QoS 1 PUBLISH.
    PubAck,
    PacketType::PubAck,
    0x40
);
