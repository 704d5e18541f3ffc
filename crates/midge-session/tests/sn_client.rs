//! Scripted exchanges between `SnClient` and a gateway played by the test:
//! every datagram the client writes is compared octet for octet with the
//! message built by `midge-sn-codec`. Test names carry the section of the
//! MQTT-SN 1.2 specification that decides the behaviour.

// Test helpers outside #[test] functions: a failed expectation should panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use bytes::{Bytes, BytesMut};
use midge_session::sn::client::{
    Destination, GwAddCodec, SnClient, SnClientConfig, SnDisconnectReason, SnEvent,
    SnProtocolError, SnState, SnTopic, SnUsageError, SnWill,
};
use midge_sn_codec::*;
use midge_time::{Duration, Instant};

type Addr = u32;
const GW: Addr = 1;
const GW2: Addr = 2;
const STRANGER: Addr = 99;

fn enc(msg: impl Into<Message>) -> Vec<u8> {
    let mut out = Vec::new();
    msg.into().encode(&mut out).unwrap();
    out
}

struct Harness {
    c: SnClient<Addr>,
    now: Instant,
}

fn config() -> SnClientConfig<Addr> {
    let mut cfg = SnClientConfig::new("node-1");
    cfg.keep_alive = 0;
    cfg
}

impl Harness {
    fn new(cfg: SnClientConfig<Addr>) -> Self {
        Self {
            c: SnClient::new(cfg).unwrap(),
            now: Instant::ZERO,
        }
    }

    /// Connected to GW, nothing left to drain.
    fn connected(cfg: SnClientConfig<Addr>) -> Self {
        let mut h = Self::new(cfg);
        h.c.connect(h.now, GW).unwrap();
        h.expect(GW, connect_msg(false, true, 0));
        h.feed(
            GW,
            ConnAck {
                return_code: ReturnCode::Accepted,
            },
        );
        assert_eq!(h.events(), vec![SnEvent::Connected { gateway: GW }]);
        h
    }

    fn transmits(&mut self) -> Vec<(Destination<Addr>, Vec<u8>)> {
        let mut all = Vec::new();
        for _ in 0..1000 {
            let mut buf = BytesMut::new();
            let Some(t) = self.c.poll_transmit(self.now, &mut buf) else {
                return all;
            };
            assert_eq!(t.len, buf.len());
            all.push((t.to, buf.to_vec()));
        }
        panic!("poll_transmit never ran dry");
    }

    /// Exactly one datagram is waiting, to `to`, and it is `msg`.
    fn expect(&mut self, to: Addr, msg: impl Into<Message>) {
        let sent = self.transmits();
        assert_eq!(sent, vec![(Destination::Unicast(to), enc(msg))]);
    }

    fn expect_nothing(&mut self) {
        assert_eq!(self.transmits(), vec![]);
    }

    fn feed(&mut self, from: Addr, msg: impl Into<Message>) {
        self.c.handle_datagram(self.now, from, &enc(msg)).unwrap();
    }

    fn events(&mut self) -> Vec<SnEvent<Addr>> {
        let mut all = Vec::new();
        while let Some(e) = self.c.poll_event() {
            all.push(e);
        }
        all
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.c.handle_timeout(self.now);
    }

    /// Runs timers to `poll_timeout`, checking it lies `d` from now.
    fn fire_after(&mut self, d: Duration) {
        assert_eq!(self.c.poll_timeout(), Some(self.now + d));
        self.advance(d);
    }
}

fn connect_msg(will: bool, clean: bool, keep_alive: u16) -> Connect {
    Connect {
        will,
        clean_session: clean,
        duration: keep_alive,
        client_id: ClientId::from("node-1"),
    }
}

fn publish(qos: PublishQoS, topic: Topic, msg_id: u16, data: &'static [u8]) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic,
        msg_id,
        data: Bytes::from_static(data),
    }
}

const T_RETRY: Duration = Duration::from_secs(10);

// ----- discovery (6.1) -----

#[test]
fn sn_6_1_searchgw_after_random_delay_then_gwinfo_adds_the_gateway() {
    let mut h = Harness::new(config());
    h.c.search_gateway(h.now).unwrap();
    assert_eq!(h.c.search_gateway(h.now), Err(SnUsageError::SearchRunning));
    let at = h.c.poll_timeout().unwrap();
    assert!(
        at <= Instant::from_secs(5),
        "delay above T_SEARCHGW: {at:?}"
    );
    h.expect_nothing();
    h.now = at;
    h.c.handle_timeout(h.now);
    assert_eq!(
        h.transmits(),
        vec![(Destination::Broadcast { radius: 1 }, vec![0x03, 0x01, 0x01])]
    );
    h.c.handle_datagram(h.now, GW, &[0x03, 0x02, 0x07]).unwrap(); // GWINFO from a gateway
    assert_eq!(
        h.events(),
        vec![SnEvent::GatewayFound {
            gw_id: 7,
            address: GW
        }]
    );
    assert_eq!(h.c.poll_timeout(), None, "search over");
    assert_eq!(h.c.gateways().collect::<Vec<_>>(), vec![(7, &GW)]);
}

#[test]
fn sn_6_1_searchgw_jitter_comes_from_the_seed() {
    let delay = |seed| {
        let mut cfg = config();
        cfg.seed = seed;
        let mut c = SnClient::<Addr>::new(cfg).unwrap();
        c.search_gateway(Instant::ZERO).unwrap();
        c.poll_timeout().unwrap()
    };
    assert_eq!(delay(1), delay(1));
    let delays: Vec<_> = (0..8).map(delay).collect();
    assert!(delays.iter().any(|d| *d != delays[0]), "{delays:?}");
    assert!(delays.iter().all(|d| *d <= Instant::from_secs(5)));
}

#[test]
fn sn_6_1_searchgw_repeats_at_doubling_intervals_then_gives_up() {
    let mut cfg = config();
    cfg.searchgw_attempts = 3;
    cfg.radius = 2;
    let mut h = Harness::new(cfg);
    h.c.search_gateway(h.now).unwrap();
    h.now = h.c.poll_timeout().unwrap();
    h.c.handle_timeout(h.now);
    let search = (
        Destination::Broadcast { radius: 2 },
        enc(SearchGw { radius: 2 }),
    );
    assert_eq!(h.transmits(), vec![search.clone()]);
    h.fire_after(Duration::from_secs(5));
    assert_eq!(h.transmits(), vec![search.clone()]);
    h.fire_after(Duration::from_secs(10));
    assert_eq!(h.transmits(), vec![search]);
    h.fire_after(Duration::from_secs(20));
    h.expect_nothing();
    assert_eq!(h.events(), vec![SnEvent::SearchFailed]);
    assert_eq!(h.c.poll_timeout(), None);
}

#[test]
fn sn_6_1_identical_searchgw_from_another_client_replaces_ours() {
    let mut h = Harness::new(config());
    h.c.search_gateway(h.now).unwrap();
    h.feed(STRANGER, SearchGw { radius: 1 });
    // Waiting for the answer now, as if ours had gone out.
    assert_eq!(h.c.poll_timeout(), Some(Instant::from_secs(5)));
    h.expect_nothing();
    // A SEARCHGW with another radius would not have counted.
    let mut h2 = Harness::new(config());
    h2.c.search_gateway(h2.now).unwrap();
    let before = h2.c.poll_timeout();
    h2.feed(STRANGER, SearchGw { radius: 3 });
    assert_eq!(h2.c.poll_timeout(), before);
}

