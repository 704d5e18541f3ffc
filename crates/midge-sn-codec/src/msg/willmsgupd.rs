//! WILLMSGUPD (5.4.23): a connected client changes its will message. Body:
//! WillMsg.

use bytes::{BufMut, Bytes};

use crate::body::{codec, Body};
use crate::{Error, MsgType};

/// WILLMSGUPD: a new will message for the running session.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct WillMsgUpd {
    /// The will message: opaque octets, possibly none.
    pub will_msg: Bytes,
}

impl WillMsgUpd {
    /// Decodes the body (everything after MsgType): all of it is the message.
    pub fn decode(body: Bytes) -> Result<Self, Error> {
        Ok(Self { will_msg: body })
    }
}

impl Body for WillMsgUpd {
    const MSG_TYPE: MsgType = MsgType::WillMsgUpd;
    fn body_len(&self) -> usize {
        self.will_msg.len()
    }
    fn put_body(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.will_msg);
    }
}

codec!(WillMsgUpd);
