//! Scripted scenarios: a fake server's packets in, the client's packets and
//! events out, on a virtual clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use bytes::BytesMut;
use common::*;
use midge_codec::{
    ConnAck, ConnectReturnCode, DecodeError, Packet, PacketType, QoS, SubscribeReturnCode,
};
use midge_session::{
    Client, ClientConfig, ConnectionState, DisconnectReason, Event, ProtocolError, UsageError,
};
use midge_time::Duration;

// ----- CONNECT / CONNACK -----

#[test]
fn connect_carries_every_configured_field() {
    let will = midge_codec::LastWill {
        topic: "clients/a/status".try_into().unwrap(),
        message: bytes::Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: true,
    };
    let config = ClientConfig::new("a")
        .with_clean_session(false)
        .with_keep_alive(17)
        .with_will(will.clone())
        .with_credentials("user", Some(bytes::Bytes::from_static(b"pw")))
        .with_protocol(midge_codec::Protocol::V3_1);
    let mut h = Harness::new(config);
    h.client.connect(h.now).unwrap();
    let sent = h.transmit();
    let [Packet::Connect(c)] = sent.as_slice() else {
        panic!("expected CONNECT, got {sent:?}");
    };
    assert_eq!(c.client_id.as_str(), "a");
    assert!(!c.clean_session);
    assert_eq!(c.keep_alive, 17);
    assert_eq!(c.will.as_ref(), Some(&will));
    assert_eq!(c.username.as_ref().map(|u| u.as_str()), Some("user"));
    assert_eq!(c.password.as_deref(), Some(&b"pw"[..]));
    assert_eq!(c.protocol, midge_codec::Protocol::V3_1);
    assert_eq!(h.client.state(), ConnectionState::Connecting);
}

#[test]
fn mqtt_3_1_3_7_empty_client_id_requires_clean_session() {
    assert_eq!(
        Client::new(ClientConfig::new("").with_clean_session(false)).err(),
        Some(UsageError::EmptyClientIdNeedsCleanSession)
    );
    assert!(Client::new(ClientConfig::new("")).is_ok());
}

#[test]
fn invalid_configurations_are_refused_at_construction() {
    let mut config = ClientConfig::new("a");
    config.password = Some(bytes::Bytes::from_static(b"pw"));
    assert!(matches!(
        Client::new(config),
        Err(UsageError::InvalidConnect(_))
    ));
    assert_eq!(
        Client::new(ClientConfig::new("a").with_inflight_window(0)).err(),
        Some(UsageError::InvalidInflightWindow)
    );
    assert!(matches!(
        Client::new(ClientConfig::new("nul\0")),
        Err(UsageError::InvalidString(_))
    ));
}

#[test]
fn connect_twice_is_a_usage_error() {
    let mut h = Harness::connect(ClientConfig::new("a"));
    assert_eq!(h.client.connect(h.now), Err(UsageError::AlreadyConnected));
}

#[test]
fn every_refusing_connack_code_ends_the_connection() {
    for code in [
        ConnectReturnCode::UnacceptableProtocolVersion,
        ConnectReturnCode::IdentifierRejected,
        ConnectReturnCode::ServerUnavailable,
        ConnectReturnCode::BadUsernameOrPassword,
        ConnectReturnCode::NotAuthorized,
    ] {
        let mut h = Harness::new(ClientConfig::new("a"));
        h.client.connect(h.now).unwrap();
        h.transmit();
        // A PUBLISH right behind the refusal is not looked at.
        let mut bytes = BytesMut::new();
        Packet::ConnAck(ConnAck::new(code, false))
            .encode(&mut bytes)
            .unwrap();
        server_publish("t", QoS::AtLeastOnce, 1, b"x")
            .encode(&mut bytes)
            .unwrap();
        h.client.handle_read(h.now, &bytes).unwrap();
        assert_eq!(
            h.events(),
            vec![
                Event::ConnectionRefused { code },
                Event::Disconnected {
                    reason: DisconnectReason::Refused(code)
                }
            ]
        );
        assert_eq!(h.client.state(), ConnectionState::Disconnected);
        assert!(h.transmit().is_empty());
        assert_eq!(h.client.poll_timeout(), None);
    }
}

#[test]
fn accepted_connack_connects() {
    let h = Harness::connect(ClientConfig::new("a"));
    assert_eq!(h.client.state(), ConnectionState::Connected);
}

#[test]
fn a_packet_before_connack_is_a_protocol_error() {
    let mut h = Harness::new(ClientConfig::new("a"));
    h.client.connect(h.now).unwrap();
    h.transmit();
    let err = h.server(Packet::PingResp).unwrap_err();
    assert_eq!(err, ProtocolError::ConnAckExpected(PacketType::PingResp));
    assert_eq!(err.statement(), Some("MQTT-3.2.0-1"));
    assert_eq!(
        h.events(),
        vec![Event::Disconnected {
            reason: DisconnectReason::Protocol(err)
        }]
    );
}

