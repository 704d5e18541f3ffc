//! Invariants of ServerSession under random client input, router decisions,
//! deliveries and clock jumps.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::BTreeSet;

use bytes::BytesMut;
use common::*;
use midge_broker::{AckToken, Event, OverflowPolicy, ResumeState, ServerConfig, ServerSession};
use midge_codec::{
    ConnectReturnCode, Decoder, Packet, PacketId, PubAck, PubComp, PubRec, PubRel, QoS, QosPid,
    SubscribeReturnCode, Unsubscribe,
};
use midge_time::{Duration, Instant};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// A client packet, split in two reads at `split`.
    Client(Packet, usize),
    /// Raw bytes from the client.
    Raw(Vec<u8>),
    Deliver(u8, usize),
    Advance(u64),
    Decide(bool),
    AnswerSubscribes,
    AckAll,
    TransportClosed,
}

fn qos_pid() -> impl Strategy<Value = QosPid> {
    prop_oneof![
        Just(QosPid::AtMostOnce),
        (1_u16..6).prop_map(|n| QosPid::AtLeastOnce(pid(n))),
        (1_u16..6).prop_map(|n| QosPid::ExactlyOnce(pid(n))),
    ]
}

fn client_packet() -> impl Strategy<Value = Packet> {
    let id = 1_u16..6;
    prop_oneof![
        (
            any::<bool>(),
            0_u16..4,
            prop_oneof![Just(""), Just("c"), Just("other")]
        )
            .prop_map(|(clean, ka, name)| Packet::Connect(connect(name, clean, ka))),
        (qos_pid(), any::<bool>()).prop_map(|(qp, dup)| {
            let mut p = publish("a/b", qp, b"payload");
            p.dup = dup && qp != QosPid::AtMostOnce;
            Packet::Publish(p)
        }),
        id.clone().prop_map(|n| Packet::PubAck(PubAck::new(pid(n)))),
        id.clone().prop_map(|n| Packet::PubRec(PubRec::new(pid(n)))),
        id.clone().prop_map(|n| Packet::PubRel(PubRel::new(pid(n)))),
        id.clone()
            .prop_map(|n| Packet::PubComp(PubComp::new(pid(n)))),
        (id.clone(), 1_usize..4).prop_map(|(n, k)| {
            let filters: Vec<_> = ["a/#", "b", "+/c", "d"]
                .iter()
                .take(k)
                .map(|f| (*f, QoS::AtLeastOnce))
                .collect();
            Packet::Subscribe(subscribe(n, &filters))
        }),
        id.prop_map(|n| Packet::Unsubscribe(Unsubscribe::new(pid(n), vec![filter("b")]))),
        Just(Packet::PingReq),
        Just(Packet::Disconnect),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (client_packet(), any::<usize>()).prop_map(|(p, s)| Op::Client(p, s)),
        1 => proptest::collection::vec(any::<u8>(), 0..12).prop_map(Op::Raw),
        3 => (0_u8..3, 0_usize..24).prop_map(|(q, n)| Op::Deliver(q, n)),
        2 => (0_u64..20_000).prop_map(Op::Advance),
        2 => any::<bool>().prop_map(Op::Decide),
        2 => Just(Op::AnswerSubscribes),
        1 => Just(Op::AckAll),
        1 => Just(Op::TransportClosed),
    ]
}

fn config() -> impl Strategy<Value = ServerConfig> {
    (
        1_usize..4,
        0_usize..4,
        any::<bool>(),
        any::<bool>(),
        1_usize..4,
    )
        .prop_map(
            |(inflight, queued, oldest, ack_after_route, subs)| ServerConfig {
                max_inflight: inflight,
                max_queued_messages: queued,
                max_queued_bytes: 40,
                overflow_policy: if oldest {
                    OverflowPolicy::DropOldest
                } else {
                    OverflowPolicy::DropNewest
                },
                ack_after_route,
                max_subscriptions_per_client: subs,
                max_inbound_qos2: 3,
                max_inbound_unacked: 4,
                max_packet_size: 256,
                ..ServerConfig::default()
            },
        )
}

