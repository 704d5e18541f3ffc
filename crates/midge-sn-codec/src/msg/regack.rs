//! REGACK (5.4.11): the answer to REGISTER. Body: TopicId, MsgId, ReturnCode.

use bytes::{BufMut, Bytes};

use crate::body::{codec, Body};
use crate::header::Reader;
use crate::{Error, MsgType, ReturnCode, TopicId};

/// REGACK: the topic id to use, or why the registration failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RegAck {
    /// The TopicId field: the id to use in PUBLISH messages for the registered name.
    pub topic_id: TopicId,
    /// Echoes the request's MsgId; any value, 0x0000 included.
    pub msg_id: u16,
    /// Accepted, or why not.
    pub return_code: ReturnCode,
}

impl RegAck {
    /// Decodes the body (everything after MsgType).
    pub fn decode(body: Bytes) -> Result<Self, Error> {
        let mut r = Reader::new(body, MsgType::RegAck);
        let topic_id = TopicId(r.u16("TopicId")?);
        let msg_id = r.u16("MsgId")?;
        let code = r.u8("ReturnCode")?;
        r.finish()?;
        Ok(Self {
            topic_id,
            msg_id,
            return_code: ReturnCode::from_u8(code, MsgType::RegAck)?,
        })
    }
}

impl Body for RegAck {
    const MSG_TYPE: MsgType = MsgType::RegAck;
    fn body_len(&self) -> usize {
        5
    }
    fn put_body(&self, buf: &mut impl BufMut) {
        buf.put_u16(self.topic_id.0);
        buf.put_u16(self.msg_id);
        buf.put_u8(self.return_code.to_u8());
    }
}

codec!(RegAck);
