//! CONNECT (5.4.4): a client opens a connection. Body: Flags, ProtocolId,
//! Duration, ClientId.

use bytes::{BufMut, Bytes};

use crate::body::{codec, Body};
use crate::header::Reader;
use crate::{ClientId, Error, Flags, MsgType};

/// The only ProtocolId MQTT-SN 1.2 defines.
pub const PROTOCOL_ID: u8 = 0x01;

/// CONNECT: a client asks to connect.
///
/// Of the flags only Will and CleanSession mean anything here; the others are
/// ignored on decode and written as zero.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Connect {
    /// The client wants to be prompted for will topic and will message.
    pub will: bool,
    /// Drop subscriptions and will data left from an earlier session.
    pub clean_session: bool,
    /// Keep-alive period in seconds.
    pub duration: u16,
    /// The client id (may be empty on the wire; the gateway decides).
    pub client_id: ClientId,
}

impl Connect {
    /// Decodes the body (everything after MsgType).
    pub fn decode(body: Bytes) -> Result<Self, Error> {
        let mut r = Reader::new(body, MsgType::Connect);
        let flags = Flags(r.u8("Flags")?);
        let protocol_id = r.u8("ProtocolId")?;
        if protocol_id != PROTOCOL_ID {
            return Err(Error::UnsupportedProtocolId(protocol_id));
        }
        let duration = r.u16("Duration")?;
        let client_id = ClientId::read(r.rest(), MsgType::Connect, "ClientId")?;
        Ok(Self {
            will: flags.will(),
            clean_session: flags.clean_session(),
            duration,
            client_id,
        })
    }
}

impl Body for Connect {
    const MSG_TYPE: MsgType = MsgType::Connect;
    fn body_len(&self) -> usize {
        4 + self.client_id.len()
    }
    fn put_body(&self, buf: &mut impl BufMut) {
        let flags = Flags::EMPTY
            .with_will(self.will)
            .with_clean_session(self.clean_session);
        let [d0, d1] = self.duration.to_be_bytes();
        buf.put_slice(&[flags.0, PROTOCOL_ID, d0, d1]);
        buf.put_slice(self.client_id.as_bytes());
    }
}

codec!(Connect);
