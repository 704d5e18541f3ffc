//! SUBSCRIBE (5.4.15): a client subscribes to a topic. Body: Flags, MsgId,
//! TopicName or TopicId.

use bytes::{BufMut, Bytes};

use crate::body::{codec, Body};
use crate::header::Reader;
use crate::{Error, Flags, MsgType, PublishQoS, QoS, SubscribeTopic};

/// SUBSCRIBE: a client asks for a topic name (or filter), a pre-defined topic
/// id, or a short topic name.
///
/// Of the flags DUP, QoS and TopicIdType are used; the others are ignored on
/// decode and written as zero. QoS −1 and TopicIdType 0b11 are refused, and so
/// is MsgId 0x0000 (the SUBACK must be matched to this request).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subscribe {
    /// Retransmission of an earlier SUBSCRIBE.
    pub dup: bool,
    /// The requested QoS.
    pub qos: QoS,
    /// Matches the SUBACK; never 0x0000.
    pub msg_id: u16,
    /// What to subscribe to.
    pub topic: SubscribeTopic,
}

impl Subscribe {
    /// Decodes the body (everything after MsgType).
    pub fn decode(body: Bytes) -> Result<Self, Error> {
        let mut r = Reader::new(body, MsgType::Subscribe);
        let flags = Flags(r.u8("Flags")?);
        let qos = flags.qos(MsgType::Subscribe)?;
        let kind = flags.topic_id_type(MsgType::Subscribe)?;
        let msg_id = r.u16("MsgId")?;
        let topic = SubscribeTopic::read(kind, &mut r)?;
        r.finish()?;
        let msg = Self {
            dup: flags.dup(),
            qos,
            msg_id,
            topic,
        };
        msg.check()?;
        Ok(msg)
    }
}

impl Body for Subscribe {
    const MSG_TYPE: MsgType = MsgType::Subscribe;
    fn body_len(&self) -> usize {
        3 + self.topic.len()
    }
    fn put_body(&self, buf: &mut impl BufMut) {
        let flags = Flags::EMPTY
            .with_dup(self.dup)
            .with_qos(PublishQoS::from(self.qos))
            .with_topic_id_type(self.topic.id_type());
        buf.put_u8(flags.0);
        buf.put_u16(self.msg_id);
        self.topic.put(buf);
    }
    fn check(&self) -> Result<(), Error> {
        if self.msg_id == 0 {
            return Err(Error::ZeroMsgId {
                message: MsgType::Subscribe,
            });
        }
        self.topic.check(MsgType::Subscribe)
    }
}

codec!(Subscribe);
