//! REGISTER (5.4.10): binds a topic name to a topic id. Body: TopicId, MsgId,
//! TopicName.

use bytes::{BufMut, Bytes};

use crate::body::{codec, Body};
use crate::header::Reader;
use crate::{Error, MsgType, TopicId, TopicName};

/// REGISTER: a client asks for a topic id for a name (TopicId 0x0000), or a
/// gateway tells a client which id it will use for a name.
///
/// MsgId 0x0000 is refused: the REGACK must be matched to this request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Register {
    /// The assigned id when a gateway sends it; 0x0000 from a client.
    pub topic_id: TopicId,
    /// Matches the REGACK; never 0x0000.
    pub msg_id: u16,
    /// The topic name; never empty.
    pub topic_name: TopicName,
}

impl Register {
    /// Decodes the body (everything after MsgType).
    pub fn decode(body: Bytes) -> Result<Self, Error> {
        let mut r = Reader::new(body, MsgType::Register);
        let topic_id = TopicId(r.u16("TopicId")?);
        let msg_id = r.u16("MsgId")?;
        let topic_name = TopicName::read(r.rest(), MsgType::Register, "TopicName")?;
        let msg = Self {
            topic_id,
            msg_id,
            topic_name,
        };
        msg.check()?;
        Ok(msg)
    }
}

impl Body for Register {
    const MSG_TYPE: MsgType = MsgType::Register;
    fn body_len(&self) -> usize {
        4 + self.topic_name.len()
    }
    fn put_body(&self, buf: &mut impl BufMut) {
        let [t0, t1] = self.topic_id.0.to_be_bytes();
        let [m0, m1] = self.msg_id.to_be_bytes();
        buf.put_slice(&[t0, t1, m0, m1]);
        buf.put_slice(self.topic_name.as_bytes());
    }
    fn check(&self) -> Result<(), Error> {
        if self.msg_id == 0 {
            return Err(Error::ZeroMsgId {
                message: MsgType::Register,
            });
        }
        if self.topic_name.is_empty() {
            return Err(Error::EmptyField {
                message: MsgType::Register,
                field: "TopicName",
            });
        }
        Ok(())
    }
}

codec!(Register);
