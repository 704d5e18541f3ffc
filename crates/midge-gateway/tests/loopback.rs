//! The gateway driver over loopback UDP: raw MQTT-SN datagrams (built with
//! midge-sn-codec) from a plain UDP socket, against the gateway in front of
//! a `midge_tokio::Server`, reached in memory (`LocalConnector`) and by TCP
//! (`TcpConnector`); an MQTT client (`midge_tokio::Client`) on the other
//! side. One test runs on smol too.
//!
//! Test names carry the MQTT-SN 1.2 section they exercise.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::time::Duration as StdDuration;

use bytes::{Bytes, BytesMut};
use midge_gateway::gateway::GatewayConfig;
use midge_gateway::{
    BrokerConnector, Gateway, GatewayHandle, GatewayOptions, LocalConnector, TcpConnector,
};
use midge_runtime::{BrokerUrl, Duration};
use midge_sn_codec::{
    ClientId, Connect, Disconnect, Message, PingReq, Publish, PublishQoS, QoS, Register,
    ReturnCode, SearchGw, Subscribe, SubscribeTopic, Topic, TopicId, TopicName,
};
use midge_tokio::{
    Client, ConnectOptions, Runtime, Server, ServerHandle, ServerOptions, TokioRuntime,
};
use tokio::net::UdpSocket;

const TIMEOUT: StdDuration = StdDuration::from_secs(20);

async fn start_server(rt: &TokioRuntime) -> (SocketAddr, ServerHandle) {
    let options = ServerOptions {
        listeners: vec!["127.0.0.1:0".parse().unwrap()],
        shards: 2,
        ..ServerOptions::default()
    };
    let server = Server::bind(rt.clone(), options).await.unwrap();
    let addr = server.local_addrs()[0];
    let handle = server.handle();
    tokio::spawn(server.run());
    (addr, handle)
}

async fn start_gateway<C: BrokerConnector>(
    rt: &TokioRuntime,
    config: GatewayConfig,
    broadcast: Option<SocketAddr>,
    connector: C,
) -> (
    SocketAddr,
    GatewayHandle,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let options = GatewayOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        broadcast,
        config,
        ..GatewayOptions::default()
    };
    let gateway = Gateway::bind(rt.clone(), options, connector).await.unwrap();
    let addr = gateway.local_addr();
    let handle = gateway.handle();
    let run = tokio::spawn(gateway.run());
    (addr, handle, run)
}

/// An MQTT-SN client made of a UDP socket and the codec.
struct SnPeer {
    socket: UdpSocket,
    gateway: SocketAddr,
}

impl SnPeer {
    async fn new(gateway: SocketAddr) -> Self {
        Self {
            socket: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            gateway,
        }
    }

    async fn send(&self, message: impl Into<Message>) {
        let mut buf = BytesMut::new();
        message.into().encode(&mut buf).unwrap();
        self.socket.send_to(&buf, self.gateway).await.unwrap();
    }

    async fn recv(&self) -> Message {
        let mut buf = vec![0u8; 2048];
        let (n, from) = self.socket.recv_from(&mut buf).await.unwrap();
        assert_eq!(from, self.gateway);
        midge_sn_codec::decode_slice(&buf[..n]).unwrap()
    }