#[test]
fn sn_6_1_advertise_adds_a_gateway_that_expires_after_n_adv_silent_periods() {
    let mut cfg = config();
    cfg.n_adv = 2;
    let mut h = Harness::new(cfg);
    h.feed(
        GW,
        Advertise {
            gw_id: 3,
            duration: 60,
        },
    );
    assert_eq!(
        h.events(),
        vec![SnEvent::GatewayFound {
            gw_id: 3,
            address: GW
        }]
    );
    // Refreshed after one period: the deadline moves.
    h.advance(Duration::from_secs(60));
    h.feed(
        GW,
        Advertise {
            gw_id: 3,
            duration: 60,
        },
    );
    assert_eq!(h.events(), vec![], "already known");
    assert_eq!(h.c.poll_timeout(), Some(Instant::from_secs(180)));
    h.advance(Duration::from_secs(119));
    assert_eq!(h.events(), vec![]);
    h.advance(Duration::from_secs(1));
    assert_eq!(
        h.events(),
        vec![SnEvent::GatewayExpired {
            gw_id: 3,
            address: GW
        }]
    );
    assert_eq!(h.c.gateways().count(), 0);
}

#[test]
fn sn_6_1_gateway_list_is_bounded() {
    let mut cfg = config();
    cfg.max_gateways = 2;
    let mut h = Harness::new(cfg);
    for id in 0..5u8 {
        h.feed(
            Addr::from(id) + 10,
            GwInfo {
                gw_id: id,
                gw_add: Bytes::new(),
            },
        );
    }
    assert_eq!(h.c.gateways().count(), 2);
    assert_eq!(h.events().len(), 2);
}

fn gw_add_codec() -> GwAddCodec<Addr> {
    GwAddCodec {
        encode: |a: &Addr| Bytes::copy_from_slice(&a.to_be_bytes()),
        decode: |b: &[u8]| Some(Addr::from_be_bytes(b.try_into().ok()?)),
    }
}

#[test]
fn sn_6_1_client_answers_searchgw_with_gwinfo_after_a_random_delay() {
    let mut cfg = config();
    cfg.gw_add_codec = Some(gw_add_codec());
    cfg.gateways = vec![(4, GW2)];
    let mut h = Harness::new(cfg);
    h.feed(STRANGER, SearchGw { radius: 2 });
    let at = h.c.poll_timeout().unwrap();
    assert!(at <= Instant::from_secs(5), "delay above T_GWINFO: {at:?}");
    h.expect_nothing();
    h.now = at;
    h.c.handle_timeout(h.now);
    // GWINFO naming gateway 4 at address 2, broadcast with the searcher's radius.
    assert_eq!(
        h.transmits(),
        vec![(
            Destination::Broadcast { radius: 2 },
            vec![0x07, 0x02, 0x04, 0x00, 0x00, 0x00, 0x02]
        )]
    );
    assert_eq!(h.c.poll_timeout(), None);
}

#[test]
fn sn_6_1_gwinfo_heard_during_the_delay_cancels_our_answer() {
    let mut cfg = config();
    cfg.gw_add_codec = Some(gw_add_codec());
    cfg.gateways = vec![(4, GW2)];
    let mut h = Harness::new(cfg);
    h.feed(STRANGER, SearchGw { radius: 1 });
    assert!(h.c.poll_timeout().is_some());
    h.feed(
        GW2,
        GwInfo {
            gw_id: 4,
            gw_add: Bytes::new(),
        },
    );
    assert_eq!(h.c.poll_timeout(), None);
    h.advance(Duration::from_secs(10));
    h.expect_nothing();
    // Without a codec (or without a known gateway) there is no answer at all.
    let mut plain = Harness::new(config());
    plain.feed(STRANGER, SearchGw { radius: 1 });
    assert_eq!(plain.c.poll_timeout(), None);
}

#[test]
fn sn_6_1_gwinfo_from_another_client_names_the_gateway_by_gwadd() {
    let mut cfg = config();
    cfg.gw_add_codec = Some(gw_add_codec());
    let mut h = Harness::new(cfg);
    h.feed(
        STRANGER,
        GwInfo {
            gw_id: 9,
            gw_add: Bytes::from_static(&[0, 0, 0, 0x2A]),
        },
    );
    assert_eq!(
        h.events(),
        vec![SnEvent::GatewayFound {
            gw_id: 9,
            address: 0x2A
        }]
    );
    // Unreadable GwAdd: ignored.
    h.feed(
        STRANGER,
        GwInfo {
            gw_id: 8,
            gw_add: Bytes::from_static(&[1]),
        },
    );
    assert_eq!(h.events(), vec![]);
    let mut plain = Harness::new(config());
    plain.feed(
        STRANGER,
        GwInfo {
            gw_id: 9,
            gw_add: Bytes::from_static(&[0, 0, 0, 0x2A]),
        },
    );
    assert_eq!(plain.c.gateways().count(), 0);
}

// ----- connection (6.2, 6.3) -----

#[test]
fn sn_6_2_connect_with_the_will_prompts() {
    let mut cfg = config();
    cfg.will = Some(SnWill {
        topic: "nodes/1/status".into(),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: true,
    });
    cfg.keep_alive = 30;
    let mut h = Harness::new(cfg);
    h.c.connect(h.now, GW).unwrap();
    assert_eq!(h.c.state(), SnState::Connecting);
    // Length 12, CONNECT, flags Will|CleanSession, protocol 1, 30 s, "node-1".
    let sent = h.transmits();
    assert_eq!(
        sent,
        vec![(
            Destination::Unicast(GW),
            vec![0x0C, 0x04, 0x0C, 0x01, 0x00, 0x1E, b'n', b'o', b'd', b'e', b'-', b'1']
        )]
    );
    h.feed(GW, WillTopicReq);
    h.expect(
        GW,
        WillTopic(Some(WillTopicData {
            qos: QoS::AtLeastOnce,
            retain: true,
            topic: TopicName::from("nodes/1/status"),
        })),
    );
    h.feed(GW, WillMsgReq);
    h.expect(
        GW,
        WillMsg {
            will_msg: Bytes::from_static(b"gone"),
        },
    );
    h.feed(
        GW,
        ConnAck {
            return_code: ReturnCode::Accepted,
        },
    );
    assert_eq!(h.events(), vec![SnEvent::Connected { gateway: GW }]);
    assert_eq!(h.c.state(), SnState::Active);
    assert_eq!(h.c.connect(h.now, GW), Err(SnUsageError::AlreadyConnected));
}

#[test]
fn sn_6_13_a_lost_willmsg_is_sent_again_after_t_retry() {
    let mut cfg = config();
    cfg.will = Some(SnWill::new("w", &b"x"[..]));
    let mut h = Harness::new(cfg);
    h.c.connect(h.now, GW).unwrap();
    h.transmits();
    h.feed(GW, WillTopicReq);
    h.transmits();
    h.feed(GW, WillMsgReq);
    h.expect(
        GW,
        WillMsg {
            will_msg: Bytes::from_static(b"x"),
        },
    );
    h.fire_after(T_RETRY);
    h.expect(
        GW,
        WillMsg {
            will_msg: Bytes::from_static(b"x"),
        },
    );
}

