//! Small validated types shared by the packets: [`QoS`], [`PacketId`],
//! [`Protocol`] and the `Bytes`-backed UTF-8 string [`MqttString`].

use core::fmt;
use core::num::NonZeroU16;

use bytes::Bytes;
use bytestring::ByteString;
use midge_topic::TopicError;

use crate::error::{DecodeError, Field};

/// Quality of service of a PUBLISH or a subscription.
///
/// The value 3 is reserved; it never becomes a `QoS` [MQTT-3.3.1-4].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(u8)]
pub enum QoS {
    /// QoS 0: delivered at most once, no acknowledgement.
    #[default]
    AtMostOnce = 0x00,
    /// QoS 1: delivered at least once, acknowledged by PUBACK.
    AtLeastOnce = 0x01,
    /// QoS 2: delivered exactly once, PUBREC / PUBREL / PUBCOMP handshake.
    ExactlyOnce = 0x02,
}

impl QoS {
    /// The QoS for a two-bit value, or `None` for the reserved value 3 or anything larger.
    #[inline]
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            0x00 => Some(Self::AtMostOnce),
            0x01 => Some(Self::AtLeastOnce),
            0x02 => Some(Self::ExactlyOnce),
            _ => None,
        }
    }

    /// The numeric value (0, 1 or 2).
    #[inline]
    pub const fn as_u8(self) -> u8 {
        self as u8
    }
}

impl TryFrom<u8> for QoS {
    type Error = u8;

    fn try_from(value: u8) -> Result<Self, u8> {
        Self::from_u8(value).ok_or(value)
    }
}

/// A packet identifier: never zero [MQTT-2.3.1-1].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PacketId(NonZeroU16);

impl PacketId {
    /// A packet identifier, or `None` for zero.
    #[inline]
    pub const fn new(value: u16) -> Option<Self> {
        match NonZeroU16::new(value) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// The numeric value (1..=65535).
    #[inline]
    pub const fn get(self) -> u16 {
        self.0.get()
    }
}

impl From<NonZeroU16> for PacketId {
    fn from(value: NonZeroU16) -> Self {
        Self(value)
    }
}

impl From<PacketId> for NonZeroU16 {
    fn from(value: PacketId) -> Self {
        value.0
    }
}

impl fmt::Display for PacketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The protocol revision a CONNECT asks for, as protocol name plus level.
///
/// The codec speaks both 3.1.1 and 3.1; the two share every packet layout, and
/// differ in a few flag rules that the decoder applies per [`Protocol`].
/// MQTT 5.0 will be a further variant, which is why the enum is non-exhaustive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Protocol {
    /// MQTT 3.1: protocol name `MQIsdp`, level 3.
    V3_1,
    /// MQTT 3.1.1: protocol name `MQTT`, level 4.
    #[default]
    V3_1_1,
}

impl Protocol {
    /// The protocol name carried in CONNECT.
    pub const fn name(self) -> &'static str {
        match self {
            Self::V3_1 => "MQIsdp",
            Self::V3_1_1 => "MQTT",
        }
    }

    /// The protocol level byte carried in CONNECT.
    pub const fn level(self) -> u8 {
        match self {
            Self::V3_1 => 0x03,
            Self::V3_1_1 => 0x04,
        }
    }
}

/// A UTF-8 string as MQTT carries it: at most 65,535 bytes, well-formed UTF-8,
/// no U+0000 [MQTT-1.5.3-1] [MQTT-1.5.3-2], backed by [`Bytes`] so that a
/// decoded string is a slice of the received frame rather than a copy.
///
/// The UTF-8 check is done once, when the value is built; [`MqttString::as_str`]
/// is free afterwards. A U+FEFF (byte order mark) is kept as it is, never
/// stripped [MQTT-1.5.3-3].
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MqttString(ByteString);

/// Largest encodable string or binary field: the length prefix is two bytes.
pub const MAX_STRING_LEN: usize = 0xFFFF;

impl MqttString {
    /// The empty string.
    pub const fn empty() -> Self {
        Self(ByteString::new())
    }

    /// Validates `bytes` as an MQTT UTF-8 string without copying it.
    ///
    /// # Errors
    /// [`DecodeError::StringTooLong`], [`DecodeError::InvalidUtf8`] or
    /// [`DecodeError::NullCharacter`], each naming `field`.
    #[inline]
    pub fn from_bytes(bytes: Bytes, field: Field) -> Result<Self, DecodeError> {
        let s = utf8(bytes, field)?;
        // [MQTT-1.5.3-2]: in UTF-8 the zero byte only ever encodes U+0000.
        if s.as_bytes().contains(&0x00) {
            return Err(DecodeError::NullCharacter { field });
        }
        Ok(Self(s))
    }

    /// Copies `s` into a new `MqttString`.
    ///
    /// # Errors
    /// As [`MqttString::from_bytes`], with [`Field::Value`] as the field.
    pub fn new(s: &str) -> Result<Self, DecodeError> {
        Self::from_bytes(Bytes::copy_from_slice(s.as_bytes()), Field::Value)
    }

    /// A string from a `&'static str`, without copying.
    ///
    /// # Errors
    /// As [`MqttString::from_bytes`], with [`Field::Value`] as the field.
    pub fn from_static(s: &'static str) -> Result<Self, DecodeError> {
        Self::from_bytes(Bytes::from_static(s.as_bytes()), Field::Value)
    }

