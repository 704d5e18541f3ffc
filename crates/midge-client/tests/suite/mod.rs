//! The client test suite, written once over any `Runtime` and instantiated
//! for tokio (`tests/tokio.rs`) and smol (`tests/smol.rs`).
//!
//! The peer is a scripted fake broker: a loopback listener that speaks raw
//! MQTT through `midge-codec`, so each test decides exactly what the broker
//! sends and checks exactly what the client wrote.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use futures_lite::future::{self, or, zip};
use futures_lite::{AsyncReadExt, AsyncWriteExt, StreamExt};
use midge_client::{
    Client, ClientError, ConnectOptions, ConnectReturnCode, Message, Messages, QoS, Reconnect,
    Runtime, SubscribeReturnCode, TlsOptions, UsageError,
};
use midge_codec::{
    ConnAck, Connect, Decoder, Packet, PacketId, PubAck, PubComp, PubRec, PubRel, Publish, QosPid,
    SubAck, Topic, UnsubAck,
};

/// Every test must finish within this (virtual time on a paused tokio clock).
pub(crate) const LIMIT: Duration = Duration::from_secs(20);

/// Runs `test`, failing it if it has not finished within [`LIMIT`].
pub(crate) async fn within<R: Runtime>(rt: &R, test: impl Future<Output = ()>) {
    let limit = rt.sleep(LIMIT);
    or(test, async {
        limit.await;
        panic!("the test did not finish within {LIMIT:?}");
    })
    .await;
}

/// A loopback listener that plays the broker.
pub(crate) struct FakeBroker<R: Runtime> {
    rt: R,
    listener: R::TcpListener,
    addr: SocketAddr,
}

impl<R: Runtime> FakeBroker<R> {
    pub(crate) async fn bind(rt: R) -> Self {
        let listener = rt.bind_tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = R::listener_addr(&listener).unwrap();
        Self { rt, listener, addr }
    }

    pub(crate) fn url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }

    /// Options for a client of this broker: quick reconnection so tests
    /// do not wait.
    pub(crate) fn options(&self, client_id: &str) -> ConnectOptions {
        ConnectOptions::new(&self.url(), client_id)
            .unwrap()
            .with_reconnect(Reconnect {
                enabled: true,
                min_delay: Duration::from_millis(5),
                max_delay: Duration::from_millis(20),
            })
            .with_keep_alive(0)
    }

    pub(crate) async fn accept(&self) -> Conn<R> {
        let (stream, _) = self.rt.accept_tcp(&self.listener).await.unwrap();
        Conn {
            stream,
            buf: BytesMut::new(),
            decoder: Decoder::new(),
        }
    }

    /// Accepts a connection, reads CONNECT, answers with `code`.
    pub(crate) async fn accept_with(
        &self,
        code: ConnectReturnCode,
        session_present: bool,
    ) -> (Conn<R>, Connect) {
        let mut conn = self.accept().await;
        let connect = conn.expect_connect().await;
        conn.send(Packet::ConnAck(ConnAck::new(code, session_present)))
            .await;
        (conn, connect)
    }

    /// Connects a client with `options`, the broker accepting it.
    pub(crate) async fn connect(
        &self,
        options: ConnectOptions,
        session_present: bool,
    ) -> (Client<R>, Messages, Conn<R>) {
        let (client, (conn, _)) = zip(
            Client::connect_with(self.rt.clone(), options),
            self.accept_with(ConnectReturnCode::Accepted, session_present),
        )
        .await;
        let (client, messages) = client.unwrap();
        (client, messages, conn)
    }
}

/// One accepted connection, from the broker's side.
pub(crate) struct Conn<R: Runtime> {
    stream: R::TcpStream,
    buf: BytesMut,
    decoder: Decoder,
}