#[test]
fn sn_6_2_connack_refusal_ends_the_attempt() {
    let mut h = Harness::new(config());
    h.c.connect(h.now, GW).unwrap();
    h.transmits();
    h.feed(
        GW,
        ConnAck {
            return_code: ReturnCode::NotSupported,
        },
    );
    assert_eq!(
        h.events(),
        vec![SnEvent::Disconnected {
            reason: SnDisconnectReason::Refused(ReturnCode::NotSupported)
        }]
    );
    assert_eq!(h.c.state(), SnState::Disconnected);
    assert_eq!(h.c.poll_timeout(), None);
}

#[test]
fn sn_6_2_connack_congestion_sends_connect_again_after_t_wait() {
    let mut h = Harness::new(config());
    h.c.connect(h.now, GW).unwrap();
    h.transmits();
    h.feed(
        GW,
        ConnAck {
            return_code: ReturnCode::Congestion,
        },
    );
    let retry_at = Instant::from_secs(300);
    assert_eq!(h.events(), vec![SnEvent::Congestion { retry_at }]);
    assert_eq!(h.c.poll_timeout(), Some(retry_at));
    h.advance(Duration::from_secs(299));
    h.expect_nothing();
    h.advance(Duration::from_secs(1));
    h.expect(GW, connect_msg(false, true, 0));
}

#[test]
fn sn_6_13_connect_unanswered_n_retry_times_switches_to_the_next_gateway() {
    let mut cfg = config();
    cfg.gateways = vec![(1, GW), (2, GW2)];
    let mut h = Harness::new(cfg);
    h.c.connect(h.now, GW).unwrap();
    h.expect(GW, connect_msg(false, true, 0));
    for _ in 0..3 {
        h.fire_after(T_RETRY);
        h.expect(GW, connect_msg(false, true, 0));
    }
    h.fire_after(T_RETRY);
    assert_eq!(h.events(), vec![SnEvent::GatewayLost { gateway: GW }]);
    h.expect(GW2, connect_msg(false, true, 0));
    assert_eq!(h.c.gateway(), Some(&GW2));
    h.feed(
        GW2,
        ConnAck {
            return_code: ReturnCode::Accepted,
        },
    );
    assert_eq!(h.events(), vec![SnEvent::Connected { gateway: GW2 }]);
}

#[test]
fn sn_6_13_with_no_other_gateway_the_client_gives_up() {
    let mut h = Harness::new(config());
    h.c.connect(h.now, GW).unwrap();
    h.transmits();
    for _ in 0..3 {
        h.fire_after(T_RETRY);
        h.transmits();
    }
    h.fire_after(T_RETRY);
    assert_eq!(
        h.events(),
        vec![
            SnEvent::GatewayLost { gateway: GW },
            SnEvent::Disconnected {
                reason: SnDisconnectReason::GatewayLost
            }
        ]
    );
    h.expect_nothing();
    assert_eq!(h.c.poll_timeout(), None);
}

#[test]
fn sn_6_13_every_gateway_failing_ends_the_switching() {
    let mut cfg = config();
    cfg.gateways = vec![(1, GW), (2, GW2)];
    cfg.n_retry = 0;
    let mut h = Harness::new(cfg);
    h.c.connect(h.now, GW).unwrap();
    let mut lost = 0;
    for _ in 0..10 {
        h.transmits();
        let Some(at) = h.c.poll_timeout() else { break };
        h.now = at;
        h.c.handle_timeout(h.now);
        lost += h
            .events()
            .iter()
            .filter(|e| matches!(e, SnEvent::GatewayLost { .. }))
            .count();
    }
    assert_eq!(lost, 3, "GW, GW2, GW again, then stop");
    assert_eq!(h.c.state(), SnState::Disconnected);
}

#[test]
fn sn_6_3_topic_ids_survive_a_reconnection_to_the_same_gateway_without_clean_session() {
    let mut cfg = config();
    cfg.clean_session = false;
    let mut h = Harness::new(cfg);
    h.c.connect(h.now, GW).unwrap();
    h.expect(GW, connect_msg(false, false, 0));
    h.feed(
        GW,
        ConnAck {
            return_code: ReturnCode::Accepted,
        },
    );
    h.feed(
        GW,
        Register {
            topic_id: TopicId(6),
            msg_id: 1,
            topic_name: TopicName::from("k"),
        },
    );
    h.transmits();
    h.feed(GW, Disconnect { duration: None });
    h.c.connect(h.now, GW).unwrap();
    h.transmits();
    h.feed(
        GW,
        ConnAck {
            return_code: ReturnCode::Accepted,
        },
    );
    assert_eq!(h.c.topic_id("k"), Some(TopicId(6)));
    // Another gateway does not know our ids.
    h.feed(GW, Disconnect { duration: None });
    h.c.connect(h.now, GW2).unwrap();
    assert_eq!(h.c.topic_id("k"), None);
}

#[test]
fn sn_6_3_clean_session_forgets_topic_ids_on_reconnection() {
    let mut h = Harness::connected(config());
    h.feed(
        GW,
        Register {
            topic_id: TopicId(6),
            msg_id: 1,
            topic_name: TopicName::from("k"),
        },
    );
    h.transmits();
    h.feed(GW, Disconnect { duration: None });
    h.c.connect(h.now, GW).unwrap();
    assert_eq!(h.c.topic_id("k"), None);
}

// ----- registration and publishing (6.5 - 6.8) -----

#[test]
fn sn_6_5_register_then_regack() {
    let mut h = Harness::connected(config());
    let id = h.c.register(h.now, "a/b").unwrap();
    h.expect(
        GW,
        Register {
            topic_id: TopicId(0),
            msg_id: 1,
            topic_name: TopicName::from("a/b"),
        },
    );
    h.feed(
        GW,
        RegAck {
            topic_id: TopicId(0x21),
            msg_id: 1,
            return_code: ReturnCode::Accepted,
        },
    );
    assert_eq!(
        h.events(),
        vec![SnEvent::Registered {
            id: Some(id),
            topic: "a/b".into(),
            topic_id: TopicId(0x21)
        }]
    );
    assert_eq!(h.c.topic_id("a/b"), Some(TopicId(0x21)));
    // Registering a known name answers at once, without a datagram.
    let again = h.c.register(h.now, "a/b").unwrap();
    h.expect_nothing();
    assert!(matches!(h.events()[..], [SnEvent::Registered { id: Some(i), .. }] if i == again));
    assert_eq!(h.c.register(h.now, "a/+"), Err(SnUsageError::InvalidTopic));
}

#[test]
fn sn_6_5_regack_rejection_is_reported() {
    let mut h = Harness::connected(config());
    let id = h.c.register(h.now, "a/b").unwrap();
    h.transmits();
    h.feed(
        GW,
        RegAck {
            topic_id: TopicId(0),
            msg_id: 1,
            return_code: ReturnCode::NotSupported,
        },
    );
    assert_eq!(
        h.events(),
        vec![SnEvent::RegisterFailed {
            id,
            code: ReturnCode::NotSupported
        }]
    );
    assert!(!h.c.request_in_flight());
}

