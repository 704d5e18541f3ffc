//! Forwarder encapsulation (5.5): a forwarder wraps a client's message for the
//! gateway, or unwraps the gateway's. Layout: Length, MsgType 0xFE, Ctrl,
//! Wireless Node Id, then the wrapped message with its own header.
//!
//! The outer Length counts only up to the end of the Wireless Node Id; the
//! wrapped message is the rest of the datagram and must match its own Length.

use alloc::boxed::Box;
use bytes::{BufMut, Bytes};

use crate::header::{self, Header, Reader};
use crate::{Error, Message, MsgType};

/// Bits 1–0 of Ctrl: the broadcast radius. Bits 7–2 are reserved.
const RADIUS_MASK: u8 = 0x03;

/// A message wrapped by a forwarder.
///
/// The wrapped message may be any message except another encapsulation:
/// nesting is refused on both decode and encode, which also bounds the
/// decoder's recursion to one level.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Encapsulated {
    /// Broadcast radius from the Ctrl octet (0–3); meaningful from gateway to
    /// forwarder only.
    pub radius: u8,
    /// Which wireless node sent, or should receive, the message; opaque, never empty.
    pub node_id: Bytes,
    /// The wrapped message.
    pub message: Box<Message>,
}

impl Encapsulated {
    /// Decodes from `body` (Ctrl and Wireless Node Id, as counted by the outer
    /// Length, after MsgType) and `inner` (the rest of the datagram).
    pub fn decode(body: Bytes, inner: Bytes) -> Result<Self, Error> {
        let mut r = Reader::new(body, MsgType::Encapsulated);
        let ctrl = r.u8("Ctrl")?;
        if ctrl & !RADIUS_MASK != 0 {
            return Err(Error::ReservedCtrlBits(ctrl));
        }
        let node_id = r.rest();
        if node_id.is_empty() {
            return Err(Error::EmptyField {
                message: MsgType::Encapsulated,
                field: "WirelessNodeId",
            });
        }
        if Header::peek(&inner)?.msg_type == MsgType::Encapsulated {
            return Err(Error::NestedEncapsulation);
        }
        Ok(Self {
            radius: ctrl & RADIUS_MASK,
            node_id,
            message: Box::new(Message::decode(inner)?),
        })
    }

    /// Length of the whole encoding: the outer header, Ctrl, Wireless Node Id
    /// and the wrapped message.
    pub fn encoded_len(&self) -> usize {
        header::total_len(self.outer_body_len()).saturating_add(self.message.encoded_len())
    }

    /// Encodes the wrapper and the wrapped message into `buf`.
    pub fn encode(&self, buf: &mut impl BufMut) -> Result<(), Error> {
        if self.radius > RADIUS_MASK {
            return Err(Error::RadiusOutOfRange(self.radius));
        }
        if self.node_id.is_empty() {
            return Err(Error::EmptyField {
                message: MsgType::Encapsulated,
                field: "WirelessNodeId",
            });
        }
        if matches!(*self.message, Message::Encapsulated(_)) {
            return Err(Error::NestedEncapsulation);
        }
        // Check the wrapped message before writing the wrapper, so that a
        // failure leaves nothing half-written.
        self.message.check()?;
        header::put(
            buf,
            MsgType::Encapsulated,
            self.outer_body_len(),
            self.encoded_len(),
        )?;
        buf.put_u8(self.radius);
        buf.put_slice(&self.node_id);
        self.message.encode(buf)
    }

    fn outer_body_len(&self) -> usize {
        1 + self.node_id.len()
    }
}
