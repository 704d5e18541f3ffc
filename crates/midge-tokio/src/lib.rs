//! Midge on tokio: [`TokioRuntime`], the [`Runtime`] the async client and
//! the broker server run on.
//!
//! The drivers are written once, against [`Runtime`], in `midge-client` and
//! `midge-server`; this crate supplies tokio's tasks, clock, timers and TCP.
//! The clock is `tokio::time`, so a test with a paused clock
//! (`#[tokio::test(start_paused = true)]`) drives keep-alive and retry
//! timers without waiting.
//!
//! What it deliberately does not do: any protocol work (that is the sans-IO
//! cores' job) or any driver logic (shared with `midge-smol`).
//!
//! Key types: [`TokioRuntime`].
#![forbid(unsafe_code)]

mod client;
mod server;

pub use client::*;
pub use server::*;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::OnceLock;

pub use midge_runtime::{BrokerUrl, Runtime, Scheme};
use midge_runtime::{Duration, Instant};
use tokio::runtime::Handle;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

/// tokio as a Midge [`Runtime`]: tasks on a runtime handle, `tokio::time`
/// for the clock and timers, `tokio::net` for TCP.
#[derive(Debug, Clone)]
pub struct TokioRuntime {
    handle: Handle,
    origin: tokio::time::Instant,
}

/// The clock origin shared by every [`TokioRuntime::current`] in the process.
static ORIGIN: OnceLock<tokio::time::Instant> = OnceLock::new();

impl TokioRuntime {
    /// A runtime that spawns on `handle`, with its own clock origin.
    #[must_use]
    pub fn from_handle(handle: Handle) -> Self {
        let _guard = handle.enter();
        Self {
            origin: tokio::time::Instant::now(),
            handle,
        }
    }

    /// The tokio handle tasks are spawned on.
    #[must_use]
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    fn to_tokio(&self, instant: Instant) -> tokio::time::Instant {
        self.origin + Duration::from_micros(instant.as_micros())
    }
}

impl Runtime for TokioRuntime {
    type TcpStream = Compat<tokio::net::TcpStream>;
    type TcpListener = tokio::net::TcpListener;
    type UdpSocket = tokio::net::UdpSocket;

    /// # Panics
    /// Outside a tokio runtime, as `tokio::runtime::Handle::current` does.
    fn current() -> Self {
        let handle = Handle::current();
        let origin = {
            let _guard = handle.enter();
            *ORIGIN.get_or_init(tokio::time::Instant::now)
        };
        Self { handle, origin }
    }

    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        drop(self.handle.spawn(future));
    }

    fn now(&self) -> Instant {
        let _guard = self.handle.enter();
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.origin);
        Instant::from_micros(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX))
    }

    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send + 'static {
        let _guard = self.handle.enter();
        tokio::time::sleep_until(self.to_tokio(deadline))
    }

    // An `async fn` would borrow `self`; the trait wants the future free of it.
    #[allow(clippy::manual_async_fn)]
    fn connect_tcp(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = io::Result<Self::TcpStream>> + Send + 'static {
        async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(stream.compat())
        }
    }

    fn bind_tcp(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = io::Result<Self::TcpListener>> + Send + 'static {
        tokio::net::TcpListener::bind(addr)
    }

    // An `async fn` would borrow `self`; the trait wants the future free of it.
    #[allow(clippy::manual_async_fn)]
    fn accept_tcp<'a>(
        &self,
        listener: &'a Self::TcpListener,
    ) -> impl Future<Output = io::Result<(Self::TcpStream, SocketAddr)>> + Send + 'a {
        async move {
            let (stream, peer) = listener.accept().await?;
            stream.set_nodelay(true)?;
            Ok((stream.compat(), peer))
        }
    }

    fn listener_addr(listener: &Self::TcpListener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }

    fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> impl Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'static {
        let host = host.to_owned();
        async move {
            Ok(tokio::net::lookup_host((host.as_str(), port))
                .await?
                .collect())
        }
    }

    fn bind_udp(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = io::Result<Self::UdpSocket>> + Send + 'static {
        tokio::net::UdpSocket::bind(addr)
    }

    // An `async fn` would borrow `self`; the trait wants the future free of it.
    #[allow(clippy::manual_async_fn)]
    fn send_to<'a>(
        &self,
        socket: &'a Self::UdpSocket,
        datagram: &'a [u8],
        to: SocketAddr,
    ) -> impl Future<Output = io::Result<usize>> + Send + 'a {
        async move { socket.send_to(datagram, to).await }
    }

    // An `async fn` would borrow `self`; the trait wants the future free of it.
    #[allow(clippy::manual_async_fn)]
    fn recv_from<'a>(
        &self,
        socket: &'a Self::UdpSocket,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send + 'a {
        async move { socket.recv_from(buf).await }
    }

    fn udp_local_addr(socket: &Self::UdpSocket) -> io::Result<SocketAddr> {
        socket.local_addr()
    }

    fn set_udp_broadcast(socket: &Self::UdpSocket, on: bool) -> io::Result<()> {
        socket.set_broadcast(on)
    }

    fn join_multicast(socket: &Self::UdpSocket, group: std::net::IpAddr) -> io::Result<()> {
        match group {
            std::net::IpAddr::V4(group) => {
                socket.join_multicast_v4(group, std::net::Ipv4Addr::UNSPECIFIED)
            }
            std::net::IpAddr::V6(group) => socket.join_multicast_v6(&group, 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn clock_follows_paused_tokio_time() {
        let rt = TokioRuntime::current();
        let start = rt.now();
        rt.sleep(Duration::from_secs(30)).await;
        let waited = rt.now().saturating_duration_since(start);
        assert!(waited >= Duration::from_secs(30), "{waited:?}");
        assert!(waited < Duration::from_secs(31), "{waited:?}");
    }

    #[tokio::test]
    async fn tcp_round_trip_over_loopback() {
        let rt = TokioRuntime::current();
        let listener = rt.bind_tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = TokioRuntime::listener_addr(&listener).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let server = rt.clone();
        rt.spawn(async move {
            let (mut stream, _) = server.accept_tcp(&listener).await.unwrap();
            let mut buf = [0u8; 4];
            stream.read_exact(&mut buf).await.unwrap();
            stream.write_all(&buf).await.unwrap();
            tx.send(()).unwrap();
        });
        let mut client = rt.connect_tcp(addr).await.unwrap();
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        rx.await.unwrap();
        let resolved = rt.resolve("localhost", 1883).await.unwrap();
        assert!(resolved.iter().all(|a| a.port() == 1883) && !resolved.is_empty());
    }

    #[tokio::test]
    async fn udp_round_trip_over_loopback() {
        (async {
            let rt = TokioRuntime::current();
            let a = rt.bind_udp("127.0.0.1:0".parse().unwrap()).await.unwrap();
            let b = rt.bind_udp("127.0.0.1:0".parse().unwrap()).await.unwrap();
            let b_addr = TokioRuntime::udp_local_addr(&b).unwrap();
            let a_addr = TokioRuntime::udp_local_addr(&a).unwrap();
            assert_eq!(rt.send_to(&a, b"\x02\x16", b_addr).await.unwrap(), 2);
            let mut buf = [0u8; 16];
            let (n, from) = rt.recv_from(&b, &mut buf).await.unwrap();
            assert_eq!((&buf[..n], from), (&b"\x02\x16"[..], a_addr));
            TokioRuntime::set_udp_broadcast(&a, true).unwrap();
        })
        .await;
    }
}
