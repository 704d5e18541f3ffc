//! A client's-eye harness: encodes client packets with midge-codec, feeds them
//! to a `ServerSession` on a virtual clock, and decodes what comes back.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use bytes::BytesMut;
use midge_broker::{Event, ResumeState, ServerConfig, ServerSession};
use midge_codec::{
    Connect, Decoder, Filter, LastWill, MqttString, Packet, PacketId, Publish, QoS, QosPid,
    Subscribe, SubscribeFilter, Topic,
};
use midge_time::{Duration, Instant};

pub struct Harness {
    pub session: ServerSession,
    pub now: Instant,
    decoder: Decoder,
    rx: BytesMut,
}

impl Harness {
    pub fn new(config: ServerConfig) -> Self {
        let now = Instant::from_secs(100);
        Self {
            session: ServerSession::new(config, now, 0x2A),
            now,
            decoder: Decoder::new(),
            rx: BytesMut::new(),
        }
    }

    /// A harness whose client connected with `connect` and was accepted.
    pub fn connected(config: ServerConfig, connect: Connect) -> Self {
        let mut h = Self::new(config);
        h.send(connect).unwrap();
        let events = h.events();
        assert!(matches!(events.as_slice(), [Event::ConnectRequest { .. }]));
        h.session
            .accept(h.now, false, ResumeState::default())
            .unwrap();
        assert_eq!(
            h.packets(),
            vec![Packet::ConnAck(midge_codec::ConnAck::new(
                midge_codec::ConnectReturnCode::Accepted,
                false
            ))]
        );
        h
    }

    pub fn advance(&mut self, d: Duration) {
        self.now = self.now.saturating_add(d);
    }

    pub fn send(&mut self, packet: impl Into<Packet>) -> Result<(), midge_broker::ProtocolError> {
        let bytes = encode(packet);
        self.session.handle_read(self.now, &bytes)
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), midge_broker::ProtocolError> {
        self.session.handle_read(self.now, bytes)
    }

    /// Everything the server sent since the last call, decoded.
    pub fn packets(&mut self) -> Vec<Packet> {
        let now = self.now;
        while self.session.poll_transmit(now, &mut self.rx) > 0 {}
        let mut out = Vec::new();
        while let Some(p) = self.decoder.decode(&mut self.rx).unwrap() {
            out.push(p);
        }
        assert!(self.rx.is_empty(), "partial packet left: {:?}", self.rx);
        out
    }

    pub fn events(&mut self) -> Vec<Event> {
        core::iter::from_fn(|| self.session.poll_event()).collect()
    }
}

pub fn encode(packet: impl Into<Packet>) -> BytesMut {
    let mut buf = BytesMut::new();
    packet.into().encode(&mut buf).unwrap();
    buf
}

pub fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

pub fn s(v: &str) -> MqttString {
    MqttString::new(v).unwrap()
}

pub fn topic(v: &str) -> Topic {
    Topic::new(v).unwrap()
}

pub fn filter(v: &str) -> Filter {
    Filter::new(v).unwrap()
}

pub fn connect(id: &str, clean: bool, keep_alive: u16) -> Connect {
    let mut c = Connect::new(s(id), keep_alive);
    c.clean_session = clean;
    c
}

pub fn connect_with_will(id: &str) -> Connect {
    let mut c = connect(id, true, 0);
    c.will = Some(LastWill {
        topic: topic("wills/x"),
        message: bytes::Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: false,
    });
    c
}

pub fn publish(t: &str, qos_pid: QosPid, payload: &'static [u8]) -> Publish {
    Publish::new(topic(t), qos_pid, payload)
}

/// A message as the router hands it to `deliver`: packet id is the session's business.
pub fn message(t: &str, qos: QoS, payload: &'static [u8]) -> Publish {
    let qos_pid = match qos {
        QoS::AtMostOnce => QosPid::AtMostOnce,
        QoS::AtLeastOnce => QosPid::AtLeastOnce(pid(1)),
        QoS::ExactlyOnce => QosPid::ExactlyOnce(pid(1)),
    };
    publish(t, qos_pid, payload)
}

pub fn subscribe(id: u16, filters: &[(&str, QoS)]) -> Subscribe {
    Subscribe::new(
        pid(id),
        filters
            .iter()
            .map(|(f, q)| SubscribeFilter::new(filter(f), *q))
            .collect(),
    )
}
