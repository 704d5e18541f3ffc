//! The MQTT client machine (`midge-session`), connected, then driven by the
//! fuzz input read as a list of operations: raw server bytes in arbitrary
//! chunks, well-formed server packets, clock jumps with timeouts, publishes,
//! subscribes, manual acks, disconnects and transport close + reconnect.
//!
//! Checks: no panic; everything the client writes decodes as valid MQTT;
//! nothing is written after DISCONNECT until the next `connect`; a delivery id
//! finishes (Delivered or Dropped) at most once; after `handle_timeout` the
//! next deadline lies in the future; after a protocol error nothing is written.
#![no_main]

use std::collections::BTreeMap;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use midge_codec::{
    ConnAck, ConnectReturnCode, Decoder, Packet, PacketId, PubAck, PubComp, PubRec, PubRel,
    Publish, QoS, QosPid, SubAck, SubscribeReturnCode, UnsubAck,
};
use midge_session::{AckToken, Client, ClientConfig, DeliveryId, Event, Instant};

struct Fuzz {
    client: Client,
    now: Instant,
    decoder: Decoder,
    after_disconnect: bool,
    finished: BTreeMap<DeliveryId, u32>,
    tokens: Vec<AckToken>,
}

impl Fuzz {
    fn drain(&mut self) {
        let mut buf = BytesMut::new();
        let count = self.client.poll_transmit(self.now, &mut buf);
        if count > 0 {
            assert!(!self.after_disconnect, "wrote after DISCONNECT");
        }
        let mut decoded = 0;
        while let Some(p) = self
            .decoder
            .decode(&mut buf)
            .expect("the client writes valid packets")
        {
            decoded += 1;
            if p == Packet::Disconnect {
                self.after_disconnect = true;
            }
        }
        assert!(buf.is_empty());
        assert_eq!(decoded, count);
        while let Some(event) = self.client.poll_event() {
            match event {
                Event::Delivered { id } | Event::Dropped { id } => {
                    let n = self.finished.entry(id).or_default();
                    *n += 1;
                    assert_eq!(*n, 1, "delivery finished twice");
                }
                Event::Message { ack: Some(t), .. } => {
                    if self.tokens.len() < 64 {
                        self.tokens.push(t);
                    }
                }
                _ => {}
            }
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        let failed = self.client.handle_read(self.now, bytes).is_err();
        if failed {
            let mut buf = BytesMut::new();
            assert_eq!(self.client.poll_transmit(self.now, &mut buf), 0);
            assert_eq!(self.client.poll_timeout(), None);
        }
        self.drain();
    }

    fn feed_packet(&mut self, packet: Packet) {
        let mut buf = BytesMut::new();
        if packet.encode(&mut buf).is_ok() {
            self.feed(&buf);
        }
    }

    fn reconnect(&mut self, session_present: bool) {
        self.client.handle_transport_closed(self.now);
        self.drain();
        if self.client.connect(self.now).is_ok() {
            self.after_disconnect = false;
            self.decoder = Decoder::new();
            self.drain();
            self.feed_packet(Packet::ConnAck(ConnAck::new(
                ConnectReturnCode::Accepted,
                session_present,
            )));
        }
    }
}

fn server_packet(selector: u8, id: u8) -> Packet {
    let pid = PacketId::new(u16::from(id % 8) + 1).unwrap_or(PacketId::new(1).unwrap());
    match selector % 9 {
        0 => Packet::PubAck(PubAck::new(pid)),
        1 => Packet::PubRec(PubRec::new(pid)),
        2 => Packet::PubComp(PubComp::new(pid)),
        3 => Packet::PubRel(PubRel::new(pid)),
        4 => Packet::SubAck(SubAck::new(pid, vec![SubscribeReturnCode::Failure])),
        5 => Packet::UnsubAck(UnsubAck::new(pid)),
        6 => Packet::PingResp,
        q => {
            let qos_pid = match id % 3 {
                0 => QosPid::AtMostOnce,
                1 => QosPid::AtLeastOnce(pid),
                _ => QosPid::ExactlyOnce(pid),
            };
            let mut p = Publish::new("f/t".try_into().unwrap(), qos_pid, &b"p"[..]);
            p.dup = q == 8 && qos_pid != QosPid::AtMostOnce;
            Packet::Publish(p)
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&setup, mut data)) = data.split_first() else {
        return;
    };
    let config = ClientConfig::new("fuzz")
        .with_clean_session(setup & 0x01 != 0)
        .with_manual_acks(setup & 0x02 != 0)
        .with_keep_alive(u16::from(setup >> 5) * 10)
        .with_inflight_window(u16::from((setup >> 2) & 0x07) + 1)
        .with_max_queued(16)
        .with_max_packet_size(4096);
    let Ok(client) = Client::new(config) else {
        return;
    };
    let mut f = Fuzz {
        client,
        now: Instant::from_secs(1),
        decoder: Decoder::new(),
        after_disconnect: false,
        finished: BTreeMap::new(),
        tokens: Vec::new(),
    };
    f.reconnect(false);

    let mut next = || -> Option<u8> {
        let (&b, rest) = data.split_first()?;
        data = rest;
        Some(b)
    };
    let mut ops = 0;
    while let Some(op) = next() {
        ops += 1;
        if ops > 512 {
            break;
        }
        let arg = next().unwrap_or(0);
        match op % 9 {
            0 => {
                let mut chunk = Vec::with_capacity(usize::from(arg % 64));
                for _ in 0..arg % 64 {
                    match next() {
                        Some(b) => chunk.push(b),
                        None => break,
                    }
                }
                f.feed(&chunk);
            }
            1 => {
                let millis = u64::from(arg) * u64::from(arg) * 50;
                f.now += std::time::Duration::from_millis(millis);
                f.client.handle_timeout(f.now);
                f.drain();
                if let Some(t) = f.client.poll_timeout() {
                    assert!(t > f.now, "deadline not in the future after handle_timeout");
                }
            }
            2 => {
                let qos = QoS::from_u8(arg % 3).unwrap_or_default();
                let _ = f.client.publish(f.now, "a/b", &b"payload"[..], qos, arg & 0x80 != 0);
                f.drain();
            }
            3 => {
                let _ = f.client.subscribe(f.now, &[("a/+", QoS::ExactlyOnce)]);
                f.drain();
            }
            4 => {
                let _ = f.client.unsubscribe(f.now, &["a/+"]);
                f.drain();
            }
            5 => {
                let id = next().unwrap_or(0);
                f.feed_packet(server_packet(arg, id));
            }
            6 => f.reconnect(arg & 0x01 != 0),
            7 => {
                f.client.disconnect(f.now);
                f.drain();
            }
            _ => {
                if !f.tokens.is_empty() {
                    let token = f.tokens.swap_remove(usize::from(arg) % f.tokens.len());
                    f.client.ack(f.now, token);
                    f.drain();
                }
            }
        }
    }
});
