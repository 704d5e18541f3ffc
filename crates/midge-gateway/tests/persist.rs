//! The driver's persistence hook over loopback UDP: the core's changes are
//! committed before the gateway answers, and a gateway started from the
//! committed records (`Gateway::with_persistence`) delivers a sleeping
//! client's buffered message and knows a persistent client's topic ids.
//! The gateway sits in front of a `midge_tokio::Server` reached in memory;
//! the "store" is a map behind a mutex.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use bytes::{Bytes, BytesMut};
use midge_gateway::gateway::{ClientRecord, GatewayConfig, PersistOp};
use midge_gateway::{Gateway, GatewayOptions, GatewayPersistence, LocalConnector};
use midge_sn_codec::{
    ClientId, Connect, Disconnect, Message, PingReq, PubAck, Publish, PublishQoS, QoS, Register,
    ReturnCode, Subscribe, SubscribeTopic, Topic, TopicId, TopicName,
};
use midge_tokio::{
    Client, ConnectOptions, Runtime, Server, ServerHandle, ServerOptions, TokioRuntime,
};
use tokio::net::UdpSocket;

const TIMEOUT: StdDuration = StdDuration::from_secs(20);

/// Records go to `pending`; `commit` moves them into `committed`.
#[derive(Debug, Default)]
struct Shared {
    pending: Vec<PersistOp>,
    committed: BTreeMap<String, ClientRecord>,
    commits: usize,
}

#[derive(Debug, Clone, Default)]
struct MemoryState(Arc<Mutex<Shared>>);

impl GatewayPersistence for MemoryState {
    fn record(&mut self, op: &PersistOp) -> std::io::Result<()> {
        self.0.lock().unwrap().pending.push(op.clone());
        Ok(())
    }

    fn commit(&mut self) -> std::io::Result<()> {
        let mut s = self.0.lock().unwrap();
        let ops: Vec<PersistOp> = s.pending.drain(..).collect();
        for op in ops {
            match op {
                PersistOp::Put(r) => {
                    s.committed.insert(r.client_id.clone(), r);
                }
                PersistOp::Delete(id) => {
                    s.committed.remove(&id);
                }
                other => panic!("unknown {other:?}"),
            }
        }
        s.commits += 1;
        Ok(())
    }
}

impl MemoryState {
    fn committed(&self, id: &str) -> Option<ClientRecord> {
        self.0.lock().unwrap().committed.get(id).cloned()
    }

    fn records(&self) -> Vec<ClientRecord> {
        self.0.lock().unwrap().committed.values().cloned().collect()
    }
}

async fn start_server(rt: &TokioRuntime) -> (SocketAddr, ServerHandle) {
    let options = ServerOptions {
        listeners: vec!["127.0.0.1:0".parse().unwrap()],
        ..ServerOptions::default()
    };
    let server = Server::bind(rt.clone(), options).await.unwrap();
    let addr = server.local_addrs()[0];
    let handle = server.handle();
    tokio::spawn(server.run());
    (addr, handle)
}

async fn start_gateway(
    rt: &TokioRuntime,
    server: &ServerHandle,
    state: &MemoryState,
) -> (
    SocketAddr,
    midge_gateway::GatewayHandle,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let options = GatewayOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        config: GatewayConfig::new(1),
        ..GatewayOptions::default()
    };
    let gateway = Gateway::bind(rt.clone(), options, LocalConnector::new(server.clone()))
        .await
        .unwrap()
        .with_persistence(state.records(), state.clone())
        .unwrap();
    let addr = gateway.local_addr();
    let handle = gateway.handle();
    (addr, handle, tokio::spawn(gateway.run()))
}

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
        let (n, _) = self.socket.recv_from(&mut buf).await.unwrap();
        midge_sn_codec::decode_slice(&buf[..n]).unwrap()
    }

    async fn connect(&self, id: &'static str) {
        self.send(Connect {
            will: false,
            clean_session: false,
            duration: 60,
            client_id: ClientId::from(id),
        })
        .await;
        assert!(
            matches!(self.recv().await, Message::ConnAck(a) if a.return_code == ReturnCode::Accepted)
        );
    }
}

