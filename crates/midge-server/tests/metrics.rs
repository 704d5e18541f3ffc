//! The Prometheus endpoint and the `$SYS/broker/...` topics after known
//! traffic through a real server over loopback, on tokio (paused clock) and
//! on smol (real time): every count is checked exactly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    unreachable_pub
)]

#[path = "suite/client.rs"]
#[allow(dead_code)]
mod client;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;

use bytes::BytesMut;
use client::{connect_packet, Next, TestClient};
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use midge_broker::{AllowAll, Auth, MemoryStore};
use midge_codec::{
    ConnectReturnCode, Filter, Packet, Publish, QoS, QosPid, SubAck, Subscribe, SubscribeFilter,
    SubscribeReturnCode, Topic,
};
use midge_runtime::{Duration, Runtime};
use midge_server::{MetricsEndpoint, Server, ServerHandle, ServerOptions, DROP_REASONS};

/// Fails the test instead of hanging it.
async fn bounded<R: Runtime, F: Future<Output = ()>>(rt: &R, test: F) {
    let limit = rt.clone();
    future::or(test, async move {
        limit.sleep(Duration::from_secs(20)).await;
        panic!("test did not finish within 20 s");
    })
    .await;
}

fn options(sys_interval: Duration) -> ServerOptions {
    ServerOptions {
        listeners: vec!["127.0.0.1:0".parse().unwrap()],
        shards: 3,
        sys_interval,
        ..ServerOptions::default()
    }
}

struct Running {
    addr: SocketAddr,
    metrics: SocketAddr,
    handle: ServerHandle,
    done: async_channel::Receiver<()>,
}

async fn start<R: Runtime, A: Auth + Clone + Send + 'static>(
    rt: &R,
    options: ServerOptions,
    auth: A,
) -> Running {
    let server = Server::bind_with(rt.clone(), options, |_| (MemoryStore::new(), auth.clone()))
        .await
        .unwrap();
    let addr = server.local_addrs()[0];
    let handle = server.handle();
    let endpoint = MetricsEndpoint::bind(rt.clone(), "127.0.0.1:0".parse().unwrap(), &handle)
        .await
        .unwrap();
    let metrics = endpoint.local_addr();
    rt.spawn(endpoint.run());
    let (tx, done) = async_channel::bounded(1);
    rt.spawn(async move {
        server.run().await.unwrap();
        let _ = tx.send(()).await;
    });
    Running {
        addr,
        metrics,
        handle,
        done,
    }
}

impl Running {
    async fn stop(self) {
        self.handle.shutdown();
        self.done.recv().await.unwrap();
    }
}

fn encoded_len(packet: &Packet) -> u64 {
    let mut out = BytesMut::new();
    packet.encode(&mut out).unwrap();
    out.len() as u64
}

fn qos0(topic: &str, payload: &[u8], retain: bool) -> Publish {
    let mut p = Publish::new(
        Topic::new(topic).unwrap(),
        QosPid::AtMostOnce,
        payload.to_vec(),
    );
    p.retain = retain;
    p
}

/// One HTTP/1.1 request; the status code and the body.
async fn http<R: Runtime>(rt: &R, addr: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = rt.connect_tcp(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8(response).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(length, body.len(), "Content-Length matches the body");
    (status, body.to_string())
}

/// `GET /metrics` as sample name (with labels) to value.
async fn scrape<R: Runtime>(rt: &R, addr: SocketAddr) -> BTreeMap<String, u64> {
    let (status, body) = http(rt, addr, "GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").await;
    assert_eq!(status, 200);
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (name.to_string(), value.parse().unwrap())
        })
        .collect()
}

/// Waits (bounded) until the server's connection counters satisfy `done`.
async fn settle<R: Runtime>(
    rt: &R,
    handle: &ServerHandle,
    done: impl Fn(&midge_server::ServerStats) -> bool,
) {
    for _ in 0..400 {
        if done(&handle.stats()) {
            return;
        }
        rt.sleep(Duration::from_millis(25)).await;
    }
    panic!("counters never settled: {:?}", handle.stats());
}

