//! WILLTOPIC (5.4.7): the client's will topic, or, header only, no will at all.
//! Body: Flags, WillTopic — or nothing.

use bytes::{BufMut, Bytes};

use crate::body::{codec, Body};
use crate::header::Reader;
use crate::{Error, Flags, MsgType, PublishQoS, QoS, TopicName};

/// The content of a non-empty WILLTOPIC or WILLTOPICUPD.
///
/// Of the flags only QoS and Retain mean anything here; the others are ignored
/// on decode and written as zero. QoS −1 is refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct WillTopicData {
    /// QoS of the will message.
    pub qos: QoS,
    /// Retain flag of the will message.
    pub retain: bool,
    /// The will topic; never empty.
    pub topic: TopicName,
}

impl WillTopicData {
    /// Reads the body of a WILLTOPIC or WILLTOPICUPD: empty (no will) or
    /// Flags and a topic.
    pub(crate) fn read(body: Bytes, message: MsgType) -> Result<Option<Self>, Error> {
        if body.is_empty() {
            return Ok(None);
        }
        let mut r = Reader::new(body, message);
        let flags = Flags(r.u8("Flags")?);
        let qos = flags.qos(message)?;
        let topic = TopicName::read(r.rest(), message, "WillTopic")?;
        let data = Self {
            qos,
            retain: flags.retain(),
            topic,
        };
        data.check(message)?;
        Ok(Some(data))
    }

    /// A will topic must name a topic: an empty one is written as the
    /// header-only message instead, which means something else.
    pub(crate) fn check(&self, message: MsgType) -> Result<(), Error> {
        if self.topic.is_empty() {
            return Err(Error::EmptyField {
                message,
                field: "WillTopic",
            });
        }
        Ok(())
    }

    pub(crate) fn len(data: Option<&Self>) -> usize {
        data.map_or(0, |d| 1 + d.topic.len())
    }

    pub(crate) fn put(data: Option<&Self>, buf: &mut impl BufMut) {
        if let Some(d) = data {
            let flags = Flags::EMPTY
                .with_qos(PublishQoS::from(d.qos))
                .with_retain(d.retain);
            buf.put_u8(flags.0);
            buf.put_slice(d.topic.as_bytes());
        }
    }
}

/// WILLTOPIC: the client's will topic during connection setup. `None` is the
/// empty WILLTOPIC (header only), which deletes the stored will topic and message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct WillTopic(pub Option<WillTopicData>);

impl WillTopic {
    /// Decodes the body (everything after MsgType).
    pub fn decode(body: Bytes) -> Result<Self, Error> {
        WillTopicData::read(body, MsgType::WillTopic).map(Self)
    }
}

impl Body for WillTopic {
    const MSG_TYPE: MsgType = MsgType::WillTopic;
    fn body_len(&self) -> usize {
        WillTopicData::len(self.0.as_ref())
    }
    fn put_body(&self, buf: &mut impl BufMut) {
        WillTopicData::put(self.0.as_ref(), buf);
    }
    fn check(&self) -> Result<(), Error> {
        self.0
            .as_ref()
            .map_or(Ok(()), |d| d.check(MsgType::WillTopic))
    }
}

codec!(WillTopic);