#[test]
fn second_connack_and_client_only_packets_are_protocol_errors() {
    let mut h = Harness::connect(ClientConfig::new("a"));
    let err = h
        .server(Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::Accepted,
            false,
        )))
        .unwrap_err();
    assert_eq!(err, ProtocolError::DuplicateConnAck);
    for packet in [Packet::PingReq, Packet::Disconnect] {
        let mut h = Harness::connect(ClientConfig::new("a"));
        let err = h.server(packet.clone()).unwrap_err();
        assert_eq!(err, ProtocolError::UnexpectedPacket(packet.packet_type()));
        assert_eq!(h.client.state(), ConnectionState::Disconnected);
        // Further bytes are ignored: the caller closes the transport.
        assert_eq!(h.server(Packet::PingResp), Ok(()));
        assert!(h.transmit().is_empty());
    }
}

#[test]
fn session_present_on_a_clean_session_is_a_protocol_error() {
    let mut h = Harness::new(ClientConfig::new("a"));
    h.client.connect(h.now).unwrap();
    h.transmit();
    let err = h
        .server(Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::Accepted,
            true,
        )))
        .unwrap_err();
    assert_eq!(err, ProtocolError::SessionPresentOnCleanSession);
}

#[test]
fn malformed_bytes_are_a_protocol_error() {
    let mut h = Harness::connect(ClientConfig::new("a"));
    let err = h.client.handle_read(h.now, &[0x00, 0x00]).unwrap_err();
    assert_eq!(
        err,
        ProtocolError::Decode(DecodeError::ReservedPacketType(0))
    );
    assert!(matches!(
        h.events().as_slice(),
        [Event::Disconnected {
            reason: DisconnectReason::Protocol(_)
        }]
    ));
}

#[test]
fn oversized_inbound_packet_is_refused_before_buffering() {
    let mut h = Harness::connect(ClientConfig::new("a").with_max_packet_size(64));
    let big = server_publish("t", QoS::AtMostOnce, 0, &[0u8; 100]);
    let err = h.server(big).unwrap_err();
    assert!(matches!(
        err,
        ProtocolError::Decode(DecodeError::PacketTooLarge { .. })
    ));
}

#[test]
fn packets_split_at_every_byte_are_decoded_the_same() {
    let mut bytes = BytesMut::new();
    Packet::ConnAck(ConnAck::new(ConnectReturnCode::Accepted, false))
        .encode(&mut bytes)
        .unwrap();
    server_publish("a/b", QoS::AtLeastOnce, 9, b"hello")
        .encode(&mut bytes)
        .unwrap();
    let mut h = Harness::new(ClientConfig::new("a"));
    h.client.connect(h.now).unwrap();
    h.transmit();
    for b in bytes.iter() {
        h.client.handle_read(h.now, &[*b]).unwrap();
    }
    let events = h.events();
    assert_eq!(events.len(), 2);
    assert!(matches!(&events[1], Event::Message { publish, .. } if publish.payload == "hello"));
    assert_eq!(h.transmit(), vec![puback(9)]);
}

#[test]
fn connack_timeout_ends_the_attempt() {
    let mut h = Harness::new(ClientConfig::new("a").with_connack_timeout(Duration::from_secs(5)));
    h.client.connect(h.now).unwrap();
    h.transmit();
    let deadline = h.now + Duration::from_secs(5);
    assert_eq!(h.client.poll_timeout(), Some(deadline));
    h.advance(Duration::from_millis(4_999));
    h.client.handle_timeout(h.now);
    assert!(h.events().is_empty());
    h.advance(Duration::from_millis(1));
    h.client.handle_timeout(h.now);
    assert_eq!(
        h.events(),
        vec![Event::Disconnected {
            reason: DisconnectReason::ConnAckTimeout
        }]
    );
    assert_eq!(h.client.poll_timeout(), None);
}

// ----- keep alive -----

#[test]
fn mqtt_3_1_2_23_pingreq_exactly_when_idle_for_keep_alive() {
    let mut h = Harness::connect(ClientConfig::new("a").with_keep_alive(10));
    let start = h.now;
    assert_eq!(
        h.client.poll_timeout(),
        Some(start + Duration::from_secs(10))
    );
    // Early and spurious calls do nothing.
    h.advance(Duration::from_millis(9_999));
    h.client.handle_timeout(h.now);
    assert!(h.transmit().is_empty());
    // Sending something pushes the deadline out.
    h.client
        .publish(h.now, "t", &b"x"[..], QoS::AtMostOnce, false)
        .unwrap();
    assert_eq!(h.transmit().len(), 1);
    let after_send = h.now;
    assert_eq!(
        h.client.poll_timeout(),
        Some(after_send + Duration::from_secs(10))
    );
    h.advance(Duration::from_secs(10));
    h.client.handle_timeout(h.now);
    assert_eq!(h.transmit(), vec![Packet::PingReq]);
    // Now waiting for PINGRESP, by default for one keep alive interval.
    assert_eq!(
        h.client.poll_timeout(),
        Some(h.now + Duration::from_secs(10))
    );
    // A second call before PINGRESP sends no second PINGREQ.
    h.client.handle_timeout(h.now);
    assert!(h.transmit().is_empty());
    h.advance(Duration::from_secs(1));
    h.server(Packet::PingResp).unwrap();
    let ping_sent = h.now.saturating_sub(Duration::from_secs(1));
    assert_eq!(
        h.client.poll_timeout(),
        Some(ping_sent + Duration::from_secs(10))
    );
    assert!(h
        .events()
        .iter()
        .all(|e| !matches!(e, Event::Disconnected { .. })));
}