async fn metrics_count_known_traffic<R: Runtime>(rt: R) {
    bounded(&rt, async {
        // No $SYS here, so the retained count is the test's alone.
        let server = start(&rt, options(Duration::ZERO), AllowAll).await;
        let mut sub = TestClient::connect(&rt, server.addr, "sub").await;
        sub.subscribe("t/#", QoS::AtMostOnce).await;
        let mut publisher = TestClient::connect(&rt, server.addr, "pub").await;
        const N: u64 = 10;
        let payload = [0xa5u8; 100];
        let mut sent_by_clients = encoded_len(&Packet::Connect(connect_packet("sub", true, 60)))
            + encoded_len(&Packet::Connect(connect_packet("pub", true, 60)))
            + encoded_len(&Packet::Subscribe(Subscribe::new(
                client::pid(1),
                vec![SubscribeFilter {
                    filter: Filter::new("t/#").unwrap(),
                    qos: QoS::AtMostOnce,
                }],
            )));
        let mut outgoing = Vec::new();
        for _ in 0..N {
            outgoing.push(qos0("t/x", &payload, false));
        }
        outgoing.push(qos0("t/r", b"kept", true));
        // Dropped: clients may not publish to $SYS topics.
        outgoing.push(qos0("$SYS/forged", b"no", false));
        for p in &outgoing {
            sent_by_clients += encoded_len(&Packet::Publish(p.clone()));
            publisher.send(&Packet::Publish(p.clone())).await;
        }
        // Two CONNACKs and one SUBACK, then every delivery as received.
        let mut sent_to_clients = 4 + 4 + 5;
        for _ in 0..=N {
            let p = sub.received().await;
            assert!(p.topic.as_str().starts_with("t/"));
            sent_to_clients += encoded_len(&Packet::Publish(p));
        }
        let received = N + 2;
        settle(&rt, &server.handle, |s| {
            s.messages_received == received
                && s.messages_sent == N + 1
                && s.bytes_received == sent_by_clients
                && s.bytes_sent == sent_to_clients
        })
        .await;

        let m = scrape(&rt, server.metrics).await;
        let get = |name: &str| *m.get(name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(get("midge_messages_received_total"), received);
        assert_eq!(get("midge_messages_sent_total"), N + 1);
        assert_eq!(get("midge_bytes_received_total"), sent_by_clients);
        assert_eq!(get("midge_bytes_sent_total"), sent_to_clients);
        assert_eq!(get("midge_connections_open"), 2);
        assert_eq!(get("midge_connections_accepted_total"), 2);
        assert_eq!(get("midge_clients_connected"), 2);
        assert_eq!(get("midge_sessions"), 2);
        assert_eq!(get("midge_subscriptions"), 1);
        assert_eq!(get("midge_retained_messages"), 1);
        assert_eq!(get("midge_messages_dropped_total{reason=\"sys_topic\"}"), 1);
        for reason in DROP_REASONS.iter().filter(|r| **r != "sys_topic") {
            let name = format!("midge_messages_dropped_total{{reason=\"{reason}\"}}");
            assert_eq!(get(&name), 0, "{name}");
        }
        let listener = format!("{{listener=\"{}\"}}", server.addr);
        assert_eq!(
            get(&format!("midge_listener_connections_open{listener}")),
            2
        );
        assert_eq!(
            get(&format!("midge_listener_connections_total{listener}")),
            2
        );
        for shard in 0..3 {
            assert_eq!(
                get(&format!("midge_shard_inbox_depth{{shard=\"{shard}\"}}")),
                0
            );
        }

        // The same numbers through the API.
        let snapshot = server.handle.metrics().await;
        assert_eq!(snapshot.shards.len(), 3);
        assert_eq!(snapshot.clients_connected(), 2);
        assert_eq!(snapshot.dropped("sys_topic"), 1);

        // One client leaves: gauges follow, counters do not move.
        publisher.disconnect().await;
        settle(&rt, &server.handle, |s| s.connections_open == 1).await;
        let mut m = scrape(&rt, server.metrics).await;
        for _ in 0..100 {
            if m["midge_clients_connected"] == 1 {
                break;
            }
            rt.sleep(Duration::from_millis(25)).await;
            m = scrape(&rt, server.metrics).await;
        }
        assert_eq!(m["midge_clients_connected"], 1);
        assert_eq!(m["midge_sessions"], 1);
        assert_eq!(m[&format!("midge_listener_connections_open{listener}")], 1);
        assert_eq!(m["midge_messages_received_total"], received);
        server.stop().await;
    })
    .await;
}

async fn http_endpoint_answers_only_get_metrics<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let server = start(&rt, options(Duration::ZERO), AllowAll).await;
        let (status, body) = http(&rt, server.metrics, "GET /metrics HTTP/1.0\r\n\r\n").await;
        assert_eq!(status, 200);
        assert!(body.contains("# TYPE midge_messages_received_total counter\n"));
        assert_eq!(
            http(&rt, server.metrics, "GET / HTTP/1.1\r\n\r\n").await.0,
            404
        );
        let (status, _) = http(&rt, server.metrics, "POST /metrics HTTP/1.1\r\n\r\n").await;
        assert_eq!(status, 405);
        let (status, _) = http(&rt, server.metrics, "\x16\x03\x01garbage\r\n\r\n").await;
        assert_eq!(status, 400);
        // A head of the size limit without its end gets 400 too (exactly
        // the limit, so the server has read all of it before closing), and
        // the endpoint keeps serving.
        let prefix = "GET /metrics HTTP/1.1\r\nX: ";
        let huge = format!("{prefix}{}", "a".repeat(8192 - prefix.len()));
        assert_eq!(huge.len(), 8192);
        assert_eq!(http(&rt, server.metrics, &huge).await.0, 400);
        assert_eq!(
            scrape(&rt, server.metrics).await["midge_connections_open"],
            0
        );
        server.stop().await;
    })
    .await;
}

