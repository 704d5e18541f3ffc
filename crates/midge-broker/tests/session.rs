//! ServerSession driven by client bytes on a virtual clock, rule by rule.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use bytes::Bytes;
use common::*;
use midge_broker::{
    CloseReason, DeliverOutcome, DropReason, Event, InflightMessage, OverflowPolicy, ProtocolError,
    ResumeState, ServerConfig, UsageError,
};
use midge_codec::{
    ConnAck, ConnectReturnCode, DecodeError, Packet, PubAck, PubComp, PubRec, PubRel, QoS, QosPid,
    SubAck, SubscribeReturnCode, UnsubAck, Unsubscribe,
};
use midge_time::Duration;

fn connack(code: ConnectReturnCode, session_present: bool) -> Packet {
    Packet::ConnAck(ConnAck::new(code, session_present))
}

fn closed(events: &[Event]) -> Option<(CloseReason, bool)> {
    events.iter().find_map(|e| match e {
        Event::Closed {
            reason,
            publish_will,
        } => Some((reason.clone(), *publish_will)),
        _ => None,
    })
}

fn published(events: &[Event]) -> Vec<midge_codec::Publish> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Publish { publish, .. } => Some(publish.clone()),
            _ => None,
        })
        .collect()
}

fn ids_of(packets: &[Packet]) -> Vec<(bool, u16)> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => p.packet_id().map(|id| (p.dup, id.get())),
            _ => None,
        })
        .collect()
}

fn small_window(max_inflight: usize) -> ServerConfig {
    ServerConfig {
        max_inflight,
        ..ServerConfig::default()
    }
}

// ----- CONNECT ----------------------------------------------------------

#[test]
fn mqtt_3_1_0_1_first_packet_must_be_connect() {
    let mut h = Harness::new(ServerConfig::default());
    let err = h.send(Packet::PingReq).unwrap_err();
    assert!(matches!(err, ProtocolError::FirstPacketNotConnect(_)));
    assert_eq!(err.statement(), Some("MQTT-3.1.0-1"));
    assert!(h.packets().is_empty(), "no answer, not even CONNACK");
    let events = h.events();
    assert_eq!(closed(&events), Some((CloseReason::Protocol(err), false)));
    assert!(h.session.is_closed());
}

#[test]
fn mqtt_3_1_0_1_publish_before_connect_is_not_routed() {
    let mut h = Harness::new(ServerConfig::default());
    assert!(h.send(publish("a", QosPid::AtMostOnce, b"x")).is_err());
    let events = h.events();
    assert!(published(&events).is_empty());
}

#[test]
fn mqtt_3_1_0_2_second_connect_closes() {
    let mut h = Harness::connected(ServerConfig::default(), connect("c1", true, 0));
    let err = h.send(connect("c1", true, 0)).unwrap_err();
    assert_eq!(err, ProtocolError::SecondConnect);
    assert!(h.packets().is_empty());
    assert!(matches!(
        closed(&h.events()),
        Some((CloseReason::Protocol(ProtocolError::SecondConnect), false))
    ));
}

fn raw_connect(name: &[u8], level: u8) -> Vec<u8> {
    let mut body = vec![0x00, u8::try_from(name.len()).unwrap()];
    body.extend_from_slice(name);
    body.extend_from_slice(&[level, 0x02, 0x00, 0x3C, 0x00, 0x01, b'c']);
    let mut frame = vec![0x10, u8::try_from(body.len()).unwrap()];
    frame.extend_from_slice(&body);
    frame
}

#[test]
fn mqtt_3_1_2_2_unsupported_level_gets_connack_0x01_then_close() {
    let mut h = Harness::new(ServerConfig::default());
    let err = h.send_bytes(&raw_connect(b"MQTT", 0x05)).unwrap_err();
    assert_eq!(
        err,
        ProtocolError::Decode(DecodeError::UnsupportedProtocolLevel { level: 5 })
    );
    assert_eq!(
        h.packets(),
        vec![connack(
            ConnectReturnCode::UnacceptableProtocolVersion,
            false
        )]
    );
    assert!(closed(&h.events()).is_some());
}

// covers: MQTT-3.1.2-1
// covers: MQTT-3.2.2-6
#[test]
fn mqtt_3_1_4_1_malformed_connect_closes_without_connack() {
    let mut h = Harness::new(ServerConfig::default());
    assert!(h.send_bytes(&raw_connect(b"MQTX", 0x04)).is_err());
    assert!(h.packets().is_empty());
    assert!(closed(&h.events()).is_some());
}

#[test]
fn mqtt_3_1_3_5_short_alphanumeric_and_long_utf8_ids_are_accepted() {
    let long = "é".repeat(0xFFFF / 2);
    for id in ["a", "0123456789abcdefghijklm", long.as_str(), "ünïcødé/+#"] {
        let mut h = Harness::new(ServerConfig::default());
        h.send(connect(id, true, 0)).unwrap();
        let events = h.events();
        let [Event::ConnectRequest {
            client_id,
            assigned_client_id,
            ..
        }] = events.as_slice()
        else {
            panic!("{events:?}");
        };
        assert_eq!(client_id.as_str(), id);
        assert!(!assigned_client_id);
    }
}

#[test]
fn mqtt_3_1_3_6_empty_client_id_gets_a_unique_generated_id() {
    let mut ids = Vec::new();
    for seed in [1_u64, 2] {
        let now = midge_time::Instant::from_secs(1);
        let mut s = midge_broker::ServerSession::new(ServerConfig::default(), now, seed);
        s.handle_read(now, &encode(connect("", true, 0))).unwrap();
        let Some(Event::ConnectRequest {
            client_id,
            assigned_client_id: true,
            ..
        }) = s.poll_event()
        else {
            panic!("expected a generated id");
        };
        assert!(!client_id.is_empty());
        assert!(client_id.as_str().starts_with("midge-"));
        assert_eq!(s.client_id(), Some(&client_id));
        s.accept(now, false, ResumeState::default()).unwrap();
        ids.push(client_id);
    }
    assert_ne!(ids[0], ids[1]);
}

