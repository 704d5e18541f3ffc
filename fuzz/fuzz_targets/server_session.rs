//! Fuzz target for `midge-broker`'s `ServerSession`: raw client bytes in
//! arbitrary chunks, clock jumps with timeouts, router decisions, deliveries
//! and reconnects with the resume state, checking the session's invariants.
//!
//! Input: one configuration byte, then a program of one-byte opcodes (low
//! nibble) with their operands: 0-6 read `len` raw bytes (next byte, modulo
//! 128), 7 advance the clock and time out, 8 accept or refuse, 9-10 deliver,
//! 11 answer SUBSCRIBEs, 12 acknowledge routed messages, 13 transport closed,
//! 14 server close, 15 reconnect with the resume state. Raw reads dominate so
//! that the fuzzer can grow real packets from the seeds.
#![no_main]

use std::collections::BTreeSet;

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use midge_broker::{AckToken, Event, OverflowPolicy, ResumeState, ServerConfig, ServerSession};
use midge_broker::{Duration, Instant};
use midge_codec::{
    ConnectReturnCode, Decoder, Packet, PacketId, Publish, QoS, QosPid, SubscribeReturnCode, Topic,
};

fn config(bits: u8) -> ServerConfig {
    ServerConfig {
        max_inflight: usize::from(bits & 0x03) + 1,
        max_queued_messages: usize::from((bits >> 2) & 0x03),
        max_queued_bytes: 64,
        overflow_policy: if bits & 0x10 != 0 {
            OverflowPolicy::DropOldest
        } else {
            OverflowPolicy::DropNewest
        },
        ack_after_route: bits & 0x20 != 0,
        allow_zero_length_client_id: bits & 0x40 == 0,
        max_subscriptions_per_client: 3,
        max_inbound_qos2: 4,
        max_inbound_unacked: 4,
        max_packet_size: if bits & 0x80 != 0 { 64 } else { 4096 },
        max_client_id_len: 16,
        max_unsent_bytes: if bits & 0x02 != 0 { 1 } else { 1 << 20 },
        ..ServerConfig::default()
    }
}

/// The client's side of one connection, for the invariants.
struct Conn {
    session: ServerSession,
    decoder: Decoder,
    rx: BytesMut,
    seen_connack: bool,
    closed: bool,
    awaiting_decision: bool,
    clean_session: bool,
    subscribes: Vec<(PacketId, usize)>,
    tokens: Vec<AckToken>,
}

impl Conn {
    fn new(config: ServerConfig, now: Instant, seed: u64) -> Self {
        Self {
            session: ServerSession::new(config, now, seed),
            decoder: Decoder::new(),
            rx: BytesMut::new(),
            seen_connack: false,
            closed: false,
            awaiting_decision: false,
            clean_session: true,
            subscribes: Vec::new(),
            tokens: Vec::new(),
        }
    }

    /// Drains the outputs and checks the invariants after one input.
    /// `inflight_before` holds the ids in flight before an input that cannot
    /// free one (no client bytes processed): a fresh PUBLISH must not use them.
    fn check(&mut self, now: Instant, inflight_before: &BTreeSet<u16>, config: &ServerConfig) {
        let before = self.rx.len();
        while self.session.poll_transmit(now, &mut self.rx) > 0 {}
        assert!(
            !(self.closed && self.rx.len() > before),
            "bytes produced after Closed"
        );
        // What the server sends must decode; the client decoder sees every byte.
        while let Some(packet) = self
            .decoder
            .decode(&mut self.rx)
            .expect("server output decodes")
        {
            if !self.seen_connack {
                assert!(
                    matches!(packet, Packet::ConnAck(_)),
                    "first packet {packet:?}"
                );
                self.seen_connack = true;
            }
            if let Packet::Publish(p) = &packet {
                if let (Some(id), false) = (p.packet_id(), p.dup) {
                    assert!(!inflight_before.contains(&id.get()), "id {id} reused");
                }
            }
        }
        while let Some(event) = self.session.poll_event() {
            assert!(!self.closed, "event after Closed: {event:?}");
            match event {
                Event::ConnectRequest { clean_session, .. } => {
                    self.awaiting_decision = true;
                    self.clean_session = clean_session;
                }
                Event::Subscribe { packet_id, filters } => {
                    assert!(!filters.is_empty());
                    self.subscribes.push((packet_id, filters.len()));
                }
                Event::Publish {
                    ack: Some(token), ..
                } => self.tokens.push(token),
                Event::Closed { .. } => {
                    self.closed = true;
                    self.awaiting_decision = false;
                }
                _ => {}
            }
        }
        assert_eq!(self.closed, self.session.is_closed());
        let ids: Vec<_> = self.session.inflight_ids().collect();
        let distinct: BTreeSet<_> = ids.iter().collect();
        assert_eq!(
            ids.len(),
            distinct.len(),
            "two messages in flight with one id"
        );
        assert!(self.session.queued_len() <= config.max_queued_messages);
        assert!(self.session.queued_bytes() <= config.max_queued_bytes);
        assert!(self.session.subscription_count() <= config.max_subscriptions_per_client);
        if self.closed {
            assert_eq!(self.session.poll_timeout(), None);
        }
    }
}