#[test]
fn mqtt_3_1_2_23_late_pingresp_declares_the_connection_dead() {
    let mut h = Harness::connect(
        ClientConfig::new("a")
            .with_keep_alive(30)
            .with_ping_timeout(Duration::from_secs(5)),
    );
    h.events();
    h.advance(Duration::from_secs(30));
    h.client.handle_timeout(h.now);
    assert_eq!(h.transmit(), vec![Packet::PingReq]);
    assert_eq!(
        h.client.poll_timeout(),
        Some(h.now + Duration::from_secs(5))
    );
    h.advance(Duration::from_secs(5));
    h.client.handle_timeout(h.now);
    assert_eq!(
        h.events(),
        vec![Event::Disconnected {
            reason: DisconnectReason::KeepAliveTimeout
        }]
    );
    assert_eq!(h.client.state(), ConnectionState::Disconnected);
    assert!(h.transmit().is_empty());
    // The transport close that follows adds no second event.
    h.client.handle_transport_closed(h.now);
    assert!(h.events().is_empty());
}

#[test]
fn keep_alive_zero_runs_no_timer() {
    let mut h = Harness::connect(ClientConfig::new("a").with_keep_alive(0));
    assert_eq!(h.client.poll_timeout(), None);
    h.advance(Duration::from_secs(100_000));
    h.client.handle_timeout(h.now);
    assert!(h.transmit().is_empty());
}

#[test]
fn a_clock_jump_sends_one_pingreq_then_times_out() {
    let mut h = Harness::connect(ClientConfig::new("a").with_keep_alive(5));
    h.advance(Duration::from_secs(3_600));
    h.client.handle_timeout(h.now);
    assert_eq!(h.transmit(), vec![Packet::PingReq]);
    h.advance(Duration::from_secs(3_600));
    h.client.handle_timeout(h.now);
    assert_eq!(
        h.events(),
        vec![Event::Disconnected {
            reason: DisconnectReason::KeepAliveTimeout
        }]
    );
}

// ----- outbound publishes -----

#[test]
fn mqtt_4_3_1_1_qos0_goes_out_once_with_dup_clear_and_is_delivered_when_written() {
    let mut h = Harness::connect(ClientConfig::new("a"));
    let id = h
        .client
        .publish(h.now, "a/b", &b"x"[..], QoS::AtMostOnce, true)
        .unwrap();
    assert!(h.events().is_empty());
    let sent = h.transmit();
    let [Packet::Publish(p)] = sent.as_slice() else {
        panic!("{sent:?}")
    };
    assert!(!p.dup && p.retain);
    assert_eq!(p.qos(), QoS::AtMostOnce);
    assert_eq!(h.events(), vec![Event::Delivered { id }]);
    assert_eq!(h.client.inflight_len(), 0);
}

#[test]
fn qos0_while_not_connected_is_refused() {
    let mut h = Harness::new(ClientConfig::new("a"));
    assert_eq!(
        h.client
            .publish(h.now, "t", &b""[..], QoS::AtMostOnce, false),
        Err(UsageError::NotConnected)
    );
}

/// Publishes `n` QoS 0 messages and returns their ids.
fn publish_qos0(h: &mut Harness, n: usize) -> Vec<midge_session::DeliveryId> {
    (0..n)
        .map(|_| {
            h.client
                .publish(h.now, "t", &b"x"[..], QoS::AtMostOnce, false)
                .unwrap()
        })
        .collect()
}

#[test]
fn qos0_publishes_not_yet_written_are_held_to_max_queued() {
    let mut h = Harness::connect(ClientConfig::new("a").with_max_queued(3));
    let ids = publish_qos0(&mut h, 3);
    assert_eq!(h.client.queued_qos0_len(), 3);
    assert_eq!(
        h.client
            .publish(h.now, "t", &b"x"[..], QoS::AtMostOnce, false),
        Err(UsageError::QueueFull { max: 3 })
    );
    // The refused publish changed nothing: three go out, three delivered.
    assert_eq!(publishes(&h.transmit()), vec![(None, false); 3]);
    let delivered: Vec<Event> = ids.into_iter().map(|id| Event::Delivered { id }).collect();
    assert_eq!(h.events(), delivered);
    assert_eq!(h.client.queued_qos0_len(), 0);
    // Written: room again.
    publish_qos0(&mut h, 3);
    assert_eq!(h.client.queued_qos0_len(), 3);
}

#[test]
fn qos0_and_queued_qos1_share_the_max_queued_limit() {
    let mut h = Harness::connect(
        ClientConfig::new("a")
            .with_inflight_window(1)
            .with_max_queued(2),
    );
    let publish = |h: &mut Harness, qos| h.client.publish(h.now, "t", &b"x"[..], qos, false);
    // Into the window: not counted.
    publish(&mut h, QoS::AtLeastOnce).unwrap();
    // Behind the full window: one waiting.
    publish(&mut h, QoS::AtLeastOnce).unwrap();
    // QoS 0 not yet written: two waiting.
    publish(&mut h, QoS::AtMostOnce).unwrap();
    assert_eq!((h.client.queued_len(), h.client.queued_qos0_len()), (1, 1));
    let full = Err(UsageError::QueueFull { max: 2 });
    assert_eq!(publish(&mut h, QoS::AtMostOnce), full);
    assert_eq!(publish(&mut h, QoS::ExactlyOnce), full);
    // Writing the QoS 0 message frees its place, for either kind.
    assert_eq!(
        publishes(&h.transmit()),
        vec![(Some(1), false), (None, false)]
    );
    publish(&mut h, QoS::AtMostOnce).unwrap();
    assert_eq!(publish(&mut h, QoS::AtLeastOnce), full);
    h.transmit();
    publish(&mut h, QoS::AtLeastOnce).unwrap();
    assert_eq!((h.client.queued_len(), h.client.queued_qos0_len()), (2, 0));
}