#[test]
fn sn_6_5_only_one_register_outstanding_and_regack_congestion_waits_t_wait() {
    let mut h = Harness::connected(config());
    h.c.register(h.now, "a").unwrap();
    h.c.register(h.now, "b").unwrap();
    h.expect(
        GW,
        Register {
            topic_id: TopicId(0),
            msg_id: 1,
            topic_name: TopicName::from("a"),
        },
    );
    h.feed(
        GW,
        RegAck {
            topic_id: TopicId(0),
            msg_id: 1,
            return_code: ReturnCode::Congestion,
        },
    );
    assert_eq!(
        h.events(),
        vec![SnEvent::Congestion {
            retry_at: Instant::from_secs(300)
        }]
    );
    h.advance(Duration::from_secs(299));
    h.expect_nothing();
    h.advance(Duration::from_secs(1));
    h.expect(
        GW,
        Register {
            topic_id: TopicId(0),
            msg_id: 1,
            topic_name: TopicName::from("a"),
        },
    );
    h.feed(
        GW,
        RegAck {
            topic_id: TopicId(5),
            msg_id: 1,
            return_code: ReturnCode::Accepted,
        },
    );
    h.expect(
        GW,
        Register {
            topic_id: TopicId(0),
            msg_id: 2,
            topic_name: TopicName::from("b"),
        },
    );
}

#[test]
fn sn_6_6_publish_on_a_name_registers_it_first_then_qos1() {
    let mut h = Harness::connected(config());
    let id =
        h.c.publish(
            h.now,
            SnTopic::Name("t/1".into()),
            &b"hi"[..],
            PublishQoS::AtLeastOnce,
            false,
        )
        .unwrap();
    h.expect(
        GW,
        Register {
            topic_id: TopicId(0),
            msg_id: 1,
            topic_name: TopicName::from("t/1"),
        },
    );
    h.feed(
        GW,
        RegAck {
            topic_id: TopicId(7),
            msg_id: 1,
            return_code: ReturnCode::Accepted,
        },
    );
    h.expect(
        GW,
        publish(
            PublishQoS::AtLeastOnce,
            Topic::TopicId(TopicId(7)),
            2,
            b"hi",
        ),
    );
    h.feed(
        GW,
        PubAck {
            topic_id: TopicId(7),
            msg_id: 2,
            return_code: ReturnCode::Accepted,
        },
    );
    assert_eq!(
        h.events(),
        vec![
            SnEvent::Registered {
                id: None,
                topic: "t/1".into(),
                topic_id: TopicId(7)
            },
            SnEvent::Delivered { id }
        ]
    );
    // The second publish on the name needs no REGISTER; QoS 0 is done once written.
    let id2 =
        h.c.publish(
            h.now,
            SnTopic::Name("t/1".into()),
            &b"x"[..],
            PublishQoS::AtMostOnce,
            true,
        )
        .unwrap();
    let mut p = publish(PublishQoS::AtMostOnce, Topic::TopicId(TopicId(7)), 0, b"x");
    p.retain = true;
    h.expect(GW, p);
    assert_eq!(h.events(), vec![SnEvent::Delivered { id: id2 }]);
}

#[test]
fn sn_6_6_qos2_publish_on_a_predefined_id() {
    let mut h = Harness::connected(config());
    let id =
        h.c.publish(
            h.now,
            SnTopic::Predefined(0x0102),
            &b"v"[..],
            PublishQoS::ExactlyOnce,
            false,
        )
        .unwrap();
    // Length 8, PUBLISH, flags QoS 2 | predefined, id 0x0102, msg id 1, "v".
    assert_eq!(
        h.transmits(),
        vec![(
            Destination::Unicast(GW),
            vec![0x08, 0x0C, 0x41, 0x01, 0x02, 0x00, 0x01, b'v']
        )]
    );
    h.feed(GW, PubRec { msg_id: 1 });
    h.expect(GW, PubRel { msg_id: 1 });
    // Our PUBREL got lost: PUBREC again gets PUBREL again.
    h.feed(GW, PubRec { msg_id: 1 });
    h.expect(GW, PubRel { msg_id: 1 });
    assert_eq!(h.events(), vec![]);
    h.feed(GW, PubComp { msg_id: 1 });
    assert_eq!(h.events(), vec![SnEvent::Delivered { id }]);
    assert!(!h.c.request_in_flight());
}

#[test]
fn sn_6_6_one_qos1_publish_outstanding_and_order_kept() {
    let mut h = Harness::connected(config());
    let a =
        h.c.publish(
            h.now,
            SnTopic::Short(*b"ab"),
            &b"1"[..],
            PublishQoS::AtLeastOnce,
            false,
        )
        .unwrap();
    let b =
        h.c.publish(
            h.now,
            SnTopic::Short(*b"ab"),
            &b"2"[..],
            PublishQoS::AtMostOnce,
            false,
        )
        .unwrap();
    h.expect(
        GW,
        publish(PublishQoS::AtLeastOnce, Topic::Short(*b"ab"), 1, b"1"),
    );
    assert_eq!(
        h.c.queued_len(),
        2,
        "the QoS 1 in flight, the QoS 0 waiting behind it"
    );
    h.feed(
        GW,
        PubAck {
            topic_id: TopicId(0x6162),
            msg_id: 1,
            return_code: ReturnCode::Accepted,
        },
    );
    h.expect(
        GW,
        publish(PublishQoS::AtMostOnce, Topic::Short(*b"ab"), 0, b"2"),
    );
    assert_eq!(
        h.events(),
        vec![SnEvent::Delivered { id: a }, SnEvent::Delivered { id: b }]
    );
}

#[test]
fn sn_6_13_publish_retransmitted_with_dup_then_gateway_lost_and_resumed_elsewhere() {
    let mut cfg = config();
    cfg.gateways = vec![(1, GW), (2, GW2)];
    let mut h = Harness::connected(cfg);
    let id =
        h.c.publish(
            h.now,
            SnTopic::Name("t".into()),
            &b"p"[..],
            PublishQoS::AtLeastOnce,
            false,
        )
        .unwrap();
    h.transmits(); // REGISTER
    h.feed(
        GW,
        RegAck {
            topic_id: TopicId(3),
            msg_id: 1,
            return_code: ReturnCode::Accepted,
        },
    );
    h.events();
    h.expect(
        GW,
        publish(PublishQoS::AtLeastOnce, Topic::TopicId(TopicId(3)), 2, b"p"),
    );
    let mut dup = publish(PublishQoS::AtLeastOnce, Topic::TopicId(TopicId(3)), 2, b"p");
    dup.dup = true;
    for _ in 0..3 {
        h.fire_after(T_RETRY);
        h.expect(GW, dup.clone());
    }
    assert_eq!(h.c.stats().retransmissions, 3);
    h.fire_after(T_RETRY);
    assert_eq!(h.events(), vec![SnEvent::GatewayLost { gateway: GW }]);
    h.expect(GW2, connect_msg(false, true, 0));
    h.feed(
        GW2,
        ConnAck {
            return_code: ReturnCode::Accepted,
        },
    );
    // Topic ids belong to a gateway: the name is registered again at GW2.
    h.expect(
        GW2,
        Register {
            topic_id: TopicId(0),
            msg_id: 3,
            topic_name: TopicName::from("t"),
        },
    );
    h.feed(
        GW2,
        RegAck {
            topic_id: TopicId(9),
            msg_id: 3,
            return_code: ReturnCode::Accepted,
        },
    );
    let mut again = publish(PublishQoS::AtLeastOnce, Topic::TopicId(TopicId(9)), 4, b"p");
    again.dup = true;
    h.expect(GW2, again);
    h.feed(
        GW2,
        PubAck {
            topic_id: TopicId(9),
            msg_id: 4,
            return_code: ReturnCode::Accepted,
        },
    );
    let events = h.events();
    assert_eq!(events.last(), Some(&SnEvent::Delivered { id }));
}

