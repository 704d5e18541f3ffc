//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use bytes::{Bytes, BytesMut};
use midge_codec::{DecodeError, Decoder, Filter, MqttString, Packet, PacketId, Protocol, Topic};

/// Hex like "10 0C 00 04" into bytes.
pub fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    assert!(digits.len() % 2 == 0, "odd number of hex digits in {s:?}");
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

pub fn s(v: &str) -> MqttString {
    MqttString::new(v).unwrap()
}

pub fn t(v: &str) -> Topic {
    Topic::new(v).unwrap()
}

pub fn f(v: &str) -> Filter {
    Filter::new(v).unwrap()
}

pub fn pid(v: u16) -> PacketId {
    PacketId::new(v).unwrap()
}

/// Decodes exactly one packet from `bytes` under `protocol`.
pub fn decode_with(bytes: &[u8], protocol: Protocol) -> Result<Option<Packet>, DecodeError> {
    let mut decoder = Decoder::new();
    decoder.set_protocol(protocol);
    let mut buf = BytesMut::from(bytes);
    let packet = decoder.decode(&mut buf)?;
    if packet.is_some() {
        assert!(buf.is_empty(), "decoder left {} bytes", buf.len());
    }
    Ok(packet)
}

pub fn decode(bytes: &[u8]) -> Result<Option<Packet>, DecodeError> {
    decode_with(bytes, Protocol::V3_1_1)
}

/// The decode error for a complete but invalid frame.
pub fn decode_err(bytes: &[u8]) -> DecodeError {
    match decode(bytes) {
        Err(e) => e,
        Ok(p) => panic!("expected an error, decoded {p:?}"),
    }
}

pub fn encode(packet: &Packet) -> Vec<u8> {
    let mut buf = BytesMut::new();
    let n = packet.encode(&mut buf).unwrap();
    assert_eq!(n, buf.len());
    assert_eq!(packet.encoded_len(), buf.len());
    buf.to_vec()
}

/// Both directions: `bytes` decodes to `packet`, and `packet` encodes to `bytes`.
pub fn golden(bytes: &[u8], packet: &Packet) {
    assert_eq!(
        decode(bytes).unwrap().as_ref(),
        Some(packet),
        "decode {bytes:02X?}"
    );
    assert_eq!(encode(packet), bytes, "encode {packet:?}");
}

pub fn bytes(v: &[u8]) -> Bytes {
    Bytes::copy_from_slice(v)
}
