//! UNSUBACK (server to client): acknowledges an UNSUBSCRIBE.

use crate::header::PacketType;
use crate::packet::ack::pid_only_packet;

pid_only_packet!(
    /// UNSUBACK (server to client): acknowledges an UNSUBSCRIBE.
    UnsubAck,
    PacketType::UnsubAck,
    0xB0
);
