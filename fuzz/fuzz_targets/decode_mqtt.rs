//! Arbitrary bytes through the incremental MQTT decoder, fed in chunks.
//!
//! Checks: no panic; chunked and whole-buffer decoding agree; the borrowed
//! decoder agrees with the owned one; every decoded packet re-encodes to bytes
//! that decode to the same packet.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use midge_codec::{Decoder, Packet, PacketRef, Protocol};

fn decode_all(data: &[u8], chunk: usize, protocol: Protocol) -> (Vec<Packet>, bool) {
    let mut decoder = Decoder::new().with_max_packet_size(64 * 1024);
    decoder.set_protocol(protocol);
    let mut buf = BytesMut::new();
    let mut packets = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(p)) => packets.push(p),
                Ok(None) => break,
                Err(_) => return (packets, true),
            }
        }
    }
    (packets, false)
}

/// The same walk with the borrowed decoder, converted to owned packets.
fn decode_all_ref(data: &[u8], protocol: Protocol) -> (Vec<Packet>, bool) {
    let mut decoder = Decoder::new().with_max_packet_size(64 * 1024);
    decoder.set_protocol(protocol);
    let mut packets = Vec::new();
    let mut offset = 0;
    loop {
        match decoder.decode_ref(&data[offset..]) {
            Ok(Some((packet, len))) => {
                assert!(len > 0 && offset + len <= data.len());
                offset += len;
                packets.push(match packet {
                    PacketRef::Publish(p) => Packet::Publish(p.to_publish()),
                    PacketRef::Other(p) => p,
                });
            }
            Ok(None) => return (packets, false),
            Err(_) => return (packets, true),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, data)) = data.split_first() else {
        return;
    };
    let protocol = if control & 0x80 != 0 { Protocol::V3_1 } else { Protocol::V3_1_1 };
    let chunk = usize::from(control & 0x3F) + 1;

    let whole = decode_all(data, data.len(), protocol);
    let chunked = decode_all(data, chunk, protocol);
    assert_eq!(whole, chunked, "chunking changed the result");
    assert_eq!(whole, decode_all_ref(data, protocol), "borrowed and owned disagree");

    for packet in whole.0 {
        let mut buf = BytesMut::new();
        let n = packet.encode(&mut buf).expect("a decoded packet encodes");
        assert_eq!(n, packet.encoded_len());
        let mut decoder = Decoder::new();
        decoder.set_protocol(protocol);
        let again = decoder.decode(&mut buf).expect("re-encoded packet decodes");
        assert_eq!(again.as_ref(), Some(&packet));
        assert!(buf.is_empty());
    }
});
