//! WILLTOPICUPD (5.4.22): a connected client changes its will topic, or,
//! header only, deletes its will. Body: Flags, WillTopic — or nothing.

use bytes::{BufMut, Bytes};

use crate::body::{codec, Body};
use crate::{Error, MsgType, WillTopicData};

/// WILLTOPICUPD: a new will topic; `None` is the empty message, which deletes
/// both the will topic and the will message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct WillTopicUpd(pub Option<WillTopicData>);

impl WillTopicUpd {
    /// Decodes the body (everything after MsgType).
    pub fn decode(body: Bytes) -> Result<Self, Error> {
        WillTopicData::read(body, MsgType::WillTopicUpd).map(Self)
    }
}

impl Body for WillTopicUpd {
    const MSG_TYPE: MsgType = MsgType::WillTopicUpd;
    fn body_len(&self) -> usize {
        WillTopicData::len(self.0.as_ref())
    }
    fn put_body(&self, buf: &mut impl BufMut) {
        WillTopicData::put(self.0.as_ref(), buf);
    }
    fn check(&self) -> Result<(), Error> {
        self.0
            .as_ref()
            .map_or(Ok(()), |d| d.check(MsgType::WillTopicUpd))
    }
}

codec!(WillTopicUpd);
