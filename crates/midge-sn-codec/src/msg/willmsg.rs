//! WILLMSG (5.4.9): the client's will message during connection setup. Body:
//! WillMsg.

use bytes::{BufMut, Bytes};

use crate::body::{codec, Body};
use crate::{Error, MsgType};

/// WILLMSG: the will message, sent when the gateway asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct WillMsg {
    /// The will message: opaque octets, possibly none.
    pub will_msg: Bytes,
}

impl WillMsg {
    /// Decodes the body (everything after MsgType): all of it is the message.
    pub fn decode(body: Bytes) -> Result<Self, Error> {
        Ok(Self { will_msg: body })
    }
}

impl Body for WillMsg {
    const MSG_TYPE: MsgType = MsgType::WillMsg;
    fn body_len(&self) -> usize {
        self.will_msg.len()
    }
    fn put_body(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.will_msg);
    }
}

codec!(WillMsg);
