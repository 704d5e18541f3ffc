//! SEARCHGW (5.4.2): a client looks for a gateway. Body: Radius.

use bytes::{BufMut, Bytes};

use crate::body::{codec, Body};
use crate::header::Reader;
use crate::{Error, MsgType};

/// SEARCHGW: a client's broadcast search for gateways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SearchGw {
    /// Broadcast radius in hops; 0x00 means the whole network.
    pub radius: u8,
}

impl SearchGw {
    /// Decodes the body (everything after MsgType).
    pub fn decode(body: Bytes) -> Result<Self, Error> {
        let mut r = Reader::new(body, MsgType::SearchGw);
        let radius = r.u8("Radius")?;
        r.finish()?;
        Ok(Self { radius })
    }
}

impl Body for SearchGw {
    const MSG_TYPE: MsgType = MsgType::SearchGw;
    fn body_len(&self) -> usize {
        1
    }
    fn put_body(&self, buf: &mut impl BufMut) {
        buf.put_u8(self.radius);
    }
}

codec!(SearchGw);
