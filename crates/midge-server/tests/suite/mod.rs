//! The server test suite, written once over any [`Runtime`] and run by
//! `tokio.rs` (paused clock) and `smol.rs` (real time). Every test talks to
//! a real server over loopback sockets with a raw client
//! ([`client::TestClient`]), and every test is bounded by [`bounded`].

pub mod client;

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use futures_lite::future;
use midge_broker::shard_of;
use midge_codec::{ConnectReturnCode, Packet, QoS};
use midge_runtime::{Duration, Runtime};
use midge_server::{Server, ServerHandle, ServerOptions};

use client::{connect_packet, with_will, Next, TestClient};

/// Fails the test instead of hanging it.
pub async fn bounded<R: Runtime, F: Future<Output = ()>>(rt: &R, test: F) {
    let limit = rt.clone();
    future::or(test, async move {
        limit.sleep(Duration::from_secs(20)).await;
        panic!("test did not finish within 20 s");
    })
    .await;
}

/// Options for tests: an ephemeral loopback port and three shards (so
/// clients land on different shards even on a small machine).
pub fn options() -> ServerOptions {
    let mut options = ServerOptions {
        listeners: vec!["127.0.0.1:0".parse().unwrap()],
        shards: 3,
        ..ServerOptions::default()
    };
    options.session.connect_timeout = Duration::from_secs(2);
    options
}

/// A server running in a background task.
pub struct Running {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    done: async_channel::Receiver<io::Result<()>>,
}

impl Running {
    pub async fn start<R: Runtime>(rt: &R, options: ServerOptions) -> Self {
        let server = Server::bind(rt.clone(), options).await.expect("bind");
        let addr = server.local_addrs()[0];
        let handle = server.handle();
        let (tx, done) = async_channel::bounded(1);
        rt.spawn(async move {
            let result = server.run().await;
            let _ = tx.send(result).await;
        });
        Self { addr, handle, done }
    }

    /// Shuts the server down; `run` must return `Ok`.
    pub async fn stop(self) {
        self.handle.shutdown();
        let result = self.done.recv().await.expect("run finished");
        result.expect("run returned Ok");
        self.handle.closed().await;
    }
}

/// A client id whose session lives on `shard` of `shards`.
fn id_on_shard(prefix: &str, shard: u32, shards: u32) -> String {
    (0..10_000)
        .map(|n| format!("{prefix}-{n}"))
        .find(|id| shard_of(id, shards) == shard)
        .unwrap()
}

// covers: MQTT-3.2.0-1
pub async fn mqtt_3_2_0_1_connect_is_answered_with_connack<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let server = Running::start(&rt, options()).await;
        let (mut client, ack) =
            TestClient::connect_with(&rt, server.addr, connect_packet("first", true, 30)).await;
        assert_eq!(ack.code, ConnectReturnCode::Accepted);
        assert!(!ack.session_present);
        client.ping().await;
        let stats = server.handle.stats();
        assert_eq!(stats.connections_open, 1);
        assert_eq!(stats.connections_total, 1);
        client.disconnect().await;
        server.stop().await;
    })
    .await;
}

// covers: MQTT-3.3.4-1, MQTT-4.3.2-2, MQTT-4.3.3-2
pub async fn mqtt_3_3_4_1_qos_0_1_2_delivered_across_shards<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let server = Running::start(&rt, options()).await;
        let sub_id = id_on_shard("sub", 0, 3);
        let pub_id = id_on_shard("pub", 1, 3);
        let mut sub = TestClient::connect(&rt, server.addr, &sub_id).await;
        sub.subscribe("t/#", QoS::ExactlyOnce).await;
        let mut publisher = TestClient::connect(&rt, server.addr, &pub_id).await;
        // The subscription reaches the publisher's shard as a shard
        // message; a QoS 1 round trip on the subscriber's own topic shows it
        // arrived there before the test goes on.
        let mut got = Vec::new();
        publisher
            .publish("t/probe", QoS::AtLeastOnce, b"probe", false)
            .await;
        let probe = sub.received().await;
        assert_eq!(&probe.payload[..], b"probe");
        let messages: [(QoS, &[u8]); 3] = [
            (QoS::AtMostOnce, b"zero"),
            (QoS::AtLeastOnce, b"once"),
            (QoS::ExactlyOnce, b"twice"),
        ];
        for (qos, payload) in messages {
            publisher.publish("t/x", qos, payload, false).await;
        }
        for _ in 0..3 {
            let p = sub.received().await;
            assert_eq!(p.topic.as_str(), "t/x");
            got.push((p.payload.to_vec(), p.qos()));
        }
        got.sort();
        assert_eq!(
            got,
            vec![
                (b"once".to_vec(), QoS::AtLeastOnce),
                (b"twice".to_vec(), QoS::ExactlyOnce),
                (b"zero".to_vec(), QoS::AtMostOnce),
            ]
        );
        let stats = server.handle.stats();
        assert!(stats.messages_received >= 4, "{stats:?}");
        assert!(stats.messages_sent >= 4, "{stats:?}");
        sub.disconnect().await;
        publisher.disconnect().await;
        server.stop().await;
    })
    .await;
}

