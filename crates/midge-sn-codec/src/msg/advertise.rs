//! ADVERTISE (5.4.1): a gateway announces itself. Body: GwId, Duration.

use bytes::{BufMut, Bytes};

use crate::body::{codec, Body};
use crate::header::Reader;
use crate::{Error, MsgType};

/// ADVERTISE: a gateway's periodic broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Advertise {
    /// The advertising gateway.
    pub gw_id: u8,
    /// Seconds until this gateway's next ADVERTISE.
    pub duration: u16,
}

impl Advertise {
    /// Decodes the body (everything after MsgType).
    pub fn decode(body: Bytes) -> Result<Self, Error> {
        let mut r = Reader::new(body, MsgType::Advertise);
        let gw_id = r.u8("GwId")?;
        let duration = r.u16("Duration")?;
        r.finish()?;
        Ok(Self { gw_id, duration })
    }
}

impl Body for Advertise {
    const MSG_TYPE: MsgType = MsgType::Advertise;
    fn body_len(&self) -> usize {
        3
    }
    fn put_body(&self, buf: &mut impl BufMut) {
        buf.put_u8(self.gw_id);
        buf.put_u16(self.duration);
    }
}

codec!(Advertise);