impl<R: Runtime> Conn<R> {
    /// The next packet from the client, or `None` when it closed the
    /// connection.
    pub(crate) async fn recv(&mut self) -> Option<Packet> {
        loop {
            if let Some(packet) = self.decoder.decode(&mut self.buf).unwrap() {
                return Some(packet);
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    pub(crate) async fn expect(&mut self) -> Packet {
        self.recv().await.expect("the client closed the connection")
    }

    pub(crate) async fn expect_connect(&mut self) -> Connect {
        match self.expect().await {
            Packet::Connect(c) => c,
            other => panic!("expected CONNECT, got {other:?}"),
        }
    }

    pub(crate) async fn expect_publish(&mut self) -> Publish {
        match self.expect().await {
            Packet::Publish(p) => p,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// Waits until the client closes the connection, skipping packets.
    pub(crate) async fn expect_closed(&mut self) -> Vec<Packet> {
        let mut seen = Vec::new();
        while let Some(p) = self.recv().await {
            seen.push(p);
            assert!(seen.len() < 1000, "the client never closed the connection");
        }
        seen
    }

    pub(crate) async fn send(&mut self, packet: Packet) {
        let mut out = BytesMut::new();
        packet.encode(&mut out).unwrap();
        self.stream.write_all(&out).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    /// Sends an application message.
    pub(crate) async fn send_message(
        &mut self,
        topic: &str,
        payload: &'static [u8],
        qos_pid: QosPid,
    ) {
        let publish = Publish::new(Topic::new(topic).unwrap(), qos_pid, payload);
        self.send(Packet::Publish(publish)).await;
    }
}

pub(crate) fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

fn packet_id(publish: &Publish) -> PacketId {
    publish.qos_pid.packet_id().expect("a QoS 1/2 publish")
}

/// Polls `f` every millisecond until it holds (at most 5000 times).
async fn eventually<R: Runtime>(rt: &R, mut f: impl FnMut() -> bool) {
    for _ in 0..5000 {
        if f() {
            return;
        }
        rt.sleep(Duration::from_millis(1)).await;
    }
    panic!("the condition never held");
}

// ----- connecting -----

/// [MQTT-3.2.2-2]: the client reports the broker's session-present flag,
/// and CONNECT carries the options.
pub(crate) async fn mqtt_3_2_2_2_connect_reports_session_present<R: Runtime>(rt: R) {
    let broker = FakeBroker::bind(rt.clone()).await;
    let options = broker
        .options("sensor-1")
        .with_clean_session(false)
        .with_keep_alive(42)
        .with_credentials("user", Some(&b"secret"[..]));
    let (client, (conn, connect)) = zip(
        Client::connect_with(rt.clone(), options),
        broker.accept_with(ConnectReturnCode::Accepted, true),
    )
    .await;
    let (client, _messages) = client.unwrap();
    assert_eq!(connect.client_id, "sensor-1");
    assert!(!connect.clean_session);
    assert_eq!(connect.keep_alive, 42);
    assert_eq!(connect.username.as_ref().map(|u| u.as_str()), Some("user"));
    assert_eq!(connect.password.as_deref(), Some(&b"secret"[..]));
    assert!(client.session_present());
    assert!(client.is_connected());
    assert_eq!(client.stats().connections, 1);
    drop(conn);
}

/// Every refusal code on the first connection fails `connect` with that
/// code, named in the message.
pub(crate) async fn connect_refused_with_each_code<R: Runtime>(rt: R) {
    for code in [
        ConnectReturnCode::UnacceptableProtocolVersion,
        ConnectReturnCode::IdentifierRejected,
        ConnectReturnCode::ServerUnavailable,
        ConnectReturnCode::BadUsernameOrPassword,
        ConnectReturnCode::NotAuthorized,
    ] {
        let broker = FakeBroker::bind(rt.clone()).await;
        let (result, _) = zip(
            Client::connect_with(rt.clone(), broker.options("c")),
            broker.accept_with(code, false),
        )
        .await;
        let err = result.unwrap_err();
        assert_eq!(err, ClientError::Refused(code));
        assert!(
            err.to_string().contains(&format!("({:#04x})", code as u8)),
            "{err}"
        );
    }
}

/// A TLS address whose CA file cannot be read fails at once with a TLS
/// error, before any connection is tried (the port is closed anyway).
pub(crate) async fn tls_files_are_read_before_connecting<R: Runtime>(rt: R) {
    for url in ["mqtts://127.0.0.1:1", "wss://127.0.0.1:1"] {
        let options = ConnectOptions::new(url, "c")
            .unwrap()
            .with_tls(TlsOptions::default().with_ca_file("/nonexistent/midge-ca.pem"));
        let err = Client::connect_with(rt.clone(), options).await.unwrap_err();
        match err {
            ClientError::Tls(reason) => assert!(reason.contains("midge-ca.pem"), "{reason}"),
            other => panic!("expected a TLS error, got {other:?}"),
        }
    }
}

/// A port nobody listens on fails the first connection as unreachable.
pub(crate) async fn unreachable_broker_fails_connect<R: Runtime>(rt: R) {
    let addr = {
        let broker = FakeBroker::bind(rt.clone()).await;
        broker.addr
    };
    let options = ConnectOptions::new(&format!("mqtt://{addr}"), "c").unwrap();
    let err = Client::connect_with(rt.clone(), options).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Unreachable { port, .. } if port == addr.port()),
        "{err:?}"
    );
}

/// A broker that accepts TCP but never answers CONNECT fails `connect`
/// with `Timeout`.
pub(crate) async fn connect_times_out_without_connack<R: Runtime>(rt: R) {
    let broker = FakeBroker::bind(rt.clone()).await;
    let options = broker
        .options("c")
        .with_connect_timeout(Duration::from_millis(300));
    let (result, conn) = zip(Client::connect_with(rt.clone(), options), async {
        let mut conn = broker.accept().await;
        conn.expect_connect().await;
        conn
    })
    .await;
    assert_eq!(result.unwrap_err(), ClientError::Timeout);
    drop(conn);
}

// ----- publishing -----

/// QoS 0: the delivery resolves once written; DUP is clear [MQTT-3.3.1-2].
pub(crate) async fn mqtt_3_3_1_2_publish_qos0_resolves_when_written<R: Runtime>(rt: R) {
    let broker = FakeBroker::bind(rt.clone()).await;
    let (client, _messages, mut conn) = broker.connect(broker.options("c"), false).await;
    let delivery = client
        .publish("a/b", "hello", QoS::AtMostOnce, true)
        .unwrap();
    let publish = conn.expect_publish().await;
    assert_eq!(publish.topic, "a/b");
    assert_eq!(&publish.payload[..], b"hello");
    assert_eq!(publish.qos_pid, QosPid::AtMostOnce);
    assert!(publish.retain);
    assert!(!publish.dup);
    delivery.await.unwrap();
}

/// [MQTT-4.3.2-2] seen from the sender: a QoS 1 delivery resolves at
/// PUBACK, not before.
pub(crate) async fn publish_qos1_resolves_at_puback<R: Runtime>(rt: R) {
    let broker = FakeBroker::bind(rt.clone()).await;
    let (client, _messages, mut conn) = broker.connect(broker.options("c"), false).await;
    let mut delivery = client
        .publish("a/b", "one", QoS::AtLeastOnce, false)
        .unwrap();
    let publish = conn.expect_publish().await;
    assert_eq!(publish.qos_pid.qos(), QoS::AtLeastOnce);
    assert!(future::poll_once(&mut delivery).await.is_none());
    assert_eq!(client.stats().inflight, 1);
    conn.send(Packet::PubAck(PubAck::new(packet_id(&publish))))
        .await;
    delivery.await.unwrap();
    assert_eq!(client.stats().inflight, 0);
}

/// [MQTT-4.3.3-1]: QoS 2 goes PUBLISH, PUBREC, PUBREL, PUBCOMP; the
/// delivery resolves at PUBCOMP.
pub(crate) async fn mqtt_4_3_3_1_publish_qos2_resolves_at_pubcomp<R: Runtime>(rt: R) {
    let broker = FakeBroker::bind(rt.clone()).await;
    let (client, _messages, mut conn) = broker.connect(broker.options("c"), false).await;
    let mut delivery = client
        .publish("a/b", "two", QoS::ExactlyOnce, false)
        .unwrap();
    let publish = conn.expect_publish().await;
    let id = packet_id(&publish);
    assert_eq!(publish.qos_pid, QosPid::ExactlyOnce(id));
    conn.send(Packet::PubRec(PubRec::new(id))).await;
    assert_eq!(conn.expect().await, Packet::PubRel(PubRel::new(id)));
    assert!(future::poll_once(&mut delivery).await.is_none());
    conn.send(Packet::PubComp(PubComp::new(id))).await;
    delivery.await.unwrap();
}

/// Bad topics and QoS 0 without a connection fail at once.
pub(crate) async fn publish_errors_are_immediate<R: Runtime>(rt: R) {
    let broker = FakeBroker::bind(rt.clone()).await;
    let options = broker.options("c").with_reconnect(Reconnect::disabled());
    let (client, mut messages, mut conn) = broker.connect(options, false).await;
    let err = client
        .publish("a/+", "x", QoS::AtLeastOnce, false)
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Usage(UsageError::InvalidTopicName(_))),
        "{err:?}"
    );
    // The broker goes away; without reconnection the client ends.
    conn.send_message("t", b"last", QosPid::AtMostOnce).await;
    drop(conn);
    // Buffered messages are still handed out, then the stream ends.
    assert_eq!(messages.recv().await.unwrap().payload, &b"last"[..]);
    assert!(messages.recv().await.is_none());
    assert_eq!(client.ended(), Some(ClientError::ConnectionLost));
    let err = client
        .publish("a/b", "x", QoS::AtMostOnce, false)
        .unwrap_err();
    assert_eq!(err, ClientError::ConnectionLost);
}

// ----- subscribing -----

/// A granted subscription returns the granted QoS; 0x80 is
/// `SubscriptionRefused`; `subscribe_many` returns each code.
pub(crate) async fn subscribe_granted_and_refused<R: Runtime>(rt: R) {
    let broker = FakeBroker::bind(rt.clone()).await;
    let (client, _messages, mut conn) = broker.connect(broker.options("c"), false).await;

    let (granted, _) = zip(client.subscribe("a/#", QoS::ExactlyOnce), async {
        let Packet::Subscribe(s) = conn.expect().await else {
            panic!("expected SUBSCRIBE")
        };
        assert_eq!(s.filters.len(), 1);
        assert_eq!(s.filters[0].filter, "a/#");
        assert_eq!(s.filters[0].qos, QoS::ExactlyOnce);
        let codes = vec![SubscribeReturnCode::Success(QoS::AtLeastOnce)];
        conn.send(Packet::SubAck(SubAck::new(s.packet_id, codes)))
            .await;
    })
    .await;
    assert_eq!(granted.unwrap(), QoS::AtLeastOnce);

    let (refused, _) = zip(client.subscribe("secret/#", QoS::AtMostOnce), async {
        let Packet::Subscribe(s) = conn.expect().await else {
            panic!("expected SUBSCRIBE")
        };
        let codes = vec![SubscribeReturnCode::Failure];
        conn.send(Packet::SubAck(SubAck::new(s.packet_id, codes)))
            .await;
    })
    .await;
    assert_eq!(
        refused.unwrap_err(),
        ClientError::SubscriptionRefused {
            filter: "secret/#".into()
        }
    );

    let (many, _) = zip(
        client.subscribe_many(&[("x", QoS::AtMostOnce), ("y", QoS::AtLeastOnce)]),
        async {
            let Packet::Subscribe(s) = conn.expect().await else {
                panic!("expected SUBSCRIBE")
            };
            assert_eq!(s.filters.len(), 2);
            let codes = vec![
                SubscribeReturnCode::Failure,
                SubscribeReturnCode::Success(QoS::AtLeastOnce),
            ];
            conn.send(Packet::SubAck(SubAck::new(s.packet_id, codes)))
                .await;
        },
    )
    .await;
    assert_eq!(
        many.unwrap(),
        vec![
            SubscribeReturnCode::Failure,
            SubscribeReturnCode::Success(QoS::AtLeastOnce)
        ]
    );

    let err = client
        .subscribe("a/#/b", QoS::AtMostOnce)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Usage(UsageError::InvalidTopicFilter(_))),
        "{err:?}"
    );
}

