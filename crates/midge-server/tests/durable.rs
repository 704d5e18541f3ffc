//! Durability in the running server: acknowledgements wait for the commits
//! that hold their message, on the publisher's shard and on every shard the
//! message was routed to (the commit barrier), and a shutdown commits what
//! is pending. The store here records which queued payloads a commit made
//! durable, so each PUBACK/PUBCOMP can be checked against it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    unreachable_pub,
    dead_code
)]

#[path = "suite/client.rs"]
mod client;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use client::{connect_packet, TestClient};
use futures_lite::future;
use midge_broker::{
    shard_of, AllowAll, MemoryStore, MessageId, QueuedMessage, Recovered, SessionState, Store,
};
use midge_codec::{Filter, Publish, QoS};
use midge_runtime::{Duration, Runtime};
use midge_server::{Durability, Server, ServerOptions};
use midge_tokio::TokioRuntime;

/// Payloads of queued messages each shard has committed, and its commits.
#[derive(Debug, Default)]
struct Committed {
    payloads: Vec<Vec<u8>>,
    subscriptions: Vec<String>,
    commits: u64,
}

/// A [`MemoryStore`] that reports what each commit made durable.
struct Recording {
    inner: MemoryStore,
    pending: Vec<Vec<u8>>,
    pending_subs: Vec<String>,
    committed: Arc<Mutex<Committed>>,
}