#[tokio::test]
async fn sn_6_14_committed_state_restores_a_sleeping_client_and_its_topic_ids() {
    let test = async {
        let rt = TokioRuntime::current();
        let (broker, server) = start_server(&rt).await;
        let state = MemoryState::default();
        let (gw, handle, run) = start_gateway(&rt, &server, &state).await;

        let sn = SnPeer::new(gw).await;
        sn.connect("dev1").await;
        sn.send(Register {
            topic_id: TopicId(0),
            msg_id: 1,
            topic_name: TopicName::from("plant/temp"),
        })
        .await;
        let Message::RegAck(reg) = sn.recv().await else {
            panic!("expected REGACK")
        };
        // Committed before the REGACK was sent.
        let record = state.committed("dev1").expect("recorded before REGACK");
        assert_eq!(record.topics.len(), 1);
        assert_eq!(record.topics[0].name, "plant/temp");

        sn.send(Subscribe {
            dup: false,
            qos: QoS::AtLeastOnce,
            msg_id: 2,
            topic: SubscribeTopic::Name(TopicName::from("inbox")),
        })
        .await;
        let Message::SubAck(sub) = sn.recv().await else {
            panic!("expected SUBACK")
        };
        sn.send(Disconnect {
            duration: Some(600),
        })
        .await;
        assert!(matches!(sn.recv().await, Message::Disconnect(_)));
        assert_eq!(state.committed("dev1").unwrap().sleep, Some(600));

        let options = ConnectOptions::new(&format!("mqtt://{broker}"), "pub").unwrap();
        let (mqtt, _messages) = Client::connect(options).await.unwrap();
        mqtt.publish("inbox", &b"hello"[..], midge_tokio::QoS::AtLeastOnce, false)
            .unwrap()
            .await
            .unwrap();
        // The broker hands it to the gateway on its own: bounded wait.
        for _ in 0..1000 {
            if state.committed("dev1").unwrap().buffered.len() == 1 {
                break;
            }
            tokio::time::sleep(StdDuration::from_millis(10)).await;
        }
        assert_eq!(state.committed("dev1").unwrap().buffered.len(), 1);

        handle.shutdown();
        run.await.unwrap().unwrap();

        // A new gateway from the committed records.
        let (gw, handle, run) = start_gateway(&rt, &server, &state).await;
        let sn = SnPeer::new(gw).await;
        sn.send(PingReq {
            client_id: Some(ClientId::from("dev1")),
        })
        .await;
        let Message::Publish(p) = sn.recv().await else {
            panic!("expected the buffered PUBLISH")
        };
        assert_eq!(p.topic, Topic::TopicId(sub.topic_id));
        assert_eq!(&p.data[..], b"hello");
        sn.send(PubAck {
            topic_id: sub.topic_id,
            msg_id: p.msg_id,
            return_code: ReturnCode::Accepted,
        })
        .await;
        assert!(matches!(sn.recv().await, Message::PingResp(_)));
        assert!(state.committed("dev1").unwrap().buffered.is_empty());

        sn.connect("dev1").await;
        sn.send(Publish {
            dup: false,
            qos: PublishQoS::AtLeastOnce,
            retain: false,
            topic: Topic::TopicId(reg.topic_id),
            msg_id: 5,
            data: Bytes::from_static(b"21.5"),
        })
        .await;
        match sn.recv().await {
            Message::PubAck(a) => assert_eq!((a.msg_id, a.return_code), (5, ReturnCode::Accepted)),
            other => panic!("expected PUBACK, got {other:?}"),
        }
        // Keep-alive traffic commits nothing.
        let commits = state.0.lock().unwrap().commits;
        for _ in 0..3 {
            sn.send(PingReq { client_id: None }).await;
            assert!(matches!(sn.recv().await, Message::PingResp(_)));
        }
        assert_eq!(state.0.lock().unwrap().commits, commits);
        handle.shutdown();
        run.await.unwrap().unwrap();
        server.shutdown();
    };
    tokio::time::timeout(TIMEOUT, test)
        .await
        .expect("timed out");
}
