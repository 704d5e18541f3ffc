//! PUBACK (5.4.13): acknowledges a QoS 1 PUBLISH, or rejects any PUBLISH. Body: TopicId, MsgId, ReturnCode.

use bytes::{BufMut, Bytes};

use crate::body::{codec, Body};
use crate::header::Reader;
use crate::{Error, MsgType, ReturnCode, TopicId};

/// PUBACK: a QoS 1 PUBLISH arrived, or a PUBLISH of any QoS was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PubAck {
    /// The TopicId field: the TopicId field of the PUBLISH answered (for a short topic name, its two octets).
    pub topic_id: TopicId,
    /// Echoes the request's MsgId; any value, 0x0000 included.
    pub msg_id: u16,
    /// Accepted, or why not.
    pub return_code: ReturnCode,
}

impl PubAck {
    /// Decodes the body (everything after MsgType).
    pub fn decode(body: Bytes) -> Result<Self, Error> {
        let mut r = Reader::new(body, MsgType::PubAck);
        let topic_id = TopicId(r.u16("TopicId")?);
        let msg_id = r.u16("MsgId")?;
        let code = r.u8("ReturnCode")?;
        r.finish()?;
        Ok(Self {
            topic_id,
            msg_id,
            return_code: ReturnCode::from_u8(code, MsgType::PubAck)?,
        })
    }
}

impl Body for PubAck {
    const MSG_TYPE: MsgType = MsgType::PubAck;
    fn body_len(&self) -> usize {
        5
    }
    fn put_body(&self, buf: &mut impl BufMut) {
        buf.put_u16(self.topic_id.0);
        buf.put_u16(self.msg_id);
        buf.put_u8(self.return_code.to_u8());
    }
}

codec!(PubAck);