// covers: MQTT-3.1.3-7
#[test]
fn mqtt_3_1_3_8_empty_id_with_clean_session_0_is_refused_0x02() {
    let mut h = Harness::new(ServerConfig::default());
    let err = h.send(connect("", false, 0)).unwrap_err();
    assert_eq!(err, ProtocolError::EmptyClientIdWithoutCleanSession);
    assert_eq!(
        h.packets(),
        vec![connack(ConnectReturnCode::IdentifierRejected, false)]
    );
    let events = h.events();
    assert!(!events
        .iter()
        .any(|e| matches!(e, Event::ConnectRequest { .. })));
    assert!(closed(&events).is_some());
}

#[test]
fn mqtt_3_1_3_9_too_long_client_id_is_refused_0x02() {
    let config = ServerConfig {
        max_client_id_len: 23,
        ..ServerConfig::default()
    };
    let mut h = Harness::new(config.clone());
    h.send(connect(&"x".repeat(24), true, 0)).unwrap();
    assert_eq!(
        h.packets(),
        vec![connack(ConnectReturnCode::IdentifierRejected, false)]
    );
    assert_eq!(
        closed(&h.events()),
        Some((
            CloseReason::Refused(ConnectReturnCode::IdentifierRejected),
            false
        ))
    );
    // Exactly at the limit is fine.
    let mut h = Harness::new(config);
    h.send(connect(&"x".repeat(23), true, 0)).unwrap();
    assert!(matches!(
        h.events().as_slice(),
        [Event::ConnectRequest { .. }]
    ));
}

#[test]
fn mqtt_3_1_3_9_empty_id_refused_when_not_allowed() {
    let mut h = Harness::new(ServerConfig {
        allow_zero_length_client_id: false,
        ..ServerConfig::default()
    });
    h.send(connect("", true, 0)).unwrap();
    assert_eq!(
        h.packets(),
        vec![connack(ConnectReturnCode::IdentifierRejected, false)]
    );
}

#[test]
fn mqtt_3_1_4_4_connect_request_carries_the_connect_fields() {
    let mut h = Harness::new(ServerConfig::default());
    let mut c = connect_with_will("dev");
    c.keep_alive = 42;
    c.username = Some(s("user"));
    c.password = Some(Bytes::from_static(b"pw"));
    h.send(c.clone()).unwrap();
    let events = h.events();
    let [Event::ConnectRequest {
        client_id,
        clean_session,
        keep_alive,
        will,
        username,
        password,
        protocol,
        ..
    }] = events.as_slice()
    else {
        panic!("{events:?}");
    };
    assert_eq!(client_id, &c.client_id);
    assert!(clean_session);
    assert_eq!(*keep_alive, 42);
    assert_eq!(will, &c.will);
    assert_eq!(username, &c.username);
    assert_eq!(password, &c.password);
    assert_eq!(*protocol, c.protocol);
    h.session
        .accept(h.now, false, ResumeState::default())
        .unwrap();
    assert_eq!(
        h.packets(),
        vec![connack(ConnectReturnCode::Accepted, false)]
    );
    assert!(h.session.is_connected());
}

#[test]
fn mqtt_3_2_2_1_clean_session_has_session_present_0() {
    let mut h = Harness::new(ServerConfig::default());
    h.send(connect("c", true, 0)).unwrap();
    h.events();
    assert_eq!(
        h.session.accept(h.now, true, ResumeState::default()),
        Err(UsageError::CleanSessionWithState)
    );
    let resume = ResumeState {
        subscriptions: vec![filter("a")],
        ..ResumeState::default()
    };
    assert_eq!(
        h.session.accept(h.now, false, resume),
        Err(UsageError::CleanSessionWithState)
    );
    assert!(h.packets().is_empty());
    h.session
        .accept(h.now, false, ResumeState::default())
        .unwrap();
    assert_eq!(
        h.packets(),
        vec![connack(ConnectReturnCode::Accepted, false)]
    );
}

#[test]
fn mqtt_3_2_2_2_resumed_session_has_session_present_1() {
    let mut h = Harness::new(ServerConfig::default());
    h.send(connect("c", false, 0)).unwrap();
    h.events();
    h.session
        .accept(h.now, true, ResumeState::default())
        .unwrap();
    assert_eq!(
        h.packets(),
        vec![connack(ConnectReturnCode::Accepted, true)]
    );
}

#[test]
fn mqtt_3_2_2_3_new_persistent_session_has_session_present_0() {
    let mut h = Harness::new(ServerConfig::default());
    h.send(connect("c", false, 0)).unwrap();
    h.events();
    h.session
        .accept(h.now, false, ResumeState::default())
        .unwrap();
    assert_eq!(
        h.packets(),
        vec![connack(ConnectReturnCode::Accepted, false)]
    );
}

// covers: MQTT-3.2.2-4
#[test]
fn mqtt_3_2_2_5_refusal_sends_its_code_then_closes() {
    let mut h = Harness::new(ServerConfig::default());
    h.send(connect_with_will("c")).unwrap();
    h.events();
    assert_eq!(
        h.session.refuse(h.now, ConnectReturnCode::Accepted),
        Err(UsageError::RefuseWithAccepted(ConnectReturnCode::Accepted))
    );
    h.session
        .refuse(h.now, ConnectReturnCode::NotAuthorized)
        .unwrap();
    assert_eq!(
        h.packets(),
        vec![connack(ConnectReturnCode::NotAuthorized, false)]
    );
    // A refused connection never had a will to publish.
    assert_eq!(
        closed(&h.events()),
        Some((
            CloseReason::Refused(ConnectReturnCode::NotAuthorized),
            false
        ))
    );
    assert_eq!(
        h.session.refuse(h.now, ConnectReturnCode::NotAuthorized),
        Err(UsageError::Closed)
    );
}

#[test]
fn mqtt_3_1_4_5_input_after_a_refused_connect_is_not_processed() {
    let mut h = Harness::new(ServerConfig::default());
    let mut bytes = encode(connect("c", true, 0));
    bytes.extend_from_slice(&encode(publish("a/b", QosPid::AtLeastOnce(pid(1)), b"x")));
    h.send_bytes(&bytes).unwrap();
    assert!(h.packets().is_empty());
    assert!(matches!(
        h.events().as_slice(),
        [Event::ConnectRequest { .. }]
    ));
    h.session
        .refuse(h.now, ConnectReturnCode::ServerUnavailable)
        .unwrap();
    h.send(Packet::PingReq).unwrap();
    assert_eq!(
        h.packets(),
        vec![connack(ConnectReturnCode::ServerUnavailable, false)]
    );
    let events = h.events();
    assert!(published(&events).is_empty());
}

