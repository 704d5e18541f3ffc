//! The Flags octet and the typed values it carries.
//!
//! Bit layout: DUP (bit 7), QoS (bits 6–5), Retain (bit 4), Will (bit 3),
//! CleanSession (bit 2), TopicIdType (bits 1–0). Each message uses only some of
//! these; the bits a message does not use are ignored on decode and written as
//! zero on encode.

use crate::{Error, MsgType};

const DUP: u8 = 0x80;
const QOS_MASK: u8 = 0x60;
const QOS_SHIFT: u8 = 5;
const RETAIN: u8 = 0x10;
const WILL: u8 = 0x08;
const CLEAN_SESSION: u8 = 0x04;
const TOPIC_ID_TYPE_MASK: u8 = 0x03;

/// A QoS level of MQTT: the levels SUBSCRIBE, SUBACK and the will messages use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum QoS {
    /// QoS 0 (0b00).
    #[default]
    AtMostOnce = 0,
    /// QoS 1 (0b01).
    AtLeastOnce = 1,
    /// QoS 2 (0b10).
    ExactlyOnce = 2,
}

/// The QoS of a PUBLISH: the three MQTT levels, plus −1 (0b11), a publish sent
/// without any connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PublishQoS {
    /// QoS 0 (0b00).
    #[default]
    AtMostOnce,
    /// QoS 1 (0b01).
    AtLeastOnce,
    /// QoS 2 (0b10).
    ExactlyOnce,
    /// QoS −1 (0b11): fire and forget, no connection needed.
    MinusOne,
}

impl PublishQoS {
    /// The MQTT level, or `None` for QoS −1.
    pub const fn level(self) -> Option<QoS> {
        match self {
            Self::AtMostOnce => Some(QoS::AtMostOnce),
            Self::AtLeastOnce => Some(QoS::AtLeastOnce),
            Self::ExactlyOnce => Some(QoS::ExactlyOnce),
            Self::MinusOne => None,
        }
    }

    /// Whether a PUBLISH at this level is acknowledged, so needs a MsgId.
    pub const fn is_acknowledged(self) -> bool {
        matches!(self, Self::AtLeastOnce | Self::ExactlyOnce)
    }

    const fn from_bits(bits: u8) -> Self {
        match bits & 0x03 {
            0 => Self::AtMostOnce,
            1 => Self::AtLeastOnce,
            2 => Self::ExactlyOnce,
            _ => Self::MinusOne,
        }
    }

    const fn bits(self) -> u8 {
        match self {
            Self::AtMostOnce => 0,
            Self::AtLeastOnce => 1,
            Self::ExactlyOnce => 2,
            Self::MinusOne => 3,
        }
    }
}

impl From<QoS> for PublishQoS {
    fn from(qos: QoS) -> Self {
        match qos {
            QoS::AtMostOnce => Self::AtMostOnce,
            QoS::AtLeastOnce => Self::AtLeastOnce,
            QoS::ExactlyOnce => Self::ExactlyOnce,
        }
    }
}

/// What the topic field of a message holds (bits 1–0 of the Flags octet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicIdType {
    /// 0b00: a normal topic id (PUBLISH) or a topic name (SUBSCRIBE, UNSUBSCRIBE).
    Normal,
    /// 0b01: a pre-defined topic id.
    Predefined,
    /// 0b10: a two-octet short topic name.
    Short,
}

impl TopicIdType {
    const fn bits(self) -> u8 {
        match self {
            Self::Normal => 0,
            Self::Predefined => 1,
            Self::Short => 2,
        }
    }
}

/// The Flags octet, with typed accessors. Any octet is a `Flags`; the accessors
/// that can meet a reserved value return a `Result`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// No flag set.
    pub const EMPTY: Self = Self(0);

    /// DUP: the message is a retransmission.
    pub const fn dup(self) -> bool {
        self.0 & DUP != 0
    }

    /// Retain.
    pub const fn retain(self) -> bool {
        self.0 & RETAIN != 0
    }

    /// Will: the client asks to be prompted for will topic and message.
    pub const fn will(self) -> bool {
        self.0 & WILL != 0
    }

    /// CleanSession.
    pub const fn clean_session(self) -> bool {
        self.0 & CLEAN_SESSION != 0
    }

    /// The two QoS bits, all four values meaningful.
    pub const fn publish_qos(self) -> PublishQoS {
        PublishQoS::from_bits((self.0 & QOS_MASK) >> QOS_SHIFT)
    }

    /// The QoS bits where QoS −1 is not allowed (every message but PUBLISH).
    pub const fn qos(self, message: MsgType) -> Result<QoS, Error> {
        match self.publish_qos().level() {
            Some(level) => Ok(level),
            None => Err(Error::QosMinusOneNotAllowed { message }),
        }
    }

    /// TopicIdType; 0b11 is reserved and an error.
    pub const fn topic_id_type(self, message: MsgType) -> Result<TopicIdType, Error> {
        match self.0 & TOPIC_ID_TYPE_MASK {
            0 => Ok(TopicIdType::Normal),
            1 => Ok(TopicIdType::Predefined),
            2 => Ok(TopicIdType::Short),
            _ => Err(Error::ReservedTopicIdType { message }),
        }
    }

    /// Sets or clears DUP.
    #[must_use]
    pub const fn with_dup(self, on: bool) -> Self {
        self.with_bit(DUP, on)
    }

    /// Sets or clears Retain.
    #[must_use]
    pub const fn with_retain(self, on: bool) -> Self {
        self.with_bit(RETAIN, on)
    }

    /// Sets or clears Will.
    #[must_use]
    pub const fn with_will(self, on: bool) -> Self {
        self.with_bit(WILL, on)
    }

    /// Sets or clears CleanSession.
    #[must_use]
    pub const fn with_clean_session(self, on: bool) -> Self {
        self.with_bit(CLEAN_SESSION, on)
    }

    /// Sets the QoS bits.
    #[must_use]
    pub const fn with_qos(self, qos: PublishQoS) -> Self {
        Self((self.0 & !QOS_MASK) | (qos.bits() << QOS_SHIFT))
    }

    /// Sets the TopicIdType bits.
    #[must_use]
    pub const fn with_topic_id_type(self, kind: TopicIdType) -> Self {
        Self((self.0 & !TOPIC_ID_TYPE_MASK) | kind.bits())
    }

    const fn with_bit(self, bit: u8, on: bool) -> Self {
        if on {
            Self(self.0 | bit)
        } else {
            Self(self.0 & !bit)
        }
    }
}
