//! The MQTT-SN gateway inside the real `midged`: raw SN datagrams (built
//! with midge-sn-codec) over loopback UDP on one side, an MQTT client
//! (`midge_tokio::Client`) on the other; both reach the same broker, so
//! they share topics and retained messages. Pre-defined topic ids come from
//! `--sn-predefined`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use midge_sn_codec::{
    ClientId, Connect, Message, Publish, PublishQoS, QoS, Register, ReturnCode, Subscribe,
    SubscribeTopic, Topic, TopicId, TopicName,
};
use midge_tokio::{Client, ConnectOptions, Messages};

const WAIT: Duration = Duration::from_secs(20);

/// A running `midged` with its gateway on a free UDP port; killed on drop.
struct Midged {
    child: Child,
    mqtt: SocketAddr,
    sn: SocketAddr,
}

impl Drop for Midged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn address_after(line: &str, needle: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once(needle)?;
    rest.split_whitespace().next()?.parse().ok()
}

impl Midged {
    fn start(extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_midged"))
            .args(["--persistence", "none"])
            .args(["--bind", "127.0.0.1:0", "--sn-bind", "127.0.0.1:0"])
            .args(extra)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("midged starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines): (_, Receiver<String>) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + WAIT;
        let (mut mqtt, mut sn) = (None, None);
        while mqtt.is_none() || sn.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines
                .recv_timeout(left)
                .expect("midged prints its addresses");
            mqtt = mqtt.or_else(|| address_after(&line, "listening on "));
            sn = sn.or_else(|| address_after(&line, "mqtt-sn gateway on udp "));
        }
        std::thread::spawn(move || while lines.recv().is_ok() {});
        Self {
            child,
            mqtt: mqtt.unwrap(),
            sn: sn.unwrap(),
        }
    }
}

/// An MQTT-SN client made of a UDP socket and the codec.
struct SnPeer {
    socket: UdpSocket,
    gateway: SocketAddr,
}