/// `unsubscribe` resolves at UNSUBACK.
pub(crate) async fn unsubscribe_resolves_at_unsuback<R: Runtime>(rt: R) {
    let broker = FakeBroker::bind(rt.clone()).await;
    let (client, _messages, mut conn) = broker.connect(broker.options("c"), false).await;
    let (result, _) = zip(client.unsubscribe(&["a/#", "b"]), async {
        let Packet::Unsubscribe(u) = conn.expect().await else {
            panic!("expected UNSUBSCRIBE")
        };
        assert_eq!(u.filters.len(), 2);
        conn.send(Packet::UnsubAck(UnsubAck::new(u.packet_id)))
            .await;
    })
    .await;
    result.unwrap();
}

// ----- receiving -----

/// Messages arrive in order with their flags, through the `Stream` and
/// `recv`; a QoS 1 message is acknowledged when the application takes it,
/// not when it arrives; QoS 2 completes its handshake.
pub(crate) async fn messages_arrive_in_order_and_are_acked_when_taken<R: Runtime>(rt: R) {
    let broker = FakeBroker::bind(rt.clone()).await;
    let (client, mut messages, mut conn) = broker.connect(broker.options("c"), false).await;

    conn.send_message("t/0", b"zero", QosPid::AtMostOnce).await;
    conn.send_message("t/1", b"one", QosPid::AtLeastOnce(pid(7)))
        .await;
    eventually(&rt, || messages.len() == 2).await;
    // Nothing acknowledged yet: what the client writes next is this marker.
    client
        .publish("marker", "", QoS::AtMostOnce, false)
        .unwrap();
    assert_eq!(conn.expect_publish().await.topic, "marker");

    let m0: Message = messages.next().await.unwrap();
    assert_eq!(
        (m0.topic_str(), &m0.payload[..], m0.qos),
        ("t/0", &b"zero"[..], QoS::AtMostOnce)
    );
    let m1 = messages.recv().await.unwrap();
    assert_eq!(
        (m1.topic_str(), m1.qos, m1.dup, m1.retain),
        ("t/1", QoS::AtLeastOnce, false, false)
    );
    // Taken: now the PUBACK goes out [MQTT-4.3.2-2].
    assert_eq!(conn.expect().await, Packet::PubAck(PubAck::new(pid(7))));

    let mut retained = Publish::new(
        Topic::new("t/2").unwrap(),
        QosPid::ExactlyOnce(pid(9)),
        &b"two"[..],
    );
    retained.retain = true;
    conn.send(Packet::Publish(retained)).await;
    let m2 = messages.recv().await.unwrap();
    assert_eq!(
        (m2.topic_str(), m2.qos, m2.retain),
        ("t/2", QoS::ExactlyOnce, true)
    );
    assert_eq!(conn.expect().await, Packet::PubRec(PubRec::new(pid(9))));
    conn.send(Packet::PubRel(PubRel::new(pid(9)))).await;
    assert_eq!(conn.expect().await, Packet::PubComp(PubComp::new(pid(9))));
    assert_eq!(client.stats().messages_received, 3);
}

