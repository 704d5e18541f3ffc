//! PUBCOMP (both directions): completes the QoS 2 handshake.

use crate::header::PacketType;
use crate::packet::ack::pid_only_packet;

pid_only_packet!(
    /// PUBCOMP (both directions): completes the QoS 2 handshake.
    PubComp,
    PacketType::PubComp,
    0x70
);
