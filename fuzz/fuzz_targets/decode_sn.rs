//! Arbitrary datagrams into the MQTT-SN decoder: it must never panic, and
//! whatever it accepts must encode to exactly `encoded_len` octets that decode
//! to the same message.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use midge_sn_codec::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = Message::decode(Bytes::copy_from_slice(data)) else {
        return;
    };
    let mut out = Vec::new();
    if let Err(e) = message.encode(&mut out) {
        panic!("decoded message does not encode: {e:?} {message:?}");
    }
    assert_eq!(out.len(), message.encoded_len());
    let again = Message::decode(Bytes::from(out)).expect("re-encoded message decodes");
    assert_eq!(again, message);
});
