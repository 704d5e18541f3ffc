//! The async MQTT-SN client against a fake gateway made of raw datagrams on
//! loopback, the same suite on tokio and smol. Every test is bounded by
//! [`LIMIT`]; retransmission tests use short T_retry in real time.
// Test helpers outside `#[test]` functions: a failed step is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_lite::future::or;
use midge_client::sn::{
    PublishQoS, QoS, ReturnCode, SnClient, SnClientError, SnConnectOptions, SnState, SnTopic,
    TopicId,
};
use midge_client::Runtime;
use midge_sn_codec::{
    ConnAck, Disconnect, Message, PingResp, PubAck, Publish, RegAck, SubAck, Topic, WillMsgReq,
    WillTopicReq,
};

const LIMIT: Duration = Duration::from_secs(20);

async fn within<R: Runtime>(rt: &R, test: impl Future<Output = ()>) {
    let limit = rt.sleep(LIMIT);
    or(test, async {
        limit.await;
        panic!("the test did not finish within {LIMIT:?}");
    })
    .await;
}

/// A loopback UDP socket that plays the gateway, one datagram at a time.
struct FakeGateway<R: Runtime> {
    rt: R,
    socket: R::UdpSocket,
    addr: SocketAddr,
    client: Option<SocketAddr>,
}