fn run(data: &[u8]) {
    let Some((&bits, mut program)) = data.split_first() else {
        return;
    };
    let config = config(bits);
    let mut now = Instant::from_secs(1);
    let mut seed = 1;
    let mut conn = Conn::new(config.clone(), now, seed);
    let mut resume = ResumeState::default();
    let topic = Topic::from_static("x/y").expect("valid topic");
    let payload = Bytes::from_static(&[0xA5; 96]); // longest: (255 / 48) * 16 = 80

    while let Some((&op, rest)) = program.split_first() {
        program = rest;
        let mut inflight_before: BTreeSet<u16> =
            conn.session.inflight_ids().map(PacketId::get).collect();
        // Client bytes (read now, or buffered until accept) may acknowledge
        // and so free an id that a released message then reuses, legitimately.
        if matches!(op % 16, 0..=6 | 8) {
            inflight_before.clear();
        }
        match op % 16 {
            // Raw read: a length byte (up to 127), then that many bytes.
            0..=6 => {
                let Some((&len, rest)) = program.split_first() else {
                    break;
                };
                let len = usize::from(len % 128).min(rest.len());
                let (chunk, rest) = rest.split_at(len);
                program = rest;
                let _ = conn.session.handle_read(now, chunk);
            }
            // Clock jump and timeout, early or late.
            7 => {
                let step = u64::from(op / 16) * 1_700 + 1;
                now = now.saturating_add(Duration::from_millis(step));
                conn.session.handle_timeout(now);
            }
            8 => {
                let accepted = if op & 0x10 != 0 {
                    conn.session
                        .refuse(now, ConnectReturnCode::NotAuthorized)
                        .is_ok()
                } else {
                    let state = if conn.clean_session {
                        ResumeState::default()
                    } else {
                        std::mem::take(&mut resume)
                    };
                    let present = !conn.clean_session && op & 0x20 != 0;
                    conn.session.accept(now, present, state).is_ok()
                };
                assert_eq!(accepted, conn.awaiting_decision);
                conn.awaiting_decision = false;
            }
            9 | 10 => {
                let qos = QoS::from_u8((op / 16) % 3).unwrap_or_default();
                let qos_pid = match qos {
                    QoS::AtMostOnce => QosPid::AtMostOnce,
                    QoS::AtLeastOnce => QosPid::AtLeastOnce(PacketId::new(1).expect("non-zero")),
                    QoS::ExactlyOnce => QosPid::ExactlyOnce(PacketId::new(1).expect("non-zero")),
                };
                let len = usize::from(op / 48) * 16;
                let publish = Publish::new(topic.clone(), qos_pid, payload.slice(..len));
                let _ = conn.session.deliver(now, publish);
            }
            11 => {
                for (id, n) in std::mem::take(&mut conn.subscribes) {
                    let code = if op & 0x10 != 0 {
                        SubscribeReturnCode::Failure
                    } else {
                        SubscribeReturnCode::Success(QoS::AtLeastOnce)
                    };
                    let result = conn.session.suback(now, id, vec![code; n]);
                    assert!(result.is_ok() || conn.closed);
                }
            }
            12 => {
                for token in std::mem::take(&mut conn.tokens) {
                    let result = conn.session.ack(now, token);
                    assert!(result.is_ok() || conn.closed);
                }
            }
            13 => conn.session.handle_transport_closed(now),
            14 => conn.session.close(now),
            // The connection ends; the client reconnects with the persistent state.
            _ => {
                conn.session.handle_transport_closed(now);
                conn.check(now, &inflight_before, &config);
                seed += 1;
                let old = std::mem::replace(&mut conn, Conn::new(config.clone(), now, seed));
                resume = old.session.into_resume_state();
                continue;
            }
        }
        conn.check(now, &inflight_before, &config);
    }
}

fuzz_target!(|data: &[u8]| run(data));