#[test]
fn unwritten_qos0_dropped_with_the_connection_frees_the_limit() {
    let mut h = Harness::connect(ClientConfig::new("a").with_max_queued(1));
    let [id] = publish_qos0(&mut h, 1)[..] else {
        panic!("one id")
    };
    assert_eq!(
        h.client
            .publish(h.now, "t", &b"x"[..], QoS::AtMostOnce, false),
        Err(UsageError::QueueFull { max: 1 })
    );
    h.client.handle_transport_closed(h.now);
    assert!(h.events().contains(&Event::Dropped { id }));
    assert_eq!(h.client.queued_qos0_len(), 0);
    h.reconnect(false);
    h.events();
    publish_qos0(&mut h, 1);
    assert_eq!(publishes(&h.transmit()), vec![(None, false)]);
}

#[test]
fn qos0_written_before_disconnect_counts_no_more() {
    let mut h = Harness::connect(ClientConfig::new("a").with_max_queued(2));
    publish_qos0(&mut h, 2);
    h.client.disconnect(h.now);
    let sent = h.transmit();
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert_eq!(sent.last(), Some(&Packet::Disconnect));
    assert_eq!(h.client.queued_qos0_len(), 0);
}

#[test]
fn max_queued_zero_refuses_qos0_but_the_window_still_takes_qos1() {
    let mut h = Harness::connect(ClientConfig::new("a").with_max_queued(0));
    assert_eq!(
        h.client
            .publish(h.now, "t", &b"x"[..], QoS::AtMostOnce, false),
        Err(UsageError::QueueFull { max: 0 })
    );
    h.client
        .publish(h.now, "t", &b"x"[..], QoS::AtLeastOnce, false)
        .unwrap();
    assert_eq!(publishes(&h.transmit()), vec![(Some(1), false)]);
}

#[test]
fn bad_topics_and_filters_are_usage_errors() {
    let mut h = Harness::connect(ClientConfig::new("a"));
    assert!(matches!(
        h.client
            .publish(h.now, "a/+", &b""[..], QoS::AtLeastOnce, false),
        Err(UsageError::InvalidTopicName(_))
    ));
    assert!(matches!(
        h.client
            .publish(h.now, "", &b""[..], QoS::AtMostOnce, false),
        Err(UsageError::InvalidTopicName(_))
    ));
    assert!(matches!(
        h.client.subscribe(h.now, &[("a/#/b", QoS::AtMostOnce)]),
        Err(UsageError::InvalidTopicFilter(_))
    ));
    assert_eq!(h.client.subscribe(h.now, &[]), Err(UsageError::NoFilters));
    assert_eq!(h.client.unsubscribe(h.now, &[]), Err(UsageError::NoFilters));
    assert!(h.transmit().is_empty());
}

#[test]
fn mqtt_4_3_2_1_qos1_sender_holds_the_message_until_puback() {
    let mut h = Harness::connect(ClientConfig::new("a"));
    let id = h
        .client
        .publish(h.now, "t", &b"x"[..], QoS::AtLeastOnce, false)
        .unwrap();
    let sent = h.transmit();
    assert_eq!(publishes(&sent), vec![(Some(1), false)]);
    assert_eq!(h.client.inflight_len(), 1);
    h.server(pubrec(1)).unwrap(); // wrong acknowledgement for QoS 1: ignored
    h.server(pubcomp(1)).unwrap();
    assert!(h.events().is_empty());
    assert_eq!(h.client.stats().unexpected_acks, 2);
    h.server(puback(1)).unwrap();
    assert_eq!(h.events(), vec![Event::Delivered { id }]);
    assert_eq!(h.client.inflight_len(), 0);
    // A duplicate PUBACK is tolerated.
    h.server(puback(1)).unwrap();
    assert!(h.events().is_empty());
    assert_eq!(h.client.stats().unexpected_acks, 3);
}

#[test]
fn mqtt_4_3_3_1_qos2_sender_pubrel_after_pubrec_done_at_pubcomp() {
    let mut h = Harness::connect(ClientConfig::new("a"));
    let id = h
        .client
        .publish(h.now, "t", &b"x"[..], QoS::ExactlyOnce, false)
        .unwrap();
    assert_eq!(publishes(&h.transmit()), vec![(Some(1), false)]);
    h.server(puback(1)).unwrap(); // not the acknowledgement QoS 2 waits for
    assert!(h.events().is_empty());
    h.server(pubrec(1)).unwrap();
    assert_eq!(h.transmit(), vec![pubrel(1)]);
    assert!(h.events().is_empty());
    // A repeated PUBREC gets the PUBREL again, never the PUBLISH.
    h.server(pubrec(1)).unwrap();
    assert_eq!(h.transmit(), vec![pubrel(1)]);
    h.server(pubcomp(1)).unwrap();
    assert_eq!(h.events(), vec![Event::Delivered { id }]);
    assert_eq!(h.client.inflight_len(), 0);
}