// covers: MQTT-3.3.1-5, MQTT-3.3.1-6
pub async fn mqtt_3_3_1_6_retained_message_goes_to_new_subscriber<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let server = Running::start(&rt, options()).await;
        let mut publisher = TestClient::connect(&rt, server.addr, "retainer").await;
        publisher
            .publish("status/door", QoS::AtLeastOnce, b"open", true)
            .await;
        let mut sub = TestClient::connect(&rt, server.addr, "late-reader").await;
        sub.subscribe("status/+", QoS::AtLeastOnce).await;
        let p = sub.received().await;
        assert_eq!(p.topic.as_str(), "status/door");
        assert_eq!(&p.payload[..], b"open");
        assert!(p.retain);
        publisher.disconnect().await;
        sub.disconnect().await;
        server.stop().await;
    })
    .await;
}

// covers: MQTT-3.1.2-8
pub async fn mqtt_3_1_2_8_will_published_on_abrupt_close<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let server = Running::start(&rt, options()).await;
        let mut sub = TestClient::connect(&rt, server.addr, "will-watcher").await;
        sub.subscribe("wills/#", QoS::AtLeastOnce).await;
        let connect = with_will(connect_packet("doomed", true, 60), "wills/doomed", b"gone");
        let (doomed, ack) = TestClient::connect_with(&rt, server.addr, connect).await;
        assert_eq!(ack.code, ConnectReturnCode::Accepted);
        drop(doomed);
        let p = sub.received().await;
        assert_eq!(p.topic.as_str(), "wills/doomed");
        assert_eq!(&p.payload[..], b"gone");
        assert_eq!(server.handle.stats().wills_published, 1);
        sub.disconnect().await;
        server.stop().await;
    })
    .await;
}

// covers: MQTT-3.14.4-3, MQTT-3.1.2-10
pub async fn mqtt_3_14_4_3_no_will_after_disconnect<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let server = Running::start(&rt, options()).await;
        let mut sub = TestClient::connect(&rt, server.addr, "will-watcher").await;
        sub.subscribe("wills/#", QoS::AtLeastOnce).await;
        let connect = with_will(connect_packet("polite", true, 60), "wills/polite", b"gone");
        let (polite, _) = TestClient::connect_with(&rt, server.addr, connect).await;
        polite.disconnect().await;
        // A marker published after the close: the first thing the watcher
        // gets must be the marker, not a will.
        let mut marker = TestClient::connect(
            &rt,
            server.addr,
            &id_on_shard("m", shard_of("polite", 3), 3),
        )
        .await;
        marker
            .publish("wills/marker", QoS::AtLeastOnce, b"m", false)
            .await;
        let p = sub.received().await;
        assert_eq!(p.topic.as_str(), "wills/marker");
        assert_eq!(sub.next(Duration::from_secs(1)).await, Next::Silent);
        assert_eq!(server.handle.stats().wills_published, 0);
        marker.disconnect().await;
        sub.disconnect().await;
        server.stop().await;
    })
    .await;
}

