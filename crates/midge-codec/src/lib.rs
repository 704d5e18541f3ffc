//! The MQTT 3.1.1 and 3.1 wire format: every control packet, decoded and
//! encoded exactly as the specification lays it out.
//!
//! What it does:
//! - decodes incrementally from a growing buffer ([`Decoder`]): a cheap peek at
//!   the fixed header answers "need more bytes" until a whole packet is there,
//!   and refuses an oversized packet before anything is buffered for it; then
//!   one frame is split off and parsed, and topics, strings and payloads are
//!   zero-copy [`bytes::Bytes`] slices of that frame;
//! - validates strictly, with a typed [`DecodeError`] that names the normative
//!   statement it enforces ([`DecodeError::statement`]);
//! - encodes any packet into any [`bytes::BufMut`] ([`Encode`], [`Packet::encode`]),
//!   with an exact [`Packet::encoded_len`], refusing to produce a packet that a
//!   strict peer would reject.
//!
//! What it deliberately does not do: I/O, buffering policy, protocol state
//! (which packet may come when, packet-id allocation, keep alive): those live
//! in the sans-IO machines of `midge-session` and `midge-broker`. It builds
//! without `std` (disable the default `std` feature) and uses no `unsafe`.
//!
//! Key types: [`Decoder`], [`Packet`] and the packet structs ([`Connect`],
//! [`Publish`], [`Subscribe`], …), [`MqttString`], [`Topic`], [`Filter`],
//! [`PacketId`], [`QoS`],
//! [`Protocol`].
//!
//! ```
//! use bytes::BytesMut;
//! use midge_codec::{Decoder, Encode, Packet, PacketId, Publish, QosPid, Topic};
//!
//! let publish = Publish::new(
//!     Topic::from_static("sensors/1/temp").unwrap(),
//!     QosPid::AtLeastOnce(PacketId::new(7).unwrap()),
//!     &b"21.5"[..],
//! );
//! let mut buf = BytesMut::new();
//! let written = publish.encode(&mut buf).unwrap();
//! assert_eq!(written, publish.encoded_len());
//!
//! let packet = Decoder::new().decode(&mut buf).unwrap();
//! assert_eq!(packet, Some(Packet::Publish(publish)));
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod borrowed;
mod decoder;
mod error;
mod header;
mod packet;
mod types;
mod wire;

pub use borrowed::{PacketRef, PublishRef};
pub use decoder::Decoder;
pub use error::{DecodeError, EncodeError, Field};
pub use header::{
    parse_first_byte, peek, remaining_length_len, FirstByte, FixedHeader, PacketType,
    MAX_PACKET_SIZE, MAX_REMAINING_LENGTH,
};
pub use packet::{
    ConnAck, Connect, ConnectReturnCode, Disconnect, Encode, LastWill, Packet, PingReq, PingResp,
    PubAck, PubComp, PubRec, PubRel, Publish, QosPid, SubAck, Subscribe, SubscribeFilter,
    SubscribeReturnCode, UnsubAck, Unsubscribe,
};
pub use types::{Filter, MqttString, PacketId, Protocol, QoS, Topic, MAX_STRING_LEN};
