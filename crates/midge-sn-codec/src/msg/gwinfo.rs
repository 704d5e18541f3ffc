//! GWINFO (5.4.3): the answer to SEARCHGW. Body: GwId, then GwAdd when a client
//! answers on a gateway's behalf.

use bytes::{BufMut, Bytes};

use crate::body::{codec, Body};
use crate::header::Reader;
use crate::{Error, MsgType};

/// GWINFO: names a gateway, and its address when sent by a client.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct GwInfo {
    /// The gateway.
    pub gw_id: u8,
    /// The gateway's network address, opaque to the codec. Empty when a gateway
    /// answers for itself (the field is then absent on the wire).
    pub gw_add: Bytes,
}

impl GwInfo {
    /// Decodes the body (everything after MsgType).
    pub fn decode(body: Bytes) -> Result<Self, Error> {
        let mut r = Reader::new(body, MsgType::GwInfo);
        let gw_id = r.u8("GwId")?;
        Ok(Self {
            gw_id,
            gw_add: r.rest(),
        })
    }
}

impl Body for GwInfo {
    const MSG_TYPE: MsgType = MsgType::GwInfo;
    fn body_len(&self) -> usize {
        1 + self.gw_add.len()
    }
    fn put_body(&self, buf: &mut impl BufMut) {
        buf.put_u8(self.gw_id);
        buf.put_slice(&self.gw_add);
    }
}

codec!(GwInfo);