// covers: MQTT-3.1.2-4, MQTT-3.1.2-5, MQTT-3.2.2-2
pub async fn mqtt_3_1_2_5_persistent_session_resumes_with_queued_messages<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let server = Running::start(&rt, options()).await;
        let (mut sleeper, ack) =
            TestClient::connect_with(&rt, server.addr, connect_packet("sleeper", false, 60)).await;
        assert!(!ack.session_present);
        sleeper.subscribe("news/#", QoS::AtLeastOnce).await;
        sleeper.disconnect().await;

        let mut publisher = TestClient::connect(&rt, server.addr, "newsroom").await;
        for n in 0..3u8 {
            publisher
                .publish("news/today", QoS::AtLeastOnce, &[b'a' + n], false)
                .await;
        }
        // QoS 0 is not queued for an offline session by default.
        publisher
            .publish("news/today", QoS::AtMostOnce, b"q0", false)
            .await;
        publisher.disconnect().await;

        let (mut sleeper, ack) =
            TestClient::connect_with(&rt, server.addr, connect_packet("sleeper", false, 60)).await;
        assert_eq!(ack.code, ConnectReturnCode::Accepted);
        assert!(ack.session_present);
        for n in 0..3u8 {
            let p = sleeper.received().await;
            assert_eq!(p.topic.as_str(), "news/today");
            assert_eq!(&p.payload[..], &[b'a' + n]);
            assert_eq!(p.qos(), QoS::AtLeastOnce);
        }
        assert_eq!(sleeper.next(Duration::from_millis(500)).await, Next::Silent);
        sleeper.disconnect().await;
        server.stop().await;
    })
    .await;
}

// covers: MQTT-3.1.4-2
pub async fn mqtt_3_1_4_2_takeover_closes_the_earlier_connection<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let server = Running::start(&rt, options()).await;
        let (mut first, _) =
            TestClient::connect_with(&rt, server.addr, connect_packet("twin", false, 60)).await;
        first.subscribe("twin/#", QoS::AtLeastOnce).await;
        let (mut second, ack) =
            TestClient::connect_with(&rt, server.addr, connect_packet("twin", false, 60)).await;
        assert_eq!(ack.code, ConnectReturnCode::Accepted);
        assert!(ack.session_present);
        assert!(first.closed_within(Duration::from_secs(5)).await);
        // The session, subscription included, moved to the new connection.
        let mut publisher = TestClient::connect(&rt, server.addr, "twin-feeder").await;
        publisher
            .publish("twin/a", QoS::AtLeastOnce, b"hello", false)
            .await;
        let p = second.received().await;
        assert_eq!(&p.payload[..], b"hello");
        publisher.disconnect().await;
        second.disconnect().await;
        server.stop().await;
    })
    .await;
}

// covers: MQTT-3.1.2-24
pub async fn mqtt_3_1_2_24_keep_alive_expiry_closes<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let server = Running::start(&rt, options()).await;
        let (mut silent, _) =
            TestClient::connect_with(&rt, server.addr, connect_packet("silent", true, 1)).await;
        let (mut chatty, _) =
            TestClient::connect_with(&rt, server.addr, connect_packet("chatty", true, 1)).await;
        for _ in 0..6 {
            chatty.ping().await;
            rt.sleep(Duration::from_millis(500)).await;
        }
        // 3 s passed: the silent client is past one and a half times its
        // keep alive, the chatty one is still served.
        assert!(silent.closed_within(Duration::from_secs(5)).await);
        chatty.ping().await;
        chatty.disconnect().await;
        server.stop().await;
    })
    .await;
}

pub async fn ipv6_listener_serves_clients<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let mut options = options();
        options.listeners = vec!["[::1]:0".parse().unwrap(), "127.0.0.1:0".parse().unwrap()];
        let server = match Server::bind(rt.clone(), options).await {
            Ok(server) => server,
            Err(e) => {
                eprintln!("skipped: cannot bind [::1] ({e})");
                return;
            }
        };
        let addrs = server.local_addrs();
        assert!(addrs[0].is_ipv6() && addrs[1].is_ipv4());
        let handle = server.handle();
        let (tx, done) = async_channel::bounded(1);
        rt.spawn(async move {
            let _ = tx.send(server.run().await).await;
        });
        let mut v6 = TestClient::connect(&rt, addrs[0], "over-v6").await;
        let mut v4 = TestClient::connect(&rt, addrs[1], "over-v4").await;
        v4.subscribe("ip/#", QoS::AtLeastOnce).await;
        v6.publish("ip/6", QoS::AtLeastOnce, b"six", false).await;
        assert_eq!(&v4.received().await.payload[..], b"six");
        handle.shutdown();
        done.recv().await.unwrap().unwrap();
    })
    .await;
}

