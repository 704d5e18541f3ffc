//! DISCONNECT (client to server): clean end of the connection; the server discards the will.

use crate::header::PacketType;
use crate::packet::ack::empty_packet;

empty_packet!(
    /// DISCONNECT (client to server): clean end of the connection; the server discards the will.
    Disconnect,
    PacketType::Disconnect,
    0xE0
);