#[test]
fn sn_6_6_puback_invalid_topic_id_registers_the_name_again_once() {
    let mut h = Harness::connected(config());
    let id =
        h.c.publish(
            h.now,
            SnTopic::Name("t".into()),
            &b"p"[..],
            PublishQoS::AtLeastOnce,
            false,
        )
        .unwrap();
    h.transmits();
    h.feed(
        GW,
        RegAck {
            topic_id: TopicId(3),
            msg_id: 1,
            return_code: ReturnCode::Accepted,
        },
    );
    h.transmits();
    h.feed(
        GW,
        PubAck {
            topic_id: TopicId(3),
            msg_id: 2,
            return_code: ReturnCode::InvalidTopicId,
        },
    );
    h.expect(
        GW,
        Register {
            topic_id: TopicId(0),
            msg_id: 3,
            topic_name: TopicName::from("t"),
        },
    );
    h.feed(
        GW,
        RegAck {
            topic_id: TopicId(4),
            msg_id: 3,
            return_code: ReturnCode::Accepted,
        },
    );
    h.expect(
        GW,
        publish(PublishQoS::AtLeastOnce, Topic::TopicId(TopicId(4)), 4, b"p"),
    );
    // Refused again: dropped, no endless loop.
    h.feed(
        GW,
        PubAck {
            topic_id: TopicId(4),
            msg_id: 4,
            return_code: ReturnCode::InvalidTopicId,
        },
    );
    h.expect_nothing();
    assert_eq!(h.events().last(), Some(&SnEvent::Dropped { id }));
}

#[test]
fn sn_6_7_puback_invalid_topic_id_on_a_predefined_id_drops_it() {
    let mut h = Harness::connected(config());
    let id =
        h.c.publish(
            h.now,
            SnTopic::Predefined(5),
            &b"p"[..],
            PublishQoS::AtLeastOnce,
            false,
        )
        .unwrap();
    h.transmits();
    h.feed(
        GW,
        PubAck {
            topic_id: TopicId(5),
            msg_id: 1,
            return_code: ReturnCode::InvalidTopicId,
        },
    );
    h.expect_nothing();
    assert_eq!(h.events(), vec![SnEvent::Dropped { id }]);
}

#[test]
fn sn_6_6_puback_congestion_stops_publishing_for_t_wait() {
    let mut cfg = config();
    cfg.t_wait = Duration::from_secs(400);
    let mut h = Harness::connected(cfg);
    let id =
        h.c.publish(
            h.now,
            SnTopic::Short(*b"zz"),
            &b"1"[..],
            PublishQoS::AtLeastOnce,
            false,
        )
        .unwrap();
    h.transmits();
    h.feed(
        GW,
        PubAck {
            topic_id: TopicId(0x7A7A),
            msg_id: 1,
            return_code: ReturnCode::Congestion,
        },
    );
    assert_eq!(
        h.events(),
        vec![SnEvent::Congestion {
            retry_at: Instant::from_secs(400)
        }]
    );
    // Later commands wait too.
    h.c.publish(
        h.now,
        SnTopic::Short(*b"zz"),
        &b"2"[..],
        PublishQoS::AtMostOnce,
        false,
    )
    .unwrap();
    h.advance(Duration::from_secs(399));
    h.expect_nothing();
    h.advance(Duration::from_secs(1));
    h.expect(
        GW,
        publish(PublishQoS::AtLeastOnce, Topic::Short(*b"zz"), 1, b"1"),
    );
    h.feed(
        GW,
        PubAck {
            topic_id: TopicId(0x7A7A),
            msg_id: 1,
            return_code: ReturnCode::Accepted,
        },
    );
    h.expect(
        GW,
        publish(PublishQoS::AtMostOnce, Topic::Short(*b"zz"), 0, b"2"),
    );
    assert_eq!(h.events()[0], SnEvent::Delivered { id });
}

#[test]
fn sn_6_6_puback_rejecting_a_qos0_publish_forgets_the_topic_id() {
    let mut h = Harness::connected(config());
    h.c.publish(
        h.now,
        SnTopic::Name("t".into()),
        &b"p"[..],
        PublishQoS::AtMostOnce,
        false,
    )
    .unwrap();
    h.transmits();
    h.feed(
        GW,
        RegAck {
            topic_id: TopicId(3),
            msg_id: 1,
            return_code: ReturnCode::Accepted,
        },
    );
    h.transmits();
    assert_eq!(h.c.topic_id("t"), Some(TopicId(3)));
    h.feed(
        GW,
        PubAck {
            topic_id: TopicId(3),
            msg_id: 0,
            return_code: ReturnCode::InvalidTopicId,
        },
    );
    assert_eq!(h.c.topic_id("t"), None);
}

#[test]
fn sn_6_8_qos_minus_one_needs_no_connection() {
    let mut cfg = config();
    cfg.gateways = vec![(1, GW)];
    let mut h = Harness::new(cfg);
    let id =
        h.c.publish(
            h.now,
            SnTopic::Short(*b"hi"),
            &[0x2A, 0x2B][..],
            PublishQoS::MinusOne,
            false,
        )
        .unwrap();
    // The example datagram of the codec docs: QoS -1 on short name "hi".
    assert_eq!(
        h.transmits(),
        vec![(
            Destination::Unicast(GW),
            vec![0x09, 0x0C, 0x62, b'h', b'i', 0x00, 0x00, 0x2A, 0x2B]
        )]
    );
    assert_eq!(h.events(), vec![SnEvent::Delivered { id }]);
    assert_eq!(
        h.c.publish(
            h.now,
            SnTopic::Name("a".into()),
            &b""[..],
            PublishQoS::MinusOne,
            false
        ),
        Err(SnUsageError::MinusOneNeedsIdTopic)
    );
    let mut lonely = Harness::new(config());
    assert_eq!(
        lonely.c.publish(
            lonely.now,
            SnTopic::Predefined(1),
            &b""[..],
            PublishQoS::MinusOne,
            false
        ),
        Err(SnUsageError::NoGateway)
    );
    assert_eq!(
        h.c.publish(
            h.now,
            SnTopic::Predefined(0xFFFF),
            &b""[..],
            PublishQoS::AtMostOnce,
            false
        ),
        Err(SnUsageError::ReservedTopicId)
    );
}

// ----- subscriptions and the gateway's publishes (6.9, 6.10) -----

#[test]
fn sn_6_9_subscribe_by_name_then_messages_on_its_id() {
    let mut h = Harness::connected(config());
    let id =
        h.c.subscribe(h.now, SnTopic::Name("s/1".into()), QoS::AtLeastOnce)
            .unwrap();
    h.expect(
        GW,
        Subscribe {
            dup: false,
            qos: QoS::AtLeastOnce,
            msg_id: 1,
            topic: SubscribeTopic::Name(TopicName::from("s/1")),
        },
    );
    h.feed(
        GW,
        SubAck {
            qos: QoS::AtLeastOnce,
            topic_id: TopicId(0x30),
            msg_id: 1,
            return_code: ReturnCode::Accepted,
        },
    );
    assert_eq!(
        h.events(),
        vec![SnEvent::Subscribed {
            id,
            qos: QoS::AtLeastOnce,
            topic_id: TopicId(0x30)
        }]
    );
    h.feed(
        GW,
        publish(
            PublishQoS::AtLeastOnce,
            Topic::TopicId(TopicId(0x30)),
            0x99,
            b"m",
        ),
    );
    h.expect(
        GW,
        PubAck {
            topic_id: TopicId(0x30),
            msg_id: 0x99,
            return_code: ReturnCode::Accepted,
        },
    );
    assert_eq!(
        h.events(),
        vec![SnEvent::Message {
            topic: SnTopic::Name("s/1".into()),
            payload: Bytes::from_static(b"m"),
            qos: PublishQoS::AtLeastOnce,
            retain: false
        }]
    );
}