// covers: MQTT-4.8.0-1
pub async fn mqtt_4_8_0_1_malformed_packet_closes_and_others_are_served<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let server = Running::start(&rt, options()).await;
        let mut good = TestClient::connect(&rt, server.addr, "good").await;
        let mut bad = TestClient::connect(&rt, server.addr, "bad").await;
        // A SUBSCRIBE whose fixed-header flags are 0 instead of 0b0010.
        bad.send_raw(&[0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x00])
            .await;
        assert!(bad.closed_within(Duration::from_secs(5)).await);
        good.ping().await;
        assert!(server.handle.stats().protocol_errors >= 1);
        good.disconnect().await;
        server.stop().await;
    })
    .await;
}

// covers: MQTT-3.1.0-1
pub async fn mqtt_3_1_0_1_first_packet_not_connect_closes<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let server = Running::start(&rt, options()).await;
        let mut rude = TestClient::open(&rt, server.addr).await;
        rude.send(&Packet::PingReq).await;
        assert_eq!(rude.next(Duration::from_secs(5)).await, Next::Closed);
        server.stop().await;
    })
    .await;
}

pub async fn oversized_remaining_length_closes_at_once<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let mut options = options();
        options.session.max_packet_size = 1024;
        let server = Running::start(&rt, options).await;
        let mut good = TestClient::connect(&rt, server.addr, "good").await;
        let mut big = TestClient::connect(&rt, server.addr, "big").await;
        // A PUBLISH announcing about 10 MB: the server must close without
        // waiting for (or buffering) the body.
        big.send_raw(&[0x30, 0x80, 0x80, 0x80, 0x05]).await;
        assert!(big.closed_within(Duration::from_secs(5)).await);
        // A remaining length with a fifth continuation byte is malformed.
        let mut worse = TestClient::connect(&rt, server.addr, "worse").await;
        worse.send_raw(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]).await;
        assert!(worse.closed_within(Duration::from_secs(5)).await);
        good.ping().await;
        good.disconnect().await;
        server.stop().await;
    })
    .await;
}

pub async fn slowloris_is_closed_by_the_connect_timeout<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let server = Running::start(&rt, options()).await;
        let mut good = TestClient::connect(&rt, server.addr, "good").await;
        let mut wire = bytes::BytesMut::new();
        Packet::Connect(connect_packet("slow-and-steady", true, 60))
            .encode(&mut wire)
            .unwrap();
        let mut slow = TestClient::open(&rt, server.addr).await;
        let mut sent = 0;
        let mut closed = false;
        for byte in wire.iter() {
            if !slow.try_send_raw(&[*byte]).await {
                closed = true;
                break;
            }
            sent += 1;
            good.ping().await;
            if slow.next(Duration::from_secs(1)).await == Next::Closed {
                closed = true;
                break;
            }
        }
        // The connect timeout is 2 s and each byte takes one: the server
        // gave up long before the CONNECT was complete.
        assert!(closed, "slow client never closed");
        assert!(sent < wire.len() / 2, "closed only after {sent} bytes");
        good.ping().await;
        good.disconnect().await;
        server.stop().await;
    })
    .await;
}

pub async fn silent_sockets_are_closed_by_the_connect_timeout<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let server = Running::start(&rt, options()).await;
        let mut silent = Vec::new();
        for _ in 0..1000 {
            silent.push(TestClient::open(&rt, server.addr).await);
        }
        let mut good = TestClient::connect(&rt, server.addr, "good").await;
        good.subscribe("still/here", QoS::AtLeastOnce).await;
        good.publish("still/here", QoS::AtLeastOnce, b"yes", false)
            .await;
        assert_eq!(&good.received().await.payload[..], b"yes");
        for socket in &mut silent {
            assert!(socket.closed_within(Duration::from_secs(10)).await);
        }
        good.ping().await;
        good.disconnect().await;
        drop(silent);
        server.stop().await;
    })
    .await;
}