#[test]
fn mqtt_3_2_0_1_pipelined_input_and_deliveries_wait_for_connack() {
    let mut h = Harness::new(ServerConfig::default());
    let mut bytes = encode(connect("c", true, 0));
    bytes.extend_from_slice(&encode(Packet::PingReq));
    bytes.extend_from_slice(&encode(publish("a/b", QosPid::AtLeastOnce(pid(3)), b"x")));
    h.send_bytes(&bytes).unwrap();
    // A message for this client while the decision is pending waits too.
    assert_eq!(
        h.session
            .deliver(h.now, message("t", QoS::AtMostOnce, b"m")),
        DeliverOutcome::Queued
    );
    assert!(h.packets().is_empty(), "nothing before CONNACK");
    assert_eq!(h.events().len(), 1);
    h.session
        .accept(h.now, false, ResumeState::default())
        .unwrap();
    let packets = h.packets();
    assert_eq!(packets[0], connack(ConnectReturnCode::Accepted, false));
    assert!(matches!(&packets[1], Packet::Publish(p) if p.topic == "t"));
    assert_eq!(packets[2], Packet::PingResp);
    assert_eq!(packets[3], Packet::PubAck(PubAck::new(pid(3))));
    assert_eq!(published(&h.events()).len(), 1);
}

#[test]
fn pipelined_input_before_connack_is_bounded() {
    let mut h = Harness::new(ServerConfig {
        max_packet_size: 64,
        ..ServerConfig::default()
    });
    h.send(connect("c", true, 0)).unwrap();
    let err = h.send_bytes(&[0xC0, 0x00].repeat(40)).unwrap_err();
    assert_eq!(err, ProtocolError::TooMuchInputBeforeConnAck { max: 64 });
    assert!(h.packets().is_empty());
}

#[test]
fn packet_over_max_packet_size_closes() {
    let mut h = Harness::connected(
        ServerConfig {
            max_packet_size: 32,
            ..ServerConfig::default()
        },
        connect("c", true, 0),
    );
    let err = h
        .send(publish("a", QosPid::AtMostOnce, &[0u8; 40]))
        .unwrap_err();
    assert!(matches!(
        err,
        ProtocolError::Decode(DecodeError::PacketTooLarge { .. })
    ));
    assert!(h.session.is_closed());
}

// ----- timers -----------------------------------------------------------

#[test]
fn connect_timeout_closes_a_silent_transport() {
    let mut h = Harness::new(ServerConfig::default());
    let deadline = h.now.saturating_add(Duration::from_secs(10));
    assert_eq!(h.session.poll_timeout(), Some(deadline));
    h.advance(Duration::from_micros(9_999_999));
    h.session.handle_timeout(h.now);
    assert!(!h.session.is_closed());
    h.advance(Duration::from_micros(1));
    h.session.handle_timeout(h.now);
    assert_eq!(
        closed(&h.events()),
        Some((CloseReason::ConnectTimeout, false))
    );
    assert_eq!(h.session.poll_timeout(), None);
}

// covers: MQTT-3.1.2-8
#[test]
fn mqtt_3_1_2_24_keep_alive_expires_at_one_and_a_half_times_not_before() {
    let mut c = connect_with_will("c");
    c.keep_alive = 10;
    let mut h = Harness::connected(ServerConfig::default(), c);
    let start = h.now;
    assert_eq!(
        h.session.poll_timeout(),
        Some(start.saturating_add(Duration::from_secs(15)))
    );
    // Traffic re-arms the timer.
    h.advance(Duration::from_secs(14));
    h.send(Packet::PingReq).unwrap();
    assert_eq!(h.packets(), vec![Packet::PingResp]);
    let last = h.now;
    assert_eq!(
        h.session.poll_timeout(),
        Some(last.saturating_add(Duration::from_secs(15)))
    );
    h.advance(Duration::from_micros(14_999_999));
    h.session.handle_timeout(h.now);
    assert!(!h.session.is_closed(), "not before 1.5 x keep alive");
    assert!(h.events().is_empty());
    h.advance(Duration::from_micros(1));
    h.session.handle_timeout(h.now);
    assert!(h.session.is_closed(), "at 1.5 x keep alive");
    assert_eq!(
        closed(&h.events()),
        Some((CloseReason::KeepAliveTimeout, true))
    );
    assert!(h.packets().is_empty());
}

#[test]
fn mqtt_3_1_2_24_keep_alive_zero_never_expires() {
    let mut h = Harness::connected(ServerConfig::default(), connect("c", true, 0));
    assert_eq!(h.session.poll_timeout(), None);
    h.advance(Duration::from_secs(1_000_000));
    h.session.handle_timeout(h.now);
    assert!(h.session.is_connected());
}

#[test]
fn mqtt_3_1_2_24_partial_packet_does_not_count_as_traffic() {
    let mut c = connect("c", true, 0);
    c.keep_alive = 2;
    let mut h = Harness::connected(ServerConfig::default(), c);
    h.advance(Duration::from_secs(2));
    h.send_bytes(&[0xC0]).unwrap(); // half a PINGREQ
    h.advance(Duration::from_secs(1));
    h.session.handle_timeout(h.now);
    assert!(h.session.is_closed());
}

// ----- simple exchanges -------------------------------------------------

#[test]
fn mqtt_3_12_4_1_pingreq_gets_pingresp() {
    let mut h = Harness::connected(ServerConfig::default(), connect("c", true, 0));
    h.send_bytes(&[0xC0, 0x00, 0xC0, 0x00]).unwrap();
    assert_eq!(h.packets(), vec![Packet::PingResp, Packet::PingResp]);
}

#[test]
fn mqtt_3_14_4_3_disconnect_discards_the_will() {
    let mut h = Harness::connected(ServerConfig::default(), connect_with_will("c"));
    h.send(Packet::Disconnect).unwrap();
    assert_eq!(
        closed(&h.events()),
        Some((CloseReason::ClientDisconnect, false))
    );
    // Nothing after DISCONNECT is processed.
    h.send(Packet::PingReq).unwrap();
    assert!(h.packets().is_empty());
}