/// Reads publications until `topic` arrives with a payload `want`;
/// fails on a value above it (counters only grow towards it here).
async fn await_sys_value<R: Runtime>(
    sub: &mut TestClient<R>,
    topic: &str,
    want: u64,
) -> Vec<Publish> {
    let mut seen = Vec::new();
    for _ in 0..200 {
        let p = sub.received().await;
        let done = p.topic.as_str() == topic && {
            let value: u64 = std::str::from_utf8(&p.payload).unwrap().parse().unwrap();
            assert!(value <= want, "{topic} = {value}, above {want}");
            value == want && !p.retain
        };
        seen.push(p);
        if done {
            return seen;
        }
    }
    panic!("{topic} never reached {want}");
}

// covers: MQTT-4.7.2-1
async fn mqtt_4_7_2_1_sys_topics_count_known_traffic<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let server = start(&rt, options(Duration::from_secs(1)), AllowAll).await;
        // Subscribes to everything, yet must never see a $SYS topic.
        let mut everything = TestClient::connect(&rt, server.addr, "everything").await;
        everything.subscribe("#", QoS::AtMostOnce).await;
        everything.subscribe("+/broker/#", QoS::AtMostOnce).await;
        let mut publisher = TestClient::connect(&rt, server.addr, "pub").await;
        const N: u64 = 5;
        for _ in 0..N {
            publisher
                .send(&Packet::Publish(qos0("a/b", b"0123456789", false)))
                .await;
        }
        for _ in 0..N {
            assert_eq!(everything.received().await.topic.as_str(), "a/b");
        }
        publisher
            .send(&Packet::Publish(qos0("$SYS/broker/forged", b"x", false)))
            .await;
        settle(&rt, &server.handle, |s| s.messages_received == N + 1).await;

        let mut sys = TestClient::connect(&rt, server.addr, "sys").await;
        sys.subscribe("$SYS/broker/#", QoS::AtMostOnce).await;
        // A live (not retained) tick after the traffic carries exact counts.
        let seen = await_sys_value(&mut sys, "$SYS/broker/messages/received", N + 1).await;
        let mut latest = BTreeMap::new();
        let mut more = seen;
        // The rest of that tick: every topic of it arrives in a fixed order
        // ending with the last drop reason.
        let last = format!("$SYS/broker/messages/dropped/{}", DROP_REASONS[7]);
        if more.last().map(|p| p.topic.as_str()) != Some(last.as_str()) {
            for _ in 0..100 {
                let p = sys.received().await;
                let end = p.topic.as_str() == last && !p.retain;
                more.push(p);
                if end {
                    break;
                }
            }
        }
        for p in more.iter().filter(|p| !p.retain) {
            latest.insert(
                p.topic.as_str().to_string(),
                String::from_utf8(p.payload.to_vec()).unwrap(),
            );
        }
        let value = |t: &str| {
            latest
                .get(&format!("$SYS/broker/{t}"))
                .unwrap_or_else(|| panic!("{t} missing"))
                .clone()
        };
        assert!(value("version").starts_with("midge "));
        assert!(value("uptime").ends_with(" seconds"));
        assert_eq!(value("messages/received"), (N + 1).to_string());
        // N to "everything"; the retained $SYS copies to "sys" are counted
        // as they are handed over, so only a lower bound is exact here.
        assert!(value("messages/sent").parse::<u64>().unwrap() >= N);
        assert_eq!(value("clients/connected"), "3");
        assert_eq!(value("clients/total"), "3");
        assert_eq!(value("clients/disconnected"), "0");
        assert_eq!(value("subscriptions/count"), "3");
        assert_eq!(value("messages/dropped/sys_topic"), "1");
        assert_eq!(value("messages/dropped/acl_denied"), "0");
        let sys_topics = 13 + DROP_REASONS.len();
        assert_eq!(value("retained messages/count"), sys_topics.to_string());

        // The tick reached "sys" after "everything" subscribed, so a $SYS
        // delivery to "everything" would come before this message.
        publisher
            .send(&Packet::Publish(qos0("end", b"", false)))
            .await;
        assert_eq!(everything.received().await.topic.as_str(), "end");
        server.stop().await;
    })
    .await;
}