pub async fn connection_cap_closes_extra_sockets<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let mut options = options();
        options.max_connections = 3;
        let server = Running::start(&rt, options).await;
        let mut a = TestClient::connect(&rt, server.addr, "a").await;
        let b = TestClient::connect(&rt, server.addr, "b").await;
        let _c = TestClient::connect(&rt, server.addr, "c").await;
        let mut extra = TestClient::open(&rt, server.addr).await;
        assert_eq!(extra.next(Duration::from_secs(5)).await, Next::Closed);
        assert_eq!(server.handle.stats().connections_rejected, 1);
        a.ping().await;
        b.disconnect().await;
        // Room again once a connection has gone (bounded wait for the count).
        for _ in 0..100 {
            if server.handle.stats().connections_open < 3 {
                break;
            }
            rt.sleep(Duration::from_millis(50)).await;
        }
        let mut d = TestClient::connect(&rt, server.addr, "d").await;
        d.ping().await;
        server.stop().await;
    })
    .await;
}

pub async fn graceful_shutdown_closes_clients_without_wills<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let server = Running::start(&rt, options()).await;
        let mut sub = TestClient::connect(&rt, server.addr, "will-watcher").await;
        sub.subscribe("wills/#", QoS::AtLeastOnce).await;
        let connect = with_will(
            connect_packet("bystander", true, 60),
            "wills/bystander",
            b"x",
        );
        let (mut bystander, _) = TestClient::connect_with(&rt, server.addr, connect).await;
        let mut silent = TestClient::open(&rt, server.addr).await;
        let handle = server.handle.clone();
        server.stop().await;
        // Every client sees its socket closed, and the watcher got no will
        // before its close.
        assert_eq!(sub.next(Duration::from_secs(5)).await, Next::Closed);
        assert!(bystander.closed_within(Duration::from_secs(5)).await);
        assert!(silent.closed_within(Duration::from_secs(5)).await);
        let stats = handle.stats();
        assert_eq!(stats.connections_open, 0);
        assert_eq!(stats.wills_published, 0, "{stats:?}");
        assert!(handle.is_shutting_down());
    })
    .await;
}

/// A subscriber that does not read pauses its publisher (on another shard)
/// instead of losing messages: once it reads, every message arrives, in
/// order, and nothing was dropped. Default queue limits; 60 MB is more than
/// loopback socket buffers and the session queue hold together.
pub async fn slow_subscriber_pauses_publisher_and_loses_nothing<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let server = Running::start(&rt, options()).await;
        let sub_id = id_on_shard("slow", 0, 3);
        let pub_id = id_on_shard("fast", 2, 3);
        let mut sub = TestClient::connect(&rt, server.addr, &sub_id).await;
        sub.subscribe("bulk", QoS::AtMostOnce).await;
        let mut publisher = TestClient::connect(&rt, server.addr, &pub_id).await;
        // The subscription is known on the publisher's shard once a probe
        // gets through.
        publisher
            .publish("bulk", QoS::AtLeastOnce, b"probe", false)
            .await;
        assert_eq!(&sub.received().await.payload[..], b"probe");

        const COUNT: u32 = 6000;
        const SIZE: usize = 10 * 1024;
        let (done_tx, done_rx) = async_channel::bounded(1);
        rt.spawn(async move {
            for n in 0..COUNT {
                let mut payload = vec![0u8; SIZE];
                payload[..4].copy_from_slice(&n.to_be_bytes());
                publisher
                    .publish("bulk", QoS::AtMostOnce, &payload, false)
                    .await;
            }
            publisher.ping().await;
            let _ = done_tx.send(publisher).await;
        });
        // Let the publisher run into the congestion before reading.
        rt.sleep(Duration::from_millis(500)).await;
        assert!(
            done_rx.is_empty(),
            "60 MB went through a subscriber that did not read"
        );
        for n in 0..COUNT {
            let p = sub.received().await;
            assert_eq!(p.payload.len(), SIZE);
            assert_eq!(
                p.payload[..4],
                n.to_be_bytes(),
                "message {n}, {:?}",
                server.handle.stats()
            );
        }
        let publisher = done_rx.recv().await.unwrap();
        let stats = server.handle.stats();
        assert!(stats.publisher_pauses >= 1, "{stats:?}");
        assert_eq!(stats.messages_dropped, 0, "{stats:?}");
        publisher.disconnect().await;
        sub.disconnect().await;
        server.stop().await;
    })
    .await;
}