// covers: MQTT-2.3.1-3
#[test]
fn mqtt_2_3_1_2_packet_ids_are_never_reused_while_in_flight() {
    let mut h = Harness::connect(ClientConfig::new("a").with_inflight_window(3));
    let sub = h
        .client
        .subscribe(h.now, &[("s", QoS::AtMostOnce)])
        .unwrap();
    for _ in 0..3 {
        h.client
            .publish(h.now, "t", &b"x"[..], QoS::AtLeastOnce, false)
            .unwrap();
    }
    let sent = h.transmit();
    assert!(matches!(&sent[0], Packet::Subscribe(s) if s.packet_id == pid(1)));
    assert_eq!(
        publishes(&sent),
        vec![(Some(2), false), (Some(3), false), (Some(4), false)]
    );
    // Free 3: the next publish gets 5, not 3 (ids advance), and ids wrap
    // past 65535 to 1 only skipping those still held.
    h.server(puback(3)).unwrap();
    h.client
        .publish(h.now, "t", &b"x"[..], QoS::AtLeastOnce, false)
        .unwrap();
    assert_eq!(publishes(&h.transmit()), vec![(Some(5), false)]);
    h.server(suback(1, &[SubscribeReturnCode::Success(QoS::AtMostOnce)]))
        .unwrap();
    assert!(h.events().contains(&Event::Subscribed {
        id: sub,
        results: vec![SubscribeReturnCode::Success(QoS::AtMostOnce)]
    }));
}

#[test]
fn mqtt_2_3_1_2_wrap_around_skips_ids_still_in_use() {
    let mut h = Harness::connect(ClientConfig::new("a").with_inflight_window(2));
    // Id 1 stays in flight for the whole test.
    h.client
        .publish(h.now, "t", &b"x"[..], QoS::AtLeastOnce, false)
        .unwrap();
    h.transmit();
    for expected in 2..=u16::MAX {
        h.client
            .publish(h.now, "t", &b"x"[..], QoS::AtLeastOnce, false)
            .unwrap();
        assert_eq!(publishes(&h.transmit()), vec![(Some(expected), false)]);
        h.server(puback(expected)).unwrap();
    }
    h.client
        .publish(h.now, "t", &b"x"[..], QoS::AtLeastOnce, false)
        .unwrap();
    // 65535 -> 1 is taken -> 2.
    assert_eq!(publishes(&h.transmit()), vec![(Some(2), false)]);
}

#[test]
fn publishes_beyond_the_window_queue_and_follow_in_order() {
    let mut h = Harness::connect(
        ClientConfig::new("a")
            .with_inflight_window(2)
            .with_max_queued(2),
    );
    let ids: Vec<_> = (0..4)
        .map(|_| {
            h.client
                .publish(h.now, "t", &b"x"[..], QoS::AtLeastOnce, false)
                .unwrap()
        })
        .collect();
    assert_eq!(
        h.client
            .publish(h.now, "t", &b"x"[..], QoS::ExactlyOnce, false),
        Err(UsageError::QueueFull { max: 2 })
    );
    assert_eq!(h.client.inflight_len(), 2);
    assert_eq!(h.client.queued_len(), 2);
    assert_eq!(
        publishes(&h.transmit()),
        vec![(Some(1), false), (Some(2), false)]
    );
    h.server(puback(2)).unwrap();
    assert_eq!(publishes(&h.transmit()), vec![(Some(3), false)]);
    h.server(puback(1)).unwrap();
    h.server(puback(3)).unwrap();
    assert_eq!(publishes(&h.transmit()), vec![(Some(4), false)]);
    h.server(puback(4)).unwrap();
    assert_eq!(
        h.events(),
        vec![
            Event::Delivered { id: ids[1] },
            Event::Delivered { id: ids[0] },
            Event::Delivered { id: ids[2] },
            Event::Delivered { id: ids[3] },
        ]
    );
}

#[test]
fn qos1_published_while_disconnected_goes_out_after_connack() {
    let mut h = Harness::new(ClientConfig::new("a"));
    let id = h
        .client
        .publish(h.now, "t", &b"x"[..], QoS::AtLeastOnce, false)
        .unwrap();
    assert!(h.transmit().is_empty());
    let sent = h.reconnect(false);
    assert_eq!(publishes(&sent), vec![(Some(1), false)]);
    h.server(puback(1)).unwrap();
    assert!(h.events().contains(&Event::Delivered { id }));
}

// ----- inbound publishes -----

// covers: MQTT-2.3.1-6, MQTT-4.5.0-2
#[test]
fn mqtt_3_3_4_1_receiver_answers_each_publish_as_its_qos_demands() {
    let mut h = Harness::connect(ClientConfig::new("a"));
    h.server(server_publish("t", QoS::AtMostOnce, 0, b"0"))
        .unwrap();
    h.server(server_publish("t", QoS::AtLeastOnce, 7, b"1"))
        .unwrap();
    h.server(server_publish("t", QoS::ExactlyOnce, 8, b"2"))
        .unwrap();
    // The application reads no event at all; the acknowledgements still go.
    assert_eq!(h.transmit(), vec![puback(7), pubrec(8)]);
    h.server(pubrel(8)).unwrap();
    assert_eq!(h.transmit(), vec![pubcomp(8)]);
    assert_eq!(h.events().len(), 3);
}

