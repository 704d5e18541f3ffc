//! The async MQTT-SN client against the real gateway driver
//! (`midge-gateway`) in front of an in-memory Midge broker, with the async
//! MQTT client on the other side: what an SN client publishes reaches MQTT
//! subscribers, what MQTT clients publish reaches SN subscribers, also
//! through a sleep. The same suite on tokio and smol, each test bounded.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use futures_lite::future::or;
use midge_client::sn::{
    PublishQoS, QoS as SnQoS, SnClient, SnConnectOptions, SnMessages, SnState, SnTopic,
};
use midge_client::{Client, ConnectOptions, Messages, QoS, Runtime};
use midge_gateway::gateway::GatewayConfig;
use midge_gateway::{Gateway, GatewayOptions, LocalConnector};
use midge_server::{Server, ServerOptions};

const LIMIT: Duration = Duration::from_secs(20);

async fn within<R: Runtime>(rt: &R, test: impl Future<Output = ()>) {
    let limit = rt.sleep(LIMIT);
    or(test, async {
        limit.await;
        panic!("the test did not finish within {LIMIT:?}");
    })
    .await;
}

/// A broker on a loopback TCP port and a gateway on a loopback UDP port in
/// front of it (in memory); returns both addresses.
async fn start<R: Runtime>(rt: &R, predefined: &[(u16, &str)]) -> (SocketAddr, SocketAddr) {
    let options = ServerOptions {
        listeners: vec!["127.0.0.1:0".parse().unwrap()],
        shards: 1,
        ..ServerOptions::default()
    };
    let server = Server::bind(rt.clone(), options).await.unwrap();
    let broker = server.local_addrs()[0];
    let handle = server.handle();
    rt.spawn(async move {
        let _ = server.run().await;
    });
    let mut config = GatewayConfig::new(1);
    for (id, name) in predefined {
        config.predefined.insert(*id, (*name).to_owned());
    }
    let options = GatewayOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        config,
        ..GatewayOptions::default()
    };
    let gateway = Gateway::bind(rt.clone(), options, LocalConnector::new(handle))
        .await
        .unwrap();
    let addr = gateway.local_addr();
    rt.spawn(async move {
        let _ = gateway.run().await;
    });
    (broker, addr)
}

async fn mqtt<R: Runtime>(rt: &R, broker: SocketAddr, id: &str) -> (Client<R>, Messages) {
    let options = ConnectOptions::new(&format!("mqtt://{broker}"), id).unwrap();
    Client::connect_with(rt.clone(), options).await.unwrap()
}

async fn sn<R: Runtime>(rt: &R, gateway: SocketAddr, id: &str) -> (SnClient<R>, SnMessages) {
    let options = SnConnectOptions::new(&format!("udp://{gateway}"), id).unwrap();
    SnClient::connect_with(rt.clone(), options).await.unwrap()
}

async fn sn_publishes_every_qos_and_topic_form_to_an_mqtt_subscriber<R: Runtime>(rt: R) {
    let (broker, gateway) = start(&rt, &[(7, "sg/pre")]).await;
    let (watcher, mut seen) = mqtt(&rt, broker, "watcher").await;
    watcher.subscribe("#", QoS::ExactlyOnce).await.unwrap();
    let (client, _messages) = sn(&rt, gateway, "sn-up").await;
    let sends = [
        (
            SnTopic::Name("sg/name".into()),
            PublishQoS::AtMostOnce,
            "q0",
        ),
        (
            SnTopic::Name("sg/name".into()),
            PublishQoS::AtLeastOnce,
            "q1",
        ),
        (
            SnTopic::Name("sg/name".into()),
            PublishQoS::ExactlyOnce,
            "q2",
        ),
        (SnTopic::Predefined(7), PublishQoS::AtLeastOnce, "pre"),
        (SnTopic::Short(*b"ab"), PublishQoS::AtLeastOnce, "short"),
    ];
    for (topic, qos, payload) in sends.clone() {
        client
            .publish(topic, payload, qos, false)
            .unwrap()
            .await
            .unwrap();
    }
    let expected = [
        ("sg/name", "q0"),
        ("sg/name", "q1"),
        ("sg/name", "q2"),
        ("sg/pre", "pre"),
        ("ab", "short"),
    ];
    for (topic, payload) in expected {
        let message = seen.recv().await.unwrap();
        assert_eq!(message.topic_str(), topic);
        assert_eq!(message.payload.as_ref(), payload.as_bytes());
    }
}