/// With `ack_after_route`, the PUBACK leaves only after the router took
/// the message: the shard's answer has to reach the connection.
// covers: MQTT-4.3.2-2
pub async fn mqtt_4_3_2_2_puback_after_routing_with_ack_after_route<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let mut options = options();
        options.session.ack_after_route = true;
        let server = Running::start(&rt, options).await;
        let mut sub = TestClient::connect(&rt, server.addr, "routed-reader").await;
        sub.subscribe("routed/#", QoS::AtLeastOnce).await;
        let mut publisher = TestClient::connect(&rt, server.addr, "routed-writer").await;
        for kind in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
            publisher.publish("routed/x", kind, b"r", false).await;
            assert_eq!(&sub.received().await.payload[..], b"r");
        }
        publisher.disconnect().await;
        sub.disconnect().await;
        server.stop().await;
    })
    .await;
}

/// The router shards' own timer: an abandoned persistent session expires.
pub async fn abandoned_session_expires_on_the_shard_timer<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let mut options = options();
        options.router.session_expiry = Some(Duration::from_secs(1));
        let server = Running::start(&rt, options).await;
        let (mut c, _) =
            TestClient::connect_with(&rt, server.addr, connect_packet("fleeting", false, 60)).await;
        c.subscribe("f/#", QoS::AtLeastOnce).await;
        c.disconnect().await;
        // Within the expiry the session is still there.
        let (c, ack) =
            TestClient::connect_with(&rt, server.addr, connect_packet("fleeting", false, 60)).await;
        assert!(ack.session_present);
        c.disconnect().await;
        rt.sleep(Duration::from_secs(2)).await;
        let (c, ack) =
            TestClient::connect_with(&rt, server.addr, connect_packet("fleeting", false, 60)).await;
        assert_eq!(ack.code, ConnectReturnCode::Accepted);
        assert!(!ack.session_present, "the session outlived its expiry");
        c.disconnect().await;
        server.stop().await;
    })
    .await;
}

/// An `Auth` that refuses one client id.
struct DenyMallory;

impl midge_broker::Auth for DenyMallory {
    fn connect(
        &mut self,
        client_id: &str,
        _username: Option<&str>,
        _password: Option<&[u8]>,
    ) -> Result<(), ConnectReturnCode> {
        if client_id == "mallory" {
            Err(ConnectReturnCode::NotAuthorized)
        } else {
            Ok(())
        }
    }

    fn may_publish(&self, _client_id: &str, _username: Option<&str>, topic: &str) -> bool {
        !topic.starts_with("secret/")
    }

    fn may_subscribe(&self, _client_id: &str, _username: Option<&str>, _filter: &str) -> bool {
        true
    }
}

/// `bind_with` plugs a store and an auth hook into every shard.
// covers: MQTT-3.2.2-5
pub async fn mqtt_3_2_2_5_auth_hook_refuses_and_closes<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let server = Server::bind_with(rt.clone(), options(), |_| {
            (midge_broker::MemoryStore::new(), DenyMallory)
        })
        .await
        .unwrap();
        let addr = server.local_addrs()[0];
        let handle = server.handle();
        let (tx, done) = async_channel::bounded(1);
        rt.spawn(async move {
            let _ = tx.send(server.run().await).await;
        });
        let (mut mallory, ack) =
            TestClient::connect_with(&rt, addr, connect_packet("mallory", true, 60)).await;
        assert_eq!(ack.code, ConnectReturnCode::NotAuthorized);
        assert_eq!(mallory.next(Duration::from_secs(5)).await, Next::Closed);
        let mut alice = TestClient::connect(&rt, addr, "alice").await;
        alice.subscribe("#", QoS::AtLeastOnce).await;
        alice
            .publish("secret/x", QoS::AtLeastOnce, b"no", false)
            .await;
        alice
            .publish("open/x", QoS::AtLeastOnce, b"yes", false)
            .await;
        assert_eq!(&alice.received().await.payload[..], b"yes");
        alice.disconnect().await;
        handle.shutdown();
        done.recv().await.unwrap().unwrap();
    })
    .await;
}

