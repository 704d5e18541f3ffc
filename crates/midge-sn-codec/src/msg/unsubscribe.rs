//! UNSUBSCRIBE (5.4.17): a client drops a subscription. Body: Flags, MsgId,
//! TopicName or TopicId.

use bytes::{BufMut, Bytes};

use crate::body::{codec, Body};
use crate::header::Reader;
use crate::{Error, Flags, MsgType, SubscribeTopic};

/// UNSUBSCRIBE: a client drops a topic name (or filter), a pre-defined topic
/// id, or a short topic name.
///
/// Of the flags only TopicIdType is used; the others are ignored on decode and
/// written as zero. TopicIdType 0b11 is refused, and so is MsgId 0x0000.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Unsubscribe {
    /// Matches the UNSUBACK; never 0x0000.
    pub msg_id: u16,
    /// What to unsubscribe from.
    pub topic: SubscribeTopic,
}

impl Unsubscribe {
    /// Decodes the body (everything after MsgType).
    pub fn decode(body: Bytes) -> Result<Self, Error> {
        let mut r = Reader::new(body, MsgType::Unsubscribe);
        let flags = Flags(r.u8("Flags")?);
        let kind = flags.topic_id_type(MsgType::Unsubscribe)?;
        let msg_id = r.u16("MsgId")?;
        let topic = SubscribeTopic::read(kind, &mut r)?;
        r.finish()?;
        let msg = Self { msg_id, topic };
        msg.check()?;
        Ok(msg)
    }
}

impl Body for Unsubscribe {
    const MSG_TYPE: MsgType = MsgType::Unsubscribe;
    fn body_len(&self) -> usize {
        3 + self.topic.len()
    }
    fn put_body(&self, buf: &mut impl BufMut) {
        buf.put_u8(Flags::EMPTY.with_topic_id_type(self.topic.id_type()).0);
        buf.put_u16(self.msg_id);
        self.topic.put(buf);
    }
    fn check(&self) -> Result<(), Error> {
        if self.msg_id == 0 {
            return Err(Error::ZeroMsgId {
                message: MsgType::Unsubscribe,
            });
        }
        self.topic.check(MsgType::Unsubscribe)
    }
}

codec!(Unsubscribe);
