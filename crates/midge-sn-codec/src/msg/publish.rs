//! PUBLISH (5.4.12): application data for a topic. Body: Flags, TopicId, MsgId,
//! Data.

use bytes::{BufMut, Bytes};

use crate::body::{codec, Body};
use crate::header::Reader;
use crate::{Error, Flags, MsgType, PublishQoS, Topic};

/// PUBLISH: data for a topic, in either direction.
///
/// Of the flags DUP, QoS, Retain and TopicIdType are used; Will and
/// CleanSession are ignored on decode and written as zero. Rules checked on
/// both decode and encode:
/// - QoS −1 only with a pre-defined topic id or a short topic name (6.8);
/// - QoS 1 and 2 need a non-zero MsgId, which identifies the exchange.
///
/// With QoS 0 and −1 the MsgId is meaningless (the sender should write
/// 0x0000), and any value is kept as received.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Publish {
    /// Retransmission of an earlier PUBLISH.
    pub dup: bool,
    /// QoS, including −1.
    pub qos: PublishQoS,
    /// Retain.
    pub retain: bool,
    /// The topic, as id, pre-defined id or short name.
    pub topic: Topic,
    /// Identifies a QoS 1 or 2 exchange.
    pub msg_id: u16,
    /// The payload: a slice of the received datagram.
    pub data: Bytes,
}

impl Publish {
    /// Decodes the body (everything after MsgType).
    pub fn decode(body: Bytes) -> Result<Self, Error> {
        let mut r = Reader::new(body, MsgType::Publish);
        let flags = Flags(r.u8("Flags")?);
        let kind = flags.topic_id_type(MsgType::Publish)?;
        let raw_topic = r.u16("TopicId")?;
        let msg_id = r.u16("MsgId")?;
        let msg = Self {
            dup: flags.dup(),
            qos: flags.publish_qos(),
            retain: flags.retain(),
            topic: Topic::from_parts(kind, raw_topic),
            msg_id,
            data: r.rest(),
        };
        msg.check()?;
        Ok(msg)
    }

    /// The Flags octet this message is written with.
    pub const fn flags(&self) -> Flags {
        Flags::EMPTY
            .with_dup(self.dup)
            .with_qos(self.qos)
            .with_retain(self.retain)
            .with_topic_id_type(self.topic.id_type())
    }
}

impl Body for Publish {
    const MSG_TYPE: MsgType = MsgType::Publish;
    fn body_len(&self) -> usize {
        5 + self.data.len()
    }
    fn put_body(&self, buf: &mut impl BufMut) {
        let [t0, t1] = self.topic.to_bytes();
        let [m0, m1] = self.msg_id.to_be_bytes();
        buf.put_slice(&[self.flags().0, t0, t1, m0, m1]);
        buf.put_slice(&self.data);
    }
    fn check(&self) -> Result<(), Error> {
        if self.qos == PublishQoS::MinusOne && matches!(self.topic, Topic::TopicId(_)) {
            return Err(Error::QosMinusOneWithNormalTopicId);
        }
        if self.qos.is_acknowledged() && self.msg_id == 0 {
            return Err(Error::ZeroMsgId {
                message: MsgType::Publish,
            });
        }
        Ok(())
    }
}

codec!(Publish);