async fn sys_interval_zero_publishes_nothing<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let server = start(&rt, options(Duration::ZERO), AllowAll).await;
        let mut sub = TestClient::connect(&rt, server.addr, "sub").await;
        sub.subscribe("$SYS/#", QoS::AtMostOnce).await;
        sub.subscribe("x", QoS::AtMostOnce).await;
        // Retained $SYS messages would arrive right after the SUBACK.
        rt.sleep(Duration::from_secs(2)).await;
        let mut publisher = TestClient::connect(&rt, server.addr, "pub").await;
        publisher
            .send(&Packet::Publish(qos0("x", b"1", false)))
            .await;
        assert_eq!(sub.received().await.topic.as_str(), "x");
        assert_eq!(server.handle.metrics().await.retained(), 0);
        server.stop().await;
    })
    .await;
}

/// Lets anyone in but refuses `$SYS` subscriptions, as an ACL file without
/// a `topic read $SYS/#` line for the user does.
#[derive(Debug, Clone)]
struct NoSysReaders;

impl Auth for NoSysReaders {
    fn connect(
        &mut self,
        _client_id: &str,
        _username: Option<&str>,
        _password: Option<&[u8]>,
    ) -> Result<(), ConnectReturnCode> {
        Ok(())
    }

    fn may_publish(&self, _client_id: &str, _username: Option<&str>, _topic: &str) -> bool {
        true
    }

    fn may_subscribe(&self, _client_id: &str, _username: Option<&str>, filter: &str) -> bool {
        !filter.starts_with("$SYS")
    }
}

async fn sys_readers_are_the_auth_hooks_decision<R: Runtime>(rt: R) {
    bounded(&rt, async {
        let server = start(&rt, options(Duration::from_secs(1)), NoSysReaders).await;
        let mut sub = TestClient::connect(&rt, server.addr, "sub").await;
        let filters = ["$SYS/#", "$SYS/broker/uptime", "x"]
            .iter()
            .map(|f| SubscribeFilter {
                filter: Filter::new(f).unwrap(),
                qos: QoS::AtMostOnce,
            })
            .collect();
        sub.send(&Packet::Subscribe(Subscribe::new(client::pid(7), filters)))
            .await;
        match sub.packet().await {
            Packet::SubAck(SubAck { return_codes, .. }) => assert_eq!(
                return_codes,
                vec![
                    SubscribeReturnCode::Failure,
                    SubscribeReturnCode::Failure,
                    SubscribeReturnCode::Success(QoS::AtMostOnce)
                ]
            ),
            other => panic!("expected SUBACK, got {other:?}"),
        }
        // Ticks keep coming (retained), none reaches this client.
        rt.sleep(Duration::from_secs(3)).await;
        assert!(server.handle.metrics().await.retained() > 0);
        let mut publisher = TestClient::connect(&rt, server.addr, "pub").await;
        publisher
            .send(&Packet::Publish(qos0("x", b"1", false)))
            .await;
        assert!(matches!(
            sub.next(Duration::from_secs(10)).await,
            Next::Packet(Packet::Publish(p)) if p.topic.as_str() == "x"
        ));
        let m = scrape(&rt, server.metrics).await;
        assert_eq!(
            m["midge_subscriptions_refused_total{reason=\"not_authorized\"}"],
            2
        );
        server.stop().await;
    })
    .await;
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod on_tokio {
            $(
                #[tokio::test(start_paused = true)]
                async fn $name() {
                    super::$name(midge_tokio::TokioRuntime::from_handle(
                        tokio::runtime::Handle::current(),
                    ))
                    .await;
                }
            )*
        }
        mod on_smol {
            use midge_smol::Runtime as _;
            $(
                #[test]
                fn $name() {
                    smol::block_on(super::$name(midge_smol::SmolRuntime::current()));
                }
            )*
        }
    };
}

on_both!(
    metrics_count_known_traffic,
    http_endpoint_answers_only_get_metrics,
    mqtt_4_7_2_1_sys_topics_count_known_traffic,
    sys_interval_zero_publishes_nothing,
    sys_readers_are_the_auth_hooks_decision,
);
