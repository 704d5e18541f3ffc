//! Raw MQTT bytes over any stream, for transport tests, and a server runner.
#![allow(dead_code)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use futures_lite::{future, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use midge_broker::{Auth, MemoryStore};
use midge_codec::ConnectReturnCode;
use midge_runtime::{Duration, Runtime};
use midge_server::{Listener, ListenerKind, Server, ServerHandle, ServerOptions};

/// Fails the test instead of hanging it.
pub async fn bounded<R: Runtime, F: Future<Output = ()>>(rt: &R, test: F) {
    let limit = rt.clone();
    future::or(test, async move {
        limit.sleep(Duration::from_secs(20)).await;
        panic!("test did not finish within 20 s");
    })
    .await;
}

/// Completes with `None` after `secs` seconds.
pub async fn within<R: Runtime, T>(rt: &R, secs: u64, f: impl Future<Output = T>) -> Option<T> {
    let limit = rt.clone();
    future::or(async { Some(f.await) }, async move {
        limit.sleep(Duration::from_secs(secs)).await;
        None
    })
    .await
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&u16::try_from(s.len()).unwrap().to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    assert!(body.len() < 128);
    let mut out = vec![first, u8::try_from(body.len()).unwrap()];
    out.extend_from_slice(body);
    out
}

/// CONNECT, clean session, keep alive 60 s, with an optional user name.
pub fn connect(id: &str, username: Option<&str>) -> Vec<u8> {
    let mut body = Vec::new();
    string(&mut body, "MQTT");
    body.push(0x04);
    body.push(if username.is_some() { 0x82 } else { 0x02 });
    body.extend_from_slice(&60u16.to_be_bytes());
    string(&mut body, id);
    if let Some(name) = username {
        string(&mut body, name);
    }
    packet(0x10, &body)
}

/// SUBSCRIBE (packet id 1) to one filter at QoS 0.
pub fn subscribe(filter: &str) -> Vec<u8> {
    let mut body = vec![0x00, 0x01];
    string(&mut body, filter);
    body.push(0x00);
    packet(0x82, &body)
}

/// PUBLISH at QoS 0.
pub fn publish(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    string(&mut body, topic);
    body.extend_from_slice(payload);
    packet(0x30, &body)
}

pub const SUBACK_1_QOS0: [u8; 5] = [0x90, 0x03, 0x00, 0x01, 0x00];

pub fn connack(code: ConnectReturnCode) -> [u8; 4] {
    [0x20, 0x02, 0x00, code as u8]
}

/// Reads exactly `n` bytes.
pub async fn read_n<S: AsyncRead + Unpin>(stream: &mut S, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; n];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Whether the peer closes the stream (end of stream or an error) within
/// 10 s, reading and discarding what comes before.
pub async fn closes<R: Runtime, S: AsyncRead + Unpin>(rt: &R, stream: &mut S) -> bool {
    within(rt, 10, async {
        let mut buf = [0u8; 256];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_some()
}

/// Sends CONNECT and returns the CONNACK's return code byte.
pub async fn handshake_mqtt<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    id: &str,
    username: Option<&str>,
) -> io::Result<u8> {
    stream.write_all(&connect(id, username)).await?;
    stream.flush().await?;
    let ack = read_n(stream, 4).await?;
    assert_eq!(&ack[..3], &[0x20, 0x02, 0x00], "CONNACK header");
    Ok(ack[3])
}

/// A running server with one listener of `kind` on 127.0.0.1.
pub struct Running {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    done: async_channel::Receiver<io::Result<()>>,
}

impl Running {
    pub async fn start<R: Runtime>(rt: &R, kind: ListenerKind) -> Self {
        Self::start_with(rt, kind, || midge_broker::AllowAll).await
    }

    pub async fn start_with<R, A, F>(rt: &R, kind: ListenerKind, auth: F) -> Self
    where
        R: Runtime,
        A: Auth + Send + 'static,
        F: Fn() -> A,
    {
        let options = ServerOptions {
            listeners: Vec::new(),
            transports: vec![Listener {
                addr: "127.0.0.1:0".parse().unwrap(),
                kind,
            }],
            shards: 1,
            handshake_timeout: Duration::from_secs(5),
            ..ServerOptions::default()
        };
        let server = Server::bind_with(rt.clone(), options, |_| (MemoryStore::new(), auth()))
            .await
            .expect("bind");
        let addr = server.local_addrs()[0];
        let handle = server.handle();
        let (tx, done) = async_channel::bounded(1);
        rt.spawn(async move {
            let _ = tx.send(server.run().await).await;
        });
        Self { addr, handle, done }
    }

    /// Shuts down; `run` must return `Ok` and no connection may be left.
    pub async fn stop(self) {
        self.handle.shutdown();
        self.done.recv().await.unwrap().unwrap();
        assert_eq!(self.handle.stats().connections_open, 0);
    }
}

/// Lets in only the user named `name`; refuses others with 0x05.
#[derive(Debug, Clone)]
pub struct OnlyUser(pub &'static str);

impl Auth for OnlyUser {
    fn connect(
        &mut self,
        _client_id: &str,
        username: Option<&str>,
        _password: Option<&[u8]>,
    ) -> Result<(), ConnectReturnCode> {
        if username == Some(self.0) {
            Ok(())
        } else {
            Err(ConnectReturnCode::NotAuthorized)
        }
    }

    fn may_publish(&self, _: &str, _: Option<&str>, _: &str) -> bool {
        true
    }

    fn may_subscribe(&self, _: &str, _: Option<&str>, _: &str) -> bool {
        true
    }
}
