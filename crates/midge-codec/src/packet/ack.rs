//! The four packets whose whole body is a packet identifier share this shape;
//! each has its own file that instantiates it.

/// Defines a packet whose variable header is one packet identifier and which
/// has no payload: PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK.
macro_rules! pid_only_packet {
    ($(#[$doc:meta])* $name:ident, $packet_type:expr, $first:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name {
            /// The packet identifier being acknowledged or released.
            pub packet_id: $crate::types::PacketId,
        }

        impl $name {
            /// The packet for `packet_id`.
            pub const fn new(packet_id: $crate::types::PacketId) -> Self {
                Self { packet_id }
            }

            #[inline]
            pub(crate) fn decode(
                _first: $crate::header::FirstByte,
                mut r: $crate::wire::Reader<'_>,
            ) -> Result<Self, $crate::error::DecodeError> {
                let packet_id = r.packet_id()?;
                r.finish()?;
                Ok(Self { packet_id })
            }
        }

        impl $crate::packet::Body for $name {
            const PACKET_TYPE: $crate::header::PacketType = $packet_type;

            #[inline]
            fn first_byte(&self) -> u8 {
                $first
            }

            #[inline]
            fn remaining_len(&self) -> usize {
                2
            }

            #[inline]
            fn validate(&self) -> Result<(), $crate::error::DecodeError> {
                Ok(())
            }

            #[inline]
            fn encode_body(&self, buf: &mut impl bytes::BufMut) {
                buf.put_u16(self.packet_id.get());
            }
        }
    };
}

/// Defines a packet with neither variable header nor payload: PINGREQ,
/// PINGRESP, DISCONNECT.
macro_rules! empty_packet {
    ($(#[$doc:meta])* $name:ident, $packet_type:expr, $first:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name;

        impl $name {
            #[inline]
            pub(crate) fn decode(
                _first: $crate::header::FirstByte,
                r: $crate::wire::Reader<'_>,
            ) -> Result<Self, $crate::error::DecodeError> {
                r.finish()?;
                Ok(Self)
            }
        }

        impl $crate::packet::Body for $name {
            const PACKET_TYPE: $crate::header::PacketType = $packet_type;

            #[inline]
            fn first_byte(&self) -> u8 {
                $first
            }

            #[inline]
            fn remaining_len(&self) -> usize {
                0
            }

            #[inline]
            fn validate(&self) -> Result<(), $crate::error::DecodeError> {
                Ok(())
            }

            #[inline]
            fn encode_body(&self, _buf: &mut impl bytes::BufMut) {}
        }
    };
}

pub(crate) use {empty_packet, pid_only_packet};