async fn sn_qos_minus_one_needs_no_connection_through_the_gateway<R: Runtime>(rt: R) {
    let (broker, gateway) = start(&rt, &[(9, "sg/m1")]).await;
    let (watcher, mut seen) = mqtt(&rt, broker, "watcher-m1").await;
    watcher.subscribe("sg/m1", QoS::AtMostOnce).await.unwrap();
    let options = SnConnectOptions::new(&format!("udp://{gateway}"), "sn-m1").unwrap();
    let (client, _messages) = SnClient::open_with(rt.clone(), options).await.unwrap();
    client
        .publish(
            SnTopic::Predefined(9),
            "no-connect",
            PublishQoS::MinusOne,
            false,
        )
        .unwrap()
        .await
        .unwrap();
    assert_eq!(client.state(), SnState::Disconnected);
    let message = seen.recv().await.unwrap();
    assert_eq!(message.topic_str(), "sg/m1");
    assert_eq!(message.payload.as_ref(), b"no-connect");
}

async fn mqtt_publishes_reach_an_sn_wildcard_subscriber_named<R: Runtime>(rt: R) {
    let (broker, gateway) = start(&rt, &[]).await;
    let (client, mut messages) = sn(&rt, gateway, "sn-down").await;
    client
        .subscribe(SnTopic::Name("down/#".into()), SnQoS::AtLeastOnce)
        .unwrap()
        .await
        .unwrap();
    let (publisher, _) = mqtt(&rt, broker, "publisher").await;
    publisher
        .publish("down/x", "to-sn", QoS::AtLeastOnce, false)
        .unwrap()
        .await
        .unwrap();
    let message = messages.recv().await.unwrap();
    // The gateway registered the name with the client before the PUBLISH.
    assert_eq!(message.topic, SnTopic::Name("down/x".into()));
    assert_eq!(message.payload.as_ref(), b"to-sn");
    assert_eq!(message.qos, PublishQoS::AtLeastOnce);
}

async fn sleeping_sn_client_collects_what_the_gateway_buffered<R: Runtime>(rt: R) {
    let (broker, gateway) = start(&rt, &[]).await;
    let (client, mut messages) = sn(&rt, gateway, "sn-nap").await;
    client
        .subscribe(SnTopic::Name("nap/t".into()), SnQoS::AtLeastOnce)
        .unwrap()
        .await
        .unwrap();
    client.sleep(60).unwrap().await.unwrap();
    assert_eq!(client.state(), SnState::Asleep);
    let (publisher, _) = mqtt(&rt, broker, "publisher-nap").await;
    for payload in ["b1", "b2"] {
        publisher
            .publish("nap/t", payload, QoS::AtLeastOnce, false)
            .unwrap()
            .await
            .unwrap();
    }
    // Nothing comes while asleep; wake-ups collect both, in order. The
    // broker hands them to the gateway on its own schedule, so wake up
    // again (a bounded number of times) until both are in.
    assert!(messages.try_recv().is_none());
    let mut got = Vec::new();
    for _ in 0..50 {
        assert!(client.wake_once().unwrap().await.unwrap());
        assert_eq!(client.state(), SnState::Asleep);
        while let Some(message) = messages.try_recv() {
            got.push(message.payload);
        }
        if got.len() >= 2 {
            break;
        }
        rt.sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(got, ["b1", "b2"]);
    // Connecting again makes it active; disconnect ends politely.
    client.reconnect().unwrap().await.unwrap();
    assert_eq!(client.state(), SnState::Active);
    client.disconnect().unwrap().await.unwrap();
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod on_tokio {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let rt = midge_tokio::TokioRuntime::from_handle(tokio::runtime::Handle::current());
                    within(&rt, super::$name(rt.clone())).await;
                }
            )*
        }
        mod on_smol {
            use super::*;
            $(
                #[test]
                fn $name() {
                    smol::block_on(async {
                        let rt = midge_smol::SmolRuntime::current();
                        within(&rt, super::$name(rt.clone())).await;
                    });
                }
            )*
        }
    };
}

suite!(
    sn_publishes_every_qos_and_topic_form_to_an_mqtt_subscriber,
    sn_qos_minus_one_needs_no_connection_through_the_gateway,
    mqtt_publishes_reach_an_sn_wildcard_subscriber_named,
    sleeping_sn_client_collects_what_the_gateway_buffered,
);
