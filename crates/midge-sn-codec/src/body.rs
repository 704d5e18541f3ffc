//! What every message type shares: the body trait behind `encode` and
//! `encoded_len`, and macros for the families of messages whose bodies look alike.

use bytes::BufMut;

use crate::header::{self, MsgType};
use crate::Error;

/// The part of a message after MsgType, as every message type writes it.
pub(crate) trait Body {
    /// The MsgType octet of this message.
    const MSG_TYPE: MsgType;
    /// Octets after MsgType.
    fn body_len(&self) -> usize;
    /// Writes the octets after MsgType; `check` has passed and room is reserved.
    fn put_body(&self, buf: &mut impl BufMut);
    /// Rules the type system does not enforce, checked before encoding and
    /// after decoding, so that whatever encodes also decodes.
    fn check(&self) -> Result<(), Error> {
        Ok(())
    }
}

/// Encodes header and body after checking the message, the length and the room.
pub(crate) fn encode<T: Body>(msg: &T, buf: &mut impl BufMut) -> Result<(), Error> {
    msg.check()?;
    let body_len = msg.body_len();
    header::put(buf, T::MSG_TYPE, body_len, header::total_len(body_len))?;
    msg.put_body(buf);
    Ok(())
}

/// Adds the public `encode` and `encoded_len` to a message type implementing `Body`.
macro_rules! codec {
    ($ty:ident) => {
        impl $ty {
            /// Length of the whole encoded message, header included, with the
            /// Length form that `encode` chooses.
            pub fn encoded_len(&self) -> usize {
                $crate::header::total_len($crate::body::Body::body_len(self))
            }

            /// Encodes the whole message, header included, into `buf`, choosing
            /// the one-octet Length form whenever the message fits in it.
            pub fn encode(&self, buf: &mut impl ::bytes::BufMut) -> Result<(), $crate::Error> {
                $crate::body::encode(self, buf)
            }
        }
    };
}

/// A message with no body at all.
macro_rules! empty_message {
    ($(#[$doc:meta])* $ty:ident, $msg_type:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $ty;

        impl $ty {
            /// Decodes the body (everything after MsgType), which must be empty.
            pub fn decode(body: ::bytes::Bytes) -> Result<Self, $crate::Error> {
                $crate::header::Reader::new(body, $crate::MsgType::$msg_type).finish()?;
                Ok(Self)
            }
        }

        impl $crate::body::Body for $ty {
            const MSG_TYPE: $crate::MsgType = $crate::MsgType::$msg_type;
            fn body_len(&self) -> usize {
                0
            }
            fn put_body(&self, _buf: &mut impl ::bytes::BufMut) {}
        }

        $crate::body::codec!($ty);
    };
}

/// A message whose body is a MsgId and nothing else.
macro_rules! msg_id_message {
    ($(#[$doc:meta])* $ty:ident, $msg_type:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $ty {
            /// The MsgId of the exchange this message belongs to. Any value,
            /// 0x0000 included, is accepted: an acknowledgement echoes its request.
            pub msg_id: u16,
        }

        impl $ty {
            /// Decodes the body (everything after MsgType).
            pub fn decode(body: ::bytes::Bytes) -> Result<Self, $crate::Error> {
                let mut r = $crate::header::Reader::new(body, $crate::MsgType::$msg_type);
                let msg_id = r.u16("MsgId")?;
                r.finish()?;
                Ok(Self { msg_id })
            }
        }

        impl $crate::body::Body for $ty {
            const MSG_TYPE: $crate::MsgType = $crate::MsgType::$msg_type;
            fn body_len(&self) -> usize {
                2
            }
            fn put_body(&self, buf: &mut impl ::bytes::BufMut) {
                buf.put_u16(self.msg_id);
            }
        }

        $crate::body::codec!($ty);
    };
}

/// A message whose body is a ReturnCode and nothing else.
macro_rules! return_code_message {
    ($(#[$doc:meta])* $ty:ident, $msg_type:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $ty {
            /// Accepted, or why not.
            pub return_code: $crate::ReturnCode,
        }

        impl $ty {
            /// Decodes the body (everything after MsgType).
            pub fn decode(body: ::bytes::Bytes) -> Result<Self, $crate::Error> {
                let mut r = $crate::header::Reader::new(body, $crate::MsgType::$msg_type);
                let code = r.u8("ReturnCode")?;
                r.finish()?;
                Ok(Self {
                    return_code: $crate::ReturnCode::from_u8(code, $crate::MsgType::$msg_type)?,
                })
            }
        }

        impl $crate::body::Body for $ty {
            const MSG_TYPE: $crate::MsgType = $crate::MsgType::$msg_type;
            fn body_len(&self) -> usize {
                1
            }
            fn put_body(&self, buf: &mut impl ::bytes::BufMut) {
                buf.put_u8(self.return_code.to_u8());
            }
        }

        $crate::body::codec!($ty);
    };
}

/// A message whose body is TopicId, MsgId and ReturnCode: PUBACK and REGACK.
/// `$topic_id_doc` documents what the TopicId means in that message.
macro_rules! topic_ack_message {
    ($(#[$doc:meta])* $ty:ident, $msg_type:ident, $topic_id_doc:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $ty {
            #[doc = $topic_id_doc]
            pub topic_id: $crate::TopicId,
            /// Echoes the request's MsgId; any value, 0x0000 included.
            pub msg_id: u16,
            /// Accepted, or why not.
            pub return_code: $crate::ReturnCode,
        }

        impl $ty {
            /// Decodes the body (everything after MsgType).
            pub fn decode(body: ::bytes::Bytes) -> Result<Self, $crate::Error> {
                let mut r = $crate::header::Reader::new(body, $crate::MsgType::$msg_type);
                let topic_id = $crate::TopicId(r.u16("TopicId")?);
                let msg_id = r.u16("MsgId")?;
                let code = r.u8("ReturnCode")?;
                r.finish()?;
                Ok(Self {
                    topic_id,
                    msg_id,
                    return_code: $crate::ReturnCode::from_u8(code, $crate::MsgType::$msg_type)?,
                })
            }
        }

        impl $crate::body::Body for $ty {
            const MSG_TYPE: $crate::MsgType = $crate::MsgType::$msg_type;
            fn body_len(&self) -> usize {
                5
            }
            fn put_body(&self, buf: &mut impl ::bytes::BufMut) {
                buf.put_u16(self.topic_id.0);
                buf.put_u16(self.msg_id);
                buf.put_u8(self.return_code.to_u8());
            }
        }

        $crate::body::codec!($ty);
    };
}

pub(crate) use {codec, empty_message, msg_id_message, return_code_message, topic_ack_message};
