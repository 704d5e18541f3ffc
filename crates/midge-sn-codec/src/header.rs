//! The message header: Length (one octet, or 0x01 and two octets) and MsgType.
//!
//! Length counts the whole message, itself included. The one-octet form holds
//! totals up to 255; a first octet of 0x01 announces the three-octet form, whose
//! two following octets hold the total most-significant octet first (up to
//! 65535). Decoding accepts either form for any length; encoding picks the
//! one-octet form whenever the total fits in it.

use bytes::{Buf, BufMut, Bytes};

use crate::Error;

/// Largest total length the one-octet Length form can express.
pub const SHORT_FORM_MAX: usize = 0xFF;
/// Largest total length the three-octet Length form can express.
pub const LONG_FORM_MAX: usize = 0xFFFF;
/// First octet announcing the three-octet Length form.
pub const LONG_FORM_MARKER: u8 = 0x01;

macro_rules! msg_types {
    ($($(#[$doc:meta])* $variant:ident = $value:literal, $name:literal;)*) => {
        /// The MsgType octet: which message follows.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum MsgType {
            $($(#[$doc])* $variant = $value,)*
        }

        impl MsgType {
            /// Reads a MsgType octet; reserved values are an error.
            pub const fn from_u8(value: u8) -> Result<Self, Error> {
                match value {
                    $($value => Ok(Self::$variant),)*
                    other => Err(Error::UnknownMsgType(other)),
                }
            }

            /// The octet written on the wire.
            pub const fn to_u8(self) -> u8 {
                self as u8
            }

            /// The message's name as the specification spells it.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }
        }
    };
}

msg_types! {
    /// Gateway announcement (0x00).
    Advertise = 0x00, "ADVERTISE";
    /// Gateway search (0x01).
    SearchGw = 0x01, "SEARCHGW";
    /// Answer to a gateway search (0x02).
    GwInfo = 0x02, "GWINFO";
    /// Connection request (0x04).
    Connect = 0x04, "CONNECT";
    /// Connection answer (0x05).
    ConnAck = 0x05, "CONNACK";
    /// Gateway asks for the will topic (0x06).
    WillTopicReq = 0x06, "WILLTOPICREQ";
    /// Client sends the will topic (0x07).
    WillTopic = 0x07, "WILLTOPIC";
    /// Gateway asks for the will message (0x08).
    WillMsgReq = 0x08, "WILLMSGREQ";
    /// Client sends the will message (0x09).
    WillMsg = 0x09, "WILLMSG";
    /// Topic name registration (0x0A).
    Register = 0x0A, "REGISTER";
    /// Registration answer (0x0B).
    RegAck = 0x0B, "REGACK";
    /// Application message (0x0C).
    Publish = 0x0C, "PUBLISH";
    /// QoS 1 acknowledgement or publish rejection (0x0D).
    PubAck = 0x0D, "PUBACK";
    /// QoS 2, third step (0x0E).
    PubComp = 0x0E, "PUBCOMP";
    /// QoS 2, first step (0x0F).
    PubRec = 0x0F, "PUBREC";
    /// QoS 2, second step (0x10).
    PubRel = 0x10, "PUBREL";
    /// Subscription request (0x12).
    Subscribe = 0x12, "SUBSCRIBE";
    /// Subscription answer (0x13).
    SubAck = 0x13, "SUBACK";
    /// Unsubscription request (0x14).
    Unsubscribe = 0x14, "UNSUBSCRIBE";
    /// Unsubscription answer (0x15).
    UnsubAck = 0x15, "UNSUBACK";
    /// Keep-alive probe, or a sleeping client waking up (0x16).
    PingReq = 0x16, "PINGREQ";
    /// Keep-alive answer (0x17).
    PingResp = 0x17, "PINGRESP";
    /// Disconnect, or going to sleep (0x18).
    Disconnect = 0x18, "DISCONNECT";
    /// Will topic update (0x1A).
    WillTopicUpd = 0x1A, "WILLTOPICUPD";
    /// Will topic update answer (0x1B).
    WillTopicResp = 0x1B, "WILLTOPICRESP";
    /// Will message update (0x1C).
    WillMsgUpd = 0x1C, "WILLMSGUPD";
    /// Will message update answer (0x1D).
    WillMsgResp = 0x1D, "WILLMSGRESP";
    /// Forwarder encapsulation (0xFE).
    Encapsulated = 0xFE, "Encapsulated message";
}

impl core::fmt::Display for MsgType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A parsed header: the message type, the declared total length and the size of
/// the header itself (2 or 4 octets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The message type.
    pub msg_type: MsgType,
    /// The Length field: total octets it counts, header included.
    pub length: usize,
    /// Octets taken by Length and MsgType together: 2 or 4.
    pub header_len: usize,
}

impl Header {
    /// Reads the header at the start of `datagram` without consuming anything.
    ///
    /// Checks that the declared length covers at least the header, but not that
    /// it agrees with the datagram: [`crate::Message::decode`] does that.
    pub fn peek(datagram: &[u8]) -> Result<Self, Error> {
        let (length, header_len, type_octet) = match datagram {
            [LONG_FORM_MARKER, hi, lo, t, ..] => {
                (usize::from(u16::from_be_bytes([*hi, *lo])), 4, *t)
            }
            [LONG_FORM_MARKER, ..] => return Err(Error::TruncatedHeader),
            [len, t, ..] => (usize::from(*len), 2, *t),
            _ => return Err(Error::TruncatedHeader),
        };
        if length < header_len {
            return Err(Error::InvalidLength { declared: length });
        }
        Ok(Self {
            msg_type: MsgType::from_u8(type_octet)?,
            length,
            header_len,
        })
    }
}

/// Total encoded length of a message whose part after MsgType is `body_len` octets.
pub(crate) const fn total_len(body_len: usize) -> usize {
    if body_len <= SHORT_FORM_MAX - 2 {
        body_len + 2
    } else {
        body_len.saturating_add(4)
    }
}

/// Writes Length and MsgType for a message with a `body_len`-octet body, after
/// checking that the Length field can count it and that `buf` can hold
/// `reserve` octets (the whole encoding, which may go beyond what Length counts).
pub(crate) fn put(
    buf: &mut impl BufMut,
    msg_type: MsgType,
    body_len: usize,
    reserve: usize,
) -> Result<(), Error> {
    let total = total_len(body_len);
    if total > LONG_FORM_MAX {
        return Err(Error::TooLong { len: total });
    }
    if buf.remaining_mut() < reserve {
        return Err(Error::BufferTooSmall {
            needed: reserve,
            available: buf.remaining_mut(),
        });
    }
    // One `put_slice` for the whole header: cheaper than one call per octet
    // on buffers whose `put_u8` checks and advances each time.
    match (u8::try_from(total), u16::try_from(total)) {
        (Ok(short), _) if total <= SHORT_FORM_MAX => buf.put_slice(&[short, msg_type.to_u8()]),
        (_, Ok(long)) => {
            let [hi, lo] = long.to_be_bytes();
            buf.put_slice(&[LONG_FORM_MARKER, hi, lo, msg_type.to_u8()]);
        }
        _ => return Err(Error::TooLong { len: total }),
    }
    Ok(())
}

/// A cursor over a message body that names the message and field when it runs out.
#[derive(Debug)]
pub(crate) struct Reader {
    rest: Bytes,
    message: MsgType,
}

impl Reader {
    pub(crate) const fn new(body: Bytes, message: MsgType) -> Self {
        Self {
            rest: body,
            message,
        }
    }

    pub(crate) const fn message(&self) -> MsgType {
        self.message
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, Error> {
        let value = *self.rest.first().ok_or(self.truncated(field))?;
        self.rest.advance(1);
        Ok(value)
    }

    /// A two-octet field, most-significant octet first (network order).
    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, Error> {
        match self.rest.get(..2) {
            Some(&[hi, lo]) => {
                self.rest.advance(2);
                Ok(u16::from_be_bytes([hi, lo]))
            }
            _ => Err(self.truncated(field)),
        }
    }

    /// Everything left: the variable-length field that ends the message.
    pub(crate) fn rest(&mut self) -> Bytes {
        core::mem::take(&mut self.rest)
    }

    /// Succeeds only if nothing is left.
    pub(crate) fn finish(self) -> Result<(), Error> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(Error::TrailingBytes {
                message: self.message,
                extra: self.rest.len(),
            })
        }
    }

    const fn truncated(&self, field: &'static str) -> Error {
        Error::Truncated {
            message: self.message,
            field,
        }
    }
}
