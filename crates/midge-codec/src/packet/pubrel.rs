//! PUBREL (both directions): releases a QoS 2 message; the flags are 0b0010 [MQTT-3.6.1-1].

use crate::header::PacketType;
use crate::packet::ack::pid_only_packet;

pid_only_packet!(
    /// PUBREL (both directions): releases a QoS 2 message; the flags are 0b0010 [MQTT-3.6.1-1].
    PubRel,
    PacketType::PubRel,
    0x62
);
