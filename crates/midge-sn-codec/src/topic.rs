//! Topic forms and the text fields: topic ids, short topic names, topic names
//! and client ids.

use alloc::string::String;
use bytes::{BufMut, Bytes};

use crate::flags::TopicIdType;
use crate::header::Reader;
use crate::Error;

/// A two-octet topic id, normal or pre-defined.
///
/// 0x0000 and 0xFFFF are reserved for ordinary use, yet 0x0000 appears on the
/// wire (a client's REGISTER, the SUBACK of a wildcard subscription), so every
/// value is representable; [`TopicId::is_reserved`] tells the two apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TopicId(pub u16);

impl TopicId {
    /// The "no topic id" value 0x0000.
    pub const NONE: Self = Self(0x0000);

    /// Whether this is 0x0000 or 0xFFFF, which must not name a topic.
    pub const fn is_reserved(self) -> bool {
        matches!(self.0, 0x0000 | 0xFFFF)
    }
}

/// The topic of a PUBLISH: what its two-octet TopicId field stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// A topic id obtained by registration (TopicIdType 0b00).
    TopicId(TopicId),
    /// A topic id both sides know in advance (TopicIdType 0b01).
    Predefined(TopicId),
    /// A two-character topic name carried in place of an id (TopicIdType 0b10).
    Short([u8; 2]),
}

impl Topic {
    /// The TopicIdType flag value for this form.
    pub const fn id_type(&self) -> TopicIdType {
        match self {
            Self::TopicId(_) => TopicIdType::Normal,
            Self::Predefined(_) => TopicIdType::Predefined,
            Self::Short(_) => TopicIdType::Short,
        }
    }

    /// The two octets written in the TopicId field.
    pub const fn to_bytes(&self) -> [u8; 2] {
        match self {
            Self::TopicId(id) | Self::Predefined(id) => id.0.to_be_bytes(),
            Self::Short(name) => *name,
        }
    }

    pub(crate) const fn from_parts(kind: TopicIdType, raw: u16) -> Self {
        match kind {
            TopicIdType::Normal => Self::TopicId(TopicId(raw)),
            TopicIdType::Predefined => Self::Predefined(TopicId(raw)),
            TopicIdType::Short => Self::Short(raw.to_be_bytes()),
        }
    }
}

/// The topic of a SUBSCRIBE or UNSUBSCRIBE: a name (possibly with wildcards),
/// a pre-defined id, or a short name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SubscribeTopic {
    /// A topic name or filter (TopicIdType 0b00), never empty.
    Name(TopicName),
    /// A pre-defined topic id (TopicIdType 0b01).
    Predefined(TopicId),
    /// A short topic name (TopicIdType 0b10).
    Short([u8; 2]),
}

impl SubscribeTopic {
    /// The TopicIdType flag value for this form.
    pub const fn id_type(&self) -> TopicIdType {
        match self {
            Self::Name(_) => TopicIdType::Normal,
            Self::Predefined(_) => TopicIdType::Predefined,
            Self::Short(_) => TopicIdType::Short,
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Name(name) => name.len(),
            Self::Predefined(_) | Self::Short(_) => 2,
        }
    }

    pub(crate) fn put(&self, buf: &mut impl BufMut) {
        match self {
            Self::Name(name) => buf.put_slice(name.as_bytes()),
            Self::Predefined(id) => buf.put_u16(id.0),
            Self::Short(short) => buf.put_slice(short),
        }
    }

    pub(crate) fn check(&self, message: crate::MsgType) -> Result<(), Error> {
        match self {
            Self::Name(name) if name.is_empty() => Err(Error::EmptyField {
                message,
                field: "TopicName",
            }),
            _ => Ok(()),
        }
    }

    /// Reads the field that ends a SUBSCRIBE or UNSUBSCRIBE: a name takes the
    /// rest of the message, an id or short name exactly two octets.
    pub(crate) fn read(kind: TopicIdType, r: &mut Reader) -> Result<Self, Error> {
        let topic = match kind {
            TopicIdType::Normal => {
                let name = TopicName::read(r.rest(), r.message(), "TopicName")?;
                Self::Name(name)
            }
            TopicIdType::Predefined => Self::Predefined(TopicId(r.u16("TopicId")?)),
            TopicIdType::Short => Self::Short(r.u16("TopicId")?.to_be_bytes()),
        };
        topic.check(r.message())?;
        Ok(topic)
    }
}

macro_rules! utf8_bytes {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(Bytes);

        impl $name {
            /// Wraps `bytes` after checking that they are UTF-8.
            pub fn new(bytes: Bytes) -> Result<Self, core::str::Utf8Error> {
                core::str::from_utf8(&bytes)?;
                Ok(Self(bytes))
            }

            /// Wraps a static string, without copying.
            pub const fn from_static(text: &'static str) -> Self {
                Self(Bytes::from_static(text.as_bytes()))
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                // The bytes were checked to be UTF-8 when this value was built,
                // and `Bytes` is immutable, so the fallback is never taken.
                core::str::from_utf8(&self.0).unwrap_or_default()
            }

            /// The encoded octets.
            pub fn as_bytes(&self) -> &[u8] {
                &self.0
            }

            /// The underlying buffer.
            pub fn into_bytes(self) -> Bytes {
                self.0
            }

            /// Length in octets.
            pub fn len(&self) -> usize {
                self.0.len()
            }

            /// Whether there is no octet.
            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }

            pub(crate) fn read(
                bytes: Bytes,
                message: crate::MsgType,
                field: &'static str,
            ) -> Result<Self, Error> {
                Self::new(bytes).map_err(|_| Error::InvalidUtf8 { message, field })
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                Self(Bytes::from(text))
            }
        }

        impl From<&'static str> for $name {
            fn from(text: &'static str) -> Self {
                Self::from_static(text)
            }
        }

        impl TryFrom<Bytes> for $name {
            type Error = core::str::Utf8Error;
            fn try_from(bytes: Bytes) -> Result<Self, Self::Error> {
                Self::new(bytes)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }
    };
}

utf8_bytes! {
    /// A topic name or topic filter: UTF-8, as the MQTT topic it maps to must be.
    /// A slice of the received datagram, not a copy.
    ///
    /// The codec checks the encoding only; wildcard placement and the other topic
    /// rules belong to `midge-topic`.
    TopicName
}

utf8_bytes! {
    /// A client id: UTF-8, as the MQTT client id it maps to must be. A slice of
    /// the received datagram, not a copy. The codec does not enforce the 1–23
    /// character range: that is the gateway's policy, as it is the server's in MQTT.
    ClientId
}
