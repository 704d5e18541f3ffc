//! PINGREQ (5.4.19): keep-alive probe; with a client id, a sleeping client
//! waking up. Body: ClientId, optional.

use bytes::{BufMut, Bytes};

use crate::body::{codec, Body};
use crate::{ClientId, Error, MsgType};

/// PINGREQ: "are you alive?", or, with a client id, "I am awake, send what you
/// buffered for me".
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PingReq {
    /// The waking client's id. An empty id is the same as none on the wire:
    /// decode gives `None`, and `Some` of an empty id encodes as `None`.
    pub client_id: Option<ClientId>,
}

impl PingReq {
    /// Decodes the body (everything after MsgType).
    pub fn decode(body: Bytes) -> Result<Self, Error> {
        if body.is_empty() {
            return Ok(Self { client_id: None });
        }
        let id = ClientId::read(body, MsgType::PingReq, "ClientId")?;
        Ok(Self {
            client_id: Some(id),
        })
    }
}

impl Body for PingReq {
    const MSG_TYPE: MsgType = MsgType::PingReq;
    fn body_len(&self) -> usize {
        self.client_id.as_ref().map_or(0, ClientId::len)
    }
    fn put_body(&self, buf: &mut impl BufMut) {
        if let Some(id) = &self.client_id {
            buf.put_slice(id.as_bytes());
        }
    }
}

codec!(PingReq);