#[test]
fn mqtt_3_1_2_8_will_is_due_when_the_transport_closes_without_disconnect() {
    let mut h = Harness::connected(ServerConfig::default(), connect_with_will("c"));
    h.session.handle_transport_closed(h.now);
    assert_eq!(
        closed(&h.events()),
        Some((CloseReason::TransportClosed, true))
    );
    // Without a will there is nothing to publish.
    let mut h = Harness::connected(ServerConfig::default(), connect("c", true, 0));
    h.session.handle_transport_closed(h.now);
    assert_eq!(
        closed(&h.events()),
        Some((CloseReason::TransportClosed, false))
    );
}

// covers: MQTT-4.8.0-1
#[test]
fn mqtt_3_1_2_8_will_is_due_after_a_protocol_violation() {
    let mut h = Harness::connected(ServerConfig::default(), connect_with_will("c"));
    let err = h.send(Packet::PingResp).unwrap_err();
    assert!(matches!(err, ProtocolError::UnexpectedPacket(_)));
    assert_eq!(
        closed(&h.events()),
        Some((CloseReason::Protocol(err), true))
    );
}

#[test]
fn server_close_reports_the_will() {
    let mut h = Harness::connected(ServerConfig::default(), connect_with_will("c"));
    h.session.close(h.now);
    assert_eq!(closed(&h.events()), Some((CloseReason::ServerClosed, true)));
    h.session.close(h.now);
    assert!(h.events().is_empty(), "Closed is emitted once");
}

#[test]
fn nothing_is_sent_or_processed_after_close() {
    let mut h = Harness::connected(ServerConfig::default(), connect("c", true, 5));
    h.session.handle_transport_closed(h.now);
    h.events();
    h.send(Packet::PingReq).unwrap();
    assert_eq!(
        h.session
            .deliver(h.now, message("t", QoS::AtMostOnce, b"x")),
        DeliverOutcome::Dropped(DropReason::Closed)
    );
    h.advance(Duration::from_secs(100));
    h.session.handle_timeout(h.now);
    assert!(h.packets().is_empty());
    assert!(h.events().is_empty());
    assert_eq!(h.session.poll_timeout(), None);
    assert_eq!(h.session.stats().dropped_closed, 1);
}

// ----- inbound PUBLISH --------------------------------------------------

#[test]
fn mqtt_3_3_4_1_qos0_is_routed_without_acknowledgement() {
    let mut h = Harness::connected(ServerConfig::default(), connect("c", true, 0));
    h.send(publish("a/b", QosPid::AtMostOnce, b"x")).unwrap();
    assert!(h.packets().is_empty());
    let events = h.events();
    assert!(matches!(
        events.as_slice(),
        [Event::Publish { ack: None, publish }] if publish.topic == "a/b"
    ));
}

// covers: MQTT-2.3.1-6
#[test]
fn mqtt_4_3_2_2_qos1_is_routed_and_acknowledged_with_its_id() {
    let mut h = Harness::connected(ServerConfig::default(), connect("c", true, 0));
    let p = publish("a/b", QosPid::AtLeastOnce(pid(9)), b"x");
    h.send(p.clone()).unwrap();
    assert_eq!(h.packets(), vec![Packet::PubAck(PubAck::new(pid(9)))]);
    // After the PUBACK the same id is a new publication.
    h.send(p).unwrap();
    assert_eq!(h.packets(), vec![Packet::PubAck(PubAck::new(pid(9)))]);
    assert_eq!(published(&h.events()).len(), 2);
}

#[test]
fn mqtt_4_3_3_2_qos2_is_routed_once_until_pubrel() {
    let mut h = Harness::connected(ServerConfig::default(), connect("c", true, 0));
    let p = publish("a/b", QosPid::ExactlyOnce(pid(7)), b"x");
    h.send(p.clone()).unwrap();
    let mut again = p.clone();
    again.dup = true;
    h.send(again).unwrap();
    assert_eq!(
        h.packets(),
        vec![
            Packet::PubRec(PubRec::new(pid(7))),
            Packet::PubRec(PubRec::new(pid(7)))
        ]
    );
    assert_eq!(published(&h.events()).len(), 1, "no duplicate onward");
    h.send(PubRel::new(pid(7))).unwrap();
    assert_eq!(h.packets(), vec![Packet::PubComp(PubComp::new(pid(7)))]);
    // After PUBCOMP the id starts a new publication.
    h.send(p).unwrap();
    assert_eq!(h.packets(), vec![Packet::PubRec(PubRec::new(pid(7)))]);
    assert_eq!(published(&h.events()).len(), 1);
}

#[test]
fn mqtt_4_3_3_2_pubrel_for_an_unknown_id_still_gets_pubcomp() {
    let mut h = Harness::connected(ServerConfig::default(), connect("c", true, 0));
    h.send(PubRel::new(pid(5))).unwrap();
    assert_eq!(h.packets(), vec![Packet::PubComp(PubComp::new(pid(5)))]);
}

#[test]
fn inbound_qos2_ids_awaiting_pubrel_are_bounded() {
    let mut h = Harness::connected(
        ServerConfig {
            max_inbound_qos2: 2,
            ..ServerConfig::default()
        },
        connect("c", true, 0),
    );
    for id in 1..=2 {
        h.send(publish("a", QosPid::ExactlyOnce(pid(id)), b"x"))
            .unwrap();
    }
    let err = h
        .send(publish("a", QosPid::ExactlyOnce(pid(3)), b"x"))
        .unwrap_err();
    assert_eq!(err, ProtocolError::TooManyInboundQos2 { max: 2 });
    assert_eq!(err.statement(), None);
    assert!(h.session.is_closed());
}

#[test]
fn default_qos2_limit_admits_the_windows_clients_use() {
    // rumqttc keeps 100 in flight; the client's PUBRELs come later on the
    // same connection, so the default must not close it meanwhile.
    let mut h = Harness::connected(ServerConfig::default(), connect("c", true, 0));
    for id in 1..=100 {
        h.send(publish("a", QosPid::ExactlyOnce(pid(id)), b"x"))
            .unwrap();
    }
    assert!(!h.session.is_closed());
    let recs = h
        .packets()
        .into_iter()
        .filter(|p| matches!(p, Packet::PubRec(_)))
        .count();
    assert_eq!(recs, 100);
}