impl SnPeer {
    fn new(gateway: SocketAddr) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(WAIT)).unwrap();
        Self { socket, gateway }
    }

    fn send(&self, message: impl Into<Message>) {
        let mut buf = BytesMut::new();
        message.into().encode(&mut buf).unwrap();
        self.socket.send_to(&buf, self.gateway).unwrap();
    }

    fn recv(&self) -> Message {
        let mut buf = vec![0u8; 2048];
        let (n, _) = self.socket.recv_from(&mut buf).expect("a datagram in time");
        midge_sn_codec::decode_slice(&buf[..n]).unwrap()
    }

    fn connect(&self, id: &'static str) {
        self.send(Connect {
            will: false,
            clean_session: true,
            duration: 60,
            client_id: ClientId::from(id),
        });
        match self.recv() {
            Message::ConnAck(a) => assert_eq!(a.return_code, ReturnCode::Accepted),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    fn subscribe(&self, topic: SubscribeTopic, msg_id: u16) -> TopicId {
        self.send(Subscribe {
            dup: false,
            qos: QoS::AtMostOnce,
            msg_id,
            topic,
        });
        match self.recv() {
            Message::SubAck(s) => {
                assert_eq!((s.msg_id, s.return_code), (msg_id, ReturnCode::Accepted));
                s.topic_id
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    fn publish(&self, topic: Topic, qos: PublishQoS, retain: bool, data: &'static [u8]) {
        self.send(Publish {
            dup: false,
            qos,
            retain,
            topic,
            msg_id: 1,
            data: Bytes::from_static(data),
        });
        if qos == PublishQoS::AtLeastOnce {
            match self.recv() {
                Message::PubAck(a) => assert_eq!(a.return_code, ReturnCode::Accepted),
                other => panic!("expected PUBACK, got {other:?}"),
            }
        }
    }
}

async fn mqtt(addr: SocketAddr, id: &str) -> (Client, Messages) {
    let options = ConnectOptions::new(&format!("mqtt://{addr}"), id).unwrap();
    Client::connect(options).await.unwrap()
}

async fn next(messages: &mut Messages) -> (String, Vec<u8>, bool) {
    let m = tokio::time::timeout(WAIT, messages.recv())
        .await
        .expect("a message in time")
        .expect("the client is up");
    (m.topic_str().to_owned(), m.payload.to_vec(), m.retain)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sn_6_8_sn_publish_reaches_mqtt_and_mqtt_publish_reaches_sn() {
    let midged = Midged::start(&[]);
    let (client, mut messages) = mqtt(midged.mqtt, "mqtt-side").await;
    client
        .subscribe("from-sn/#", midge_tokio::QoS::AtLeastOnce)
        .await
        .unwrap();

    let sn = SnPeer::new(midged.sn);
    tokio::task::block_in_place(|| {
        sn.connect("sn-side");
        sn.send(Register {
            topic_id: TopicId(0),
            msg_id: 7,
            topic_name: TopicName::from("from-sn/a"),
        });
        let Message::RegAck(ack) = sn.recv() else {
            panic!("expected REGACK")
        };
        sn.publish(
            Topic::TopicId(ack.topic_id),
            PublishQoS::AtLeastOnce,
            false,
            b"up",
        );
    });
    assert_eq!(
        next(&mut messages).await,
        ("from-sn/a".to_owned(), b"up".to_vec(), false)
    );

    let id = tokio::task::block_in_place(|| {
        sn.subscribe(SubscribeTopic::Name(TopicName::from("to-sn")), 2)
    });
    client
        .publish("to-sn", &b"down"[..], midge_tokio::QoS::AtLeastOnce, false)
        .unwrap()
        .await
        .unwrap();
    tokio::task::block_in_place(|| match sn.recv() {
        Message::Publish(p) => {
            assert_eq!(p.topic, Topic::TopicId(id));
            assert_eq!(&p.data[..], b"down");
        }
        other => panic!("expected PUBLISH, got {other:?}"),
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sn_6_8_retained_messages_are_shared_both_ways() {
    let midged = Midged::start(&[]);
    // SN retains (short topic name, spec 6.7), MQTT subscribes later.
    let sn = SnPeer::new(midged.sn);
    tokio::task::block_in_place(|| {
        sn.connect("sn-retainer");
        sn.publish(Topic::Short(*b"rt"), PublishQoS::AtLeastOnce, true, b"kept");
    });
    let (client, mut messages) = mqtt(midged.mqtt, "late-mqtt").await;
    client
        .subscribe("rt", midge_tokio::QoS::AtMostOnce)
        .await
        .unwrap();
    assert_eq!(
        next(&mut messages).await,
        ("rt".to_owned(), b"kept".to_vec(), true)
    );
    // MQTT retains, SN subscribes later and gets it.
    client
        .publish(
            "mq/kept",
            &b"for sn"[..],
            midge_tokio::QoS::AtLeastOnce,
            true,
        )
        .unwrap()
        .await
        .unwrap();
    let late = SnPeer::new(midged.sn);
    tokio::task::block_in_place(|| {
        late.connect("sn-late");
        let id = late.subscribe(SubscribeTopic::Name(TopicName::from("mq/kept")), 3);
        match late.recv() {
            Message::Publish(p) => {
                assert_eq!(p.topic, Topic::TopicId(id));
                assert!(p.retain);
                assert_eq!(&p.data[..], b"for sn");
            }
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sn_6_7_predefined_topic_ids_from_the_command_line() {
    let midged = Midged::start(&["--sn-predefined", "plant/temp=21,plant/hum=22"]);
    let (client, mut messages) = mqtt(midged.mqtt, "plant-watch").await;
    client
        .subscribe("plant/#", midge_tokio::QoS::AtMostOnce)
        .await
        .unwrap();
    let sn = SnPeer::new(midged.sn);
    tokio::task::block_in_place(|| {
        sn.connect("plant-sensor");
        sn.publish(
            Topic::Predefined(TopicId(22)),
            PublishQoS::AtLeastOnce,
            false,
            b"55%",
        );
    });
    assert_eq!(
        next(&mut messages).await,
        ("plant/hum".to_owned(), b"55%".to_vec(), false)
    );
    // An id nobody defined is refused (spec 6.7).
    tokio::task::block_in_place(|| {
        sn.send(Publish {
            dup: false,
            qos: PublishQoS::AtLeastOnce,
            retain: false,
            topic: Topic::Predefined(TopicId(99)),
            msg_id: 5,
            data: Bytes::from_static(b"x"),
        });
        match sn.recv() {
            Message::PubAck(a) => assert_eq!(a.return_code, ReturnCode::InvalidTopicId),
            other => panic!("expected PUBACK, got {other:?}"),
        }
    });
}

#[test]
fn bad_sn_predefined_flag_exits_with_code_2() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_midged"))
        .args(["--persistence", "none"])
        .args(["--bind", "127.0.0.1:0", "--sn-predefined", "no-id-here"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("midged did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(2));
}

#[test]
fn sn_port_zero_runs_the_broker_without_the_gateway() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_midged"))
        .args(["--persistence", "none"])
        .args(["--bind", "127.0.0.1:0", "--sn-port", "0"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        let ready = line.contains(" ready");
        seen.push(line);
        if ready || seen.len() > 100 {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.iter().any(|l| l.contains(" ready")), "{seen:?}");
    assert!(!seen.iter().any(|l| l.contains("mqtt-sn")), "{seen:?}");
}