/// Publishing from inside the message loop cannot deadlock, even when the
/// broker floods the client.
pub(crate) async fn publish_from_message_loop_does_not_deadlock<R: Runtime>(rt: R) {
    const N: u16 = 200;
    let broker = FakeBroker::bind(rt.clone()).await;
    let options = broker
        .options("c")
        .with_inflight_window(2)
        .with_max_buffered_messages(8);
    let (client, messages, mut conn) = broker.connect(options, false).await;

    let echo = {
        let client = client.clone();
        async move {
            let mut deliveries = Vec::new();
            let mut messages = messages.take(usize::from(N));
            while let Some(m) = messages.next().await {
                let topic = format!("echo/{}", m.topic_str());
                deliveries.push(
                    client
                        .publish(&topic, m.payload, QoS::AtLeastOnce, false)
                        .unwrap(),
                );
            }
            for d in deliveries {
                d.await.unwrap();
            }
        }
    };
    let broker_side = async {
        for n in 1..=N {
            conn.send_message("in", b"x", QosPid::AtLeastOnce(pid(n)))
                .await;
        }
        let (mut pubacks, mut echoes) = (0, 0);
        while pubacks < N || echoes < N {
            match conn.expect().await {
                Packet::PubAck(_) => pubacks += 1,
                Packet::Publish(p) => {
                    assert_eq!(p.topic, "echo/in");
                    echoes += 1;
                    conn.send(Packet::PubAck(PubAck::new(packet_id(&p)))).await;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    zip(echo, broker_side).await;
}

/// The callback form sees every message.
pub(crate) async fn for_each_callback_sees_every_message<R: Runtime>(rt: R) {
    let broker = FakeBroker::bind(rt.clone()).await;
    let (client, messages, mut conn) = broker.connect(broker.options("c"), false).await;
    for n in 1..=3 {
        conn.send_message("t", b"x", QosPid::AtLeastOnce(pid(n)))
            .await;
    }
    let (tx, rx) = async_channel::unbounded();
    let collect = messages.for_each(move |m| {
        tx.try_send(m.payload).unwrap();
    });
    let check = async {
        for n in 1..=3 {
            assert_eq!(conn.expect().await, Packet::PubAck(PubAck::new(pid(n))));
        }
        assert_eq!(rx.len(), 3);
        client.disconnect().await.unwrap();
    };
    zip(collect, check).await;
}

/// QoS 0 messages beyond `max_buffered_messages` are dropped and counted;
/// QoS 1 messages are kept.
pub(crate) async fn qos0_over_the_buffer_limit_is_dropped_and_counted<R: Runtime>(rt: R) {
    let broker = FakeBroker::bind(rt.clone()).await;
    let options = broker.options("c").with_max_buffered_messages(2);
    let (client, mut messages, mut conn) = broker.connect(options, false).await;
    for _ in 0..5 {
        conn.send_message("q0", b"x", QosPid::AtMostOnce).await;
    }
    conn.send_message("q1", b"y", QosPid::AtLeastOnce(pid(1)))
        .await;
    eventually(&rt, || messages.len() == 3).await;
    assert_eq!(client.stats().qos0_dropped, 3);
    let topics: Vec<String> = [
        messages.recv().await.unwrap(),
        messages.recv().await.unwrap(),
        messages.recv().await.unwrap(),
    ]
    .iter()
    .map(|m| m.topic_str().to_owned())
    .collect();
    assert_eq!(topics, ["q0", "q0", "q1"]);
    assert_eq!(conn.expect().await, Packet::PubAck(PubAck::new(pid(1))));
}

/// A broker that ignores its inflight window and floods QoS 1 messages
/// makes the client stop reading at twice `max_buffered_messages`, and read
/// again once the application has caught up; nothing is lost.
pub(crate) async fn flooding_broker_pauses_reading_until_the_app_catches_up<R: Runtime>(rt: R) {
    let broker = FakeBroker::bind(rt.clone()).await;
    let options = broker.options("c").with_max_buffered_messages(2);
    let (client, mut messages, mut conn) = broker.connect(options, false).await;
    for n in 1..=10 {
        conn.send_message("flood", b"x", QosPid::AtLeastOnce(pid(n)))
            .await;
    }
    eventually(&rt, || messages.len() >= 4).await;
    eventually(&rt, || client.stats().read_pauses == 1).await;
    conn.send_message("late", b"y", QosPid::AtLeastOnce(pid(11)))
        .await;
    let mut topics = Vec::new();
    for _ in 0..11 {
        topics.push(messages.recv().await.unwrap().topic_str().to_owned());
    }
    assert!(topics[..10].iter().all(|t| t == "flood"), "{topics:?}");
    assert_eq!(topics[10], "late");
    for n in 1..=11 {
        assert_eq!(conn.expect().await, Packet::PubAck(PubAck::new(pid(n))));
    }
}

/// A burst of QoS 0 publishes larger than the driver's write buffer is
/// written in full, in order, and every delivery resolves.
pub(crate) async fn large_qos0_burst_is_written_in_full<R: Runtime>(rt: R) {
    const N: usize = 300;
    let broker = FakeBroker::bind(rt.clone()).await;
    let (client, _messages, mut conn) = broker.connect(broker.options("c"), false).await;
    let payload = bytes::Bytes::from(vec![0x5a; 1024]);
    let deliveries: Vec<_> = (0..N)
        .map(|n| {
            let topic = format!("burst/{n}");
            client
                .publish(&topic, payload.clone(), QoS::AtMostOnce, false)
                .unwrap()
        })
        .collect();
    for n in 0..N {
        let publish = conn.expect_publish().await;
        assert_eq!(publish.topic, format!("burst/{n}").as_str());
        assert_eq!(publish.payload.len(), 1024);
    }
    for d in deliveries {
        d.await.unwrap();
    }
}

/// QoS 0 publishes to a broker that stops reading pile up only to
/// `max_queued`: then `publish` fails at once with `QueueFull` instead of
/// growing memory. Once the broker reads again every accepted message
/// arrives in order, their deliveries resolve, and publishing works again.
pub(crate) async fn qos0_backlog_is_bounded_by_max_queued<R: Runtime>(rt: R) {
    const MAX: usize = 4;
    // Far more than loopback socket buffers hold at 16 KiB a message.
    const BOUND: usize = 5000;
    let broker = FakeBroker::bind(rt.clone()).await;
    let options = broker.options("c").with_max_queued(MAX);
    let (client, _messages, mut conn) = broker.connect(options, false).await;
    let payload = bytes::Bytes::from(vec![0x33; 16 * 1024]);
    let mut deliveries = Vec::new();
    let mut refused = Vec::new();
    // Publish until the client has refused 20 times in a row with time in
    // between for its driver to make room: the socket is full by then.
    for _ in 0..BOUND {
        let topic = format!("fill/{}", deliveries.len());
        match client.publish(&topic, payload.clone(), QoS::AtMostOnce, false) {
            Ok(delivery) => {
                deliveries.push(delivery);
                refused.clear();
                future::yield_now().await;
            }
            Err(e) => {
                refused.push(e);
                if refused.len() == 20 {
                    break;
                }
                rt.sleep(Duration::from_millis(1)).await;
            }
        }
    }
    assert_eq!(
        refused.len(),
        20,
        "publish never refused: the QoS 0 backlog is unbounded"
    );
    for err in refused {
        assert_eq!(err, ClientError::Usage(UsageError::QueueFull { max: MAX }));
    }
    assert!(client.stats().queued_qos0 <= MAX);
    let accepted = deliveries.len();
    zip(
        async {
            for n in 0..accepted {
                let publish = conn.expect_publish().await;
                assert_eq!(publish.topic, format!("fill/{n}").as_str());
            }
        },
        async {
            for delivery in deliveries {
                delivery.await.unwrap();
            }
        },
    )
    .await;
    let again = client.publish("after", "", QoS::AtMostOnce, false).unwrap();
    assert_eq!(conn.expect_publish().await.topic, "after");
    again.await.unwrap();
    assert_eq!(client.stats().queued_qos0, 0);
}

/// Once the application has dropped `Messages`, QoS 1 messages are
/// acknowledged (those buffered at once, later ones as they arrive), so the
/// broker's window never jams.
pub(crate) async fn dropped_messages_stream_still_acknowledges<R: Runtime>(rt: R) {
    let broker = FakeBroker::bind(rt.clone()).await;
    let (client, messages, mut conn) = broker.connect(broker.options("c"), false).await;
    conn.send_message("t", b"buffered", QosPid::AtLeastOnce(pid(9)))
        .await;
    eventually(&rt, || messages.len() == 1).await;
    drop(messages);
    // The buffered message nobody will take is acknowledged too.
    assert_eq!(conn.expect().await, Packet::PubAck(PubAck::new(pid(9))));
    for n in 1..=3 {
        conn.send_message("t", b"x", QosPid::AtLeastOnce(pid(n)))
            .await;
        assert_eq!(conn.expect().await, Packet::PubAck(PubAck::new(pid(n))));
    }
    assert!(client.is_connected());
}

/// [MQTT-4.3.2-2]: a QoS 1 message the application has taken is
/// acknowledged before anything the application asks for afterwards, so a
/// `disconnect` right after `recv` writes PUBACK first and DISCONNECT last
/// (otherwise the broker would send the message again on resume).
pub(crate) async fn mqtt_4_3_2_2_taken_message_is_acked_before_disconnect<R: Runtime>(rt: R) {
    let broker = FakeBroker::bind(rt.clone()).await;
    let options = broker.options("c").with_clean_session(false);
    let (client, mut messages, mut conn) = broker.connect(options, false).await;
    conn.send_message("t", b"last", QosPid::AtLeastOnce(pid(5)))
        .await;
    let message = messages.recv().await.unwrap();
    assert_eq!(&message.payload[..], b"last");
    // No await between taking the message and asking to disconnect.
    let (done, seen) = zip(client.disconnect(), conn.expect_closed()).await;
    done.unwrap();
    assert_eq!(
        seen,
        vec![Packet::PubAck(PubAck::new(pid(5))), Packet::Disconnect]
    );
}

/// [MQTT-4.3.2-2]: a message taken through the `Stream` is acknowledged
/// before a publish made right after it.
pub(crate) async fn mqtt_4_3_2_2_taken_message_is_acked_before_a_later_publish<R: Runtime>(rt: R) {
    let broker = FakeBroker::bind(rt.clone()).await;
    let (client, mut messages, mut conn) = broker.connect(broker.options("c"), false).await;
    conn.send_message("t", b"x", QosPid::AtLeastOnce(pid(3)))
        .await;
    assert_eq!(messages.next().await.unwrap().topic_str(), "t");
    let _delivery = client.publish("after", "", QoS::AtMostOnce, false).unwrap();
    assert_eq!(conn.expect().await, Packet::PubAck(PubAck::new(pid(3))));
    assert_eq!(conn.expect_publish().await.topic, "after");
}

// ----- reconnecting -----

/// [MQTT-4.4.0-1] [MQTT-3.3.1-1] [MQTT-2.3.1-3]: after the broker drops
/// the connection, the client reconnects, resends the unacknowledged QoS 1
/// PUBLISH with DUP and the same packet id, and subscribes again because
/// the broker kept no session.
pub(crate) async fn mqtt_4_4_0_1_reconnect_resends_inflight_with_dup_and_resubscribes<
    R: Runtime,
>(
    rt: R,
) {
    let broker = FakeBroker::bind(rt.clone()).await;
    let options = broker.options("c").with_clean_session(false);
    let (client, _messages, mut conn) = broker.connect(options, false).await;

    let (granted, _) = zip(client.subscribe("a/#", QoS::AtLeastOnce), async {
        let Packet::Subscribe(s) = conn.expect().await else {
            panic!("expected SUBSCRIBE")
        };
        let codes = vec![SubscribeReturnCode::Success(QoS::AtLeastOnce)];
        conn.send(Packet::SubAck(SubAck::new(s.packet_id, codes)))
            .await;
    })
    .await;
    granted.unwrap();

    let delivery = client
        .publish("a/b", "payload", QoS::AtLeastOnce, false)
        .unwrap();
    let first = conn.expect_publish().await;
    assert!(!first.dup);
    drop(conn); // no PUBACK: the broker vanishes

    let (mut conn, connect) = broker.accept_with(ConnectReturnCode::Accepted, false).await;
    assert!(!connect.clean_session);
    let (mut resent, mut resubscribed) = (None, None);
    while resent.is_none() || resubscribed.is_none() {
        match conn.expect().await {
            Packet::Publish(p) => resent = Some(p),
            Packet::Subscribe(s) => resubscribed = Some(s),
            other => panic!("unexpected {other:?}"),
        }
    }
    let resent = resent.unwrap();
    assert!(resent.dup, "a resent PUBLISH carries DUP [MQTT-3.3.1-1]");
    assert_eq!(
        resent.qos_pid, first.qos_pid,
        "same packet id [MQTT-2.3.1-3]"
    );
    assert_eq!(resent.payload, first.payload);
    let s = resubscribed.unwrap();
    assert_eq!(s.filters.len(), 1);
    assert_eq!(s.filters[0].filter, "a/#");
    assert_eq!(s.filters[0].qos, QoS::AtLeastOnce);
    conn.send(Packet::PubAck(PubAck::new(packet_id(&resent))))
        .await;
    conn.send(Packet::SubAck(SubAck::new(
        s.packet_id,
        vec![SubscribeReturnCode::Success(QoS::AtLeastOnce)],
    )))
    .await;
    delivery.await.unwrap();
    assert_eq!(client.stats().connections, 2);
    assert!(!client.session_present());
}

/// A subscribe made while the connection is down is sent on the next one
/// and resolves then.
pub(crate) async fn subscribe_while_reconnecting_completes_on_the_next_connection<R: Runtime>(
    rt: R,
) {
    let broker = FakeBroker::bind(rt.clone()).await;
    let options = broker.options("c").with_clean_session(false);
    let (client, _messages, conn) = broker.connect(options, false).await;
    drop(conn);
    eventually(&rt, || !client.is_connected()).await;
    let (granted, _) = zip(client.subscribe("late/#", QoS::AtLeastOnce), async {
        let (mut conn, _) = broker.accept_with(ConnectReturnCode::Accepted, true).await;
        let Packet::Subscribe(s) = conn.expect().await else {
            panic!("expected SUBSCRIBE")
        };
        assert_eq!(s.filters[0].filter, "late/#");
        let codes = vec![SubscribeReturnCode::Success(QoS::AtLeastOnce)];
        conn.send(Packet::SubAck(SubAck::new(s.packet_id, codes)))
            .await;
        conn
    })
    .await;
    assert_eq!(granted.unwrap(), QoS::AtLeastOnce);
}

/// When the broker kept the session, the client does not subscribe again.
pub(crate) async fn reconnect_with_session_present_does_not_resubscribe<R: Runtime>(rt: R) {
    let broker = FakeBroker::bind(rt.clone()).await;
    let options = broker.options("c").with_clean_session(false);
    let (client, _messages, mut conn) = broker.connect(options, false).await;
    let (granted, _) = zip(client.subscribe("a/#", QoS::AtMostOnce), async {
        let Packet::Subscribe(s) = conn.expect().await else {
            panic!("expected SUBSCRIBE")
        };
        let codes = vec![SubscribeReturnCode::Success(QoS::AtMostOnce)];
        conn.send(Packet::SubAck(SubAck::new(s.packet_id, codes)))
            .await;
    })
    .await;
    granted.unwrap();
    drop(conn);

    let (mut conn, _) = broker.accept_with(ConnectReturnCode::Accepted, true).await;
    eventually(&rt, || client.is_connected() && client.session_present()).await;
    client
        .publish("marker", "", QoS::AtMostOnce, false)
        .unwrap();
    // A resubscription would have been written right at CONNACK, before this.
    assert_eq!(conn.expect_publish().await.topic, "marker");
}

/// 0x03 (server unavailable) on a reconnection is retried; 0x04 ends the
/// client with that error.
pub(crate) async fn reconnect_retries_server_unavailable_but_not_bad_credentials<R: Runtime>(
    rt: R,
) {
    let broker = FakeBroker::bind(rt.clone()).await;
    let options = broker.options("c").with_clean_session(false);
    let (client, mut messages, conn) = broker.connect(options, false).await;
    let pending = client.publish("a", "x", QoS::AtLeastOnce, false).unwrap();
    drop(conn);
    let (conn, _) = broker
        .accept_with(ConnectReturnCode::ServerUnavailable, false)
        .await;
    drop(conn);
    let (conn, _) = broker
        .accept_with(ConnectReturnCode::BadUsernameOrPassword, false)
        .await;
    let refused = ClientError::Refused(ConnectReturnCode::BadUsernameOrPassword);
    assert_eq!(pending.await.unwrap_err(), refused);
    assert!(messages.recv().await.is_none());
    assert_eq!(client.ended(), Some(refused.clone()));
    assert_eq!(
        client
            .publish("a", "x", QoS::AtLeastOnce, false)
            .unwrap_err(),
        refused
    );
    drop(conn);
}

/// With reconnection off, a lost connection ends the client: `Messages`
/// ends, and a QoS 1 message of the clean session that ended before its
/// PUBACK is reported dropped.
pub(crate) async fn without_reconnect_a_lost_connection_ends_the_client<R: Runtime>(rt: R) {
    let broker = FakeBroker::bind(rt.clone()).await;
    let options = broker.options("c").with_reconnect(Reconnect::disabled());
    let (client, mut messages, mut conn) = broker.connect(options, false).await;
    let pending = client.publish("a", "x", QoS::AtLeastOnce, false).unwrap();
    conn.expect_publish().await;
    drop(conn);
    assert!(messages.recv().await.is_none());
    // A clean session ended before PUBACK: nobody can resend it.
    assert_eq!(pending.await.unwrap_err(), ClientError::Dropped);
    assert_eq!(client.ended(), Some(ClientError::ConnectionLost));
    assert!(!client.is_connected());
}

// ----- keep alive -----

/// [MQTT-3.1.2-23]: an idle client sends PINGREQ within the keep alive
/// interval, again and again while the broker answers.
pub(crate) async fn mqtt_3_1_2_23_idle_client_sends_pingreq<R: Runtime>(rt: R) {
    let broker = FakeBroker::bind(rt.clone()).await;
    let options = broker.options("c").with_keep_alive(1);
    let (client, _messages, mut conn) = broker.connect(options, false).await;
    for _ in 0..3 {
        assert_eq!(conn.expect().await, Packet::PingReq);
        conn.send(Packet::PingResp).await;
    }
    assert_eq!(client.stats().connections, 1);
}

/// A broker that stops answering PINGREQ is declared dead; the client
/// closes the connection and connects again.
pub(crate) async fn unanswered_pingreq_closes_and_reconnects<R: Runtime>(rt: R) {
    let broker = FakeBroker::bind(rt.clone()).await;
    let mut options = broker.options("c").with_keep_alive(1);
    options.config.ping_timeout = Some(Duration::from_secs(1));
    let (client, _messages, mut conn) = broker.connect(options, false).await;
    assert_eq!(conn.expect().await, Packet::PingReq);
    // No PINGRESP: the client gives up on this connection.
    conn.expect_closed().await;
    let (_conn, _) = broker.accept_with(ConnectReturnCode::Accepted, false).await;
    eventually(&rt, || client.stats().connections == 2).await;
}

// ----- disconnecting -----

/// [MQTT-3.14.4-1] [MQTT-3.14.4-2]: `disconnect` writes DISCONNECT last and
/// closes the connection; afterwards the client is ended.
pub(crate) async fn mqtt_3_14_4_1_disconnect_sends_disconnect_and_closes<R: Runtime>(rt: R) {
    let broker = FakeBroker::bind(rt.clone()).await;
    // A persistent session, so the unacknowledged message is not dropped
    // when the connection ends; the client ending fails it instead.
    let options = broker.options("c").with_clean_session(false);
    let (client, mut messages, mut conn) = broker.connect(options, false).await;
    let unacked = client.publish("a", "x", QoS::AtLeastOnce, false).unwrap();
    let (done, rest) = zip(client.disconnect(), async {
        assert_eq!(conn.expect_publish().await.topic, "a");
        conn.expect_closed().await
    })
    .await;
    done.unwrap();
    assert_eq!(rest, vec![Packet::Disconnect], "nothing after DISCONNECT");
    assert!(messages.recv().await.is_none());
    assert_eq!(unacked.await.unwrap_err(), ClientError::Disconnected);
    assert_eq!(
        client
            .publish("a", "x", QoS::AtLeastOnce, false)
            .unwrap_err(),
        ClientError::Disconnected
    );
    client.disconnect().await.unwrap(); // a second time does nothing
}

/// Dropping every handle disconnects politely.
pub(crate) async fn dropping_every_handle_disconnects<R: Runtime>(rt: R) {
    let broker = FakeBroker::bind(rt.clone()).await;
    let (client, mut messages, mut conn) = broker.connect(broker.options("c"), false).await;
    let clone = client.clone();
    drop(client);
    drop(clone);
    assert_eq!(conn.expect_closed().await, vec![Packet::Disconnect]);
    assert!(messages.recv().await.is_none());
}
