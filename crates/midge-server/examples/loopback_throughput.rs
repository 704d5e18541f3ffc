//! Loopback throughput of the broker server on tokio: `PAIRS` publishers
//! each send `MESSAGES` QoS 0 messages of `PAYLOAD` bytes to their own
//! topic, each read by one subscriber; prints delivered messages per second.
//!
//! ```text
//! cargo run --release -p midge-server --example loopback_throughput
//! PAIRS=4 MESSAGES=200000 PAYLOAD=64 cargo run --release ...
//! BROKER=127.0.0.1:1883 cargo run --release ...   # measure another broker
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use midge_codec::{
    Connect, Decoder, Filter, MqttString, Packet, PacketId, Publish, QoS, QosPid, Subscribe,
    SubscribeFilter, Topic,
};
use midge_server::{Server, ServerOptions};
use midge_tokio::{Runtime, TokioRuntime};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn connect(
    rt: &TokioRuntime,
    addr: SocketAddr,
    id: &str,
) -> (<TokioRuntime as Runtime>::TcpStream, Decoder, BytesMut) {
    let mut stream = rt.connect_tcp(addr).await.unwrap();
    let mut out = BytesMut::new();
    Packet::Connect(Connect::new(MqttString::new(id).unwrap(), 60))
        .encode(&mut out)
        .unwrap();
    stream.write_all(&out).await.unwrap();
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::new();
    let packet = next(&mut stream, &mut decoder, &mut buf).await;
    assert!(matches!(packet, Packet::ConnAck(_)), "{packet:?}");
    (stream, decoder, buf)
}

async fn next(
    stream: &mut <TokioRuntime as Runtime>::TcpStream,
    decoder: &mut Decoder,
    buf: &mut BytesMut,
) -> Packet {
    loop {
        if let Some(p) = decoder.decode(buf).unwrap() {
            return p;
        }
        let mut chunk = [0u8; 65536];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "broker closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let pairs = env("PAIRS", 2);
    let messages = env("MESSAGES", 200_000);
    let payload = vec![0x5a; env("PAYLOAD", 64)];
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let rt = TokioRuntime::current();
        let (addr, handle) = match std::env::var("BROKER") {
            Ok(broker) => (broker.parse().unwrap(), None),
            Err(_) => {
                let options = ServerOptions {
                    listeners: vec!["127.0.0.1:0".parse().unwrap()],
                    ..ServerOptions::default()
                };
                let server = Server::bind(rt.clone(), options).await.unwrap();
                let addr = server.local_addrs()[0];
                let handle = server.handle();
                tokio::spawn(server.run());
                let watch = handle.clone();
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                        tracing::debug!(stats = ?watch.stats(), "progress");
                    }
                });
                (addr, Some(handle))
            }
        };

        let mut readers = Vec::new();
        for i in 0..pairs {
            let (mut stream, mut decoder, mut buf) = connect(&rt, addr, &format!("sub-{i}")).await;
            let mut out = BytesMut::new();
            let filter = SubscribeFilter {
                filter: Filter::new(&format!("bench/{i}")).unwrap(),
                qos: QoS::AtMostOnce,
            };
            Packet::Subscribe(Subscribe::new(PacketId::new(1).unwrap(), vec![filter]))
                .encode(&mut out)
                .unwrap();
            stream.write_all(&out).await.unwrap();
            let packet = next(&mut stream, &mut decoder, &mut buf).await;
            assert!(matches!(packet, Packet::SubAck(_)), "{packet:?}");
            readers.push((stream, decoder, buf));
        }
        // Let the subscriptions reach every router shard.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;

        let start = Instant::now();
        let mut tasks = Vec::new();
        for (i, (mut stream, mut decoder, mut buf)) in readers.into_iter().enumerate() {
            tasks.push(tokio::spawn(async move {
                let mut got = 0;
                while got < messages {
                    if let Packet::Publish(_) = next(&mut stream, &mut decoder, &mut buf).await {
                        got += 1;
                    }
                }
                i
            }));
        }
        for i in 0..pairs {
            let rt = rt.clone();
            let payload = payload.clone();
            tokio::spawn(async move {
                let (mut stream, _, _) = connect(&rt, addr, &format!("pub-{i}")).await;
                let topic = Topic::new(&format!("bench/{i}")).unwrap();
                let publish = Publish::new(topic, QosPid::AtMostOnce, payload);
                let mut out = BytesMut::new();
                let mut sent = 0;
                while sent < messages {
                    out.clear();
                    for _ in 0..1000.min(messages - sent) {
                        Packet::Publish(publish.clone()).encode(&mut out).unwrap();
                        sent += 1;
                    }
                    stream.write_all(&out).await.unwrap();
                }
                // Keep the socket open until the readers are done.
                std::future::pending::<()>().await;
            });
        }
        for task in tasks {
            task.await.unwrap();
        }
        let elapsed = start.elapsed().as_secs_f64();
        let total = (pairs * messages) as f64;
        println!(
            "{pairs} pairs x {messages} messages of {} bytes: {:.0} messages/s ({elapsed:.2} s)",
            payload.len(),
            total / elapsed
        );
        if let Some(handle) = handle {
            println!("{:?}", handle.stats());
        }
    });
}