// covers: MQTT-4.6.0-3
#[test]
fn mqtt_4_6_0_2_routed_acks_leave_in_arrival_order() {
    let mut h = Harness::connected(
        ServerConfig {
            ack_after_route: true,
            ..ServerConfig::default()
        },
        connect("c", true, 0),
    );
    h.send(publish("a", QosPid::AtLeastOnce(pid(1)), b"1"))
        .unwrap();
    h.send(publish("a", QosPid::ExactlyOnce(pid(2)), b"2"))
        .unwrap();
    h.send(publish("a", QosPid::AtMostOnce, b"3")).unwrap();
    let tokens: Vec<_> = h
        .events()
        .into_iter()
        .map(|e| match e {
            Event::Publish { ack, .. } => ack,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(tokens[2].is_none(), "QoS 0 has no token");
    assert!(h.packets().is_empty(), "nothing acknowledged before ack()");
    h.session.ack(h.now, tokens[1].unwrap()).unwrap();
    assert!(h.packets().is_empty(), "the PUBREC waits behind the PUBACK");
    h.session.ack(h.now, tokens[0].unwrap()).unwrap();
    assert_eq!(
        h.packets(),
        vec![
            Packet::PubAck(PubAck::new(pid(1))),
            Packet::PubRec(PubRec::new(pid(2)))
        ]
    );
    assert_eq!(
        h.session.ack(h.now, tokens[0].unwrap()),
        Err(UsageError::UnknownAckToken)
    );
}

#[test]
fn unacknowledged_inbound_messages_are_bounded() {
    let mut h = Harness::connected(
        ServerConfig {
            ack_after_route: true,
            max_inbound_unacked: 2,
            ..ServerConfig::default()
        },
        connect("c", true, 0),
    );
    for id in 1..=2 {
        h.send(publish("a", QosPid::AtLeastOnce(pid(id)), b"x"))
            .unwrap();
    }
    assert_eq!(
        h.send(publish("a", QosPid::AtLeastOnce(pid(3)), b"x")),
        Err(ProtocolError::TooManyUnacknowledged { max: 2 })
    );
}

// ----- SUBSCRIBE / UNSUBSCRIBE ------------------------------------------

// covers: MQTT-3.8.4-1, MQTT-3.8.4-5, MQTT-3.9.3-1, MQTT-2.3.1-7
#[test]
fn mqtt_3_8_4_2_suback_has_the_subscribe_id_and_codes_in_order() {
    let mut h = Harness::connected(ServerConfig::default(), connect("c", true, 0));
    h.send(subscribe(
        11,
        &[("a/#", QoS::ExactlyOnce), ("b/+", QoS::AtMostOnce)],
    ))
    .unwrap();
    assert!(h.packets().is_empty(), "SUBACK waits for the router");
    let events = h.events();
    let [Event::Subscribe { packet_id, filters }] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert_eq!(*packet_id, pid(11));
    assert_eq!(filters.len(), 2);
    assert_eq!(
        h.session
            .suback(h.now, pid(11), vec![SubscribeReturnCode::Failure]),
        Err(UsageError::WrongNumberOfCodes {
            expected: 2,
            got: 1
        })
    );
    assert_eq!(
        h.session.suback(h.now, pid(12), vec![]),
        Err(UsageError::UnknownSubscribe(pid(12)))
    );
    let codes = vec![
        SubscribeReturnCode::Success(QoS::AtLeastOnce),
        SubscribeReturnCode::Failure,
    ];
    h.session.suback(h.now, pid(11), codes.clone()).unwrap();
    assert_eq!(
        h.packets(),
        vec![Packet::SubAck(SubAck::new(pid(11), codes))]
    );
    assert_eq!(h.session.subscription_count(), 1);
}

#[test]
fn subscribe_reusing_a_pending_id_is_a_violation() {
    let mut h = Harness::connected(ServerConfig::default(), connect("c", true, 0));
    h.send(subscribe(1, &[("a", QoS::AtMostOnce)])).unwrap();
    assert_eq!(
        h.send(subscribe(1, &[("b", QoS::AtMostOnce)])),
        Err(ProtocolError::PacketIdInUse(pid(1)))
    );
}

// covers: MQTT-3.8.4-1
#[test]
fn mqtt_3_8_4_5_filters_over_the_subscription_limit_get_0x80() {
    let mut h = Harness::connected(
        ServerConfig {
            max_subscriptions_per_client: 2,
            ..ServerConfig::default()
        },
        connect("c", true, 0),
    );
    h.send(subscribe(
        1,
        &[
            ("a", QoS::AtLeastOnce),
            ("b", QoS::AtLeastOnce),
            ("c", QoS::AtLeastOnce),
        ],
    ))
    .unwrap();
    let events = h.events();
    let [Event::Subscribe { filters, .. }] = events.as_slice() else {
        panic!("{events:?}");
    };
    let names: Vec<_> = filters.iter().map(|f| f.filter.as_str()).collect();
    assert_eq!(
        names,
        ["a", "b"],
        "over-limit filters never reach the router"
    );
    let ok = SubscribeReturnCode::Success(QoS::AtLeastOnce);
    h.session.suback(h.now, pid(1), vec![ok, ok]).unwrap();
    assert_eq!(
        h.packets(),
        vec![Packet::SubAck(SubAck::new(
            pid(1),
            vec![ok, ok, SubscribeReturnCode::Failure]
        ))]
    );
    // Re-subscribing to a held filter replaces it, so it is within the limit;
    // a new one is not, and is answered without the router.
    h.send(subscribe(2, &[("a", QoS::AtMostOnce)])).unwrap();
    assert_eq!(h.events().len(), 1);
    h.session.suback(h.now, pid(2), vec![ok]).unwrap();
    h.send(subscribe(3, &[("d", QoS::AtMostOnce)])).unwrap();
    assert!(h.events().is_empty());
    assert_eq!(h.session.stats().refused_subscriptions, 2);
    // Unsubscribing frees a slot.
    h.send(Unsubscribe::new(pid(4), vec![filter("b")])).unwrap();
    h.send(subscribe(5, &[("d", QoS::AtMostOnce)])).unwrap();
    let packets = h.packets();
    assert_eq!(
        packets,
        vec![
            Packet::SubAck(SubAck::new(pid(2), vec![ok])),
            Packet::SubAck(SubAck::new(pid(3), vec![SubscribeReturnCode::Failure])),
            Packet::UnsubAck(UnsubAck::new(pid(4))),
        ]
    );
    assert!(matches!(
        h.events().as_slice(),
        [Event::Unsubscribe { .. }, Event::Subscribe { .. }]
    ));
}

// covers: MQTT-3.10.4-5
#[test]
fn mqtt_3_10_4_4_unsuback_has_the_unsubscribe_id_even_for_nothing() {
    let mut h = Harness::connected(ServerConfig::default(), connect("c", true, 0));
    h.send(Unsubscribe::new(pid(77), vec![filter("never/subscribed")]))
        .unwrap();
    assert_eq!(h.packets(), vec![Packet::UnsubAck(UnsubAck::new(pid(77)))]);
    assert!(matches!(
        h.events().as_slice(),
        [Event::Unsubscribe { packet_id, filters }] if *packet_id == pid(77) && filters.len() == 1
    ));
}

// ----- outbound delivery ------------------------------------------------

#[test]
fn mqtt_3_3_1_3_outbound_dup_is_cleared_and_qos0_goes_at_once() {
    let mut h = Harness::connected(ServerConfig::default(), connect("c", true, 0));
    let mut m = message("t", QoS::AtLeastOnce, b"x");
    m.dup = true;
    m.retain = true;
    assert_eq!(h.session.deliver(h.now, m), DeliverOutcome::Sent);
    assert_eq!(
        h.session
            .deliver(h.now, message("t", QoS::AtMostOnce, b"y")),
        DeliverOutcome::Sent
    );
    let packets = h.packets();
    let Packet::Publish(first) = &packets[0] else {
        panic!("{packets:?}");
    };
    assert!(!first.dup);
    assert!(first.retain, "retain is the router's choice");
    assert!(matches!(&packets[1], Packet::Publish(p) if p.qos() == QoS::AtMostOnce));
}

// covers: MQTT-4.3.2-1
#[test]
fn mqtt_2_3_1_4_outbound_ids_are_never_in_use_twice() {
    let mut h = Harness::connected(small_window(1000), connect("c", true, 0));
    for _ in 0..600 {
        assert_eq!(
            h.session
                .deliver(h.now, message("t", QoS::AtLeastOnce, b"x")),
            DeliverOutcome::Sent
        );
    }
    let mut ids: Vec<u16> = ids_of(&h.packets()).into_iter().map(|(_, id)| id).collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n);
    // Acknowledge all but id 1 and run the counter round: id 1 is skipped.
    for id in 2..=600 {
        h.send(PubAck::new(pid(id))).unwrap();
    }
    h.packets();
    for _ in 0..65_534 {
        assert_eq!(
            h.session
                .deliver(h.now, message("t", QoS::AtLeastOnce, b"x")),
            DeliverOutcome::Sent
        );
        let packets = h.packets();
        let [(false, id)] = ids_of(&packets)[..] else {
            panic!("{packets:?}");
        };
        assert_ne!(id, 1, "id 1 is still in flight");
        h.send(PubAck::new(pid(id))).unwrap();
    }
    assert_eq!(h.session.inflight_len(), 1);
}

// covers: MQTT-4.6.0-5
#[test]
fn mqtt_4_6_0_6_window_full_messages_queue_and_leave_in_order() {
    let mut h = Harness::connected(small_window(2), connect("c", true, 0));
    let outcomes: Vec<_> = [b"1", b"2", b"3", b"4"]
        .into_iter()
        .map(|p| h.session.deliver(h.now, message("t", QoS::AtLeastOnce, p)))
        .collect();
    assert_eq!(
        outcomes,
        [
            DeliverOutcome::Sent,
            DeliverOutcome::Sent,
            DeliverOutcome::Queued,
            DeliverOutcome::Queued
        ]
    );
    let first = ids_of(&h.packets());
    assert_eq!(first.len(), 2);
    assert_eq!(h.session.queued_len(), 2);
    // QoS 0 is not held back by the window.
    assert_eq!(
        h.session
            .deliver(h.now, message("t", QoS::AtMostOnce, b"0")),
        DeliverOutcome::Sent
    );
    h.packets();
    h.send(PubAck::new(pid(first[1].1))).unwrap();
    h.send(PubAck::new(pid(first[0].1))).unwrap();
    let payloads: Vec<_> = h
        .packets()
        .into_iter()
        .map(|p| match p {
            Packet::Publish(p) => p.payload,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(payloads, [&b"3"[..], &b"4"[..]]);
    assert_eq!(h.session.inflight_len(), 2);
    assert_eq!(h.session.queued_len(), 0);
}

// covers: MQTT-4.3.3-1
#[test]
fn mqtt_4_6_0_4_pubrels_follow_pubrec_order_and_pubcomp_frees_the_window() {
    let mut h = Harness::connected(small_window(2), connect("c", true, 0));
    for p in [b"1", b"2", b"3"] {
        h.session.deliver(h.now, message("t", QoS::ExactlyOnce, p));
    }
    let ids = ids_of(&h.packets());
    let (a, b) = (pid(ids[0].1), pid(ids[1].1));
    h.send(PubRec::new(b)).unwrap();
    h.send(PubRec::new(a)).unwrap();
    assert_eq!(
        h.packets(),
        vec![
            Packet::PubRel(PubRel::new(b)),
            Packet::PubRel(PubRel::new(a))
        ]
    );
    assert_eq!(h.session.queued_len(), 1, "PUBREC does not free the window");
    h.send(PubComp::new(a)).unwrap();
    let packets = h.packets();
    assert!(matches!(&packets[..], [Packet::Publish(p)] if p.payload == b"3"[..]));
    assert_eq!(h.session.stats().unknown_acks, 0);
}

#[test]
fn acks_for_unknown_ids_or_the_wrong_stage_are_ignored_and_counted() {
    let mut h = Harness::connected(ServerConfig::default(), connect("c", true, 0));
    h.session
        .deliver(h.now, message("t", QoS::ExactlyOnce, b"x"));
    let id = pid(ids_of(&h.packets())[0].1);
    h.send(PubAck::new(id)).unwrap(); // QoS 2 wants PUBREC
    h.send(PubComp::new(id)).unwrap(); // not released yet
    h.send(PubAck::new(pid(999))).unwrap();
    h.send(PubRec::new(pid(999))).unwrap();
    assert!(h.packets().is_empty());
    assert_eq!(h.session.stats().unknown_acks, 4);
    assert_eq!(h.session.inflight_len(), 1);
}

#[test]
fn queue_full_drop_newest_refuses_and_counts() {
    let mut h = Harness::connected(
        ServerConfig {
            max_inflight: 1,
            max_queued_messages: 2,
            ..ServerConfig::default()
        },
        connect("c", true, 0),
    );
    let outcomes: Vec<_> = [b"1", b"2", b"3", b"4"]
        .into_iter()
        .map(|p| h.session.deliver(h.now, message("t", QoS::AtLeastOnce, p)))
        .collect();
    assert_eq!(
        outcomes,
        [
            DeliverOutcome::Sent,
            DeliverOutcome::Queued,
            DeliverOutcome::Queued,
            DeliverOutcome::Dropped(DropReason::QueueFull)
        ]
    );
    assert_eq!(h.session.stats().dropped_queue_full, 1);
    let id = pid(ids_of(&h.packets())[0].1);
    h.send(PubAck::new(id)).unwrap();
    let packets = h.packets();
    assert!(matches!(&packets[..], [Packet::Publish(p)] if p.payload == b"2"[..]));
}

#[test]
fn queue_full_drop_oldest_evicts_and_counts() {
    let mut h = Harness::connected(
        ServerConfig {
            max_inflight: 1,
            max_queued_messages: 2,
            overflow_policy: OverflowPolicy::DropOldest,
            ..ServerConfig::default()
        },
        connect("c", true, 0),
    );
    for p in [b"1", b"2", b"3", b"4"] {
        assert_ne!(
            h.session.deliver(h.now, message("t", QoS::AtLeastOnce, p)),
            DeliverOutcome::Dropped(DropReason::QueueFull)
        );
    }
    assert_eq!(h.session.stats().dropped_oldest, 1);
    assert_eq!(h.session.queued_len(), 2);
    let mut payloads = Vec::new();
    for _ in 0..3 {
        let packets = h.packets();
        let Some(Packet::Publish(p)) = packets.first() else {
            panic!("{packets:?}");
        };
        payloads.push(p.payload.clone());
        h.send(PubAck::new(p.packet_id().unwrap())).unwrap();
    }
    assert_eq!(payloads, [&b"1"[..], &b"3"[..], &b"4"[..]]);
}

#[test]
fn queue_byte_limit_applies_and_qos0_is_dropped_at_a_full_queue() {
    let mut h = Harness::new(ServerConfig {
        max_queued_bytes: 10,
        overflow_policy: OverflowPolicy::DropOldest,
        ..ServerConfig::default()
    });
    // Before CONNACK everything queues; "t" + 4 bytes = 5 bytes each.
    assert_eq!(
        h.session
            .deliver(h.now, message("t", QoS::AtLeastOnce, b"aaaa")),
        DeliverOutcome::Queued
    );
    assert_eq!(
        h.session
            .deliver(h.now, message("t", QoS::AtMostOnce, b"bbbb")),
        DeliverOutcome::Queued
    );
    assert_eq!(h.session.queued_bytes(), 10);
    assert_eq!(
        h.session
            .deliver(h.now, message("t", QoS::AtMostOnce, b"c")),
        DeliverOutcome::Dropped(DropReason::QueueFull)
    );
    assert_eq!(h.session.stats().dropped_qos0, 1);
    // Larger than the whole queue: dropped whatever the policy.
    assert_eq!(
        h.session
            .deliver(h.now, message("t", QoS::AtLeastOnce, b"0123456789")),
        DeliverOutcome::Dropped(DropReason::QueueFull)
    );
    // DropOldest makes room for a QoS 1 message.
    assert_eq!(
        h.session
            .deliver(h.now, message("t", QoS::AtLeastOnce, b"dddd")),
        DeliverOutcome::QueuedEvictedOldest(1)
    );
    assert_eq!(h.session.stats().dropped_oldest, 1);
    assert_eq!(h.session.queued_bytes(), 10);
}

// ----- persistent session hand-over --------------------------------------

// covers: MQTT-4.6.0-1, MQTT-3.3.1-1, MQTT-2.3.1-3, MQTT-3.1.2-4
#[test]
fn mqtt_4_4_0_1_resume_resends_inflight_with_dup_and_same_ids() {
    let config = small_window(2);
    let mut h = Harness::connected(config.clone(), connect("c", false, 0));
    h.session
        .deliver(h.now, message("t", QoS::AtLeastOnce, b"q1"));
    h.session
        .deliver(h.now, message("t", QoS::ExactlyOnce, b"q2"));
    h.session
        .deliver(h.now, message("t", QoS::ExactlyOnce, b"later"));
    let ids = ids_of(&h.packets());
    let (q1, q2) = (pid(ids[0].1), pid(ids[1].1));
    h.send(PubRec::new(q2)).unwrap();
    h.send(publish("in", QosPid::ExactlyOnce(pid(40)), b"x"))
        .unwrap();
    h.packets();
    h.session.handle_transport_closed(h.now);
    h.events();
    let resume = std::mem::replace(
        &mut h.session,
        midge_broker::ServerSession::new(config.clone(), h.now, 2),
    )
    .into_resume_state();
    assert_eq!(resume.inflight.len(), 2);
    assert!(
        matches!(&resume.inflight[0], InflightMessage::Publish(p) if p.packet_id() == Some(q1))
    );
    assert_eq!(resume.inflight[1], InflightMessage::PubRel(q2));
    assert_eq!(resume.queued.len(), 1);
    assert_eq!(resume.inbound_qos2, vec![pid(40)]);

    // The next connection of the same client.
    let mut h2 = Harness::new(config);
    h2.send(connect("c", false, 0)).unwrap();
    h2.events();
    h2.session.accept(h2.now, true, resume).unwrap();
    let packets = h2.packets();
    assert_eq!(packets[0], connack(ConnectReturnCode::Accepted, true));
    let Packet::Publish(resent) = &packets[1] else {
        panic!("{packets:?}");
    };
    assert!(resent.dup);
    assert_eq!(resent.packet_id(), Some(q1));
    assert_eq!(resent.payload, b"q1"[..]);
    assert_eq!(packets[2], Packet::PubRel(PubRel::new(q2)));
    assert_eq!(packets.len(), 3, "the window is full: 'later' waits");
    // The client completes both; the queued message leaves with a fresh id.
    h2.send(PubAck::new(q1)).unwrap();
    let packets = h2.packets();
    let Packet::Publish(later) = &packets[0] else {
        panic!("{packets:?}");
    };
    assert!(!later.dup);
    assert_eq!(later.payload, b"later"[..]);
    assert_ne!(later.packet_id(), Some(q2), "q2 is still in use");
    h2.send(PubComp::new(q2)).unwrap();
    // The inbound QoS 2 message from before is not routed twice.
    let mut dup = publish("in", QosPid::ExactlyOnce(pid(40)), b"x");
    dup.dup = true;
    h2.send(dup).unwrap();
    assert_eq!(h2.packets(), vec![Packet::PubRec(PubRec::new(pid(40)))]);
    assert!(published(&h2.events()).is_empty());
}

#[test]
fn resume_with_a_repeated_outbound_id_is_refused() {
    let mut h = Harness::new(ServerConfig::default());
    h.send(connect("c", false, 0)).unwrap();
    h.events();
    let resume = ResumeState {
        inflight: vec![
            InflightMessage::PubRel(pid(3)),
            InflightMessage::PubRel(pid(3)),
        ],
        ..ResumeState::default()
    };
    assert_eq!(
        h.session.accept(h.now, true, resume),
        Err(UsageError::DuplicateResumeId(pid(3)))
    );
    assert!(h.packets().is_empty());
}

#[test]
fn decisions_without_a_pending_connect_are_usage_errors() {
    let mut h = Harness::new(ServerConfig::default());
    assert_eq!(
        h.session.accept(h.now, false, ResumeState::default()),
        Err(UsageError::NoConnectPending)
    );
    let mut h = Harness::connected(ServerConfig::default(), connect("c", true, 0));
    assert_eq!(
        h.session.refuse(h.now, ConnectReturnCode::NotAuthorized),
        Err(UsageError::NoConnectPending)
    );
    assert!(h.packets().is_empty());
}

#[test]
fn stats_count_bytes_and_packets() {
    let mut h = Harness::connected(ServerConfig::default(), connect("c", true, 0));
    let connect_len = encode(connect("c", true, 0)).len() as u64;
    h.send(Packet::PingReq).unwrap();
    h.packets();
    let stats = *h.session.stats();
    assert_eq!(stats.bytes_in, connect_len + 2);
    assert_eq!(stats.bytes_out, 4 + 2);
    assert_eq!(stats.packets_in, 2);
}

#[test]
fn a_slow_reader_fills_its_own_bounded_queue_not_memory() {
    let mut h = Harness::connected(
        ServerConfig {
            max_unsent_bytes: 8,
            max_queued_messages: 2,
            ..ServerConfig::default()
        },
        connect("c", true, 0),
    );
    let outcomes: Vec<_> = [b"one", b"two", b"thr", b"fou"]
        .into_iter()
        .map(|p| h.session.deliver(h.now, message("t", QoS::AtMostOnce, p)))
        .collect();
    assert_eq!(
        outcomes,
        [
            DeliverOutcome::Sent,
            DeliverOutcome::Queued,
            DeliverOutcome::Queued,
            DeliverOutcome::Dropped(DropReason::QueueFull)
        ]
    );
    assert_eq!(h.session.stats().dropped_qos0, 1);
    // Each poll hands out what is encoded, then the queue refills it.
    let mut buf = bytes::BytesMut::new();
    let mut polls = 0;
    while h.session.poll_transmit(h.now, &mut buf) > 0 {
        polls += 1;
        assert!(h.session.queued_len() <= 2);
    }
    assert_eq!(polls, 3);
    let mut decoder = midge_codec::Decoder::new();
    let mut payloads = Vec::new();
    while let Some(Packet::Publish(p)) = decoder.decode(&mut buf).unwrap() {
        payloads.push(p.payload);
    }
    assert_eq!(payloads, [&b"one"[..], &b"two"[..], &b"thr"[..]]);
}

#[test]
fn mqtt_3_10_4_1_unsubscribe_removes_only_the_exact_filter() {
    let mut h = Harness::connected(ServerConfig::default(), connect("c", true, 0));
    h.send(subscribe(1, &[("a/+", QoS::AtMostOnce)])).unwrap();
    h.events();
    h.session
        .suback(
            h.now,
            pid(1),
            vec![SubscribeReturnCode::Success(QoS::AtMostOnce)],
        )
        .unwrap();
    assert_eq!(h.session.subscription_count(), 1);
    // "a/b" matches "a/+" but is not the same filter.
    h.send(Unsubscribe::new(pid(2), vec![filter("a/b"), filter("a/#")]))
        .unwrap();
    assert_eq!(h.session.subscription_count(), 1);
    h.send(Unsubscribe::new(pid(3), vec![filter("a/+")]))
        .unwrap();
    assert_eq!(h.session.subscription_count(), 0);
}

#[test]
fn mqtt_3_1_client_gets_a_connack_without_session_present() {
    let mut h = Harness::new(ServerConfig::default());
    let mut c = connect("c", false, 0);
    c.protocol = midge_codec::Protocol::V3_1;
    h.send(c).unwrap();
    assert!(matches!(
        h.events().as_slice(),
        [Event::ConnectRequest {
            protocol: midge_codec::Protocol::V3_1,
            ..
        }]
    ));
    h.session
        .accept(h.now, true, ResumeState::default())
        .unwrap();
    let mut buf = bytes::BytesMut::new();
    while h.session.poll_transmit(h.now, &mut buf) > 0 {}
    assert_eq!(&buf[..], &[0x20, 0x02, 0x00, 0x00]);
}
