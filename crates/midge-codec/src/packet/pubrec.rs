//! PUBREC (both directions): first answer to a QoS 2 PUBLISH.

use crate::header::PacketType;
use crate::packet::ack::pid_only_packet;

pid_only_packet!(
    /// PUBREC (both directions): first answer to a QoS 2 PUBLISH.
    PubRec,
    PacketType::PubRec,
    0x50
);
