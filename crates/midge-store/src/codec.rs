//! The on-disk encoding of keys and values (format version 1).
//!
//! Messages are kept as their MQTT PUBLISH packets (encoded and decoded by
//! `midge-codec`), so the stored bytes are the wire bytes. Every other
//! value is a small fixed layout of big-endian integers and length-prefixed
//! byte strings. A client id in a key is prefixed with its length, so that
//! one client's keys never share a prefix with another's.

use bytes::BytesMut;
use midge_broker::{InflightMessage, SessionState};
use midge_codec::{Decoder, Encode, Filter, Packet, PacketId, Publish, QoS};

use crate::StoreError;

/// The client id as a key prefix.
pub(crate) fn client_prefix(client_id: &str) -> Vec<u8> {
    let bytes = client_id.as_bytes();
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    let mut k = Vec::with_capacity(bytes.len() + 2);
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(bytes);
    k
}

/// Splits a key into its client id and the rest.
pub(crate) fn split_client(key: &[u8]) -> Result<(String, &[u8]), StoreError> {
    let mut r = Reader(key);
    let len = usize::from(r.u16()?);
    let id = r.take(len)?;
    let id = std::str::from_utf8(id).map_err(|_| StoreError::Corrupt("client id"))?;
    Ok((id.to_string(), r.0))
}

pub(crate) fn queue_key(client_id: &str, seq: u64) -> Vec<u8> {
    let mut k = client_prefix(client_id);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub(crate) fn sub_key(client_id: &str, filter: &Filter) -> Vec<u8> {
    let mut k = client_prefix(client_id);
    k.extend_from_slice(filter.as_str().as_bytes());
    k
}

pub(crate) fn qos_byte(qos: QoS) -> u8 {
    match qos {
        QoS::AtMostOnce => 0,
        QoS::AtLeastOnce => 1,
        QoS::ExactlyOnce => 2,
    }
}

pub(crate) fn qos_from(b: u8) -> Result<QoS, StoreError> {
    match b {
        0 => Ok(QoS::AtMostOnce),
        1 => Ok(QoS::AtLeastOnce),
        2 => Ok(QoS::ExactlyOnce),
        _ => Err(StoreError::Corrupt("qos")),
    }
}

pub(crate) fn encode_publish(publish: &Publish) -> Result<Vec<u8>, StoreError> {
    let mut buf = BytesMut::with_capacity(publish.encoded_len());
    publish
        .encode(&mut buf)
        .map_err(|_| StoreError::Corrupt("message too large"))?;
    Ok(buf.to_vec())
}

pub(crate) fn decode_publish(bytes: &[u8]) -> Result<Publish, StoreError> {
    let mut buf = BytesMut::from(bytes);
    match Decoder::new().decode(&mut buf) {
        Ok(Some(Packet::Publish(p))) if buf.is_empty() => Ok(p),
        _ => Err(StoreError::Corrupt("message")),
    }
}

/// A queue entry's value: message id and entry QoS.
pub(crate) fn entry_value(message: u64, qos: QoS) -> [u8; 9] {
    let mut v = [0u8; 9];
    let (id, q) = v.split_at_mut(8);
    id.copy_from_slice(&message.to_be_bytes());
    if let Some(b) = q.first_mut() {
        *b = qos_byte(qos);
    }
    v
}

pub(crate) fn decode_entry(v: &[u8]) -> Result<(u64, QoS), StoreError> {
    let mut r = Reader(v);
    let id = r.u64()?;
    let qos = qos_from(r.u8()?)?;
    r.end("queue entry")?;
    Ok((id, qos))
}

/// A message's value: reference count and the PUBLISH packet.
pub(crate) fn message_value(refs: u32, packet: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(packet.len() + 4);
    v.extend_from_slice(&refs.to_be_bytes());
    v.extend_from_slice(packet);
    v
}

/// The reference count of a message's value, without decoding the message.
pub(crate) fn message_refs(v: &[u8]) -> Result<u32, StoreError> {
    Reader(v).u32()
}

/// Sets the reference count of a message's value in place.
pub(crate) fn set_message_refs(v: &mut [u8], refs: u32) {
    if let Some(head) = v.get_mut(..4) {
        head.copy_from_slice(&refs.to_be_bytes());
    }
}

pub(crate) fn decode_message(v: &[u8]) -> Result<(u32, Publish), StoreError> {
    let mut r = Reader(v);
    let refs = r.u32()?;
    Ok((refs, decode_publish(r.0)?))
}

pub(crate) fn encode_state(state: &SessionState) -> Result<Vec<u8>, StoreError> {
    let mut v = Vec::new();
    put_len(&mut v, state.inflight.len())?;
    for m in &state.inflight {
        match m {
            InflightMessage::Publish(p) => {
                v.push(0);
                put_bytes(&mut v, &encode_publish(p)?)?;
            }
            InflightMessage::PubRel(pid) => {
                v.push(1);
                v.extend_from_slice(&pid.get().to_be_bytes());
            }
            _ => return Err(StoreError::Corrupt("unknown inflight kind")),
        }
    }
    put_len(&mut v, state.queued.len())?;
    for p in &state.queued {
        put_bytes(&mut v, &encode_publish(p)?)?;
    }
    put_len(&mut v, state.inbound_qos2.len())?;
    for pid in &state.inbound_qos2 {
        v.extend_from_slice(&pid.get().to_be_bytes());
    }
    Ok(v)
}

pub(crate) fn decode_state(v: &[u8]) -> Result<SessionState, StoreError> {
    let mut r = Reader(v);
    let mut state = SessionState::default();
    for _ in 0..r.u32()? {
        match r.u8()? {
            0 => {
                let len = r.len()?;
                state
                    .inflight
                    .push(InflightMessage::Publish(decode_publish(r.take(len)?)?));
            }
            1 => state.inflight.push(InflightMessage::PubRel(r.pid()?)),
            _ => return Err(StoreError::Corrupt("inflight kind")),
        }
    }
    for _ in 0..r.u32()? {
        let len = r.len()?;
        state.queued.push(decode_publish(r.take(len)?)?);
    }
    for _ in 0..r.u32()? {
        state.inbound_qos2.push(r.pid()?);
    }
    r.end("session state")?;
    Ok(state)
}

fn put_len(v: &mut Vec<u8>, len: usize) -> Result<(), StoreError> {
    let len = u32::try_from(len).map_err(|_| StoreError::Corrupt("length"))?;
    v.extend_from_slice(&len.to_be_bytes());
    Ok(())
}

fn put_bytes(v: &mut Vec<u8>, bytes: &[u8]) -> Result<(), StoreError> {
    put_len(v, bytes.len())?;
    v.extend_from_slice(bytes);
    Ok(())
}

/// Reads a value front to back; every read checks the length first.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.0.len() < n {
            return Err(StoreError::Corrupt("truncated value"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    fn u16(&mut self) -> Result<u16, StoreError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, StoreError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn len(&mut self) -> Result<usize, StoreError> {
        usize::try_from(self.u32()?).map_err(|_| StoreError::Corrupt("length"))
    }

    fn pid(&mut self) -> Result<PacketId, StoreError> {
        let raw = self.u16()?;
        std::num::NonZeroU16::new(raw)
            .map(PacketId::from)
            .ok_or(StoreError::Corrupt("packet id"))
    }

    fn end(&self, what: &'static str) -> Result<(), StoreError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Corrupt(what))
        }
    }
}

pub(crate) fn u64_from(v: &[u8]) -> Result<u64, StoreError> {
    let mut r = Reader(v);
    let n = r.u64()?;
    r.end("number")?;
    Ok(n)
}