#[test]
fn sn_6_9_subscribe_by_predefined_id_and_short_name_and_unsubscribe() {
    let mut cfg = config();
    cfg.predefined = vec![(0x0101, "pre/one".into())];
    let mut h = Harness::connected(cfg);
    h.c.subscribe(h.now, SnTopic::Predefined(0x0101), QoS::AtMostOnce)
        .unwrap();
    h.c.subscribe(h.now, SnTopic::Short(*b"ab"), QoS::ExactlyOnce)
        .unwrap();
    h.expect(
        GW,
        Subscribe {
            dup: false,
            qos: QoS::AtMostOnce,
            msg_id: 1,
            topic: SubscribeTopic::Predefined(TopicId(0x0101)),
        },
    );
    h.feed(
        GW,
        SubAck {
            qos: QoS::AtMostOnce,
            topic_id: TopicId(0x0101),
            msg_id: 1,
            return_code: ReturnCode::Accepted,
        },
    );
    h.expect(
        GW,
        Subscribe {
            dup: false,
            qos: QoS::ExactlyOnce,
            msg_id: 2,
            topic: SubscribeTopic::Short(*b"ab"),
        },
    );
    h.feed(
        GW,
        SubAck {
            qos: QoS::AtLeastOnce,
            topic_id: TopicId(0),
            msg_id: 2,
            return_code: ReturnCode::Accepted,
        },
    );
    h.events();
    // A predefined id from the table comes with its name; a short name as is.
    h.feed(
        GW,
        publish(
            PublishQoS::AtMostOnce,
            Topic::Predefined(TopicId(0x0101)),
            0,
            b"1",
        ),
    );
    h.feed(
        GW,
        publish(PublishQoS::AtMostOnce, Topic::Short(*b"ab"), 0, b"2"),
    );
    h.feed(
        GW,
        publish(
            PublishQoS::AtMostOnce,
            Topic::Predefined(TopicId(0x0202)),
            0,
            b"3",
        ),
    );
    let topics: Vec<_> = h
        .events()
        .into_iter()
        .map(|e| match e {
            SnEvent::Message { topic, .. } => topic,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        topics,
        vec![
            SnTopic::Name("pre/one".into()),
            SnTopic::Short(*b"ab"),
            SnTopic::Predefined(0x0202)
        ]
    );
    let un = h.c.unsubscribe(h.now, SnTopic::Short(*b"ab")).unwrap();
    h.expect(
        GW,
        Unsubscribe {
            msg_id: 3,
            topic: SubscribeTopic::Short(*b"ab"),
        },
    );
    h.feed(GW, UnsubAck { msg_id: 3 });
    assert_eq!(h.events(), vec![SnEvent::Unsubscribed { id: un }]);
}

#[test]
fn sn_6_9_suback_rejection_and_congestion() {
    let mut h = Harness::connected(config());
    let id =
        h.c.subscribe(h.now, SnTopic::Name("x".into()), QoS::AtMostOnce)
            .unwrap();
    let sub = Subscribe {
        dup: false,
        qos: QoS::AtMostOnce,
        msg_id: 1,
        topic: SubscribeTopic::Name(TopicName::from("x")),
    };
    h.expect(GW, sub.clone());
    h.feed(
        GW,
        SubAck {
            qos: QoS::AtMostOnce,
            topic_id: TopicId(0),
            msg_id: 1,
            return_code: ReturnCode::Congestion,
        },
    );
    assert_eq!(
        h.events(),
        vec![SnEvent::Congestion {
            retry_at: Instant::from_secs(300)
        }]
    );
    h.fire_after(Duration::from_secs(300));
    h.expect(GW, sub);
    h.feed(
        GW,
        SubAck {
            qos: QoS::AtMostOnce,
            topic_id: TopicId(0),
            msg_id: 1,
            return_code: ReturnCode::NotSupported,
        },
    );
    assert_eq!(
        h.events(),
        vec![SnEvent::SubscribeRejected {
            id,
            code: ReturnCode::NotSupported
        }]
    );
}

#[test]
fn sn_6_13_subscribe_retransmitted_with_dup() {
    let mut h = Harness::connected(config());
    h.c.subscribe(h.now, SnTopic::Name("x".into()), QoS::AtMostOnce)
        .unwrap();
    h.transmits();
    h.fire_after(T_RETRY);
    h.expect(
        GW,
        Subscribe {
            dup: true,
            qos: QoS::AtMostOnce,
            msg_id: 1,
            topic: SubscribeTopic::Name(TopicName::from("x")),
        },
    );
}

#[test]
fn sn_6_10_wildcard_subscription_then_gateway_register_then_publish() {
    let mut h = Harness::connected(config());
    let id =
        h.c.subscribe(h.now, SnTopic::Name("s/+".into()), QoS::ExactlyOnce)
            .unwrap();
    h.transmits();
    h.feed(
        GW,
        SubAck {
            qos: QoS::ExactlyOnce,
            topic_id: TopicId(0),
            msg_id: 1,
            return_code: ReturnCode::Accepted,
        },
    );
    assert_eq!(
        h.events(),
        vec![SnEvent::Subscribed {
            id,
            qos: QoS::ExactlyOnce,
            topic_id: TopicId(0)
        }]
    );
    assert_eq!(h.c.topics_len(), 0);
    h.feed(
        GW,
        Register {
            topic_id: TopicId(0x44),
            msg_id: 0x10,
            topic_name: TopicName::from("s/a"),
        },
    );
    h.expect(
        GW,
        RegAck {
            topic_id: TopicId(0x44),
            msg_id: 0x10,
            return_code: ReturnCode::Accepted,
        },
    );
    // QoS 2 from the gateway: one Message however often it comes.
    let p = publish(
        PublishQoS::ExactlyOnce,
        Topic::TopicId(TopicId(0x44)),
        0x11,
        b"z",
    );
    h.feed(GW, p.clone());
    h.expect(GW, PubRec { msg_id: 0x11 });
    h.feed(GW, p);
    h.expect(GW, PubRec { msg_id: 0x11 });
    assert_eq!(h.events().len(), 1);
    assert_eq!(h.c.inbound_qos2_len(), 1);
    h.feed(GW, PubRel { msg_id: 0x11 });
    h.expect(GW, PubComp { msg_id: 0x11 });
    assert_eq!(h.c.inbound_qos2_len(), 0);
}

#[test]
fn sn_6_10_register_with_a_reserved_id_or_wildcard_is_refused() {
    let mut h = Harness::connected(config());
    let bad = Register {
        topic_id: TopicId(0xFFFF),
        msg_id: 2,
        topic_name: TopicName::from("a"),
    };
    assert_eq!(
        h.c.handle_datagram(h.now, GW, &enc(bad)),
        Err(SnProtocolError::InvalidRegister)
    );
    h.expect(
        GW,
        RegAck {
            topic_id: TopicId(0xFFFF),
            msg_id: 2,
            return_code: ReturnCode::NotSupported,
        },
    );
    assert_eq!(h.c.topics_len(), 0);
}

#[test]
fn sn_6_10_publish_on_an_unknown_topic_id_is_refused() {
    let mut h = Harness::connected(config());
    h.feed(
        GW,
        publish(
            PublishQoS::AtLeastOnce,
            Topic::TopicId(TopicId(0x77)),
            5,
            b"?",
        ),
    );
    h.expect(
        GW,
        PubAck {
            topic_id: TopicId(0x77),
            msg_id: 5,
            return_code: ReturnCode::InvalidTopicId,
        },
    );
    assert_eq!(h.events(), vec![]);
    assert_eq!(h.c.stats().unknown_topic_ids, 1);
}

// ----- keep alive (6.11) -----

#[test]
fn sn_6_11_pingreq_every_keep_alive_period_and_n_retry_unanswered_loses_the_gateway() {
    let mut cfg = config();
    cfg.keep_alive = 60;
    let mut h = Harness::new(cfg);
    h.c.connect(h.now, GW).unwrap();
    h.expect(GW, connect_msg(false, true, 60));
    h.feed(
        GW,
        ConnAck {
            return_code: ReturnCode::Accepted,
        },
    );
    h.events();
    h.fire_after(Duration::from_secs(60));
    h.expect(GW, PingReq { client_id: None });
    h.feed(GW, PingResp);
    assert_eq!(h.c.stats().ignored, 0);
    // The next one is due a period after the PINGREQ.
    h.fire_after(Duration::from_secs(60));
    h.expect(GW, PingReq { client_id: None });
    for _ in 0..3 {
        h.fire_after(T_RETRY);
        h.expect(GW, PingReq { client_id: None });
    }
    h.fire_after(T_RETRY);
    assert_eq!(
        h.events(),
        vec![
            SnEvent::GatewayLost { gateway: GW },
            SnEvent::Disconnected {
                reason: SnDisconnectReason::GatewayLost
            }
        ]
    );
}

#[test]
fn sn_6_11_pingreq_from_the_gateway_is_answered() {
    let mut h = Harness::connected(config());
    h.feed(GW, PingReq { client_id: None });
    h.expect(GW, PingResp);
    // From anyone else: ignored.
    h.c.handle_datagram(h.now, STRANGER, &enc(PingReq { client_id: None }))
        .unwrap();
    h.expect_nothing();
    assert_eq!(h.c.stats().ignored, 1);
}

// ----- will updates (6.4) -----

#[test]
fn sn_6_4_will_topic_and_message_updates() {
    let mut h = Harness::connected(config());
    let t =
        h.c.update_will_topic(h.now, "w/t", QoS::AtLeastOnce, false)
            .unwrap();
    let m = h.c.update_will_msg(h.now, &b"bye"[..]).unwrap();
    let c = h.c.clear_will(h.now).unwrap();
    h.expect(
        GW,
        WillTopicUpd(Some(WillTopicData {
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: TopicName::from("w/t"),
        })),
    );
    h.feed(
        GW,
        WillTopicResp {
            return_code: ReturnCode::Accepted,
        },
    );
    h.expect(
        GW,
        WillMsgUpd {
            will_msg: Bytes::from_static(b"bye"),
        },
    );
    h.feed(
        GW,
        WillMsgResp {
            return_code: ReturnCode::Accepted,
        },
    );
    // An empty WILLTOPICUPD deletes the will: header only.
    assert_eq!(
        h.transmits(),
        vec![(Destination::Unicast(GW), vec![0x02, 0x1A])]
    );
    h.feed(
        GW,
        WillTopicResp {
            return_code: ReturnCode::NotSupported,
        },
    );
    assert_eq!(
        h.events(),
        vec![
            SnEvent::WillUpdated {
                id: t,
                code: ReturnCode::Accepted
            },
            SnEvent::WillUpdated {
                id: m,
                code: ReturnCode::Accepted
            },
            SnEvent::WillUpdated {
                id: c,
                code: ReturnCode::NotSupported
            },
        ]
    );
}

// ----- disconnect (6.12) -----

#[test]
fn sn_6_12_disconnect_is_acknowledged_by_disconnect() {
    let mut h = Harness::connected(config());
    h.c.disconnect(h.now).unwrap();
    h.expect(GW, Disconnect { duration: None });
    h.feed(GW, Disconnect { duration: None });
    assert_eq!(
        h.events(),
        vec![SnEvent::Disconnected {
            reason: SnDisconnectReason::ClientDisconnect
        }]
    );
    assert_eq!(h.c.state(), SnState::Disconnected);
    assert_eq!(h.c.disconnect(h.now), Err(SnUsageError::WrongState));
}

#[test]
fn sn_6_12_unanswered_disconnect_still_ends_the_connection() {
    let mut h = Harness::connected(config());
    h.c.disconnect(h.now).unwrap();
    for _ in 0..3 {
        h.transmits();
        h.fire_after(T_RETRY);
    }
    h.expect(GW, Disconnect { duration: None });
    h.fire_after(T_RETRY);
    assert_eq!(
        h.events(),
        vec![SnEvent::Disconnected {
            reason: SnDisconnectReason::ClientDisconnect
        }]
    );
}

#[test]
fn sn_6_12_unsolicited_disconnect_from_the_gateway() {
    let mut h = Harness::connected(config());
    h.feed(GW, Disconnect { duration: None });
    assert_eq!(
        h.events(),
        vec![SnEvent::Disconnected {
            reason: SnDisconnectReason::GatewayDisconnect
        }]
    );
    // Queued work waits for the next connection.
    h.c.publish(
        h.now,
        SnTopic::Short(*b"ab"),
        &b"q"[..],
        PublishQoS::AtMostOnce,
        false,
    )
    .unwrap();
    h.expect_nothing();
    h.c.connect(h.now, GW).unwrap();
    h.expect(GW, connect_msg(false, true, 0));
    h.feed(
        GW,
        ConnAck {
            return_code: ReturnCode::Accepted,
        },
    );
    h.expect(
        GW,
        publish(PublishQoS::AtMostOnce, Topic::Short(*b"ab"), 0, b"q"),
    );
}

// ----- sleeping clients (6.14) -----

#[test]
fn sn_6_14_sleep_then_awake_collects_buffered_messages_until_pingresp() {
    let mut cfg = config();
    cfg.keep_alive = 60;
    let mut h = Harness::new(cfg);
    h.c.connect(h.now, GW).unwrap();
    h.transmits();
    h.feed(
        GW,
        ConnAck {
            return_code: ReturnCode::Accepted,
        },
    );
    h.events();
    h.c.sleep(h.now, 600).unwrap();
    // DISCONNECT with Duration 600 = 0x0258.
    assert_eq!(
        h.transmits(),
        vec![(Destination::Unicast(GW), vec![0x04, 0x18, 0x02, 0x58])]
    );
    h.feed(GW, Disconnect { duration: None });
    assert_eq!(h.events(), vec![SnEvent::Asleep { duration: 600 }]);
    assert_eq!(h.c.state(), SnState::Asleep);
    assert_eq!(h.c.poll_timeout(), None, "no keep alive while asleep");
    h.now += Duration::from_secs(500);
    h.c.wake_once(h.now).unwrap();
    assert_eq!(h.c.state(), SnState::Awake);
    h.expect(
        GW,
        PingReq {
            client_id: Some(ClientId::from("node-1")),
        },
    );
    h.feed(
        GW,
        publish(PublishQoS::AtMostOnce, Topic::Short(*b"s1"), 0, b"1"),
    );
    h.feed(
        GW,
        publish(PublishQoS::AtLeastOnce, Topic::Short(*b"s1"), 8, b"2"),
    );
    h.expect(
        GW,
        PubAck {
            topic_id: TopicId(u16::from_be_bytes(*b"s1")),
            msg_id: 8,
            return_code: ReturnCode::Accepted,
        },
    );
    h.feed(GW, PingResp);
    let events = h.events();
    assert_eq!(events.len(), 3);
    assert_eq!(events[2], SnEvent::AwakeDone { complete: true });
    assert_eq!(h.c.state(), SnState::Asleep);
    // Back to active with CONNECT.
    h.c.connect(h.now, GW).unwrap();
    h.expect(GW, connect_msg(false, true, 60));
}

#[test]
fn sn_6_14_awake_pingreq_retries_restart_on_messages_then_back_to_sleep() {
    let mut h = Harness::connected(config());
    h.c.sleep(h.now, 60).unwrap();
    h.transmits();
    h.feed(GW, Disconnect { duration: None });
    h.events();
    h.c.wake_once(h.now).unwrap();
    let ping = PingReq {
        client_id: Some(ClientId::from("node-1")),
    };
    h.expect(GW, ping.clone());
    h.advance(Duration::from_secs(8));
    h.feed(
        GW,
        publish(PublishQoS::AtMostOnce, Topic::Short(*b"s1"), 0, b"1"),
    );
    // T_retry restarted by the message.
    h.fire_after(T_RETRY);
    h.expect(GW, ping.clone());
    for _ in 0..2 {
        h.fire_after(T_RETRY);
        h.expect(GW, ping.clone());
    }
    h.fire_after(T_RETRY);
    h.expect_nothing();
    let events = h.events();
    assert_eq!(events.last(), Some(&SnEvent::AwakeDone { complete: false }));
    assert_eq!(h.c.state(), SnState::Asleep);
    assert_eq!(h.c.poll_timeout(), None);
}

#[test]
fn sn_6_14_asleep_client_can_change_its_sleep_duration_or_disconnect() {
    let mut h = Harness::connected(config());
    assert_eq!(h.c.wake_once(h.now), Err(SnUsageError::WrongState));
    h.c.sleep(h.now, 60).unwrap();
    h.transmits();
    h.feed(GW, Disconnect { duration: None });
    h.events();
    h.c.sleep(h.now, 120).unwrap();
    h.expect(
        GW,
        Disconnect {
            duration: Some(120),
        },
    );
    h.feed(GW, Disconnect { duration: None });
    assert_eq!(h.events(), vec![SnEvent::Asleep { duration: 120 }]);
    // Awake, a new duration ends the awake period and changes the duration.
    h.c.wake_once(h.now).unwrap();
    h.transmits();
    h.c.sleep(h.now, 30).unwrap();
    h.expect(GW, Disconnect { duration: Some(30) });
    h.feed(GW, Disconnect { duration: None });
    assert_eq!(h.events(), vec![SnEvent::Asleep { duration: 30 }]);
    assert_eq!(h.c.poll_timeout(), None, "no PINGREQ retry left behind");
    h.c.disconnect(h.now).unwrap();
    h.expect(GW, Disconnect { duration: None });
    h.feed(GW, Disconnect { duration: None });
    assert_eq!(
        h.events(),
        vec![SnEvent::Disconnected {
            reason: SnDisconnectReason::ClientDisconnect
        }]
    );
}

// ----- limits and hostile input -----

#[test]
fn command_queue_is_bounded() {
    let mut cfg = config();
    cfg.max_queued = 2;
    let mut h = Harness::new(cfg);
    h.c.publish(
        h.now,
        SnTopic::Short(*b"ab"),
        &b""[..],
        PublishQoS::AtMostOnce,
        false,
    )
    .unwrap();
    h.c.subscribe(h.now, SnTopic::Short(*b"ab"), QoS::AtMostOnce)
        .unwrap();
    assert_eq!(
        h.c.register(h.now, "x"),
        Err(SnUsageError::QueueFull { max: 2 })
    );
    assert_eq!(h.c.queued_len(), 2);
}

#[test]
fn inbound_qos2_table_and_event_queue_are_bounded() {
    let mut cfg = config();
    cfg.max_inbound_qos2 = 1;
    cfg.max_events = 2;
    let mut h = Harness::connected(cfg);
    h.feed(
        GW,
        publish(PublishQoS::ExactlyOnce, Topic::Short(*b"ab"), 1, b"1"),
    );
    h.expect(GW, PubRec { msg_id: 1 });
    // Table full: the second QoS 2 message is left unacknowledged.
    h.feed(
        GW,
        publish(PublishQoS::ExactlyOnce, Topic::Short(*b"ab"), 2, b"2"),
    );
    h.expect_nothing();
    // Event queue: one more fits, then QoS 1 is left unacknowledged.
    h.feed(
        GW,
        publish(PublishQoS::AtLeastOnce, Topic::Short(*b"ab"), 3, b"3"),
    );
    h.transmits();
    h.feed(
        GW,
        publish(PublishQoS::AtLeastOnce, Topic::Short(*b"ab"), 4, b"4"),
    );
    h.expect_nothing();
    assert_eq!(h.c.events_len(), 2);
    assert_eq!(h.c.stats().inbound_refused, 2);
}

#[test]
fn topic_table_forgets_its_oldest_entry_at_the_limit() {
    let mut cfg = config();
    cfg.max_topics = 2;
    let mut h = Harness::connected(cfg);
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        let id = u16::try_from(i).unwrap() + 1;
        h.feed(
            GW,
            Register {
                topic_id: TopicId(id),
                msg_id: id,
                topic_name: TopicName::from(name),
            },
        );
    }
    assert_eq!(h.c.topics_len(), 2);
    assert_eq!(h.c.topic_id("a"), None);
    assert_eq!(h.c.topic_id("c"), Some(TopicId(3)));
    assert_eq!(h.c.stats().topics_evicted, 1);
}

