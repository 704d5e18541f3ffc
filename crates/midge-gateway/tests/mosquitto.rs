//! The gateway driver (the one `midge gateway` runs) in front of Mosquitto,
//! a broker nobody here wrote: an SN client's publish is checked on the MQTT
//! side by `mosquitto_sub`, and a `mosquitto_pub` message reaches the SN
//! client. Skipped with a SKIP line when Mosquitto is missing, a failure
//! with `MIDGE_REQUIRE_PEERS=1`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration as StdDuration;

use bytes::{Bytes, BytesMut};
use midge_gateway::gateway::GatewayConfig;
use midge_gateway::{Gateway, GatewayOptions, TcpConnector};
use midge_runtime::BrokerUrl;
use midge_sn_codec::{
    ClientId, Connect, Message, Publish, PublishQoS, QoS, Register, ReturnCode, Subscribe,
    SubscribeTopic, Topic, TopicId, TopicName,
};
use midge_testkit::{Mosquitto, MosquittoClients};
use midge_tokio::{Runtime, TokioRuntime};

const WAIT: StdDuration = StdDuration::from_secs(20);

fn send(socket: &UdpSocket, to: SocketAddr, message: impl Into<Message>) {
    let mut buf = BytesMut::new();
    message.into().encode(&mut buf).unwrap();
    socket.send_to(&buf, to).unwrap();
}

fn recv(socket: &UdpSocket) -> Message {
    let mut buf = vec![0u8; 2048];
    let (n, _) = socket.recv_from(&mut buf).expect("a datagram in time");
    midge_sn_codec::decode_slice(&buf[..n]).unwrap()
}

#[test]
fn sn_6_8_gateway_in_front_of_mosquitto_both_ways() -> anyhow::Result<()> {
    let Some(clients) = MosquittoClients::find()? else {
        return Ok(());
    };
    let Some(broker) = Mosquitto::start()? else {
        return Ok(());
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (gw, handle) = runtime.block_on(async {
        let rt = TokioRuntime::current();
        let url: BrokerUrl = broker.url().parse().unwrap();
        let options = GatewayOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            config: GatewayConfig::new(1).with_predefined(4, "mosq/pre"),
            ..GatewayOptions::default()
        };
        let gateway = Gateway::bind(
            rt.clone(),
            options,
            TcpConnector::new(rt.clone(), url).unwrap(),
        )
        .await
        .unwrap();
        let addr = gateway.local_addr();
        let handle = gateway.handle();
        rt.spawn(async move {
            let _ = gateway.run().await;
        });
        (addr, handle)
    });

    let sub = clients.subscribe(broker.port(), &["-t", "mosq/#", "-q", "1"])?;
    let sn = UdpSocket::bind("127.0.0.1:0")?;
    sn.set_read_timeout(Some(WAIT))?;
    send(
        &sn,
        gw,
        Connect {
            will: false,
            clean_session: true,
            duration: 60,
            client_id: ClientId::from("sn-mosq"),
        },
    );
    match recv(&sn) {
        Message::ConnAck(a) => assert_eq!(a.return_code, ReturnCode::Accepted),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    send(
        &sn,
        gw,
        Register {
            topic_id: TopicId(0),
            msg_id: 1,
            topic_name: TopicName::from("mosq/up"),
        },
    );
    let Message::RegAck(reg) = recv(&sn) else {
        panic!("expected REGACK")
    };
    for (topic, data) in [
        (Topic::TopicId(reg.topic_id), &b"via gateway"[..]),
        (Topic::Predefined(TopicId(4)), &b"predefined"[..]),
    ] {
        send(
            &sn,
            gw,
            Publish {
                dup: false,
                qos: PublishQoS::AtLeastOnce,
                retain: false,
                topic,
                msg_id: 2,
                data: Bytes::from_static(data),
            },
        );
        match recv(&sn) {
            Message::PubAck(a) => assert_eq!(a.return_code, ReturnCode::Accepted),
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
    let got = sub.wait_messages(2, WAIT)?;
    let seen: Vec<_> = got
        .iter()
        .map(|m| (m.topic.as_str(), m.payload.as_str()))
        .collect();
    assert_eq!(
        seen,
        [("mosq/up", "via gateway"), ("mosq/pre", "predefined")]
    );

    // And back: mosquitto_pub to the SN client's subscription.
    send(
        &sn,
        gw,
        Subscribe {
            dup: false,
            qos: QoS::AtMostOnce,
            msg_id: 3,
            topic: SubscribeTopic::Name(TopicName::from("mosq/down")),
        },
    );
    let Message::SubAck(ack) = recv(&sn) else {
        panic!("expected SUBACK")
    };
    assert_eq!(ack.return_code, ReturnCode::Accepted);
    clients.publish(broker.port(), &["-t", "mosq/down", "-m", "to sn"])?;
    match recv(&sn) {
        Message::Publish(p) => {
            assert_eq!(p.topic, Topic::TopicId(ack.topic_id));
            assert_eq!(&p.data[..], b"to sn");
        }
        other => panic!("expected PUBLISH, got {other:?}"),
    }
    handle.shutdown();
    runtime.block_on(async {
        tokio::time::timeout(WAIT, handle.closed()).await.unwrap();
    });
    Ok(())
}