impl<R: Runtime> FakeGateway<R> {
    async fn bind(rt: &R) -> Self {
        let socket = rt.bind_udp("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = R::udp_local_addr(&socket).unwrap();
        Self {
            rt: rt.clone(),
            socket,
            addr,
            client: None,
        }
    }

    fn options(&self, client_id: &str) -> SnConnectOptions {
        SnConnectOptions::new(&format!("udp://{}", self.addr), client_id).unwrap()
    }

    async fn recv(&mut self) -> Message {
        let mut buf = vec![0u8; 0x1_0000];
        let (n, from) = self.rt.recv_from(&self.socket, &mut buf).await.unwrap();
        self.client = Some(from);
        midge_sn_codec::decode_slice(&buf[..n]).unwrap()
    }

    async fn send(&self, message: Message) {
        let mut out = Vec::new();
        message.encode(&mut out).unwrap();
        let to = self.client.expect("no datagram from the client yet");
        self.rt.send_to(&self.socket, &out, to).await.unwrap();
    }

    /// Expects CONNECT and accepts it.
    async fn accept(&mut self, client_id: &str) {
        match self.recv().await {
            Message::Connect(c) => assert_eq!(c.client_id.as_str(), client_id),
            other => panic!("expected CONNECT, got {other:?}"),
        }
        self.send(Message::ConnAck(ConnAck {
            return_code: ReturnCode::Accepted,
        }))
        .await;
    }
}

async fn connected<R: Runtime>(
    rt: &R,
    gw: &mut FakeGateway<R>,
    client_id: &str,
) -> (SnClient<R>, midge_client::sn::SnMessages) {
    let connecting = SnClient::connect_with(rt.clone(), gw.options(client_id));
    let (result, ()) = futures_lite::future::zip(connecting, gw.accept(client_id)).await;
    result.unwrap()
}

async fn publish_qos1_on_a_name_registers_then_resolves_at_puback<R: Runtime>(rt: R) {
    let mut gw = FakeGateway::bind(&rt).await;
    let (client, _messages) = connected(&rt, &mut gw, "sn-pub").await;
    assert_eq!(client.state(), SnState::Active);
    let mut delivery = client
        .publish(
            SnTopic::Name("a/b".into()),
            "hello",
            PublishQoS::AtLeastOnce,
            false,
        )
        .unwrap();
    let Message::Register(register) = gw.recv().await else {
        panic!("expected REGISTER first")
    };
    assert_eq!(register.topic_name.as_str(), "a/b");
    gw.send(Message::RegAck(RegAck {
        topic_id: TopicId(0x0105),
        msg_id: register.msg_id,
        return_code: ReturnCode::Accepted,
    }))
    .await;
    let Message::Publish(publish) = gw.recv().await else {
        panic!("expected PUBLISH")
    };
    assert_eq!(publish.topic, Topic::TopicId(TopicId(0x0105)));
    assert_eq!(publish.data, Bytes::from_static(b"hello"));
    assert_eq!(publish.qos, PublishQoS::AtLeastOnce);
    // Not yet acknowledged: the delivery is still pending.
    assert!(futures_lite::future::poll_once(&mut delivery)
        .await
        .is_none());
    gw.send(Message::PubAck(PubAck {
        topic_id: TopicId(0x0105),
        msg_id: publish.msg_id,
        return_code: ReturnCode::Accepted,
    }))
    .await;
    delivery.await.unwrap();
    assert_eq!(client.topic_id("a/b"), Some(TopicId(0x0105)));
}

async fn publish_refused_by_the_gateway_is_dropped<R: Runtime>(rt: R) {
    let mut gw = FakeGateway::bind(&rt).await;
    let (client, _messages) = connected(&rt, &mut gw, "sn-drop").await;
    let delivery = client
        .publish(SnTopic::Predefined(9), "x", PublishQoS::AtLeastOnce, false)
        .unwrap();
    let Message::Publish(publish) = gw.recv().await else {
        panic!("expected PUBLISH")
    };
    assert_eq!(publish.topic, Topic::Predefined(TopicId(9)));
    gw.send(Message::PubAck(PubAck {
        topic_id: TopicId(9),
        msg_id: publish.msg_id,
        return_code: ReturnCode::NotSupported,
    }))
    .await;
    assert_eq!(delivery.await, Err(SnClientError::Dropped));
}

async fn qos_minus_one_goes_out_without_a_connection<R: Runtime>(rt: R) {
    let mut gw = FakeGateway::bind(&rt).await;
    let (client, _messages) = SnClient::open_with(rt.clone(), gw.options("sn-m1"))
        .await
        .unwrap();
    assert_eq!(client.state(), SnState::Disconnected);
    client
        .publish(SnTopic::Short(*b"ab"), "fire", PublishQoS::MinusOne, false)
        .unwrap()
        .await
        .unwrap();
    // The first datagram the gateway sees is the PUBLISH: no CONNECT.
    let Message::Publish(publish) = gw.recv().await else {
        panic!("expected PUBLISH without CONNECT")
    };
    assert_eq!(publish.qos, PublishQoS::MinusOne);
    assert_eq!(publish.topic, Topic::Short(*b"ab"));
    assert_eq!(publish.data, Bytes::from_static(b"fire"));
    // A name cannot go at QoS -1.
    assert!(matches!(
        client.publish(SnTopic::Name("n".into()), "x", PublishQoS::MinusOne, false),
        Err(SnClientError::Usage(_))
    ));
}

async fn connect_refused_reports_the_code<R: Runtime>(rt: R) {
    let mut gw = FakeGateway::bind(&rt).await;
    let connecting = SnClient::connect_with(rt.clone(), gw.options("sn-refused"));
    let gateway = async {
        assert!(matches!(gw.recv().await, Message::Connect(_)));
        gw.send(Message::ConnAck(ConnAck {
            return_code: ReturnCode::NotSupported,
        }))
        .await;
    };
    let (result, ()) = futures_lite::future::zip(connecting, gateway).await;
    assert_eq!(
        result.map(|_| ()),
        Err(SnClientError::Refused(ReturnCode::NotSupported))
    );
}

async fn congested_connect_is_sent_again_after_t_wait<R: Runtime>(rt: R) {
    let mut gw = FakeGateway::bind(&rt).await;
    let mut options = gw.options("sn-congested");
    options.config_mut().t_wait = Duration::from_millis(100);
    let connecting = SnClient::connect_with(rt.clone(), options);
    let gateway = async {
        assert!(matches!(gw.recv().await, Message::Connect(_)));
        gw.send(Message::ConnAck(ConnAck {
            return_code: ReturnCode::Congestion,
        }))
        .await;
        // The same CONNECT again, once T_WAIT has passed; accepted this time.
        gw.accept("sn-congested").await;
    };
    let (result, ()) = futures_lite::future::zip(connecting, gateway).await;
    let (client, _messages) = result.unwrap();
    assert_eq!(client.state(), SnState::Active);
}

async fn silent_gateway_fails_connect_after_retries<R: Runtime>(rt: R) {
    let mut gw = FakeGateway::bind(&rt).await;
    let options = gw
        .options("sn-silent")
        .with_retry(Duration::from_millis(50), 2);
    let connecting = SnClient::connect_with(rt.clone(), options);
    let gateway = async {
        // CONNECT, then N_retry = 2 retransmissions, all unanswered.
        for _ in 0..3 {
            assert!(matches!(gw.recv().await, Message::Connect(_)));
        }
    };
    let (result, ()) = futures_lite::future::zip(connecting, gateway).await;
    assert_eq!(result.map(|_| ()), Err(SnClientError::GatewayLost));
}

async fn will_prompts_are_answered_before_connack<R: Runtime>(rt: R) {
    let mut gw = FakeGateway::bind(&rt).await;
    let options = gw
        .options("sn-will")
        .with_will("wills/sn", "gone", QoS::AtLeastOnce, true);
    let connecting = SnClient::connect_with(rt.clone(), options);
    let gateway = async {
        let Message::Connect(connect) = gw.recv().await else {
            panic!("expected CONNECT")
        };
        assert!(connect.will);
        gw.send(Message::WillTopicReq(WillTopicReq)).await;
        let Message::WillTopic(topic) = gw.recv().await else {
            panic!("expected WILLTOPIC")
        };
        let will = topic.0.expect("a will topic");
        assert_eq!(will.topic.as_str(), "wills/sn");
        assert_eq!(will.qos, QoS::AtLeastOnce);
        assert!(will.retain);
        gw.send(Message::WillMsgReq(WillMsgReq)).await;
        let Message::WillMsg(msg) = gw.recv().await else {
            panic!("expected WILLMSG")
        };
        assert_eq!(msg.will_msg, Bytes::from_static(b"gone"));
        gw.send(Message::ConnAck(ConnAck {
            return_code: ReturnCode::Accepted,
        }))
        .await;
    };
    let (result, ()) = futures_lite::future::zip(connecting, gateway).await;
    let (client, _messages) = result.unwrap();
    assert_eq!(client.state(), SnState::Active);
}

async fn subscribe_then_messages_arrive_named<R: Runtime>(rt: R) {
    let mut gw = FakeGateway::bind(&rt).await;
    let (client, mut messages) = connected(&rt, &mut gw, "sn-sub").await;
    let granted = client
        .subscribe(SnTopic::Name("s/t".into()), QoS::AtLeastOnce)
        .unwrap();
    let Message::Subscribe(subscribe) = gw.recv().await else {
        panic!("expected SUBSCRIBE")
    };
    gw.send(Message::SubAck(SubAck {
        qos: QoS::AtLeastOnce,
        topic_id: TopicId(0x0042),
        msg_id: subscribe.msg_id,
        return_code: ReturnCode::Accepted,
    }))
    .await;
    let granted = granted.await.unwrap();
    assert_eq!(granted.topic_id, TopicId(0x0042));
    assert_eq!(granted.qos, QoS::AtLeastOnce);
    gw.send(Message::Publish(Publish {
        dup: false,
        qos: PublishQoS::AtLeastOnce,
        retain: false,
        topic: Topic::TopicId(TopicId(0x0042)),
        msg_id: 77,
        data: Bytes::from_static(b"m1"),
    }))
    .await;
    let Message::PubAck(ack) = gw.recv().await else {
        panic!("expected PUBACK")
    };
    assert_eq!(ack.msg_id, 77);
    assert_eq!(ack.return_code, ReturnCode::Accepted);
    let message = messages.recv().await.unwrap();
    assert_eq!(message.topic, SnTopic::Name("s/t".into()));
    assert_eq!(message.topic_text(), "s/t");
    assert_eq!(message.payload, Bytes::from_static(b"m1"));
    assert_eq!(client.stats().messages_received, 1);
}

async fn subscribe_rejected_reports_the_code<R: Runtime>(rt: R) {
    let mut gw = FakeGateway::bind(&rt).await;
    let (client, _messages) = connected(&rt, &mut gw, "sn-subno").await;
    let granted = client
        .subscribe(SnTopic::Short(*b"zz"), QoS::AtMostOnce)
        .unwrap();
    let Message::Subscribe(subscribe) = gw.recv().await else {
        panic!("expected SUBSCRIBE")
    };
    gw.send(Message::SubAck(SubAck {
        qos: QoS::AtMostOnce,
        topic_id: TopicId(0),
        msg_id: subscribe.msg_id,
        return_code: ReturnCode::InvalidTopicId,
    }))
    .await;
    assert_eq!(
        granted.await,
        Err(SnClientError::Rejected(ReturnCode::InvalidTopicId))
    );
}

async fn sleep_then_wake_once_collects_buffered_messages<R: Runtime>(rt: R) {
    let mut gw = FakeGateway::bind(&rt).await;
    let (client, mut messages) = connected(&rt, &mut gw, "sn-sleepy").await;
    let asleep = client.sleep(30).unwrap();
    let Message::Disconnect(disconnect) = gw.recv().await else {
        panic!("expected DISCONNECT with a duration")
    };
    assert_eq!(disconnect.duration, Some(30));
    gw.send(Message::Disconnect(Disconnect { duration: None }))
        .await;
    asleep.await.unwrap();
    assert_eq!(client.state(), SnState::Asleep);

    let awake = client.wake_once().unwrap();
    let Message::PingReq(ping) = gw.recv().await else {
        panic!("expected PINGREQ")
    };
    assert_eq!(
        ping.client_id.as_ref().map(|id| id.as_str()),
        Some("sn-sleepy")
    );
    gw.send(Message::Publish(Publish {
        dup: false,
        qos: PublishQoS::AtMostOnce,
        retain: false,
        topic: Topic::Short(*b"bf"),
        msg_id: 0,
        data: Bytes::from_static(b"buffered"),
    }))
    .await;
    gw.send(Message::PingResp(PingResp)).await;
    assert!(awake.await.unwrap());
    assert_eq!(client.state(), SnState::Asleep);
    let message = messages.recv().await.unwrap();
    assert_eq!(message.topic, SnTopic::Short(*b"bf"));
    assert_eq!(message.payload, Bytes::from_static(b"buffered"));
}

async fn disconnect_resolves_when_the_gateway_answers<R: Runtime>(rt: R) {
    let mut gw = FakeGateway::bind(&rt).await;
    let (client, _messages) = connected(&rt, &mut gw, "sn-bye").await;
    let done = client.disconnect().unwrap();
    let Message::Disconnect(disconnect) = gw.recv().await else {
        panic!("expected DISCONNECT")
    };
    assert_eq!(disconnect.duration, None);
    gw.send(Message::Disconnect(Disconnect { duration: None }))
        .await;
    done.await.unwrap();
    assert_eq!(client.state(), SnState::Disconnected);
    // Connecting again works on the same task.
    let again = client.reconnect().unwrap();
    gw.accept("sn-bye").await;
    again.await.unwrap();
}

async fn dropping_the_last_handle_disconnects_and_ends_messages<R: Runtime>(rt: R) {
    let mut gw = FakeGateway::bind(&rt).await;
    let (client, mut messages) = connected(&rt, &mut gw, "sn-drop-all").await;
    let clone = client.clone();
    drop(client);
    drop(clone);
    let Message::Disconnect(_) = gw.recv().await else {
        panic!("expected DISCONNECT")
    };
    gw.send(Message::Disconnect(Disconnect { duration: None }))
        .await;
    assert!(messages.recv().await.is_none());
}

async fn gateway_disconnect_fails_pending_requests<R: Runtime>(rt: R) {
    let mut gw = FakeGateway::bind(&rt).await;
    let (client, _messages) = connected(&rt, &mut gw, "sn-kicked").await;
    let registration = client.register("r/t").unwrap();
    assert!(matches!(gw.recv().await, Message::Register(_)));
    gw.send(Message::Disconnect(Disconnect { duration: None }))
        .await;
    assert_eq!(registration.await, Err(SnClientError::GatewayDisconnected));
    assert_eq!(client.state(), SnState::Disconnected);
}

async fn malformed_datagrams_are_counted_and_ignored<R: Runtime>(rt: R) {
    let mut gw = FakeGateway::bind(&rt).await;
    let (client, _messages) = connected(&rt, &mut gw, "sn-noise").await;
    let to = gw.client.unwrap();
    rt.send_to(&gw.socket, &[0x05, 0xFF, 0x00], to)
        .await
        .unwrap();
    // A request after the noise still completes.
    let registration = client.register("n/t").unwrap();
    let Message::Register(register) = gw.recv().await else {
        panic!("expected REGISTER")
    };
    gw.send(Message::RegAck(RegAck {
        topic_id: TopicId(3),
        msg_id: register.msg_id,
        return_code: ReturnCode::Accepted,
    }))
    .await;
    assert_eq!(registration.await, Ok(TopicId(3)));
    assert_eq!(client.stats().malformed, 1);
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
    publish_qos1_on_a_name_registers_then_resolves_at_puback,
    publish_refused_by_the_gateway_is_dropped,
    qos_minus_one_goes_out_without_a_connection,
    connect_refused_reports_the_code,
    congested_connect_is_sent_again_after_t_wait,
    silent_gateway_fails_connect_after_retries,
    will_prompts_are_answered_before_connack,
    subscribe_then_messages_arrive_named,
    subscribe_rejected_reports_the_code,
    sleep_then_wake_once_collects_buffered_messages,
    disconnect_resolves_when_the_gateway_answers,
    dropping_the_last_handle_disconnects_and_ends_messages,
    gateway_disconnect_fails_pending_requests,
    malformed_datagrams_are_counted_and_ignored,
);