    /// The string.
    #[inline]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The encoded bytes (without the length prefix).
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The underlying `Bytes`.
    #[inline]
    pub fn into_bytes(self) -> Bytes {
        self.0.into_bytes()
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the string is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// UTF-8 and length checks shared by every string field. `ByteString` runs
/// `core::str::from_utf8`, which refuses overlong forms and encoded surrogates
/// (U+D800..U+DFFF), as [MQTT-1.5.3-1] asks.
#[inline]
fn utf8(bytes: Bytes, field: Field) -> Result<ByteString, DecodeError> {
    if bytes.len() > MAX_STRING_LEN {
        return Err(DecodeError::StringTooLong { field });
    }
    ByteString::try_from(bytes).map_err(|_| DecodeError::InvalidUtf8 { field })
}

/// The topic-name rules for a string already known to be UTF-8.
#[inline]
pub(crate) fn check_topic_name(s: &str, field: Field) -> Result<(), DecodeError> {
    midge_topic::validate_topic_name(s).map_err(|source| topic_error(source, field))
}

/// A topic-rule failure as a decode error; U+0000 is reported like in any
/// other string [MQTT-1.5.3-2].
fn topic_error(source: TopicError, field: Field) -> DecodeError {
    match source {
        TopicError::NullCharacter => DecodeError::NullCharacter { field },
        source => DecodeError::InvalidTopicName { field, source },
    }
}

macro_rules! string_like {
    ($name:ident) => {
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self.as_str(), f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl TryFrom<&str> for $name {
            type Error = DecodeError;

            fn try_from(value: &str) -> Result<Self, DecodeError> {
                Self::new(value)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

string_like!(MqttString);
string_like!(Topic);
string_like!(Filter);

/// Accessors of the two `MqttString` wrappers.
macro_rules! wrapper_accessors {
    ($name:ident, $what:literal) => {
        impl $name {
            #[doc = concat!("The ", $what, ".")]
            #[inline]
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }

            /// The encoded bytes.
            #[inline]
            pub fn as_bytes(&self) -> &[u8] {
                self.0.as_bytes()
            }

            #[doc = concat!("The string, without the ", $what, " guarantee.")]
            #[inline]
            pub fn into_inner(self) -> MqttString {
                self.0
            }

            /// Length in bytes.
            #[inline]
            pub fn len(&self) -> usize {
                self.0.len()
            }

            #[doc = concat!("Always false: a ", $what, " has at least one character.")]
            #[inline]
            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }
        }
    };
}

wrapper_accessors!(Topic, "topic name");
wrapper_accessors!(Filter, "topic filter");

/// A topic name as PUBLISH and the will carry it: an [`MqttString`] that is also
/// non-empty and free of wildcards [MQTT-3.3.2-2] [MQTT-4.7.3-1], checked once
/// when the value is built (by `midge-topic`, the one definition of the rules).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Topic(MqttString);

impl Topic {
    /// Validates `bytes` as a topic name without copying it.
    ///
    /// # Errors
    /// The string errors of [`MqttString::from_bytes`] (except NUL, which the
    /// topic rules report) and [`DecodeError::InvalidTopicName`].
    #[inline]
    pub fn from_bytes(bytes: Bytes, field: Field) -> Result<Self, DecodeError> {
        let s = utf8(bytes, field)?;
        // The topic rules include the U+0000 check [MQTT-4.7.3-2].
        check_topic_name(&s, field)?;
        Ok(Self(MqttString(s)))
    }

    /// Copies `s` into a new topic name.
    ///
    /// # Errors
    /// As [`Topic::from_bytes`].
    pub fn new(s: &str) -> Result<Self, DecodeError> {
        Self::from_bytes(Bytes::copy_from_slice(s.as_bytes()), Field::TopicName)
    }

    /// A topic name from a `&'static str`, without copying.
    ///
    /// # Errors
    /// As [`Topic::from_bytes`].
    pub fn from_static(s: &'static str) -> Result<Self, DecodeError> {
        Self::from_bytes(Bytes::from_static(s.as_bytes()), Field::TopicName)
    }

    /// Copies a `&str` that has passed [`check_topic_name`] already.
    pub(crate) fn from_checked(s: &str) -> Self {
        Self(MqttString(ByteString::from(s)))
    }

    /// A topic name from an already checked string.
    ///
    /// # Errors
    /// [`DecodeError::InvalidTopicName`].
    pub fn from_mqtt_string(s: MqttString) -> Result<Self, DecodeError> {
        check_topic_name(s.as_str(), Field::TopicName)?;
        Ok(Self(s))
    }
}

/// A topic filter as SUBSCRIBE and UNSUBSCRIBE carry it: an [`MqttString`] that
/// also follows the wildcard rules [MQTT-4.7.1-2] [MQTT-4.7.1-3] and is not
/// empty [MQTT-4.7.3-1], checked once when the value is built.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Filter(MqttString);

impl Filter {
    /// Validates `bytes` as a topic filter without copying it.
    ///
    /// # Errors
    /// The string errors of [`MqttString::from_bytes`] (except NUL, which the
    /// filter rules report) and [`DecodeError::InvalidTopicFilter`].
    #[inline]
    pub fn from_bytes(bytes: Bytes) -> Result<Self, DecodeError> {
        let s = utf8(bytes, Field::TopicFilter)?;
        midge_topic::validate_topic_filter(&s).map_err(|source| match source {
            TopicError::NullCharacter => DecodeError::NullCharacter {
                field: Field::TopicFilter,
            },
            other => DecodeError::InvalidTopicFilter(other),
        })?;
        Ok(Self(MqttString(s)))
    }

    /// Copies `s` into a new topic filter.
    ///
    /// # Errors
    /// As [`Filter::from_bytes`].
    pub fn new(s: &str) -> Result<Self, DecodeError> {
        Self::from_bytes(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// A topic filter from a `&'static str`, without copying.
    ///
    /// # Errors
    /// As [`Filter::from_bytes`].
    pub fn from_static(s: &'static str) -> Result<Self, DecodeError> {
        Self::from_bytes(Bytes::from_static(s.as_bytes()))
    }
}
