//! The MQTT-SN gateway's state survives a restart of the real `midged`
//! with durable persistence (`DATA_DIR/gateway`): a sleeping client gets the
//! message buffered for it before the restart when it wakes after it, and a
//! client that registered a topic publishes with its old topic id after
//! reconnecting without clean session. Once stopped gracefully (SIGTERM),
//! once with SIGKILL as soon as the gateway had answered (it answers only
//! after its state is committed). Raw SN datagrams over loopback UDP.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use midge_sn_codec::{
    ClientId, Connect, Disconnect, Message, PingReq, PubAck, Publish, PublishQoS, QoS, Register,
    ReturnCode, Subscribe, SubscribeTopic, Topic, TopicId, TopicName,
};

/// The longest any single wait may take.
const WAIT: Duration = Duration::from_secs(20);

/// A running `midged` on free ports with its data in a directory; killed
/// on drop.
struct Midged {
    child: Child,
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
    /// With its data in `data` (durable persistence), or in memory.
    fn start(data: Option<&Path>) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_midged"));
        match data {
            Some(dir) => command
                .args(["--persistence", "durable", "--data-dir"])
                .arg(dir),
            None => command.args(["--persistence", "none"]),
        };
        let mut child = command
            .args(["--bind", "127.0.0.1:0", "--sn-bind", "127.0.0.1:0"])
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
        let mut sn = None;
        let mut ready = false;
        while sn.is_none() || !ready {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines.recv_timeout(left).expect("midged starts in time");
            sn = sn.or_else(|| address_after(&line, "mqtt-sn gateway on udp "));
            ready |= line.contains(" ready");
        }
        std::thread::spawn(move || {
            while let Ok(l) = lines.recv() {
                eprintln!("MIDGED {l}");
            }
        });
        Self {
            child,
            sn: sn.unwrap(),
        }
    }

    /// SIGTERM, and waits (bounded) for the exit.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "midged stops cleanly: {status}");
                return;
            }
            assert!(Instant::now() < deadline, "midged did not stop in time");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL.
    fn crash(self) {
        drop(self);
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

    fn connect(&self, id: &'static str, clean: bool) {
        self.send(Connect {
            will: false,
            clean_session: clean,
            duration: 60,
            client_id: ClientId::from(id),
        });
        match self.recv() {
            Message::ConnAck(a) => assert_eq!(a.return_code, ReturnCode::Accepted),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    fn register(&self, name: &'static str, msg_id: u16) -> TopicId {
        self.send(Register {
            topic_id: TopicId(0),
            msg_id,
            topic_name: TopicName::from(name),
        });
        match self.recv() {
            Message::RegAck(a) => {
                assert_eq!((a.msg_id, a.return_code), (msg_id, ReturnCode::Accepted));
                a.topic_id
            }
            other => panic!("expected REGACK, got {other:?}"),
        }
    }

    fn subscribe(&self, name: &'static str, msg_id: u16) -> TopicId {
        self.send(Subscribe {
            dup: false,
            qos: QoS::AtLeastOnce,
            msg_id,
            topic: SubscribeTopic::Name(TopicName::from(name)),
        });
        match self.recv() {
            Message::SubAck(s) => {
                assert_eq!((s.msg_id, s.return_code), (msg_id, ReturnCode::Accepted));
                s.topic_id
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// A QoS 1 PUBLISH; returns the PUBACK's code.
    fn publish(&self, topic: TopicId, msg_id: u16, data: &'static [u8]) -> ReturnCode {
        self.send(Publish {
            dup: false,
            qos: PublishQoS::AtLeastOnce,
            retain: false,
            topic: Topic::TopicId(topic),
            msg_id,
            data: Bytes::from_static(data),
        });
        // Messages for the client may come first (a copy of a QoS 1
        // message the broker resends after the restart, announced by
        // REGISTER after a reconnect): they are acknowledged.
        for _ in 0..100 {
            match self.recv() {
                Message::PubAck(a) if a.msg_id == msg_id => return a.return_code,
                other => self.acknowledge(&other),
            }
        }
        panic!("no PUBACK after 100 datagrams");
    }

    /// Answers the gateway's REGISTER and QoS 1 PUBLISH.
    fn acknowledge(&self, message: &Message) {
        match message {
            Message::Register(r) => self.send(midge_sn_codec::RegAck {
                topic_id: r.topic_id,
                msg_id: r.msg_id,
                return_code: ReturnCode::Accepted,
            }),
            Message::Publish(p) if p.qos == PublishQoS::AtLeastOnce => {
                let Topic::TopicId(topic_id) = p.topic else {
                    panic!("expected a normal topic id: {p:?}")
                };
                self.send(PubAck {
                    topic_id,
                    msg_id: p.msg_id,
                    return_code: ReturnCode::Accepted,
                });
            }
            Message::Publish(_) => {}
            other => panic!("unexpected: {other:?}"),
        }
    }

    /// Wakes (PINGREQ with the client id) and collects what comes before
    /// PINGRESP, acknowledging QoS 1 messages.
    fn wake(&self, id: &'static str) -> Vec<Publish> {
        self.send(PingReq {
            client_id: Some(ClientId::from(id)),
        });
        let mut got = Vec::new();
        for _ in 0..100 {
            match self.recv() {
                Message::PingResp(_) => return got,
                Message::Publish(p) => {
                    self.acknowledge(&Message::Publish(p.clone()));
                    got.push(p);
                }
                other => panic!("unexpected while awake: {other:?}"),
            }
        }
        panic!("no PINGRESP after 100 datagrams");
    }
}

/// Before the restart: "dev1" (persistent session) registers a topic,
/// subscribes to "inbox" and falls asleep; "pub1" publishes to "inbox" at
/// QoS 1 (acknowledged once the broker has it). Returns dev1's ids.
fn before(gateway: SocketAddr) -> (TopicId, TopicId) {
    let dev = SnPeer::new(gateway);
    dev.connect("dev1", false);
    let registered = dev.register("plant/temp", 1);
    let inbox = dev.subscribe("inbox", 2);
    dev.send(Disconnect {
        duration: Some(3600),
    });
    assert!(matches!(dev.recv(), Message::Disconnect(_)));

    let publisher = SnPeer::new(gateway);
    publisher.connect("pub1", true);
    let topic = publisher.register("inbox", 1);
    assert_eq!(
        publisher.publish(topic, 1, b"while asleep"),
        ReturnCode::Accepted
    );
    (registered, inbox)
}

/// After the restart: dev1 wakes from a new address and gets the message
/// (the broker link of a restored sleeping client opens at start, so it may
/// take a few wake-ups); then it reconnects without clean session and
/// publishes with its old topic id, which an observer sees.
fn after(gateway: SocketAddr, registered: TopicId, inbox: TopicId) {
    let dev = SnPeer::new(gateway);
    let deadline = Instant::now() + WAIT;
    let delivered = loop {
        let got = dev.wake("dev1");
        if !got.is_empty() {
            break got;
        }
        assert!(Instant::now() < deadline, "the buffered message never came");
        std::thread::sleep(Duration::from_millis(50));
    };
    // QoS 1: a second copy is allowed (a crash between the gateway's
    // commit and the broker's); the first is the message.
    let first = &delivered[0];
    assert_eq!(first.topic, Topic::TopicId(inbox), "the id from SUBACK");
    assert_eq!(&first.data[..], b"while asleep");
    assert!(delivered.iter().all(|p| &p.data[..] == b"while asleep"));

    let observer = SnPeer::new(gateway);
    observer.connect("observer", true);
    let watched = observer.subscribe("plant/#", 1);
    assert_eq!(watched, TopicId(0), "a wildcard gets no id");

    dev.connect("dev1", false);
    assert_eq!(dev.publish(registered, 9, b"21.5"), ReturnCode::Accepted);
    // The observer learns the topic by REGISTER, then gets the PUBLISH.
    let id = match observer.recv() {
        Message::Register(r) => {
            assert_eq!(r.topic_name.as_str(), "plant/temp");
            observer.send(midge_sn_codec::RegAck {
                topic_id: r.topic_id,
                msg_id: r.msg_id,
                return_code: ReturnCode::Accepted,
            });
            r.topic_id
        }
        other => panic!("expected REGISTER, got {other:?}"),
    };
    match observer.recv() {
        Message::Publish(p) => {
            assert_eq!(p.topic, Topic::TopicId(id));
            assert_eq!(&p.data[..], b"21.5");
        }
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

#[test]
fn sn_6_14_sleeping_client_and_registry_survive_a_graceful_restart() {
    let dir = tempfile::tempdir().unwrap();
    let midged = Midged::start(Some(dir.path()));
    let (registered, inbox) = before(midged.sn);
    midged.stop();
    assert!(dir.path().join("gateway").is_dir());
    let midged = Midged::start(Some(dir.path()));
    after(midged.sn, registered, inbox);
}

#[test]
fn sn_6_14_sleeping_client_and_registry_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let midged = Midged::start(Some(dir.path()));
    let (registered, inbox) = before(midged.sn);
    midged.crash();
    let midged = Midged::start(Some(dir.path()));
    after(midged.sn, registered, inbox);
}

/// The control: with persistence off, the same client is unknown after a
/// restart (its PINGREQ is answered with DISCONNECT).
#[test]
fn sn_6_14_without_durable_persistence_nothing_survives() {
    let midged = Midged::start(None);
    before(midged.sn);
    midged.stop();
    let midged = Midged::start(None);
    let dev = SnPeer::new(midged.sn);
    dev.send(PingReq {
        client_id: Some(ClientId::from("dev1")),
    });
    assert!(matches!(dev.recv(), Message::Disconnect(_)));
}
