//! DISCONNECT (5.4.21): closes a connection; with a duration, a client going to
//! sleep. Body: Duration, optional.

use bytes::{BufMut, Bytes};

use crate::body::{codec, Body};
use crate::header::Reader;
use crate::{Error, MsgType};

/// DISCONNECT: close the connection, or, with a duration, sleep for that long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Disconnect {
    /// Sleep duration in seconds, when the client is going to sleep.
    pub duration: Option<u16>,
}

impl Disconnect {
    /// Decodes the body (everything after MsgType): nothing, or exactly two octets.
    pub fn decode(body: Bytes) -> Result<Self, Error> {
        let mut r = Reader::new(body, MsgType::Disconnect);
        if r.is_empty() {
            return Ok(Self { duration: None });
        }
        let duration = r.u16("Duration")?;
        r.finish()?;
        Ok(Self {
            duration: Some(duration),
        })
    }
}

impl Body for Disconnect {
    const MSG_TYPE: MsgType = MsgType::Disconnect;
    fn body_len(&self) -> usize {
        if self.duration.is_some() {
            2
        } else {
            0
        }
    }
    fn put_body(&self, buf: &mut impl BufMut) {
        if let Some(duration) = self.duration {
            buf.put_u16(duration);
        }
    }
}

codec!(Disconnect);
