//! SUBACK (5.4.16): the answer to SUBSCRIBE. Body: Flags, TopicId, MsgId,
//! ReturnCode.

use bytes::{BufMut, Bytes};

use crate::body::{codec, Body};
use crate::header::Reader;
use crate::{Error, Flags, MsgType, PublishQoS, QoS, ReturnCode, TopicId};

/// SUBACK: the granted QoS and topic id, or why the subscription failed.
///
/// Of the flags only QoS is used; the others are ignored on decode and written
/// as zero. QoS −1 is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SubAck {
    /// The granted QoS.
    pub qos: QoS,
    /// The id the gateway will publish with; 0x0000 for a wildcard filter or a
    /// short topic name.
    pub topic_id: TopicId,
    /// Echoes the SUBSCRIBE's MsgId.
    pub msg_id: u16,
    /// Accepted, or why not.
    pub return_code: ReturnCode,
}

impl SubAck {
    /// Decodes the body (everything after MsgType).
    pub fn decode(body: Bytes) -> Result<Self, Error> {
        let mut r = Reader::new(body, MsgType::SubAck);
        let flags = Flags(r.u8("Flags")?);
        let qos = flags.qos(MsgType::SubAck)?;
        let topic_id = TopicId(r.u16("TopicId")?);
        let msg_id = r.u16("MsgId")?;
        let code = r.u8("ReturnCode")?;
        r.finish()?;
        Ok(Self {
            qos,
            topic_id,
            msg_id,
            return_code: ReturnCode::from_u8(code, MsgType::SubAck)?,
        })
    }
}

impl Body for SubAck {
    const MSG_TYPE: MsgType = MsgType::SubAck;
    fn body_len(&self) -> usize {
        6
    }
    fn put_body(&self, buf: &mut impl BufMut) {
        buf.put_u8(Flags::EMPTY.with_qos(PublishQoS::from(self.qos)).0);
        buf.put_u16(self.topic_id.0);
        buf.put_u16(self.msg_id);
        buf.put_u8(self.return_code.to_u8());
    }
}

codec!(SubAck);
