//! CONNECT (client to server): the first packet of every connection.

use bytes::{BufMut, Bytes};

use crate::error::{DecodeError, Field};
use crate::header::PacketType;
use crate::packet::Body;
use crate::types::{MqttString, Protocol, QoS, Topic};
use crate::wire::{binary, check_field_len, field_len, put_field, string, topic, Reader};

const FLAG_USERNAME: u8 = 0x80;
const FLAG_PASSWORD: u8 = 0x40;
const FLAG_WILL_RETAIN: u8 = 0x20;
const FLAG_WILL_QOS: u8 = 0x18;
const FLAG_WILL: u8 = 0x04;
const FLAG_CLEAN_SESSION: u8 = 0x02;
const FLAG_RESERVED: u8 = 0x01;

/// The will message a server publishes on the client's behalf when the
/// connection ends without a DISCONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWill {
    /// Topic to publish the will to: a topic name, no wildcards.
    pub topic: Topic,
    /// Will payload (binary).
    pub message: Bytes,
    /// QoS of the will publication.
    pub qos: QoS,
    /// Whether the will is published as a retained message.
    pub retain: bool,
}

/// CONNECT: protocol revision, session and keep-alive settings, client
/// identifier, optional will and credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// MQTT 3.1.1 (`MQTT`, 4) or MQTT 3.1 (`MQIsdp`, 3).
    pub protocol: Protocol,
    /// Clean session flag: start afresh and discard state at the end.
    pub clean_session: bool,
    /// Keep alive in seconds; 0 turns the mechanism off.
    pub keep_alive: u16,
    /// Client identifier; may be empty in 3.1.1 [MQTT-3.1.3-6].
    pub client_id: MqttString,
    /// Will message, if the will flag is set.
    pub will: Option<LastWill>,
    /// User name, if the user name flag is set.
    pub username: Option<MqttString>,
    /// Password (binary), if the password flag is set.
    pub password: Option<Bytes>,
}

impl Connect {
    /// A CONNECT for MQTT 3.1.1 with a clean session, the given client id and
    /// keep alive, and no will or credentials.
    pub fn new(client_id: MqttString, keep_alive: u16) -> Self {
        Self {
            protocol: Protocol::V3_1_1,
            clean_session: true,
            keep_alive,
            client_id,
            will: None,
            username: None,
            password: None,
        }
    }

    fn flags(&self) -> u8 {
        let mut flags = 0;
        if self.clean_session {
            flags |= FLAG_CLEAN_SESSION;
        }
        if let Some(will) = &self.will {
            flags |= FLAG_WILL | (will.qos.as_u8() << 3);
            if will.retain {
                flags |= FLAG_WILL_RETAIN;
            }
        }
        if self.username.is_some() {
            flags |= FLAG_USERNAME;
        }
        if self.password.is_some() {
            flags |= FLAG_PASSWORD;
        }
        flags
    }

    pub(crate) fn decode(frame: &Bytes, header_len: usize) -> Result<Self, DecodeError> {
        let mut r = Reader::new(frame, header_len, PacketType::Connect);
        let name = r.field(Field::ProtocolName)?;
        let level = r.u8(Field::ProtocolLevel)?;
        // [MQTT-3.1.2-1]: an unknown name is not MQTT at all, so no CONNACK.
        // A known name with a level we do not speak is answered with 0x01
        // [MQTT-3.1.2-2]; so is a name paired with the other revision's level.
        let protocol = match (frame.get(name).unwrap_or_default(), level) {
            (b"MQTT", 0x04) => Protocol::V3_1_1,
            (b"MQIsdp", 0x03) => Protocol::V3_1,
            (b"MQTT" | b"MQIsdp", level) => {
                return Err(DecodeError::UnsupportedProtocolLevel { level })
            }
            _ => return Err(DecodeError::InvalidProtocolName),
        };
        let flags = r.u8(Field::ConnectFlags)?;
        if flags & FLAG_RESERVED != 0 {
            return Err(DecodeError::ConnectReservedFlag); // [MQTT-3.1.2-3]
        }
        let will_flag = flags & FLAG_WILL != 0;
        let will_qos_bits = (flags & FLAG_WILL_QOS) >> 3;
        let will_retain = flags & FLAG_WILL_RETAIN != 0;
        let will_qos = QoS::from_u8(will_qos_bits).ok_or(DecodeError::InvalidWillQoS)?; // [MQTT-3.1.2-14]
        if !will_flag && (will_qos_bits != 0 || will_retain) {
            // [MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-15]
            return Err(DecodeError::WillFlagsWithoutWill);
        }
        let has_username = flags & FLAG_USERNAME != 0;
        let has_password = flags & FLAG_PASSWORD != 0;
        if has_password && !has_username {
            return Err(DecodeError::PasswordWithoutUsername); // [MQTT-3.1.2-22]
        }
        let keep_alive = r.u16(Field::KeepAlive)?;

        // Payload, in the order the spec fixes [MQTT-3.1.3-1].
        let client_id = string(frame, r.field(Field::ClientId)?, Field::ClientId)?; // [MQTT-3.1.3-4]
        let will = if will_flag {
            let topic = topic(frame, r.field(Field::WillTopic)?, Field::WillTopic)?; // [MQTT-3.1.3-10]
            let message = binary(frame, r.field(Field::WillMessage)?);
            Some(LastWill {
                topic,
                message,
                qos: will_qos,
                retain: will_retain,
            })
        } else {
            None
        };
        let username = if has_username {
            Some(string(frame, r.field(Field::Username)?, Field::Username)?) // [MQTT-3.1.3-11]
        } else {
            None
        };
        let password = if has_password {
            Some(binary(frame, r.field(Field::Password)?))
        } else {
            None
        };
        r.finish()?;
        Ok(Self {
            protocol,
            clean_session: flags & FLAG_CLEAN_SESSION != 0,
            keep_alive,
            client_id,
            will,
            username,
            password,
        })
    }
}

impl Body for Connect {
    const PACKET_TYPE: PacketType = PacketType::Connect;

    fn first_byte(&self) -> u8 {
        0x10
    }

    fn remaining_len(&self) -> usize {
        let mut len = field_len(self.protocol.name().len()) + 1 + 1 + 2;
        len += field_len(self.client_id.len());
        if let Some(will) = &self.will {
            len += field_len(will.topic.len()) + field_len(will.message.len());
        }
        if let Some(username) = &self.username {
            len += field_len(username.len());
        }
        if let Some(password) = &self.password {
            len += field_len(password.len());
        }
        len
    }

    fn validate(&self) -> Result<(), DecodeError> {
        if let Some(will) = &self.will {
            check_field_len(&will.message, Field::WillMessage)?;
        }
        if self.password.is_some() && self.username.is_none() {
            return Err(DecodeError::PasswordWithoutUsername); // [MQTT-3.1.2-22]
        }
        if let Some(password) = &self.password {
            check_field_len(password, Field::Password)?;
        }
        Ok(())
    }

    fn encode_body(&self, buf: &mut impl BufMut) {
        put_field(buf, self.protocol.name().as_bytes());
        buf.put_u8(self.protocol.level());
        buf.put_u8(self.flags());
        buf.put_u16(self.keep_alive);
        put_field(buf, self.client_id.as_bytes());
        if let Some(will) = &self.will {
            put_field(buf, will.topic.as_bytes());
            put_field(buf, &will.message);
        }
        if let Some(username) = &self.username {
            put_field(buf, username.as_bytes());
        }
        if let Some(password) = &self.password {
            put_field(buf, password);
        }
    }
}