impl Store for Recording {
    type Error = Infallible;
    fn save_subscription(&mut self, c: &str, f: &Filter, q: QoS) -> Result<(), Infallible> {
        self.pending_subs.push(format!("{c} {}", f.as_str()));
        self.inner.save_subscription(c, f, q)
    }
    fn remove_subscription(&mut self, c: &str, f: &Filter) -> Result<(), Infallible> {
        self.inner.remove_subscription(c, f)
    }
    fn save_session_state(&mut self, c: &str, s: &SessionState) -> Result<(), Infallible> {
        self.inner.save_session_state(c, s)
    }
    fn push_queued(
        &mut self,
        c: &str,
        seq: u64,
        m: MessageId,
        p: &Publish,
    ) -> Result<(), Infallible> {
        self.pending.push(p.payload.to_vec());
        self.inner.push_queued(c, seq, m, p)
    }
    fn remove_queued(&mut self, c: &str, seq: u64) -> Result<(), Infallible> {
        self.inner.remove_queued(c, seq)
    }
    fn load_queue(
        &self,
        c: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<QueuedMessage>, Infallible> {
        self.inner.load_queue(c, after, limit)
    }
    fn remove_session(&mut self, c: &str) -> Result<(), Infallible> {
        self.inner.remove_session(c)
    }
    fn save_retained(&mut self, p: &Publish) -> Result<(), Infallible> {
        self.inner.save_retained(p)
    }
    fn remove_retained(&mut self, t: &str) -> Result<(), Infallible> {
        self.inner.remove_retained(t)
    }
    fn commit(&mut self) -> Result<(), Infallible> {
        let mut c = self.committed.lock().unwrap();
        c.payloads.append(&mut self.pending);
        c.subscriptions.append(&mut self.pending_subs);
        c.commits += 1;
        self.inner.commit()
    }
    fn recover(&self) -> Result<Recovered, Infallible> {
        self.inner.recover()
    }
}

const SHARDS: u32 = 3;

fn id_on_shard(prefix: &str, shard: u32) -> String {
    (0..10_000)
        .map(|n| format!("{prefix}-{n}"))
        .find(|id| shard_of(id, SHARDS) == shard)
        .unwrap()
}

/// Starts a server whose shards record commits; returns its address, the
/// per-shard records and a stopper.
async fn start(
    rt: &TokioRuntime,
    durability: Durability,
) -> (
    std::net::SocketAddr,
    Vec<Arc<Mutex<Committed>>>,
    midge_server::ServerHandle,
    async_channel::Receiver<()>,
) {
    let mut options = ServerOptions {
        listeners: vec!["127.0.0.1:0".parse().unwrap()],
        shards: SHARDS as usize,
        durability,
        ..ServerOptions::default()
    };
    options.session.connect_timeout = Duration::from_secs(5);
    let records: Vec<Arc<Mutex<Committed>>> = (0..SHARDS).map(|_| Arc::default()).collect();
    let shared = records.clone();
    let server = Server::bind_with(rt.clone(), options, move |shard| {
        let store = Recording {
            inner: MemoryStore::new(),
            pending: Vec::new(),
            pending_subs: Vec::new(),
            committed: Arc::clone(&shared[shard as usize]),
        };
        (store, AllowAll)
    })
    .await
    .unwrap();
    let addr = server.local_addrs()[0];
    let handle = server.handle();
    let (tx, done) = async_channel::bounded(1);
    rt.spawn(async move {
        server.run().await.unwrap();
        let _ = tx.send(()).await;
    });
    (addr, records, handle, done)
}

async fn bounded<F: std::future::Future<Output = ()>>(rt: &TokioRuntime, test: F) {
    let limit = rt.clone();
    future::or(test, async move {
        limit.sleep(Duration::from_secs(20)).await;
        panic!("test did not finish within 20 s");
    })
    .await;
}

/// A persistent subscriber on `sub_shard`, offline, and a publisher on
/// `pub_shard`: after each PUBACK (QoS 1) or PUBCOMP (QoS 2) the message
/// must already be committed in the subscriber's shard's store.
async fn acks_follow_commits(durability: Durability, pub_shard: u32, sub_shard: u32) {
    let rt = TokioRuntime::current();
    bounded(&rt, async {
        let (addr, records, handle, done) = start(&rt, durability).await;
        let sub_id = id_on_shard("durable-sub", sub_shard);
        let (mut sub, _) =
            TestClient::connect_with(&rt, addr, connect_packet(&sub_id, false, 60)).await;
        sub.subscribe("durable/#", QoS::ExactlyOnce).await;
        sub.disconnect().await;
        let mut publisher =
            TestClient::connect(&rt, addr, &id_on_shard("durable-pub", pub_shard)).await;
        for n in 0..20u32 {
            let qos = if n % 2 == 0 {
                QoS::AtLeastOnce
            } else {
                QoS::ExactlyOnce
            };
            let payload = format!("m{n}").into_bytes();
            publisher.publish("durable/x", qos, &payload, false).await;
            let committed = records[sub_shard as usize].lock().unwrap();
            assert!(
                committed.payloads.contains(&payload),
                "message {n} acknowledged before the subscriber's shard committed it"
            );
        }
        publisher.disconnect().await;
        handle.shutdown();
        done.recv().await.unwrap();
    })
    .await;
}

/// [MQTT-4.3.3-1] [MQTT-4.3.2-2] with durability: the acknowledgement
/// waits for the commit on the subscriber's shard, reached through a
/// commit barrier behind the routed message.
#[tokio::test(start_paused = true)]
async fn batch_ack_waits_for_the_commit_on_another_shard() {
    acks_follow_commits(Durability::Batch(Duration::from_millis(2)), 0, 1).await;
}

#[tokio::test(start_paused = true)]
async fn batch_ack_waits_for_the_commit_on_its_own_shard() {
    acks_follow_commits(Durability::Batch(Duration::from_millis(2)), 2, 2).await;
}

#[tokio::test(start_paused = true)]
async fn always_ack_waits_for_the_commit_on_another_shard() {
    acks_follow_commits(Durability::Always, 1, 2).await;
}

/// A graceful shutdown commits what was recorded, even with no commits
/// while running.
#[tokio::test(start_paused = true)]
async fn shutdown_commits_what_is_pending() {
    let rt = TokioRuntime::current();
    bounded(&rt, async {
        let (addr, records, handle, done) = start(&rt, Durability::Off).await;
        let sub_id = id_on_shard("late-sub", 1);
        let (mut sub, _) =
            TestClient::connect_with(&rt, addr, connect_packet(&sub_id, false, 60)).await;
        sub.subscribe("late/#", QoS::AtLeastOnce).await;
        sub.disconnect().await;
        let mut publisher = TestClient::connect(&rt, addr, &id_on_shard("late-pub", 1)).await;
        publisher
            .publish("late/x", QoS::AtLeastOnce, b"kept", false)
            .await;
        assert!(records[1].lock().unwrap().payloads.is_empty());
        publisher.disconnect().await;
        handle.shutdown();
        done.recv().await.unwrap();
        assert!(records[1]
            .lock()
            .unwrap()
            .payloads
            .contains(&b"kept".to_vec()));
    })
    .await;
}

/// The commit counter reaches the metrics.
#[tokio::test(start_paused = true)]
async fn commits_are_counted() {
    let rt = TokioRuntime::current();
    bounded(&rt, async {
        let (addr, records, handle, done) =
            start(&rt, Durability::Batch(Duration::from_millis(2))).await;
        let sub_id = id_on_shard("count-sub", 0);
        let (mut sub, _) =
            TestClient::connect_with(&rt, addr, connect_packet(&sub_id, false, 60)).await;
        sub.subscribe("count/#", QoS::AtLeastOnce).await;
        sub.disconnect().await;
        let mut publisher = TestClient::connect(&rt, addr, "count-pub").await;
        publisher
            .publish("count/x", QoS::AtLeastOnce, b"c", false)
            .await;
        let stats = handle.stats();
        assert!(stats.store_commits >= 1);
        assert_eq!(stats.store_recoveries, 0);
        assert!(records[0].lock().unwrap().commits >= 1);
        assert!(handle
            .metrics()
            .await
            .to_prometheus()
            .contains("midge_store_commits_total"));
        publisher.disconnect().await;
        handle.shutdown();
        done.recv().await.unwrap();
    })
    .await;
}

/// A SUBACK confirms a subscription a restart would find: it waits for the
/// commit that records it, and the retained message it brings comes after
/// it [MQTT-3.3.1-6].
async fn suback_follows_commit(durability: Durability) {
    let rt = TokioRuntime::current();
    bounded(&rt, async {
        let (addr, records, handle, done) = start(&rt, durability).await;
        let mut publisher = TestClient::connect(&rt, addr, "retainer").await;
        publisher
            .publish("gate/kept", QoS::AtLeastOnce, b"r", true)
            .await;
        for n in 0..6u32 {
            let id = id_on_shard("gate-sub", n % SHARDS);
            let (mut sub, _) =
                TestClient::connect_with(&rt, addr, connect_packet(&id, false, 60)).await;
            // `subscribe` fails unless the SUBACK is the next packet.
            sub.subscribe("gate/#", QoS::AtLeastOnce).await;
            let shard = shard_of(&id, SHARDS) as usize;
            assert!(
                records[shard]
                    .lock()
                    .unwrap()
                    .subscriptions
                    .contains(&format!("{id} gate/#")),
                "SUBACK for {id} before its subscription was committed"
            );
            assert_eq!(&sub.received().await.payload[..], b"r");
            sub.disconnect().await;
        }
        publisher.disconnect().await;
        handle.shutdown();
        done.recv().await.unwrap();
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn batch_suback_waits_for_the_commit_of_the_subscription() {
    suback_follows_commit(Durability::Batch(Duration::from_millis(2))).await;
}

#[tokio::test(start_paused = true)]
async fn always_suback_waits_for_the_commit_of_the_subscription() {
    suback_follows_commit(Durability::Always).await;
}

/// A publisher with more QoS 1 messages in flight than the session's
/// unacknowledged limit is not closed while its acknowledgements wait for
/// commits: its connection stops reading until they come
/// [MQTT-4.3.2-2] [MQTT-4.6.0-2].
#[tokio::test(start_paused = true)]
async fn wide_inflight_window_waits_for_commits_instead_of_closing() {
    use midge_codec::{Packet, PacketId, Publish, QosPid, Topic};
    let rt = TokioRuntime::current();
    bounded(&rt, async {
        let (addr, records, handle, done) =
            start(&rt, Durability::Batch(Duration::from_millis(2))).await;
        let sub_id = id_on_shard("wide-sub", 1);
        let (mut sub, _) =
            TestClient::connect_with(&rt, addr, connect_packet(&sub_id, false, 60)).await;
        sub.subscribe("wide/#", QoS::AtLeastOnce).await;
        sub.disconnect().await;
        let mut publisher = TestClient::connect(&rt, addr, &id_on_shard("wide-pub", 0)).await;
        const N: u16 = 3000;
        for n in 1..=N {
            let publish = Publish::new(
                Topic::new("wide/x").unwrap(),
                QosPid::AtLeastOnce(PacketId::new(n).unwrap()),
                n.to_be_bytes().to_vec(),
            );
            publisher.send(&Packet::Publish(publish)).await;
        }
        for n in 1..=N {
            match publisher.packet().await {
                Packet::PubAck(ack) => assert_eq!(ack.packet_id.get(), n),
                other => panic!("expected PUBACK {n}, got {other:?}"),
            }
        }
        // The offline queue keeps its default 1000 messages; the rest are
        // dropped (and still acknowledged: the publisher did its part).
        assert_eq!(records[1].lock().unwrap().payloads.len(), 1000);
        publisher.disconnect().await;
        handle.shutdown();
        done.recv().await.unwrap();
    })
    .await;
}