#[test]
fn bad_datagrams_are_dropped_with_an_error() {
    let mut h = Harness::connected(config());
    assert!(matches!(
        h.c.handle_datagram(h.now, GW, &[0x05, 0x0C]),
        Err(SnProtocolError::Decode(_))
    ));
    assert_eq!(
        h.c.handle_datagram(h.now, GW, &enc(connect_msg(false, true, 0))),
        Err(SnProtocolError::UnexpectedMessage(MsgType::Connect))
    );
    // A gateway message from a stranger is ignored.
    h.c.handle_datagram(h.now, STRANGER, &enc(Disconnect { duration: None }))
        .unwrap();
    assert_eq!(h.c.state(), SnState::Active);
    h.expect_nothing();
}

#[test]
fn config_is_checked() {
    let bad_id = SnClientConfig::<Addr>::new("");
    assert_eq!(
        SnClient::new(bad_id).err(),
        Some(SnUsageError::InvalidClientId)
    );
    let long_id = SnClientConfig::<Addr>::new("x".repeat(24));
    assert_eq!(
        SnClient::new(long_id).err(),
        Some(SnUsageError::InvalidClientId)
    );
    let mut reserved = config();
    reserved.predefined = vec![(0, "a".into())];
    assert!(matches!(
        SnClient::new(reserved),
        Err(SnUsageError::InvalidConfig(_))
    ));
}
