//! Structure-aware: builds a packet from the fuzzer's bytes, encodes it,
//! decodes it back and checks it is the same packet. Invalid field values
//! (a wildcard in a topic name, an empty SUBSCRIBE …) must be refused by the
//! encoder with an error, never written.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use midge_codec::{
    ConnAck, Connect, ConnectReturnCode, Decoder, Filter, LastWill, MqttString, Packet, PacketId,
    Protocol, PubAck, PubComp, PubRec, PubRel, Publish, QoS, QosPid, SubAck, Subscribe,
    SubscribeFilter, SubscribeReturnCode, Topic, UnsubAck, Unsubscribe,
};

fn string(u: &mut Unstructured<'_>) -> Result<Option<MqttString>> {
    let s: &str = u.arbitrary()?;
    Ok(MqttString::new(s).ok())
}

fn topic(u: &mut Unstructured<'_>) -> Result<Option<Topic>> {
    let s: &str = u.arbitrary()?;
    Ok(Topic::new(s).ok())
}

fn filter(u: &mut Unstructured<'_>) -> Result<Option<Filter>> {
    let s: &str = u.arbitrary()?;
    Ok(Filter::new(s).ok())
}

fn qos(u: &mut Unstructured<'_>) -> Result<QoS> {
    Ok(QoS::from_u8(u.int_in_range(0..=2)?).unwrap_or_default())
}

fn pid(u: &mut Unstructured<'_>) -> Result<PacketId> {
    Ok(PacketId::new(u.int_in_range(1..=u16::MAX)?).unwrap_or(PacketId::new(1).unwrap()))
}

fn bytes(u: &mut Unstructured<'_>) -> Result<Bytes> {
    let b: &[u8] = u.arbitrary()?;
    Ok(Bytes::copy_from_slice(b))
}

fn build(u: &mut Unstructured<'_>) -> Result<Option<Packet>> {
    Ok(Some(match u.int_in_range(0..=13)? {
        0 => {
            let Some(client_id) = string(u)? else { return Ok(None) };
            let will = if u.arbitrary()? {
                let Some(topic) = topic(u)? else { return Ok(None) };
                Some(LastWill { topic, message: bytes(u)?, qos: qos(u)?, retain: u.arbitrary()? })
            } else {
                None
            };
            let username = if u.arbitrary()? { string(u)? } else { None };
            let password = if u.arbitrary()? { Some(bytes(u)?) } else { None };
            Packet::Connect(Connect {
                protocol: if u.arbitrary()? { Protocol::V3_1 } else { Protocol::V3_1_1 },
                clean_session: u.arbitrary()?,
                keep_alive: u.arbitrary()?,
                client_id,
                will,
                username,
                password,
            })
        }
        1 => {
            let code = ConnectReturnCode::from_u8(u.int_in_range(0..=5)?)
                .unwrap_or(ConnectReturnCode::Accepted);
            Packet::ConnAck(ConnAck::new(code, u.arbitrary()?))
        }
        2 => {
            let Some(topic) = topic(u)? else { return Ok(None) };
            let qos_pid = match qos(u)? {
                QoS::AtMostOnce => QosPid::AtMostOnce,
                QoS::AtLeastOnce => QosPid::AtLeastOnce(pid(u)?),
                QoS::ExactlyOnce => QosPid::ExactlyOnce(pid(u)?),
            };
            let mut publish = Publish::new(topic, qos_pid, bytes(u)?);
            publish.dup = u.arbitrary()?;
            publish.retain = u.arbitrary()?;
            Packet::Publish(publish)
        }
        3 => Packet::PubAck(PubAck::new(pid(u)?)),
        4 => Packet::PubRec(PubRec::new(pid(u)?)),
        5 => Packet::PubRel(PubRel::new(pid(u)?)),
        6 => Packet::PubComp(PubComp::new(pid(u)?)),
        7 => {
            let mut filters = Vec::new();
            for _ in 0..u.int_in_range(0..=8)? {
                let Some(filter) = filter(u)? else { return Ok(None) };
                filters.push(SubscribeFilter::new(filter, qos(u)?));
            }
            Packet::Subscribe(Subscribe::new(pid(u)?, filters))
        }
        8 => {
            let mut codes = Vec::new();
            for _ in 0..u.int_in_range(0..=8)? {
                codes.push(if u.arbitrary()? {
                    SubscribeReturnCode::Failure
                } else {
                    SubscribeReturnCode::Success(qos(u)?)
                });
            }
            Packet::SubAck(SubAck::new(pid(u)?, codes))
        }
        9 => {
            let mut filters = Vec::new();
            for _ in 0..u.int_in_range(0..=8)? {
                let Some(filter) = filter(u)? else { return Ok(None) };
                filters.push(filter);
            }
            Packet::Unsubscribe(Unsubscribe::new(pid(u)?, filters))
        }
        10 => Packet::UnsubAck(UnsubAck::new(pid(u)?)),
        11 => Packet::PingReq,
        12 => Packet::PingResp,
        _ => Packet::Disconnect,
    }))
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(Some(packet)) = build(&mut u) else {
        return;
    };
    // Into a fixed slice of arbitrary size: either it fits or it is refused
    // with nothing written.
    let room = u.int_in_range(0..=512usize).unwrap_or(0);
    let mut storage = vec![0u8; room];
    let mut slice = &mut storage[..];
    let sliced = packet.encode(&mut slice);

    let mut buf = BytesMut::new();
    match packet.encode(&mut buf) {
        Ok(n) => {
            assert_eq!(n, buf.len());
            assert_eq!(n, packet.encoded_len());
            if let Ok(m) = sliced {
                assert_eq!(&storage[..m], &buf[..]);
            } else {
                assert!(n > room);
                assert!(storage.iter().all(|&b| b == 0));
            }
            let mut decoder = Decoder::new();
            if let Packet::Connect(c) = &packet {
                decoder.set_protocol(c.protocol);
            }
            let decoded = decoder.decode(&mut buf).expect("encoded packet decodes");
            assert_eq!(decoded.as_ref(), Some(&packet));
            assert!(buf.is_empty());
        }
        Err(_) => {
            assert!(buf.is_empty(), "a refused packet wrote bytes");
            assert!(sliced.is_err());
        }
    }
});