#[test]
fn mqtt_4_3_2_2_qos1_receiver_treats_a_reused_id_as_a_new_message() {
    let mut h = Harness::connect(ClientConfig::new("a"));
    h.server(server_publish("t", QoS::AtLeastOnce, 5, b"first"))
        .unwrap();
    assert_eq!(h.transmit(), vec![puback(5)]);
    h.server(server_publish("t", QoS::AtLeastOnce, 5, b"second"))
        .unwrap();
    assert_eq!(h.transmit(), vec![puback(5)]);
    let payloads: Vec<_> = h
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Message { publish, ack: None } => Some(publish.payload),
            _ => None,
        })
        .collect();
    assert_eq!(payloads, vec!["first", "second"]);
}

#[test]
fn mqtt_4_3_3_2_qos2_delivered_once_despite_duplicate_publish() {
    let mut h = Harness::connect(ClientConfig::new("a"));
    h.server(server_publish("t", QoS::ExactlyOnce, 3, b"x"))
        .unwrap();
    assert_eq!(h.transmit(), vec![pubrec(3)]);
    let mut dup = server_publish("t", QoS::ExactlyOnce, 3, b"x");
    if let Packet::Publish(p) = &mut dup {
        p.dup = true;
    }
    h.server(dup).unwrap();
    assert_eq!(h.transmit(), vec![pubrec(3)]);
    assert_eq!(h.client.stats().duplicate_qos2, 1);
    h.server(pubrel(3)).unwrap();
    assert_eq!(h.transmit(), vec![pubcomp(3)]);
    assert_eq!(h.client.inbound_qos2_len(), 0);
    // After PUBREL the id is free: the same id is a new message.
    h.server(server_publish("t", QoS::ExactlyOnce, 3, b"y"))
        .unwrap();
    assert_eq!(h.transmit(), vec![pubrec(3)]);
    let messages = h
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::Message { .. }))
        .count();
    assert_eq!(messages, 2);
    // PUBREL for an id not held is still answered.
    h.server(pubrel(99)).unwrap();
    assert_eq!(h.transmit(), vec![pubcomp(99)]);
}

#[test]
fn mqtt_4_3_3_2_qos2_state_survives_reconnect_of_a_persistent_session() {
    let mut h = Harness::connect(persistent("a"));
    h.server(server_publish("t", QoS::ExactlyOnce, 4, b"x"))
        .unwrap();
    assert_eq!(h.transmit(), vec![pubrec(4)]);
    h.client.handle_transport_closed(h.now);
    h.events();
    assert_eq!(h.reconnect(true), vec![]);
    let mut dup = server_publish("t", QoS::ExactlyOnce, 4, b"x");
    if let Packet::Publish(p) = &mut dup {
        p.dup = true;
    }
    h.server(dup).unwrap();
    assert_eq!(h.transmit(), vec![pubrec(4)]);
    assert!(h
        .events()
        .iter()
        .all(|e| !matches!(e, Event::Message { .. })));
}

#[test]
fn no_session_present_forgets_inbound_qos2_ids() {
    let mut h = Harness::connect(persistent("a"));
    h.server(server_publish("t", QoS::ExactlyOnce, 4, b"x"))
        .unwrap();
    h.transmit();
    h.client.handle_transport_closed(h.now);
    h.events();
    h.reconnect(false);
    h.server(server_publish("t", QoS::ExactlyOnce, 4, b"new"))
        .unwrap();
    assert!(h
        .events()
        .iter()
        .any(|e| matches!(e, Event::Message { publish, .. } if publish.payload == "new")));
}

