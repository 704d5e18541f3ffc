//! Decodes a stream of MQTT packets given as hex and prints each packet.
//!
//! ```text
//! cargo run -p midge-codec --example decode                  # a built-in sample session
//! cargo run -p midge-codec --example decode -- "C0 00 E0 00"  # your own bytes
//! echo "30 05 00 03 61 2F 62" | cargo run -p midge-codec --example decode -- -
//! ```
//!
//! The bytes are fed to the decoder one at a time, as a slow network would
//! deliver them, to show the incremental contract: "need more bytes" until a
//! packet is whole, then exactly one packet.

use std::io::Read;
use std::process::ExitCode;

use bytes::BytesMut;
use midge_codec::{Decoder, Packet, Protocol};

/// A short 3.1.1 session: CONNECT, CONNACK, SUBSCRIBE, SUBACK, PUBLISH QoS 1,
/// PUBACK, PINGREQ, PINGRESP, DISCONNECT.
const SAMPLE: &str = "
    10 14 00 04 4D 51 54 54 04 02 00 3C 00 08 6D 69 64 67 65 2D 30 31
    20 02 00 00
    82 0E 00 0A 00 03 61 2F 62 01 00 03 63 2F 23 02
    90 04 00 0A 01 02
    32 0B 00 03 61 2F 62 00 0B 32 31 2E 35
    40 02 00 0B
    C0 00
    D0 00
    E0 00";

fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() % 2 != 0 {
        return Err("odd number of hex digits".into());
    }
    digits
        .chunks(2)
        .map(|pair| {
            let s: String = pair.iter().collect();
            u8::from_str_radix(&s, 16).map_err(|e| format!("bad hex {s:?}: {e}"))
        })
        .collect()
}

fn main() -> ExitCode {
    let arg = std::env::args().nth(1);
    let text = match arg.as_deref() {
        None => SAMPLE.to_owned(),
        Some("-") => {
            let mut s = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut s) {
                eprintln!("reading stdin: {e}");
                return ExitCode::FAILURE;
            }
            s
        }
        Some(hex) => hex.to_owned(),
    };
    let bytes = match parse_hex(&text) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };

    let mut decoder = Decoder::new().with_max_packet_size(1024 * 1024);
    let mut buf = BytesMut::new();
    let mut count = 0;
    for byte in bytes {
        buf.extend_from_slice(&[byte]);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(packet)) => {
                    count += 1;
                    if let Packet::Connect(connect) = &packet {
                        // The rest of the connection speaks the revision CONNECT asked for.
                        decoder.set_protocol(connect.protocol);
                    }
                    println!("{count:>3}: {}", describe(&packet));
                }
                Ok(None) => break,
                Err(e) => {
                    let statement = e.statement().map(|s| format!(" [{s}]")).unwrap_or_default();
                    eprintln!("protocol violation after {count} packets: {e}{statement}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    if buf.is_empty() {
        println!("{count} packets, no bytes left over");
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "{count} packets, then {} bytes of an incomplete packet",
            buf.len()
        );
        ExitCode::FAILURE
    }
}

fn describe(packet: &Packet) -> String {
    match packet {
        Packet::Connect(c) => format!(
            "CONNECT {} client_id={:?} clean_session={} keep_alive={}s will={} user={:?}",
            if c.protocol == Protocol::V3_1 {
                "3.1"
            } else {
                "3.1.1"
            },
            c.client_id.as_str(),
            c.clean_session,
            c.keep_alive,
            c.will
                .as_ref()
                .map_or("none".into(), |w| format!("{:?}", w.topic.as_str())),
            c.username.as_ref().map(|u| u.as_str()),
        ),
        Packet::Publish(p) => format!(
            "PUBLISH topic={:?} qos={} packet_id={:?} retain={} dup={} payload={:?}",
            p.topic.as_str(),
            p.qos().as_u8(),
            p.packet_id().map(|id| id.get()),
            p.retain,
            p.dup,
            String::from_utf8_lossy(&p.payload),
        ),
        other => format!("{other:?}"),
    }
}