    async fn connect(&self, id: &'static str, clean: bool) {
        self.send(Connect {
            will: false,
            clean_session: clean,
            duration: 60,
            client_id: ClientId::from(id),
        })
        .await;
        match self.recv().await {
            Message::ConnAck(a) => assert_eq!(a.return_code, ReturnCode::Accepted),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    async fn register(&self, name: &'static str, msg_id: u16) -> TopicId {
        self.send(Register {
            topic_id: TopicId(0),
            msg_id,
            topic_name: TopicName::from(name),
        })
        .await;
        match self.recv().await {
            Message::RegAck(r) => {
                assert_eq!((r.msg_id, r.return_code), (msg_id, ReturnCode::Accepted));
                r.topic_id
            }
            other => panic!("expected REGACK, got {other:?}"),
        }
    }

    async fn subscribe(&self, topic: SubscribeTopic, msg_id: u16) -> TopicId {
        self.send(Subscribe {
            dup: false,
            qos: QoS::AtLeastOnce,
            msg_id,
            topic,
        })
        .await;
        match self.recv().await {
            Message::SubAck(s) => {
                assert_eq!((s.msg_id, s.return_code), (msg_id, ReturnCode::Accepted));
                s.topic_id
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    async fn publish(&self, topic: Topic, qos: PublishQoS, msg_id: u16, data: &'static [u8]) {
        self.send(Publish {
            dup: false,
            qos,
            retain: false,
            topic,
            msg_id,
            data: Bytes::from_static(data),
        })
        .await;
    }
}

async fn mqtt_client(addr: SocketAddr, id: &str) -> (Client, midge_tokio::Messages) {
    let options = ConnectOptions::new(&format!("mqtt://{addr}"), id).unwrap();
    Client::connect(options).await.unwrap()
}

/// The SN client publishes at QoS 1 on a registered topic; the MQTT client
/// receives it; the MQTT client publishes on the SN client's subscription;
/// the SN client receives it on the id its SUBACK gave.
async fn round_trip<C: BrokerConnector>(rt: TokioRuntime, broker: SocketAddr, connector: C) {
    let (gw, handle, run) = start_gateway(&rt, GatewayConfig::new(3), None, connector).await;
    let (mqtt, mut messages) = mqtt_client(broker, "watcher").await;
    mqtt.subscribe("sn/#", midge_tokio::QoS::AtLeastOnce)
        .await
        .unwrap();

    let sn = SnPeer::new(gw).await;
    sn.connect("sn-1", true).await;
    let id = sn.register("sn/up", 1).await;
    sn.publish(Topic::TopicId(id), PublishQoS::AtLeastOnce, 2, b"hello")
        .await;
    match sn.recv().await {
        Message::PubAck(a) => assert_eq!((a.msg_id, a.return_code), (2, ReturnCode::Accepted)),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    let got = messages.recv().await.unwrap();
    assert_eq!(
        (got.topic_str(), &got.payload[..]),
        ("sn/up", &b"hello"[..])
    );

    let down = sn
        .subscribe(SubscribeTopic::Name(TopicName::from("down/t")), 3)
        .await;
    mqtt.publish("down/t", &b"to sn"[..], midge_tokio::QoS::AtMostOnce, false)
        .unwrap();
    match sn.recv().await {
        Message::Publish(p) => {
            assert_eq!(p.topic, Topic::TopicId(down));
            assert_eq!(&p.data[..], b"to sn");
        }
        other => panic!("expected PUBLISH, got {other:?}"),
    }
    assert_eq!(handle.snapshot().clients, 1);

    sn.send(Disconnect { duration: None }).await;
    assert!(matches!(sn.recv().await, Message::Disconnect(_)));
    handle.shutdown();
    run.await.unwrap().unwrap();
    handle.closed().await;
}

#[tokio::test]
async fn sn_6_8_round_trip_through_the_server_in_memory() {
    let test = async {
        let rt = TokioRuntime::current();
        let (broker, server) = start_server(&rt).await;
        round_trip(rt, broker, LocalConnector::new(server.clone())).await;
        server.shutdown();
        server.closed().await;
    };
    tokio::time::timeout(TIMEOUT, test)
        .await
        .expect("timed out");
}

#[tokio::test]
async fn sn_6_8_round_trip_through_tcp_to_a_broker() {
    let test = async {
        let rt = TokioRuntime::current();
        let (broker, server) = start_server(&rt).await;
        let url = format!("mqtt://{broker}").parse::<BrokerUrl>().unwrap();
        round_trip(rt.clone(), broker, TcpConnector::new(rt, url).unwrap()).await;
        server.shutdown();
        server.closed().await;
    };
    tokio::time::timeout(TIMEOUT, test)
        .await
        .expect("timed out");
}

#[tokio::test]
async fn sn_5_3_10_unreachable_broker_answers_connack_congestion() {
    let test = async {
        let rt = TokioRuntime::current();
        // A port nobody listens on.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let url: BrokerUrl = format!("mqtt://{closed}").parse().unwrap();
        let connector = TcpConnector::new(rt.clone(), url).unwrap();
        let (gw, handle, run) = start_gateway(&rt, GatewayConfig::new(1), None, connector).await;
        let sn = SnPeer::new(gw).await;
        sn.send(Connect {
            will: false,
            clean_session: true,
            duration: 60,
            client_id: ClientId::from("nobody-home"),
        })
        .await;
        match sn.recv().await {
            Message::ConnAck(a) => assert_eq!(a.return_code, ReturnCode::Congestion),
            other => panic!("expected CONNACK, got {other:?}"),
        }
        // The snapshot is stored after the datagrams go out: poll it.
        let mut open = usize::MAX;
        for _ in 0..200 {
            open = handle.snapshot().broker_connections;
            if open == 0 {
                break;
            }
            tokio::time::sleep(StdDuration::from_millis(10)).await;
        }
        assert_eq!(open, 0, "the failed broker connection is forgotten");
        handle.shutdown();
        run.await.unwrap().unwrap();
    };
    tokio::time::timeout(TIMEOUT, test)
        .await
        .expect("timed out");
}

#[tokio::test]
async fn sn_6_2_gateway_listens_on_ipv6() {
    let test = async {
        let rt = TokioRuntime::current();
        let (_broker, server) = start_server(&rt).await;
        let options = GatewayOptions {
            listen: "[::1]:0".parse().unwrap(),
            ..GatewayOptions::default()
        };
        let gateway =
            match Gateway::bind(rt.clone(), options, LocalConnector::new(server.clone())).await {
                Ok(gateway) => gateway,
                Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
                    println!("SKIP: no IPv6 loopback here ({e})");
                    return;
                }
                Err(e) => panic!("bind [::1]:0: {e}"),
            };
        let gw = gateway.local_addr();
        assert!(gw.is_ipv6());
        let handle = gateway.handle();
        let run = tokio::spawn(gateway.run());
        let sn = SnPeer {
            socket: UdpSocket::bind("[::1]:0").await.unwrap(),
            gateway: gw,
        };
        sn.connect("v6-client", true).await;
        handle.shutdown();
        run.await.unwrap().unwrap();
        server.shutdown();
    };
    tokio::time::timeout(TIMEOUT, test)
        .await
        .expect("timed out");
}

#[tokio::test]
async fn sn_6_1_advertise_goes_to_the_broadcast_address_and_searchgw_gets_gwinfo() {
    let test = async {
        let rt = TokioRuntime::current();
        let (_broker, server) = start_server(&rt).await;
        // A unicast listener stands in for the broadcast address.
        let listener = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut config = GatewayConfig::new(7);
        config.t_adv = Some(Duration::from_secs(60));
        config.advertise_jitter = Duration::ZERO;
        let (gw, handle, run) = start_gateway(
            &rt,
            config,
            Some(listener.local_addr().unwrap()),
            LocalConnector::new(server.clone()),
        )
        .await;
        let mut buf = vec![0u8; 512];
        let (n, from) = listener.recv_from(&mut buf).await.unwrap();
        assert_eq!(from, gw);
        match midge_sn_codec::decode_slice(&buf[..n]).unwrap() {
            Message::Advertise(a) => assert_eq!((a.gw_id, a.duration), (7, 60)),
            other => panic!("expected ADVERTISE, got {other:?}"),
        }
        // A SEARCHGW is answered by a broadcast GWINFO (spec 6.1).
        let sn = SnPeer::new(gw).await;
        sn.send(SearchGw { radius: 1 }).await;
        let (n, _) = listener.recv_from(&mut buf).await.unwrap();
        match midge_sn_codec::decode_slice(&buf[..n]).unwrap() {
            Message::GwInfo(g) => assert_eq!(g.gw_id, 7),
            other => panic!("expected GWINFO, got {other:?}"),
        }
        handle.shutdown();
        run.await.unwrap().unwrap();
        server.shutdown();
    };
    tokio::time::timeout(TIMEOUT, test)
        .await
        .expect("timed out");
}

#[tokio::test]
async fn sn_6_7_predefined_topic_and_minus_one_publish_reach_mqtt() {
    let test = async {
        let rt = TokioRuntime::current();
        let (broker, server) = start_server(&rt).await;
        let config = GatewayConfig::new(1).with_predefined(9, "pre/defined");
        let (gw, handle, run) =
            start_gateway(&rt, config, None, LocalConnector::new(server.clone())).await;
        let (mqtt, mut messages) = mqtt_client(broker, "watcher").await;
        mqtt.subscribe("pre/#", midge_tokio::QoS::AtMostOnce)
            .await
            .unwrap();
        // QoS −1 needs no connection (spec 6.8).
        let sn = SnPeer::new(gw).await;
        sn.publish(
            Topic::Predefined(TopicId(9)),
            PublishQoS::MinusOne,
            0,
            b"m1",
        )
        .await;
        let got = messages.recv().await.unwrap();
        assert_eq!(
            (got.topic_str(), &got.payload[..]),
            ("pre/defined", &b"m1"[..])
        );
        handle.shutdown();
        run.await.unwrap().unwrap();
        server.shutdown();
    };
    tokio::time::timeout(TIMEOUT, test)
        .await
        .expect("timed out");
}

#[tokio::test]
async fn sn_6_14_sleeping_client_gets_buffered_message_when_it_wakes() {
    let test = async {
        let rt = TokioRuntime::current();
        let (broker, server) = start_server(&rt).await;
        let (gw, handle, run) = start_gateway(
            &rt,
            GatewayConfig::new(1),
            None,
            LocalConnector::new(server.clone()),
        )
        .await;
        let sn = SnPeer::new(gw).await;
        sn.connect("sleeper", true).await;
        let id = sn
            .subscribe(SubscribeTopic::Name(TopicName::from("wake/t")), 1)
            .await;
        sn.send(Disconnect {
            duration: Some(600),
        })
        .await;
        assert!(matches!(sn.recv().await, Message::Disconnect(_)));
        let (mqtt, _messages) = mqtt_client(broker, "waker").await;
        mqtt.publish(
            "wake/t",
            &b"while asleep"[..],
            midge_tokio::QoS::AtLeastOnce,
            false,
        )
        .unwrap()
        .await
        .unwrap();
        // Asleep: nothing is sent to the client.
        assert!(
            tokio::time::timeout(StdDuration::from_millis(200), sn.recv())
                .await
                .is_err(),
            "a sleeping client got a datagram"
        );
        // The message travels broker -> gateway on its own; wake up (spec
        // 6.14: PINGREQ with the client id) until it is there, sleeping
        // again in between. Bounded.
        let mut got = None;
        for _ in 0..100 {
            sn.send(PingReq {
                client_id: Some(ClientId::from("sleeper")),
            })
            .await;
            loop {
                match sn.recv().await {
                    Message::Publish(p) => {
                        assert_eq!(p.topic, Topic::TopicId(id));
                        got = Some(p.data);
                        if p.qos == PublishQoS::AtLeastOnce {
                            sn.send(midge_sn_codec::PubAck {
                                topic_id: id,
                                msg_id: p.msg_id,
                                return_code: ReturnCode::Accepted,
                            })
                            .await;
                        }
                    }
                    // Nothing (more) buffered: back to sleep.
                    Message::PingResp(_) => break,
                    other => panic!("unexpected {other:?}"),
                }
            }
            if got.is_some() {
                break;
            }
            tokio::time::sleep(StdDuration::from_millis(20)).await;
        }
        assert_eq!(got.as_deref(), Some(&b"while asleep"[..]));
        handle.shutdown();
        run.await.unwrap().unwrap();
        server.shutdown();
    };
    tokio::time::timeout(TIMEOUT, test)
        .await
        .expect("timed out");
}

#[tokio::test]
async fn shutdown_makes_the_broker_publish_the_clients_wills() {
    // The gateway drops its broker connections without DISCONNECT; the
    // broker publishes the will it got in the MQTT CONNECT.
    let test = async {
        let rt = TokioRuntime::current();
        let (broker, server) = start_server(&rt).await;
        let (gw, handle, run) = start_gateway(
            &rt,
            GatewayConfig::new(1),
            None,
            LocalConnector::new(server.clone()),
        )
        .await;
        let (mqtt, mut messages) = mqtt_client(broker, "watcher").await;
        mqtt.subscribe("will/#", midge_tokio::QoS::AtMostOnce)
            .await
            .unwrap();
        let sn = SnPeer::new(gw).await;
        sn.send(Connect {
            will: true,
            clean_session: true,
            duration: 60,
            client_id: ClientId::from("mortal"),
        })
        .await;
        assert!(matches!(sn.recv().await, Message::WillTopicReq(_)));
        sn.send(midge_sn_codec::WillTopic(Some(
            midge_sn_codec::WillTopicData {
                qos: QoS::AtMostOnce,
                retain: false,
                topic: TopicName::from("will/mortal"),
            },
        )))
        .await;
        assert!(matches!(sn.recv().await, Message::WillMsgReq(_)));
        sn.send(midge_sn_codec::WillMsg {
            will_msg: Bytes::from_static(b"gone"),
        })
        .await;
        assert!(matches!(sn.recv().await, Message::ConnAck(_)));
        handle.shutdown();
        run.await.unwrap().unwrap();
        let got = messages.recv().await.unwrap();
        assert_eq!(
            (got.topic_str(), &got.payload[..]),
            ("will/mortal", &b"gone"[..])
        );
        server.shutdown();
    };
    tokio::time::timeout(TIMEOUT, test)
        .await
        .expect("timed out");
}

#[test]
fn smol_sn_6_8_round_trip_through_the_server_in_memory() {
    use midge_smol::SmolRuntime;
    smol::block_on(async {
        let test = async {
            let rt = SmolRuntime::current();
            let server = midge_smol::Server::bind(
                rt.clone(),
                ServerOptions {
                    listeners: vec!["127.0.0.1:0".parse().unwrap()],
                    shards: 1,
                    ..ServerOptions::default()
                },
            )
            .await
            .unwrap();
            let server_handle = server.handle();
            rt.spawn(async move {
                let _ = server.run().await;
            });
            let options = GatewayOptions {
                listen: "127.0.0.1:0".parse().unwrap(),
                ..GatewayOptions::default()
            };
            let gateway = Gateway::bind(
                rt.clone(),
                options,
                LocalConnector::new(server_handle.clone()),
            )
            .await
            .unwrap();
            let gw = gateway.local_addr();
            let handle = gateway.handle();
            rt.spawn(async move {
                let _ = gateway.run().await;
            });
            let socket = smol::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let mut buf = BytesMut::new();
            Message::Connect(Connect {
                will: false,
                clean_session: true,
                duration: 30,
                client_id: ClientId::from("smol-sn"),
            })
            .encode(&mut buf)
            .unwrap();
            socket.send_to(&buf, gw).await.unwrap();
            let mut rx = vec![0u8; 512];
            let (n, _) = socket.recv_from(&mut rx).await.unwrap();
            match midge_sn_codec::decode_slice(&rx[..n]).unwrap() {
                Message::ConnAck(a) => assert_eq!(a.return_code, ReturnCode::Accepted),
                other => panic!("expected CONNACK, got {other:?}"),
            }
            assert_eq!(server_handle.stats().connections_open, 1);
            handle.shutdown();
            handle.closed().await;
            server_handle.shutdown();
            server_handle.closed().await;
        };
        futures_lite::future::or(test, async {
            smol::Timer::after(TIMEOUT).await;
            panic!("timed out");
        })
        .await;
    });
}