/// A client that never reads while others publish to it: the connection's
/// write buffer stays bounded and the server keeps serving everyone else.
pub async fn client_that_never_reads_does_not_stall_others<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let mut options = options();
        options.router.slow_subscriber = midge_broker::SlowSubscriberPolicy::Drop;
        let server = Running::start(&rt, options).await;
        let mut deaf = TestClient::connect(&rt, server.addr, "deaf").await;
        deaf.subscribe("flood", QoS::AtMostOnce).await;
        let mut good = TestClient::connect(&rt, server.addr, "good").await;
        good.subscribe("other", QoS::AtLeastOnce).await;
        let mut flooder = TestClient::connect(&rt, server.addr, "flooder").await;
        let payload = vec![7u8; 64 * 1024];
        for _ in 0..800 {
            flooder
                .publish("flood", QoS::AtMostOnce, &payload, false)
                .await;
        }
        flooder.ping().await;
        flooder
            .publish("other", QoS::AtLeastOnce, b"fine", false)
            .await;
        assert_eq!(&good.received().await.payload[..], b"fine");
        let stats = server.handle.stats();
        assert!(stats.messages_dropped > 0, "{stats:?}");
        drop(deaf);
        flooder.disconnect().await;
        good.disconnect().await;
        server.stop().await;
    })
    .await;
}

/// A publisher paused for longer than one and a half times its keep alive
/// is not disconnected for silence: the server is the one not reading.
// covers: MQTT-3.1.2-24
pub async fn mqtt_3_1_2_24_paused_publisher_is_not_a_silent_client<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let server = Running::start(&rt, options()).await;
        let mut sub = TestClient::connect(&rt, server.addr, &id_on_shard("stalled", 0, 3)).await;
        sub.subscribe("bulk", QoS::AtMostOnce).await;
        let pub_id = id_on_shard("eager", 1, 3);
        let (mut publisher, _) =
            TestClient::connect_with(&rt, server.addr, connect_packet(&pub_id, true, 1)).await;
        publisher
            .publish("bulk", QoS::AtLeastOnce, b"probe", false)
            .await;
        assert_eq!(&sub.received().await.payload[..], b"probe");

        const COUNT: u32 = 6000;
        let (done_tx, done_rx) = async_channel::bounded(1);
        rt.spawn(async move {
            let payload = vec![1u8; 10 * 1024];
            for _ in 0..COUNT {
                publisher
                    .publish("bulk", QoS::AtMostOnce, &payload, false)
                    .await;
            }
            publisher.ping().await;
            let _ = done_tx.send(publisher).await;
        });
        // Three times the publisher's keep alive without reading.
        rt.sleep(Duration::from_secs(3)).await;
        assert!(server.handle.stats().publisher_pauses >= 1);
        for _ in 0..COUNT {
            sub.received().await;
        }
        let publisher = done_rx.recv().await.unwrap();
        publisher.disconnect().await;
        sub.disconnect().await;
        server.stop().await;
    })
    .await;
}

/// A takeover while messages are on their way to a persistent session:
/// the new connection gets every one of them (those the old connection
/// had in flight again, with DUP), none is lost in the handover.
// covers: MQTT-3.1.4-2, MQTT-3.1.2-4, MQTT-4.4.0-1
pub async fn mqtt_3_1_4_2_takeover_under_load_loses_nothing<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let server = Running::start(&rt, options()).await;
        let (mut old, _) =
            TestClient::connect_with(&rt, server.addr, connect_packet("heir", false, 60)).await;
        old.subscribe("estate", QoS::AtLeastOnce).await;
        // `old` never reads again.
        const COUNT: u32 = 300;
        let mut publisher = TestClient::connect(&rt, server.addr, "testator").await;
        let (done_tx, done_rx) = async_channel::bounded(1);
        rt.spawn(async move {
            for n in 0..COUNT {
                publisher
                    .publish("estate", QoS::AtLeastOnce, &n.to_be_bytes(), false)
                    .await;
            }
            let _ = done_tx.send(publisher).await;
        });
        rt.sleep(Duration::from_millis(5)).await;
        let (mut new, ack) =
            TestClient::connect_with(&rt, server.addr, connect_packet("heir", false, 60)).await;
        assert!(ack.session_present);
        let mut seen = std::collections::BTreeSet::new();
        while seen.len() < COUNT as usize {
            let p = new.received().await;
            let n = u32::from_be_bytes(p.payload[..4].try_into().unwrap());
            seen.insert(n);
        }
        let publisher = done_rx.recv().await.unwrap();
        drop(old);
        publisher.disconnect().await;
        new.disconnect().await;
        server.stop().await;
    })
    .await;
}
