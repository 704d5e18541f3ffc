//! A scripted server for driving the client: encodes server packets, decodes
//! what the client writes, and keeps a virtual clock.
#![allow(dead_code, unreachable_pub)]

use bytes::BytesMut;
use midge_codec::{
    ConnAck, ConnectReturnCode, Decoder, Packet, PacketId, PubAck, PubComp, PubRec, PubRel,
    Publish, QoS, QosPid, SubAck, SubscribeReturnCode, UnsubAck,
};
use midge_session::{Client, ClientConfig, Event};
use midge_time::{Duration, Instant};

pub fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

/// The client under test, a virtual clock and what came out of it.
pub struct Harness {
    pub client: Client,
    pub now: Instant,
}

impl Harness {
    pub fn new(config: ClientConfig) -> Self {
        Self {
            client: Client::new(config).unwrap(),
            now: Instant::from_secs(1000),
        }
    }

    /// Connects and answers CONNACK(accepted, session_present); returns the
    /// packets the client wrote after CONNACK (resends, queued requests).
    pub fn connect(config: ClientConfig) -> Self {
        let mut h = Self::new(config);
        h.client.connect(h.now).unwrap();
        let sent = h.transmit();
        assert!(matches!(sent.as_slice(), [Packet::Connect(_)]));
        h.server(Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::Accepted,
            false,
        )))
        .unwrap();
        assert_eq!(
            h.events(),
            vec![Event::Connected {
                session_present: false
            }]
        );
        h
    }

    /// Reconnects on a new transport; returns what the client wrote after
    /// the CONNACK.
    pub fn reconnect(&mut self, session_present: bool) -> Vec<Packet> {
        self.client.connect(self.now).unwrap();
        let sent = self.transmit();
        assert!(matches!(sent.as_slice(), [Packet::Connect(_)]));
        self.server(Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::Accepted,
            session_present,
        )))
        .unwrap();
        self.transmit()
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    /// Feeds one server packet.
    pub fn server(&mut self, packet: Packet) -> Result<(), midge_session::ProtocolError> {
        let mut buf = BytesMut::new();
        packet.encode(&mut buf).unwrap();
        self.client.handle_read(self.now, &buf)
    }

    /// Everything the client writes now, decoded.
    pub fn transmit(&mut self) -> Vec<Packet> {
        let mut buf = BytesMut::new();
        let count = self.client.poll_transmit(self.now, &mut buf);
        let mut decoder = Decoder::new();
        let mut packets = Vec::new();
        while let Some(p) = decoder.decode(&mut buf).unwrap() {
            packets.push(p);
        }
        assert!(buf.is_empty());
        assert_eq!(count, packets.len());
        packets
    }

    pub fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.client.poll_event()).collect()
    }
}

pub fn puback(n: u16) -> Packet {
    Packet::PubAck(PubAck::new(pid(n)))
}
pub fn pubrec(n: u16) -> Packet {
    Packet::PubRec(PubRec::new(pid(n)))
}
pub fn pubrel(n: u16) -> Packet {
    Packet::PubRel(PubRel::new(pid(n)))
}
pub fn pubcomp(n: u16) -> Packet {
    Packet::PubComp(PubComp::new(pid(n)))
}
pub fn unsuback(n: u16) -> Packet {
    Packet::UnsubAck(UnsubAck::new(pid(n)))
}
pub fn suback(n: u16, codes: &[SubscribeReturnCode]) -> Packet {
    Packet::SubAck(SubAck::new(pid(n), codes.to_vec()))
}

/// A server PUBLISH.
pub fn server_publish(topic: &str, qos: QoS, id: u16, payload: &'static [u8]) -> Packet {
    let qos_pid = match qos {
        QoS::AtMostOnce => QosPid::AtMostOnce,
        QoS::AtLeastOnce => QosPid::AtLeastOnce(pid(id)),
        QoS::ExactlyOnce => QosPid::ExactlyOnce(pid(id)),
    };
    Packet::Publish(Publish::new(topic.try_into().unwrap(), qos_pid, payload))
}

/// The (packet id, dup) of each PUBLISH in `packets`.
pub fn publishes(packets: &[Packet]) -> Vec<(Option<u16>, bool)> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some((p.packet_id().map(PacketId::get), p.dup)),
            _ => None,
        })
        .collect()
}

pub fn persistent(id: &str) -> ClientConfig {
    ClientConfig::new(id).with_clean_session(false)
}