// covers: MQTT-4.6.0-3
#[test]
fn mqtt_4_6_0_2_manual_acks_leave_in_arrival_order() {
    let mut h = Harness::connect(ClientConfig::new("a").with_manual_acks(true));
    h.server(server_publish("t", QoS::AtLeastOnce, 1, b"a"))
        .unwrap();
    h.server(server_publish("t", QoS::ExactlyOnce, 2, b"b"))
        .unwrap();
    h.server(server_publish("t", QoS::AtMostOnce, 0, b"c"))
        .unwrap();
    h.server(server_publish("t", QoS::AtLeastOnce, 3, b"d"))
        .unwrap();
    let tokens: Vec<_> = h
        .events()
        .into_iter()
        .map(|e| match e {
            Event::Message { ack, .. } => ack,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(tokens[2].is_none());
    assert!(h.transmit().is_empty());
    // Acking the last and the second first sends nothing: the first waits.
    h.client.ack(h.now, tokens[3].unwrap());
    h.client.ack(h.now, tokens[1].unwrap());
    assert!(h.transmit().is_empty());
    h.client.ack(h.now, tokens[0].unwrap());
    assert_eq!(h.transmit(), vec![puback(1), pubrec(2), puback(3)]);
    // A token given twice is ignored.
    h.client.ack(h.now, tokens[0].unwrap());
    assert!(h.transmit().is_empty());
    assert_eq!(h.client.stats().stale_acks, 1);
}

#[test]
fn manual_ack_token_from_an_earlier_connection_is_ignored() {
    let mut h = Harness::connect(persistent("a").with_manual_acks(true));
    h.server(server_publish("t", QoS::ExactlyOnce, 2, b"b"))
        .unwrap();
    let token = match h.events().pop() {
        Some(Event::Message { ack: Some(t), .. }) => t,
        other => panic!("{other:?}"),
    };
    h.client.handle_transport_closed(h.now);
    h.reconnect(true);
    h.client.ack(h.now, token);
    assert!(h.transmit().is_empty());
    // The server resends; the application already has it, so PUBREC goes
    // out without a second delivery.
    h.server(server_publish("t", QoS::ExactlyOnce, 2, b"b"))
        .unwrap();
    assert_eq!(h.transmit(), vec![pubrec(2)]);
    assert!(h
        .events()
        .iter()
        .all(|e| !matches!(e, Event::Message { .. })));
}

// ----- subscribe / unsubscribe -----

#[test]
fn subscribe_and_unsubscribe_report_their_results() {
    let mut h = Harness::connect(ClientConfig::new("a"));
    let sub = h
        .client
        .subscribe(
            h.now,
            &[("a/#", QoS::ExactlyOnce), ("b/+", QoS::AtLeastOnce)],
        )
        .unwrap();
    let sent = h.transmit();
    let [Packet::Subscribe(s)] = sent.as_slice() else {
        panic!("{sent:?}")
    };
    assert_eq!(s.filters.len(), 2);
    let codes = [
        SubscribeReturnCode::Success(QoS::AtLeastOnce),
        SubscribeReturnCode::Failure,
    ];
    h.server(suback(s.packet_id.get(), &codes)).unwrap();
    let unsub = h.client.unsubscribe(h.now, &["a/#"]).unwrap();
    let sent = h.transmit();
    let [Packet::Unsubscribe(u)] = sent.as_slice() else {
        panic!("{sent:?}")
    };
    h.server(unsuback(u.packet_id.get())).unwrap();
    assert_eq!(
        h.events(),
        vec![
            Event::Subscribed {
                id: sub,
                results: codes.to_vec()
            },
            Event::Unsubscribed { id: unsub }
        ]
    );
    assert_eq!(h.client.pending_requests(), 0);
}

#[test]
fn suback_with_the_wrong_number_of_codes_is_a_protocol_error() {
    let mut h = Harness::connect(ClientConfig::new("a"));
    h.client
        .subscribe(h.now, &[("a", QoS::AtMostOnce), ("b", QoS::AtMostOnce)])
        .unwrap();
    h.transmit();
    let err = h
        .server(suback(1, &[SubscribeReturnCode::Failure]))
        .unwrap_err();
    assert_eq!(
        err,
        ProtocolError::SubAckCountMismatch {
            expected: 2,
            got: 1
        }
    );
}

#[test]
fn unanswered_requests_are_sent_again_after_reconnect_and_limits_hold() {
    let mut h = Harness::new(ClientConfig::new("a"));
    let mut config_limited = ClientConfig::new("b");
    config_limited.max_pending_requests = 1;
    let mut limited = Client::new(config_limited).unwrap();
    limited.subscribe(h.now, &[("x", QoS::AtMostOnce)]).unwrap();
    assert_eq!(
        limited.subscribe(h.now, &[("y", QoS::AtMostOnce)]),
        Err(UsageError::TooManyRequests { max: 1 })
    );
    // Requested while disconnected: sent after CONNACK.
    h.client
        .subscribe(h.now, &[("x", QoS::AtMostOnce)])
        .unwrap();
    let sent = h.reconnect(false);
    assert!(matches!(sent.as_slice(), [Packet::Subscribe(s)] if s.packet_id == pid(1)));
    h.client.handle_transport_closed(h.now);
    let sent = h.reconnect(false);
    assert!(matches!(sent.as_slice(), [Packet::Subscribe(s)] if s.packet_id == pid(1)));
}

// ----- session resume -----

// covers: MQTT-3.3.1-1, MQTT-4.6.0-1, MQTT-4.6.0-4, MQTT-2.3.1-3
#[test]
fn mqtt_4_4_0_1_resume_resends_publish_and_pubrel_with_same_ids_in_order() {
    let mut h = Harness::connect(persistent("a"));
    let mut ids = Vec::new();
    for qos in [
        QoS::ExactlyOnce,
        QoS::AtLeastOnce,
        QoS::ExactlyOnce,
        QoS::ExactlyOnce,
        QoS::AtLeastOnce,
    ] {
        ids.push(h.client.publish(h.now, "t", &b"x"[..], qos, false).unwrap());
    }
    let sent = h.transmit();
    assert_eq!(publishes(&sent).len(), 5);
    // PUBREC for 4 then 1: the PUBRELs follow that order.
    h.server(pubrec(4)).unwrap();
    h.server(pubrec(1)).unwrap();
    assert_eq!(h.transmit(), vec![pubrel(4), pubrel(1)]);
    // A publish made after the loss waits behind the resends.
    h.client.handle_transport_closed(h.now);
    let late = h
        .client
        .publish(h.now, "t", &b"late"[..], QoS::AtLeastOnce, false)
        .unwrap();
    let resent = h.reconnect(true);
    let shape: Vec<(u8, u16, bool)> = resent
        .iter()
        .map(|p| match p {
            Packet::Publish(p) => (3, p.packet_id().unwrap().get(), p.dup),
            Packet::PubRel(r) => (6, r.packet_id.get(), false),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            (3, 2, true),
            (3, 3, true),
            (3, 5, true),
            (6, 4, false),
            (6, 1, false),
            (3, 6, false)
        ]
    );
    for p in [
        puback(2),
        pubrec(3),
        pubcomp(4),
        pubcomp(1),
        puback(5),
        puback(6),
    ] {
        h.server(p).unwrap();
    }
    assert_eq!(h.transmit(), vec![pubrel(3)]);
    h.server(pubcomp(3)).unwrap();
    let delivered: Vec<_> = h
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Delivered { id } => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(
        delivered,
        vec![ids[1], ids[2 + 1], ids[0], ids[4], late, ids[2]]
    );
    assert_eq!(h.client.inflight_len(), 0);
}

#[test]
fn resume_without_session_present_still_resends_outbound() {
    let mut h = Harness::connect(persistent("a"));
    h.client
        .publish(h.now, "t", &b"x"[..], QoS::AtLeastOnce, false)
        .unwrap();
    h.transmit();
    h.client.handle_transport_closed(h.now);
    assert_eq!(publishes(&h.reconnect(false)), vec![(Some(1), true)]);
}

#[test]
fn a_publish_never_written_is_not_marked_dup_on_resend() {
    let mut h = Harness::connect(persistent("a"));
    h.client
        .publish(h.now, "t", &b"x"[..], QoS::AtLeastOnce, false)
        .unwrap();
    h.client.handle_transport_closed(h.now); // before poll_transmit
    assert_eq!(publishes(&h.reconnect(true)), vec![(Some(1), false)]);
}

#[test]
fn clean_session_discards_state_and_reports_each_publish() {
    let mut h = Harness::connect(ClientConfig::new("a").with_inflight_window(3));
    let a = h
        .client
        .publish(h.now, "t", &b"a"[..], QoS::AtLeastOnce, false)
        .unwrap();
    let b = h
        .client
        .publish(h.now, "t", &b"b"[..], QoS::ExactlyOnce, false)
        .unwrap();
    h.transmit();
    h.server(pubrec(2)).unwrap();
    h.transmit();
    let c = h
        .client
        .publish(h.now, "t", &b"c"[..], QoS::AtLeastOnce, false)
        .unwrap();
    h.server(server_publish("t", QoS::ExactlyOnce, 9, b"in"))
        .unwrap();
    h.events();
    h.client.handle_transport_closed(h.now); // c was never written
    assert_eq!(
        h.events(),
        vec![
            Event::Disconnected {
                reason: DisconnectReason::TransportClosed
            },
            Event::Dropped { id: a },
            Event::Delivered { id: b },
        ]
    );
    assert_eq!(h.client.inflight_len(), 0);
    assert_eq!(h.client.inbound_qos2_len(), 0);
    // Back in the queue, it takes a fresh id on the new connection.
    let sent = h.reconnect(false);
    assert_eq!(publishes(&sent), vec![(Some(4), false)]);
    h.server(puback(4)).unwrap();
    assert!(h.events().contains(&Event::Delivered { id: c }));
}

// ----- disconnect -----

// covers: MQTT-3.14.4-1
#[test]
fn mqtt_3_14_4_2_nothing_is_sent_after_disconnect() {
    let mut h = Harness::connect(persistent("a"));
    h.client
        .publish(h.now, "t", &b"x"[..], QoS::AtLeastOnce, false)
        .unwrap();
    h.client.disconnect(h.now);
    assert_eq!(h.client.state(), ConnectionState::Disconnecting);
    // Commands after disconnect wait for the next connection.
    h.client
        .publish(h.now, "t", &b"y"[..], QoS::AtLeastOnce, false)
        .unwrap();
    assert_eq!(
        h.client
            .publish(h.now, "t", &b"y"[..], QoS::AtMostOnce, false),
        Err(UsageError::NotConnected)
    );
    h.server(server_publish("t", QoS::AtLeastOnce, 1, b"in"))
        .unwrap();
    let sent = h.transmit();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent.last(), Some(&Packet::Disconnect));
    assert_eq!(
        h.events(),
        vec![Event::Disconnected {
            reason: DisconnectReason::ClientDisconnect
        }]
    );
    h.advance(Duration::from_secs(1_000));
    h.client.handle_timeout(h.now);
    assert!(h.transmit().is_empty());
    assert_eq!(h.client.poll_timeout(), None);
    h.client.handle_transport_closed(h.now);
    assert!(h.events().is_empty());
    // The session carries on: both publishes go out on the next connection.
    assert_eq!(
        publishes(&h.reconnect(true)),
        vec![(Some(1), true), (Some(2), false)]
    );
}

#[test]
fn a_repeated_qos1_publish_awaiting_a_manual_ack_shares_its_token() {
    let mut h = Harness::connect(ClientConfig::new("a").with_manual_acks(true));
    h.server(server_publish("t", QoS::AtLeastOnce, 1, b"a"))
        .unwrap();
    h.server(server_publish("t", QoS::AtLeastOnce, 1, b"a"))
        .unwrap();
    let tokens: Vec<_> = h
        .events()
        .into_iter()
        .map(|e| match e {
            Event::Message { ack, .. } => ack.unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[0], tokens[1]);
    h.client.ack(h.now, tokens[0]);
    assert_eq!(h.transmit(), vec![puback(1)]);
}
