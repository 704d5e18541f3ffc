//! Midge on smol: [`SmolRuntime`], the [`Runtime`] the async client and the
//! broker server run on.
//!
//! The drivers are written once, against [`Runtime`], in `midge-client` and
//! `midge-server`; this crate supplies smol's executor, `async-io` timers
//! and `async-net` TCP. Tasks run on an executor with one thread per core
//! (so the broker uses every core), created on first use; bring your own
//! with [`SmolRuntime::with_executor`].
//!
//! What it deliberately does not do: any protocol work (that is the sans-IO
//! cores' job) or any driver logic (shared with `midge-tokio`). smol has no
//! virtual clock, so time-dependent tests on this runtime wait in real time.
//!
//! Key types: [`SmolRuntime`].
#![forbid(unsafe_code)]

mod client;
mod server;

pub use client::*;
pub use server::*;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

pub use midge_runtime::{BrokerUrl, Runtime, Scheme};
use midge_runtime::{Duration, Instant};
use smol::{Executor, Timer};

/// smol as a Midge [`Runtime`].
#[derive(Debug, Clone)]
pub struct SmolRuntime {
    executor: Arc<Executor<'static>>,
    origin: std::time::Instant,
}

/// The executor and clock origin of [`SmolRuntime::current`].
static GLOBAL: OnceLock<SmolRuntime> = OnceLock::new();

impl SmolRuntime {
    /// A runtime whose tasks run on `executor` (which the caller must run
    /// on some threads), with its own clock origin.
    #[must_use]
    pub fn with_executor(executor: Arc<Executor<'static>>) -> Self {
        Self {
            executor,
            origin: std::time::Instant::now(),
        }
    }

    /// A runtime with a new executor run by `threads` background threads
    /// (at least one). The threads live as long as the process.
    ///
    /// # Errors
    /// When the operating system refuses a thread.
    pub fn with_threads(threads: usize) -> io::Result<Self> {
        let executor = Arc::new(Executor::new());
        for n in 0..threads.max(1) {
            let executor = Arc::clone(&executor);
            std::thread::Builder::new()
                .name(format!("midge-smol-{n}"))
                .spawn(move || {
                    smol::block_on(executor.run(smol::future::pending::<()>()));
                })?;
        }
        Ok(Self::with_executor(executor))
    }

    /// The executor tasks are spawned on.
    #[must_use]
    pub fn executor(&self) -> &Arc<Executor<'static>> {
        &self.executor
    }

    fn to_std(&self, instant: Instant) -> std::time::Instant {
        self.origin + Duration::from_micros(instant.as_micros())
    }
}

impl Runtime for SmolRuntime {
    type TcpStream = smol::net::TcpStream;
    type TcpListener = smol::net::TcpListener;
    type UdpSocket = smol::net::UdpSocket;

    /// The process-wide runtime: an executor with one thread per core,
    /// started on first use. If the operating system refuses the threads,
    /// the executor runs on smol's own global executor instead.
    fn current() -> Self {
        GLOBAL
            .get_or_init(|| {
                let threads = std::thread::available_parallelism().map_or(1, usize::from);
                Self::with_threads(threads).unwrap_or_else(|_| {
                    let executor = Arc::new(Executor::new());
                    let runner = Arc::clone(&executor);
                    smol::spawn(async move { runner.run(smol::future::pending::<()>()).await })
                        .detach();
                    Self::with_executor(executor)
                })
            })
            .clone()
    }

    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.executor.spawn(future).detach();
    }

    fn now(&self) -> Instant {
        let elapsed = self.origin.elapsed();
        Instant::from_micros(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX))
    }

    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send + 'static {
        let timer = Timer::at(self.to_std(deadline));
        async move {
            timer.await;
        }
    }

    // An `async fn` would borrow `self`; the trait wants the future free of it.
    #[allow(clippy::manual_async_fn)]
    fn connect_tcp(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = io::Result<Self::TcpStream>> + Send + 'static {
        async move {
            let stream = smol::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(stream)
        }
    }

    fn bind_tcp(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = io::Result<Self::TcpListener>> + Send + 'static {
        smol::net::TcpListener::bind(addr)
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
            Ok((stream, peer))
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
        async move { smol::net::resolve((host.as_str(), port)).await }
    }

    fn bind_udp(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = io::Result<Self::UdpSocket>> + Send + 'static {
        smol::net::UdpSocket::bind(addr)
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
    use smol::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn clock_and_timer() {
        smol::block_on(async {
            let rt = SmolRuntime::current();
            let start = rt.now();
            rt.sleep(Duration::from_millis(20)).await;
            assert!(rt.now().saturating_duration_since(start) >= Duration::from_millis(20));
        });
    }

    #[test]
    fn tcp_round_trip_over_loopback() {
        smol::block_on(async {
            let rt = SmolRuntime::current();
            let listener = rt.bind_tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
            let addr = SmolRuntime::listener_addr(&listener).unwrap();
            let (tx, rx) = smol::channel::bounded(1);
            let server = rt.clone();
            rt.spawn(async move {
                let (mut stream, _) = server.accept_tcp(&listener).await.unwrap();
                let mut buf = [0u8; 4];
                stream.read_exact(&mut buf).await.unwrap();
                stream.write_all(&buf).await.unwrap();
                tx.send(()).await.unwrap();
            });
            let mut client = rt.connect_tcp(addr).await.unwrap();
            client.write_all(b"ping").await.unwrap();
            let mut buf = [0u8; 4];
            client.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"ping");
            rx.recv().await.unwrap();
            let resolved = rt.resolve("localhost", 1883).await.unwrap();
            assert!(!resolved.is_empty() && resolved.iter().all(|a| a.port() == 1883));
        });
    }

    #[test]
    fn udp_round_trip_over_loopback() {
        smol::block_on(async {
            let rt = SmolRuntime::current();
            let a = rt.bind_udp("127.0.0.1:0".parse().unwrap()).await.unwrap();
            let b = rt.bind_udp("127.0.0.1:0".parse().unwrap()).await.unwrap();
            let b_addr = SmolRuntime::udp_local_addr(&b).unwrap();
            let a_addr = SmolRuntime::udp_local_addr(&a).unwrap();
            assert_eq!(rt.send_to(&a, b"\x02\x16", b_addr).await.unwrap(), 2);
            let mut buf = [0u8; 16];
            let (n, from) = rt.recv_from(&b, &mut buf).await.unwrap();
            assert_eq!((&buf[..n], from), (&b"\x02\x16"[..], a_addr));
            SmolRuntime::set_udp_broadcast(&a, true).unwrap();
        });
    }
}