/// What the client has seen so far.
#[derive(Default)]
struct ClientView {
    decoder: Decoder,
    rx: BytesMut,
    seen_connack: bool,
    closed: bool,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn session_invariants_hold_under_random_input(config in config(), ops in proptest::collection::vec(op(), 1..60)) {
        let mut now = Instant::from_secs(1);
        let mut session = ServerSession::new(config.clone(), now, 1);
        let mut view = ClientView::default();
        let mut pending_subscribes: Vec<(PacketId, usize)> = Vec::new();
        let mut tokens: Vec<AckToken> = Vec::new();
        let mut awaiting_decision = false;

        for op in ops {
            let inflight_before: BTreeSet<u16> = session.inflight_ids().map(|p| p.get()).collect();
            match op {
                Op::Client(packet, split) => {
                    let bytes = encode(packet);
                    let at = split % (bytes.len() + 1);
                    let _ = session.handle_read(now, &bytes[..at]);
                    let _ = session.handle_read(now, &bytes[at..]);
                }
                Op::Raw(bytes) => {
                    let _ = session.handle_read(now, &bytes);
                }
                Op::Deliver(q, n) => {
                    let qos = QoS::from_u8(q).unwrap();
                    let payload: &'static [u8] = &[0x55; 24];
                    let _ = session.deliver(now, message("x/y", qos, &payload[..n]));
                }
                Op::Advance(ms) => {
                    now = now.saturating_add(Duration::from_millis(ms));
                    session.handle_timeout(now);
                }
                Op::Decide(yes) => {
                    let result = if yes {
                        session.accept(now, false, ResumeState::default())
                    } else {
                        session.refuse(now, ConnectReturnCode::NotAuthorized)
                    };
                    prop_assert_eq!(result.is_ok(), awaiting_decision);
                    awaiting_decision = false;
                }
                Op::AnswerSubscribes => {
                    for (id, n) in pending_subscribes.drain(..) {
                        let codes = vec![SubscribeReturnCode::Success(QoS::AtLeastOnce); n];
                        let result = session.suback(now, id, codes);
                        prop_assert!(result.is_ok() || session.is_closed());
                    }
                }
                Op::AckAll => {
                    for token in tokens.drain(..) {
                        let result = session.ack(now, token);
                        prop_assert!(result.is_ok() || session.is_closed());
                    }
                }
                Op::TransportClosed => session.handle_transport_closed(now),
            }

            // Outputs.
            let before = view.rx.len();
            while session.poll_transmit(now, &mut view.rx) > 0 {}
            let produced = view.rx.len() > before;
            if view.closed {
                prop_assert!(!produced, "bytes after Closed");
            }
            while let Some(packet) = view.decoder.decode(&mut view.rx).unwrap() {
                if !view.seen_connack {
                    prop_assert!(matches!(packet, Packet::ConnAck(_)), "first packet {:?}", packet);
                    view.seen_connack = true;
                }
                if let Packet::Publish(p) = &packet {
                    if let (Some(id), false) = (p.packet_id(), p.dup) {
                        prop_assert!(!inflight_before.contains(&id.get()), "id {} reused while in flight", id);
                    }
                }
            }
            while let Some(event) = session.poll_event() {
                prop_assert!(!view.closed, "event after Closed: {:?}", event);
                match event {
                    Event::ConnectRequest { .. } => awaiting_decision = true,
                    Event::Subscribe { packet_id, filters } => pending_subscribes.push((packet_id, filters.len())),
                    Event::Publish { ack: Some(token), .. } => tokens.push(token),
                    Event::Closed { .. } => {
                        view.closed = true;
                        awaiting_decision = false;
                    }
                    _ => {}
                }
            }
            prop_assert_eq!(view.closed, session.is_closed());

            // Bounded state.
            let ids: Vec<_> = session.inflight_ids().collect();
            let distinct: BTreeSet<_> = ids.iter().collect();
            prop_assert_eq!(ids.len(), distinct.len(), "two messages in flight with one id");
            prop_assert!(session.inflight_len() <= config.max_inflight);
            prop_assert!(session.queued_len() <= config.max_queued_messages);
            prop_assert!(session.queued_bytes() <= config.max_queued_bytes);
            prop_assert!(session.subscription_count() <= config.max_subscriptions_per_client);
            if session.is_closed() {
                prop_assert_eq!(session.poll_timeout(), None);
            }
        }
    }
}
